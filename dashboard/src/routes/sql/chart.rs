//! Charts of a result: `POST /api/v1/sql/chart` and `/sql/chart?q=…&format=svg|png`, and the
//! chart request they share with the workbench.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::error::AppError;
use super::super::page::PageError;
use super::super::page::{PageQuery, language};
use super::super::roles::Querier;
use super::slots::{QuerySlot, audit_query, audited, run_shown};
use crate::AppState;
use crate::auth::Caller;
use crate::charts::result::{ChartKind, ChartSpec, ResultColumns};
use crate::i18n::Lang;

/// A chart of a query: the query (`sql`, or `q` in a link) and, each left out for the first
/// guess, the kind (`chart`), the columns (`x`, `y`, `series`) and the format (`svg`, `png`).
#[derive(Debug, Default, Deserialize)]
pub struct ChartRequest {
    #[serde(alias = "q")]
    pub(super) sql: String,
    pub(super) chart: Option<String>,
    pub(super) x: Option<String>,
    pub(super) y: Option<String>,
    pub(super) series: Option<String>,
    pub(super) format: Option<String>,
    pub(super) lang: Option<String>,
}

impl ChartRequest {
    /// The chart asked for, the first guess giving what was not asked.
    pub(super) fn spec(&self, columns: &ResultColumns, lang: Lang) -> Result<ChartSpec, AppError> {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let guess = columns.guess();
        let kind = match given(&self.chart).filter(|c| c != "auto") {
            Some(name) => ChartKind::parse(&name).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "{} {name:?}: {} bar, stacked_bar, line, scatter, map",
                    lang.pick("Không có loại biểu đồ", "No chart kind"),
                    lang.pick("hãy dùng", "use")
                ))
            })?,
            None => guess.as_ref().map(|g| g.kind).ok_or_else(|| {
                AppError::BadRequest(
                    lang.pick(
                        "Không đoán được biểu đồ cho kết quả này (cần ít nhất một cột số): hãy chọn loại và các cột.",
                        "No chart fits this result at first sight (it needs a column of numbers): pick a kind and \
                         its columns.",
                    )
                    .to_string(),
                )
            })?,
        };
        // Another kind than the guess draws the guess's columns, unless others are picked.
        let x = given(&self.x).or_else(|| guess.as_ref().map(|g| g.x.clone()));
        let y = given(&self.y).or_else(|| guess.as_ref().map(|g| g.y.clone()));
        let (Some(x), Some(y)) = (x, y) else {
            return Err(AppError::BadRequest(
                lang.pick(
                    "Hãy chọn cột nhãn (x) và cột số (y) cho biểu đồ này.",
                    "Pick the column of labels (x) and the column of numbers (y) for this chart.",
                )
                .to_string(),
            ));
        };
        let series = match &self.series {
            Some(series) => Some(series.clone()).filter(|s| !s.is_empty()),
            None => guess.and_then(|g| g.series),
        };
        Ok(ChartSpec { kind, x, y, series })
    }

    /// The language asked for, else the caller's.
    fn lang(&self, headers: &HeaderMap) -> Lang {
        let asked = PageQuery {
            lang: self.lang.clone(),
            ..PageQuery::default()
        };
        language(&asked, headers)
    }

    /// Runs the query and answers with the chart asked for as an image of `format`, or says
    /// why it cannot; the account's query slot is held until the image is made.
    async fn image(
        &self,
        state: &AppState,
        caller: &Caller,
        lang: Lang,
        format: Option<&str>,
        download: bool,
    ) -> Result<Response, AppError> {
        chart_format(format)?;
        let deadline = Instant::now() + state.settings.query_limits.timeout;
        let (columns, _slot) = chart_rows(state, caller, &self.sql).await?;
        let spec = self.spec(&columns, lang)?;
        let left = || deadline.saturating_duration_since(Instant::now());
        let svg = columns
            .draw_within(&spec, lang, left())
            .await
            .map_err(AppError::BadRequest)?;
        chart_image(svg, format, lang, left(), download).await
    }

    /// The query string of the same chart, for a link.
    pub(super) fn link(&self, spec: &ChartSpec, lang: Lang) -> String {
        let encode = |text: &str| super::super::page::percent_encode(text.as_bytes());
        format!(
            "q={}&chart={}&x={}&y={}&series={}&lang={}",
            encode(&self.sql),
            spec.kind.as_str(),
            encode(&spec.x),
            encode(&spec.y),
            encode(spec.series.as_deref().unwrap_or_default()),
            lang.code()
        )
    }
}

/// Runs a chart's query as any query (limits, the account's slots, the audit) and reads its
/// first [`ROWS_SHOWN`] rows; the account's slot is kept until the chart is drawn.
async fn chart_rows(state: &AppState, caller: &Caller, sql: &str) -> Result<(Arc<ResultColumns>, QuerySlot), AppError> {
    let started = Instant::now();
    let slot = audited(
        state,
        caller,
        sql,
        started,
        state.query_slots.take(&caller.account.name).await,
    )
    .await?;
    let answer = run_shown(state, caller.role(), sql, &state.settings.query_limits).await;
    audit_query(state, caller, sql, started, answer.as_ref().map(|(_, total)| *total)).await;
    let (batches, _) = answer?;
    Ok((
        Arc::new(ResultColumns::read(&batches).map_err(AppError::internal)?),
        slot,
    ))
}

/// The image formats of a chart: (content type, extension).
fn chart_format(format: Option<&str>) -> Result<(&'static str, &'static str), AppError> {
    match format.unwrap_or("svg") {
        "svg" => Ok(("image/svg+xml", "svg")),
        "png" => Ok(("image/png", "png")),
        other => Err(AppError::BadRequest(format!("no format {other:?}: use svg or png"))),
    }
}

/// A chart as an image answer: SVG, or PNG (rasterised off the async threads, given up past
/// `within`: a tall chart is a few tens of milliseconds of rasterising).
async fn chart_image(
    svg: String,
    format: Option<&str>,
    lang: Lang,
    within: std::time::Duration,
    download: bool,
) -> Result<Response, AppError> {
    let (content_type, extension) = chart_format(format)?;
    let body = match extension {
        "png" => crate::charts::result::png_within(svg, lang, within)
            .await
            .map_err(AppError::BadRequest)?,
        _ => svg.into_bytes(),
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if download {
        let disposition = format!("attachment; filename=\"khoso-chart.{extension}\"");
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// `POST /api/v1/sql/chart` (`{"sql": …, "chart": …, "x": …, "y": …, "series": …, "format":
/// "svg"|"png", "lang": "vi"|"en"}`): the chart of a query's result.
pub(super) async fn api_chart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let request: ChartRequest = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            "send {{\"sql\": \"SELECT …\", \"chart\": \"bar\", \"x\": …, \"y\": …, \"format\": \"svg\"}}: {e}"
        ))
    })?;
    let lang = request.lang(&headers);
    let png = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("image/png"));
    let format = request.format.as_deref().or(png.then_some("png"));
    request.image(&state, &caller, lang, format, false).await
}

/// `/sql/chart?q=…&chart=…&x=…&y=…&series=…&format=svg|png`: a chart of the workbench to
/// download.
pub(super) async fn chart_download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(request): Query<ChartRequest>,
    Querier { caller, .. }: Querier,
) -> Result<Response, PageError> {
    let lang = request.lang(&headers);
    request
        .image(&state, &caller, lang, request.format.as_deref(), true)
        .await
        .map_err(|e| e.in_lang(lang))
}
