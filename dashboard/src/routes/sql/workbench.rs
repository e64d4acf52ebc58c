//! The `/sql` workbench page: the schema browser, the editor with examples, history and saved
//! queries, the result and its chart.

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use serde::Deserialize;
use warehouse::TableVersions;
use warehouse::people::workbench::Workbench;
use warehouse::query::guard::{Position, QueryLimits};

use super::super::error::AppError;
use super::super::page::PageError;
use super::super::page::{Chrome, PageQuery, language};
use super::super::roles::Querier;
use super::chart::ChartRequest;
use super::export::{Export, download};
use super::slots::{audit_query, run_in_slot};
use crate::AppState;
use crate::auth::Caller;
use crate::charts::result::{ChartKind, ResultColumns};
use crate::i18n::{Lang, Words};

/// A column of the schema browser.
pub struct ColumnInfo {
    pub(super) name: String,
    pub(super) data_type: String,
    pub(super) description: String,
}

/// A table of the schema browser.
pub struct TableInfo {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) columns: Vec<ColumnInfo>,
}

/// `/sql`.
#[derive(Template)]
#[template(path = "sql.html")]
pub struct SqlPage {
    pub(super) chrome: Chrome,
    pub(super) csrf: String,
    pub(super) sql: String,
    pub(super) error: String,
    /// Where the error points: line, column, and that line with a caret under the column.
    pub(super) error_at: Option<(usize, usize, String)>,
    pub(super) notice: String,
    pub(super) header: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
    pub(super) tables: Vec<TableInfo>,
    pub(super) examples: Vec<(String, String)>,
    pub(super) history: Vec<(String, String, String)>,
    pub(super) saved: Vec<(String, String, String)>,
    pub(super) chart: Option<ChartView>,
    /// The boards a chart can be pinned to: (id, name).
    pub(super) boards: Vec<(String, String)>,
}

/// The chart of a result on `/sql`: the drawing (or why there is none), and the picker.
pub struct ChartView {
    /// The kind drawn (empty when none).
    pub(super) kind: String,
    pub(super) svg: String,
    pub(super) problem: String,
    /// The kinds: (name, label, picked).
    pub(super) kinds: Vec<(String, String, bool)>,
    pub(super) columns: Vec<String>,
    pub(super) x: String,
    pub(super) y: String,
    pub(super) series: String,
    /// The query string of the chart's downloads.
    pub(super) download: String,
}
/// `/sql?q=…` opens a query from the history, `/sql?saved=ID` a saved one.
#[derive(Debug, Default, Deserialize)]
pub struct SqlQuery {
    pub(super) lang: Option<String>,
    pub(super) q: Option<String>,
    pub(super) saved: Option<String>,
}

/// A query as a link that opens it in the workbench.
fn open_link(sql: &str) -> String {
    format!("/sql?q={}", super::super::page::percent_encode(sql.as_bytes()))
}

/// What the workbench form sends.
#[derive(Debug, Deserialize, Default)]
pub struct SqlForm {
    pub(super) sql: Option<String>,
    pub(super) csrf: Option<String>,
    pub(super) format: Option<String>,
    pub(super) chart: Option<String>,
    pub(super) x: Option<String>,
    pub(super) y: Option<String>,
    pub(super) series: Option<String>,
}

fn examples(lang: Lang) -> Vec<(String, String)> {
    vec![
        (
            lang.pick("Một chỉ tiêu theo tỉnh", "A KPI by province").to_string(),
            "SELECT unit AS province, school_year, round(value, 1) AS value, status\nFROM kpi_values\nWHERE kpi_id = 'T1_pupils' AND dimension = 'province'\nORDER BY school_year, value DESC".to_string(),
        ),
        (
            lang.pick("Cộng dồn qua sáp nhập tỉnh", "The merger roll-up").to_string(),
            "SELECT p.name_vi, s.school_year, sum(s.students) AS pupils\nFROM school_reports s\nJOIN provinces p ON p.code = s.province_2025_code AND p.valid_to IS NULL\nGROUP BY 1, 2 ORDER BY 1, 2".to_string(),
        ),
        (
            lang.pick("Tình hình nộp báo cáo", "Reporting completeness").to_string(),
            "SELECT school_year, kind, count(DISTINCT province_code) AS provinces, max(uploaded_at) AS last_upload\nFROM submissions GROUP BY 1, 2 ORDER BY 1, 2".to_string(),
        ),
    ]
}

