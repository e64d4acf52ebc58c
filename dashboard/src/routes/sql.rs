//! SQL for planners: `POST /api/v1/sql` (JSON, CSV or Arrow IPC by the `Accept` header) and
//! the `/sql` workbench. Analysts and admins only; the same guard rails as every SQL path —
//! reading statements only, a time limit that cancels the work, a memory limit, a cap on the
//! text — plus a cap on each account's concurrent queries. Every query is audited (who, when,
//! how long, how many rows).
//!
//! A result can be drawn as a chart (`/sql`'s chart picker, `POST /api/v1/sql/chart`,
//! `/sql/chart?q=…&format=svg|png`): its first [`ROWS_SHOWN`] rows, the kind and columns picked
//! or guessed (see [`crate::charts::result`]).
//!
//! Shown results stop at a row limit and say so ("showing N of M rows", or the
//! `Khoso-Rows-Shown` / `Khoso-Rows-Total` headers); downloads (CSV, JSON, Arrow IPC, Parquet
//! streamed; XLSX up to Excel's row limit) carry every row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use warehouse::TableVersions;
use warehouse::people::workbench::{HistoryEntry, Workbench};
use warehouse::query::guard::{Position, QueryLimits};
use warehouse::tables::rows::AuditEvent;

use super::error::AppError;
use super::page::PageError;
use super::page::{Chrome, PageQuery, language};
use super::roles::Querier;
use crate::AppState;
use crate::auth::Caller;
use crate::charts::result::{ChartKind, ChartSpec, ResultColumns};
use crate::i18n::{Lang, Words};

/// Rows a page or a JSON answer shows; the rest is in the downloads.
pub const ROWS_SHOWN: usize = 1000;

/// Queries one account may run at once.
pub const QUERIES_PER_ACCOUNT: usize = 2;

/// The running queries of each account, and their count.
#[derive(Debug, Clone)]
pub struct QuerySlots {
    slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    running: Gauge,
}

/// A running query's place among its account's ([`QUERIES_PER_ACCOUNT`]), given back when
/// dropped.
#[derive(Debug)]
pub struct QuerySlot {
    _permit: OwnedSemaphorePermit,
    running: Gauge,
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        self.running.dec();
    }
}

impl QuerySlots {
    /// Slots counted in `running` while taken.
    pub(crate) fn new(running: Gauge) -> Self {
        Self {
            slots: Arc::default(),
            running,
        }
    }

    pub(crate) async fn take(&self, account: &str) -> Result<QuerySlot, AppError> {
        let semaphore = Arc::clone(
            self.slots
                .lock()
                .await
                .entry(account.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(QUERIES_PER_ACCOUNT))),
        );
        let permit = semaphore.try_acquire_owned().map_err(|_| {
            AppError::TooMany(format!(
                "{QUERIES_PER_ACCOUNT} of your queries are running already: wait for one to finish"
            ))
        })?;
        self.running.inc();
        Ok(QuerySlot {
            _permit: permit,
            running: self.running.clone(),
        })
    }
}

async fn audit_query(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    started: Instant,
    outcome: Result<usize, &AppError>,
) {
    let message = outcome.err().map(ToString::to_string);
    let elapsed = started.elapsed();
    let event = AuditEvent::for_query(
        &caller.account.name,
        caller.role().as_str(),
        "http",
        sql,
        elapsed,
        outcome.map_err(|e| (e.code(), message.as_deref().unwrap_or_default())),
    );
    state.audit.record_query("http", elapsed, event);
    if sql.is_empty() {
        return;
    }
    let entry = HistoryEntry {
        at: chrono::Utc::now().timestamp_micros(),
        sql: sql.to_string(),
        rows: outcome.ok().map(|rows| rows as u64),
        millis: started.elapsed().as_millis() as u64,
        error: outcome.err().map(ToString::to_string),
    };
    if let Err(e) = Workbench::new(state.warehouse.layout())
        .record(&caller.account.id, &entry)
        .await
    {
        tracing::warn!(cause = %e, "the query history could not be written");
    }
}

/// The error of a batch that failed while the query ran.
fn batch_error(limits: &QueryLimits, error: datafusion::error::DataFusionError) -> AppError {
    AppError::from(limits.explain(warehouse::Error::Sql(error.to_string())))
}

