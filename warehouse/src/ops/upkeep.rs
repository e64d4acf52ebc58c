//! Table upkeep (`khoso maintain`): every upload adds small files, and a warehouse run for years
//! would read thousands of them for one query. Upkeep compacts each partition's small files into
//! files of a target size (Delta's optimize: the same rows, a new version), writes a checkpoint
//! of each table's log (a reader loads one Parquet file instead of replaying every commit), and,
//! only when asked, removes the files no version within the retention needs (vacuum).
//!
//! By default nothing is removed from the source tables and the ledgers: published figures,
//! slice histories and the audit refer to every version, and time travel to any of them keeps
//! working. With a retention of N days, files replaced more than N days ago go, and versions
//! older than that can no longer be read. The KPI values, rewritten whole at every refresh and
//! recomputable from the source tables' versions, keep their replaced copies a day.

use std::num::NonZeroU64;

use deltalake::DeltaTable;
use deltalake::checkpoints::create_checkpoint;
use deltalake::operations::vacuum::VacuumMode;

use crate::Result;
use crate::store::Warehouse;
use crate::tables::rows::AuditEvent;
use crate::tables::schemas::KPI_VALUES;

/// What upkeep does.
#[derive(Debug, Clone)]
pub struct Upkeep {
    /// The size compacted files aim at.
    pub target_bytes: NonZeroU64,
    /// Files replaced longer ago than this are removed; none when not given.
    pub retain: Option<chrono::Duration>,
}

impl Upkeep {
    /// The compacted files' size when not given: large enough that a year of a province is a
    /// file or two, small enough to be read in parallel.
    pub const DEFAULT_TARGET_MB: u64 = 128;

    /// Compacts a table, writes its checkpoint and, with a retention, vacuums it; returns the
    /// table at its new version. A compaction that lost to another process's commit is tried
    /// again over the latest version.
    async fn apply(&self, mut table: DeltaTable) -> Result<DeltaTable> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        table = loop {
            match table.clone().optimize().with_target_size(self.target_bytes).await {
                Ok((compacted, _)) => break compacted,
                Err(e) if attempt < ATTEMPTS && is_conflict(&e) => {
                    tracing::info!(table = %table.table_url(), attempt, "compaction met another commit; again");
                    table.update_state().await?;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        create_checkpoint(&table, None).await?;
        if let Some(retain) = self.retain {
            let (vacuumed, _) = table
                .vacuum()
                .with_retention_period(retain)
                .with_enforce_retention_duration(false)
                .with_mode(VacuumMode::Full)
                .await?;
            table = vacuumed;
        }
        Ok(table)
    }
}

/// A number of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Files {
    /// How many.
    pub count: usize,
    /// Their bytes together.
    pub bytes: u64,
}

impl Files {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What upkeep did to one table.
#[derive(Debug, Clone)]
pub struct TableUpkeep {
    /// The table.
    pub table: String,
    /// Its latest version's data files, before and after.
    pub active_before: Files,
    /// See `active_before`.
    pub active_after: Files,
    /// Every data file kept for it (its history included), before and after.
    pub stored_before: Files,
    /// See `stored_before`.
    pub stored_after: Files,
    /// The version upkeep left it at (compaction and vacuum commit versions of their own).
    pub version: u64,
}

/// One table as an admin sees it: its version, when it was last written, its files.
#[derive(Debug, Clone)]
pub struct TableStatus {
    /// The table.
    pub table: String,
    /// Its latest version.
    pub version: u64,
    /// When that version was committed.
    pub committed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The data files that version reads.
    pub active: Files,
}

impl Warehouse {
    /// Every Delta table's latest version, its commit time and its data files.
    pub async fn table_status(&self) -> Result<Vec<TableStatus>> {
        let mut tables = Vec::new();
        for entry in crate::tables::catalogue::delta_tables() {
            let Some(version) = self.latest_version(entry.name).await? else {
                continue;
            };
            let table = self.table(entry.name, Some(version)).await?;
            let last = futures::StreamExt::next(&mut table.history(Some(1)))
                .await
                .transpose()?;
            let committed_at = last
                .and_then(|commit| commit.timestamp)
                .and_then(chrono::DateTime::from_timestamp_millis);
            tables.push(TableStatus {
                table: entry.name.to_string(),
                version,
                committed_at,
                active: active_files(&table)?,
            });
        }
        Ok(tables)
    }

    /// Runs upkeep on every Delta table of the warehouse, under the commit lock (commits of
    /// this machine wait; on an object store, a commit of another machine that touches the same
    /// files makes the compaction try again).
    pub async fn maintain(&self, upkeep: &Upkeep) -> Result<Vec<TableUpkeep>> {
        let _lock = self.lock().await?;
        let mut done = Vec::new();
        for entry in crate::tables::catalogue::delta_tables() {
            let Some(_) = self.latest_version(entry.name).await? else {
                continue;
            };
            done.push(self.maintain_table(entry.name, upkeep).await?);
        }
        let sum = |files: fn(&TableUpkeep) -> Files| done.iter().map(|t| files(t).count).sum::<usize>();
        let mut event = AuditEvent::now("maintain", "ok");
        event.detail = Some(format!(
            "{} tables: {} data files read by queries before, {} after; {} files kept, {} before",
            done.len(),
            sum(|t| t.active_before),
            sum(|t| t.active_after),
            sum(|t| t.stored_after),
            sum(|t| t.stored_before),
        ));
        self.record_audit(&[event]).await?;
        Ok(done)
    }

