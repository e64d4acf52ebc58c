//! The PostgreSQL wire protocol (`khoso serve --pg-addr`), by datafusion-postgres: SQL clients
//! (psql, psycopg, DBeaver) sign in with the account's name as user and its token as password;
//! only analyst and admin accounts get in. Reading statements only, and the session's memory
//! is bounded like every other SQL path; before each query the tables are brought up to the
//! warehouse's latest versions.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::{Sink, SinkExt};
use tokio::sync::Mutex;
use warehouse::accounts::Role;

use crate::AppState;

/// Signs clients in with an account's token as password.
struct TokenStartup {
    state: AppState,
    parameters: DefaultServerParameterProvider,
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
                let account = self
                    .state
                    .auth
                    .verify(&password.password)
                    .await
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                match account {
                    Some(account) if account.name == user && account.role != Role::Province => {
                        finish_authentication(client, &self.parameters).await?;
                    }
                    _ => return Err(PgWireError::InvalidPassword(user)),
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
    state: AppState,
    tag: Mutex<String>,
}

fn refused(statement: &Statement) -> PgWireResult<Response> {
    let first: String = statement
        .to_string()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Err(PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "25006".to_string(),
        format!("khoso SQL is read-only: {first} is not allowed (use SELECT, WITH, EXPLAIN, SHOW or DESCRIBE)"),
    ))))
}

impl ReadOnly {
    /// Whether a statement may run: reading statements, and the session statements
    /// (SET, SHOW, transactions, cursors) the other hooks answer.
    fn allowed(statement: &Statement) -> bool {
        matches!(
            statement,
            Statement::Query(_)
                | Statement::Explain { analyze: false, .. }
                | Statement::ExplainTable { .. }
                | Statement::ShowTables { .. }
                | Statement::ShowColumns { .. }
                | Statement::ShowVariable { .. }
                | Statement::ShowVariables { .. }
                | Statement::Set(_)
                | Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Declare { .. }
                | Statement::Fetch { .. }
                | Statement::Close { .. }
                | Statement::Discard { .. }
                | Statement::Deallocate { .. }
        )
    }

    /// Re-registers the tables and views when the warehouse changed since the last query.
    async fn refresh(&self, ctx: &SessionContext) -> PgWireResult<()> {
        let api = |e: warehouse::Error| PgWireError::ApiError(Box::new(e));
        let now = self.state.warehouse.current_tag().await.map_err(api)?;
        let mut tag = self.tag.lock().await;
        if *tag != now {
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
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !Self::allowed(statement) {
            return Some(refused(statement));
        }
        self.refresh(session_context).await.err().map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !Self::allowed(statement) {
            return Some(refused(statement).map(|_| LogicalPlan::default()));
        }
        self.refresh(session_context).await.err().map(Err)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

/// The handlers of every connection.
struct Handlers {
    service: Arc<DfSessionService>,
    startup: Arc<TokenStartup>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// Binds `address` for SQL clients and returns the bound address and the server.
pub async fn serve_pg(address: &str, state: AppState) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let ctx = state
        .warehouse
        .wire_session(state.settings.query_limits.memory_bytes)
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
        }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let handlers = Arc::new(Handlers {
        service: Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks)),
        startup: Arc::new(TokenStartup {
            state,
            parameters: DefaultServerParameterProvider::default(),
        }),
    });
    let server = async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let handlers = Arc::clone(&handlers);
            tokio::spawn(async move {
                datafusion_postgres::pgwire::tokio::process_socket(socket, None, handlers)
                    .await
                    .ok();
            });
        }
    };
    Ok((bound, server))
}
