//! SQL for planners: `POST /api/v1/sql` (JSON, CSV or Arrow IPC by the `Accept` header) and
//! the `/sql` workbench. Analysts and admins only; the same guard rails as every SQL path —
//! reading statements only, a time limit that cancels the work, a memory limit, a cap on the
//! text — plus a cap on each account's concurrent queries. Every query is audited (who, when,
//! how long, how many rows).
//!
//! Shown results stop at a row limit and say so ("showing N of M rows", or the
//! `Khoso-Rows-Shown` / `Khoso-Rows-Total` headers); CSV and Arrow downloads stream every row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::writer::StreamWriter;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use warehouse::TableVersions;
use warehouse::accounts::Role;
use warehouse::audit::AuditEvent;
use warehouse::guard::QueryLimits;

use super::AppError;
use super::pages::{Chrome, PageQuery, language};
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Lang;

/// Rows a page or a JSON answer shows; the rest is in the downloads.
pub const ROWS_SHOWN: usize = 1000;

/// Queries one account may run at once.
pub const QUERIES_PER_ACCOUNT: usize = 2;

/// The running queries of each account.
#[derive(Debug, Clone, Default)]
pub struct QuerySlots {
    slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl QuerySlots {
    async fn take(&self, account: &str) -> Result<OwnedSemaphorePermit, AppError> {
        let semaphore = Arc::clone(
            self.slots
                .lock()
                .await
                .entry(account.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(QUERIES_PER_ACCOUNT))),
        );
        semaphore.try_acquire_owned().map_err(|_| {
            AppError::TooMany(format!(
                "{QUERIES_PER_ACCOUNT} of your queries are running already: wait for one to finish"
            ))
        })
    }
}

/// Who may query: analysts and admins.
fn querier(caller: Option<Caller>) -> Result<Caller, AppError> {
    match caller {
        Some(caller) if caller.role() != Role::Province => Ok(caller),
        Some(_) => Err(AppError::Forbidden(
            "a province account uploads; SQL is for analyst and admin accounts".into(),
        )),
        None => Err(AppError::Unauthorized(
            "sign in first: send Authorization: Bearer TOKEN".into(),
        )),
    }
}

/// The audit log and review decisions are for admins.
fn check_tables(caller: &Caller, sql: &str) -> Result<(), AppError> {
    let lower = sql.to_lowercase();
    if caller.role() != Role::Admin && ["audit_log", "approvals"].iter().any(|t| lower.contains(t)) {
        return Err(AppError::Forbidden(
            "audit_log and approvals are for admin accounts".into(),
        ));
    }
    Ok(())
}

async fn audit_query(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    started: Instant,
    outcome: Result<usize, &AppError>,
) {
    let mut event = AuditEvent::now(
        "query",
        match outcome {
            Ok(_) => "ok",
            Err(e) => e.code(),
        },
    );
    event.actor = Some(caller.account.name.clone());
    event.role = Some(caller.role().as_str().to_string());
    let text: String = sql.chars().take(300).collect();
    event.detail = Some(match outcome {
        Ok(rows) => format!("{rows} rows in {} ms: {text}", started.elapsed().as_millis()),
        Err(e) => format!("failed after {} ms ({e}): {text}", started.elapsed().as_millis()),
    });
    if let Err(e) = state.warehouse.record_audit(&[event]).await {
        eprintln!("khoso serve: the audit log could not be written: {e}");
    }
}

fn sql_error(e: warehouse::Error) -> AppError {
    if e.is_input_error() {
        AppError::BadRequest(e.to_string())
    } else {
        AppError::from(e)
    }
}

/// Runs a query for showing: every batch is read (under the limits) to count the rows, the
/// first [`ROWS_SHOWN`] are kept.
async fn run_shown(state: &AppState, sql: &str, limits: &QueryLimits) -> Result<(Vec<RecordBatch>, usize), AppError> {
    let run = async {
        let mut stream = state
            .warehouse
            .query_stream(sql, &TableVersions::new(), limits)
            .await
            .map_err(sql_error)?;
        let (mut kept, mut shown, mut total) = (Vec::new(), 0usize, 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| sql_error(limits.explain(warehouse::Error::Sql(e.to_string()))))?;
            total += batch.num_rows();
            if shown < ROWS_SHOWN {
                let take = (ROWS_SHOWN - shown).min(batch.num_rows());
                kept.push(batch.slice(0, take));
                shown += take;
            }
        }
        Ok::<_, AppError>((kept, total))
    };
    tokio::time::timeout(limits.timeout, run)
        .await
        .map_err(|_| sql_error(limits.timed_out()))?
}

