//! The one way from a file to a table. Given files (their kind and what the sender says of
//! their school year and province), who sends them, what they want and the time, the intake
//! reads and validates each (off the async threads), hashes it once, previews what it would
//! change, and then commits it, holds it for the ministry's approval, or discards it — and
//! writes the decision and the audit event itself. `khoso ingest`, `khoso init --sample`, the
//! upload page and API, and the review page and API all call it; none of them orders the steps.
//!
//! A batch is one call: every file is validated before any is committed, and one file with
//! problems stops them all.
//!
//! To add a report kind: its schema in `ingest`, its table in [`crate::tables::catalogue`]; the intake
//! needs nothing more.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use ingest::{Problem, ReadOptions, ReportKind, SliceHint, StoredRows, ValidatedReport};

use crate::intake::commit::{CommitOutcome, Upload};
use crate::intake::preview::Preview;
use crate::people::rights::Role;
use crate::people::rights::{Action, Actor, Via};
use crate::quality::checks::CheckKind;
use crate::store::Warehouse;
use crate::tables::rows::Submission;
use crate::tables::rows::{AuditEvent, HeldFile, Verdict, decision_now};
use crate::{Error, Result};

/// A file handed to the intake.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where the file is.
    pub path: PathBuf,
    /// Its name as the sender knows it (kept for people; never used as a path).
    pub file_name: String,
    /// The report it is.
    pub kind: ReportKind,
    /// What the sender says of its school year and province.
    pub hint: SliceHint,
    /// The sheet to read, for a workbook of several.
    pub sheet: Option<String>,
    /// The intake may remove the file once done with it (a received upload); a file of the
    /// sender's own (the CLI's) is left where it is.
    pub disposable: bool,
}

impl Delivery {
    /// A file of the sender's own, left where it is.
    pub fn file(path: PathBuf, kind: ReportKind, hint: SliceHint) -> Self {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self {
            path,
            file_name,
            kind,
            hint,
            sheet: None,
            disposable: false,
        }
    }

    /// A file received for the intake (under [`Intake::receiving`]), removed when done with.
    pub fn received(path: PathBuf, file_name: &str, kind: ReportKind, hint: SliceHint) -> Self {
        Self {
            file_name: file_name.to_string(),
            disposable: true,
            ..Self::file(path, kind, hint)
        }
    }
}

/// What the sender wants done with the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Validate only (`khoso ingest --dry-run`).
    Validate,
    /// Validate and preview what the file would change; keep nothing.
    Preview,
    /// Validate and preview; leave the file for a commit that may follow.
    Stage,
    /// Validate and commit (or hold for approval, where the ministry approves provinces' files).
    Commit,
}

/// What became of a file.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It has problems; nothing was written.
    Rejected(Vec<Problem>),
    /// It is valid; nothing was written (a dry run, a staged file, or a batch stopped by
    /// another file's problems). With what committing it would change, when a preview was
    /// asked for.
    Checked(Option<Box<Preview>>),
    /// It waits for the ministry's approval.
    Held(HeldFile),
    /// A new table version holds it.
    Committed(Submission),
    /// The slice already held exactly this file: nothing changed.
    Unchanged(Submission),
}

/// A file's outcome.
#[derive(Debug, Clone)]
pub struct Received {
    /// The file as it was handed over.
    pub delivery: Delivery,
    /// The report, if the file is valid.
    pub report: Option<Arc<ValidatedReport>>,
    /// What became of it.
    pub outcome: Outcome,
}

/// A decision made, and the submission a held file became.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What was decided.
    pub verdict: Verdict,
    /// The submission committed from an approved held file.
    pub submission: Option<Submission>,
}

/// The intake of one warehouse.
#[derive(Debug, Clone)]
pub struct Intake {
    warehouse: Warehouse,
    /// A province's file waits for an admin's approval before it reaches the tables.
    require_approval: bool,
}

