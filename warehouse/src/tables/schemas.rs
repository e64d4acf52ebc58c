//! The warehouse's tables: names, columns, and turning a validated report into Arrow.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ingest::{ColumnType, ColumnValues, ReportKind, TextValues, ValidatedReport};

use crate::{Error, Result};

/// Name of the submissions table.
pub const SUBMISSIONS: &str = "submissions";

/// Name of the materialised KPI results table.
pub const KPI_VALUES: &str = "kpi_values";

/// The column of `kpi_values` naming the table versions (and metrics) the values come from.
pub const SOURCE_VERSIONS: &str = "source_versions";

/// The column on every fact row naming the submission it came from.
pub const SUBMISSION_ID: &str = "submission_id";

/// The column on provincial fact rows naming the 2025 province the row rolls up to.
pub const PROVINCE_2025_CODE: &str = "province_2025_code";

/// The SQL name of a report kind's table.
pub fn fact_table(kind: ReportKind) -> &'static str {
    kind.schema().table.as_str()
}

/// The columns a kind's table is partitioned by (and that identify a slice).
pub fn partition_columns(kind: ReportKind) -> &'static [&'static str] {
    if kind.is_provincial() {
        &["school_year", "province_code"]
    } else {
        &["school_year"]
    }
}

/// The Arrow schema of a kind's table: the report columns, then `province_2025_code` for
/// provincial kinds, then `submission_id`.
pub fn fact_schema(kind: ReportKind) -> SchemaRef {
    let mut fields: Vec<Field> = kind
        .schema()
        .columns
        .iter()
        .map(|c| {
            let data_type = match c.column_type {
                ColumnType::Count => DataType::Int64,
                ColumnType::Flag => DataType::Boolean,
                _ => DataType::Utf8,
            };
            Field::new(&c.name, data_type, true)
        })
        .collect();
    if kind.is_provincial() {
        fields.push(Field::new(PROVINCE_2025_CODE, DataType::Utf8, true));
    }
    fields.push(Field::new(SUBMISSION_ID, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// The columns of a table read otherwise than as its files hold them, by the report schema of
/// its kind: renamed, or with a stated default (see [`crate::tables::scan::Stated`]). None for a table
/// that is not a report kind's.
pub fn stated_columns(table: &str) -> Vec<crate::tables::scan::Stated> {
    ReportKind::ALL
        .into_iter()
        .filter(|kind| fact_table(*kind) == table)
        .flat_map(|kind| kind.schema().columns.iter())
        .filter_map(crate::tables::scan::Stated::of_column)
        .collect()
}

/// The Arrow schema of the `kpi_values` table: the KPI values, each tagged with its sources.
pub fn kpi_values_table_schema() -> SchemaRef {
    let mut fields: Vec<Field> = <crate::tables::rows::KpiRow as crate::tables::stored::StoredRow>::schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(SOURCE_VERSIONS, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// A validated report as one Arrow batch of its table's schema, every row stamped with the
/// submission it belongs to.
pub fn report_batch(report: &ValidatedReport, submission_id: &str) -> Result<RecordBatch> {
    batch_of(report.clone(), fact_schema(report.kind), submission_id)
}

/// The columns of a validated report that `schema` names, as one Arrow batch whose text buffers
/// are the report's own, every row stamped with the submission it belongs to.
fn batch_of(mut report: ValidatedReport, schema: SchemaRef, submission_id: &str) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if field.name() == SUBMISSION_ID {
            columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                submission_id,
                report.rows,
            ))));
            continue;
        }
        let at = report
            .columns
            .iter()
            .position(|c| c.name == *field.name())
            .ok_or_else(|| Error::Internal(format!("validated report lacks column {}", field.name())))?;
        let values = std::mem::replace(&mut report.columns[at].values, ColumnValues::Flag(Vec::new()));
        let array: ArrayRef = match values {
            ColumnValues::Text(v) => Arc::new(string_array(v)?),
            ColumnValues::Count(v) => Arc::new(Int64Array::from(v)),
            ColumnValues::Flag(v) => Arc::new(BooleanArray::new(v.as_slice().into(), None)),
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A column of text values as an Arrow string array, its buffer taken as it is.
fn string_array(values: TextValues) -> Result<StringArray> {
    use datafusion::arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

    let (data, ends, present) = values.into_parts();
    // The ends only grow: the last one bounds them all.
    if i32::try_from(data.len()).is_err() {
        return Err(Error::Internal("a text column past 2 GB".into()));
    }
    let mut offsets = Vec::with_capacity(ends.len() + 1);
    offsets.push(0);
    offsets.extend(ends.iter().map(|&end| end as i32));
    let nulls = (!present.iter().all(|&p| p)).then(|| NullBuffer::from(present));
    Ok(StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(data.into_bytes()),
        nulls,
    )?)
}

/// The Arrow schema of a kind's data files: its table's columns but the partition columns,
/// whose values the table's log holds for each file (the Delta protocol's layout).
pub fn stored_schema(kind: ReportKind) -> SchemaRef {
    let table = fact_schema(kind);
    let partitions = partition_columns(kind);
    let fields: Vec<Field> = table
        .fields()
        .iter()
        .filter(|f| !partitions.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// A validated block of a record file as the rows of one of its table's data files (see
/// [`stored_schema`]), stamped with its submission.
pub(crate) fn stored_batch(report: ValidatedReport, submission_id: &str) -> Result<RecordBatch> {
    let schema = stored_schema(report.kind);
    batch_of(report, schema, submission_id)
}

/// Rows per row group of the data files khoso writes: the writer holds one row group of a file
/// in memory.
pub(crate) const ROW_GROUP_ROWS: usize = 131_072;

/// How the data files of a table are written: Snappy, row groups of [`ROW_GROUP_ROWS`], and
/// neither dictionary, statistics nor compression for a column of person pseudonyms (every value
/// differs, nobody looks one up by range, and Snappy takes 3 % off hex digits for the time it
/// spends).
pub(crate) fn writer_properties(kind: ReportKind) -> datafusion::parquet::file::properties::WriterProperties {
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    use datafusion::parquet::schema::types::ColumnPath;

    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    if let Some(person) = kind.schema().person_id() {
        let column = ColumnPath::from(person.name.as_str());
        properties = properties
            .set_column_dictionary_enabled(column.clone(), false)
            .set_column_compression(column.clone(), Compression::UNCOMPRESSED)
            .set_column_statistics_enabled(column, EnabledStatistics::None);
    }
    properties.build()
}

/// Writes a batch to a Parquet file, whole or not at all (a partial file is renamed when
/// complete): a data file of a record file's rows, which hold pseudonyms, never the identifiers.
/// It is not yet on disk for sure: see [`sync_folder`].
pub(crate) fn write_parquet(batch: &RecordBatch, kind: ReportKind, path: &std::path::Path) -> Result<()> {
    use datafusion::parquet::arrow::ArrowWriter;

    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(writer_properties(kind)))?;
    writer.write(batch)?;
    writer.close()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// Makes sure every file of a folder is on disk. Run once all of a record file's data files are
/// written, most of their bytes are flushed already, and the syncs are short.
pub(crate) fn sync_folder(folder: &std::path::Path) -> Result<()> {
    for entry in std::fs::read_dir(folder)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    std::fs::File::open(folder)?.sync_all()?;
    Ok(())
}
