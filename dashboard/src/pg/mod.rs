//! The PostgreSQL wire protocol (`khoso serve --pg-addr`), by datafusion-postgres: SQL clients
//! (psql, psycopg, DBeaver) sign in with the account's name as user and its token as password;
//! only analyst and admin accounts get in. The guard rails of every other SQL path hold here
//! too: reading statements only, the query text's size, the time limit (the rows stop and the
//! work is cancelled), the memory pool, the cap on an account's concurrent queries, and an
//! audit event for every query (who, when, how long, how many rows). Before each query the
//! tables are brought up to the warehouse's latest versions.
//!
//! Every query has an owner and a budget, whatever path it takes: a simple query, a prepared
//! statement's portal (suspended between Executes), a cursor (`DECLARE` … `FETCH`). Its work
//! ends at its deadline even when nobody reads its rows (every stream of a wire session ends at
//! its deadline: [`warehouse::query::engine::Deadline`]), and when the client cancels it (each
//! connection has a random cancel key: [`connection`]), closes it, ends its transaction or goes.
//! Its account's query slot is given back when its rows end or at its deadline. Rows are sent
//! as the client reads them, never gathered first ([`cursors`]); a client that stops reading is
//! let go by the kernel ([`crate::UNREAD_DATA_TIMEOUT`]). A revoked account's connection is closed,
//! with its portals, at its next message.

