//! `POST /api/v1/sql`: a query's result as JSON, or as a download by the `Accept` header.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use serde::Deserialize;

use super::super::error::AppError;
use super::super::roles::Querier;
use super::export::{Export, download};
use super::slots::{audit_query, audited, run_shown};
use crate::AppState;

/// `{"sql": …}`.
#[derive(Debug, Deserialize)]
pub struct SqlBody {
    pub(super) sql: String,
}

/// The query of an API request: a JSON body's `sql`, or the body as text.
fn query_text(headers: &HeaderMap, body: &[u8]) -> Result<String, AppError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        serde_json::from_slice::<SqlBody>(body)
            .map(|b| b.sql)
            .map_err(|e| AppError::BadRequest(format!("send {{\"sql\": \"SELECT …\"}}: {e}")))
    } else {
        String::from_utf8(body.to_vec()).map_err(|_| AppError::BadRequest("the query is not UTF-8 text".into()))
    }
}

/// `POST /api/v1/sql`.
pub(super) async fn api_sql(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let sql = audited(&state, &caller, "", started, query_text(&headers, &body)).await?;
    let slot = audited(
        &state,
        &caller,
        &sql,
        started,
        state.query_slots.take(&caller.account.name).await,
    )
    .await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let limits = state.settings.query_limits;
    let format = [Export::Csv, Export::Arrow, Export::Parquet, Export::Xlsx]
        .into_iter()
        .find(|f| accept.contains(f.content_type().split(';').next().unwrap_or_default()));
    if let Some(format) = format {
        return download(&state, &caller, sql, limits, format, slot).await;
    }
    let answer = run_shown(&state, caller.role(), &sql, &limits).await;
    audit_query(&state, &caller, &sql, started, answer.as_ref().map(|(_, total)| *total)).await;
    let (batches, total) = answer?;
    let rows = warehouse::render(&batches, warehouse::OutputFormat::Json)?;
    let shown: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"rows\":{},\"shown\":{shown},\"total\":{total},\"elapsed_ms\":{}}}",
            rows.trim_end(),
            started.elapsed().as_millis()
        ),
    )
        .into_response();
    if shown < total {
        let headers = response.headers_mut();
        headers.insert("khoso-rows-shown", HeaderValue::from(shown));
        headers.insert("khoso-rows-total", HeaderValue::from(total));
    }
    Ok(response)
}
