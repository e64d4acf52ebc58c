//! The provincial departments' way in: the upload page (dry run, then commit or cancel) and
//! `POST /api/v1/submissions`. Each hands the file to the intake in one call
//! ([`warehouse::intake::steps`]: the same path as the CLI's); every attempt is audited.
//!
//! Bodies are streamed to a file of the intake's and never held whole in memory; past the size
//! limit the answer is 413. The file's name is kept for people only: the saved file is named
//! by a random id with an extension from a fixed list.

use std::path::PathBuf;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use ingest::{Problem, ProvinceRegistry, ReportKind, SchoolYear, SliceHint};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use warehouse::intake::preview::Preview;
use warehouse::intake::steps::{Delivery, Intent, Outcome};
use warehouse::people::rights::Role;
use warehouse::people::rights::{UploadAsk, UploadSlice, sees_held_file, upload_slice};

use super::audit::{audit, audit_event};
use super::error::AppError;
use super::page::{Chrome, OrPage, PageError, PageLang, PageQuery, language, render};
use super::page::{CsrfForm, form_caller};
use super::roles::Uploader;
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::{Lang, Words};

/// The upload's routes: the page and its staged files, and the API.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/upload",
            get(upload_page).post(upload_form).layer(whole_request(state)),
        )
        .route("/upload/{id}/{action}", post(staged))
}

/// `POST /api/v1/submissions`, with its body limit (the route's `GET` is the figures').
pub fn api_route(state: &AppState) -> axum::routing::MethodRouter<AppState> {
    post(api_upload).layer(whole_request(state))
}

/// Uploads are streamed to disk under their kind's limit (`--max-upload-mb`,
/// `--max-record-upload-mb`); the request as a whole under the larger and the form's room.
fn whole_request(state: &AppState) -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(
        usize::try_from(state.settings.upload_limit(None) + FORM_OVERHEAD_BYTES).unwrap_or(usize::MAX),
    )
}

/// Who staged a validated file waiting for its commit, and for what (kept with the file in the
/// warehouse, so that the commit may reach any web node).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Staged {
    account_id: String,
    file_name: String,
    slice: UploadSlice,
}

/// What an upload asks for.
#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    kind: Option<String>,
    year: Option<String>,
    province: Option<String>,
    dry_run: Option<bool>,
}

impl UploadQuery {
    fn ask(&self) -> UploadAsk<'_> {
        UploadAsk {
            kind: self.kind.as_deref(),
            year: self.year.as_deref(),
            province: self.province.as_deref(),
        }
    }
}

/// The slice a signed-in caller may upload ([`warehouse::people::rights::upload_slice`]).
fn authorize(caller: Option<&Caller>, query: &UploadQuery) -> Result<UploadSlice, AppError> {
    let caller =
        caller.ok_or_else(|| AppError::Unauthorized("sign in first: send Authorization: Bearer TOKEN".into()))?;
    Ok(upload_slice(&caller.account.actor(), query.ask())?)
}

/// The answer to a file past its kind's limit.
fn too_large(limit: u64) -> AppError {
    AppError::TooLarge(format!(
        "the file is larger than {} MB: split it by province and school year, or ask the ministry",
        limit / (1024 * 1024)
    ))
}

/// Streams a body to a new file of the intake's, stopping at `limit` bytes.
async fn save<E: std::fmt::Display>(
    state: &AppState,
    mut stream: impl Stream<Item = Result<Bytes, E>> + Unpin,
    file_name: &str,
    limit: u64,
) -> Result<PathBuf, AppError> {
    let path = state.intake().receiving(file_name)?;
    let mut file = tokio::fs::File::create(&path).await.map_err(AppError::internal)?;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("the upload broke off: {e}")))?;
        written += chunk.len() as u64;
        if written > limit {
            drop(file);
            tokio::fs::remove_file(&path).await.ok();
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    file.flush().await.map_err(AppError::internal)?;
    Ok(path)
}