mod connection;
mod cursors;

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Declare, DeclareType, Statement};
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::query::send_execution_response;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{
    DescribePortalResponse, FieldInfo, QueryResponse, Response, SendableRowStream, Tag,
};
use datafusion_postgres::pgwire::api::stmt::{QueryParser, StoredStatement};
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, PgWireServerHandlers, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::extendedquery::{
    Close, CloseComplete, Describe, Execute, Parse, ParseComplete, PortalSuspended, Sync as PgSync,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use datafusion_postgres::pgwire::messages::response::{CommandComplete, EmptyQueryResponse, ReadyForQuery};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::Mutex;
use tokio::sync::futures::OwnedNotified;
use warehouse::people::rights::Action;
use warehouse::people::rights::Role;
use warehouse::query::guard::{Channel, QueryLimits};
use warehouse::tables::rows::AuditEvent;

use crate::routes::QuerySlot;
use crate::{AppState, AuditQueue};

use connection::{CancelKeys, Connection, cancelled};

/// What the wire server shares with the web server: the warehouse, the accounts, the audit
/// queue, the query slots of each account, and the limits of a query.
#[derive(Clone)]
pub struct WireState {
    warehouse: Arc<warehouse::Warehouse>,
    auth: crate::auth::Auth,
    audit: AuditQueue,
    query_slots: crate::routes::QuerySlots,
    limits: QueryLimits,
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

/// The connection's metadata key holding the signed-in account's role.
const ROLE: &str = "khoso.role";

/// The connection's metadata key holding the signed-in account's id.
const ACCOUNT_ID: &str = "khoso.account";

/// An error a SQL client shows: SQLSTATE `code` and a message.
fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// Signs clients in with an account's token as password; every attempt is audited. A client
/// signed in is given a cancel key of its own.
struct TokenStartup {
    state: WireState,
    parameters: DefaultServerParameterProvider,
    cancel_keys: Arc<CancelKeys>,
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = LoginInfo::from_client_info(client)
                    .user()
                    .unwrap_or_default()
                    .to_string();
                let source = client.socket_addr().ip();
                let account = crate::auth::from_source(source, self.state.auth.verify(&password.password))
                    .await
                    .map_err(|e| match e {
                        crate::auth::AuthError::TooMany(_) => user_error("53300", e.to_string()),
                        other => PgWireError::ApiError(Box::new(other)),
                    })?;
                match account {
                    Some(account) if account.name == user && account.role.may(Action::Query) => {
                        let mut event = AuditEvent::now("sign_in", "ok");
                        event.actor = Some(account.name.clone());
                        event.role = Some(account.role.as_str().to_string());
                        event.detail = Some("a PostgreSQL client".into());
                        self.state.audit.record(event);
                        let metadata = client.metadata_mut();
                        metadata.insert(ROLE.to_string(), account.role.as_str().to_string());
                        metadata.insert(ACCOUNT_ID.to_string(), account.id.clone());
                        let connection = self.cancel_keys.open(client);
                        client.session_extensions().get_or_insert_with(|| connection);
                        finish_authentication(client, &self.parameters).await?;
                    }
                    refused => {
                        let (outcome, why) = match refused {
                            Some(account) if account.name == user => (
                                "forbidden",
                                warehouse::people::rights::refusal(account.role, Action::Query).0,
                            ),
                            _ => ("unauthorized", "a token that matches no active account of that name"),
                        };
                        let mut event = AuditEvent::now("sign_in", outcome);
                        event.detail = Some(format!("a PostgreSQL client as {user:?}: {why}"));
                        self.state.audit.record(event);
                        return Err(PgWireError::InvalidPassword(user));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Refuses every statement that is not a reading one (or a session statement the other hooks
/// answer), and brings the tables up to date before a query.
struct ReadOnly {
    state: WireState,
    tag: Mutex<String>,
    /// The role whose session it keeps up to date.
    role: Role,
}

/// The one read-only rule of every SQL path ([`warehouse::query::guard::check_statement`]), for a
/// client's statement: refused with SQLSTATE 25006.
fn check(statement: &Statement) -> PgWireResult<()> {
    warehouse::query::guard::check_statement(statement, Channel::Wire).map_err(|e| user_error("25006", e.to_string()))
}

impl ReadOnly {
    /// An `EXPLAIN`'s plan, with the server's paths hidden ([`warehouse::Warehouse::hide_paths`]).
    async fn explain(&self, statement: &Statement, ctx: &SessionContext) -> PgWireResult<Response> {
        let engine = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        let warehouse = &self.state.warehouse;
        let batches = ctx
            .sql(&statement.to_string())
            .await
            .map_err(engine)?
            .collect()
            .await
            .map_err(engine)?;
        let hidden = batches
            .iter()
            .map(|batch| warehouse.hide_paths_in(batch))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let frame = ctx.read_batches(hidden).map_err(engine)?;
        Ok(Response::Query(
            encode_dataframe(frame, &Format::UnifiedText, None).await?,
        ))
    }

    /// Re-registers the tables and views when the warehouse changed since the last query.
    async fn refresh(&self, ctx: &SessionContext) -> PgWireResult<()> {
        let api = |e: warehouse::Error| PgWireError::ApiError(Box::new(e));
        let now = self.state.warehouse.current_tag().await.map_err(api)?;
        let mut tag = self.tag.lock().await;
        // The admins' tables include the audit log, which changes with every query.
        if *tag != now || self.role == Role::Admin {
            self.state.warehouse.refresh_session(ctx).await.map_err(api)?;
            *tag = now;
        }
        Ok(())
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Err(refused) = check(statement) {
            return Some(Err(refused));
        }
        if let Err(e) = self.refresh(session_context).await {
            return Some(Err(e));
        }
        match statement {
            Statement::Explain { .. } => Some(self.explain(statement, session_context).await),
            other => {
                self.cursor_statement(other, &ParamValues::List(Vec::new()), session_context, client)
                    .await
            }
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if let Err(refused) = check(statement) {
            return Some(Err(refused));
        }
        self.refresh(session_context).await.err().map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        params: &ParamValues,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Explain { .. } => Some(self.explain(statement, session_context).await),
            other => self.cursor_statement(other, params, session_context, client).await,
        }
    }
}

impl ReadOnly {
    /// `DECLARE`, `FETCH` and `CLOSE` of a cursor, streamed ([`cursors`]); `COMMIT` and
    /// `ROLLBACK` close the transaction's cursors (and are answered by the next hook). None for
    /// any other statement.
    async fn cursor_statement(
        &self,
        statement: &Statement,
        params: &ParamValues,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Declare { stmts } => Some(self.declare(stmts, params, context, client).await),
            Statement::Fetch { name, direction, .. } => Some(fetch(client, &name.value, direction).await),
            Statement::Close { cursor } => {
                match cursors::closed(cursor) {
                    Some(name) => client.portal_store().rm_portal(name),
                    None => client.portal_store().clear_portals(),
                }
                Some(Ok(Response::Execution(Tag::new("CLOSE CURSOR"))))
            }
            Statement::Commit { .. } | Statement::Rollback { .. } => {
                client.portal_store().clear_portals();
                None
            }
            _ => None,
        }
    }

    /// `DECLARE name CURSOR FOR query`, over either protocol (with the bound parameters of the
    /// extended one, as psycopg's named cursors send it): the query starts now under its own
    /// budget — a query slot of the account, the deadline, the audit — and its rows wait in a
    /// portal for `FETCH`.
    async fn declare(
        &self,
        declarations: &[Declare],
        params: &ParamValues,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let engine = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        for declaration in declarations {
            if declaration
                .declare_type
                .as_ref()
                .is_some_and(|t| *t != DeclareType::Cursor)
            {
                return Err(user_error("42601", "only DECLARE … CURSOR FOR a query is supported"));
            }
            let (Some(name), Some(query)) = (declaration.names.first(), &declaration.for_query) else {
                return Err(user_error("42601", "DECLARE needs a cursor name and a FOR query"));
            };
            let query = query.to_string();
            let begun = self.state.begin(client, &query, true).await?;
            let stop = cancelled(client);
            let planned = async {
                let frame = context
                    .sql(&query)
                    .await
                    .and_then(|frame| frame.with_param_values(params.clone()))
                    .map_err(engine)?;
                encode_dataframe(frame, &Format::UnifiedText, None).await
            };
            let rows = self.state.planned(&begun, stop, planned).await?;
            let rows = self.state.watched(rows, &begun, cancelled(client));
            let statement = Arc::new(StoredStatement::new(name.value.clone(), (query, None), Vec::new()));
            let portal = Portal::new_cursor(name.value.clone(), statement);
            portal.start(rows).await;
            client.portal_store().put_portal(Arc::new(portal));
        }
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }
}

/// `FETCH [count | ALL] FROM name`: the cursor's next rows, read from its query as they are sent.
async fn fetch(
    client: &mut dyn HookClient,
    name: &str,
    direction: &datafusion::sql::sqlparser::ast::FetchDirection,
) -> PgWireResult<Response> {
    let count = cursors::fetch_count(direction)?;
    let portal = match client.portal_store().get_portal(name) {
        Some(Entry::Value(portal)) => portal,
        Some(Entry::Empty) => return Err(user_error("XX000", "unsupported portal strategy")),
        None => return Err(user_error("34000", format!("cursor \"{name}\" does not exist"))),
    };
    Ok(Response::Query(cursors::rows_of(&portal, count).await?))
}

/// A query on its way: whose it is, its text, when it began and where its audit event goes.
struct WireQuery {
    account: String,
    role: String,
    sql: String,
    started: Instant,
    audit: AuditQueue,
}

impl WireQuery {
    /// A query the connection's account sends now.
    fn new(client: &(impl ClientInfo + ?Sized), sql: &str, audit: &AuditQueue) -> Self {
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
    fn refuse(&self, error: PgWireError) -> PgWireError {
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

    fn record(&self, outcome: Result<usize, (&str, &str)>) {
        let elapsed = self.started.elapsed();
        let event = AuditEvent::for_query(&self.account, &self.role, "wire", &self.sql, elapsed, outcome);
        self.audit.record_query("wire", elapsed, event);
    }
}

/// The SQLSTATE and message of a failed query, the memory limit said plainly.
fn explained(limits: &QueryLimits, error: PgWireError) -> PgWireError {
    match error {
        PgWireError::ApiError(e) if e.to_string().contains(&limits.timed_out().to_string()) => {
            user_error("57014", limits.timed_out().to_string())
        }
        PgWireError::ApiError(e) => match limits.explain(warehouse::Error::Sql(e.to_string())) {
            warehouse::Error::Sql(message) if message.contains("more than") => user_error("53200", message),
            _ => PgWireError::ApiError(e),
        },
        other => other,
    }
}

fn code_and_message(error: &PgWireError) -> (String, String) {
    match error {
        PgWireError::UserError(info) => (info.code.clone(), info.message.clone()),
        other => ("XX000".to_string(), other.to_string()),
    }
}

/// A query's slot among its account's, given back when the query's rows are done (the last
/// [`Watched`] of it dropped) or at its deadline, whichever comes first.
type SlotHold = std::sync::Mutex<Option<QuerySlot>>;

/// A query begun: its audit, its slot, its deadline.
struct Begun {
    query: Arc<WireQuery>,
    slot: Arc<SlotHold>,
    deadline: tokio::time::Instant,
}

/// The error of a query the client cancelled.
fn cancelled_by_client() -> PgWireError {
    user_error("57014", "canceling statement due to user request")
}

/// A query's rows on their way to the client: stopped with an error at the deadline or when the
/// client cancels (dropping the engine's stream drops its work, which also ends at the deadline
/// on its own when nobody reads), counted, and audited once — when the rows end, when they
/// fail, or when the client closes the result before the end.
struct Watched {
    rows: SendableRowStream,
    deadline: Pin<Box<tokio::time::Sleep>>,
    cancelled: Option<Pin<Box<OwnedNotified>>>,
    limits: QueryLimits,
    query: Option<Arc<WireQuery>>,
    sent: usize,
    _slot: Arc<SlotHold>,
}

impl Watched {
    fn fail(&mut self, error: PgWireError) -> PgWireError {
        self.rows = Box::pin(futures::stream::empty());
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
    async fn begin(&self, client: &(dyn ClientInfo + Send + Sync), sql: &str, slot: bool) -> PgWireResult<Begun> {
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
        let holds_slot = taken.is_some();
        let slot = Arc::new(std::sync::Mutex::new(taken));
        if holds_slot {
            let held = Arc::downgrade(&slot);
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline).await;
                if let Some(slot) = held.upgrade() {
                    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                }
            });
        }
        Ok(Begun {
            query: Arc::new(query),
            slot,
            deadline,
        })
    }

    /// Refused with FATAL 28000 when the account signed in on `client` was revoked.
    async fn check_active(&self, client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<()> {
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
    async fn planned<T>(
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
    fn watched(&self, mut response: QueryResponse, begun: &Begun, cancelled: Option<OwnedNotified>) -> QueryResponse {
        let rows = std::mem::replace(response.data_rows(), Box::pin(futures::stream::empty()));
        *response.data_rows() = Box::pin(Watched {
            rows,
            deadline: Box::pin(tokio::time::sleep_until(begun.deadline)),
            cancelled: cancelled.map(Box::pin),
            limits: self.limits,
            query: Some(Arc::clone(&begun.query)),
            sent: 0,
            _slot: Arc::clone(&begun.slot),
        });
        response
    }
}

/// Refuses a query text over the size limit before it is parsed.
fn check_text(limits: &QueryLimits, sql: &str) -> PgWireResult<()> {
    limits
        .check_text(sql)
        .map(|_| ())
        .map_err(|e| user_error("54000", e.to_string()))
}

/// The datafusion-postgres service behind the guard rails: the text's size, the account's
/// query slots, the time limit, and the audit of every query.
struct Guarded {
    readers: Readers,
    parser: Arc<CheckedParser>,
    state: WireState,
}

/// One role's side of the wire: a session in which the tables are as the catalogue lets the
/// role read them, and datafusion-postgres's service over it.
struct Reader {
    service: Arc<DfSessionService>,
    context: Arc<SessionContext>,
}

/// The analysts' and the admins' sides.
struct Readers {
    analyst: Reader,
    admin: Reader,
}

impl Readers {
    async fn new(state: &WireState) -> std::io::Result<Self> {
        Ok(Self {
            analyst: Reader::new(state, Role::Analyst).await?,
            admin: Reader::new(state, Role::Admin).await?,
        })
    }

    /// The side of the client's signed-in role (the analysts' for anything else).
    fn of(&self, client: &impl ClientInfo) -> &Reader {
        match client.metadata().get(ROLE).map(String::as_str) {
            Some(role) if role == Role::Admin.as_str() => &self.admin,
            _ => &self.analyst,
        }
    }
}

impl Reader {
    async fn new(state: &WireState, role: Role) -> std::io::Result<Self> {
        let ctx = state
            .warehouse
            .wire_session(&state.limits, role)
            .await
            .map_err(std::io::Error::other)?;
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
            &ctx,
            "datafusion",
            Arc::new(datafusion_postgres::auth::AuthManager::new()),
        )
        .map_err(std::io::Error::other)?;
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnly {
                state: state.clone(),
                tag: Mutex::new(String::new()),
                role,
            }),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let context = Arc::new(ctx);
        let service = Arc::new(DfSessionService::new_with_hooks(Arc::clone(&context), hooks));
        Ok(Self { service, context })
    }
}

impl Guarded {
    /// Plans a query (`work`) under its budget and watches the rows of its answers; `cancelled`
    /// are the client's cancel signals for its planning and for its rows (one answer's rows).
    async fn watch<F>(
        &self,
        begun: Begun,
        cancelled: [Option<OwnedNotified>; 2],
        work: F,
    ) -> PgWireResult<Vec<Response>>
    where
        F: Future<Output = PgWireResult<Vec<Response>>>,
    {
        let [planning, rows] = cancelled;
        let mut rows = Some(rows);
        let answers = self.state.planned(&begun, planning, work).await?;
        Ok(answers
            .into_iter()
            .map(|answer| match answer {
                Response::Query(response) => {
                    let cancelled = rows.take().flatten();
                    Response::Query(self.state.watched(response, &begun, cancelled))
                }
                other => other,
            })
            .collect())
    }

    /// Closes a revoked account's connection, and its portals, at its next message.
    async fn check_active<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Send + Sync,
        C::PortalStore: PortalStore,
    {
        let checked = self.state.check_active(client).await;
        if checked.is_err() {
            client.portal_store().clear_portals();
        }
        checked
    }
}

/// Whether a statement needs a query slot of its own: not one that only moves a cursor, ends
/// a transaction or sets or shows a setting (a cursor's query holds its slot from DECLARE).
fn needs_slot(statement: &Statement) -> bool {
    !matches!(
        statement,
        Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
    )
}

/// Whether a simple query's statements need a query slot ([`needs_slot`]); a text that does not
/// parse does (it will be refused later with the parser's words).
fn text_needs_slot(sql: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser as SqlParser;
    SqlParser::parse_sql(&PostgreSqlDialect {}, sql).map_or(true, |statements| statements.iter().any(needs_slot))
}

#[async_trait]
impl SimpleQueryHandler for Guarded {
    async fn do_query<C>(&self, client: &mut C, sql: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.check_active(client).await?;
        let begun = self.state.begin(client, sql, text_needs_slot(sql)).await?;
        let service = Arc::clone(&self.readers.of(client).service);
        let stop = [cancelled(client), cancelled(client)];
        self.watch(begun, stop, SimpleQueryHandler::do_query(&*service, client, sql))
            .await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Guarded {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = CheckedParser;

    fn query_parser(&self) -> Arc<CheckedParser> {
        Arc::clone(&self.parser)
    }

    /// A portal's columns; for a cursor declared in SQL (`DECLARE … CURSOR FOR query`, as
    /// psycopg's named cursors do), those of its query.
    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = match &target.statement.statement {
            (cursor_query, None) if !cursor_query.is_empty() => {
                let frame = self
                    .readers
                    .of(client)
                    .context
                    .sql(cursor_query)
                    .await
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                arrow_schema_to_pg_fields(frame.schema().as_arrow(), &target.result_column_format, None)?
            }
            statement => self
                .parser
                .get_result_schema(statement, Some(&target.result_column_format))?,
        };
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = portal.statement.statement.1.as_ref().is_none_or(|(s, _)| needs_slot(s));
        let begun = self.state.begin(client, &portal.statement.statement.0, slot).await?;
        let service = Arc::clone(&self.readers.of(client).service);
        let stop = [cancelled(client), cancelled(client)];
        let work = async {
            ExtendedQueryHandler::do_query(&*service, client, portal, max_rows)
                .await
                .map(|answer| vec![answer])
        };
        let mut answers = self.watch(begun, stop, work).await?;
        Ok(answers.pop().unwrap_or(Response::EmptyQuery))
    }

    /// Parses a prepared statement, within what one connection may keep
    /// ([`connection::MAX_STATEMENTS`], [`connection::MAX_STATEMENT_BYTES`]).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        if let Some(connection) = client.session_extensions().get::<Connection>() {
            connection
                .prepare(&name, message.query.len())
                .map_err(|e| user_error("54000", e))?;
        }
        match StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client.portal_store().put_empty_statement(&name),
        }
        client
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                client.portal_store().rm_statement(name);
                if let Some(connection) = client.session_extensions().get::<Connection>() {
                    connection.forget(name);
                }
            }
            TARGET_TYPE_BYTE_PORTAL => client.portal_store().rm_portal(name),
            _ => {}
        }
        client
            .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.check_active(client).await?;
        self._on_describe(client, message).await
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.check_active(client).await?;
        client.portal_store().rm_portal(DEFAULT_NAME);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                client.transaction_status(),
            )))
            .await?;
        client.flush().await?;
        Ok(())
    }

    /// Runs a portal (the first Execute) and sends its rows as the client takes them, at most
    /// `max_rows` (all for 0), the rest left for the next Execute: pgwire's own Execute with the
    /// rows streamed instead of gathered ([`cursors::rows_of`]).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        self.check_active(client).await?;
        let mut transaction_status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()))
                    .await?;
                client.set_state(PgWireConnectionState::ReadyForQuery);
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name.to_owned())),
        };
        let started = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        let has_rows = match started {
            false => true,
            true => match ExtendedQueryHandler::do_query(self, client, &portal, max_rows).await? {
                Response::Query(rows) => {
                    portal.start(rows).await;
                    true
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()))
                        .await?;
                    false
                }
                Response::Execution(tag) => {
                    send_execution_response(client, tag).await?;
                    false
                }
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction_status = transaction_status.to_in_transaction_state();
                    false
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction_status = transaction_status.to_idle_state();
                    client.portal_store().rm_portal(DEFAULT_NAME);
                    false
                }
                Response::Error(error) => {
                    client
                        .send(PgWireBackendMessage::ErrorResponse((*error).into()))
                        .await?;
                    transaction_status = transaction_status.to_error_state();
                    false
                }
                Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
                    return Err(user_error("0A000", "COPY is not supported: khoso SQL is read-only"));
                }
            },
        };
        if has_rows {
            let limit = (max_rows > 0).then_some(max_rows);
            let mut rows = cursors::rows_of(&portal, limit).await?;
            let tag = rows.command_tag().to_string();
            let mut sent = 0usize;
            while let Some(row) = rows.data_rows().next().await {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                sent += 1;
            }
            drop(rows);
            let suspended =
                limit == Some(sent) && matches!(*portal.state().lock().await, PortalExecutionState::Suspended(_));
            let done = match suspended {
                true => PgWireBackendMessage::PortalSuspended(PortalSuspended::new()),
                false => PgWireBackendMessage::CommandComplete(CommandComplete::from(Tag::new(&tag).with_rows(sent))),
            };
            client.send(done).await?;
        }
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(transaction_status);
        }
        Ok(())
    }
}

