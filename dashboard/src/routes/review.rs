//! `/review`: the ministry's review. An admin approves a submission (or a file held for
//! approval, which is then committed), or returns it with a comment the province sees on its
//! upload page. Also `POST /api/v1/submissions/{id}/approve` and `/return`.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ingest::{ReadOptions, ReportKind, SliceHint};
use serde::Deserialize;
use warehouse::accounts::Role;
use warehouse::approvals::{HeldFile, decision_now};
use warehouse::{CommitOutcome, Upload};

use super::AppError;
use super::pages::{Chrome, PageQuery, language};
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Lang;

/// A file or submission waiting for a decision.
pub struct Waiting {
    id: String,
    what: String,
    file_name: String,
    by: String,
    at: String,
    rows: String,
    held: bool,
}

/// The review page.
#[derive(Template)]
#[template(path = "review.html")]
pub struct ReviewPage {
    chrome: Chrome,
    csrf: String,
    waiting: Vec<Waiting>,
    require_approval: bool,
}

fn when(micros: i64, lang: Lang) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|at| lang.date_time(at))
        .unwrap_or_default()
}

fn admin(caller: Option<Caller>) -> Result<Caller, AppError> {
    match caller {
        Some(caller) if caller.role() == Role::Admin => Ok(caller),
        Some(_) => Err(AppError::Forbidden("only an admin account reviews submissions".into())),
        None => Err(AppError::Unauthorized("sign in first".into())),
    }
}

pub async fn review_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let built = async {
        let caller = admin(state.auth.caller(&headers).await?)?;
        let figures = state.figures().await?;
        let superseded: std::collections::HashSet<&str> = figures
            .submissions
            .iter()
            .filter_map(|s| s.supersedes.as_deref())
            .collect();
        let place = |kind: &str, province: Option<&str>, year: &str| {
            format!(
                "{} {} {year}",
                lang.report_kind(kind),
                province
                    .map(|p| format!("{} {p},", lang.pick("tỉnh", "province")))
                    .unwrap_or_default()
            )
        };
        let mut waiting: Vec<Waiting> = state
            .warehouse
            .held_files()?
            .into_iter()
            .filter(|h| figures.review(&h.id).is_none())
            .map(|h| Waiting {
                what: place(&h.kind, h.province_code.as_deref(), &h.school_year),
                id: h.id,
                file_name: h.file_name,
                by: h.uploaded_by,
                at: when(h.uploaded_at, lang),
                rows: lang.number(h.rows as f64, 0),
                held: true,
            })
            .collect();
        waiting.extend(
            figures
                .submissions
                .iter()
                .filter(|s| {
                    !superseded.contains(s.submission_id.as_str()) && figures.review(&s.submission_id).is_none()
                })
                .map(|s| Waiting {
                    id: s.submission_id.clone(),
                    what: place(&s.kind, s.province_code.as_deref(), &s.school_year),
                    file_name: s.file_name.clone(),
                    by: s.uploaded_by.clone(),
                    at: when(s.uploaded_at, lang),
                    rows: lang.number(s.rows as f64, 0),
                    held: false,
                }),
        );
        Ok::<_, AppError>(ReviewPage {
            chrome: Chrome::new(&figures, lang, &query),
            csrf: caller.csrf.unwrap_or_default(),
            waiting,
            require_approval: state.settings.require_approval,
        })
    };
    match built.await {
        Ok(page) => match page.render() {
            Ok(html) => axum::response::Html(html).into_response(),
            Err(e) => AppError::Internal(e.to_string()).page(lang),
        },
        Err(AppError::Unauthorized(_)) => Redirect::to("/sign-in").into_response(),
        Err(e) => e.page(lang),
    }
}

/// A decision sent from the page.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    comment: Option<String>,
}

