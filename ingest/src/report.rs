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
    Text(TextValues),
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

/// A column of text values, some missing, kept end to end in one buffer (as Arrow keeps a
/// string column) instead of one allocation per cell: a block of a million learners is a few
/// buffers, not twelve million strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextValues {
    /// Every value, end to end.
    data: String,
    /// Where each value ends in `data` (the first starts at 0).
    ends: Vec<usize>,
    /// Whether each value is there.
    present: Vec<bool>,
}

impl TextValues {
    /// Room for `rows` values of about `bytes` bytes in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        Self {
            data: String::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
            present: Vec::with_capacity(rows),
        }
    }

    /// `value`, `rows` times.
    pub fn repeated(value: Option<&str>, rows: usize) -> Self {
        let text = value.unwrap_or_default();
        Self {
            data: text.repeat(rows),
            ends: (1..=rows).map(|row| row * text.len()).collect(),
            present: vec![value.is_some(); rows],
        }
    }

    /// Adds a value at the end.
    pub fn push(&mut self, value: Option<&str>) {
        if let Some(value) = value {
            self.data.push_str(value);
        }
        self.ends.push(self.data.len());
        self.present.push(value.is_some());
    }

    /// How many values (missing ones included).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no value at all.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value of row `row`.
    pub fn get(&self, row: usize) -> Option<&str> {
        if !*self.present.get(row)? {
            return None;
        }
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        self.data.get(start..self.ends[row])
    }

    /// Every value in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|row| self.get(row))
    }

    /// Every value end to end, where each ends, and whether each is there: the parts of an
    /// Arrow string array.
    pub fn into_parts(self) -> (String, Vec<usize>, Vec<bool>) {
        (self.data, self.ends, self.present)
    }
}

impl<S: AsRef<str>> FromIterator<Option<S>> for TextValues {
    fn from_iter<I: IntoIterator<Item = Option<S>>>(values: I) -> Self {
        let mut all = Self::default();
        for value in values {
            all.push(value.as_ref().map(AsRef::as_ref));
        }
        all
    }
}
