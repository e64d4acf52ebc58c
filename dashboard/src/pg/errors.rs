//! The errors a SQL client is shown: SQLSTATE codes and messages.

use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use warehouse::query::guard::QueryLimits;

/// An error a SQL client shows: SQLSTATE `code` and a message.
pub(super) fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// The SQLSTATE and message of a failed query, the memory limit said plainly.
pub(super) fn explained(limits: &QueryLimits, error: PgWireError) -> PgWireError {
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

pub(super) fn code_and_message(error: &PgWireError) -> (String, String) {
    match error {
        PgWireError::UserError(info) => (info.code.clone(), info.message.clone()),
        other => ("XX000".to_string(), other.to_string()),
    }
}

/// The error of a query the client cancelled.
pub(super) fn cancelled_by_client() -> PgWireError {
    user_error("57014", "canceling statement due to user request")
}
