//! The `submissions` table: which file is in force for each slice, read and appended once per
//! fact-table commit (the commit's application id makes a second append of the same commit fail).

use std::collections::HashSet;

use datafusion::prelude::{Expr, col, lit};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use ingest::ReportKind;

use crate::store::{Warehouse, is_recorded_already};
use crate::tables::rows::Submission;
use crate::tables::schemas::{SUBMISSIONS, fact_table};
use crate::tables::stored::StoredRow;

use crate::Result;

impl Warehouse {
    /// Every submission, oldest first.
    pub async fn submissions(&self) -> Result<Vec<Submission>> {
        self.submissions_where(None).await
    }

    /// The submissions that match a filter, oldest first. The filter is pushed down to the
    /// table's file statistics, so a lookup by slice or id opens only the files it needs.
    async fn submissions_where(&self, filter: Option<Expr>) -> Result<Vec<Submission>> {
        self.submissions_at(None, filter).await
    }

    pub(crate) async fn submissions_at(&self, version: Option<u64>, filter: Option<Expr>) -> Result<Vec<Submission>> {
        self.read_rows(SUBMISSIONS, version, filter, &["uploaded_at", "submission_id"])
            .await
    }

    /// The submission that holds a slice now, if any.
    pub async fn current_submission(
        &self,
        kind: ReportKind,
        school_year: &str,
        province_code: Option<&str>,
    ) -> Result<Option<Submission>> {
        let mut filter = col("kind")
            .eq(lit(kind.as_str()))
            .and(col("school_year").eq(lit(school_year)));
        filter = match province_code {
            Some(code) => filter.and(col("province_code").eq(lit(code))),
            None => filter.and(col("province_code").is_null()),
        };
        Ok(self.submissions_where(Some(filter)).await?.pop())
    }

    /// Appends the submissions of fact-table commits. Each commit's submissions are recorded
    /// once: the append carries the commit's application id (`khoso.TABLE.VERSION`), so a
    /// process repairing an unrecorded commit and the process that made it, racing, cannot both
    /// write them (Delta refuses the second).
    pub(crate) async fn record_submissions(&self, submissions: &[Submission]) -> Result<()> {
        let table = self.table(SUBMISSIONS, None).await?;
        // Those recorded by the time of this version are left out; those recorded after it make
        // the append fail (and are recorded).
        let mut unrecorded = Vec::new();
        let mut commits = std::collections::BTreeSet::new();
        for submission in submissions {
            let commit = recorded_commit(submission);
            let recorded = table
                .snapshot()?
                .transaction_version(table.log_store().as_ref(), &commit)
                .await?;
            if recorded.is_none() {
                unrecorded.push(submission.clone());
                commits.insert(commit);
            }
        }
        if unrecorded.is_empty() {
            return Ok(());
        }
        let batch = Submission::to_batch(&unrecorded)?;
        let mut properties = CommitProperties::default();
        for commit in commits {
            properties = properties.with_application_transaction(deltalake::kernel::Transaction::new(commit, 0));
        }
        let written = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(properties)
            .await;
        let table = match written {
            Ok(table) => table,
            Err(e) if is_recorded_already(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // Every append adds a small file; lookups by slice scan them, so keep them few.
        if table.get_file_uris()?.count() > SUBMISSION_FILES_BEFORE_COMPACTION
            && let Err(e) = self.compact_submissions(table).await
        {
            tracing::warn!(cause = %e, "the submissions table was not compacted");
        }
        Ok(())
    }

    /// Rewrites the submissions of a version as one file. An overwrite, not Delta's OPTIMIZE:
    /// its removals count as changes, so two processes compacting at once cannot both commit
    /// (delta-rs does not check OPTIMIZE's removals against each other, and both compacted
    /// files would stay); an append committed meanwhile keeps its file.
    async fn compact_submissions(&self, table: DeltaTable) -> Result<()> {
        let rows = self.submissions_at(table.version(), None).await?;
        table
            .write(vec![Submission::to_batch(&rows)?])
            .with_save_mode(SaveMode::Overwrite)
            .await?;
        Ok(())
    }
}

/// Commit metadata key under which a fact-table commit of an earlier khoso recorded its one
/// submission.
pub(crate) const SUBMISSION_METADATA: &str = "khoso.submission";

/// Commit metadata key under which a fact-table commit records its submissions (a list).
pub(crate) const SUBMISSIONS_METADATA: &str = "khoso.submissions";

/// How many one-row files the submissions table may gather before they are compacted into one.
pub(crate) const SUBMISSION_FILES_BEFORE_COMPACTION: usize = 32;

/// The submissions a fact-table commit (its log file's lines) says it wrote.
pub(crate) fn committed_submissions(commit: &[u8]) -> Vec<Submission> {
    let info = serde_json::Deserializer::from_slice(commit)
        .into_iter::<serde_json::Value>()
        .flatten()
        .find_map(|action| action.get("commitInfo").cloned());
    let Some(info) = info else {
        return Vec::new();
    };
    match (info.get(SUBMISSIONS_METADATA), info.get(SUBMISSION_METADATA)) {
        (Some(list), _) => serde_json::from_value(list.clone()).unwrap_or_default(),
        (None, Some(one)) => serde_json::from_value(one.clone()).into_iter().collect(),
        (None, None) => Vec::new(),
    }
}

/// The ids of submissions.
pub(crate) fn submission_ids(submissions: &[Submission]) -> HashSet<String> {
    submissions.iter().map(|s| s.submission_id.clone()).collect()
}

/// The application id under which a submission's fact-table commit is recorded.
pub(crate) fn recorded_commit(submission: &Submission) -> String {
    format!("khoso.{}.{}", fact_table(submission.kind), submission.table_version)
}