/// datafusion-postgres's parser of prepared statements, behind the size limit of the text.
struct CheckedParser {
    /// The analysts' parser and the admins' (the tables a statement may name are the role's).
    parsers: (Arc<Parser>, Arc<Parser>),
    limits: QueryLimits,
    audit: AuditQueue,
}

#[async_trait]
impl QueryParser for CheckedParser {
    type Statement = <Parser as QueryParser>::Statement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // A statement refused here (its size, its shape, the read-only rule) is audited too.
        let refuse = |e| WireQuery::new(client, sql, &self.audit).refuse(e);
        check_text(&self.limits, sql).map_err(refuse)?;
        let parser = match client.metadata().get(ROLE).map(String::as_str) {
            Some(role) if role == Role::Admin.as_str() => &self.parsers.1,
            _ => &self.parsers.0,
        };
        parser.parse_sql(client, sql, types).await.map_err(refuse)
    }

    // A parsed statement carries its plan: either parser describes it.
    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.parsers.0.get_parameter_types(statement)
    }

    fn get_result_schema(&self, statement: &Self::Statement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        self.parsers.0.get_result_schema(statement, format)
    }
}

/// The handlers of every connection.
struct Handlers {
    service: Arc<Guarded>,
    startup: Arc<TokenStartup>,
    cancels: Arc<CancelRequests>,
}