impl Warehouse {
    /// The intake; with `require_approval`, provinces' files are held for an admin.
    pub fn intake(&self, require_approval: bool) -> Intake {
        Intake {
            warehouse: self.clone(),
            require_approval,
        }
    }
}

impl Intake {
    /// A new path on this machine for a file being received, with an extension the readers
    /// know (from `file_name`, else `csv`).
    pub fn receiving(&self, file_name: &str) -> Result<PathBuf> {
        let dir = self.warehouse.layout().receiving();
        std::fs::create_dir_all(&dir)?;
        let lower = file_name.to_ascii_lowercase();
        let extension = ["xlsx", "tsv", "txt"]
            .into_iter()
            .find(|ext| lower.ends_with(&format!(".{ext}")))
            .unwrap_or("csv");
        Ok(dir.join(format!("{}.{extension}", uuid::Uuid::new_v4())))
    }

    /// Keeps a checked file (received at `path`, on this machine) in the warehouse until its
    /// sender commits or cancels it, from this node or any other, with a note of the caller's
    /// (who sent it, for what). Its id is the file's name without extension.
    pub async fn stage(&self, path: &std::path::Path, note: &impl serde::Serialize) -> Result<String> {
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|id| is_upload_id(id))
            .ok_or_else(|| Error::Internal(format!("not a received file: {}", path.display())))?
            .to_string();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("csv");
        let (file, note_path) = self.staged_paths(&id, extension);
        let storage = self.warehouse.storage();
        storage.move_in(path, &file).await?;
        let note = StagedNote {
            extension: extension.to_string(),
            note,
        };
        let note = serde_json::to_vec(&note)?;
        storage.write(&note_path, note).await?;
        Ok(id)
    }

    /// A staged file's note, and the file brought back to this machine for its commit; none if
    /// there is no such staged file (committed, cancelled, or cleared after a day). The file
    /// stays staged until [`Intake::unstage`].
    pub async fn staged<T: serde::de::DeserializeOwned>(&self, id: &str) -> Result<Option<(T, PathBuf)>> {
        if !is_upload_id(id) {
            return Ok(None);
        }
        let storage = self.warehouse.storage();
        let Some(note) = storage.read_json::<StagedNote<T>>(&self.staged_paths(id, "").1).await? else {
            return Ok(None);
        };
        let (file, _) = self.staged_paths(id, &note.extension);
        let local = self.receiving(&file)?;
        storage.download(&file, &local).await?;
        Ok(Some((note.note, local)))
    }

    /// Forgets a staged file.
    pub async fn unstage(&self, id: &str) -> Result<()> {
        let storage = self.warehouse.storage();
        let (_, note_path) = self.staged_paths(id, "");
        if let Some(note) = storage.read_json::<StagedNote<serde_json::Value>>(&note_path).await? {
            storage.delete(&self.staged_paths(id, &note.extension).0).await?;
        }
        storage.delete(&note_path).await
    }

    /// Where a staged file and its note are kept.
    fn staged_paths(&self, id: &str, extension: &str) -> (String, String) {
        let folder = self.warehouse.layout().uploads();
        (format!("{folder}/{id}.{extension}"), format!("{folder}/{id}.json"))
    }

    /// Removes the files an earlier process of this machine received and never finished with,
    /// files staged for a commit more than a day ago, and record rows staged more than a day
    /// ago (by a process that died before it committed them).
    pub async fn clear_received(&self) -> Result<()> {
        std::fs::remove_dir_all(self.warehouse.layout().receiving()).ok();
        self.warehouse
            .storage()
            .delete_written_before(
                self.warehouse.layout().uploads(),
                Utc::now() - chrono::Duration::days(1),
            )
            .await?;
        let day = std::time::Duration::from_secs(24 * 3600);
        for entry in std::fs::read_dir(self.warehouse.layout().staging())
            .into_iter()
            .flatten()
            .flatten()
        {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > day));
            if old {
                std::fs::remove_dir_all(entry.path()).ok();
            }
        }
        Ok(())
    }

    /// Takes a batch of files: validates every one, then does what `intent` asks with all of
    /// them — or with none, if any has problems. Each file's outcome comes back in order, and
    /// each is audited.
    pub async fn receive(
        &self,
        deliveries: Vec<Delivery>,
        actor: &Actor,
        intent: Intent,
        at: DateTime<Utc>,
    ) -> Result<Vec<Received>> {
        // Files are read [`FILES_AT_ONCE`] at a time, so that the cores stay busy between the
        // blocks of a small file; they keep their order.
        let read: Vec<_> = futures::stream::iter(deliveries)
            .map(|delivery| async move {
                // A file that cannot be read is the reader's problem to say (with its name); a
                // valid one is hashed once, here, while it is read.
                let started = std::time::Instant::now();
                let path = delivery.path.clone();
                let hashing = tokio::task::spawn_blocking(move || crate::sha256_file(&path));
                let report = match delivery.kind.holds_people() {
                    true => self.read_records(&delivery, intent != Intent::Validate).await?,
                    false => validate(&delivery).await?,
                }
                .map(Arc::new);
                let hashed = hashing.await.map_err(|e| Error::failed("hashing a file", e))?;
                let sha256 = match report {
                    Ok(_) => Some(hashed?),
                    Err(_) => hashed.ok(),
                };
                tracing::debug!(
                    file = %delivery.file_name,
                    rows = report.as_ref().map_or(0, |r| r.rows),
                    seconds = started.elapsed().as_secs_f64(),
                    "file read"
                );
                Ok::<_, Error>((delivery, sha256, report))
            })
            .buffered(FILES_AT_ONCE)
            .try_collect()
            .await?;
        let all_valid = read.iter().all(|(_, _, report)| report.is_ok());
        // The batch's events are written in one commit of the audit log, after the files (a
        // commit whose event a killed process never wrote is found again at the next start:
        // `Warehouse::reconcile_audit`).
        let mut events = Vec::new();
        let mut received = Vec::new();
        // Files to commit together once every file is looked at: (place, event, upload).
        let mut to_commit = Vec::new();
        let mut failed = None;
        for (delivery, sha256, report) in read {
            let event = self.event(actor, intent, &delivery, sha256.as_deref());
            let outcome = match &report {
                Err(problems) if intent == Intent::Validate => Ok(Outcome::Rejected(problems.clone())),
                Err(problems) => Ok(reject(event, problems.clone(), &mut events)),
                Ok(_) if !all_valid || intent == Intent::Validate => Ok(Outcome::Checked(None)),
                Ok(report) if intent == Intent::Commit => {
                    let upload = Upload {
                        file_name: delivery.file_name.clone(),
                        uploaded_by: actor.name.clone(),
                        uploaded_at: at,
                        sha256: sha256.unwrap_or_default(),
                    };
                    if self.require_approval && actor.role == Role::Province {
                        self.hold(event, report, &delivery, &upload, &mut events).await
                    } else {
                        to_commit.push((received.len(), event, upload));
                        // Its outcome once the batch is committed.
                        Ok(Outcome::Checked(None))
                    }
                }
                // Records are not previewed row by row; they are compared with the schools'
                // reports in force.
                Ok(report) if report.stored.is_some() => self.compare_records(event, report, &mut events).await,
                Ok(report) => self.preview(event, Arc::clone(report), &mut events).await,
            };
            match outcome {
                Ok(outcome) => received.push(Received {
                    delivery,
                    report: report.ok(),
                    outcome,
                }),
                Err(e) => {
                    failed = Some(e);
                    received.push(Received {
                        delivery,
                        report: report.ok(),
                        outcome: Outcome::Checked(None),
                    });
                    break;
                }
            }
        }
        if failed.is_none()
            && !to_commit.is_empty()
            && let Err(e) = self.commit(actor, &mut received, to_commit, &mut events).await
        {
            failed = Some(e);
        }
        for file in &received {
            let keep = intent == Intent::Stage && matches!(file.outcome, Outcome::Checked(_));
            // Rows staged for a commit that did not happen (another file of the batch had
            // problems, or this was a look only) go; a commit or a hold moved them away.
            if let Some(stored) = file.report.as_ref().and_then(|r| r.stored.as_ref()) {
                std::fs::remove_dir_all(&stored.folder).ok();
            }
            if file.delivery.disposable && !keep {
                std::fs::remove_file(&file.delivery.path).ok();
            }
        }
        self.warehouse.record_audit(&events).await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(received),
        }
    }

    /// Reads a record file (see [`read_records`]); with `stage`, into a new staging folder
    /// under the warehouse's key.
    async fn read_records(
        &self,
        delivery: &Delivery,
        stage: bool,
    ) -> Result<std::result::Result<ValidatedReport, Vec<Problem>>> {
        let staging = match stage {
            true => {
                let submission_id = uuid::Uuid::new_v4().to_string();
                Some((
                    crate::intake::pseudonym::Pseudonyms::open(self.warehouse.layout()).await?,
                    StoredRows {
                        folder: self.warehouse.layout().staging().join(&submission_id),
                        submission_id,
                    },
                ))
            }
            false => None,
        };
        read_records(delivery, staging).await
    }

    /// The audit event of a file's intake, filled in as it goes.
    fn event(&self, actor: &Actor, intent: Intent, delivery: &Delivery, sha256: Option<&str>) -> AuditEvent {
        let action = match (intent, actor.via) {
            (Intent::Commit, Via::Cli) => "ingest",
            (Intent::Commit, Via::Web) => "upload",
            _ => "dry_run",
        };
        let mut event = AuditEvent::now(action, "ok");
        event.actor = Some(actor.name.clone());
        event.role = Some(actor.role.as_str().to_string());
        event.kind = Some(delivery.kind.as_str().to_string());
        event.school_year = delivery.hint.school_year.map(|y| y.to_string());
        event.province_code = delivery.hint.province_code.as_deref().map(str::to_string);
        event.sha256 = sha256.map(str::to_string);
        event
    }

    /// The dry run of a record file: its size, and whether its counts disagree with the
    /// schools' reports already in (see [`crate::quality::reconcile::disagreement`]).
    async fn compare_records(
        &self,
        mut event: AuditEvent,
        report: &ValidatedReport,
        events: &mut Vec<AuditEvent>,
    ) -> Result<Outcome> {
        let mut warnings = Vec::new();
        if let (ReportKind::Learner, Some(province), Some(stored)) =
            (report.kind, &report.province_code, &report.stored)
        {
            let counted = self
                .warehouse
                .counted_staged(&stored.folder, report.school_year, province)
                .await?;
            let reported = self.warehouse.reported_figures(report.school_year, province).await?;
            let metrics = self.warehouse.metrics()?;
            for check in metrics.checks.iter().filter(|c| c.kind == CheckKind::Records) {
                warnings.extend(crate::quality::reconcile::disagreement(
                    check, &reported, &counted, true,
                ));
            }
        }
        event.detail = Some(format!("{} rows, {} warnings", report.rows, warnings.len()));
        events.push(event);
        Ok(Outcome::Checked(Some(Box::new(Preview {
            rows: report.rows,
            units: 0,
            totals: Vec::new(),
            kpis: Vec::new(),
            warnings,
        }))))
    }

    async fn preview(
        &self,
        mut event: AuditEvent,
        report: Arc<ValidatedReport>,
        events: &mut Vec<AuditEvent>,
    ) -> Result<Outcome> {
        // Query work: on the query runtime, not on the threads that serve pages.
        let warehouse = self.warehouse.clone();
        let preview = crate::query::engine::run(async move { warehouse.preview(&report).await }).await??;
        event.detail = Some(format!("{} rows, {} warnings", preview.rows, preview.warnings.len()));
        events.push(event);
        Ok(Outcome::Checked(Some(Box::new(preview))))
    }

    /// Holds a province's file for an admin's approval.
    async fn hold(
        &self,
        mut event: AuditEvent,
        report: &ValidatedReport,
        delivery: &Delivery,
        upload: &Upload,
        events: &mut Vec<AuditEvent>,
    ) -> Result<Outcome> {
        let held = self.warehouse.hold(report, &delivery.path, upload).await?;
        event.outcome = "pending".into();
        event.detail = Some(format!("held {} for approval ({} rows)", held.id, held.rows));
        events.push(event);
        Ok(Outcome::Held(held))
    }

    /// Commits the batch's files together (see [`Warehouse::commit_batch`]) and gives each its
    /// outcome, its decision (the ministry's own files are approved as sent) and its event.
    async fn commit(
        &self,
        actor: &Actor,
        received: &mut [Received],
        to_commit: Vec<(usize, AuditEvent, Upload)>,
        events: &mut Vec<AuditEvent>,
    ) -> Result<()> {
        let mut files = Vec::new();
        for (place, _, upload) in &to_commit {
            let file = &received[*place];
            let report = file
                .report
                .as_deref()
                .ok_or_else(|| Error::Internal("a file to commit has no report".into()))?;
            files.push((report, file.delivery.path.as_path(), upload));
        }
        let started = std::time::Instant::now();
        let outcomes = self.warehouse.commit_batch(&files).await?;
        tracing::info!(
            files = files.len(),
            seconds = started.elapsed().as_secs_f64(),
            "batch committed"
        );
        for ((place, event, _), outcome) in to_commit.into_iter().zip(outcomes) {
            let (label, submission) = match &outcome {
                CommitOutcome::Committed(s) => ("committed", s),
                CommitOutcome::Unchanged(s) => ("unchanged", s),
            };
            if let (CommitOutcome::Committed(s), Role::Admin, Via::Web) = (&outcome, actor.role, actor.via) {
                let decision = decision_now(
                    &s.submission_id,
                    Verdict::Approved,
                    &actor.name,
                    Some("sent by the ministry".into()),
                );
                self.warehouse.record_decision(&decision).await?;
            }
            let mut committed = AuditEvent::for_commit(submission, &event.action, label);
            committed.actor = event.actor;
            committed.role = event.role;
            events.push(committed);
            received[place].outcome = match outcome {
                CommitOutcome::Committed(s) => Outcome::Committed(s),
                CommitOutcome::Unchanged(s) => Outcome::Unchanged(s),
            };
        }
        Ok(())
    }

    /// Approves or returns a submission or a held file; a held file that is approved is
    /// validated again and committed in the name of whoever sent it. Records the decision and
    /// audits it.
    pub async fn decide(&self, id: &str, verdict: Verdict, comment: Option<String>, actor: &Actor) -> Result<Decided> {
        if !actor.role.may(Action::Review) {
            return Err(Error::Forbidden(
                crate::people::rights::refusal(actor.role, Action::Review).0.into(),
            ));
        }
        if verdict == Verdict::Returned && comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err(Error::Refused(
                "say why the file is returned: the province reads the comment".into(),
            ));
        }
        let decided = || Error::Refused(format!("{id} has been decided on already"));
        let decisions = self.warehouse.decisions().await?;
        if decisions.iter().any(|d| d.submission_id == id) {
            return Err(decided());
        }
        let held = self.warehouse.held_files().await?.into_iter().find(|h| h.id == id);
        let known = held.is_some()
            || self
                .warehouse
                .submissions()
                .await?
                .iter()
                .any(|s| s.submission_id == id);
        if !known {
            return Err(Error::NotFound(format!("no submission or held file {id:?}")));
        }
        let mut event = AuditEvent::now(
            match verdict {
                Verdict::Approved => "approve",
                Verdict::Returned => "return",
            },
            "ok",
        );
        event.actor = Some(actor.name.clone());
        event.role = Some(actor.role.as_str().to_string());
        event.detail = Some(format!(
            "{id}{}",
            comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
        ));
        // Another admin deciding on the same file at the same moment wins; the refusal names the
        // file this admin decided on, not the submission its approval made.
        let decided_already = |e: Error| match e {
            Error::Refused(_) => decided(),
            other => other,
        };
        let mut submission = None;
        if let (Some(held), Verdict::Approved) = (&held, verdict) {
            let committed = match self.commit_held(held).await {
                Ok(committed) => committed,
                // The other admin's approval took the file first (and released it).
                Err(_) if self.warehouse.decisions().await?.iter().any(|d| d.submission_id == id) => {
                    return Err(decided());
                }
                Err(e) => return Err(e),
            };
            self.warehouse
                .record_decision(&decision_now(
                    &committed.submission_id,
                    verdict,
                    &actor.name,
                    comment.clone(),
                ))
                .await
                .map_err(decided_already)?;
            event.detail = Some(format!("held {id} committed as submission {}", committed.submission_id));
            submission = Some(committed);
        }
        self.warehouse
            .record_decision(&decision_now(id, verdict, &actor.name, comment))
            .await
            .map_err(decided_already)?;
        if let Some(held) = &held {
            if verdict == Verdict::Approved {
                self.warehouse.release(held).await?;
            }
            event.kind = Some(held.kind.as_str().to_string());
            event.province_code = held.province_code.as_deref().map(str::to_string);
            event.school_year = Some(held.school_year.to_string());
            event.sha256 = Some(held.sha256.clone());
        }
        self.warehouse.record_audit(&[event]).await?;
        Ok(Decided { verdict, submission })
    }

    /// Validates a held file again and commits it in the name of whoever sent it, from a copy
    /// brought to this machine.
    async fn commit_held(&self, held: &HeldFile) -> Result<Submission> {
        let local = match held.submission_id {
            Some(_) => self.warehouse.layout().staging().join(&held.id),
            None => self.receiving(&held.path)?,
        };
        self.warehouse.fetch_held(held, &local).await?;
        let committed = self.commit_fetched(held, &local).await;
        match held.submission_id {
            Some(_) => std::fs::remove_dir_all(&local).ok(),
            None => std::fs::remove_file(&local).ok(),
        };
        committed
    }

    async fn commit_fetched(&self, held: &HeldFile, local: &std::path::Path) -> Result<Submission> {
        let hint = SliceHint {
            school_year: Some(held.school_year),
            province_code: held.province_code.clone(),
        };
        let report = match held.kind.holds_people() {
            // Held as its pseudonymised rows, already validated.
            true => ValidatedReport {
                kind: held.kind,
                school_year: held.school_year,
                province_code: held.province_code.clone(),
                rows: usize::try_from(held.rows).unwrap_or(0),
                columns: Vec::new(),
                notices: Vec::new(),
                stored: Some(StoredRows {
                    folder: local.to_path_buf(),
                    submission_id: held.submission_id.clone().ok_or_else(|| {
                        Error::Internal(format!("the held record file {} names no submission", held.id))
                    })?,
                }),
            },
            false => {
                let delivery = Delivery::file(local.to_path_buf(), held.kind, hint);
                validate(&delivery).await?.map_err(|problems| {
                    Error::Refused(format!(
                        "the held file no longer validates: {}",
                        problems.first().map(|p| p.message_en.as_str()).unwrap_or_default()
                    ))
                })?
            }
        };
        let upload = Upload {
            file_name: held.file_name.clone(),
            uploaded_by: held.uploaded_by.clone(),
            uploaded_at: DateTime::from_timestamp_micros(held.uploaded_at).unwrap_or_else(Utc::now),
            sha256: held.sha256.clone(),
        };
        match self.warehouse.commit(&report, local, &upload).await? {
            CommitOutcome::Committed(s) | CommitOutcome::Unchanged(s) => Ok(s),
        }
    }
}

