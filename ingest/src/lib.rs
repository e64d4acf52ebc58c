//! Reading and validating the reports provinces send.
//!
//! A report kind is data (`schemas/*.toml`): its columns, their types, header aliases in
//! Vietnamese and English, and its row rules. [`read_report`] reads a CSV (UTF-8 with or without
//! BOM, UTF-16, `,` `;` or tab) or `.xlsx` file (calamine) into text cells, maps its headers by alias,
//! normalises the cells (thousands separators, yes/no spellings, codes that lost their leading
//! zero) and checks every rule, returning either a [`ValidatedReport`] or **every** problem
//! found, each with its row as the user sees it in Excel.
//!
//! ```no_run
//! use ingest::{ReportKind, SliceHint, ReadOptions, read_report};
//! let hint = SliceHint { school_year: Some("2024-2025".parse().unwrap()), province_code: None };
//! match read_report("truong-01.csv".as_ref(), ReportKind::School, &hint, &ReadOptions::default()) {
//!     Ok(report) => println!("{} rows", report.rows),
//!     Err(problems) => problems.iter().for_each(|p| eprintln!("{p}")),
//! }
//! ```
//!
//! This crate knows nothing of the warehouse: it hands over plain typed columns. The reader
//! (polars' CSV reader, calamine) is its `reader` feature, on by default: a crate that only needs the
//! report kinds, schemas, templates and problems (the dashboard) goes without it.
#![warn(missing_docs)]

#[cfg(feature = "reader")]
mod csv;
pub mod generate;
pub mod problem;
pub mod provinces;
#[cfg(feature = "reader")]
pub mod read;
pub mod report;
pub mod schema;
#[cfg(feature = "reader")]
pub mod sheet;
#[cfg(feature = "reader")]
pub mod stream;
pub mod template;
pub mod text;
#[cfg(feature = "reader")]
pub mod validate;

use std::path::Path;

pub use problem::{Problem, Rule};
pub use provinces::{Province, ProvinceRegistry};
#[cfg(feature = "reader")]
pub use read::ReadOptions;
pub use report::{ColumnValues, ReportColumn, SliceHint, StoredRows, TextValues, ValidatedReport};
pub use schema::{ColumnType, Lang, ReportKind, ReportSchema};
pub use text::{ProvinceCode, SchoolYear};

/// Errors of this crate that are not problems in a user's file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A report kind that does not exist.
    #[error("unknown report kind {0:?}: use school, university, content, learner or teacher")]
    UnknownKind(String),
    /// A schema file that is not valid.
    #[error("invalid report schema: {0}")]
    Schema(String),
    /// Writing a template failed.
    #[error("cannot write the template: {0}")]
    Template(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads and validates one file: the report, or every problem in it.
#[cfg(feature = "reader")]
pub fn read_report(
    path: &Path,
    kind: ReportKind,
    hint: &SliceHint,
    options: &ReadOptions,
) -> Result<ValidatedReport, Vec<Problem>> {
    let sheet = read::read_sheet(path, options).map_err(|p| vec![p])?;
    validate::validate(&sheet, kind, hint)
}