/// An upload's body saved: the `file` part of a multipart form, or the whole body.
async fn save_body(
    state: &AppState,
    request: Request,
    headers: &HeaderMap,
    kind: ReportKind,
) -> Result<(PathBuf, String), AppError> {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(request, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let (path, name, _) = save_file_part(state, &mut form, Some(kind)).await?;
        Ok((path, name))
    } else {
        let limit = state.settings.upload_limit(Some(kind));
        let path = save(state, request.into_body().into_data_stream(), "upload.csv", limit).await?;
        Ok((path, "upload.csv".to_string()))
    }
}

/// Who tried which upload: a step that refuses it is audited before it is answered.
struct Refusal<'a> {
    state: &'a AppState,
    caller: Option<&'a Caller>,
    action: &'static str,
}

impl Refusal<'_> {
    /// The step's result, its refusal audited with the error.
    async fn audited<T>(&self, step: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(e) = &step {
            audit(self.state, self.event(e)).await;
        }
        step
    }

    /// The step's result, its refusal audited with the slice that was asked for.
    async fn of_slice<T>(&self, asked: &UploadQuery, step: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(e) = &step {
            let mut event = self.event(e);
            event.kind = asked.kind.clone();
            event.school_year = asked.year.clone();
            event.province_code = asked.province.clone();
            audit(self.state, event).await;
        }
        step
    }

    fn event(&self, e: &AppError) -> warehouse::tables::rows::AuditEvent {
        let mut event = audit_event(self.caller, self.action, e.code());
        event.detail = Some(e.to_string());
        event
    }
}

/// Hands a saved file to the intake, for a slice the caller may send.
async fn receive(
    state: &AppState,
    caller: &Caller,
    slice: &UploadSlice,
    path: PathBuf,
    file_name: &str,
    intent: Intent,
) -> Result<Outcome, AppError> {
    let hint = SliceHint {
        school_year: Some(slice.school_year),
        province_code: slice.province.clone(),
    };
    let delivery = Delivery::received(path, file_name, slice.kind, hint);
    let started = std::time::Instant::now();
    let received = state
        .intake()
        .receive(vec![delivery], &caller.account.actor(), intent, chrono::Utc::now())
        .await;
    state.telemetry.intake(intent, started.elapsed());
    received?
        .pop()
        .map(|r| r.outcome)
        .ok_or_else(|| AppError::internal("the intake answered nothing"))
}

fn problems_json(problems: &[Problem]) -> Vec<serde_json::Value> {
    problems
        .iter()
        .map(|p| {
            serde_json::json!({
                "row": p.row, "column": p.column, "value": p.value, "rule": p.rule.code(),
                "message_vi": p.message_vi, "message_en": p.message_en,
            })
        })
        .collect()
}

/// `POST /api/v1/submissions?kind=&year=&province=&dry_run=`: the file as the body (or as the
/// `file` part of a multipart form), `Authorization: Bearer TOKEN`.
async fn api_upload(
    State(state): State<AppState>,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let headers = request.headers().clone();
    let caller = state.auth.caller(&headers).await?;
    let refusal = Refusal {
        state: &state,
        caller: caller.as_ref(),
        action: "upload",
    };
    let slice = refusal.of_slice(&query, authorize(caller.as_ref(), &query)).await?;
    let Some(caller) = caller.as_ref() else {
        return Err(AppError::Unauthorized("sign in first".into()));
    };
    let (path, file_name) = refusal
        .audited(save_body(&state, request, &headers, slice.kind).await)
        .await?;
    let intent = if query.dry_run.unwrap_or(false) {
        Intent::Preview
    } else {
        Intent::Commit
    };
    Ok(match receive(&state, caller, &slice, path, &file_name, intent).await? {
        Outcome::Rejected(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "code": "invalid_file",
                "message": format!("the file has {} problems; nothing was written", problems.len()),
                "problems": problems_json(&problems),
            })),
        )
            .into_response(),
        Outcome::Checked(preview) => Json(serde_json::json!({
            "outcome": "dry_run", "preview": preview,
        }))
        .into_response(),
        Outcome::Held(held) => {
            // Where the server keeps the file is its own business.
            let mut held = serde_json::to_value(&held).unwrap_or_default();
            if let Some(fields) = held.as_object_mut() {
                fields.remove("path");
            }
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "outcome": "pending", "held": held })),
            )
                .into_response()
        }
        Outcome::Committed(submission) => {
            Json(serde_json::json!({ "outcome": "committed", "submission": submission })).into_response()
        }
        Outcome::Unchanged(submission) => {
            Json(serde_json::json!({ "outcome": "unchanged", "submission": submission })).into_response()
        }
    })
}