/// Answers a `CancelRequest`: the connection of its key stops its running query.
struct CancelRequests {
    keys: Arc<CancelKeys>,
}

#[async_trait]
impl CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let cancelled = self.keys.cancel(request.pid, &request.secret_key);
        tracing::info!(pid = request.pid, cancelled, "a PostgreSQL client's cancel request");
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancels)
    }
}

/// Binds `address` for SQL clients and returns the bound address and the server.
pub async fn serve_pg(address: &str, state: WireState) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let readers = Readers::new(&state).await?;
    let cancel_keys = Arc::new(CancelKeys::default());
    let parsers = (
        ExtendedQueryHandler::query_parser(&*readers.analyst.service),
        ExtendedQueryHandler::query_parser(&*readers.admin.service),
    );
    let handlers = Arc::new(Handlers {
        service: Arc::new(Guarded {
            parser: Arc::new(CheckedParser {
                parsers,
                limits: state.limits,
                audit: state.audit.clone(),
            }),
            readers,
            state: state.clone(),
        }),
        startup: Arc::new(TokenStartup {
            state,
            parameters: DefaultServerParameterProvider::default(),
            cancel_keys: Arc::clone(&cancel_keys),
        }),
        cancels: Arc::new(CancelRequests { keys: cancel_keys }),
    });
    let server = async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let mut socket = socket;
            // A client that reads nothing is let go; its query's work ended at its deadline.
            crate::let_go_when_unread(&mut socket);
            let handlers = Arc::clone(&handlers);
            // Every statement of a connection is query work: it runs on the query runtime.
            warehouse::query::engine::handle().spawn(async move {
                datafusion_postgres::pgwire::tokio::process_socket(socket, None, handlers)
                    .await
                    .ok();
            });
        }
    };
    Ok((bound, server))
}
