//! The commit: validated reports become new versions of their fact tables, one slice each, under
//! the commit lock; a commit that loses its slice to another process leaves nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::{Expr, col, lit};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};
use ingest::{ReportKind, ValidatedReport};

use crate::store::{Warehouse, is_conflict};
use crate::tables::data_files;
use crate::tables::rows::Submission;
use crate::tables::schemas::{fact_table, partition_columns, report_batch};
use crate::tables::submissions::{SUBMISSIONS_METADATA, submission_ids};

use crate::{Error, Result};

impl Warehouse {
    /// Commits validated reports, each with its file and upload: archives each file by its
    /// SHA-256, replaces each report's (kind, province, school year) slice, and records a
    /// submission per file. A file whose bytes its slice already holds changes nothing.
    ///
    /// The files of one table are written in one Delta transaction (two files of the same
    /// slice in one batch are committed one after the other, the later last), then their
    /// submissions in one append: a batch of 458 files is a few commits, not a thousand.
    ///
    /// One commit runs at a time per warehouse, across processes (a file lock); a crash at any
    /// point leaves the previous table versions intact and readable, and the submissions of a
    /// written table version are recorded by the next process (see
    /// [`Warehouse::recover`]).
    pub(crate) async fn commit_batch(
        &self,
        files: &[(&ValidatedReport, &Path, &Upload)],
    ) -> Result<Vec<CommitOutcome>> {
        let _lock = self.lock().await?;
        self.recover_locked().await?;
        // Each table is written over the version it is at now, once every commit up to it has
        // its submissions recorded: the slices' current submissions (what a file supersedes)
        // are those of that version, and a commit of another process after it that touches the
        // same slice makes this one fail (on disk the lock keeps others out anyway).
        let mut bases: HashMap<&'static str, u64> = HashMap::new();
        let mut submissions = self.submissions().await?;
        let recorded = submission_ids(&submissions);
        let mut repaired = false;
        for (report, ..) in files {
            let table = fact_table(report.kind);
            if !bases.contains_key(table) {
                let version = self
                    .latest_version(table)
                    .await?
                    .ok_or_else(|| Error::Internal(format!("table {table} has no commit")))?;
                repaired |= self.record_commits(table, version, &recorded).await?;
                bases.insert(table, version);
            }
        }
        if repaired {
            submissions = self.submissions().await?;
        }
        let mut current: HashMap<(ReportKind, ingest::SchoolYear, Option<ingest::ProvinceCode>), Submission> =
            HashMap::new();
        for submission in submissions {
            let slice = (
                submission.kind,
                submission.school_year,
                submission.province_code.clone(),
            );
            current.insert(slice, submission);
        }
        // Rounds: the n-th file of a slice in the batch goes in round n.
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<(ReportKind, ingest::SchoolYear, Option<ingest::ProvinceCode>), usize> = HashMap::new();
        for (index, (report, ..)) in files.iter().enumerate() {
            let times = seen
                .entry((report.kind, report.school_year, report.province_code.clone()))
                .or_default();
            if rounds.len() <= *times {
                rounds.push(Vec::new());
            }
            rounds[*times].push(index);
            *times += 1;
        }
        let mut outcomes: Vec<Option<CommitOutcome>> = vec![None; files.len()];
        for round in rounds {
            let mut by_table: BTreeMap<&'static str, Vec<(usize, Submission, Rows)>> = BTreeMap::new();
            for index in round {
                let (report, file, upload) = files[index];
                let slice = (report.kind, report.school_year, report.province_code.clone());
                let previous = current.get(&slice);
                if let Some(previous) = previous
                    && previous.sha256 == upload.sha256
                {
                    outcomes[index] = Some(CommitOutcome::Unchanged(previous.clone()));
                    continue;
                }
                let submission = Submission {
                    submission_id: match &report.stored {
                        Some(stored) => stored.submission_id.clone(),
                        None => uuid::Uuid::new_v4().to_string(),
                    },
                    kind: report.kind,
                    province_code: report.province_code.clone(),
                    school_year: report.school_year,
                    rows: report.rows as i64,
                    sha256: upload.sha256.clone(),
                    file_name: upload.file_name.clone(),
                    uploaded_by: upload.uploaded_by.clone(),
                    uploaded_at: upload.uploaded_at.timestamp_micros(),
                    table_version: -1,
                    supersedes: previous.map(|c| c.submission_id.clone()),
                };
                let rows = self.rows_to_write(report, file, &submission).await?;
                by_table
                    .entry(fact_table(report.kind))
                    .or_default()
                    .push((index, submission, rows));
            }
            let mut recorded = Vec::new();
            for (table, writes) in by_table {
                let base = bases.get(table).copied();
                let version = match self.write_slices(table, base, &writes).await {
                    Ok(version) => version,
                    Err(Error::Delta(e)) if is_conflict(&e) => return Err(self.lost_race(table, &writes).await),
                    Err(e) => return Err(e),
                };
                bases.insert(table, version as u64);
                for (index, mut submission, _) in writes {
                    submission.table_version = version;
                    current.insert(
                        (
                            submission.kind,
                            submission.school_year,
                            submission.province_code.clone(),
                        ),
                        submission.clone(),
                    );
                    outcomes[index] = Some(CommitOutcome::Committed(submission.clone()));
                    recorded.push(submission);
                }
            }
            if !recorded.is_empty() {
                self.record_submissions(&recorded).await?;
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| Error::Internal("a file of the batch was not committed".into())))
            .collect()
    }

