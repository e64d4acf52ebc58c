//! Review of submissions by the ministry. An admin approves a submission, or returns it with a
//! comment the province sees; decisions are rows of the `approvals` Delta table (the latest
//! decision about a submission is its state).
//!
//! When approval is required, a province's file does not reach the fact tables when it is
//! sent: it is held in `DATA/pending/` (the file and a JSON note), and committed only when an
//! admin approves it — so a returned file leaves the slice on its last approved version.

use std::path::Path;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use crate::store::Warehouse;
use crate::tables::rows::{APPROVALS, Decision, HeldFile};
use crate::tables::stored::StoredRow;
use crate::{Error, Result};

impl Warehouse {
    /// Records a decision.
    pub async fn record_decision(&self, decision: &Decision) -> Result<()> {
        let _lock = self.storage().lock("approvals.lock").await?;
        self.create_table(APPROVALS, Decision::schema(), Vec::new()).await?;
        let batch = Decision::to_batch(std::slice::from_ref(decision))?;
        // One decision per file, whichever web node two admins click on: the append carries the
        // file's application id, looked up first, and Delta refuses a second append of it.
        let decided = || Error::Refused(format!("{} has been decided on already", decision.submission_id));
        let table = self.table(APPROVALS, None).await?;
        let app_id = format!("khoso.decision.{}", decision.submission_id);
        let known = table
            .snapshot()?
            .transaction_version(table.log_store().as_ref(), &app_id)
            .await?;
        if known.is_some() {
            return Err(decided());
        }
        let written = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(
                CommitProperties::default()
                    .with_application_transaction(deltalake::kernel::Transaction::new(app_id, 0)),
            )
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if crate::store::is_recorded_already(&e) => Err(decided()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every decision, oldest first.
    pub async fn decisions(&self) -> Result<Vec<Decision>> {
        self.create_table(APPROVALS, Decision::schema(), Vec::new()).await?;
        self.read_rows(APPROVALS, None, None, &["decided_at"]).await
    }

    /// Holds a validated file until an admin approves it; copies the file (the caller keeps
    /// its own).
    pub(crate) async fn hold(
        &self,
        report: &ingest::ValidatedReport,
        file: &Path,
        upload: &crate::Upload,
    ) -> Result<HeldFile> {
        let storage = self.storage();
        let dir = self.layout().pending();
        let id = uuid::Uuid::new_v4().to_string();
        let path = match &report.stored {
            // A record file waits as its pseudonymised rows, never as the identifiers sent.
            Some(stored) => {
                let path = format!("{dir}/{id}.parquet");
                for part in crate::tables::data_files::parquet_files(&stored.folder)? {
                    let name = part.file_name().and_then(|n| n.to_str()).unwrap_or("part.parquet");
                    storage.move_in(&part, &format!("{path}/{name}")).await?;
                }
                std::fs::remove_dir_all(&stored.folder).ok();
                path
            }
            None => {
                let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("csv");
                let path = format!("{dir}/{id}.{extension}");
                storage.upload(file, &path).await?;
                path
            }
        };
        let held = HeldFile {
            id: id.clone(),
            kind: report.kind,
            province_code: report.province_code.clone(),
            school_year: report.school_year,
            rows: report.rows as i64,
            sha256: upload.sha256.clone(),
            file_name: upload.file_name.clone(),
            uploaded_by: upload.uploaded_by.clone(),
            uploaded_at: upload.uploaded_at.timestamp_micros(),
            path,
            submission_id: report.stored.as_ref().map(|stored| stored.submission_id.clone()),
        };
        let note = serde_json::to_vec_pretty(&held)?;
        // The note last: a held file is listed only once all of it is there.
        storage.write(&format!("{dir}/{id}.json"), note).await?;
        Ok(held)
    }

    /// Every held file, oldest first.
    pub async fn held_files(&self) -> Result<Vec<HeldFile>> {
        let storage = self.storage();
        let mut held = Vec::new();
        for path in storage.list(self.layout().pending()).await? {
            if !path.ends_with(".json") || path.matches('/').count() != 1 {
                continue;
            }
            if let Some(mut note) = storage.read_json::<HeldFile>(&path).await? {
                // A note of an earlier khoso names the file by its path on disk.
                if let Some(folder) = storage.folder_of_this_machine()
                    && let Ok(relative) = Path::new(&note.path).strip_prefix(folder)
                {
                    note.path = relative.to_string_lossy().into_owned();
                }
                held.push(note);
            }
        }
        held.sort_by_key(|h| h.uploaded_at);
        Ok(held)
    }

    /// Brings a held file to this machine, under `into` (a file, or a folder of a record file's
    /// rows), to be committed from there.
    pub(crate) async fn fetch_held(&self, held: &HeldFile, into: &Path) -> Result<()> {
        let storage = self.storage();
        match held.submission_id {
            Some(_) => {
                std::fs::create_dir_all(into)?;
                for part in storage.list(&held.path).await? {
                    let name = part.rsplit('/').next().unwrap_or(&part);
                    storage.download(&part, &into.join(name)).await?;
                }
            }
            None => storage.download(&held.path, into).await?,
        }
        Ok(())
    }

    /// Forgets a held file (after it was committed or returned).
    pub async fn release(&self, held: &HeldFile) -> Result<()> {
        let storage = self.storage();
        storage
            .delete(&format!("{}/{}.json", self.layout().pending(), held.id))
            .await?;
        match held.submission_id {
            Some(_) => storage.delete_folder(&held.path).await,
            None => storage.delete(&held.path).await,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::rows::{Verdict, decision_now};

    #[tokio::test]
    async fn a_file_is_decided_on_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let warehouse = Warehouse::init(dir.path()).await.expect("warehouse");
        let approve = decision_now("held-1", Verdict::Approved, "bo-gd", None);
        warehouse.record_decision(&approve).await.expect("first decision");
        let again = decision_now("held-1", Verdict::Returned, "bo-gd-2", Some("sai số liệu".into()));
        let refused = warehouse.record_decision(&again).await.expect_err("a second decision");
        assert!(matches!(refused, Error::Refused(_)), "{refused}");
        let other = decision_now("held-2", Verdict::Approved, "bo-gd", None);
        warehouse.record_decision(&other).await.expect("another file");
        let decisions = warehouse.decisions().await.expect("decisions");
        let ids: Vec<&str> = decisions.iter().map(|d| d.submission_id.as_str()).collect();
        assert_eq!(ids, ["held-1", "held-2"]);
        assert_eq!(decisions[0].decided_by, "bo-gd");
    }
}
