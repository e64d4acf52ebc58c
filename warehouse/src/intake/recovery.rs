//! Repair after a kill: a fact-table commit whose submissions were not recorded gets them recorded
//! by the next process that opens the warehouse.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};
use ingest::ReportKind;

use crate::store::Warehouse;
use crate::tables::rows::Submission;
use crate::tables::schemas::fact_table;
use crate::tables::submissions::{committed_submissions, submission_ids};
use crate::{Error, Result};

impl Warehouse {
    /// Repairs what a process killed mid-commit left (see below); a server calls it at start so
    /// that its first page already shows every committed file.
    pub async fn recover(&self) -> Result<()> {
        let _lock = self.lock().await?;
        self.recover_locked().await
    }

    pub(crate) async fn recover_locked(&self) -> Result<()> {
        if !self.recovered.load(Ordering::Acquire) {
            self.recover_unrecorded_commits().await?;
            self.recovered.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// A process killed between the fact-table commit and the submissions append leaves a table
    /// version without its submission row; the commit metadata holds the row, so the first
    /// commit of the next process writes it. On a disk, commits take turns, so only a table's
    /// last commit can be such; on an object store, processes of other machines commit in
    /// between, so the last [`COMMITS_RECOVERED`] are looked at.
    async fn recover_unrecorded_commits(&self) -> Result<()> {
        let recorded = submission_ids(&self.submissions().await?);
        for kind in ReportKind::ALL {
            let table = fact_table(kind);
            if let Some(latest) = self.latest_version(table).await? {
                self.record_commits(table, latest, &recorded).await?;
            }
        }
        Ok(())
    }

    /// Records the submissions of a table's last [`COMMITS_RECOVERED`] commits up to `version`
    /// that are not recorded yet: by a process killed between its commit and the append, or
    /// still between them (the append's application id keeps the two from both recording).
    /// `recorded` are the ids recorded already; true when it recorded any.
    pub(crate) async fn record_commits(&self, table: &str, version: u64, recorded: &HashSet<String>) -> Result<bool> {
        let mut repaired = false;
        let first = version.saturating_sub(COMMITS_RECOVERED - 1);
        let commits: Vec<(u64, Option<Vec<u8>>)> = futures::stream::iter(first..=version)
            .map(|version| async move {
                let path = format!("{}/{version:020}.json", self.layout.table_log(table));
                Ok::<_, Error>((version, self.layout.storage().read(&path).await?))
            })
            .buffered(8)
            .try_collect()
            .await?;
        for (version, commit) in commits {
            let unrecorded: Vec<Submission> = committed_submissions(commit.as_deref().unwrap_or_default())
                .into_iter()
                .filter(|s| !recorded.contains(&s.submission_id))
                .map(|s| Submission {
                    table_version: version as i64,
                    ..s
                })
                .collect();
            if !unrecorded.is_empty() {
                self.record_submissions(&unrecorded).await?;
                repaired = true;
            }
        }
        Ok(repaired)
    }
}

/// Fact-table commits the repair of unrecorded submissions looks back at (see
/// [`Warehouse::recover`]).
const COMMITS_RECOVERED: u64 = 20;
