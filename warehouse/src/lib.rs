//! The warehouse: Delta tables on disk, the commit of validated reports, the DataFusion
//! session over every table, and the read-only guard in front of SQL.
//!
//! ```no_run
//! # async fn example() -> warehouse::Result<()> {
//! use warehouse::{TableVersions, Warehouse};
//! let warehouse = Warehouse::init("khoso-data".as_ref()).await?;
//! let batches = warehouse
//!     .query("SELECT province_code, sum(students) FROM school_reports GROUP BY 1", &TableVersions::new())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Only this crate opens tables. It takes reports from `ingest` as plain typed columns and knows
//! nothing of how files are read.
//!
//! The crate is in rooms, each using only the rooms listed before it (and [`Warehouse`], the
//! handle every room extends):
//!
//! | room | what it is for |
//! |------|----------------|
//! | [`place`] | where a warehouse lives (a folder or a bucket) and where each file is in it |
//! | [`people`] | accounts, their roles and what each may do |
//! | [`tables`] | the catalogue of tables, their stored rows and schemas, reading them |
//! | [`query`] | running SQL: the engine's runtime, the guard, bounds, the cluster, sessions, output |
//! | [`kpi`] | the KPIs of `metrics.toml`, computing them, keeping `kpi_values` fresh |
//! | [`quality`] | figures that look wrong: the plausibility checks, their flags and explanations, reports beside records |
//! | [`intake`] | from a file to a table: validation, preview, the commit |
//! | [`review`] | the ministry's decisions and the audit log |
//! | [`ops`] | backups and table upkeep |
#![warn(missing_docs)]

mod error;
pub mod intake;
pub mod kpi;
pub mod ops;
pub mod people;
pub mod place;
pub mod quality;
pub mod query;
pub mod review;
mod store;
pub mod tables;

pub use datafusion::arrow::array::RecordBatch;
pub use error::{Error, Result};
pub use intake::archive::sha256_file;
pub use intake::commit::{CommitOutcome, Upload};
pub use kpi::refresh::KpiSnapshot;
pub use query::output::{OutputFormat, csv_header, csv_rows, json_ready, plain_schema, plain_strings, render};
pub use store::{TableVersions, Warehouse};
pub use tables::rows::Submission;
pub use tables::schemas::fact_table;
