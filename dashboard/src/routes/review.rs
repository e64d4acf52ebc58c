//! `/review`: the ministry's review. An admin approves a submission (or a file held for
//! approval, which is then committed), or returns it with a comment the province sees on its
//! upload page. Also `POST /api/v1/submissions/{id}/approve` and `/return`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingest::{ReportKind, SchoolYear};
use serde::Deserialize;
use warehouse::tables::rows::Verdict;

use super::error::AppError;
use super::page::PageError;
use super::page::{Chrome, PageQuery, language};
use super::roles::Admin;
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::{Lang, Words};

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

/// A moment given in microseconds since the epoch, as the page's language writes it.
pub(super) fn when(micros: i64, lang: Lang) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|at| lang.date_time(at))
        .unwrap_or_default()
}

/// The review's routes: the page, its forms, and the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/review", get(review_page))
        .route("/review/{id}/{verdict}", post(decide_form))
        .route("/api/v1/submissions/{id}/{verdict}", post(decide_api))
}

async fn review_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    Admin { caller, .. }: Admin,
) -> Result<Html<String>, PageError> {
    let lang = language(&query, &headers);
    let built = async {
        let figures = state.figures().await?;
        let superseded: std::collections::HashSet<&str> = figures
            .submissions
            .iter()
            .filter_map(|s| s.supersedes.as_deref())
            .collect();
        let place = |kind: ReportKind, province: Option<&str>, year: SchoolYear| {
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
            .held_files()
            .await?
            .into_iter()
            .filter(|h| figures.review(&h.id).is_none())
            .map(|h| Waiting {
                what: place(h.kind, h.province_code.as_deref(), h.school_year),
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
                    what: place(s.kind, s.province_code.as_deref(), s.school_year),
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
    let page = built.await.map_err(|e| e.in_lang(lang))?;
    let html = page.render().map_err(|e| AppError::internal(e).in_lang(lang))?;
    Ok(Html(html))
}

/// A decision sent from the page.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    comment: Option<String>,
}

/// Approves or returns a submission or a held file ([`warehouse::intake::steps::Intake::decide`]).
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    verdict: Verdict,
    comment: Option<String>,
) -> Result<serde_json::Value, AppError> {
    let decided = state
        .intake()
        .decide(id, verdict, comment, &caller.account.actor())
        .await?;
    let mut answer = serde_json::json!({ "id": id, "decision": decided.verdict });
    if let Some(submission) = decided.submission {
        answer["submission"] = serde_json::to_value(&submission).unwrap_or_default();
    }
    Ok(answer)
}

/// The verdict a path names: `approve` or `return`.
fn verdict(word: &str) -> Result<Verdict, AppError> {
    match word {
        "approve" => Ok(Verdict::Approved),
        "return" => Ok(Verdict::Returned),
        other => Err(AppError::NotFound(format!("no decision {other:?}: approve or return"))),
    }
}

/// `POST /review/{id}/approve` or `/return`, from the page.
async fn decide_form(
    State(state): State<AppState>,
    Path((id, word)): Path<(String, String)>,
    headers: HeaderMap,
    Admin { caller, .. }: Admin,
    axum::Form(form): axum::Form<DecisionForm>,
) -> Result<Redirect, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    let done = async {
        super::page::check_csrf(&caller, form.csrf.as_deref())?;
        decide(&state, &caller, &id, verdict(&word)?, form.comment).await
    };
    done.await.map_err(|e| e.in_lang(lang))?;
    Ok(Redirect::to("/review"))
}

/// `{"comment": …}` of the API.
#[derive(Debug, Default, Deserialize)]
pub struct DecisionBody {
    comment: Option<String>,
}

/// `POST /api/v1/submissions/{id}/approve` or `/return`.
async fn decide_api(
    State(state): State<AppState>,
    Path((id, word)): Path<(String, String)>,
    Admin { caller, .. }: Admin,
    body: Option<Json<DecisionBody>>,
) -> Result<Json<serde_json::Value>, AppError> {
    let comment = body.and_then(|b| b.0.comment);
    Ok(Json(decide(&state, &caller, &id, verdict(&word)?, comment).await?))
}
