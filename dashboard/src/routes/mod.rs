//! The routes: pages (HTML), the JSON API under `/api/v1`, and static files.

mod api;
mod audit;
mod boards;
mod completeness;
mod error;
mod history;
mod kpi_page;
mod kpi_words;
mod page;
mod pages;
mod places;
mod quality;
mod reconciliation;
mod review;
mod roles;
mod session;
mod sql;
mod status;
mod templates;
mod upload;

pub use boards::BoardDrawings;
pub use error::AppError;
pub use page::percent_encode;
pub use quality::FlagLists;
pub use sql::slots::{QuerySlot, QuerySlots, SlotHold};

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::Instrument;

use crate::AppState;

/// The stylesheet, embedded in the binary.
const CSS: &str = include_str!("../../static/khoso.css");

/// The icon of the pages.
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// Every route, area by area: each module has its own `router()`; the figures' pages share the
/// revalidation layer, everything the door and the log line.
pub fn router(state: AppState) -> Router<AppState> {
    // The figures' pages and their JSON share the revalidation layer (fresh figures, ETags).
    let figures = pages::router()
        .route("/kpi/{id}", get(kpi_page::kpi))
        .route("/province/{code}", get(places::province))
        .route("/province/{code}/report", get(places::province_report))
        .route("/region/{code}", get(places::region))
        .route("/completeness", get(completeness::completeness))
        .merge(api::figures_router(&state))
        .route_layer(middleware::from_fn_with_state(state.clone(), revalidate));
    Router::new()
        .merge(figures)
        .merge(api::router())
        .merge(session::router())
        .merge(upload::router(&state))
        .merge(templates::router())
        .merge(sql::router())
        .merge(boards::router())
        .merge(review::router())
        .merge(reconciliation::router())
        .merge(quality::router())
        .merge(status::router())
        .route("/history", get(history::history))
        .route(
            "/static/khoso.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard_door))
        .layer(middleware::from_fn_with_state(state, log_request))
}

/// Paths that answer anyone, on a private server too: the sign-in page, the static files, and
/// what a load balancer and a monitoring system ask (counts and versions, no figures).
fn open_to_anyone(path: &str) -> bool {
    matches!(path, "/sign-in" | "/healthz" | "/readyz" | "/metrics") || path.starts_with("/static/")
}

/// `GET /readyz`: 200 once the server can answer (the warehouse's tables are readable, the
/// metrics valid), 503 with the reason otherwise; `/healthz` only says the process answers.
async fn ready(State(state): State<AppState>) -> Result<&'static str, (StatusCode, String)> {
    let not_ready = |e: warehouse::Error| (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}"));
    state.warehouse.metrics().map_err(not_ready)?;
    state.telemetry.versions(&state.warehouse).await.map_err(not_ready)?;
    Ok("ready")
}

/// `GET /metrics`: the server's counters in Prometheus' text format (see
/// [`crate::telemetry`]).
async fn metrics(State(state): State<AppState>) -> Result<Response, (StatusCode, String)> {
    let text = state.telemetry.render(&state.warehouse).await.map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the tables cannot be read: {e}"),
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}

/// The header naming a request, taken from the client (or its proxy) when it sends a sane
/// one, else made here; the answer carries it back.
const REQUEST_ID: &str = "x-request-id";

/// The longest path a log line keeps, in characters.
const PATH_LOGGED: usize = 256;

/// One log line per request, after it is answered: method, path (without the query, which
/// may hold a query's text), status, duration, the account it came from, and its id; and the
/// request counted by its route (see [`crate::telemetry`]).
async fn log_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_string());
    // A path of any length is logged in at most PATH_LOGGED characters.
    let path: String = request.uri().path().chars().take(PATH_LOGGED).collect();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_string);
    // Every event of the request's work (the intake, the commit, the KPI refresh, its queries)
    // carries its id, method and route; the account is recorded once the request knows it.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        route = route.as_deref().unwrap_or("-"),
        account = tracing::field::Empty
    );
    let (mut response, account) = crate::auth::noting_account(next.run(request))
        .instrument(span.clone())
        .await;
    if let Some(account) = account.as_deref() {
        span.record("account", account);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    state
        .telemetry
        .request(route.as_deref(), method.as_str(), status, started.elapsed());
    let duration_ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let account = account.as_deref().unwrap_or("-");
    if response.status().is_server_error() {
        tracing::warn!(target: "khoso::request", %method, path, status, duration_ms, account, request_id = %id, "request");
    } else {
        tracing::info!(target: "khoso::request", %method, path, status, duration_ms, account, request_id = %id, "request");
    }
    response
}

