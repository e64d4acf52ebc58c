//! The read-only rule on the wire: statements that read pass, session statements are answered,
//! everything else is refused; cursors are declared and fetched here.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Declare, DeclareType, Statement};
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use tokio::sync::Mutex;
use warehouse::people::rights::Role;
use warehouse::query::guard::Channel;

use super::connection::cancelled;
use super::errors::user_error;
use super::state::WireState;

/// Refuses every statement that is not a reading one (or a session statement the other hooks
/// answer), and brings the tables up to date before a query.
pub(super) struct ReadOnly {
    pub(super) state: WireState,
    pub(super) tag: Mutex<String>,
    /// The role whose session it keeps up to date.
    pub(super) role: Role,
}

/// The one read-only rule of every SQL path ([`warehouse::query::guard::check_statement`]), for a
/// client's statement: refused with SQLSTATE 25006.
fn check(statement: &Statement) -> PgWireResult<()> {
    warehouse::query::guard::check_statement(statement, Channel::Wire).map_err(|e| user_error("25006", e.to_string()))
}

impl ReadOnly {
    /// An `EXPLAIN`'s plan, with the server's paths hidden ([`warehouse::Warehouse::hide_paths`]).
    pub(super) async fn explain(&self, statement: &Statement, ctx: &SessionContext) -> PgWireResult<Response> {
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
    pub(super) async fn refresh(&self, ctx: &SessionContext) -> PgWireResult<()> {
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
    pub(super) async fn cursor_statement(
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
                match super::cursors::closed(cursor) {
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
    pub(super) async fn declare(
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
    let count = super::cursors::fetch_count(direction)?;
    let portal = match client.portal_store().get_portal(name) {
        Some(Entry::Value(portal)) => portal,
        Some(Entry::Empty) => return Err(user_error("XX000", "unsupported portal strategy")),
        None => return Err(user_error("34000", format!("cursor \"{name}\" does not exist"))),
    };
    Ok(Response::Query(super::cursors::rows_of(&portal, count).await?))
}
