//! `/review`: the ministry's review. An admin approves a submission (or a file held for
//! approval, which is then committed), or returns it with a comment the province sees on its
//! upload page. Also `POST /api/v1/submissions/{id}/approve` and `/return`.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use warehouse::accounts::Role;
use warehouse::approvals::Verdict;
use warehouse::rights::Actor;

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

/// Approves or returns a submission or a held file ([`warehouse::intake::Intake::decide`]).
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    verdict: Verdict,
    comment: Option<String>,
) -> Result<serde_json::Value, AppError> {
    let decided = state
        .intake()
        .decide(id, verdict, comment, &Actor::account(&caller.account))
        .await?;
    let mut answer = serde_json::json!({ "id": id, "decision": decided.verdict });
    if let Some(submission) = decided.submission {
        answer["submission"] = serde_json::to_value(&submission).unwrap_or_default();
    }
    Ok(answer)
}

fn verdict(approve: bool) -> Verdict {
    if approve { Verdict::Approved } else { Verdict::Returned }
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
        decide(&state, &caller, &id, verdict(approve), form.comment).await
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
        decide(&state, &caller, &id, verdict(approve), body.and_then(|b| b.0.comment)).await
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
