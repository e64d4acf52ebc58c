//! The audit log: every attempt to change or read the warehouse through the server — sign-ins
//! (and failures), dry runs, rejected and committed uploads, approvals and returns, SQL queries
//! from the web, the API and PostgreSQL clients — with who, when, what, the file's SHA-256 and
//! the outcome. An append-only Delta table, `audit_log`, queryable with SQL like the others.

use chrono::Utc;
use deltalake::protocol::SaveMode;

use crate::Result;
use crate::store::Warehouse;
use crate::tables::rows::{AUDIT_LOG, AuditEvent};
use crate::tables::stored::StoredRow;

/// How many one-row files the audit table may gather before they are compacted.
const AUDIT_FILES_BEFORE_COMPACTION: usize = 64;
impl Warehouse {
    /// Appends events to the audit log (one transaction; serialised across processes by the
    /// audit lock, so concurrent writers never conflict).
    pub async fn record_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _lock = self.storage().lock("audit.lock").await?;
        self.create_table(AUDIT_LOG, AuditEvent::schema(), Vec::new()).await?;
        let table = self
            .table(AUDIT_LOG, None)
            .await?
            .write(vec![AuditEvent::to_batch(events)?])
            .with_save_mode(SaveMode::Append)
            .await?;
        if table.get_file_uris()?.count() > AUDIT_FILES_BEFORE_COMPACTION {
            table.optimize().await?;
        }
        Ok(())
    }

    /// Writes the missing event of every committed submission the log does not mention: a
    /// process stopped (killed, crashed) between its commit and its audit event leaves such a
    /// gap, and this closes it at the next start, so every committed file has its event.
    pub async fn reconcile_audit(&self) -> Result<usize> {
        let events = self.audit_events().await?;
        // On an object store, another machine may be between a commit and its event: only
        // submissions older than that are taken for a stopped process's.
        let settled = match self.storage().is_shared() {
            true => (Utc::now() - chrono::Duration::minutes(10)).timestamp_micros(),
            false => i64::MAX,
        };
        let missing: Vec<AuditEvent> = self
            .submissions()
            .await?
            .iter()
            .filter(|s| s.uploaded_at < settled)
            .filter(|s| {
                let mention = format!("submission {} ", s.submission_id);
                !events
                    .iter()
                    .any(|e| e.detail.as_deref().is_some_and(|d| d.contains(&mention)))
            })
            .map(|s| {
                let mut event = AuditEvent::for_commit(s, "upload", "committed");
                if let Some(detail) = &mut event.detail {
                    detail.push_str(
                        "; recorded at start-up: the process that committed it stopped before writing this event",
                    );
                }
                event
            })
            .collect();
        self.record_audit(&missing).await?;
        Ok(missing.len())
    }

    /// Every event of the audit log, oldest first.
    pub async fn audit_events(&self) -> Result<Vec<AuditEvent>> {
        self.create_table(AUDIT_LOG, AuditEvent::schema(), Vec::new()).await?;
        self.read_rows(AUDIT_LOG, None, None, &["at"]).await
    }
}
