//! Why a request failed: [`AppError`], answered as JSON for the API (a page in the request's
//! language is [`super::page::PageError`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request failed, and how the answer looks: a page for people, JSON for programs.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such KPI, province or page.
    #[error("{0}")]
    NotFound(String),
    /// A parameter that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// No credential, or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// A credential that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A body over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests of one account at once.
    #[error("{0}")]
    TooMany(String),
    /// Too many sign-in attempts from one source: the client may try again after the delay.
    #[error("{0}")]
    SlowDown(String, std::time::Duration),
    /// The server's memory ceiling is reached by the work running now.
    #[error("{0}")]
    Busy(String),
    /// Ours; logged with its whole chain of causes, never shown in detail.
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// What made an internal error: an error kept whole (its own causes included), or a message.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl AppError {
    /// An internal error caused by `cause` (an error, kept with its sources, or a message).
    pub fn internal(cause: impl Into<Cause>) -> Self {
        AppError::Internal(cause.into())
    }
}

/// An error and its causes, outermost first, joined by `: `.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<crate::auth::AuthError> for AppError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::TooMany(wait) => {
                AppError::SlowDown(crate::auth::AuthError::TooMany(wait).to_string(), wait)
            }
            crate::auth::AuthError::Warehouse(e) => AppError::from(e),
        }
    }
}

/// A warehouse error keeps its meaning: the caller's fault is a 4xx, ours a 500.
impl From<warehouse::Error> for AppError {
    fn from(e: warehouse::Error) -> Self {
        match e {
            warehouse::Error::NotFound(_) => AppError::NotFound(e.to_string()),
            warehouse::Error::Busy(message) => AppError::Busy(message),
            _ if e.is_forbidden() => AppError::Forbidden(e.to_string()),
            _ if e.is_input_error() => AppError::BadRequest(e.to_string()),
            _ => AppError::Internal(Box::new(e)),
        }
    }
}

impl From<warehouse::people::rights::Refusal> for AppError {
    fn from(refusal: warehouse::people::rights::Refusal) -> Self {
        match refusal {
            warehouse::people::rights::Refusal::BadRequest(message) => AppError::BadRequest(message),
            warehouse::people::rights::Refusal::Forbidden(message) => AppError::Forbidden(message),
        }
    }
}

impl AppError {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooMany(_) | AppError::SlowDown(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "not_found",
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::TooLarge(_) => "too_large",
            AppError::TooMany(_) | AppError::SlowDown(..) => "too_many",
            AppError::Busy(_) => "busy",
            AppError::Internal(_) => "internal",
        }
    }

    pub(super) fn log(&self) {
        if let AppError::Internal(cause) = self {
            tracing::error!(cause = %chain(cause.as_ref()), "internal error");
        }
    }

    /// The error as a JSON API answer `{code, message}`.
    pub fn json(self) -> Response {
        self.log();
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        self.with_retry_after((self.status(), axum::Json(body)).into_response())
    }

    /// Says when to try again (`Retry-After`, in whole seconds) when the error is a wait.
    pub(super) fn with_retry_after(&self, mut response: Response) -> Response {
        if let AppError::SlowDown(_, wait) = self {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// An API's error answers as JSON: handlers of the API return `Result<_, AppError>` and use `?`.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "disk said no");
        let error = AppError::from(warehouse::Error::failed("writing the audit log", io));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // People see nothing of it; the log sees every link of the chain.
        assert_eq!(error.to_string(), "internal error");
        assert_eq!(chain(&error), "internal error: writing the audit log: disk said no");
        let message = AppError::internal("the intake answered nothing");
        assert_eq!(chain(&message), "internal error: the intake answered nothing");
    }

    #[test]
    fn a_callers_error_is_not_internal() {
        let error = AppError::from(warehouse::Error::Sql("no column x".into()));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(chain(&error), "SQL error: no column x");
    }
}
