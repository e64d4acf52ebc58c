//! A Delta table read by DataFusion's own Parquet scan.
//!
//! A version of a Delta table is a list of Parquet files, each with its partition values and row
//! count in the log. [`DeltaFiles`] hands that list to DataFusion's `DataSourceExec` over a
//! `ParquetSource`, with the partition columns as DataFusion's constant columns: a partition value
//! costs little per row, files are pruned by their partition values and row groups by their
//! statistics, `count(*)` is answered from the log, and the plan is made only of DataFusion's own
//! nodes, which a distributed engine knows how to send to its workers.
//!
//! A column the report schema renamed or gave a default reads, where its own value is null,
//! the column it was named before and then the default ([`Stated`], kept in the log as the
//! field's metadata): rows written before the change read as the schema now says.
//!
//! It reads what khoso writes: plain Parquet files named in `add` actions. A table with deletion
//! vectors or column mapping (features khoso never turns on) is refused rather than misread.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::{expr_applicable_for_cols, filter_partitioned_file};
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One version of a Delta table as a DataFusion table whose scan is DataFusion's Parquet scan.
#[derive(Debug)]
pub struct DeltaFiles {
    /// The table's columns in the order of its schema.
    schema: SchemaRef,
    /// The columns stored in the files, then the partition columns: the scan's own order.
    table_schema: TableSchema,
    /// For each column of `schema`, its place in `table_schema`.
    scan_index: Vec<usize>,
    store: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    /// What the provider was made of, to send it to another process (see [`DeltaFiles::frozen`]).
    frozen: FrozenFiles,
}

/// A version's files as the log lists them: with the table's schema, all a process needs to
/// read that version without opening the log again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenFiles {
    /// The object store's URL (`file:///`, `s3://bucket`).
    store: String,
    partition_columns: Vec<String>,
    pub(crate) files: Vec<LoggedFile>,
    /// The columns read otherwise than as stored, their former names those the table has.
    #[serde(default)]
    stated: Vec<Stated>,
}

/// The field metadata naming a column's former names (a JSON list).
const FORMERLY: &str = "khoso.formerly";

/// The field metadata giving a column's stated default (as SQL would write the value).
const DEFAULT: &str = "khoso.default";

/// A column read otherwise than as its files hold it: where its own value is null, the value of
/// its former column (a renamed column's rows from before the rename), else its stated default
/// (rows from before the column was added, cells left blank).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stated {
    name: String,
    formerly: Vec<String>,
    default: Option<String>,
}

impl Stated {
    /// What a report schema's column states, if anything.
    pub(crate) fn of_column(column: &ingest::schema::ColumnSpec) -> Option<Stated> {
        use ingest::schema::DefaultValue;
        let default = column.default.as_ref().map(|value| match value {
            DefaultValue::Flag(flag) => flag.to_string(),
            DefaultValue::Count(count) => count.to_string(),
            DefaultValue::Text(text) => text.clone(),
        });
        (default.is_some() || !column.formerly.is_empty()).then(|| Stated {
            name: column.name.clone(),
            formerly: column.formerly.clone(),
            default,
        })
    }

    /// What a field of the table's log states, if anything.
    fn of_field(field: &Field) -> Option<Stated> {
        let metadata = field.metadata();
        let formerly: Vec<String> = metadata
            .get(FORMERLY)
            .and_then(|names| serde_json::from_str(names).ok())
            .unwrap_or_default();
        let default = metadata.get(DEFAULT).filter(|d| !d.is_empty()).cloned();
        (default.is_some() || !formerly.is_empty()).then(|| Stated {
            name: field.name().clone(),
            formerly,
            default,
        })
    }

    /// The column's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The field metadata that states it in the table's log.
    pub(crate) fn metadata(&self) -> std::collections::HashMap<String, String> {
        [
            (FORMERLY.to_string(), serde_json::json!(self.formerly).to_string()),
            (DEFAULT.to_string(), self.default.clone().unwrap_or_default()),
        ]
        .into()
    }
}

/// One file of a version, as its `add` action describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoggedFile {
    /// The path in the object store.
    path: String,
    size: u64,
    modified: chrono::DateTime<chrono::Utc>,
    /// The partition values as the log writes them, in the order of the partition columns.
    partition_values: Vec<Option<String>>,
    rows: Option<usize>,
}