    /// A file's rows to write, archiving the file: a record file's data files, written when it
    /// was read, are linked into the archive (its copy of pseudonyms, never the identifiers sent)
    /// and moved into the table's folder; a report's own bytes are archived as they are.
    async fn rows_to_write(&self, report: &ValidatedReport, file: &Path, submission: &Submission) -> Result<Rows> {
        match &report.stored {
            Some(stored) => {
                let table = fact_table(report.kind);
                let partition =
                    data_files::slice_partition(report.kind, report.school_year, report.province_code.as_deref());
                let added = data_files::place(
                    self.layout.storage(),
                    &stored.folder,
                    &stored.submission_id,
                    &format!("tables/{table}"),
                    &partition,
                )
                .await?;
                std::fs::remove_dir_all(&stored.folder).ok();
                // The archive keeps the table's files (a hard link on disk, a copy on S3).
                let archived = self.archived_records(&submission.sha256)?;
                for action in &added {
                    if let deltalake::kernel::Action::Add(add) = action {
                        let name = add.path.rsplit('/').next().unwrap_or(&add.path);
                        let from = format!("tables/{table}/{}", add.path);
                        self.layout.storage().copy(&from, &format!("{archived}/{name}")).await?;
                    }
                }
                Ok(Rows::Files(added))
            }
            None if report.kind.holds_people() => Err(Error::Internal(format!(
                "a {} file reached the commit without its pseudonymised rows",
                report.kind
            ))),
            None => {
                self.archive(file, &submission.sha256).await?;
                Ok(Rows::Batch(report_batch(report, &submission.submission_id)?))
            }
        }
    }

