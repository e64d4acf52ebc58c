//! The rows khoso writes itself: a submission, a KPI value, a decision, an audit event, a held
//! file. Each is a struct; its table's schema and its record batches come from it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use ingest::{ReportKind, SchoolYear};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The Arrow schema of the `submissions` table.
pub fn submissions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("province_code", DataType::Utf8, true),
        Field::new("school_year", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("file_name", DataType::Utf8, false),
        Field::new("uploaded_by", DataType::Utf8, false),
        Field::new(
            "uploaded_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("table_version", DataType::Int64, false),
        Field::new("supersedes", DataType::Utf8, true),
    ]))
}

/// One row of the `submissions` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Submission {
    /// Unique id.
    pub submission_id: String,
    /// Report kind.
    pub kind: ReportKind,
    /// Province (none for the national `content` report).
    pub province_code: Option<ingest::ProvinceCode>,
    /// School year.
    pub school_year: SchoolYear,
    /// Data rows.
    pub rows: i64,
    /// SHA-256 of the file as uploaded (its name in the archive).
    pub sha256: String,
    /// The file's name as uploaded (for people; never used as a path).
    pub file_name: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When, in microseconds since the Unix epoch, UTC.
    pub uploaded_at: i64,
    /// The version of the fact table this submission produced.
    pub table_version: i64,
    /// The submission of the same slice it replaced.
    pub supersedes: Option<String>,
}

impl Submission {
    /// One Arrow batch of submissions.
    pub fn to_batch(rows: &[Submission]) -> Result<RecordBatch> {
        let text =
            |f: fn(&Submission) -> Option<&str>| Arc::new(rows.iter().map(f).collect::<StringArray>()) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            text(|s| Some(&s.submission_id)),
            text(|s| Some(s.kind.as_str())),
            text(|s| s.province_code.as_deref()),
            Arc::new(
                rows.iter()
                    .map(|s| Some(s.school_year.to_string()))
                    .collect::<StringArray>(),
            ),
            Arc::new(rows.iter().map(|s| s.rows).collect::<Int64Array>()),
            text(|s| Some(&s.sha256)),
            text(|s| Some(&s.file_name)),
            text(|s| Some(&s.uploaded_by)),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|s| s.uploaded_at).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(rows.iter().map(|s| s.table_version).collect::<Int64Array>()),
            text(|s| s.supersedes.as_deref()),
        ];
        Ok(RecordBatch::try_new(submissions_schema(), columns)?)
    }
}

/// Where a value stands against its target; stored as its [`Status::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The target is reached.
    Met,
    /// At or above the straight line from the baseline value to the target.
    OnTrack,
    /// Below the line by no more than the KPI's tolerance.
    AtRisk,
    /// Further below the line.
    OffTrack,
    /// The target's year is judged and the target was not reached.
    Missed,
    /// Not met, and there is no baseline value to draw the line from.
    NoBaseline,
}

impl Status {
    /// Its name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::OnTrack => "on_track",
            Status::AtRisk => "at_risk",
            Status::OffTrack => "off_track",
            Status::Missed => "missed",
            Status::NoBaseline => "no_baseline",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One KPI value: a unit of a dimension in a school year, with its target, status, trend and
/// coverage; a row of the `kpi_values` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KpiRow {
    /// KPI id.
    pub kpi_id: String,
    /// Dimension name.
    pub dimension: String,
    /// Unit code.
    pub unit: String,
    /// School year.
    pub school_year: String,
    /// Sum of the numerator.
    pub numerator: Option<f64>,
    /// Sum of the denominator.
    pub denominator: Option<f64>,
    /// Value in the KPI's unit; none when it is withheld.
    pub value: Option<f64>,
    /// The people behind a value computed from records (none for a value from reports, and
    /// when withheld).
    pub people: Option<i64>,
    /// Whether the value, numerator, denominator and count are withheld because they describe
    /// fewer than [`MIN_GROUP`] people.
    pub withheld: bool,
    /// The target's school year.
    pub target_year: Option<String>,
    /// The target's value.
    pub target_value: Option<f64>,
    /// `>=` or `>`.
    pub comparison: Option<String>,
    /// The baseline→target line's value this year.
    pub line_value: Option<f64>,
    /// Where the value stands.
    pub status: Option<Status>,
    /// Target minus value.
    pub gap: Option<f64>,
    /// Trend at the target year.
    pub projected: Option<f64>,
    /// Year the trend meets the target.
    pub reach_year: Option<String>,
    /// Units that reported.
    pub reported: i64,
    /// Units expected.
    pub expected: Option<i64>,
    /// reported ÷ expected, at most 1.
    pub coverage: Option<f64>,
}

