//! A query's result columns as plain Rust values, whatever Arrow type the query gave them.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;

use crate::Result;

/// A column of a batch as optional texts, whatever its string or other type.
pub(crate) fn text_column(batch: &RecordBatch, index: usize) -> Result<Vec<Option<String>>> {
    let array = datafusion::arrow::compute::cast(batch.column(index), &DataType::Utf8)?;
    let strings = array.as_string::<i32>();
    Ok((0..strings.len())
        .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
        .collect())
}

/// A column of a batch as optional doubles, whatever its numeric type.
pub(crate) fn number_column(batch: &RecordBatch, index: usize) -> Result<Vec<Option<f64>>> {
    let array = datafusion::arrow::compute::cast(batch.column(index), &DataType::Float64)?;
    let numbers = array.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    Ok((0..numbers.len())
        .map(|i| (!numbers.is_null(i)).then(|| numbers.value(i)))
        .collect())
}