    /// Replaces the slices of `writes` in one transaction of a table, recording their
    /// submissions in its commit; returns the new version.
    async fn write_slices(&self, table: &str, base: Option<u64>, writes: &[(usize, Submission, Rows)]) -> Result<i64> {
        let kind = writes
            .first()
            .map(|(_, s, _)| s.kind)
            .ok_or_else(|| Error::Internal("nothing to write".into()))?;
        let submissions: Vec<&Submission> = writes.iter().map(|(_, s, _)| s).collect();
        let metadata = serde_json::to_value(&submissions)?;
        let commit_properties =
            CommitProperties::default().with_metadata([(SUBMISSIONS_METADATA.to_string(), metadata)]);
        let (mut batches, mut added) = (Vec::new(), Vec::new());
        for (_, _, rows) in writes {
            match rows {
                Rows::Batch(batch) => batches.push(batch.clone()),
                Rows::Files(actions) => added.extend(actions.iter().cloned()),
            }
        }
        let delta = self.table(table, base).await?;
        if !added.is_empty() {
            if !batches.is_empty() {
                return Err(Error::Internal(format!("{table}: rows both in memory and in files")));
            }
            let slices: Vec<data_files::PartitionValues> = submissions
                .iter()
                .map(|s| data_files::slice_partition(kind, s.school_year, s.province_code.as_deref()))
                .collect();
            let mut actions = data_files::removals(&delta, &slices).await?;
            actions.extend(added);
            let predicate = slices
                .iter()
                .map(|slice| {
                    let terms: Vec<String> = slice
                        .iter()
                        .map(|(name, value)| format!("{name} = '{value}'"))
                        .collect();
                    format!("({})", terms.join(" AND "))
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let operation = DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by: Some(partition_columns(kind).iter().map(|c| c.to_string()).collect()),
                predicate: Some(predicate),
            };
            let snapshot = delta.snapshot()?;
            let committed = CommitBuilder::from(commit_properties)
                .with_actions(actions)
                .build(Some(snapshot), delta.log_store(), operation)
                .await?;
            return Ok(committed.version() as i64);
        }
        let slices = submissions
            .iter()
            .map(|submission| {
                let mut slice = col("school_year").eq(lit(submission.school_year.to_string()));
                if let Some(code) = &submission.province_code {
                    slice = slice.and(col("province_code").eq(lit(code.as_str())));
                }
                slice
            })
            .reduce(Expr::or)
            .ok_or_else(|| Error::Internal("nothing to write".into()))?;
        let written = delta
            .write(batches)
            .with_writer_properties(crate::tables::schemas::writer_properties(kind))
            .with_save_mode(SaveMode::Overwrite)
            // A renamed column's former column is in the table, not in new rows: null there.
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .with_replace_where(slices)
            .with_partition_columns(partition_columns(kind).iter().copied())
            .with_commit_properties(commit_properties)
            .await?;
        Ok(written.version().unwrap_or(0) as i64)
    }

    /// Commits one validated report (see [`Warehouse::commit_batch`]).
    pub(crate) async fn commit(&self, report: &ValidatedReport, file: &Path, upload: &Upload) -> Result<CommitOutcome> {
        let mut outcomes = self.commit_batch(&[(report, file, upload)]).await?;
        outcomes
            .pop()
            .ok_or_else(|| Error::Internal("the commit has no outcome".into()))
    }

    /// What a commit that lost the race for its slice answers: another process committed a
    /// file of the same slice in between. Its data files, written for nothing, go.
    async fn lost_race(&self, table: &str, writes: &[(usize, Submission, Rows)]) -> Error {
        for (_, _, rows) in writes {
            if let Rows::Files(actions) = rows {
                for action in actions {
                    if let deltalake::kernel::Action::Add(add) = action {
                        let path = format!("tables/{table}/{}", add.path);
                        self.layout.storage().delete(&path).await.ok();
                    }
                }
            }
        }
        let slices: Vec<String> = writes
            .iter()
            .map(|(_, s, _)| {
                let province = s
                    .province_code
                    .as_deref()
                    .map(|p| format!(", province {p}"))
                    .unwrap_or_default();
                format!("{} {}{province}", s.kind, s.school_year)
            })
            .collect();
        Error::Refused(format!(
            "Một tệp khác của cùng phần dữ liệu ({slices}) vừa được ghi cùng lúc; tệp này chưa được ghi. \
             Hãy xem phần dữ liệu hiện có rồi gửi lại nếu tệp này vẫn đúng. / Another file of the same \
             slice ({slices}) was committed at the same moment; this one was not. Look at what the slice \
             holds now, and send this file again if it is still the right one.",
            slices = slices.join("; ")
        ))
    }
}

/// The rows a commit writes: a batch in memory, or the actions adding the data files a record
/// file's rows were written to.
enum Rows {
    Batch(RecordBatch),
    Files(Vec<deltalake::kernel::Action>),
}

/// Who uploaded a file, and when.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file's name as the user knows it (kept for people; never used as a path).
    pub file_name: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// The file's SHA-256, hashed once when it was received.
    pub sha256: String,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new table version now holds the slice.
    Committed(Submission),
    /// The slice already holds exactly these bytes: nothing changed.
    Unchanged(Submission),
}
