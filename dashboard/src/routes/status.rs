//! `/admin/status`: what an admin checks first — each table's version, last commit and files,
//! the last files committed, the last backup and upkeep, and recent refusals and failures.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;
use warehouse::{OutputFormat, TableVersions};

use super::error::AppError;
use super::page::PageError;
use super::page::{Chrome, PageQuery, language};
use super::review::when;
use super::roles::Admin;
use crate::AppState;
use crate::i18n::{Lang, Words};

/// A table's line.
pub struct TableLine {
    table: String,
    version: u64,
    committed: String,
    files: usize,
    megabytes: String,
}

/// A line of the audit log.
pub struct EventLine {
    at: String,
    actor: String,
    action: String,
    outcome: String,
    detail: String,
}

/// The status page.
#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    chrome: Chrome,
    tables: Vec<TableLine>,
    commits: Vec<EventLine>,
    backup: Option<EventLine>,
    upkeep: Option<EventLine>,
    trouble: Vec<EventLine>,
}

/// Files committed, and audit events of trouble, shown.
const SHOWN: usize = 15;

/// Outcomes that are not trouble: the rest (refused files, failed sign-ins and queries, …) are.
const FINE: &str = "'ok', 'committed', 'unchanged', 'pending', 'closed'";

/// The status page's route.
pub fn router() -> Router<AppState> {
    Router::new().route("/admin/status", get(status_page))
}

async fn status_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    _admin: Admin,
) -> Result<Html<String>, PageError> {
    let lang = language(&query, &headers);
    let built = async {
        let figures = state.figures().await?;
        let tables = state
            .warehouse
            .table_status()
            .await?
            .into_iter()
            .map(|t| TableLine {
                table: t.table,
                version: t.version,
                committed: t.committed_at.map(|at| lang.date_time(at)).unwrap_or_default(),
                files: t.active.count,
                megabytes: lang.number(t.active.bytes as f64 / (1024.0 * 1024.0), 1),
            })
            .collect();
        let mut submissions = figures.submissions.clone();
        submissions.sort_by_key(|s| std::cmp::Reverse(s.uploaded_at));
        let commits = submissions
            .iter()
            .take(SHOWN)
            .map(|s| EventLine {
                at: when(s.uploaded_at, lang),
                actor: s.uploaded_by.clone(),
                action: format!(
                    "{} {} {}",
                    lang.report_kind(s.kind),
                    s.province_code.as_deref().unwrap_or_default(),
                    s.school_year
                ),
                outcome: lang.number(s.rows as f64, 0),
                detail: s.file_name.clone(),
            })
            .collect();
        let last = |action: &str| {
            format!(
                "SELECT CAST(at AS BIGINT) AS at, actor, action, outcome, detail FROM audit_log \
                 WHERE action = '{action}' AND outcome = 'ok' ORDER BY at DESC LIMIT 1"
            )
        };
        let backup = events(&state, &last("backup"), lang).await?.pop();
        let upkeep = events(&state, &last("maintain"), lang).await?.pop();
        let trouble = events(
            &state,
            &format!(
                "SELECT CAST(at AS BIGINT) AS at, actor, action, outcome, detail FROM audit_log \
                 WHERE outcome NOT IN ({FINE}) ORDER BY at DESC LIMIT {SHOWN}"
            ),
            lang,
        )
        .await?;
        Ok::<_, AppError>(StatusPage {
            chrome: Chrome::new(&figures, lang, &query),
            tables,
            commits,
            backup,
            upkeep,
            trouble,
        })
    };
    let page = built.await.map_err(|e| e.in_lang(lang))?;
    let html = page.render().map_err(|e| AppError::internal(e).in_lang(lang))?;
    Ok(Html(html))
}

/// Audit events a query of the server's own chooses.
async fn events(state: &AppState, sql: &str, lang: Lang) -> Result<Vec<EventLine>, AppError> {
    let batches = state.warehouse.query(sql, &TableVersions::new()).await?;
    let json = warehouse::render(&batches, OutputFormat::Json)?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).map_err(AppError::internal)?;
    let text = |row: &serde_json::Value, key: &str| row[key].as_str().unwrap_or_default().to_string();
    Ok(rows
        .iter()
        .map(|row| EventLine {
            at: when(row["at"].as_i64().unwrap_or_default(), lang),
            actor: text(row, "actor"),
            action: text(row, "action"),
            outcome: text(row, "outcome"),
            detail: text(row, "detail"),
        })
        .collect())
}