/// Text fields a form may have besides its file.
const FORM_FIELDS: usize = 16;

/// The longest text field of a form, in bytes.
const FORM_FIELD_BYTES: usize = 4096;

/// Room a multipart form takes besides its file: boundaries, headers and text fields.
const FORM_OVERHEAD_BYTES: u64 = (FORM_FIELDS * (FORM_FIELD_BYTES + 1024)) as u64;

/// A text field of a form, read piece by piece and refused past [`FORM_FIELD_BYTES`].
async fn form_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String, AppError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| AppError::BadRequest(format!("the form broke off: {e}")))?
    {
        if bytes.len() + chunk.len() > FORM_FIELD_BYTES {
            return Err(AppError::TooLarge(format!(
                "the form field {name:?} is longer than {FORM_FIELD_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text =
        String::from_utf8(bytes).map_err(|_| AppError::BadRequest(format!("the form field {name:?} is not UTF-8")))?;
    Ok(text.chars().take(200).collect())
}

/// Reads a multipart form: its text fields, and its `file` part streamed to disk under the
/// limit of its kind (`kind`, else the form's `kind` field, checked again once the form is read).
async fn save_file_part(
    state: &AppState,
    form: &mut Multipart,
    kind: Option<ReportKind>,
) -> Result<(PathBuf, String, std::collections::HashMap<String, String>), AppError> {
    let kind_of = |fields: &std::collections::HashMap<String, String>| {
        kind.or_else(|| fields.get("kind").and_then(|k| k.parse().ok()))
    };
    let mut fields = std::collections::HashMap::new();
    let mut saved = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("the form broke off: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("upload.csv").to_string();
            let limit = state.settings.upload_limit(kind_of(&fields));
            if let Some((old, _)) = saved.replace((save(state, field, &file_name, limit).await?, file_name)) {
                tokio::fs::remove_file(old).await.ok();
            }
        } else {
            if fields.len() >= FORM_FIELDS {
                return Err(AppError::BadRequest(format!(
                    "the form has more than {FORM_FIELDS} fields"
                )));
            }
            fields.insert(name, form_text(field).await?);
        }
    }
    let (path, file_name) = saved.ok_or_else(|| AppError::BadRequest("choose a file to upload".into()))?;
    let limit = state.settings.upload_limit(kind_of(&fields));
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() > limit) {
        tokio::fs::remove_file(&path).await.ok();
        return Err(too_large(limit));
    }
    Ok((path, file_name, fields))
}

/// A problem as a row of the page.
pub struct ProblemRow {
    row: String,
    column: String,
    value: String,
    message: String,
}

/// A KPI of the preview.
pub struct PreviewRow {
    name: String,
    with_file: String,
    in_force: String,
    last_year: String,
}

/// `/upload` and its results.
#[derive(Template)]
#[template(path = "upload.html")]
pub struct UploadPage {
    chrome: Chrome,
    account: String,
    csrf: String,
    province: Option<String>,
    admin: bool,
    years: Vec<String>,
    provinces: Vec<(String, String)>,
    status: String,
    message: String,
    problems: Vec<ProblemRow>,
    problems_csv: String,
    id: String,
    summary: Vec<(String, String)>,
    kpis: Vec<PreviewRow>,
    warnings: Vec<String>,
    reviews: Vec<ReviewRow>,
}

/// One of the account's files and what the ministry decided about it.
pub struct ReviewRow {
    file_name: String,
    year: String,
    kind: String,
    state: String,
    comment: String,
}

/// The account's province's files (or, for an admin, every file) waiting for review or
/// decided, newest first.
async fn reviews(state: &AppState, caller: &Caller, lang: Lang) -> (Chrome, Vec<ReviewRow>) {
    let Ok(figures) = state.figures().await else {
        return (Chrome::bare(lang), Vec::new());
    };
    let chrome = Chrome::new(&figures, lang, &PageQuery::default());
    let mine = |province: Option<&str>| sees_held_file(caller.role(), caller.account.province.as_deref(), province);
    let describe = |id: &str| match figures.review(id) {
        Some(d) if d.decision == warehouse::tables::rows::Verdict::Approved => {
            (lang.pick("đã duyệt", "approved").to_string(), d.comment.clone())
        }
        Some(d) => (lang.pick("bị trả lại", "returned").to_string(), d.comment.clone()),
        None => (lang.pick("chờ duyệt", "awaiting review").to_string(), None),
    };
    let mut rows: Vec<(i64, ReviewRow)> = state
        .warehouse
        .held_files()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|h| mine(h.province_code.as_deref()))
        .map(|h| {
            let (state, comment) = describe(&h.id);
            (
                h.uploaded_at,
                ReviewRow {
                    file_name: h.file_name,
                    year: h.school_year.to_string(),
                    kind: lang.report_kind(h.kind).to_string(),
                    state,
                    comment: comment.unwrap_or_default(),
                },
            )
        })
        .collect();
    rows.extend(
        figures
            .submissions
            .iter()
            .filter(|s| mine(s.province_code.as_deref()))
            .map(|s| {
                let (state, comment) = describe(&s.submission_id);
                (
                    s.uploaded_at,
                    ReviewRow {
                        file_name: s.file_name.clone(),
                        year: s.school_year.to_string(),
                        kind: lang.report_kind(s.kind).to_string(),
                        state,
                        comment: comment.unwrap_or_default(),
                    },
                )
            }),
    );
    rows.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    (chrome, rows.into_iter().take(20).map(|(_, row)| row).collect())
}

impl UploadPage {
    fn new(caller: &Caller, lang: Lang) -> Self {
        let registry = ProvinceRegistry::shipped();
        let this_year = chrono::Datelike::year(&chrono::Utc::now());
        Self {
            chrome: Chrome::bare(lang),
            account: caller.account.name.clone(),
            csrf: caller.csrf.clone().unwrap_or_default(),
            province: caller.account.province.clone(),
            admin: caller.role() == Role::Admin,
            years: (2020..=this_year)
                .rev()
                .map(|start| SchoolYear::starting(start).to_string())
                .collect(),
            provinces: registry
                .from_2025
                .iter()
                .chain(&registry.before_2025)
                .map(|p| (p.code.clone(), format!("{} {}", p.code, p.name_vi)))
                .collect(),
            status: String::new(),
            message: String::new(),
            problems: Vec::new(),
            problems_csv: String::new(),
            id: String::new(),
            summary: Vec::new(),
            kpis: Vec::new(),
            warnings: Vec::new(),
            reviews: Vec::new(),
        }
    }
}

async fn upload_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    Uploader { caller, .. }: Uploader,
) -> Response {
    let lang = language(&query, &headers);
    let mut page = UploadPage::new(&caller, lang);
    (page.chrome, page.reviews) = reviews(&state, &caller, lang).await;
    render(StatusCode::OK, &page, lang)
}

