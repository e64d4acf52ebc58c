//! Writing query results for people and programs: an aligned table, CSV or JSON.

use std::str::FromStr;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::{Error, Result};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row; cells a spreadsheet would run as formulas are neutralised.
    Csv,
    /// A JSON array of objects.
    Json,
}

impl FromStr for OutputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(Error::Sql(format!("unknown format {other:?}: use table, csv or json"))),
        }
    }
}

/// Renders batches in a format.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Table => Ok(pretty_format_batches(batches)?.to_string()),
        OutputFormat::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            let mut text = String::from_utf8(writer.into_inner()).map_err(|e| Error::Internal(e.to_string()))?;
            if text.is_empty() {
                text.push_str("[]");
            }
            text.push('\n');
            Ok(text)
        }
        OutputFormat::Csv => {
            let mut text = String::new();
            let Some(first) = batches.first() else {
                return Ok(text);
            };
            text.push_str(&csv_header(&first.schema()));
            for batch in batches {
                text.push_str(&csv_rows(batch)?);
            }
            Ok(text)
        }
    }
}

/// The CSV header line of a schema (with its newline).
pub fn csv_header(schema: &datafusion::arrow::datatypes::Schema) -> String {
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| ingest::problem::csv_field(f.name()))
        .collect();
    format!("{}\n", names.join(","))
}

/// A batch as CSV lines; cells a spreadsheet would run as formulas are neutralised.
pub fn csv_rows(batch: &RecordBatch) -> Result<String> {
    let options = datafusion::arrow::util::display::FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        let cells: Vec<String> = batch
            .columns()
            .iter()
            .zip(&formatters)
            .map(|(column, f)| {
                if column.is_null(row) {
                    String::new()
                } else {
                    ingest::problem::csv_field(&f.value(row).to_string())
                }
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    Ok(text)
}