    async fn maintain_table(&self, name: &str, upkeep: &Upkeep) -> Result<TableUpkeep> {
        let folder = format!("tables/{name}");
        let stored_before = self.stored_files(&folder).await?;
        let table = self.table(name, None).await?;
        let active_before = active_files(&table)?;
        let table = match name {
            // The KPI values are rewritten whole at each refresh and recomputed from the source
            // tables' versions: their replaced copies are kept a day (for readers of the last
            // one), not for ever.
            KPI_VALUES => {
                let day = chrono::Duration::days(1);
                let retain = Some(upkeep.retain.map_or(day, |retain| retain.min(day)));
                Upkeep {
                    retain,
                    ..upkeep.clone()
                }
                .apply(table)
                .await?
            }
            _ => upkeep.apply(table).await?,
        };
        Ok(TableUpkeep {
            table: name.to_string(),
            active_before,
            active_after: active_files(&table)?,
            stored_before,
            stored_after: self.stored_files(&folder).await?,
            version: self.latest_version(name).await?.unwrap_or_default(),
        })
    }

    /// The data files kept under a table's folder (its log apart).
    async fn stored_files(&self, folder: &str) -> Result<Files> {
        let mut files = Files::default();
        for (path, bytes) in self.storage().sizes(folder).await? {
            if !path.contains("/_delta_log/") {
                files.add(bytes);
            }
        }
        Ok(files)
    }
}

/// The data files of a table's loaded version.
fn active_files(table: &DeltaTable) -> Result<Files> {
    let mut files = Files::default();
    for file in table.snapshot()?.log_data().iter() {
        files.add(u64::try_from(file.size()).unwrap_or_default());
    }
    Ok(files)
}

/// Whether a failed commit lost to another process's (and may be tried again).
fn is_conflict(error: &deltalake::DeltaTableError) -> bool {
    matches!(
        error,
        deltalake::DeltaTableError::Transaction { .. } | deltalake::DeltaTableError::VersionAlreadyExists(_)
    )
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::tables::scan::DeltaFiles;

    async fn answer(table: &DeltaTable, sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
        ctx.register_table("t", DeltaFiles::provider(table)?)?;
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    const ROWS: &str = "SELECT school_year, province_code, pupils, name FROM t ORDER BY 1, 2, 3";

    #[tokio::test]
    async fn compaction_keeps_every_version_and_a_retention_removes_what_only_old_ones_need() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut table = crate::tables::scan::tests::sample(dir.path()).await;
        // A province's year sent in three files: three small files in one partition.
        for first in [900, 950] {
            table = table
                .write(vec![crate::tables::scan::tests::rows(
                    "2023-2024",
                    &["01", "01"],
                    first,
                )])
                .with_save_mode(deltalake::protocol::SaveMode::Append)
                .await
                .expect("append");
        }
        let first = table.version().expect("version");
        let latest = answer(&table, ROWS).await.expect("latest");
        let mut old = table.clone();
        old.load_version(0).await.expect("version 0");
        let at_first = answer(&old, ROWS).await.expect("version 0");
        let before = active_files(&table).expect("files");

        // Compaction and a checkpoint: fewer files, a new version, the same rows in every version.
        let keep_all = Upkeep {
            target_bytes: NonZeroU64::new(64 * 1024 * 1024).expect("size"),
            retain: None,
        };
        let compacted = keep_all.apply(table).await.expect("upkeep");
        assert!(compacted.version() > Some(first));
        let after = active_files(&compacted).expect("files");
        assert!(after.count < before.count, "{before:?} → {after:?}");
        assert_eq!(answer(&compacted, ROWS).await.expect("latest"), latest);
        let mut old = compacted.clone();
        old.load_version(0).await.expect("version 0");
        assert_eq!(answer(&old, ROWS).await.expect("version 0"), at_first);
        let checkpoint = format!("{:020}.checkpoint.parquet", compacted.version().expect("version"));
        assert!(dir.path().join("_delta_log").join(checkpoint).exists());

        // A retention of nothing: only the latest version's files stay, and it reads the same.
        let keep_none = Upkeep {
            retain: Some(chrono::Duration::zero()),
            ..keep_all
        };
        let vacuumed = keep_none.apply(compacted).await.expect("vacuum");
        assert_eq!(answer(&vacuumed, ROWS).await.expect("latest"), latest);
        let parquet = walkdir(dir.path());
        assert_eq!(
            parquet,
            active_files(&vacuumed).expect("files").count,
            "files left on disk"
        );
        let mut old = vacuumed.clone();
        old.load_version(0).await.expect("the log is kept");
        assert!(answer(&old, ROWS).await.is_err(), "version 0's files are gone");
    }

    /// The Parquet files under a folder.
    fn walkdir(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .expect("folder")
            .flatten()
            .map(|entry| match entry.path() {
                p if p.is_dir() && !p.ends_with("_delta_log") => walkdir(&p),
                p => usize::from(p.extension().is_some_and(|e| e == "parquet")),
            })
            .sum()
    }
}
