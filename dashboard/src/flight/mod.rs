//! Arrow Flight SQL (`khoso serve --flight-addr`): query results as Arrow record batches, for
//! planners reading a year of records into pandas, polars or R through ADBC, JDBC or any Flight
//! SQL client — no row-by-row text as on the PostgreSQL wire.
//!
//! The same accounts sign in (a bearer token, or Basic with the account's name and token:
//! [`access`]); analyst and admin accounts only. The same guard rails hold as on every SQL path
//! ([`rows`]): reading statements only, the text's size, the time limit (the work ends at the
//! deadline, read or not), the memory pool, each account's query slots, and an audit event for
//! every statement and every refusal. The catalogue a client lists is the account's
//! ([`catalogue`]). Prepared statements take parameters (`?` or `$1`) and are kept by the client,
//! not the server ([`statement`]).

mod access;
mod catalogue;
mod rows;
mod service;
mod statement;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;

use crate::pg::WireState;

/// Requests one connection may have running at once.
const STREAMS_PER_CONNECTION: u32 = 16;

/// How often an idle connection is asked whether its client is still there, and how long the
/// answer may take.
const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(20));

/// The largest message a client may send (a query's text and its parameters): room for the
/// longest text the limits let in.
fn largest_message(state: &WireState) -> usize {
    state.limits.max_text_bytes.max(4 * 1024 * 1024) + 1024 * 1024
}

/// Binds `address` for Arrow Flight SQL clients and returns the bound address and the server,
/// whose calls run on the query runtime.
pub async fn serve_flight(address: &str, state: WireState) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let service = service::KhosoFlightSql {
        sql_info: catalogue::sql_info(&state.limits)?,
        state: state.clone(),
    };
    let incoming = futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((mut socket, _)) => {
                    socket.set_nodelay(true).ok();
                    // A client that reads nothing is let go; its statement's work ended at its
                    // deadline.
                    crate::let_go_when_unread(&mut socket);
                    return Some((Ok::<_, std::io::Error>(socket), listener));
                }
                // Out of descriptors, say: a moment before the next try, not a busy loop.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(KEEPALIVE.0))
        .http2_keepalive_timeout(Some(KEEPALIVE.1))
        .add_service(FlightServiceServer::new(service).max_decoding_message_size(largest_message(&state)))
        .serve_with_incoming(incoming);
    let server = async move {
        match warehouse::query::engine::handle().spawn(server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(cause = %e, "the Arrow Flight SQL server stopped"),
            Err(e) => tracing::error!(cause = %e, "the Arrow Flight SQL server stopped"),
        }
    };
    Ok((bound, server))
}
