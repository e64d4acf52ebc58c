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

mod catalog;
mod compat;
mod connection;
mod cursors;
mod errors;
mod handlers;
mod read_only;
mod startup;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::PgWireServerHandlers;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;

use connection::CancelKeys;
use handlers::{CheckedParser, Guarded, Readers};
use startup::TokenStartup;
pub use state::WireState;

/// The handlers of every connection.
struct Handlers {
    pub(super) service: Arc<Guarded>,
    pub(super) startup: Arc<TokenStartup>,
    pub(super) cancels: Arc<CancelRequests>,
}

/// Answers a `CancelRequest`: the connection of its key stops its running query.
struct CancelRequests {
    pub(super) keys: Arc<CancelKeys>,
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
            parameters: compat::server_parameters(),
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
