//! SQL for planners: `POST /api/v1/sql` (JSON, CSV or Arrow IPC by the `Accept` header) and
//! the `/sql` workbench. Analysts and admins only; the same guard rails as every SQL path —
//! reading statements only, a time limit that cancels the work, a memory limit, a cap on the
//! text — plus a cap on each account's concurrent queries. Every query is audited (who, when,
//! how long, how many rows).
//!
//! A result can be drawn as a chart (`/sql`'s chart picker, `POST /api/v1/sql/chart`,
//! `/sql/chart?q=…&format=svg|png`): its first [`ROWS_SHOWN`] rows, the kind and columns picked
//! or guessed (see [`crate::charts::result`]).
//!
//! Shown results stop at a row limit and say so ("showing N of M rows", or the
//! `Khoso-Rows-Shown` / `Khoso-Rows-Total` headers); downloads (CSV, JSON, Arrow IPC, Parquet
//! streamed; XLSX up to Excel's row limit) carry every row.

mod api;
mod chart;
mod export;
pub mod slots;
mod workbench;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;
use api::api_sql;
use chart::{api_chart, chart_download};
use workbench::{save_query, sql_form, sql_page};

/// SQL's routes: the workbench, saving a query, and the API (with its downloads).
pub fn router() -> Router<AppState> {
    // Room for a query text past the SQL limit, so that its answer says so.
    let room = axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024);
    Router::new()
        .route("/sql", get(sql_page).post(sql_form).layer(room))
        .route("/sql/save", post(save_query))
        .route("/sql/chart", get(chart_download))
        .route("/api/v1/sql", post(api_sql).layer(room))
        .route("/api/v1/sql/chart", post(api_chart).layer(room))
}