/// Starts a caller's query under the limits, reading the tables its role may read.
async fn start(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    limits: &QueryLimits,
) -> Result<datafusion::execution::SendableRecordBatchStream, AppError> {
    state
        .warehouse
        .query_stream(sql, &TableVersions::new(), limits, caller.role())
        .await
        .map_err(AppError::from)
}

/// The most the rows kept for showing may take: a row past it is counted, not kept (a few rows of
/// the largest values a function may make would otherwise be held outside any query's pool).
pub const SHOWN_BYTES: usize = 32 * 1024 * 1024;

/// Runs a query for showing, as `reader` may read: every batch is read (under the limits) to
/// count the rows, the first [`ROWS_SHOWN`] are kept — copied out of their batch, so that the
/// batch is let go, and no more than [`SHOWN_BYTES`] of them.
pub(super) async fn run_shown(
    state: &AppState,
    reader: warehouse::people::rights::Role,
    sql: &str,
    limits: &QueryLimits,
) -> Result<(Vec<RecordBatch>, usize), AppError> {
    let run = async {
        let mut stream = state
            .warehouse
            .query_stream(sql, &TableVersions::new(), limits, reader)
            .await?;
        let (mut kept, mut shown, mut total, mut bytes) = (Vec::new(), 0usize, 0usize, 0usize);
        let mut full = false;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| batch_error(limits, e))?;
            total += batch.num_rows();
            let mut take = (ROWS_SHOWN - shown).min(batch.num_rows());
            while take > 0 && !full {
                let rows = datafusion::arrow::compute::concat_batches(&batch.schema(), [&batch.slice(0, take)])
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                if bytes + rows.get_array_memory_size() <= SHOWN_BYTES {
                    bytes += rows.get_array_memory_size();
                    shown += take;
                    kept.push(rows);
                    break;
                }
                // Fewer rows of this batch, down to none.
                take /= 2;
                full = take == 0;
            }
        }
        Ok::<_, AppError>((kept, total))
    };
    tokio::time::timeout(limits.timeout, run)
        .await
        .map_err(|_| AppError::from(limits.timed_out()))?
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
async fn api_sql(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    body: axum::body::Bytes,
) -> Response {
    let started = Instant::now();
    let sql = match query_text(&headers, &body) {
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
    let format = [Export::Csv, Export::Arrow, Export::Parquet, Export::Xlsx]
        .into_iter()
        .find(|f| accept.contains(f.content_type().split(';').next().unwrap_or_default()));
    if let Some(format) = format {
        return match download(&state, &caller, sql, limits, format, _slot).await {
            Ok(response) => response,
            Err(e) => e.json(),
        };
    }
    let answer = run_shown(&state, caller.role(), &sql, &limits).await;
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
    Json,
    Arrow,
    Parquet,
    Xlsx,
}

impl Export {
    fn parse(name: &str) -> Result<Export, AppError> {
        match name {
            "csv" => Ok(Export::Csv),
            "json" => Ok(Export::Json),
            "arrow" => Ok(Export::Arrow),
            "parquet" => Ok(Export::Parquet),
            "xlsx" => Ok(Export::Xlsx),
            other => Err(AppError::BadRequest(format!(
                "no download format {other:?}: csv, json, arrow, parquet or xlsx"
            ))),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Export::Csv => "text/csv; charset=utf-8",
            Export::Json => "application/json",
            Export::Arrow => "application/vnd.apache.arrow.stream",
            Export::Parquet => "application/vnd.apache.parquet",
            Export::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Export::Csv => "csv",
            Export::Json => "json",
            Export::Arrow => "arrows",
            Export::Parquet => "parquet",
            Export::Xlsx => "xlsx",
        }
    }
}

/// Turns batches into the bytes of a streamed download, piece by piece.
enum Encoder {
    Csv,
    Json { first: bool },
    Arrow(Box<StreamWriter<Vec<u8>>>),
    Parquet(Box<ArrowWriter<Vec<u8>>>),
}

impl Encoder {
    /// The encoder and the bytes that open the file.
    fn start(format: Export, schema: &SchemaRef) -> Result<(Encoder, Vec<u8>), String> {
        match format {
            Export::Csv => Ok((Encoder::Csv, warehouse::csv_header(schema).into_bytes())),
            Export::Json => Ok((Encoder::Json { first: true }, b"[".to_vec())),
            Export::Arrow => StreamWriter::try_new(Vec::new(), schema)
                .map(|w| (Encoder::Arrow(Box::new(w)), Vec::new()))
                .map_err(|e| e.to_string()),
            Export::Parquet | Export::Xlsx => ArrowWriter::try_new(Vec::new(), Arc::clone(schema), None)
                .map(|w| (Encoder::Parquet(Box::new(w)), Vec::new()))
                .map_err(|e| e.to_string()),
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, String> {
        match self {
            Encoder::Csv => warehouse::csv_rows(batch)
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
            Encoder::Json { first } => {
                let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
                let batch = warehouse::json_ready(batch).map_err(|e| e.to_string())?;
                writer.write(&batch).map_err(|e| e.to_string())?;
                writer.finish().map_err(|e| e.to_string())?;
                let array = writer.into_inner();
                // "[{…},{…}]" → "{…},{…}", joined to what came before by a comma.
                let inner = array.get(1..array.len().saturating_sub(1)).unwrap_or_default();
                if inner.is_empty() {
                    return Ok(Vec::new());
                }
                let mut bytes = if *first { Vec::new() } else { b",".to_vec() };
                *first = false;
                bytes.extend_from_slice(inner);
                Ok(bytes)
            }
            Encoder::Arrow(writer) => writer
                .write(batch)
                .map(|()| std::mem::take(writer.get_mut()))
                .map_err(|e| e.to_string()),
            Encoder::Parquet(writer) => {
                writer.write(batch).map_err(|e| e.to_string())?;
                writer.flush().map_err(|e| e.to_string())?;
                Ok(std::mem::take(writer.inner_mut()))
            }
        }
    }

    fn finish(self) -> Result<Vec<u8>, String> {
        match self {
            Encoder::Csv => Ok(Vec::new()),
            Encoder::Json { .. } => Ok(b"]\n".to_vec()),
            Encoder::Arrow(mut writer) => writer
                .finish()
                .map(|()| std::mem::take(writer.get_mut()))
                .map_err(|e| e.to_string()),
            Encoder::Parquet(mut writer) => writer
                .finish()
                .map(|_| std::mem::take(writer.inner_mut()))
                .map_err(|e| e.to_string()),
        }
    }
}

/// Rows an XLSX sheet holds besides its header (Excel's limit is 1,048,576 rows).
const XLSX_ROWS: usize = 1_048_575;

/// Cells (rows × columns) an XLSX download may hold: a workbook is made whole before it is sent,
/// so past this the answer is to download CSV or Parquet, which stream.
pub const XLSX_CELLS: usize = 3_000_000;

/// What a workbook being made may take for each of its cells: its rows go to a temporary file
/// as they are written (rust_xlsxwriter's constant memory), the finished file is held to be sent.
const XLSX_BYTES_PER_CELL: usize = 32;

/// Every row of a query as one XLSX sheet, or an error when it is past [`XLSX_CELLS`] or the
/// time limit. The rows are read under the query's limits and written on the blocking pool, off
/// the page threads, as they come; the workbook's memory is reserved from the server's ceiling
/// first.
async fn xlsx_download(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    limits: &QueryLimits,
) -> Result<Vec<u8>, AppError> {
    let started = Instant::now();
    let deadline = started + limits.timeout;
    let run = async {
        let _memory =
            warehouse::query::engine::reserve("tệp Excel", "an Excel download", XLSX_CELLS * XLSX_BYTES_PER_CELL)?;
        let mut stream = start(state, caller, sql, limits).await?;
        let schema = stream.schema();
        let columns = schema.fields().len().max(1);
        // `None` says the rows are all there; a channel closed without it is work given up.
        let (batches, received) = tokio::sync::mpsc::channel::<Option<RecordBatch>>(2);
        let writer = tokio::task::spawn_blocking(move || write_xlsx(&schema, received, deadline));
        let (mut cells, mut rows) = (0usize, 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| batch_error(limits, e))?;
            cells += batch.num_rows() * columns;
            rows += batch.num_rows();
            if rows > XLSX_ROWS {
                return Err(AppError::BadRequest(format!(
                    "the result has more than {XLSX_ROWS} rows, more than an Excel sheet holds: download CSV or \
                     Parquet"
                )));
            }
            if cells > XLSX_CELLS {
                return Err(AppError::BadRequest(format!(
                    "the result has more than {XLSX_CELLS} cells (rows × columns), more than an Excel download \
                     holds: download CSV or Parquet, which carry every row"
                )));
            }
            if batches.send(Some(batch)).await.is_err() {
                break;
            }
        }
        batches.send(None).await.ok();
        writer
            .await
            .map_err(|e| AppError::Internal(format!("the Excel writer stopped: {e}")))?
            .map_err(|e| match e {
                XlsxStop::TimedOut => AppError::from(limits.timed_out()),
                XlsxStop::Failed(e) => AppError::Internal(e),
            })
    };
    let answer = tokio::time::timeout_at(deadline.into(), run)
        .await
        .map_err(|_| AppError::from(limits.timed_out()))
        .and_then(|r| r);
    audit_query(state, caller, sql, started, answer.as_ref().map(|(_, rows)| *rows)).await;
    answer.map(|(bytes, _)| bytes)
}

/// Why a workbook was not made.
enum XlsxStop {
    TimedOut,
    Failed(String),
}

/// Writes the batches received, row by row, into a workbook until `None` comes; gives up at
/// `deadline` or when the sender goes.
fn write_xlsx(
    schema: &SchemaRef,
    mut batches: tokio::sync::mpsc::Receiver<Option<RecordBatch>>,
    deadline: Instant,
) -> Result<(Vec<u8>, usize), XlsxStop> {
    use datafusion::arrow::array::Float64Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

    let failed = |e: &dyn std::fmt::Display| XlsxStop::Failed(e.to_string());
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(|e| failed(&e))?;
    for (col, field) in schema.fields().iter().enumerate() {
        sheet
            .write_string(0, col as u16, field.name())
            .map_err(|e| failed(&e))?;
    }
    let options = FormatOptions::default();
    let mut row = 0usize;
    while let Some(message) = batches.blocking_recv() {
        let Some(batch) = message else {
            let bytes = workbook.save_to_buffer().map_err(|e| failed(&e))?;
            return Ok((bytes, row));
        };
        if Instant::now() > deadline {
            return Err(XlsxStop::TimedOut);
        }
        let numbers: Vec<Option<datafusion::arrow::array::ArrayRef>> = batch
            .columns()
            .iter()
            .map(|column| {
                column
                    .data_type()
                    .is_numeric()
                    .then(|| {
                        datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Float64).ok()
                    })
                    .flatten()
            })
            .collect();
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(&e))?;
        // Row by row: a constant-memory sheet writes a row out when the next one starts.
        for i in 0..batch.num_rows() {
            let r = (row + i + 1) as u32;
            for (col, column) in batch.columns().iter().enumerate() {
                if column.is_null(i) {
                    continue;
                }
                let c = col as u16;
                match numbers[col]
                    .as_ref()
                    .and_then(|n| n.as_any().downcast_ref::<Float64Array>())
                {
                    Some(n) => sheet.write_number(r, c, n.value(i)).map(|_| ()),
                    None => sheet
                        .write_string(r, c, formula_safe(&formatters[col].value(i).to_string()))
                        .map(|_| ()),
                }
                .map_err(|e| failed(&e))?;
            }
        }
        row += batch.num_rows();
    }
    Err(XlsxStop::Failed("the rows stopped coming".into()))
}

