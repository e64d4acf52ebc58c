//! Each account's query slots (its concurrent queries), running a query under its limits for
//! showing, and auditing it: what every SQL route shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use warehouse::TableVersions;
use warehouse::people::workbench::{HistoryEntry, Workbench};
use warehouse::query::guard::QueryLimits;
use warehouse::tables::rows::AuditEvent;

use super::super::error::AppError;
use crate::AppState;
use crate::auth::Caller;

/// Rows a page or a JSON answer shows; the rest is in the downloads.
pub const ROWS_SHOWN: usize = 1000;

/// Queries one account may run at once.
pub const QUERIES_PER_ACCOUNT: usize = 2;

/// The running queries of each account, and their count.
#[derive(Debug, Clone)]
pub struct QuerySlots {
    pub(super) slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    pub(super) running: Gauge,
}

/// A running query's place among its account's ([`QUERIES_PER_ACCOUNT`]), given back when
/// dropped.
#[derive(Debug)]
pub struct QuerySlot {
    pub(super) _permit: OwnedSemaphorePermit,
    pub(super) running: Gauge,
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

/// A query's slot among its account's, given back when the query's rows are done (the last
/// holder of it dropped) or at its deadline, whichever comes first: a client that never reads
/// its rows holds no slot past the deadline.
#[derive(Debug, Clone)]
pub struct SlotHold {
    held: Arc<std::sync::Mutex<Option<QuerySlot>>>,
}

impl SlotHold {
    /// Holds `slot` (when there is one) until the last clone of the hold goes or `deadline`.
    pub fn until(slot: Option<QuerySlot>, deadline: tokio::time::Instant) -> Self {
        let holds_slot = slot.is_some();
        let hold = Arc::new(std::sync::Mutex::new(slot));
        if holds_slot {
            let held = Arc::downgrade(&hold);
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline).await;
                if let Some(slot) = held.upgrade() {
                    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                }
            });
        }
        Self { held: hold }
    }

    /// Gives the slot back now: the query's rows are done, whoever still holds the hold (a
    /// PostgreSQL portal is kept after its last row until the client's next statement).
    pub fn release(&self) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// Runs a caller's query in one of the account's slots, its first rows shown.
pub(super) async fn run_in_slot(
    state: &AppState,
    caller: &Caller,
    sql: &str,
) -> Result<(Vec<RecordBatch>, usize), AppError> {
    let _slot = state.query_slots.take(&caller.account.name).await?;
    run_shown(state, caller.role(), sql, &state.settings.query_limits).await
}

/// A step of running a user's query, audited if it failed (the query goes no further).
pub(super) async fn audited<T>(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    started: Instant,
    step: Result<T, AppError>,
) -> Result<T, AppError> {
    if let Err(e) = &step {
        audit_query(state, caller, sql, started, Err(e)).await;
    }
    step
}

pub(super) async fn audit_query(
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
pub(super) fn batch_error(limits: &QueryLimits, error: datafusion::error::DataFusionError) -> AppError {
    AppError::from(limits.explain(warehouse::Error::Sql(error.to_string())))
}

/// Starts a caller's query under the limits, reading the tables its role may read.
pub(super) async fn start(
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
pub(crate) async fn run_shown(
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
                    .map_err(AppError::internal)?;
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
