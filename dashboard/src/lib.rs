//! The khoso web dashboard: the ministry analyst's view of Decision 131's targets, province by
//! province, in Vietnamese and English.
//!
//! This crate will own the axum application (`dashboard::app(state) -> Router`), its
//! server-rendered pages, the SVG charts drawn with plotters, the JSON API under `/api/v1`, the
//! upload portal and the SQL workbench. It reads the warehouse through the `warehouse` crate
//! only; it never opens tables or files itself, and knows nothing of polars.
//!
//! It holds no pages yet: they arrive with the KPI engine they display.
#![warn(missing_docs)]