/// A text a spreadsheet would run as a formula, made plain text.
fn formula_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// Every row of a query in a format, as a download: streamed batch by batch under the time
/// limit (XLSX, which cannot be streamed, is built first and refused past its size). The
/// account's query slot is held until the last byte is sent, the client leaves or the time limit
/// passes — a client that stops reading is let go at the time limit too.
async fn download(
    state: &AppState,
    caller: &Caller,
    sql: String,
    limits: QueryLimits,
    format: Export,
    slot: QuerySlot,
) -> Result<Response, AppError> {
    let disposition = format!("attachment; filename=\"khoso-query.{}\"", format.extension());
    let headers = [
        (header::CONTENT_TYPE, format.content_type().to_string()),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    if format == Export::Xlsx {
        let bytes = xlsx_download(state, caller, &sql, &limits).await?;
        return Ok((headers, bytes).into_response());
    }
    let started = Instant::now();
    let stream = match start(state, caller, &sql, &limits).await {
        Ok(stream) => stream,
        Err(e) => {
            audit_query(state, caller, &sql, started, Err(&e)).await;
            return Err(e);
        }
    };
    let schema = stream.schema();
    let (mut encoder, opening) = Encoder::start(format, &schema).map_err(AppError::Internal)?;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let (state, caller) = (state.clone(), caller.clone());
    let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let completed = Arc::clone(&complete);
    tokio::spawn(async move {
        let _slot = slot;
        let mut stream = stream;
        let mut rows = 0usize;
        let mut failure = None;
        let send = |chunk| tokio::time::timeout_at(deadline, sender.send(chunk));
        if !matches!(send(Ok(opening)).await, Ok(Ok(()))) {
            failure = Some("the client did not read the download".to_string());
        }
        while failure.is_none() {
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    failure = Some(limits.timed_out().to_string());
                    break;
                }
            };
            let Some(batch) = next else { break };
            let chunk = batch
                .map_err(|e| limits.explain(warehouse::Error::Sql(e.to_string())).to_string())
                .and_then(|batch| {
                    rows += batch.num_rows();
                    encoder.batch(&batch)
                });
            match chunk {
                Ok(bytes) => match send(Ok(bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => failure = Some("the client went away".into()),
                    Err(_) => failure = Some(limits.timed_out().to_string()),
                },
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(stream);
        if failure.is_none() {
            match encoder.finish().map(|bytes| send(Ok(bytes))) {
                Ok(sent) => match sent.await {
                    Ok(Ok(())) => completed.store(true, std::sync::atomic::Ordering::Release),
                    _ => failure = Some("the client did not read the end of the download".into()),
                },
                Err(e) => failure = Some(e),
            }
        }
        let outcome = match &failure {
            None => Ok(rows),
            Some(e) => {
                // The download breaks off: the client sees an incomplete body, never a silent cut.
                sender.try_send(Err(std::io::Error::other(e.clone()))).ok();
                Err(AppError::BadRequest(e.clone()))
            }
        };
        audit_query(&state, &caller, &sql, started, outcome.as_ref().copied()).await;
    });
    Ok((headers, Body::from_stream(body_chunks(receiver, complete))).into_response())
}

/// A receiver as a stream of body chunks that ends with an error unless `complete` was set: a
/// download cut short is never taken for a whole one.
fn body_chunks(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
    complete: Arc<std::sync::atomic::AtomicBool>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let mut ended = false;
    futures::stream::poll_fn(move |cx| match receiver.poll_recv(cx) {
        std::task::Poll::Ready(None) if !ended && !complete.load(std::sync::atomic::Ordering::Acquire) => {
            ended = true;
            std::task::Poll::Ready(Some(Err(std::io::Error::other("the download was cut short"))))
        }
        other => other,
    })
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
    description: String,
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
    /// Where the error points: line, column, and that line with a caret under the column.
    error_at: Option<(usize, usize, String)>,
    notice: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    tables: Vec<TableInfo>,
    examples: Vec<(String, String)>,
    history: Vec<(String, String, String)>,
    saved: Vec<(String, String, String)>,
    chart: Option<ChartView>,
    /// The boards a chart can be pinned to: (id, name).
    boards: Vec<(String, String)>,
}

/// The chart of a result on `/sql`: the drawing (or why there is none), and the picker.
pub struct ChartView {
    /// The kind drawn (empty when none).
    kind: String,
    svg: String,
    problem: String,
    /// The kinds: (name, label, picked).
    kinds: Vec<(String, String, bool)>,
    columns: Vec<String>,
    x: String,
    y: String,
    series: String,
    /// The query string of the chart's downloads.
    download: String,
}

/// A chart of a query: the query (`sql`, or `q` in a link) and, each left out for the first
/// guess, the kind (`chart`), the columns (`x`, `y`, `series`) and the format (`svg`, `png`).
#[derive(Debug, Default, Deserialize)]
pub struct ChartRequest {
    #[serde(alias = "q")]
    sql: String,
    chart: Option<String>,
    x: Option<String>,
    y: Option<String>,
    series: Option<String>,
    format: Option<String>,
    lang: Option<String>,
}

impl ChartRequest {
    /// The chart asked for, the first guess giving what was not asked.
    fn spec(&self, columns: &ResultColumns, lang: Lang) -> Result<ChartSpec, AppError> {
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
    fn link(&self, spec: &ChartSpec, lang: Lang) -> String {
        let encode = |text: &str| super::page::percent_encode(text.as_bytes());
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
    let slot = match state.query_slots.take(&caller.account.name).await {
        Ok(slot) => slot,
        Err(e) => {
            audit_query(state, caller, sql, started, Err(&e)).await;
            return Err(e);
        }
    };
    let answer = run_shown(state, caller.role(), sql, &state.settings.query_limits).await;
    audit_query(state, caller, sql, started, answer.as_ref().map(|(_, total)| *total)).await;
    let (batches, _) = answer?;
    Ok((
        Arc::new(ResultColumns::read(&batches).map_err(AppError::Internal)?),
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
async fn api_chart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    body: axum::body::Bytes,
) -> Response {
    let request: ChartRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return AppError::BadRequest(format!(
                "send {{\"sql\": \"SELECT …\", \"chart\": \"bar\", \"x\": …, \"y\": …, \"format\": \"svg\"}}: {e}"
            ))
            .json();
        }
    };
    let lang = request.lang(&headers);
    let png = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("image/png"));
    let format = request.format.as_deref().or(png.then_some("png"));
    request
        .image(&state, &caller, lang, format, false)
        .await
        .unwrap_or_else(AppError::json)
}

/// `/sql/chart?q=…&chart=…&x=…&y=…&series=…&format=svg|png`: a chart of the workbench to
/// download.
async fn chart_download(
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

/// `/sql?q=…` opens a query from the history, `/sql?saved=ID` a saved one.
#[derive(Debug, Default, Deserialize)]
pub struct SqlQuery {
    lang: Option<String>,
    q: Option<String>,
    saved: Option<String>,
}

/// A query as a link that opens it in the workbench.
fn open_link(sql: &str) -> String {
    format!("/sql?q={}", super::page::percent_encode(sql.as_bytes()))
}

/// What the workbench form sends.
#[derive(Debug, Deserialize, Default)]
pub struct SqlForm {
    sql: Option<String>,
    csrf: Option<String>,
    format: Option<String>,
    chart: Option<String>,
    x: Option<String>,
    y: Option<String>,
    series: Option<String>,
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
        super::page::check_csrf(&caller, form.csrf.as_deref())?;
        let sql = page.sql.clone();
        if let Some(format) = form.format.as_deref().filter(|f| !f.is_empty()) {
            let format = Export::parse(format)?;
            let slot = state.query_slots.take(&caller.account.name).await?;
            return download(state, &caller, sql, state.settings.query_limits, format, slot).await;
        }
        let started = Instant::now();
        let answer = match state.query_slots.take(&caller.account.name).await {
            Ok(_slot) => run_shown(state, caller.role(), &sql, &state.settings.query_limits).await,
            Err(e) => Err(e),
        };
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
        .map_err(|e| AppError::Internal(e.to_string()))
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
    let drawn = match request.spec(&columns, lang) {
        Ok(spec) => columns
            .draw_within(&spec, lang, within)
            .await
            .map(|svg| (spec, svg))
            .map_err(AppError::BadRequest),
        Err(e) => Err(e),
    };
    let (spec, svg, problem) = match drawn {
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

async fn sql_page(
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

async fn sql_form(
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
    csrf: Option<String>,
    name: String,
    sql: String,
}

/// `POST /sql/save`: saves the editor's query under a name; answers with its link.
async fn save_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    axum::Form(form): axum::Form<SaveForm>,
) -> Result<axum::response::Redirect, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    super::page::check_csrf(&caller, form.csrf.as_deref()).map_err(|e| e.in_lang(lang))?;
    let query = Workbench::new(state.warehouse.layout())
        .save(&form.name, &form.sql, &caller.account.name)
        .await
        .map_err(|e| AppError::from(e).in_lang(lang))?;
    Ok(axum::response::Redirect::to(&format!("/sql?saved={}", query.id)))
}

/// SQL's routes: the workbench, saving a query, and the API (with its downloads).
pub fn router() -> Router<AppState> {
    // Room for a query text past the SQL limit, so that its answer says so.
    let room = axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024);
    Router::new()
        .route("/sql", get(sql_page).post(sql_form).layer(room))
        .route("/sql/save", post(save_query))
        .route("/sql/chart", get(chart_download))
        .route("/api/v1/sql", post(api_sql).layer(room))
        .route("/api/v1/sql/chart", post(api_chart).layer(room))
}
