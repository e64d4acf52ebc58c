//! The rows khoso writes itself: a submission, a KPI value, a decision, an audit event, a held
//! file. Each is a struct, defined once with [`stored_row!`]: its table's schema and its record
//! batches come from it (see [`crate::tables::stored`]).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use ingest::{ReportKind, SchoolYear};
use serde::{Deserialize, Serialize};

use crate::stored_row;
use crate::tables::stored::{Text, UtcMicros};

stored_row! {
/// One row of the `submissions` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub uploaded_at: i64 as UtcMicros,
    /// The version of the fact table this submission produced.
    pub table_version: i64,
    /// The submission of the same slice it replaced.
    pub supersedes: Option<String>,
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

impl Text for Status {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

stored_row! {
/// One KPI value: a unit of a dimension in a school year, with its target, status, trend and
/// coverage; a row of the `kpi_values` table (which adds its tags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Text for Verdict {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

stored_row! {
/// An admin's decision about a submission (or a held file), a row of `approvals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The submission (or held file) decided on.
    pub submission_id: String,
    /// Approved or returned.
    pub decision: Verdict,
    /// The admin.
    pub decided_by: String,
    /// When, in microseconds since the Unix epoch, UTC.
    pub decided_at: i64 as UtcMicros,
    /// What the province should know (why it was returned).
    pub comment: Option<String>,
}
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

stored_row! {
/// One event of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, in microseconds since the Unix epoch, UTC.
    pub at: i64 as UtcMicros,
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
        outcome: Result<usize, (&str, &str)>,
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

/// Name of the table of explanations.
pub const QUALITY_EXPLANATIONS: &str = "quality_explanations";

stored_row! {
/// Why a flagged figure is right, a row of `quality_explanations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The check that flagged it.
    pub check_id: String,
    /// The school year flagged.
    pub school_year: SchoolYear,
    /// The province the unit is in.
    pub province_code: String,
    /// The unit flagged (a school, a university, a province).
    pub unit: String,
    /// The flag's values when it was explained (`Flag::values` of `crate::quality::flags`).
    pub flag_values: String,
    /// Why the figure is right.
    pub comment: String,
    /// Who explained it.
    pub explained_by: String,
    /// When, in microseconds since the Unix epoch, UTC.
    pub explained_at: i64 as UtcMicros,
}
}
