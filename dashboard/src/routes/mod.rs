//! The routes: pages (HTML), the JSON API under `/api/v1`, and static files.

mod api;
mod pages;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::i18n::Lang;

/// The OpenAPI document of `/api/v1`.
const OPENAPI: &str = include_str!("openapi.json");

/// The stylesheet, embedded in the binary.
const CSS: &str = include_str!("../../static/khoso.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/kpi/{id}", get(pages::kpi))
        .route("/catalogue", get(pages::catalogue))
        .route(
            "/static/khoso.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/kpis", get(api::kpis))
        .route("/api/v1/kpis/{id}", get(api::kpi))
        .route("/api/v1/provinces", get(api::provinces))
        .route("/api/v1/submissions", get(api::submissions))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .fallback(pages::not_found)
}

/// Why a request failed, and how the answer looks: a page for people, JSON for programs.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such KPI, province or page.
    #[error("{0}")]
    NotFound(String),
    /// A parameter that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// Ours; logged, never shown in detail.
    #[error("internal error")]
    Internal(String),
}

impl From<warehouse::Error> for AppError {
    fn from(e: warehouse::Error) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "not_found",
            AppError::BadRequest(_) => "bad_request",
            AppError::Internal(_) => "internal",
        }
    }

    fn log(&self) {
        if let AppError::Internal(detail) = self {
            eprintln!("khoso serve: internal error: {detail}");
        }
    }

    /// The error as a JSON API answer `{code, message}`.
    pub fn json(self) -> Response {
        self.log();
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        (self.status(), axum::Json(body)).into_response()
    }

    /// The error as a page in the user's language.
    pub fn page(self, lang: Lang) -> Response {
        self.log();
        let status = self.status();
        let title = match &self {
            AppError::NotFound(_) => lang.pick("Không tìm thấy", "Not found"),
            AppError::BadRequest(_) => lang.pick("Yêu cầu không hợp lệ", "Bad request"),
            AppError::Internal(_) => lang.pick("Lỗi hệ thống", "Something went wrong"),
        };
        let page = pages::ErrorPage {
            chrome: pages::Chrome {
                lang,
                as_of: String::new(),
            },
            title: title.to_string(),
            message: self.to_string(),
        };
        match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}