/// Every table and view the caller may read, with its columns, types and descriptions.
async fn schema_browser(state: &AppState, caller: &Caller, lang: Lang) -> Vec<TableInfo> {
    let query = "SELECT table_name, column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = 'public' ORDER BY table_name, ordinal_position";
    let Ok(batches) = state
        .warehouse
        .query_limited(query, &TableVersions::new(), &QueryLimits::default(), caller.role())
        .await
    else {
        return Vec::new();
    };
    let Ok(csv) = warehouse::render(&batches, warehouse::OutputFormat::Csv) else {
        return Vec::new();
    };
    let described = |table: &str, column: &str| -> String {
        ingest::ReportKind::ALL
            .into_iter()
            .find(|k| warehouse::fact_table(*k) == table)
            .and_then(|k| k.schema().columns.iter().find(|c| c.name == column))
            .map(|c| lang.pick(&c.description_vi, &c.description_en).to_string())
            .unwrap_or_default()
    };
    let mut tables: Vec<TableInfo> = Vec::new();
    for line in csv.lines().skip(1) {
        let mut fields = line.splitn(3, ',');
        let (Some(table), Some(column), Some(data_type)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if tables.last().is_none_or(|t| t.name != table) {
            tables.push(TableInfo {
                name: table.to_string(),
                description: warehouse::tables::catalogue::entry(table)
                    .map(|t| lang.pick(t.description_vi, t.description_en).to_string())
                    .unwrap_or_default(),
                columns: Vec::new(),
            });
        }
        if let Some(last) = tables.last_mut() {
            last.columns.push(ColumnInfo {
                name: column.to_string(),
                data_type: data_type.trim_matches('"').to_string(),
                description: described(table, column),
            });
        }
    }
    let metrics = state.warehouse.metrics().ok();
    for table in &mut tables {
        if let Some(view) = metrics.and_then(|m| m.views.iter().find(|v| v.name == table.name)) {
            for column in &mut table.columns {
                if column.description.is_empty() {
                    column.description = lang.pick(&view.description_vi, &view.description_en).to_string();
                }
            }
        }
    }
    tables
}

async fn workbench(
    state: &AppState,
    caller: Caller,
    form: SqlForm,
    opened: Option<SqlQuery>,
    lang: Lang,
    post: bool,
) -> Result<Response, AppError> {
    let figures = state.figures().await?;
    let mut page = SqlPage {
        chrome: Chrome::new(&figures, lang, &PageQuery::default()),
        csrf: caller.csrf.clone().unwrap_or_default(),
        sql: form.sql.clone().unwrap_or_else(|| examples(lang)[0].1.clone()),
        error: String::new(),
        error_at: None,
        notice: String::new(),
        header: Vec::new(),
        rows: Vec::new(),
        tables: schema_browser(state, &caller, lang).await,
        examples: examples(lang),
        history: Vec::new(),
        saved: Vec::new(),
        chart: None,
        boards: Vec::new(),
    };
    let workbench = Workbench::new(state.warehouse.layout());
    let saved = workbench.saved().await?;
    if !post && let Some(id) = opened.as_ref().and_then(|o| o.saved.as_deref()) {
        let query = saved
            .iter()
            .find(|q| q.id == id)
            .ok_or_else(|| AppError::NotFound(format!("no saved query {id:?}")))?;
        page.sql = query.sql.clone();
    }
    if !post && let Some(sql) = opened.as_ref().and_then(|o| o.q.clone()) {
        page.sql = sql;
    }
    page.boards = workbench.boards().await?.into_iter().map(|b| (b.id, b.name)).collect();
    page.saved = saved
        .iter()
        .map(|q| (format!("/sql?saved={}", q.id), q.name.clone(), q.owner.clone()))
        .collect();
    if post {
        super::super::page::check_csrf(&caller, form.csrf.as_deref())?;
        let sql = page.sql.clone();
        if let Some(format) = form.format.as_deref().filter(|f| !f.is_empty()) {
            let format = Export::parse(format)?;
            let slot = state.query_slots.take(&caller.account.name).await?;
            return download(state, &caller, sql, state.settings.query_limits, format, slot).await;
        }
        let started = Instant::now();
        let answer = run_in_slot(state, &caller, &sql).await;
        audit_query(state, &caller, &sql, started, answer.as_ref().map(|(_, total)| *total)).await;
        match answer {
            Ok((batches, total)) => {
                let request = ChartRequest {
                    sql: sql.clone(),
                    chart: form.chart.clone(),
                    x: form.x.clone(),
                    y: form.y.clone(),
                    series: form.series.clone(),
                    ..ChartRequest::default()
                };
                page.chart = chart_view(&batches, &request, lang, state.settings.query_limits.timeout).await;
                let shown: usize = batches.iter().map(RecordBatch::num_rows).sum();
                if let Some(first) = batches.first() {
                    page.header = first.schema().fields().iter().map(|f| f.name().clone()).collect();
                }
                let options = datafusion::arrow::util::display::FormatOptions::default().with_null("∅");
                for batch in &batches {
                    let formatters = batch
                        .columns()
                        .iter()
                        .map(|c| datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(AppError::internal)?;
                    for row in 0..batch.num_rows() {
                        page.rows
                            .push(formatters.iter().map(|f| f.value(row).to_string()).collect());
                    }
                }
                let elapsed = lang.number(started.elapsed().as_secs_f64() * 1000.0, 0);
                page.notice = if shown < total {
                    format!(
                        "{} {} / {} {} ({elapsed} ms) — {}",
                        lang.pick("Hiển thị", "Showing"),
                        lang.number(shown as f64, 0),
                        lang.number(total as f64, 0),
                        lang.pick("dòng", "rows"),
                        lang.pick("tải xuống để có mọi dòng", "download for every row")
                    )
                } else {
                    format!(
                        "{} {} ({elapsed} ms)",
                        lang.number(total as f64, 0),
                        lang.pick("dòng", "rows")
                    )
                };
            }
            // A query's error is the workbench's answer: shown on the page, at its place in the text.
            Err(e) => {
                page.error = e.to_string();
                page.error_at = Position::of_error(&sql, &page.error).map(|at| (at.line, at.column, at.marked(&sql)));
            }
        }
    }
    page.history = workbench
        .history(&caller.account.id, 20)
        .await?
        .into_iter()
        .map(|h| {
            let when = chrono::DateTime::from_timestamp_micros(h.at)
                .map(|at| lang.date_time(at))
                .unwrap_or_default();
            let result = match (h.rows, h.error) {
                (Some(rows), _) => format!(
                    "{} {}, {} ms",
                    lang.number(rows as f64, 0),
                    lang.pick("dòng", "rows"),
                    h.millis
                ),
                (None, Some(error)) => error.chars().take(80).collect(),
                (None, None) => String::new(),
            };
            (
                open_link(&h.sql),
                format!("{when} — {}", h.sql.chars().take(90).collect::<String>()),
                result,
            )
        })
        .collect();
    let status = if page.error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page.render()
        .map(|html| (status, Html(html)).into_response())
        .map_err(AppError::internal)
}

/// The chart of a result shown on `/sql`, with its picker; none for a result without columns.
/// Drawn off the page threads, given up past `within`.
async fn chart_view(
    batches: &[RecordBatch],
    request: &ChartRequest,
    lang: Lang,
    within: std::time::Duration,
) -> Option<ChartView> {
    let columns = Arc::new(ResultColumns::read(batches).ok()?);
    if columns.names().is_empty() {
        return None;
    }
    let drawn = async {
        let spec = request.spec(&columns, lang)?;
        let svg = columns
            .draw_within(&spec, lang, within)
            .await
            .map_err(AppError::BadRequest)?;
        Ok::<_, AppError>((spec, svg))
    };
    // A chart that cannot be drawn is said beside the result, which stays.
    let (spec, svg, problem) = match drawn.await {
        Ok((spec, svg)) => (Some(spec), svg, String::new()),
        Err(e) => (None, String::new(), e.to_string()),
    };
    Some(ChartView {
        kind: spec.as_ref().map(|s| s.kind.as_str().to_string()).unwrap_or_default(),
        svg,
        problem,
        kinds: ChartKind::ALL
            .into_iter()
            .map(|k| {
                let picked = spec.as_ref().is_some_and(|s| s.kind == k);
                (k.as_str().to_string(), k.label(lang).to_string(), picked)
            })
            .collect(),
        columns: columns.names().to_vec(),
        x: spec.as_ref().map(|s| s.x.clone()).unwrap_or_default(),
        y: spec.as_ref().map(|s| s.y.clone()).unwrap_or_default(),
        series: spec.as_ref().and_then(|s| s.series.clone()).unwrap_or_default(),
        download: spec.as_ref().map(|s| request.link(s, lang)).unwrap_or_default(),
    })
}

pub(super) async fn sql_page(
    State(state): State<AppState>,
    Query(query): Query<SqlQuery>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
) -> Result<Response, PageError> {
    let page_query = PageQuery {
        lang: query.lang.clone(),
        ..PageQuery::default()
    };
    let lang = language(&page_query, &headers);
    workbench(&state, caller, SqlForm::default(), Some(query), lang, false)
        .await
        .map_err(|e| e.in_lang(lang))
}

pub(super) async fn sql_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    axum::Form(form): axum::Form<SqlForm>,
) -> Result<Response, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    workbench(&state, caller, form, None, lang, true)
        .await
        .map_err(|e| e.in_lang(lang))
}

/// The form that saves a query.
#[derive(Debug, Deserialize)]
pub struct SaveForm {
    pub(super) csrf: Option<String>,
    pub(super) name: String,
    pub(super) sql: String,
}

/// `POST /sql/save`: saves the editor's query under a name; answers with its link.
pub(super) async fn save_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    axum::Form(form): axum::Form<SaveForm>,
) -> Result<axum::response::Redirect, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    super::super::page::check_csrf(&caller, form.csrf.as_deref()).map_err(|e| e.in_lang(lang))?;
    let query = Workbench::new(state.warehouse.layout())
        .save(&form.name, &form.sql, &caller.account.name)
        .await
        .map_err(|e| AppError::from(e).in_lang(lang))?;
    Ok(axum::response::Redirect::to(&format!("/sql?saved={}", query.id)))
}