impl DeltaFiles {
    /// The files of `table`'s loaded version.
    pub fn try_new(table: &DeltaTable) -> Result<Self> {
        let snapshot = table.snapshot()?;
        let unsupported = |feature: &str| {
            Error::Internal(format!(
                "table {} uses {feature}, which khoso does not read",
                table.table_url()
            ))
        };
        let properties = snapshot.table_config();
        // The mode's type is the Delta kernel's, which deltalake does not name: its log spelling.
        let mapping = properties
            .column_mapping_mode
            .and_then(|mode| serde_json::to_value(mode).ok());
        if mapping.is_some_and(|mode| mode != "none") {
            return Err(unsupported("column mapping"));
        }
        if properties.enable_deletion_vectors == Some(true) {
            return Err(unsupported("deletion vectors"));
        }
        let logical: Schema = snapshot.schema().as_ref().try_into_arrow()?;
        let partition_columns = snapshot.metadata().partition_columns().to_vec();
        // A former column is read through the column that took its place, and not shown.
        let stated: Vec<Stated> = logical
            .fields()
            .iter()
            .filter_map(|f| Stated::of_field(f))
            .map(|mut stated| {
                stated.formerly.retain(|name| logical.field_with_name(name).is_ok());
                stated
            })
            .collect();
        let former = |name: &String| stated.iter().any(|s| s.formerly.contains(name));
        // Text is read as views; a file's one partition value is repeated in each batch as a view
        // of at most 12 bytes kept inline (school years, province codes), so grouping by it takes
        // DataFusion's column-wise path.
        let schema = Arc::new(Schema::new(
            logical
                .fields()
                .iter()
                .filter(|f| !former(f.name()))
                .map(|f| match partition_columns.contains(f.name()) {
                    true => Field::new(f.name(), read_type(f.data_type()), true),
                    false => Field::new(f.name(), read_type(f.data_type()), f.is_nullable()),
                })
                .collect::<Vec<_>>(),
        ));

        let url = table.table_url();
        let root = Path::from_url_path(url.path()).map_err(|e| Error::failed(format!("the table at {url}"), e))?;
        let mut files = Vec::new();
        for file in snapshot.log_data().iter() {
            if file.deletion_vector_descriptor().is_some() {
                return Err(unsupported("deletion vectors"));
            }
            let values = file.partition_values_map();
            files.push(LoggedFile {
                path: format!("{root}/{}", file.object_store_path()),
                size: u64::try_from(file.size()).unwrap_or_default(),
                modified: file.modification_datetime()?,
                partition_values: partition_columns
                    .iter()
                    .map(|name| values.get(name).cloned().flatten())
                    .collect(),
                rows: file.num_records(),
            });
        }
        let frozen = FrozenFiles {
            store: url[..url::Position::BeforePath].to_string(),
            partition_columns,
            files,
            stated,
        };
        Self::thaw(schema, frozen)
    }

