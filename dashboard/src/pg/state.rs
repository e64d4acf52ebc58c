//! What the wire shares with the web server, and each query's owner and budget: its account's
//! slot, its deadline, its audit event, its rows watched on their way to the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{QueryResponse, SendableRowStream};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use futures::Stream;
use tokio::sync::futures::OwnedNotified;
use warehouse::query::guard::QueryLimits;
use warehouse::tables::rows::AuditEvent;

use crate::routes::SlotHold;
use crate::{AppState, AuditQueue};

use super::errors::{cancelled_by_client, code_and_message, explained, user_error};

/// The connection's metadata key holding the signed-in account's role.
pub(super) const ROLE: &str = "khoso.role";

/// The connection's metadata key holding the signed-in account's id.
pub(super) const ACCOUNT_ID: &str = "khoso.account";

/// Refuses a query text over the size limit before it is parsed.
pub(super) fn check_text(limits: &QueryLimits, sql: &str) -> PgWireResult<()> {
    limits
        .check_text(sql)
        .map(|_| ())
        .map_err(|e| user_error("54000", e.to_string()))
}

/// What the wire server shares with the web server: the warehouse, the accounts, the audit
/// queue, the query slots of each account, and the limits of a query.
#[derive(Clone)]
pub struct WireState {
    pub(crate) warehouse: Arc<warehouse::Warehouse>,
    pub(crate) auth: crate::auth::Auth,
    pub(crate) audit: AuditQueue,
    pub(crate) query_slots: crate::routes::QuerySlots,
    pub(crate) limits: QueryLimits,
}

impl WireState {
    /// The part of the web server's state the wire server works with.
    pub fn of(state: &AppState) -> Self {
        Self {
            warehouse: Arc::clone(&state.warehouse),
            auth: state.auth.clone(),
            audit: state.audit.clone(),
            query_slots: state.query_slots.clone(),
            limits: state.settings.query_limits,
        }
    }
}

/// A query on its way: whose it is, its text, when it began and where its audit event goes.
pub(super) struct WireQuery {
    pub(super) account: String,
    pub(super) role: String,
    pub(super) sql: String,
    pub(super) started: Instant,
    pub(super) audit: AuditQueue,
}

impl WireQuery {
    /// A query the connection's account sends now.
    pub(super) fn new(client: &(impl ClientInfo + ?Sized), sql: &str, audit: &AuditQueue) -> Self {
        let metadata = client.metadata();
        Self {
            account: metadata.get("user").cloned().unwrap_or_default(),
            role: metadata.get(ROLE).cloned().unwrap_or_default(),
            sql: sql.to_string(),
            started: Instant::now(),
            audit: audit.clone(),
        }
    }

    /// Records the query as failed, with the audit log's word for the error's SQLSTATE, and
    /// gives the error back.
    pub(super) fn refuse(&self, error: PgWireError) -> PgWireError {
        let (code, message) = code_and_message(&error);
        let outcome = match code.as_str() {
            "25006" => "forbidden",
            "53200" => "out_of_memory",
            "53400" => "too_many",
            "54000" => "too_large",
            "57014" => "timed_out",
            "28000" => "unauthorized",
            _ => "failed",
        };
        self.record(Err((outcome, &message)));
        error
    }

    pub(super) fn record(&self, outcome: Result<usize, (&str, &str)>) {
        let elapsed = self.started.elapsed();
        let event = AuditEvent::for_query(&self.account, &self.role, "wire", &self.sql, elapsed, outcome);
        self.audit.record_query("wire", elapsed, event);
    }
}

/// A query begun: its audit, its slot, its deadline.
pub(super) struct Begun {
    pub(super) query: Arc<WireQuery>,
    pub(super) slot: SlotHold,
    pub(super) deadline: tokio::time::Instant,
}

/// A query's rows on their way to the client: stopped with an error at the deadline or when the
/// client cancels (dropping the engine's stream drops its work, which also ends at the deadline
/// on its own when nobody reads), counted, and audited once — when the rows end, when they
/// fail, or when the client closes the result before the end.
struct Watched {
    pub(super) rows: SendableRowStream,
    pub(super) deadline: Pin<Box<tokio::time::Sleep>>,
    pub(super) cancelled: Option<Pin<Box<OwnedNotified>>>,
    pub(super) limits: QueryLimits,
    pub(super) query: Option<Arc<WireQuery>>,
    pub(super) sent: usize,
    pub(super) slot: SlotHold,
}

