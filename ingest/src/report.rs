//! A validated report: what the reader hands over, in plain typed columns (no polars).

use crate::schema::ReportKind;
use crate::text::{ProvinceCode, SchoolYear};

/// Values the uploader states for the whole file (`--year`, `--province`): they fill a column
/// the file lacks, and must agree with it when it has one.
#[derive(Debug, Clone, Default)]
pub struct SliceHint {
    /// The school year of the file.
    pub school_year: Option<SchoolYear>,
    /// The province code of the file.
    pub province_code: Option<ProvinceCode>,
}

/// The values of one column, normalised.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Text, category values, school years and province codes.
    Text(Vec<Option<String>>),
    /// Whole numbers ≥ 0.
    Count(Vec<Option<i64>>),
    /// Yes/no (a blank cell is no).
    Flag(Vec<bool>),
}

/// One normalised column of a validated report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportColumn {
    /// The column's name in the schema (and the warehouse).
    pub name: String,
    /// Its values, one per row.
    pub values: ColumnValues,
}

/// A file that passed every rule: one (kind, province, school year) slice, ready to commit.
#[derive(Debug, Clone)]
pub struct ValidatedReport {
    /// The report kind.
    pub kind: ReportKind,
    /// The school year of every row.
    pub school_year: SchoolYear,
    /// The province of every row (`None` for the national `content` report).
    pub province_code: Option<ProvinceCode>,
    /// Number of data rows.
    pub rows: usize,
    /// The schema's columns in order, then `province_2025_code` for provincial kinds.
    pub columns: Vec<ReportColumn>,
    /// Things worth knowing that are not errors (ignored columns, skipped blank rows).
    pub notices: Vec<String>,
    /// Where the rows are kept when they are not in `columns` (which is then empty).
    pub stored: Option<StoredRows>,
}

/// The rows of a file read in blocks (see [`crate::stream`]), kept as Parquet files, one per
/// block, written as its table's data files: the commit adds them to the table as they are.
#[derive(Debug, Clone)]
pub struct StoredRows {
    /// The folder of the Parquet files.
    pub folder: std::path::PathBuf,
    /// The submission the rows are stamped with, chosen when they were written.
    pub submission_id: String,
}

impl ValidatedReport {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnValues> {
        self.columns.iter().find(|c| c.name == name).map(|c| &c.values)
    }
}
