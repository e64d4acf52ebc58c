//! The query handlers behind the guard rails: simple and extended queries (prepared statements,
//! portals), each text held to its size, each query to its account's slots and its deadline.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::portal::{Format, Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::query::send_execution_response;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{DescribePortalResponse, FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::{QueryParser, StoredStatement};
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::extendedquery::{
    Close, CloseComplete, Describe, Execute, Parse, ParseComplete, PortalSuspended, Sync as PgSync,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use datafusion_postgres::pgwire::messages::response::{CommandComplete, EmptyQueryResponse, ReadyForQuery};
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio::sync::futures::OwnedNotified;
use warehouse::people::rights::Role;
use warehouse::query::guard::QueryLimits;

use crate::AuditQueue;

use super::connection::{Connection, cancelled};
use super::errors::user_error;
use super::read_only::ReadOnly;

use super::state::{Begun, ROLE, WireQuery, WireState, check_text};

/// The datafusion-postgres service behind the guard rails: the text's size, the account's
/// query slots, the time limit, and the audit of every query.
pub(super) struct Guarded {
    pub(super) readers: Readers,
    pub(super) parser: Arc<CheckedParser>,
    pub(super) state: WireState,
}

/// One role's side of the wire: a session in which the tables are as the catalogue lets the
/// role read them, and datafusion-postgres's service over it.
pub(super) struct Reader {
    pub(super) service: Arc<DfSessionService>,
    pub(super) context: Arc<SessionContext>,
}

/// The analysts' and the admins' sides.
pub(super) struct Readers {
    pub(super) analyst: Reader,
    pub(super) admin: Reader,
}

impl Readers {
    pub(super) async fn new(state: &WireState) -> std::io::Result<Self> {
        Ok(Self {
            analyst: Reader::new(state, Role::Analyst).await?,
            admin: Reader::new(state, Role::Admin).await?,
        })
    }

    /// The side of the client's signed-in role (the analysts' for anything else).
    pub(super) fn of(&self, client: &impl ClientInfo) -> &Reader {
        match client.metadata().get(ROLE).map(String::as_str) {
            Some(role) if role == Role::Admin.as_str() => &self.admin,
            _ => &self.analyst,
        }
    }
}

impl Reader {
    pub(super) async fn new(state: &WireState, role: Role) -> std::io::Result<Self> {
        let ctx = state
            .warehouse
            .wire_session(&state.limits, role)
            .await
            .map_err(std::io::Error::other)?;
        // Not an `Arc` of a provider: datafusion-pg-catalog 0.19's provider for `Arc<T>` calls
        // itself, and reading `pg_roles` through it overflows the stack of the process.
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
            &ctx,
            "datafusion",
            super::catalog::WireRoles,
        )
        .map_err(std::io::Error::other)?;
        super::compat::register(&ctx);
        let descriptions = super::catalog::descriptions(state.warehouse.metrics().ok());
        super::catalog::use_postgres_names(&ctx, descriptions).map_err(std::io::Error::other)?;
        super::catalog::register_functions(&ctx)
            .await
            .map_err(std::io::Error::other)?;
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnly {
                state: state.clone(),
                tag: Mutex::new(String::new()),
                role,
            }),
            Arc::new(super::compat::PostgresLook),
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
    pub(super) async fn watch<F>(
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
    pub(super) async fn check_active<C>(&self, client: &mut C) -> PgWireResult<()>
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
        let account = client.metadata().get("user").cloned().unwrap_or_default();
        let sql = super::compat::for_client(sql, &account);
        self.watch(begun, stop, SimpleQueryHandler::do_query(&*service, client, &sql))
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
    /// ([`super::connection::MAX_STATEMENTS`], [`super::connection::MAX_STATEMENT_BYTES`]).
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
    /// rows streamed instead of gathered ([`super::cursors::rows_of`]).
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
            let mut rows = super::cursors::rows_of(&portal, limit).await?;
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
pub(super) struct CheckedParser {
    /// The analysts' parser and the admins' (the tables a statement may name are the role's).
    pub(super) parsers: (Arc<Parser>, Arc<Parser>),
    pub(super) limits: QueryLimits,
    pub(super) audit: AuditQueue,
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
        let account = client.metadata().get("user").map_or("", String::as_str);
        let sql = super::compat::for_client(sql, account);
        parser.parse_sql(client, &sql, types).await.map_err(refuse)
    }

    // A parsed statement carries its plan: either parser describes it.
    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.parsers.0.get_parameter_types(statement)
    }

    fn get_result_schema(&self, statement: &Self::Statement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        self.parsers.0.get_result_schema(statement, format)
    }
}