/// The Arrow schema of KPI values (and of the `kpi_values` table, which adds its tags).
pub fn kpi_values_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let number = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("kpi_id", DataType::Utf8, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("school_year", DataType::Utf8, false),
        number("numerator"),
        number("denominator"),
        number("value"),
        Field::new("people", DataType::Int64, true),
        Field::new("withheld", DataType::Boolean, false),
        text("target_year"),
        number("target_value"),
        text("comparison"),
        number("line_value"),
        text("status"),
        number("gap"),
        number("projected"),
        text("reach_year"),
        Field::new("reported", DataType::Int64, false),
        Field::new("expected", DataType::Int64, true),
        number("coverage"),
    ]))
}

/// KPI values as one Arrow batch.
pub fn kpi_batch(values: &[KpiRow]) -> Result<RecordBatch> {
    let text =
        |f: &dyn Fn(&KpiRow) -> Option<String>| Arc::new(values.iter().map(f).collect::<StringArray>()) as ArrayRef;
    let number =
        |f: &dyn Fn(&KpiRow) -> Option<f64>| Arc::new(values.iter().map(f).collect::<Float64Array>()) as ArrayRef;
    let columns = vec![
        text(&|v| Some(v.kpi_id.clone())),
        text(&|v| Some(v.dimension.clone())),
        text(&|v| Some(v.unit.clone())),
        text(&|v| Some(v.school_year.clone())),
        number(&|v| v.numerator),
        number(&|v| v.denominator),
        number(&|v| v.value),
        Arc::new(values.iter().map(|v| v.people).collect::<Int64Array>()) as ArrayRef,
        Arc::new(values.iter().map(|v| Some(v.withheld)).collect::<BooleanArray>()) as ArrayRef,
        text(&|v| v.target_year.clone()),
        number(&|v| v.target_value),
        text(&|v| v.comparison.clone()),
        number(&|v| v.line_value),
        text(&|v| v.status.map(|s| s.to_string())),
        number(&|v| v.gap),
        number(&|v| v.projected),
        text(&|v| v.reach_year.clone()),
        Arc::new(values.iter().map(|v| Some(v.reported)).collect::<Int64Array>()) as ArrayRef,
        Arc::new(values.iter().map(|v| v.expected).collect::<Int64Array>()) as ArrayRef,
        number(&|v| v.coverage),
    ];
    RecordBatch::try_new(kpi_values_schema(), columns).map_err(Error::from)
}

/// Name of the decisions table.
pub const APPROVALS: &str = "approvals";

/// What the ministry decides about a submission or a held file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Approved: a held file is committed.
    Approved,
    /// Returned to the province, with a comment.
    Returned,
}

impl Verdict {
    /// As stored in the `approvals` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Returned => "returned",
        }
    }
}

/// An admin's decision about a submission (or a held file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The submission (or held file) decided on.
    pub submission_id: String,
    /// Approved or returned.
    pub decision: Verdict,
    /// The admin.
    pub decided_by: String,
    /// When, in microseconds since the Unix epoch, UTC.
    pub decided_at: i64,
    /// What the province should know (why it was returned).
    pub comment: Option<String>,
}

/// The Arrow schema of `approvals`.
pub fn approvals_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("decision", DataType::Utf8, false),
        Field::new("decided_by", DataType::Utf8, false),
        Field::new(
            "decided_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("comment", DataType::Utf8, true),
    ]))
}

/// A province's file held until an admin approves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFile {
    /// Its id (also the name of its files under `DATA/pending/`).
    pub id: String,
    /// Report kind.
    pub kind: ReportKind,
    /// Province code.
    pub province_code: Option<ingest::ProvinceCode>,
    /// School year.
    pub school_year: SchoolYear,
    /// Data rows.
    pub rows: i64,
    /// SHA-256 of the file.
    pub sha256: String,
    /// The file's name as sent.
    pub file_name: String,
    /// Who sent it.
    pub uploaded_by: String,
    /// When, in microseconds since the Unix epoch, UTC.
    pub uploaded_at: i64,
    /// Where the file is in the warehouse (under `pending/`; a record file's rows are a folder).
    pub path: String,
    /// The submission a record file's stored rows are stamped with (none for a report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<String>,
}

/// A decision made now.
pub fn decision_now(submission_id: &str, decision: Verdict, by: &str, comment: Option<String>) -> Decision {
    Decision {
        submission_id: submission_id.to_string(),
        decision,
        decided_by: by.to_string(),
        decided_at: Utc::now().timestamp_micros(),
        comment: comment.filter(|c| !c.trim().is_empty()),
    }
}

/// Name of the audit table.
pub const AUDIT_LOG: &str = "audit_log";

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

pub(crate) fn audit_batch(events: &[AuditEvent]) -> Result<RecordBatch> {
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
