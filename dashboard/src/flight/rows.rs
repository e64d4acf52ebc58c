//! A statement run for a caller, as every SQL path runs one: one of its account's query slots,
//! the warehouse's guard and limits (reading statements only, the text's size, the memory pool,
//! the deadline that ends the work even when nobody reads), and one audit event — when the rows
//! end, fail, or the client goes. The batches go out as Arrow Flight data as they come, never
//! gathered first; a client that stops reading holds its slot until the deadline at most.

use std::pin::Pin;
use std::time::Instant;

use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use tonic::Status;
use warehouse::TableVersions;
use warehouse::people::accounts::Account;
use warehouse::query::guard::QueryLimits;
use warehouse::query::session::Described;
use warehouse::tables::rows::AuditEvent;

use super::statement::Statement;
use crate::AuditQueue;
use crate::pg::WireState;
use crate::routes::{QuerySlot, SlotHold};

/// The stream of a `DoGet`'s answer.
pub(super) type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// A statement on its way: whose it is, its text, when it began and where its audit event goes.
pub(super) struct FlightQuery {
    account: String,
    role: &'static str,
    sql: String,
    started: Instant,
    audit: AuditQueue,
}

impl FlightQuery {
    pub(super) fn new(state: &WireState, account: &Account, sql: &str) -> Self {
        Self {
            account: account.name.clone(),
            role: account.role.as_str(),
            sql: sql.to_string(),
            started: Instant::now(),
            audit: state.audit.clone(),
        }
    }

    fn record(&self, outcome: Result<usize, (&str, &str)>) {
        let elapsed = self.started.elapsed();
        let event = AuditEvent::for_query(&self.account, self.role, "flight", &self.sql, elapsed, outcome);
        self.audit.record_query("flight", elapsed, event);
    }

    /// Records the statement as refused or failed and gives the client's error back.
    pub(super) fn refuse(&self, (status, outcome): (Status, &str)) -> Status {
        self.record(Err((outcome, status.message())));
        status
    }
}

/// The client's error for a warehouse error, and the audit log's word for it.
pub(super) fn status_of(limits: &QueryLimits, error: warehouse::Error) -> (Status, &'static str) {
    let timed_out = warehouse::query::engine::timed_out_message(limits.timeout);
    match limits.explain(error) {
        warehouse::Error::Sql(message) if message.contains(&timed_out) => {
            (Status::deadline_exceeded(timed_out), "timed_out")
        }
        warehouse::Error::Sql(message) if message.contains("MB of memory and was stopped") => {
            (Status::resource_exhausted(message), "out_of_memory")
        }
        e @ warehouse::Error::ReadOnly(_) => (Status::permission_denied(e.to_string()), "forbidden"),
        e if e.is_forbidden() => (Status::permission_denied(e.to_string()), "forbidden"),
        e if e.is_input_error() => (Status::invalid_argument(e.to_string()), "failed"),
        e @ warehouse::Error::Cluster(_) => (Status::unavailable(e.to_string()), "failed"),
        e => {
            tracing::error!(error = %e, "an Arrow Flight SQL statement failed");
            (Status::internal(e.to_string()), "failed")
        }
    }
}

/// What a statement answers and asks, as `account` would run it; a refusal is audited.
pub(super) async fn described(
    state: &WireState,
    account: &Account,
    statement: &Statement,
) -> Result<Described, Status> {
    let query = FlightQuery::new(state, account, &statement.sql);
    // Planning is work too: it takes one of the account's slots while it runs.
    let _slot = slot(state, account).await.map_err(|refused| query.refuse(refused))?;
    state
        .warehouse
        .describe(&statement.sql, &state.limits, account.role)
        .await
        .map_err(|e| query.refuse(status_of(&state.limits, e)))
}

/// One of `account`'s query slots, or the refusal to audit.
pub(super) async fn slot(state: &WireState, account: &Account) -> Result<QuerySlot, (Status, &'static str)> {
    state
        .query_slots
        .take(&account.name)
        .await
        .map_err(|e| (Status::resource_exhausted(e.to_string()), "too_many"))
}

/// Runs `statement` for `account`: its rows as Arrow Flight data.
pub(super) async fn run(state: &WireState, account: &Account, statement: Statement) -> Result<FlightStream, Status> {
    let limits = state.limits;
    let query = FlightQuery::new(state, account, &statement.sql);
    let deadline = tokio::time::Instant::from_std(query.started + limits.timeout);
    let slot = slot(state, account).await.map_err(|refused| query.refuse(refused))?;
    let latest = TableVersions::new();
    let started =
        state
            .warehouse
            .query_stream_with(&statement.sql, statement.parameters, &latest, &limits, account.role);
    let batches = match tokio::time::timeout_at(deadline, started).await {
        Ok(Ok(batches)) => batches,
        Ok(Err(e)) => return Err(query.refuse(status_of(&limits, e))),
        Err(_) => return Err(query.refuse(status_of(&limits, limits.timed_out()))),
    };
    let schema = warehouse::plain_schema(&batches.schema());
    let watch = Watch {
        batches,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
        limits,
        query: Some(query),
        sent: 0,
        slot: SlotHold::until(Some(slot), deadline),
    };
    // Each batch as it comes, until the rows end, fail or the deadline passes.
    let watched = futures::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        tokio::select! {
            biased;
            () = &mut watch.deadline => {
                let error = watch.limits.timed_out();
                Some((Err(watch.fail(error)), None))
            }
            next = watch.batches.next() => match next {
                Some(Ok(batch)) => match warehouse::plain_strings(batch) {
                    Ok(batch) => {
                        watch.sent += batch.num_rows();
                        Some((Ok(batch), Some(watch)))
                    }
                    Err(error) => Some((Err(watch.fail(error)), None)),
                },
                Some(Err(error)) => Some((Err(watch.fail(warehouse::Error::Sql(error.to_string()))), None)),
                None => {
                    watch.slot.release();
                    if let Some(query) = watch.query.take() {
                        query.record(Ok(watch.sent));
                    }
                    None
                }
            },
        }
    });
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(watched)
        .map(|data| data.map_err(Status::from));
    Ok(Box::pin(data))
}

/// A statement's batches on their way to the client: counted, and audited once — when they
/// end, when they fail or time out, or when the client goes before the end (the watch dropped).
struct Watch {
    batches: SendableRecordBatchStream,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limits: QueryLimits,
    query: Option<FlightQuery>,
    sent: usize,
    slot: SlotHold,
}

impl Watch {
    /// The client's error for the failure that ends the rows, audited.
    fn fail(&mut self, error: warehouse::Error) -> FlightError {
        self.slot.release();
        let refused = status_of(&self.limits, error);
        let status = match self.query.take() {
            Some(query) => query.refuse(refused),
            None => refused.0,
        };
        FlightError::Tonic(Box::new(status))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(query) = self.query.take() {
            match self.deadline.is_elapsed() {
                true => query.record(Err(("timed_out", &self.limits.timed_out().to_string()))),
                false => query.record(Err(("closed", &format!("the client went after {} rows", self.sent)))),
            }
        }
    }
}