    /// [`DeltaFiles::try_new`], as a provider for a session.
    pub fn provider(table: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(Self::try_new(table)?))
    }

    /// The provider of `schema` (as [`TableProvider::schema`] gives it) over the `frozen` files.
    pub fn thaw(schema: SchemaRef, frozen: FrozenFiles) -> Result<Self> {
        let is_partition = |field: &Field| frozen.partition_columns.contains(field.name());
        let mut stored: Vec<FieldRef> = schema.fields().iter().filter(|f| !is_partition(f)).cloned().collect();
        // Former columns are read too, as the type of the column that took their place.
        for stated in &frozen.stated {
            let field = schema.field_with_name(&stated.name)?;
            for name in &stated.formerly {
                stored.push(Arc::new(Field::new(name, field.data_type().clone(), true)));
            }
        }
        let partitions = frozen
            .partition_columns
            .iter()
            .map(|name| Ok(Arc::new(schema.field_with_name(name)?.clone())))
            .collect::<Result<Vec<FieldRef>>>()?;
        let scan_order: Vec<&FieldRef> = stored.iter().chain(&partitions).collect();
        // Statistics of a file cover every column the scan gives; only its row count is known.
        let scan_schema = Schema::new(scan_order.iter().map(|f| Arc::clone(f)).collect::<Vec<_>>());
        let scan_index = schema
            .fields()
            .iter()
            .map(|f| scan_order.iter().position(|s| s.name() == f.name()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Internal("a column of the table is not read".into()))?;

        let store = ObjectStoreUrl::parse(&frozen.store)?;
        let mut files = Vec::with_capacity(frozen.files.len());
        for file in &frozen.files {
            let partition_values = partitions
                .iter()
                .zip(&file.partition_values)
                .map(|(field, text)| partition_value(field.data_type(), text.clone()))
                .collect::<Result<Vec<_>>>()?;
            let mut scanned = PartitionedFile::new_from_meta(ObjectMeta {
                location: Path::parse(&file.path)
                    .map_err(|e| Error::failed(format!("the data file {}", file.path), e))?,
                last_modified: file.modified,
                size: file.size,
                e_tag: None,
                version: None,
            })
            .with_partition_values(partition_values);
            if let Some(rows) = file.rows {
                let statistics = Statistics::new_unknown(&scan_schema).with_num_rows(Precision::Exact(rows));
                scanned = scanned.with_statistics(Arc::new(statistics));
            }
            files.push(scanned);
        }
        Ok(Self {
            schema,
            table_schema: TableSchema::builder(Arc::new(Schema::new(stored)))
                .with_table_partition_cols(partitions)
                .build(),
            scan_index,
            store,
            files,
            frozen,
        })
    }

    /// The files this provider reads, to make the same provider elsewhere with
    /// [`DeltaFiles::thaw`].
    pub fn frozen(&self) -> &FrozenFiles {
        &self.frozen
    }

    fn partition_names(&self) -> Vec<&str> {
        self.table_schema
            .table_partition_cols()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }
}

/// How a column is read: text as views, as DataFusion reads Parquet by default.
fn read_type(stored: &DataType) -> DataType {
    match stored {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
        other => other.clone(),
    }
}

/// A partition value as written in the log, as a value of the partition column's type.
fn partition_value(data_type: &DataType, text: Option<String>) -> Result<ScalarValue> {
    Ok(match text {
        Some(text) => ScalarValue::try_from_string(text, data_type)?,
        None => ScalarValue::try_from(data_type)?,
    })
}

