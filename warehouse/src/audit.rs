//! The audit log: every attempt to change or read the warehouse through the server — sign-ins
//! (and failures), dry runs, rejected and committed uploads, approvals and returns, SQL queries
//! from the web, the API and PostgreSQL clients — with who, when, what, the file's SHA-256 and
//! the outcome. An append-only Delta table, `audit_log`, queryable with SQL like the others.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::{SessionContext, col};
use deltalake::protocol::SaveMode;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::store::Warehouse;
use crate::tables::Submission;

/// Name of the audit table.
pub const AUDIT_LOG: &str = "audit_log";

/// How many one-row files the audit table may gather before they are compacted.
const AUDIT_FILES_BEFORE_COMPACTION: usize = 64;

/// One event of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, in microseconds since the Unix epoch, UTC.
    pub at: i64,
    /// The account's name; none when nobody signed in (a failed sign-in, a bad token).
    pub actor: Option<String>,
    /// The account's role.
    pub role: Option<String>,
    /// What was tried: `sign_in`, `sign_out`, `dry_run`, `upload`, `approve`, `return`, …
    pub action: String,
    /// Report kind, if the event is about a report.
    pub kind: Option<String>,
    /// Province code, if any.
    pub province_code: Option<String>,
    /// School year, if any.
    pub school_year: Option<String>,
    /// SHA-256 of the file, if a file was sent.
    pub sha256: Option<String>,
    /// How it ended: `ok`, `committed`, `unchanged`, `pending`, `rejected`, `forbidden`,
    /// `unauthorized`, `too_large`, `failed`; for queries also `bad_request`, `too_many`,
    /// `timed_out`, `out_of_memory`, `closed` (the client stopped reading).
    pub outcome: String,
    /// Anything else worth keeping: counts, the submission id, the first problem, a comment.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event happening now.
    pub fn now(action: &str, outcome: &str) -> Self {
        Self {
            at: Utc::now().timestamp_micros(),
            actor: None,
            role: None,
            action: action.to_string(),
            kind: None,
            province_code: None,
            school_year: None,
            sha256: None,
            outcome: outcome.to_string(),
            detail: None,
        }
    }

    /// When it happened.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.at)
    }

    /// The event of a commit (or of a file found unchanged): the submission's slice, file and
    /// id. [`Warehouse::reconcile_audit`] recognises a submission's event by the id in it.
    pub fn for_commit(submission: &Submission, action: &str, outcome: &str) -> Self {
        let mut event = Self::now(action, outcome);
        event.actor = Some(submission.uploaded_by.clone());
        event.kind = Some(submission.kind.as_str().to_string());
        event.province_code = submission.province_code.as_deref().map(str::to_string);
        event.school_year = Some(submission.school_year.to_string());
        event.sha256 = Some(submission.sha256.clone());
        event.detail = Some(format!(
            "submission {} ({} rows, table version {})",
            submission.submission_id, submission.rows, submission.table_version
        ));
        event
    }

    /// The event of a SQL query: who ran it, over which channel (`http`, `wire`), how long it
    /// took, the rows it returned or why it failed (an error code and message), and the first
    /// 300 characters of its text.
    pub fn for_query(
        actor: &str,
        role: &str,
        channel: &str,
        sql: &str,
        elapsed: std::time::Duration,
        outcome: std::result::Result<usize, (&str, &str)>,
    ) -> Self {
        let mut event = Self::now(
            "query",
            match outcome {
                Ok(_) => "ok",
                Err((code, _)) => code,
            },
        );
        event.actor = Some(actor.to_string());
        event.role = Some(role.to_string());
        let text: String = sql.chars().take(300).collect();
        let millis = elapsed.as_millis();
        event.detail = Some(match outcome {
            Ok(rows) => format!("{rows} rows in {millis} ms ({channel}): {text}"),
            Err((_, message)) => format!("failed after {millis} ms ({channel}; {message}): {text}"),
        });
        event
    }
}

/// The Arrow schema of `audit_log`.
pub fn audit_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("actor", true),
        text("role", true),
        text("action", false),
        text("kind", true),
        text("province_code", true),
        text("school_year", true),
        text("sha256", true),
        text("outcome", false),
        text("detail", true),
    ]))
}

fn to_batch(events: &[AuditEvent]) -> Result<RecordBatch> {
    let text = |f: fn(&AuditEvent) -> Option<&str>| Arc::new(events.iter().map(f).collect::<StringArray>()) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(events.iter().map(|e| e.at).collect::<Vec<_>>()).with_timezone("UTC")),
        text(|e| e.actor.as_deref()),
        text(|e| e.role.as_deref()),
        text(|e| Some(&e.action)),
        text(|e| e.kind.as_deref()),
        text(|e| e.province_code.as_deref()),
        text(|e| e.school_year.as_deref()),
        text(|e| e.sha256.as_deref()),
        text(|e| Some(&e.outcome)),
        text(|e| e.detail.as_deref()),
    ];
    Ok(RecordBatch::try_new(audit_schema(), columns)?)
}

impl Warehouse {
    /// Appends events to the audit log (one transaction; serialised across processes by the
    /// audit lock, so concurrent writers never conflict).
    pub async fn record_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _lock = self.storage().lock("audit.lock").await?;
        self.create_table(AUDIT_LOG, audit_schema(), Vec::new()).await?;
        let table = self
            .table(AUDIT_LOG, None)
            .await?
            .write(vec![to_batch(events)?])
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
        self.create_table(AUDIT_LOG, audit_schema(), Vec::new()).await?;
        let ctx = SessionContext::new();
        let table = self.table(AUDIT_LOG, None).await?;
        table.update_datafusion_session(&ctx.state())?;
        let frame = ctx.read_table(crate::scan::DeltaFiles::provider(&table)?)?;
        let columns = audit_schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "at" => datafusion::prelude::cast(col("at"), DataType::Int64).alias("at"),
                name => col(name),
            })
            .collect::<Vec<_>>();
        let batches = frame
            .select(columns)?
            .sort(vec![col("at").sort(true, true)])?
            .collect()
            .await?;
        crate::store::rows_of(&batches, AUDIT_LOG)
    }
}
