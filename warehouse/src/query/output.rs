//! Writing query results for people and programs: an aligned table, CSV or JSON.

use std::str::FromStr;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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
                writer.write(&json_ready(batch)?)?;
            }
            writer.finish()?;
            let mut text =
                String::from_utf8(writer.into_inner()).map_err(|e| Error::failed("a result written as text", e))?;
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

/// A batch whose every column JSON can carry: a column of a type Arrow's JSON writer has no
/// form for (a map whose keys are not text, a union) is given as its values' text, as a table
/// shows them.
pub fn json_ready(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

    if batch.schema().fields().iter().all(|f| json_writable(f.data_type())) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if json_writable(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(std::sync::Arc::clone(column));
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len())
            .map(|row| column.is_valid(row).then(|| formatter.value(row).to_string()))
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(std::sync::Arc::new(text));
    }
    Ok(RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)?)
}

/// Whether Arrow's JSON writer has a form for values of a type.
fn json_writable(data_type: &DataType) -> bool {
    match data_type {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) => {
                matches!(
                    fields.first().map(|f| f.data_type()),
                    Some(DataType::Utf8 | DataType::LargeUtf8)
                ) && fields.iter().skip(1).all(|f| json_writable(f.data_type()))
            }
            _ => false,
        },
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            json_writable(item.data_type())
        }
        DataType::Struct(fields) => fields.iter().all(|f| json_writable(f.data_type())),
        DataType::Union(..) => false,
        _ => true,
    }
}

/// The CSV header line of a schema (with its newline).
pub fn csv_header(schema: &Schema) -> String {
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

/// A result's schema as Arrow answers send it: string and binary views as plain strings and
/// binaries ([`plain_strings`]).
pub fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|field| is_view(field.data_type())) {
        return std::sync::Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| field.as_ref().clone().with_data_type(plain(field.data_type())))
        .collect();
    std::sync::Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with its string and binary views as plain strings and binaries, each batch holding
/// only its own bytes. A view column read from Parquet and filtered shares its page's buffers
/// with the rows left out, and Arrow IPC sends a view column's buffers whole: each batch of a
/// stream would carry its pages again (10 GB for a year of learner records whose values are
/// 2.5 GB); and a view is 16 bytes a value where an offset is 4. Plain strings are also what
/// every Arrow client reads.
pub fn plain_strings(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch.columns().iter().any(|column| is_view(column.data_type())) {
        return Ok(batch);
    }
    let schema = plain_schema(&batch.schema());
    let columns = batch
        .columns()
        .iter()
        .map(|column| match is_view(column.data_type()) {
            true => datafusion::arrow::compute::cast(column, &plain(column.data_type())),
            false => Ok(std::sync::Arc::clone(column)),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn is_view(kind: &DataType) -> bool {
    matches!(kind, DataType::Utf8View | DataType::BinaryView)
}

fn plain(kind: &DataType) -> DataType {
    match kind {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_map_of_numbers_is_written_to_json_as_text() {
        let ctx = datafusion::prelude::SessionContext::new();
        let batches = ctx
            .sql("SELECT map(range(3), range(3)) AS m, map(['a'], [1]) AS named, 7 AS n")
            .await
            .expect("planned")
            .collect()
            .await
            .expect("ran");
        let json = render(&batches, OutputFormat::Json).expect("written");
        assert_eq!(json, "[{\"m\":\"{0: 0, 1: 1, 2: 2}\",\"named\":{\"a\":1},\"n\":7}]\n");
    }

    #[test]
    fn views_go_as_plain_strings_carrying_only_their_own_bytes() {
        use datafusion::arrow::array::{AsArray, StringViewArray, UInt32Array};

        let long: Vec<String> = (0..10_000).map(|i| format!("{i:0>64}")).collect();
        let schema = std::sync::Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8View, false)]));
        let whole = RecordBatch::try_new(
            std::sync::Arc::clone(&schema),
            vec![std::sync::Arc::new(StringViewArray::from_iter_values(&long))],
        )
        .expect("a batch");
        let every_hundredth = UInt32Array::from_iter_values((0..10_000).step_by(100));
        let taken = datafusion::arrow::compute::take_record_batch(&whole, &every_hundredth).expect("taken");
        let compact = plain_strings(taken.clone()).expect("plain");
        assert_eq!(compact.schema(), plain_schema(&taken.schema()));
        assert_eq!(compact.schema().field(0).data_type(), &DataType::Utf8);
        let values = |batch: &RecordBatch| -> Vec<String> {
            let column = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8).expect("text");
            column.as_string::<i32>().iter().flatten().map(str::to_string).collect()
        };
        assert_eq!(values(&compact), values(&taken), "the same values");
        assert!(
            compact.get_array_memory_size() * 10 < taken.get_array_memory_size(),
            "{} bytes, down from {}",
            compact.get_array_memory_size(),
            taken.get_array_memory_size()
        );
    }
}
