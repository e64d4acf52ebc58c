//! The khoso web dashboard: the ministry analyst's view of Decision 131's targets, nationally
//! and by province, in Vietnamese and English.
//!
//! [`app`] builds the axum `Router` from an [`AppState`] without binding anything, so tests
//! drive it with `tower::ServiceExt::oneshot`; [`serve`] binds it (port 0 allowed) and returns
//! the real address. Pages are askama templates; charts are SVG strings drawn by plotters
//! ([`charts`]). Every figure comes from the warehouse's fresh `kpi_values`.
//!
//! ```no_run
//! # async fn example(warehouse: warehouse::Warehouse) -> std::io::Result<()> {
//! let state = dashboard::AppState::new(warehouse);
//! let (address, server) = dashboard::serve("127.0.0.1:8080", state).await?;
//! println!("http://{address}/");
//! server.await
//! # }
//! ```
//!
//! It reads through the `warehouse` crate only: it never opens tables itself (Arrow types come
//! from DataFusion, for the SQL answers), and knows nothing of how files are read.
#![warn(missing_docs)]

mod audit_queue;
pub mod auth;
pub mod charts;
pub mod figures;
pub mod flight;
pub mod i18n;
pub mod pg;

pub use routes::percent_encode;
mod routes;
mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::Mutex;
use warehouse::Warehouse;

pub use crate::audit_queue::AuditQueue;
use crate::figures::Figures;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Dashboards need a signed-in account too.
    pub private: bool,
    /// The largest report file accepted, in bytes.
    pub max_upload_bytes: u64,
    /// The largest record file (learners, teachers) accepted, in bytes: a province's learners
    /// can be a million rows.
    pub max_record_upload_bytes: u64,
    /// A province's file waits for an admin's approval before it reaches the tables.
    pub require_approval: bool,
    /// Bounds on each SQL query.
    pub query_limits: warehouse::query::guard::QueryLimits,
    /// The server is behind a reverse proxy: a request's source is the last address of its
    /// `X-Forwarded-For`, and `X-Forwarded-Proto: https` makes cookies `Secure`.
    pub behind_proxy: bool,
    /// The key web sessions are signed with, the same on every node of the warehouse (else the
    /// warehouse's own, see [`auth`]).
    pub session_key: Option<auth::SessionKey>,
}

impl Settings {
    /// The largest file of a kind accepted (of any kind, when it is not known yet).
    pub fn upload_limit(&self, kind: Option<ingest::ReportKind>) -> u64 {
        match kind {
            Some(kind) if kind.holds_people() => self.max_record_upload_bytes,
            Some(_) => self.max_upload_bytes,
            None => self.max_upload_bytes.max(self.max_record_upload_bytes),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            private: false,
            max_upload_bytes: 50 * 1024 * 1024,
            max_record_upload_bytes: 1024 * 1024 * 1024,
            require_approval: false,
            query_limits: warehouse::query::guard::QueryLimits::default(),
            behind_proxy: false,
            session_key: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The warehouse, with its metrics attached.
    pub warehouse: Arc<Warehouse>,
    /// How the server behaves.
    pub settings: Settings,
    /// Accounts and web sessions.
    pub auth: auth::Auth,
    /// The audit events of queries, written in the background.
    pub audit: AuditQueue,
    figures: Arc<Mutex<Option<Arc<Figures>>>>,
    query_slots: routes::QuerySlots,
    boards: routes::BoardDrawings,
    flags: routes::FlagLists,
    telemetry: telemetry::Telemetry,
}

impl AppState {
    /// State over a warehouse that has its metrics attached, with the default settings.
    pub fn new(warehouse: Warehouse) -> Self {
        Self::with_settings(warehouse, Settings::default())
    }

    /// State over a warehouse that has its metrics attached.
    pub fn with_settings(warehouse: Warehouse, settings: Settings) -> Self {
        let warehouse = Arc::new(warehouse);
        let telemetry = telemetry::Telemetry::default();
        let audit = AuditQueue::new(Arc::clone(&warehouse), telemetry.clone());
        Self {
            auth: auth::Auth::new(Arc::clone(&warehouse), settings.session_key.clone(), audit.clone()),
            audit,
            warehouse,
            settings,
            figures: Arc::default(),
            query_slots: routes::QuerySlots::new(telemetry.queries_running()),
            boards: routes::BoardDrawings::default(),
            flags: routes::FlagLists::default(),
            telemetry,
        }
    }

    /// The way files reach the tables, under this server's settings.
    pub fn intake(&self) -> warehouse::intake::steps::Intake {
        self.warehouse.intake(self.settings.require_approval)
    }

    /// The figures of the warehouse as it is now. Asking costs a listing of each table's log;
    /// the values are read again only after a commit (from any process) or a metrics change,
    /// by one request while the others wait for the same new figures.
    pub async fn figures(&self) -> warehouse::Result<Arc<Figures>> {
        let key = format!(
            "{} approvals={:?}",
            self.warehouse.current_tag().await?,
            self.warehouse.decisions_version().await?
        );
        let mut kept = self.figures.lock().await;
        if let Some(figures) = kept.as_ref().filter(|f| f.key == key) {
            return Ok(Arc::clone(figures));
        }
        let started = std::time::Instant::now();
        let snapshot = self.warehouse.kpi_snapshot().await?;
        let decisions = self.warehouse.decisions().await?;
        let figures = Arc::new(Figures::new(snapshot, decisions, key));
        self.telemetry.figures_refreshed(started.elapsed());
        *kept = Some(Arc::clone(&figures));
        Ok(figures)
    }
}

/// The application: pages, API and static files.
pub fn app(state: AppState) -> Router {
    routes::router(state.clone()).with_state(state)
}

/// A page of the application rendered without a server (`khoso report`): its status and HTML.
pub async fn render_page(state: AppState, path: &str) -> std::io::Result<(axum::http::StatusCode, String)> {
    use tower::ServiceExt;
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .map_err(std::io::Error::other)?;
    let response = app(state).oneshot(request).await.map_err(std::io::Error::other)?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(std::io::Error::other)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// How long requests still running at shutdown may take to finish.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Binds `address` and returns the bound address and the server; the server stops on Ctrl-C
/// (SIGINT) or SIGTERM: it takes no new connection, and gives the requests still running
/// [`SHUTDOWN_GRACE`] to finish — a query is not waited for.
pub async fn serve(
    address: &str,
    state: AppState,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    use axum::serve::ListenerExt;

    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let listener = listener.tap_io(let_go_when_unread);
    let server = async move {
        let (stopping, mut stop) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown_signal().await;
            stopping.send(true).ok();
        };
        let serving = axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signal);
        let grace = async move {
            stop.wait_for(|stopping| *stopping).await.ok();
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = serving => served,
            () = grace => Ok(()),
        }
    };
    Ok((bound, server))
}

/// How long the server keeps sending to a client that reads nothing (the data it sent left
/// unacknowledged, the client's window shut) before the kernel drops the connection: a page or
/// download whose client stopped reading holds nothing past it.
pub const UNREAD_DATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sets [`UNREAD_DATA_TIMEOUT`] on a connection.
pub(crate) fn let_go_when_unread(socket: &mut tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(&*socket).set_tcp_user_timeout(Some(UNREAD_DATA_TIMEOUT)) {
        tracing::warn!(cause = %e, "a connection's unread-data timeout could not be set");
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
