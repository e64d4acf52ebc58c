//! The JSON API: the same numbers as the pages and as `khoso kpi`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use warehouse::Submission;
use warehouse::kpi::metrics::Dimension;
use warehouse::people::rights::lists_submission;
use warehouse::tables::rows::KpiRow;

use super::error::AppError;
use super::page::{OrPage, PageError};
use crate::AppState;
use crate::auth::Caller;
use crate::figures::Figures;
use crate::i18n::Lang;

/// The OpenAPI document of `/api/v1`.
const OPENAPI: &str = include_str!("openapi.json");

/// The API's figures (under the figures' revalidation): KPIs and submissions (whose `POST` is
/// the upload's).
pub fn figures_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/kpis", get(kpis))
        .route("/api/v1/kpis/{id}", get(kpi))
        .route(
            "/api/v1/submissions",
            get(submissions).merge(super::upload::api_route(state)),
        )
}

/// The API's fixed answers: the provinces and the OpenAPI document.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/provinces", get(provinces)).route(
        "/api/v1/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
    )
}

/// `?by=&year=`.
#[derive(Debug, Default, Deserialize)]
pub struct ApiQuery {
    by: Option<String>,
    year: Option<String>,
}

fn dimension(by: Option<&str>) -> Result<Dimension, AppError> {
    by.unwrap_or("national")
        .parse()
        .map_err(|e: warehouse::Error| AppError::BadRequest(e.to_string()))
}

fn in_year<'a>(rows: Vec<&'a KpiRow>, year: Option<&str>) -> Vec<&'a KpiRow> {
    match year {
        Some(year) => rows.into_iter().filter(|r| r.school_year == year).collect(),
        None => rows,
    }
}

/// `GET /api/v1/kpis?year=`: every KPI's national values.
async fn kpis(Extension(figures): Extension<Arc<Figures>>, Query(query): Query<ApiQuery>) -> Response {
    Json(serde_json::json!({
        "source_versions": figures.tag,
        "values": in_year(figures.all(Dimension::National), query.year.as_deref()),
    }))
    .into_response()
}

/// `GET /api/v1/kpis/{id}?by=&year=`: one KPI, split by a dimension.
async fn kpi(
    Extension(figures): Extension<Arc<Figures>>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ApiQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let metrics = state.warehouse.metrics()?;
    let kpi = metrics
        .kpi(&id)
        .ok_or_else(|| AppError::NotFound(format!("no KPI {id:?}")))?;
    let dimension = dimension(query.by.as_deref())?;
    if !kpi.all_dimensions().contains(&dimension) {
        return Err(AppError::BadRequest(format!("{id} is not split by {dimension}")));
    }
    Ok(Json(serde_json::json!({
        "kpi": {
            "id": kpi.id, "name_vi": kpi.name_vi, "name_en": kpi.name_en, "source": kpi.source,
            "table": kpi.table, "numerator": kpi.numerator, "denominator": kpi.denominator, "filter": kpi.filter,
        },
        "by": dimension.as_str(),
        "source_versions": figures.tag,
        "values": in_year(figures.rows(&id, dimension), query.year.as_deref()),
    })))
}

/// `GET /api/v1/provinces`: both province lists and the crosswalk.
async fn provinces() -> Response {
    let registry = ingest::ProvinceRegistry::shipped();
    let provinces: Vec<serde_json::Value> = registry
        .before_2025
        .iter()
        .chain(&registry.from_2025)
        .map(|p| {
            serde_json::json!({
                "code": p.code, "name_vi": p.name_vi, "name_en": p.name_en, "region_code": p.region_code,
                "valid_from": p.valid_from.to_string(), "valid_to": p.valid_to.map(|d| d.to_string()),
                "province_2025_code": p.code_2025, "merged_from": p.merged_from,
            })
        })
        .collect();
    Json(provinces).into_response()
}

/// `GET /api/v1/submissions`: every accepted file, oldest first; a province account sees its
/// own province's only.
async fn submissions(
    State(state): State<AppState>,
    Extension(figures): Extension<Arc<Figures>>,
    Extension(caller): Extension<Option<Caller>>,
) -> Response {
    let reader = caller.as_ref().map(|c| (c.role(), c.account.province.as_deref()));
    let visible: Vec<&Submission> = figures
        .submissions
        .iter()
        .filter(|s| lists_submission(state.settings.private, reader, s.province_code.as_deref()))
        .collect();
    Json(visible).into_response()
}

/// `GET /kpi/{id}.csv?by=`: the KPI's values as CSV, spreadsheet-safe.
pub async fn kpi_csv(state: &AppState, id: &str, by: Option<&str>, lang: Lang) -> Result<Response, PageError> {
    let answer = async {
        let metrics = state.warehouse.metrics()?;
        let kpi = metrics
            .kpi(id)
            .ok_or_else(|| AppError::NotFound(format!("no KPI {id:?}")))?;
        let dimension = dimension(by)?;
        let dimension = if kpi.all_dimensions().contains(&dimension) {
            dimension
        } else {
            Dimension::National
        };
        let batches = state
            .warehouse
            .query(
                &format!(
                    "SELECT * FROM kpi_values WHERE kpi_id = '{}' AND dimension = '{}' ORDER BY unit, school_year",
                    kpi.id,
                    dimension.as_str()
                ),
                &warehouse::TableVersions::new(),
            )
            .await?;
        Ok::<_, AppError>(warehouse::render(&batches, warehouse::OutputFormat::Csv)?)
    };
    let csv = answer.await.or_page(lang)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}