/// A file with problems: its event says how many, and the first.
fn reject(mut event: AuditEvent, problems: Vec<Problem>, events: &mut Vec<AuditEvent>) -> Outcome {
    event.outcome = "rejected".into();
    event.detail = Some(format!(
        "{} problems; first: {}",
        problems.len(),
        problems.first().map(|p| p.message_en.as_str()).unwrap_or_default()
    ));
    events.push(event);
    Outcome::Rejected(problems)
}

/// What [`Intake::stage`] keeps beside a staged file.
#[derive(serde::Serialize, serde::Deserialize)]
struct StagedNote<T> {
    extension: String,
    note: T,
}

/// Whether a name is one [`Intake::receiving`] gives (a UUID), so safe in a path.
fn is_upload_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Reads and validates files without a warehouse (`khoso ingest --dry-run` before there is
/// one): each comes back [`Outcome::Rejected`] or [`Outcome::Checked`], and nothing is audited.
pub async fn validate_all(deliveries: Vec<Delivery>) -> Result<Vec<Received>> {
    let mut received = Vec::new();
    for delivery in deliveries {
        let report = match delivery.kind.holds_people() {
            true => read_records(&delivery, None).await?,
            false => validate(&delivery).await?,
        }
        .map(Arc::new);
        let outcome = match &report {
            Err(problems) => Outcome::Rejected(problems.clone()),
            Ok(_) => Outcome::Checked(None),
        };
        received.push(Received {
            delivery,
            report: report.ok(),
            outcome,
        });
    }
    Ok(received)
}

/// Threads that pseudonymise and write the blocks of a record file while it is read.
const WRITERS: usize = 2;

/// Files of a batch read at the same time (each with its [`WRITERS`]): most provinces' files
/// are a few blocks, and three at once keep both cores busy where two left them idle a tenth
/// of the time, for about a third more memory (under 1 GB for a year of learners).
const FILES_AT_ONCE: usize = 3;

/// Reads a record file in blocks (a CSV file, see [`ingest::stream`]; a Parquet file, see
/// [`crate::intake::parquet_file`]). With a key and where to store them, each valid block's identifiers
/// become pseudonyms and the block is written as a data file of its table (see
/// [`crate::tables::schemas::stored_schema`]) by one of [`WRITERS`] threads while the next blocks are
/// read; without, the file is only checked. No identifier as sent is ever written.
async fn read_records(
    delivery: &Delivery,
    staging: Option<(crate::intake::pseudonym::Pseudonyms, StoredRows)>,
) -> Result<std::result::Result<ValidatedReport, Vec<Problem>>> {
    let _memory = crate::query::engine::reserve("việc đọc tệp hồ sơ", "reading the record file", RECORD_READ_BYTES)?;
    let stored = staging.as_ref().map(|(_, stored)| stored.clone());
    if let Some(stored) = &stored {
        std::fs::create_dir_all(&stored.folder)?;
    }
    let (path, kind, hint) = (delivery.path.clone(), delivery.kind, delivery.hint.clone());
    let options = ReadOptions {
        sheet: delivery.sheet.clone(),
    };
    let read = tokio::task::spawn_blocking(move || {
        let read_file = |sink: &mut dyn FnMut(ValidatedReport) -> Result<()>| {
            match crate::intake::parquet_file::is_parquet(&path) {
                true => ingest::stream::validate_sheets(crate::intake::parquet_file::sheets(&path), kind, &hint, sink),
                false => ingest::stream::read_in_blocks(&path, kind, &hint, &options, sink),
            }
        };
        let Some((pseudonyms, stored)) = &staging else {
            return read_file(&mut |_| Ok(()));
        };
        let (blocks, received) = std::sync::mpsc::sync_channel::<(usize, ValidatedReport)>(1);
        let received = std::sync::Mutex::new(received);
        std::thread::scope(|scope| {
            let write = || -> Result<()> {
                loop {
                    let next = received
                        .lock()
                        .map_err(|_| Error::Internal("a writer of a record file's rows failed".into()))?
                        .recv();
                    let Ok((part, mut block)) = next else {
                        return Ok(());
                    };
                    pseudonyms.apply(&mut block);
                    crate::intake::pseudonym::check_pseudonymised(&block)?;
                    let batch = crate::tables::schemas::stored_batch(block, &stored.submission_id)?;
                    let file = stored.folder.join(format!("part-{part:05}.parquet"));
                    crate::tables::schemas::write_parquet(&batch, kind, &file)?;
                }
            };
            let writers: Vec<_> = (0..WRITERS).map(|_| scope.spawn(write)).collect();
            let mut part = 0;
            let read = read_file(&mut |block| {
                part += 1;
                blocks
                    .send((part, block))
                    .map_err(|_| Error::Internal("the writers of a record file's rows stopped".into()))
            });
            drop(blocks);
            for writer in writers {
                writer
                    .join()
                    .map_err(|_| Error::Internal("a writer of a record file's rows failed".into()))??;
            }
            if matches!(read, Ok(Ok(_))) {
                crate::tables::schemas::sync_folder(&stored.folder)?;
            }
            read
        })
    })
    .await
    .map_err(|e| Error::failed("reading a file", e))
    .and_then(|read| read);
    match read {
        Ok(Ok(read)) => Ok(Ok(ValidatedReport {
            kind: read.kind,
            school_year: read.school_year,
            province_code: read.province_code,
            rows: read.rows,
            columns: Vec::new(),
            notices: read.notices,
            stored,
        })),
        failed => {
            if let Some(stored) = &stored {
                std::fs::remove_dir_all(&stored.folder).ok();
            }
            match failed {
                Ok(Err(problems)) => Ok(Err(problems)),
                Err(e) => Err(e),
                Ok(Ok(_)) => Err(Error::Internal("a read file was taken for a failed one".into())),
            }
        }
    }
}

/// What reading a report file may take for each of its bytes: its text (and its decoded copy) and
/// the validated rows.
const READ_BYTES_PER_FILE_BYTE: u64 = 16;

/// What reading a file takes besides: its cells (16 bytes each, at most
/// [`ingest::sheet::MAX_SHEET_CELLS`] in a file read whole), a workbook's parts unpacked, the
/// reader's buffers.
const READ_BYTES_BESIDES: u64 = 16 * ingest::sheet::MAX_SHEET_CELLS + 64 * 1024 * 1024;

/// What reading a record file may take at once: it is read block by block (see
/// [`ingest::stream`]), a few blocks in hand and on their way to the writers.
const RECORD_READ_BYTES: usize = 256 * 1024 * 1024;

/// Reads and validates a file off the async threads (reading blocks), with the memory it may
/// take reserved from the process's ceiling first.
async fn validate(delivery: &Delivery) -> Result<Result<ValidatedReport, Vec<Problem>>> {
    let size = std::fs::metadata(&delivery.path)?.len();
    let bytes = size
        .saturating_mul(READ_BYTES_PER_FILE_BYTE)
        .saturating_add(READ_BYTES_BESIDES);
    let _memory = crate::query::engine::reserve(
        "việc đọc tệp vừa gửi",
        "reading the file sent",
        usize::try_from(bytes).unwrap_or(usize::MAX),
    )?;
    let (path, kind, hint) = (delivery.path.clone(), delivery.kind, delivery.hint.clone());
    let options = ReadOptions {
        sheet: delivery.sheet.clone(),
    };
    tokio::task::spawn_blocking(move || ingest::read_report(&path, kind, &hint, &options))
        .await
        .map_err(|e| Error::failed("reading a file", e))
}