impl Watched {
    pub(super) fn fail(&mut self, error: PgWireError) -> PgWireError {
        self.rows = Box::pin(futures::stream::empty());
        self.slot.release();
        match self.query.take() {
            Some(query) => query.refuse(error),
            None => error,
        }
    }
}

impl Stream for Watched {
    type Item = PgWireResult<DataRow>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.query.is_none() {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let error = user_error("57014", this.limits.timed_out().to_string());
            return Poll::Ready(Some(Err(this.fail(error))));
        }
        if let Some(cancelled) = &mut this.cancelled
            && cancelled.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(this.fail(cancelled_by_client()))));
        }
        match this.rows.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(row))) => {
                this.sent += 1;
                Poll::Ready(Some(Ok(row)))
            }
            Poll::Ready(Some(Err(error))) => {
                let error = explained(&this.limits, error);
                Poll::Ready(Some(Err(this.fail(error))))
            }
            Poll::Ready(None) => {
                this.slot.release();
                if let Some(query) = this.query.take() {
                    query.record(Ok(this.sent));
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(query) = self.query.take() {
            match self.deadline.is_elapsed() {
                true => query.record(Err(("timed_out", &self.limits.timed_out().to_string()))),
                false => {
                    let message = format!("the client closed the result after {} rows", self.sent);
                    query.record(Err(("closed", &message)));
                }
            }
        }
    }
}

impl WireState {
    /// Starts the clock of a query of `client`'s account: refused when the account was revoked
    /// (the connection is closed, its portals with it) or the text is too long; with `slot`,
    /// one of the account's query slots is taken for it, given back at its deadline at the
    /// latest.
    pub(super) async fn begin(
        &self,
        client: &(dyn ClientInfo + Send + Sync),
        sql: &str,
        slot: bool,
    ) -> PgWireResult<Begun> {
        let query = WireQuery::new(client, sql, &self.audit);
        self.check_active(client).await.map_err(|e| query.refuse(e))?;
        check_text(&self.limits, sql).map_err(|e| query.refuse(e))?;
        let deadline = tokio::time::Instant::from_std(query.started + self.limits.timeout);
        let taken = match slot {
            true => Some(
                self.query_slots
                    .take(&query.account)
                    .await
                    .map_err(|e| query.refuse(user_error("53400", e.to_string())))?,
            ),
            false => None,
        };
        Ok(Begun {
            query: Arc::new(query),
            slot: SlotHold::until(taken, deadline),
            deadline,
        })
    }

    /// Refused with FATAL 28000 when the account signed in on `client` was revoked.
    pub(super) async fn check_active(&self, client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<()> {
        let account_id = client.metadata().get(ACCOUNT_ID).cloned().unwrap_or_default();
        let active = self
            .auth
            .is_active(&account_id)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        match active {
            true => Ok(()),
            // FATAL: the server closes the connection after saying why.
            false => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_string(),
                "28000".to_string(),
                "the account was revoked: this connection is closed".to_string(),
            )))),
        }
    }

    /// Runs `work` (planning, starting the query) before the deadline, unless the client cancels
    /// first; a failure is audited.
    pub(super) async fn planned<T>(
        &self,
        begun: &Begun,
        cancelled: Option<OwnedNotified>,
        work: impl Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        let limits = self.limits;
        let cancel = async {
            match cancelled {
                Some(cancelled) => cancelled.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = tokio::time::timeout_at(begun.deadline, work) => match done {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(error)) => Err(begun.query.refuse(explained(&limits, error))),
                Err(_) => Err(begun.query.refuse(user_error("57014", limits.timed_out().to_string()))),
            },
            () = cancel => Err(begun.query.refuse(cancelled_by_client())),
        }
    }

    /// The rows of `response` under the query's budget ([`Watched`]).
    pub(super) fn watched(
        &self,
        mut response: QueryResponse,
        begun: &Begun,
        cancelled: Option<OwnedNotified>,
    ) -> QueryResponse {
        let rows = std::mem::replace(response.data_rows(), Box::pin(futures::stream::empty()));
        *response.data_rows() = Box::pin(Watched {
            rows,
            deadline: Box::pin(tokio::time::sleep_until(begun.deadline)),
            cancelled: cancelled.map(Box::pin),
            limits: self.limits,
            query: Some(Arc::clone(&begun.query)),
            sent: 0,
            slot: begun.slot.clone(),
        });
        response
    }
}
