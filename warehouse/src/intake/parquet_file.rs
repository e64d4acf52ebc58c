//! A Parquet file a province sends (the national education database exports its learners and
//! teachers as Parquet) read as blocks of text cells, so that it is validated by the same rules
//! as a CSV file: every column cast to text, 100,000 rows at a time. Rows are numbered as in a
//! CSV export of the file (its column names on row 1).

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ingest::sheet::RawSheet;
use ingest::{Problem, Rule};

/// Rows a block holds.
const BLOCK_ROWS: usize = 100_000;

/// Whether a file is Parquet (it starts with the format's magic bytes).
pub fn is_parquet(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| &magic == b"PAR1")
}

/// The file's rows in blocks of text cells.
pub fn sheets(path: &Path) -> impl Iterator<Item = Result<RawSheet, Problem>> {
    let unreadable = |e: &dyn std::fmt::Display| Problem::file(Rule::Unreadable, format!("Parquet: {e}"));
    let reader = std::fs::File::open(path)
        .map_err(|e| unreadable(&e))
        .and_then(|file| ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(&e)))
        .and_then(|builder| builder.with_batch_size(BLOCK_ROWS).build().map_err(|e| unreadable(&e)));
    let (first, rest) = match reader {
        Ok(reader) => (None, Some(reader)),
        Err(problem) => (Some(Err(problem)), None),
    };
    let mut rows_before = 0;
    first.into_iter().chain(rest.into_iter().flatten().map(move |batch| {
        let batch = batch.map_err(|e| unreadable(&e))?;
        let headers = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            let text = cast(column, &DataType::Utf8).map_err(|e| unreadable(&e))?;
            let text = text.as_string::<i32>();
            columns.push(
                (0..text.len())
                    .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
                    .collect(),
            );
        }
        let header_row = 1 + rows_before;
        rows_before += batch.num_rows();
        RawSheet::from_columns(headers, header_row, columns)
    }))
}
