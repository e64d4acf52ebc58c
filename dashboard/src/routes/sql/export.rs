//! Full downloads of a result: CSV, JSON, Arrow IPC and Parquet streamed as the batches come;
//! Excel written row by row to a temporary file, up to its limits.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use warehouse::query::guard::QueryLimits;

use super::super::error::AppError;
use super::slots::{QuerySlot, audit_query, audited, batch_error, start};
use crate::AppState;
use crate::auth::Caller;

/// The formats of a full download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Export {
    Csv,
    Json,
    Arrow,
    Parquet,
    Xlsx,
}

impl Export {
    pub(super) fn parse(name: &str) -> Result<Export, AppError> {
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

    pub(super) fn content_type(self) -> &'static str {
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
    fn start(format: Export, schema: &SchemaRef) -> warehouse::Result<(Encoder, Vec<u8>)> {
        Ok(match format {
            Export::Csv => (Encoder::Csv, warehouse::csv_header(schema).into_bytes()),
            Export::Json => (Encoder::Json { first: true }, b"[".to_vec()),
            Export::Arrow => (
                Encoder::Arrow(Box::new(StreamWriter::try_new(
                    Vec::new(),
                    &warehouse::plain_schema(schema),
                )?)),
                Vec::new(),
            ),
            Export::Parquet | Export::Xlsx => (
                Encoder::Parquet(Box::new(ArrowWriter::try_new(Vec::new(), Arc::clone(schema), None)?)),
                Vec::new(),
            ),
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> warehouse::Result<Vec<u8>> {
        match self {
            Encoder::Csv => Ok(warehouse::csv_rows(batch)?.into_bytes()),
            Encoder::Json { first } => {
                let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
                writer.write(&warehouse::json_ready(batch)?)?;
                writer.finish()?;
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
            Encoder::Arrow(writer) => {
                writer.write(&warehouse::plain_strings(batch.clone())?)?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Encoder::Parquet(writer) => {
                writer.write(batch)?;
                writer.flush()?;
                Ok(std::mem::take(writer.inner_mut()))
            }
        }
    }

    fn finish(self) -> warehouse::Result<Vec<u8>> {
        match self {
            Encoder::Csv => Ok(Vec::new()),
            Encoder::Json { .. } => Ok(b"]\n".to_vec()),
            Encoder::Arrow(mut writer) => {
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Encoder::Parquet(mut writer) => {
                writer.finish()?;
                Ok(std::mem::take(writer.inner_mut()))
            }
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
            .map_err(|e| AppError::internal(format!("the Excel writer stopped: {e}")))?
            .map_err(|e| match e {
                XlsxStop::TimedOut => AppError::from(limits.timed_out()),
                XlsxStop::Failed(e) => AppError::internal(e),
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
pub(super) async fn download(
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
    let stream = audited(state, caller, &sql, started, start(state, caller, &sql, &limits).await).await?;
    let (encoder, opening) = Encoder::start(format, &stream.schema())?;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let (state, caller) = (state.clone(), caller.clone());
    let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let completed = Arc::clone(&complete);
    tokio::spawn(async move {
        let _slot = slot;
        let download = Download {
            sender: &sender,
            deadline,
            limits: &limits,
        };
        let pumped = download.pump(stream, encoder, opening).await;
        if pumped.is_ok() {
            completed.store(true, std::sync::atomic::Ordering::Release);
        }
        let outcome = pumped.map_err(|failure| {
            // The download breaks off: the client sees an incomplete body, never a silent cut.
            sender.try_send(Err(std::io::Error::other(failure.clone()))).ok();
            AppError::BadRequest(failure)
        });
        audit_query(&state, &caller, &sql, started, outcome.as_ref().copied()).await;
    });
    Ok((headers, Body::from_stream(body_chunks(receiver, complete))).into_response())
}

/// Where a download's bytes go, and until when.
struct Download<'a> {
    sender: &'a tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    deadline: tokio::time::Instant,
    limits: &'a QueryLimits,
}

impl Download<'_> {
    /// Encodes and sends a result, from its opening bytes to its end: the rows sent, or why the
    /// download broke off (the deadline, the client gone or not reading, a failed batch).
    async fn pump(
        &self,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
        mut encoder: Encoder,
        opening: Vec<u8>,
    ) -> Result<usize, String> {
        self.send(opening).await?;
        let mut rows = 0usize;
        loop {
            let next = tokio::time::timeout_at(self.deadline, stream.next())
                .await
                .map_err(|_| self.limits.timed_out().to_string())?;
            let Some(batch) = next else { break };
            let batch = batch.map_err(|e| batch_error(self.limits, e).to_string())?;
            rows += batch.num_rows();
            self.send(encoder.batch(&batch).map_err(|e| e.to_string())?).await?;
        }
        drop(stream);
        self.send(encoder.finish().map_err(|e| e.to_string())?).await?;
        Ok(rows)
    }

    /// Sends one piece before the deadline.
    async fn send(&self, bytes: Vec<u8>) -> Result<(), String> {
        match tokio::time::timeout_at(self.deadline, self.sender.send(Ok(bytes))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("the client went away".into()),
            Err(_) => Err(self.limits.timed_out().to_string()),
        }
    }
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