/// `{"sql": …}`.
#[derive(Debug, Deserialize)]
pub struct SqlBody {
    sql: String,
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
pub async fn api_sql(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let started = Instant::now();
    let caller = match state
        .auth
        .caller(&headers)
        .await
        .map_err(AppError::from)
        .and_then(querier)
    {
        Ok(caller) => caller,
        Err(e) => return e.json(),
    };
    let sql = match query_text(&headers, &body).and_then(|sql| check_tables(&caller, &sql).map(|()| sql)) {
        Ok(sql) => sql,
        Err(e) => {
            audit_query(&state, &caller, "", started, Err(&e)).await;
            return e.json();
        }
    };
    let _slot = match state.query_slots.take(&caller.account.name).await {
        Ok(slot) => slot,
        Err(e) => {
            audit_query(&state, &caller, &sql, started, Err(&e)).await;
            return e.json();
        }
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let limits = state.settings.query_limits;
    if accept.contains("text/csv") || accept.contains("application/vnd.apache.arrow.stream") {
        let arrow = accept.contains("arrow");
        return match stream_download(
            &state,
            &caller,
            sql,
            limits,
            if arrow { Export::Arrow } else { Export::Csv },
        )
        .await
        {
            Ok(response) => response,
            Err(e) => e.json(),
        };
    }
    let answer = run_shown(&state, &sql, &limits).await;
    audit_query(&state, &caller, &sql, started, answer.as_ref().map(|(_, total)| *total)).await;
    match answer {
        Ok((batches, total)) => {
            let rows = match warehouse::render(&batches, warehouse::OutputFormat::Json) {
                Ok(rows) => rows,
                Err(e) => return AppError::from(e).json(),
            };
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
            response
        }
        Err(e) => e.json(),
    }
}

/// The formats of a full download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    Csv,
    Arrow,
}

/// Streams every row of a query as CSV or Arrow IPC, batch by batch, under the time limit.
async fn stream_download(
    state: &AppState,
    caller: &Caller,
    sql: String,
    limits: QueryLimits,
    format: Export,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let stream = match state.warehouse.query_stream(&sql, &TableVersions::new(), &limits).await {
        Ok(stream) => stream,
        Err(e) => {
            let e = sql_error(e);
            audit_query(state, caller, &sql, started, Err(&e)).await;
            return Err(e);
        }
    };
    let schema = stream.schema();
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let (state, caller) = (state.clone(), caller.clone());
    tokio::spawn(async move {
        let mut stream = stream;
        let mut rows = 0usize;
        let mut arrow = match format {
            Export::Arrow => StreamWriter::try_new(Vec::new(), &schema).ok(),
            Export::Csv => None,
        };
        let mut failure = None;
        if format == Export::Csv {
            sender.send(Ok(warehouse::csv_header(&schema).into_bytes())).await.ok();
        }
        loop {
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    failure = Some(limits.timed_out().to_string());
                    break;
                }
            };
            let Some(batch) = next else { break };
            let chunk = match (batch, &mut arrow) {
                (Err(e), _) => {
                    failure = Some(limits.explain(warehouse::Error::Sql(e.to_string())).to_string());
                    break;
                }
                (Ok(batch), Some(writer)) => {
                    rows += batch.num_rows();
                    writer
                        .write(&batch)
                        .map(|()| std::mem::take(writer.get_mut()))
                        .map_err(|e| e.to_string())
                }
                (Ok(batch), None) => {
                    rows += batch.num_rows();
                    warehouse::csv_rows(&batch)
                        .map(String::into_bytes)
                        .map_err(|e| e.to_string())
                }
            };
            match chunk {
                Ok(bytes) => {
                    if sender.send(Ok(bytes)).await.is_err() {
                        failure = Some("the client went away".into());
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let (Some(mut writer), None) = (arrow, &failure)
            && writer.finish().is_ok()
        {
            sender.send(Ok(std::mem::take(writer.get_mut()))).await.ok();
        }
        let outcome = match &failure {
            None => Ok(rows),
            Some(e) => {
                // The download breaks off: the client sees an incomplete body, never a silent cut.
                sender.send(Err(std::io::Error::other(e.clone()))).await.ok();
                Err(AppError::BadRequest(e.clone()))
            }
        };
        audit_query(&state, &caller, &sql, started, outcome.as_ref().copied()).await;
    });
    let body = Body::from_stream(tokio_stream(receiver));
    let (content_type, name) = match format {
        Export::Csv => ("text/csv; charset=utf-8", "khoso-query.csv"),
        Export::Arrow => ("application/vnd.apache.arrow.stream", "khoso-query.arrows"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

/// A receiver as a stream of body chunks.
fn tokio_stream(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// A column of the schema browser.
pub struct ColumnInfo {
    name: String,
    data_type: String,
    description: String,
}

/// A table of the schema browser.
pub struct TableInfo {
    name: String,
    columns: Vec<ColumnInfo>,
}

/// `/sql`.
#[derive(Template)]
#[template(path = "sql.html")]
pub struct SqlPage {
    chrome: Chrome,
    csrf: String,
    sql: String,
    error: String,
    notice: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    tables: Vec<TableInfo>,
    examples: Vec<(String, String)>,
}

/// What the workbench form sends.
#[derive(Debug, Deserialize, Default)]
pub struct SqlForm {
    sql: Option<String>,
    csrf: Option<String>,
    format: Option<String>,
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

/// Every table and view with its columns, types and descriptions.
async fn schema_browser(state: &AppState, lang: Lang) -> Vec<TableInfo> {
    let query = "SELECT table_name, column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = 'public' ORDER BY table_name, ordinal_position";
    let Ok(batches) = state.warehouse.query(query, &TableVersions::new()).await else {
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
    headers: &HeaderMap,
    form: SqlForm,
    lang: Lang,
    post: bool,
) -> Result<Response, AppError> {
    let caller = querier(state.auth.caller(headers).await?)?;
    let figures = state.figures().await?;
    let mut page = SqlPage {
        chrome: Chrome::new(&figures, lang, &PageQuery::default()),
        csrf: caller.csrf.clone().unwrap_or_default(),
        sql: form.sql.clone().unwrap_or_else(|| examples(lang)[0].1.clone()),
        error: String::new(),
        notice: String::new(),
        header: Vec::new(),
        rows: Vec::new(),
        tables: schema_browser(state, lang).await,
        examples: examples(lang),
    };
    if post {
        if caller.csrf.is_some() && caller.csrf != form.csrf {
            return Err(AppError::Forbidden(
                "the form has expired: reload the page and try again".into(),
            ));
        }
        let sql = page.sql.clone();
        if let Some(format) = form.format.as_deref().filter(|f| !f.is_empty()) {
            check_tables(&caller, &sql)?;
            let _slot = state.query_slots.take(&caller.account.name).await?;
            let export = match format {
                "csv" => Export::Csv,
                "arrow" => Export::Arrow,
                other => {
                    return Err(AppError::BadRequest(format!(
                        "no download format {other:?}: csv or arrow"
                    )));
                }
            };
            return stream_download(state, &caller, sql, state.settings.query_limits, export).await;
        }
        let started = Instant::now();
        let checked = check_tables(&caller, &sql);
        let answer = match checked {
            Ok(()) => match state.query_slots.take(&caller.account.name).await {
                Ok(_slot) => run_shown(state, &sql, &state.settings.query_limits).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        audit_query(state, &caller, &sql, started, answer.as_ref().map(|(_, total)| *total)).await;
        match answer {
            Ok((batches, total)) => {
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
                        .map_err(|e| AppError::Internal(e.to_string()))?;
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
            Err(e) => page.error = e.to_string(),
        }
    }
    let status = if page.error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page.render()
        .map(|html| (status, Html(html)).into_response())
        .map_err(|e| AppError::Internal(e.to_string()))
}

pub async fn sql_page(State(state): State<AppState>, Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = language(&query, &headers);
    match workbench(&state, &headers, SqlForm::default(), lang, false).await {
        Ok(response) => response,
        Err(AppError::Unauthorized(_)) => axum::response::Redirect::to("/sign-in").into_response(),
        Err(e) => e.page(lang),
    }
}

pub async fn sql_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SqlForm>,
) -> Response {
    let lang = language(&PageQuery::default(), &headers);
    match workbench(&state, &headers, form, lang, true).await {
        Ok(response) => response,
        Err(e) => e.page(lang),
    }
}
