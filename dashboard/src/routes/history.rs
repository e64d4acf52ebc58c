//! `/history?kind=&province=&year=`: every version of one slice — file, who, when, rows, rows
//! added and removed, totals before and after.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ingest::{ReportKind, SchoolYear};
use serde::Deserialize;

use super::error::AppError;
use super::page::{Chrome, PageQuery, language, respond};
use crate::AppState;
use crate::i18n::{Lang, Words};

/// Which slice.
#[derive(Debug, Deserialize)]
pub struct SliceQuery {
    kind: String,
    province: Option<String>,
    year: String,
    lang: Option<String>,
}

/// One version of the slice.
pub struct VersionRow {
    file_name: String,
    by: String,
    at: String,
    rows: String,
    added: String,
    removed: String,
    totals: Vec<(String, String)>,
    sha256: String,
    table_version: i64,
}

/// The page.
#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    chrome: Chrome,
    title: String,
    versions: Vec<VersionRow>,
}

pub async fn history(State(state): State<AppState>, Query(slice): Query<SliceQuery>, headers: HeaderMap) -> Response {
    let query = PageQuery {
        lang: slice.lang.clone(),
        year: Some(slice.year.clone()),
        ..PageQuery::default()
    };
    let lang = language(&query, &headers);
    respond(history_page(&state, &slice, &query, lang).await, &query, lang)
}

async fn history_page(
    state: &AppState,
    slice: &SliceQuery,
    query: &PageQuery,
    lang: Lang,
) -> Result<HistoryPage, AppError> {
    let kind: ReportKind = slice
        .kind
        .parse()
        .map_err(|_| AppError::BadRequest("kind is school, university or content".into()))?;
    let year: SchoolYear = slice
        .year
        .parse()
        .map_err(|_| AppError::BadRequest("year is a school year like 2024-2025".into()))?;
    let province = slice.province.as_deref().filter(|p| !p.is_empty());
    let versions = state.warehouse.slice_history(kind, province, year).await?;
    let figures = state.figures().await?;
    let versions = versions
        .into_iter()
        .rev()
        .map(|v| VersionRow {
            file_name: v.submission.file_name.clone(),
            by: v.submission.uploaded_by.clone(),
            at: chrono::DateTime::from_timestamp_micros(v.submission.uploaded_at)
                .map(|at| lang.date_time(at))
                .unwrap_or_default(),
            rows: lang.number(v.submission.rows as f64, 0),
            added: lang.number(v.added as f64, 0),
            removed: lang.number(v.removed as f64, 0),
            totals: v
                .totals
                .iter()
                .take(3)
                .map(|(name, before, after)| {
                    (
                        name.clone(),
                        format!("{} → {}", lang.number(*before as f64, 0), lang.number(*after as f64, 0)),
                    )
                })
                .collect(),
            sha256: v.submission.sha256.chars().take(12).collect(),
            table_version: v.submission.table_version,
        })
        .collect();
    Ok(HistoryPage {
        chrome: Chrome::new(&figures, lang, query),
        title: format!(
            "{} — {}{}",
            lang.report_kind(kind),
            province
                .map(|p| format!("{} {p}, ", lang.pick("tỉnh", "province")))
                .unwrap_or_default(),
            year
        ),
        versions,
    })
}
