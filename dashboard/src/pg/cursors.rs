//! The rows of portals and cursors, streamed: an Execute of a portal, `FETCH` from a cursor. Rows
//! are taken from the query's stream one at a time as the client's socket takes them, never
//! gathered first, so that an Execute of every row (`max_rows = 0`, what psycopg sends for a
//! query with parameters) or a `FETCH ALL` holds a row at a time, and a client that reads slowly
//! slows the query down instead of filling the server's memory.
//!
//! A cursor's query (`DECLARE name CURSOR FOR query`) runs from DECLARE under the limits of any
//! query: one of its account's query slots, the time limit (its work ends at the deadline even if
//! nobody fetches), the memory pool. Its work also ends at `CLOSE`, at the end of its transaction
//! (`COMMIT`, `ROLLBACK`) and when the connection goes: each drops the portal, and with it the
//! query's stream.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{CloseCursor, FetchDirection, Value};
use datafusion_postgres::pgwire::api::portal::{Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::results::QueryResponse;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use futures::StreamExt;

use super::errors::user_error;

/// The rows of `portal` from where it stands, at most `limit` (all when none), as a response
/// whose stream reads them from the query as they are sent; the portal is finished when its
/// rows end. The portal is held (another Execute or FETCH of it waits) until the response is
/// dropped.
pub(super) async fn rows_of<S>(portal: &Portal<S>, limit: Option<usize>) -> PgWireResult<QueryResponse> {
    let mut state = Arc::clone(&portal.state).lock_owned().await;
    let (fields, tag) = match &mut *state {
        PortalExecutionState::Initial => return Err(PgWireError::PortalNotStarted),
        PortalExecutionState::Finished => {
            return Ok(QueryResponse::new(Arc::new(Vec::new()), futures::stream::empty()));
        }
        PortalExecutionState::Suspended(response) => (response.row_schema(), response.command_tag().to_string()),
    };
    let rows = futures::stream::unfold((state, 0usize), move |(mut state, sent)| async move {
        if limit.is_some_and(|limit| sent >= limit) {
            return None;
        }
        let PortalExecutionState::Suspended(response) = &mut *state else {
            return None;
        };
        match response.data_rows().next().await {
            Some(row) => Some((row, (state, sent + 1))),
            None => {
                *state = PortalExecutionState::Finished;
                None
            }
        }
    });
    let mut response = QueryResponse::new(fields, rows);
    response.set_command_tag(&tag);
    Ok(response)
}

/// The rows `FETCH direction` asks for: a count, or all (`None`); cursors only go forward.
pub(super) fn fetch_count(direction: &FetchDirection) -> PgWireResult<Option<usize>> {
    match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::Forward { limit: Some(count) } | FetchDirection::Count { limit: count } => match &count.value {
            Value::Number(text, _) => text
                .parse()
                .map(Some)
                .map_err(|_| user_error("22023", format!("FETCH {text}: a count of rows is a whole number"))),
            other => Err(user_error(
                "22023",
                format!("FETCH {other}: a count of rows is a number"),
            )),
        },
        FetchDirection::ForwardAll | FetchDirection::All => Ok(None),
        _ => Err(user_error("42000", "cursor can only scan forward")),
    }
}

/// The names `CLOSE` closes: one, or every cursor (`None`).
pub(super) fn closed(cursor: &CloseCursor) -> Option<&str> {
    match cursor {
        CloseCursor::All => None,
        CloseCursor::Specific { name } => Some(name.value.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Ident;

    #[test]
    fn fetch_counts_and_directions() {
        let number = |n: &str| Value::Number(n.to_string(), false).with_empty_span();
        assert_eq!(fetch_count(&FetchDirection::Next).ok(), Some(Some(1)));
        assert_eq!(fetch_count(&FetchDirection::All).ok(), Some(None));
        assert_eq!(fetch_count(&FetchDirection::ForwardAll).ok(), Some(None));
        assert_eq!(
            fetch_count(&FetchDirection::Count { limit: number("500") }).ok(),
            Some(Some(500))
        );
        assert!(fetch_count(&FetchDirection::Prior).is_err());
        assert!(fetch_count(&FetchDirection::Count { limit: number("-1") }).is_err());
        assert_eq!(closed(&CloseCursor::All), None);
        assert_eq!(closed(&CloseCursor::Specific { name: Ident::new("c") }), Some("c"));
    }
}