#[async_trait]
impl TableProvider for DeltaFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        let partitions = self.partition_names();
        let stated = |filter: &Expr| {
            filter
                .column_refs()
                .iter()
                .any(|c| self.frozen.stated.iter().any(|s| s.name == c.name))
        };
        Ok(filters
            .iter()
            .map(|filter| match expr_applicable_for_cols(&partitions, filter) {
                // Files are chosen by their partition values: exactly the rows asked for.
                true => TableProviderFilterPushDown::Exact,
                // A file's statistics of a stated column are not what the column reads.
                false if stated(filter) => TableProviderFilterPushDown::Unsupported,
                // Row groups are skipped by their statistics; the rows are filtered again.
                false => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let partitions = self.partition_names();
        let (on_partitions, on_rows): (Vec<Expr>, Vec<Expr>) = filters
            .iter()
            .cloned()
            .partition(|filter| expr_applicable_for_cols(&partitions, filter));
        let partition_schema = DFSchema::try_from(Schema::new(self.table_schema.table_partition_cols().clone()))?;
        let mut files = Vec::new();
        for file in &self.files {
            if let Some(file) = filter_partitioned_file(file.clone(), &on_partitions, &partition_schema)? {
                files.push(file);
            }
        }
        let asked: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut projection: Vec<usize> = asked.iter().map(|&i| self.scan_index[i]).collect();
        // The stated columns asked for, each with the places of its former columns in the scan.
        let scan_fields = self.table_schema.table_schema().fields();
        let mut stated = Vec::new();
        for (place, &column) in asked.iter().enumerate() {
            let name = self.schema.field(column).name();
            if let Some(column) = self.frozen.stated.iter().find(|s| &s.name == name) {
                let mut former = Vec::new();
                for name in &column.formerly {
                    let index = scan_fields
                        .iter()
                        .position(|f| f.name() == name)
                        .ok_or_else(|| datafusion::error::DataFusionError::Internal(format!("{name} is not read")))?;
                    former.push(projection.len());
                    projection.push(index);
                }
                stated.push((place, column, former));
            }
        }
        if files.is_empty() {
            let projected = self.table_schema.table_schema().project(&projection[..asked.len()])?;
            return Ok(Arc::new(EmptyExec::new(Arc::new(projected))));
        }

        let scan_schema = Arc::clone(self.table_schema.table_schema());
        let rows = files.iter().try_fold(0, |sum, file| {
            let rows = file.statistics.as_ref()?.num_rows.get_value()?;
            Some(sum + rows)
        });
        let statistics = Statistics::new_unknown(&scan_schema).with_num_rows(match rows {
            Some(rows) => Precision::Exact(rows),
            None => Precision::Absent,
        });
        let options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..Default::default()
        };
        // Footers and page indexes are read once per file and kept in the session's cache (the
        // files of a Delta table never change in place): a year's KPIs and checks read the same
        // files many times.
        let runtime = state.runtime_env();
        let reader = CachedParquetFileReaderFactory::new(
            runtime.object_store(&self.store)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(self.table_schema.clone())
            .with_parquet_file_reader_factory(Arc::new(reader))
            .with_table_parquet_options(options);
        if let Some(predicate) = conjunction(on_rows) {
            let predicate = state.create_physical_expr(predicate, &DFSchema::try_from(scan_schema)?)?;
            source = source.with_predicate(predicate);
        }
        let groups = FileGroup::new(files).split_files(state.config().target_partitions());
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(Some(projection))?
            .with_limit(limit)
            .build();
        let scan = DataSourceExec::from_data_source(config);
        if stated.is_empty() {
            return Ok(scan);
        }
        // Each stated column reads its own value, else its former columns', else its default.
        let read = scan.schema();
        let mut columns: Vec<(Arc<dyn datafusion::physical_plan::PhysicalExpr>, String)> = Vec::new();
        for place in 0..asked.len() {
            let field = read.field(place);
            let own = Arc::new(datafusion::physical_expr::expressions::Column::new(field.name(), place));
            let expr: Arc<dyn datafusion::physical_plan::PhysicalExpr> =
                match stated.iter().find(|(at, ..)| *at == place) {
                    None => own,
                    Some((_, column, former)) => {
                        // CASE WHEN own IS NOT NULL THEN own WHEN former IS NOT NULL THEN former …
                        // ELSE default END: a coalesce, as the physical planner takes it.
                        use datafusion::prelude::{col, lit, when};
                        let named = |at: usize| col(datafusion::common::Column::new_unqualified(read.field(at).name()));
                        let mut case = when(named(place).is_not_null(), named(place));
                        for &at in former {
                            case = case.when(named(at).is_not_null(), named(at));
                        }
                        let case = match &column.default {
                            Some(default) => {
                                case.otherwise(lit(ScalarValue::try_from_string(default.clone(), field.data_type())?))?
                            }
                            None => case.end()?,
                        };
                        state.create_physical_expr(case, &DFSchema::try_from(Arc::clone(&read))?)?
                    }
                };
            columns.push((expr, field.name().clone()));
        }
        Ok(Arc::new(
            datafusion::physical_plan::projection::ProjectionExec::try_new(columns, scan)?,
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::{SessionContext, col, lit};
    use deltalake::TableProperty;
    use deltalake::protocol::SaveMode;

    use super::*;

    pub(crate) fn rows(year: &str, provinces: &[&str], first: i64) -> RecordBatch {
        let n = provinces.len();
        RecordBatch::try_from_iter(vec![
            ("school_year", Arc::new(StringArray::from(vec![year; n])) as _),
            ("province_code", Arc::new(StringArray::from(provinces.to_vec())) as _),
            (
                "pupils",
                Arc::new(Int64Array::from_iter_values(first..first + n as i64)) as _,
            ),
            (
                "name",
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 3 != 0).then(|| format!("school {i}"))),
                )) as _,
            ),
        ])
        .expect("batch")
    }

    async fn open(dir: &std::path::Path) -> DeltaTable {
        let url = url::Url::from_directory_path(dir).expect("url");
        DeltaTable::try_from_url(url).await.expect("table")
    }

    /// A table of two years and three provinces, with a province of one year replaced (so that
    /// the log names files that are no longer in the table).
    pub(crate) async fn sample(dir: &std::path::Path) -> DeltaTable {
        let table = open(dir)
            .await
            .write(vec![
                rows("2023-2024", &["01", "01", "79", "79", "92"], 0),
                rows("2024-2025", &["01", "79", "79", "92", "92", "92"], 100),
            ])
            .with_partition_columns(["school_year", "province_code"])
            .with_save_mode(SaveMode::Append)
            .await
            .expect("first write");
        table
            .write(vec![rows("2024-2025", &["79", "79", "79"], 500)])
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(
                col("school_year")
                    .eq(lit("2024-2025"))
                    .and(col("province_code").eq(lit("79"))),
            )
            .await
            .expect("replace a slice")
    }

    async fn answer(provider: Arc<dyn TableProvider>, sql: &str) -> String {
        let ctx = SessionContext::new();
        ctx.register_table("t", provider).expect("register");
        let batches = ctx.sql(sql).await.expect(sql).collect().await.expect(sql);
        pretty_format_batches(&batches).expect("format").to_string()
    }

    #[tokio::test]
    async fn answers_as_deltalakes_own_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = sample(dir.path()).await;
        for sql in [
            "SELECT * FROM t ORDER BY school_year, province_code, pupils",
            "SELECT name, pupils, school_year FROM t WHERE province_code = '79' ORDER BY pupils",
            "SELECT province_code, pupils FROM t WHERE pupils > 3 AND pupils < 503 ORDER BY pupils",
            "SELECT count(*) FROM t",
            "SELECT count(*) FROM t WHERE school_year = '2024-2025' AND province_code <> '01'",
            "SELECT province_code, count(name), sum(pupils) FROM t GROUP BY province_code ORDER BY 1",
            "SELECT school_year, province_code FROM t WHERE province_code IN ('92', '01') AND name IS NULL ORDER BY 1, 2",
            "SELECT count(*) FROM (SELECT * FROM t WHERE province_code = '79' LIMIT 2)",
            "SELECT * FROM t WHERE province_code = '48'",
        ] {
            let ours = answer(DeltaFiles::provider(&table).expect("provider"), sql).await;
            let theirs = answer(table.table_provider().await.expect("deltalake's provider"), sql).await;
            assert_eq!(ours, theirs, "{sql}");
        }
        let replaced = answer(
            DeltaFiles::provider(&table).expect("provider"),
            "SELECT count(*) AS n FROM t WHERE province_code = '79' AND school_year = '2024-2025'",
        )
        .await;
        assert!(
            replaced.contains("| 3 |"),
            "the replaced slice's files are gone: {replaced}"
        );
    }

    #[tokio::test]
    async fn files_are_chosen_by_partition_and_counted_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = sample(dir.path()).await;
        let ctx = SessionContext::new();
        ctx.register_table("t", DeltaFiles::provider(&table).expect("provider"))
            .expect("register");
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(&format!("EXPLAIN {sql}")).await?.collect().await?;
                Ok::<_, datafusion::error::DataFusionError>(pretty_format_batches(&batches)?.to_string())
            }
        };
        let one_slice = plan("SELECT pupils FROM t WHERE school_year = '2023-2024' AND province_code = '79'")
            .await
            .expect("plan");
        assert!(
            one_slice.contains("province_code=79") && !one_slice.contains("province_code=01"),
            "{one_slice}"
        );
        let count = plan("SELECT count(*) FROM t").await.expect("plan");
        assert!(
            !count.contains("DataSourceExec"),
            "count(*) is the log's row counts: {count}"
        );
    }

    #[tokio::test]
    async fn a_table_feature_it_does_not_read_is_refused() {
        for (property, feature) in [
            (TableProperty::EnableDeletionVectors, "deletion vectors"),
            (TableProperty::ColumnMappingMode, "column mapping"),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let value = match property {
                TableProperty::ColumnMappingMode => "name",
                _ => "true",
            };
            let table = open(dir.path())
                .await
                .create()
                .with_column("pupils", deltalake::kernel::DataType::LONG, true, None)
                .with_configuration_property(property, Some(value))
                .await
                .expect("create");
            let refused = DeltaFiles::try_new(&table).expect_err(feature);
            assert!(refused.to_string().contains(feature), "{refused}");
        }
    }
}