/// Approves or returns a submission or a held file; a held file that is approved is validated
/// again and committed in the name of whoever sent it.
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> Result<serde_json::Value, AppError> {
    if !approve && comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(AppError::BadRequest(
            "say why the file is returned: the province reads the comment".into(),
        ));
    }
    let figures = state.figures().await?;
    if figures.review(id).is_some() {
        return Err(AppError::BadRequest(format!("{id} has been decided on already")));
    }
    let held: Option<HeldFile> = state.warehouse.held_files()?.into_iter().find(|h| h.id == id);
    let known = held.is_some() || figures.submissions.iter().any(|s| s.submission_id == id);
    if !known {
        return Err(AppError::NotFound(format!("no submission or held file {id:?}")));
    }
    let decision = if approve { "approved" } else { "returned" };
    let mut event = warehouse::audit::AuditEvent::now(if approve { "approve" } else { "return" }, "ok");
    event.actor = Some(caller.account.name.clone());
    event.role = Some(caller.role().as_str().to_string());
    let mut answer = serde_json::json!({ "id": id, "decision": decision });
    if let (Some(held), true) = (&held, approve) {
        let kind: ReportKind = held
            .kind
            .parse()
            .map_err(|_| AppError::Internal(format!("held file of unknown kind {}", held.kind)))?;
        let hint = SliceHint {
            school_year: held.school_year.parse().ok(),
            province_code: held.province_code.clone(),
        };
        let path = held.path.clone();
        let report =
            tokio::task::spawn_blocking(move || ingest::read_report(&path, kind, &hint, &ReadOptions::default()))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?
                .map_err(|problems| {
                    AppError::BadRequest(format!("the held file no longer validates: {}", problems[0].message_en))
                })?;
        let upload = Upload {
            file_name: held.file_name.clone(),
            uploaded_by: held.uploaded_by.clone(),
            uploaded_at: chrono::DateTime::from_timestamp_micros(held.uploaded_at).unwrap_or_else(chrono::Utc::now),
        };
        let submission = match state.warehouse.commit(&report, &held.path, &upload).await? {
            CommitOutcome::Committed(s) | CommitOutcome::Unchanged(s) => s,
        };
        state
            .warehouse
            .record_decision(&decision_now(
                &submission.submission_id,
                decision,
                &caller.account.name,
                comment.clone(),
            ))
            .await?;
        answer["submission"] = serde_json::to_value(&submission).unwrap_or_default();
        event.detail = Some(format!(
            "held {id} committed as submission {}",
            submission.submission_id
        ));
    } else {
        event.detail = Some(format!(
            "{id}{}",
            comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
        ));
    }
    state
        .warehouse
        .record_decision(&decision_now(id, decision, &caller.account.name, comment))
        .await?;
    if let (Some(held), true) = (&held, approve) {
        state.warehouse.release(held)?;
    }
    if let Some(held) = &held {
        event.kind = Some(held.kind.clone());
        event.province_code = held.province_code.clone();
        event.school_year = Some(held.school_year.clone());
        event.sha256 = Some(held.sha256.clone());
    }
    state.warehouse.record_audit(&[event]).await?;
    Ok(answer)
}

pub async fn approve_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DecisionForm>,
) -> Response {
    decide_form(state, id, headers, form, true).await
}

pub async fn return_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DecisionForm>,
) -> Response {
    decide_form(state, id, headers, form, false).await
}

async fn decide_form(state: AppState, id: String, headers: HeaderMap, form: DecisionForm, approve: bool) -> Response {
    let lang = language(&PageQuery::default(), &headers);
    let done = async {
        let caller = admin(state.auth.caller(&headers).await?)?;
        super::check_csrf(&caller, form.csrf.as_deref())?;
        decide(&state, &caller, &id, approve, form.comment).await
    };
    match done.await {
        Ok(_) => Redirect::to("/review").into_response(),
        Err(e) => e.page(lang),
    }
}

/// `{"comment": …}` of the API.
#[derive(Debug, Default, Deserialize)]
pub struct DecisionBody {
    comment: Option<String>,
}

async fn decide_api(
    state: AppState,
    id: String,
    headers: HeaderMap,
    body: Option<Json<DecisionBody>>,
    approve: bool,
) -> Response {
    let done = async {
        let caller = admin(state.auth.caller(&headers).await?)?;
        decide(&state, &caller, &id, approve, body.and_then(|b| b.0.comment)).await
    };
    match done.await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => e.json(),
    }
}

pub async fn approve_api(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<DecisionBody>>,
) -> Response {
    decide_api(state, id, headers, body, true).await
}

pub async fn return_api(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<DecisionBody>>,
) -> Response {
    decide_api(state, id, headers, body, false).await
}