/// What every request passes first: its source is noted (for the budgets of sign-in checks,
/// see [`crate::auth`]); on a private server (`--private`) only the sign-in page, the static
/// files, `/healthz`, `/readyz` and `/metrics` answer a stranger; a request that changes something or runs a query
/// with the session cookie (not a bearer token) must carry the session's CSRF token, in the
/// form or, for the JSON API, in the `X-CSRF-Token` header.
async fn guard_door(State(state): State<AppState>, mut request: Request, next: Next) -> Result<Response, AppError> {
    let source = request_source(&state, &request);
    crate::auth::from_source(source, async move {
        let path = request.uri().path();
        let open = open_to_anyone(path);
        let api = path.starts_with("/api/");
        let cookie_post = request.method() == axum::http::Method::POST
            && crate::auth::bearer(request.headers()).is_none()
            && crate::auth::session_id(request.headers()).is_some();
        if (state.settings.private && !open) || (api && cookie_post) {
            let caller = state.auth.caller(request.headers()).await?;
            if state.settings.private && !open && caller.is_none() {
                return match api {
                    true => Err(AppError::Unauthorized(
                        "this dashboard is private: send Authorization: Bearer TOKEN".into(),
                    )),
                    false => Ok(axum::response::Redirect::to("/sign-in").into_response()),
                };
            }
            if let (true, Some(caller)) = (api && cookie_post, &caller) {
                let sent = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok());
                page::check_csrf(caller, sent)?;
            }
            // Found once: the figures' middleware takes it from here.
            request.extensions_mut().insert(KnownCaller(caller));
        }
        Ok(next.run(request).await)
    })
    .await
}

/// The caller [`guard_door`] already found for a request.
#[derive(Clone)]
struct KnownCaller(Option<crate::auth::Caller>);

/// The address a request came from: the peer, or behind a proxy (`--behind-proxy`) the last
/// address the proxy put in `X-Forwarded-For`.
fn request_source(state: &AppState, request: &Request) -> std::net::IpAddr {
    let forwarded = state.settings.behind_proxy.then(|| {
        request
            .headers()
            .get("x-forwarded-for")?
            .to_str()
            .ok()?
            .rsplit(',')
            .next()?
            .trim()
            .parse()
            .ok()
    });
    forwarded.flatten().unwrap_or_else(|| {
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |info| info.0.ip())
    })
}

/// Hands the request its caller and the warehouse's current figures, and answers `304 Not Modified` when the
/// client already holds this page for them: the ETag is a hash of the figures' tag (table
/// versions and metrics fingerprint), the address and the credentials (cookie, token), so it
/// changes with any commit. Responses say `Cache-Control: no-cache` (always revalidate) and carry the time
/// of the last commit as `Last-Modified`.
async fn revalidate(State(state): State<AppState>, mut request: Request, next: Next) -> Result<Response, Response> {
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        return Ok(next.run(request).await);
    }
    let known = request.extensions_mut().remove::<KnownCaller>();
    let caller = match known {
        Some(KnownCaller(caller)) => caller,
        None => state
            .auth
            .caller(request.headers())
            .await
            .map_err(|e| page::answer_error(e.into(), request.headers(), request.uri()))?,
    };
    request.extensions_mut().insert(caller);
    let figures = state
        .figures()
        .await
        .map_err(|e| page::answer_error(e.into(), request.headers(), request.uri()))?;
    let mut hasher = DefaultHasher::new();
    figures.key.hash(&mut hasher);
    request.uri().hash(&mut hasher);
    for name in [header::COOKIE, header::AUTHORIZATION] {
        request.headers().get(name).map(HeaderValue::as_bytes).hash(&mut hasher);
    }
    let etag = format!("\"{:016x}\"", hasher.finish());
    let last_modified = figures
        .as_of()
        .map(|at| at.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    let fresh = if_none_match(request.headers(), &etag);
    request.extensions_mut().insert(figures);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        next.run(request).await
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        if let Some(value) = last_modified.and_then(|t| HeaderValue::from_str(&t).ok()) {
            headers.insert(header::LAST_MODIFIED, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    }
    Ok(response)
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}
