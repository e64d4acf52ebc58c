//! The empty report templates, `/templates/{kind}.{csv|xlsx}?lang=&year=`, from the report
//! schemas.

use std::path::PathBuf;

use axum::Router;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ingest::{ReportKind, SchoolYear};

use super::error::AppError;
use super::page::{OrPage, PageError};
use super::page::{PageQuery, language};
use crate::AppState;

/// The templates' route.
pub fn router() -> Router<AppState> {
    Router::new().route("/templates/{file}", get(template))
}

/// `/templates/{kind}.{csv|xlsx}?lang=&year=`: the empty report template, for reports of a
/// school year when one is given (a column added later is left out), else the newest.
async fn template(
    UrlPath(file): UrlPath<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let lang = language(&query, &headers);
    let (kind, extension) = file.rsplit_once('.').unwrap_or((&file, ""));
    let Ok(kind) = kind.parse::<ReportKind>() else {
        return Err(AppError::NotFound(format!("no template {file:?}")).in_lang(lang));
    };
    let year = match query
        .year
        .as_deref()
        .filter(|y| !y.is_empty())
        .map(str::parse::<SchoolYear>)
    {
        None => None,
        Some(Ok(year)) => Some(year),
        Some(Err(_)) => {
            return Err(AppError::BadRequest(
                lang.pick(
                    "Năm học viết dạng 2026-2027.",
                    "A school year is written like 2026-2027.",
                )
                .to_string(),
            )
            .in_lang(lang));
        }
    };
    let name = match year {
        Some(year) => format!("{kind}-template-{year}-{}.{extension}", lang.code()),
        None => format!("{kind}-template-{}.{extension}", lang.code()),
    };
    let bytes = match extension {
        "csv" => {
            let mut out = Vec::new();
            ingest::template::write_csv_template(kind.schema(), lang, year, &mut out).map(|()| out)
        }
        "xlsx" => {
            let dir = tempfile_dir().map_err(AppError::internal).or_page(lang)?;
            let path = dir.join(&name);
            let written = ingest::template::write_xlsx_template(kind.schema(), lang, year, &path)
                .and_then(|()| std::fs::read(&path).map_err(ingest::Error::from));
            std::fs::remove_dir_all(&dir).ok();
            written
        }
        _ => return Err(AppError::NotFound(format!("no template {file:?}: use .csv or .xlsx")).in_lang(lang)),
    };
    let bytes = bytes.map_err(AppError::internal).or_page(lang)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                if extension == "csv" {
                    "text/csv; charset=utf-8".to_string()
                } else {
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string()
                },
            ),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        bytes,
    )
        .into_response())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("khoso-template-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