async fn upload_form(
    State(state): State<AppState>,
    PageLang(lang): PageLang,
    Uploader { caller, .. }: Uploader,
    mut form: Multipart,
) -> Result<Response, PageError> {
    let refusal = Refusal {
        state: &state,
        caller: Some(&caller),
        action: "dry_run",
    };
    let (path, file_name, fields) = refusal
        .audited(save_file_part(&state, &mut form, None).await)
        .await
        .or_page(lang)?;
    let checked = check_form(&state, &caller, &fields, &path, &file_name).await;
    if checked.is_err() {
        tokio::fs::remove_file(&path).await.ok();
    }
    let (slice, outcome) = checked.or_page(lang)?;
    let mut page = UploadPage::new(&caller, lang);
    let status = match outcome {
        Outcome::Rejected(problems) => {
            page.status = "rejected".into();
            page.message = format!(
                "{} {} {}",
                file_name,
                lang.pick("có", "has"),
                lang.pick(
                    &format!("{} lỗi; chưa ghi gì vào kho. Sửa rồi tải lên lại.", problems.len()),
                    &format!(
                        "{} problems; nothing was written. Fix them and upload again.",
                        problems.len()
                    ),
                )
            );
            let mut csv = Vec::new();
            ingest::problem::write_problems_csv(&problems, &mut csv).ok();
            page.problems_csv = data_uri(&csv);
            page.problems = problems
                .iter()
                .map(|p| ProblemRow {
                    row: p.row.map(|r| r.to_string()).unwrap_or_default(),
                    column: p.column.clone().unwrap_or_default(),
                    value: p.value.clone().unwrap_or_default(),
                    message: lang.pick(&p.message_vi, &p.message_en).to_string(),
                })
                .collect();
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Outcome::Checked(preview) => {
            if let Some(preview) = &preview {
                fill_preview(&state, &mut page, preview, Some(slice.kind), lang);
            }
            // The file waits in the warehouse for the commit or cancel that follows.
            let staged = Staged {
                account_id: caller.account.id.clone(),
                file_name: file_name.clone(),
                slice,
            };
            let id = state.intake().stage(&path, &staged).await.or_page(lang)?;
            page.status = "checked".into();
            page.message = format!(
                "{file_name}: {}",
                lang.pick(
                    "hợp lệ. Xem tóm tắt rồi ghi vào kho hoặc huỷ.",
                    "valid. Read the summary, then commit or cancel."
                )
            );
            page.id = id;
            StatusCode::OK
        }
        done => {
            tell_done(&mut page, done, &file_name, &slice, lang);
            StatusCode::OK
        }
    };
    (page.chrome, page.reviews) = reviews(&state, &caller, lang).await;
    Ok(render(status, &page, lang))
}

/// A form's file checked (a report staged, a record file committed or held): its slice, as
/// the form asks and the caller may send, and what became of it.
async fn check_form(
    state: &AppState,
    caller: &Caller,
    fields: &std::collections::HashMap<String, String>,
    path: &std::path::Path,
    file_name: &str,
) -> Result<(UploadSlice, Outcome), AppError> {
    super::page::check_csrf(caller, fields.get("csrf").map(String::as_str))?;
    let query = UploadQuery {
        kind: fields.get("kind").cloned(),
        year: fields.get("year").cloned(),
        province: fields.get("province").cloned(),
        dry_run: Some(true),
    };
    let slice = authorize(Some(caller), &query)?;
    // A record file is committed (or held) as it is checked: it is never kept as sent, with
    // its identifiers, waiting for a second click.
    let intent = match slice.kind.holds_people() {
        true => Intent::Commit,
        false => Intent::Stage,
    };
    let outcome = receive(state, caller, &slice, path.to_path_buf(), file_name, intent).await?;
    Ok((slice, outcome))
}

fn fill_preview(state: &AppState, page: &mut UploadPage, preview: &Preview, kind: Option<ReportKind>, lang: Lang) {
    // A count column by its description in the page's language.
    let label = |column: &str| {
        kind.and_then(|k| k.schema().columns.iter().find(|c| c.name == column))
            .map_or_else(
                || column.to_string(),
                |c| lang.pick(&c.description_vi, &c.description_en).to_string(),
            )
    };
    page.summary = vec![
        (
            lang.pick("Số dòng", "Rows").to_string(),
            lang.number(preview.rows as f64, 0),
        ),
        (
            lang.pick(
                "Số đơn vị (trường, cơ sở, môn-lớp)",
                "Units (schools, institutions, subject-grades)",
            )
            .to_string(),
            lang.number(preview.units as f64, 0),
        ),
    ];
    page.summary.extend(
        preview
            .totals
            .iter()
            .map(|(column, total)| (label(column), lang.number(*total as f64, 0))),
    );
    let names = state.warehouse.metrics().ok();
    page.kpis = preview
        .kpis
        .iter()
        .map(|v| PreviewRow {
            name: names
                .and_then(|m| m.kpi(&v.kpi_id))
                .map_or_else(|| v.kpi_id.clone(), |k| lang.pick(&k.name_vi, &k.name_en).to_string()),
            with_file: lang.percent(v.with_file),
            in_force: lang.percent(v.in_force),
            last_year: lang.percent(v.last_year),
        })
        .collect();
    page.warnings = preview
        .warnings
        .iter()
        .map(|w| lang.pick(&w.message_vi, &w.message_en).to_string())
        .collect();
}

/// A staged file of the caller's, brought to this node: its note and where it is now.
async fn take_staged(state: &AppState, caller: &Caller, id: &str) -> Result<(Staged, PathBuf), AppError> {
    match state.intake().staged::<Staged>(id).await? {
        Some((staged, path)) if staged.account_id == caller.account.id => Ok((staged, path)),
        Some((_, path)) => {
            tokio::fs::remove_file(&path).await.ok();
            Err(AppError::Forbidden("this upload belongs to another account".into()))
        }
        None => Err(AppError::NotFound(
            "no such upload waiting: it was committed, cancelled, or kept more than a day; upload the file again"
                .into(),
        )),
    }
}

/// `POST /upload/{id}/commit` or `/upload/{id}/cancel`: what becomes of a staged file.
async fn staged(
    State(state): State<AppState>,
    UrlPath((id, action)): UrlPath<(String, String)>,
    headers: HeaderMap,
    PageLang(lang): PageLang,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, PageError> {
    if action != "commit" && action != "cancel" {
        return Err(AppError::NotFound(format!("no action {action:?}: commit or cancel")).in_lang(lang));
    }
    let caller = form_caller(&state, &headers, &form.csrf).await.or_page(lang)?;
    let (staged, path) = take_staged(&state, &caller, &id).await.or_page(lang)?;
    if action == "cancel" {
        tokio::fs::remove_file(&path).await.ok();
        state.intake().unstage(&id).await.or_page(lang)?;
        return Ok(Redirect::to("/upload").into_response());
    }
    let outcome = receive(&state, &caller, &staged.slice, path, &staged.file_name, Intent::Commit).await;
    // Committed or refused, it no longer waits (a refusal says why; the sender uploads again).
    state.intake().unstage(&id).await.or_page(lang)?;
    let outcome = outcome.or_page(lang)?;
    let mut page = UploadPage::new(&caller, lang);
    tell_done(&mut page, outcome, &staged.file_name, &staged.slice, lang);
    (page.chrome, page.reviews) = reviews(&state, &caller, lang).await;
    Ok(render(StatusCode::OK, &page, lang))
}

/// What became of a file sent for its commit, said on the page.
fn tell_done(page: &mut UploadPage, outcome: Outcome, file_name: &str, slice: &UploadSlice, lang: Lang) {
    match outcome {
        Outcome::Committed(submission) => {
            page.status = "committed".into();
            page.message = format!(
                "{}: {} {} {} {} ({} {}, {} {}).",
                file_name,
                lang.pick(
                    "đã ghi vào kho, thay cho bản trước của",
                    "committed, replacing the earlier file of"
                ),
                lang.report_kind(slice.kind),
                slice.province.as_deref().unwrap_or(""),
                slice.school_year,
                lang.number(submission.rows as f64, 0),
                lang.pick("dòng", "rows"),
                lang.pick("phiên bản bảng", "table version"),
                submission.table_version
            );
        }
        Outcome::Unchanged(_) => {
            page.status = "unchanged".into();
            page.message = lang
                .pick(
                    "Kho đã có đúng tệp này cho báo cáo này: không có gì thay đổi.",
                    "The warehouse already holds exactly this file for this report: nothing changed.",
                )
                .to_string();
        }
        Outcome::Held(_) => {
            page.status = "checked".into();
            page.message = lang
                .pick(
                    "Đã gửi, chờ Bộ duyệt: số liệu vào kho khi được duyệt.",
                    "Sent, waiting for the ministry's approval: the figures reach the warehouse once approved.",
                )
                .to_string();
        }
        Outcome::Rejected(problems) => {
            page.status = "rejected".into();
            page.message = format!("{} problems", problems.len());
        }
        Outcome::Checked(_) => {}
    }
}

/// A `data:` address holding a CSV file, for a download link that needs no second request.
fn data_uri(csv: &[u8]) -> String {
    format!(
        "data:text/csv;charset=utf-8,%EF%BB%BF{}",
        super::page::percent_encode(csv)
    )
}
