//! The catalogue PostgreSQL clients read, in PostgreSQL's words: `information_schema` is
//! DataFusion's (the role's own tables only, as its session holds them), with each column's
//! `data_type` named as PostgreSQL names it (`text`, `bigint`, `double precision`,
//! `timestamp with time zone`, …) — Metabase, Power BI and JDBC tools map columns by these
//! names. `pg_catalog` is datafusion-postgres's, over the same tables.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::information_schema::{INFORMATION_SCHEMA, InformationSchemaProvider};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{Result, exec_err};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionContext, col};
use datafusion::scalar::ScalarValue;

/// The name PostgreSQL's `information_schema.columns.data_type` gives a column of this type.
pub(super) fn postgres_type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::UInt64 | DataType::Decimal32(..) | DataType::Decimal64(..) => "numeric",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "bytea",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Interval(_) | DataType::Duration(_) => "interval",
        DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_) | DataType::FixedSizeList(..) => "ARRAY",
        DataType::Dictionary(_, value) => postgres_type_name(value),
        DataType::Null => "unknown",
        _ => "USER-DEFINED",
    }
}

/// Makes a wire session's `information_schema` speak PostgreSQL's type names: DataFusion's own
/// is turned off (it would be found first) and the same tables are found under that name,
/// `columns` with its `data_type` renamed. As in PostgreSQL, the schema is not among the
/// user's: its tables are no views of theirs (`pg_class` lists what the catalog lists).
pub(super) fn use_postgres_names(ctx: &SessionContext, descriptions: Descriptions) -> Result<()> {
    let inner = Arc::new(InformationSchemaProvider::new(ctx.state().catalog_list().clone()));
    let renamed = Arc::new(PostgresInformationSchema {
        inner,
        type_name: ScalarUDF::from(PostgresTypeName::new()),
    });
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = ctx
        .catalog(&catalog_name)
        .ok_or_else(|| datafusion::error::DataFusionError::Plan(format!("no catalog {catalog_name}")))?;
    ctx.register_catalog(
        &catalog_name,
        Arc::new(WithInformationSchema {
            tables: catalog,
            information_schema: renamed,
            descriptions,
        }),
    );
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .information_schema = false;
    Ok(())
}

/// A catalog whose `information_schema` is found by name but not listed among its schemas.
#[derive(Debug)]
struct WithInformationSchema {
    tables: Arc<dyn CatalogProvider>,
    information_schema: Arc<PostgresInformationSchema>,
    descriptions: Descriptions,
}

impl CatalogProvider for WithInformationSchema {
    fn schema_names(&self) -> Vec<String> {
        self.tables.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            INFORMATION_SCHEMA => Some(Arc::clone(&self.information_schema) as Arc<dyn SchemaProvider>),
            "pg_catalog" => Some(Arc::new(PgCatalogArrays {
                inner: self.tables.schema(name)?,
                descriptions: Arc::clone(&self.descriptions),
            })),
            _ => self.tables.schema(name),
        }
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.tables.register_schema(name, schema)
    }

    fn deregister_schema(&self, name: &str, cascade: bool) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.tables.deregister_schema(name, cascade)
    }
}

/// datafusion-postgres's `pg_catalog`, with its `pg_settings` holding khoso's settings
/// ([`SETTINGS`]), the array columns clients `unnest` as arrays
/// (`pg_index.indkey`, `indclass`, `indcollation`, `indoption` and `pg_constraint.conkey`,
/// `confkey` are kept there as their text: `1 2`, `{1,2}`) and the columns clients read that
/// it lacks (`pg_class.reloptions`: no table of khoso's has storage options).
#[derive(Debug)]
struct PgCatalogArrays {
    inner: Arc<dyn SchemaProvider>,
    descriptions: Descriptions,
}

/// The array columns of [`PgCatalogArrays`], by table.
fn array_columns(table: &str) -> &'static [&'static str] {
    match table {
        "pg_index" => &["indkey", "indclass", "indcollation", "indoption"],
        "pg_constraint" => &["conkey", "confkey"],
        _ => &[],
    }
}

/// What `pg_settings` says, in its columns `name` and `setting` (the rest null): the settings
/// clients read from it (pgjdbc asks for `max_index_keys`), as khoso's sessions have them.
const SETTINGS: [(&str, &str); 11] = [
    ("standard_conforming_strings", "on"),
    ("max_index_keys", "32"),
    ("max_identifier_length", "63"),
    ("server_version", super::compat::POSTGRES_VERSION),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("default_transaction_read_only", "on"),
    ("transaction_read_only", "on"),
    ("TimeZone", "UTC"),
    ("search_path", "public"),
];

/// `pg_settings` as [`SETTINGS`] fills it, in the schema datafusion-postgres gives it.
fn settings(schema: datafusion::arrow::datatypes::SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "name" => Ok(Arc::new(SETTINGS.iter().map(|(name, _)| Some(*name)).collect::<StringArray>()) as ArrayRef),
            "setting" => {
                Ok(Arc::new(SETTINGS.iter().map(|(_, value)| Some(*value)).collect::<StringArray>()) as ArrayRef)
            }
            _ => Ok(datafusion::arrow::array::new_null_array(
                field.data_type(),
                SETTINGS.len(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let batch = datafusion::arrow::array::RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(
        schema,
        vec![vec![batch]],
    )?))
}

/// What khoso says of its tables and columns: (table, column — none for the table itself, the
/// text in Vietnamese and English).
pub(super) type Descriptions = Arc<Vec<(String, Option<String>, String)>>;

/// The descriptions of the catalogue's tables, the report kinds' columns and the metrics'
/// views, as `pg_description` gives them to clients (SQLAlchemy's and Superset's column
/// comments, JDBC's `REMARKS`).
pub(super) fn descriptions(metrics: Option<&warehouse::kpi::metrics::Metrics>) -> Descriptions {
    let said = |vi: &str, en: &str| format!("{vi} / {en}");
    let mut all = Vec::new();
    for table in warehouse::tables::catalogue::delta_tables().chain(warehouse::tables::catalogue::source_tables()) {
        all.push((
            table.name.to_string(),
            None,
            said(table.description_vi, table.description_en),
        ));
    }
    for kind in ingest::ReportKind::ALL {
        let table = warehouse::fact_table(kind);
        for column in &kind.schema().columns {
            let text = said(&column.description_vi, &column.description_en);
            all.push((table.to_string(), Some(column.name.clone()), text));
        }
    }
    for view in metrics.map(|m| m.views.as_slice()).unwrap_or_default() {
        all.push((
            view.name.clone(),
            None,
            said(&view.description_vi, &view.description_en),
        ));
    }
    all.sort();
    all.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    Arc::new(all)
}

/// `pg_description` holding [`Descriptions`], each under the OID `pg_class` gives its table
/// and the number `pg_attribute` gives its column (0 for the table).
#[derive(Debug)]
struct Described {
    inner: Arc<dyn SchemaProvider>,
    descriptions: Descriptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl PartitionStream for Described {
    fn schema(&self) -> &datafusion::arrow::datatypes::SchemaRef {
        &self.schema
    }

    fn execute(&self, _: Arc<datafusion::execution::TaskContext>) -> SendableRecordBatchStream {
        let (inner, descriptions, schema) = (
            Arc::clone(&self.inner),
            Arc::clone(&self.descriptions),
            Arc::clone(&self.schema),
        );
        let batch = async move { described(inner, descriptions, schema).await };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(batch),
        ))
    }
}

/// The batch of [`Described`].
async fn described(
    inner: Arc<dyn SchemaProvider>,
    descriptions: Descriptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<datafusion::arrow::array::RecordBatch> {
    let ctx = SessionContext::new();
    for name in ["pg_class", "pg_attribute"] {
        if let Some(table) = inner.table(name).await? {
            ctx.register_table(name, table)?;
        }
    }
    let found = ctx
        .sql(
            "SELECT CAST(c.oid AS BIGINT), c.relname, CAST(a.attname AS VARCHAR), CAST(a.attnum AS BIGINT) \
                 FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid",
        )
        .await?
        .collect()
        .await?;
    let mut places = std::collections::HashMap::new();
    for batch in &found {
        let text = |i: usize| datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8);
        let number = |i: usize| datafusion::arrow::compute::cast(batch.column(i), &DataType::Int64);
        let (oids, tables, columns, numbers) = (number(0)?, text(1)?, text(2)?, number(3)?);
        let (oids, tables, columns, numbers) = (
            oids.as_any().downcast_ref::<Int64Array>(),
            tables.as_any().downcast_ref::<StringArray>(),
            columns.as_any().downcast_ref::<StringArray>(),
            numbers.as_any().downcast_ref::<Int64Array>(),
        );
        let (Some(oids), Some(tables), Some(columns), Some(numbers)) = (oids, tables, columns, numbers) else {
            return exec_err!("pg_class and pg_attribute read as they should not");
        };
        for row in 0..batch.num_rows() {
            let table = tables.value(row).to_string();
            places.insert((table.clone(), None), (oids.value(row), 0));
            if columns.is_valid(row) && numbers.is_valid(row) {
                places.insert(
                    (table, Some(columns.value(row).to_string())),
                    (oids.value(row), numbers.value(row)),
                );
            }
        }
    }
    let rows: Vec<(i64, i64, &str)> = descriptions
        .iter()
        .filter_map(|(table, column, text)| {
            let (oid, number) = places.get(&(table.clone(), column.clone()))?;
            Some((*oid, *number, text.as_str()))
        })
        .collect();
    // A table's description belongs to the catalogue pg_class, under pg_class's own OID.
    let pg_class = places.get(&("pg_class".to_string(), None)).map(|(oid, _)| *oid);
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column: ArrayRef = match field.name().as_str() {
                "objoid" => Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int64Array>()),
                "classoid" => Arc::new(rows.iter().map(|_| pg_class).collect::<Int64Array>()),
                "objsubid" => Arc::new(rows.iter().map(|r| Some(r.1)).collect::<Int64Array>()),
                "description" => Arc::new(rows.iter().map(|r| Some(r.2)).collect::<StringArray>()),
                _ => datafusion::arrow::array::new_null_array(field.data_type(), rows.len()),
            };
            Ok(datafusion::arrow::compute::cast(&column, field.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(datafusion::arrow::array::RecordBatch::try_new(schema, columns)?)
}

/// The columns of [`PgCatalogArrays`] that datafusion-postgres lacks, by table: null in every row.
fn missing_columns(table: &str) -> Vec<(&'static str, DataType)> {
    match table {
        "pg_class" => vec![("reloptions", DataType::new_list(DataType::Utf8, true))],
        _ => Vec::new(),
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogArrays {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        if name == "pg_settings" {
            return settings(table.schema()).map(Some);
        }
        if name == "pg_description" {
            // Read when scanned: pg_attribute, which it reads, lists pg_description's columns.
            let described = Arc::new(Described {
                inner: Arc::clone(&self.inner),
                descriptions: Arc::clone(&self.descriptions),
                schema: table.schema(),
            });
            return Ok(Some(Arc::new(StreamingTable::try_new(
                table.schema(),
                vec![described],
            )?)));
        }
        let arrays = array_columns(name);
        let missing = missing_columns(name);
        if arrays.is_empty() && missing.is_empty() {
            return Ok(Some(table));
        }
        let as_array = ScalarUDF::from(IntegerArray::new());
        let fields = table.schema();
        let projection = fields.fields().iter().map(|field| {
            let column = field.name().as_str();
            match arrays.contains(&column) && field.data_type() == &DataType::Utf8 {
                true => as_array.call(vec![col(column)]).alias(column),
                false => col(column),
            }
        });
        let absent = missing
            .iter()
            .filter(|(column, _)| fields.field_with_name(column).is_err())
            .map(|(column, data_type)| {
                let null = ScalarValue::try_from(data_type)?;
                Ok(datafusion::prelude::lit(null).alias(*column))
            })
            .collect::<Result<Vec<_>>>()?;
        let projection = projection.chain(absent);
        view_of(name, table, projection).map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// The text of a PostgreSQL vector or array of integers (`1 2`, `{1,2}`) as an array.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntegerArray {
    signature: Signature,
}

impl IntegerArray {
    fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntegerArray {
    fn name(&self) -> &str {
        "khoso_integer_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Int16, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [texts] = args.args.as_slice() else {
            return exec_err!("khoso_integer_array takes one argument");
        };
        let texts = texts.to_array(args.number_rows)?;
        let Some(texts) = texts.as_any().downcast_ref::<StringArray>() else {
            return exec_err!("khoso_integer_array takes text");
        };
        let mut arrays = datafusion::arrow::array::ListBuilder::new(datafusion::arrow::array::Int16Builder::new());
        for text in texts.iter() {
            match text {
                Some(text) => {
                    let numbers = text
                        .trim_matches(['{', '}'])
                        .split([' ', ','])
                        .filter(|part| !part.is_empty())
                        .map(|part| part.parse::<i16>().ok());
                    arrays.values().extend(numbers);
                    arrays.append(true);
                }
                None => arrays.append(false),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(arrays.finish())))
    }
}

/// What `pg_roles` lists: khoso's roles that may read over the wire, as roles nobody signs in
/// as (accounts sign in, each with one of them), none a superuser or able to create anything.
#[derive(Debug, Clone)]
pub(super) struct WireRoles;

#[async_trait]
impl datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::PgCatalogContextProvider for WireRoles {
    async fn roles(&self) -> Vec<String> {
        [
            warehouse::people::rights::Role::Analyst,
            warehouse::people::rights::Role::Admin,
        ]
        .iter()
        .map(|role| role.as_str().to_string())
        .collect()
    }

    async fn role(&self, name: &str) -> Option<datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::Role> {
        self.roles().await.contains(&name.to_string()).then(|| {
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::Role {
                name: name.to_string(),
                is_superuser: false,
                can_login: false,
                can_create_db: false,
                can_create_role: false,
                can_create_user: false,
                can_replication: false,
                grants: Vec::new(),
                inherited_roles: Vec::new(),
            }
        })
    }
}

/// Registers the catalogue functions clients call that datafusion-postgres lacks:
/// `to_regtype(name)` (psycopg asks it for the OID of a type it may adapt, such as `hstore`).
pub(super) async fn register_functions(ctx: &SessionContext) -> Result<()> {
    let rows = ctx
        .sql("SELECT typname, CAST(oid AS BIGINT) AS oid FROM pg_catalog.pg_type")
        .await?
        .collect()
        .await?;
    let mut types = std::collections::HashMap::new();
    for batch in &rows {
        let names = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let names = names.as_any().downcast_ref::<StringArray>();
        let oids = batch.column(1).as_any().downcast_ref::<Int64Array>();
        let (Some(names), Some(oids)) = (names, oids) else {
            return exec_err!("pg_type's names and oids are not text and numbers");
        };
        for row in 0..batch.num_rows() {
            if names.is_valid(row) && oids.is_valid(row) {
                types.insert(names.value(row).to_string(), oids.value(row));
            }
        }
    }
    ctx.register_udf(ScalarUDF::from(ToRegtype {
        types,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
    }));
    ctx.register_udf(ScalarUDF::from(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    // khoso's tables have no sequences: no column takes its values from one.
    ctx.register_udf(constant(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        ScalarValue::Utf8(None),
    ));
    // No index of khoso's has a definition to show (its tables have no indexes; pg_catalog's
    // own are listed without theirs).
    ctx.register_udf(constant(
        "pg_get_indexdef",
        vec![DataType::Int64, DataType::Int64, DataType::Boolean],
        ScalarValue::Utf8(None),
    ));
    // Descriptions of tables and functions are not kept; sizes are not known in advance
    // (a Delta table's size is its files', which the catalogue does not read).
    for (name, arguments) in [
        ("obj_description", vec![DataType::Int64, DataType::Utf8]),
        ("pg_get_function_result", vec![DataType::Int64]),
        ("pg_get_function_arguments", vec![DataType::Int64]),
    ] {
        ctx.register_udf(constant(name, arguments, ScalarValue::Utf8(None)));
    }
    ctx.register_udf(constant(
        "pg_table_size",
        vec![DataType::Int64],
        ScalarValue::Int64(None),
    ));
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(size_pretty),
    ));
    // Every type and function is pg_catalog's, which is on every search path.
    ctx.register_udf(constant(
        "pg_function_is_visible",
        vec![DataType::Int64],
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(constant(
        "pg_type_is_visible",
        vec![DataType::Int64],
        ScalarValue::Boolean(Some(true)),
    ));
    Ok(())
}

/// `pg_size_pretty(bytes)`: a size as PostgreSQL writes it (`8192 bytes`, `12 kB`, `3 MB`, …).
fn size_pretty(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let sizes = ColumnarValue::values_to_arrays(args)?;
    let Some(sizes) = sizes.first().and_then(|a| a.as_any().downcast_ref::<Int64Array>()) else {
        return exec_err!("pg_size_pretty takes a number of bytes");
    };
    let texts: StringArray = sizes
        .iter()
        .map(|size| {
            size.map(|bytes| {
                // Wide enough that rounding the largest sizes cannot overflow.
                let mut value = i128::from(bytes);
                let mut unit = "bytes";
                // PostgreSQL moves to the next unit past 10 × 1024 of this one, rounding half up.
                for next in ["kB", "MB", "GB", "TB", "PB"] {
                    if value.abs() < 10 * 1024 {
                        break;
                    }
                    value = (value + value.signum() * 512) / 1024;
                    unit = next;
                }
                format!("{value} {unit}")
            })
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(texts)))
}

/// A function that answers the same for every argument (what khoso's catalogue makes true
/// of every object: no sequences, every type visible).
fn constant(name: &str, arguments: Vec<DataType>, value: ScalarValue) -> ScalarUDF {
    let data_type = value.data_type();
    let answer = move |args: &[ColumnarValue]| {
        let rows = args.iter().find_map(|arg| match arg {
            ColumnarValue::Array(array) => Some(array.len()),
            ColumnarValue::Scalar(_) => None,
        });
        Ok(match rows {
            Some(rows) => ColumnarValue::Array(value.to_array_of_size(rows)?),
            None => ColumnarValue::Scalar(value.clone()),
        })
    };
    datafusion::logical_expr::create_udf(name, arguments, data_type, Volatility::Immutable, Arc::new(answer))
}

/// `json_build_object(key, value, …)`: an object of alternating keys and values, as JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("json_build_object takes keys and values in pairs");
        }
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let mut objects = datafusion::arrow::array::StringBuilder::new();
        for row in 0..args.number_rows {
            let mut object = serde_json::Map::new();
            for pair in columns.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                if key.is_null() {
                    return exec_err!("json_build_object: a key is null");
                }
                let key = key.to_string();
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                object.insert(key, json_value(&value));
            }
            objects.append_value(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(objects.finish())))
    }
}

/// A value as JSON: numbers and booleans as themselves, null as null, the rest as text.
fn json_value(value: &ScalarValue) -> serde_json::Value {
    use datafusion::scalar::ScalarValue as V;
    match value {
        v if v.is_null() => serde_json::Value::Null,
        V::Boolean(Some(b)) => serde_json::Value::Bool(*b),
        V::Int8(_)
        | V::Int16(_)
        | V::Int32(_)
        | V::Int64(_)
        | V::UInt8(_)
        | V::UInt16(_)
        | V::UInt32(_)
        | V::UInt64(_)
        | V::Float32(_)
        | V::Float64(_) => {
            serde_json::from_str(&value.to_string()).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
        }
        other => serde_json::Value::String(other.to_string()),
    }
}

/// The `pg_type` name of a type as a client may write it: `integer` for `int4`, `text[]` for
/// `_text`, `pg_catalog.bool` for `bool`.
fn internal_type_name(written: &str) -> String {
    let written = written.trim().trim_matches('"').to_lowercase();
    let written = written.strip_prefix("pg_catalog.").unwrap_or(&written);
    if let Some(element) = written.strip_suffix("[]") {
        return format!("_{}", internal_type_name(element));
    }
    let name = match written {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time" | "time without time zone" => "time",
        "time with time zone" => "timetz",
        other => other,
    };
    name.to_string()
}

/// `to_regtype(text)`: a type's OID by its name, null when there is no such type.
#[derive(Debug)]
struct ToRegtype {
    types: std::collections::HashMap<String, i64>,
    signature: Signature,
}

impl PartialEq for ToRegtype {
    fn eq(&self, other: &Self) -> bool {
        self.types == other.types
    }
}

impl Eq for ToRegtype {}

impl std::hash::Hash for ToRegtype {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        self.types.len().hash(state);
    }
}

impl ScalarUDFImpl for ToRegtype {
    fn name(&self) -> &str {
        "to_regtype"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [names] = args.args.as_slice() else {
            return exec_err!("to_regtype takes one argument");
        };
        let names = names.to_array(args.number_rows)?;
        let Some(names) = names.as_any().downcast_ref::<StringArray>() else {
            return exec_err!("to_regtype takes text");
        };
        let oids: Int64Array = names
            .iter()
            .map(|name| name.and_then(|name| self.types.get(&internal_type_name(name)).copied()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(oids) as ArrayRef))
    }
}

/// A table seen through a projection of its columns (renamed types, added nulls).
fn view_of(
    name: &str,
    table: Arc<dyn TableProvider>,
    projection: impl IntoIterator<Item = datafusion::prelude::Expr>,
) -> Result<Arc<dyn TableProvider>> {
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(table), None)?
        .project(projection)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// DataFusion's `information_schema`, its `columns.data_type` in PostgreSQL's names.
#[derive(Debug)]
struct PostgresInformationSchema {
    inner: Arc<InformationSchemaProvider>,
    type_name: ScalarUDF,
}

#[async_trait]
impl SchemaProvider for PostgresInformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        if !name.eq_ignore_ascii_case("columns") {
            return Ok(Some(table));
        }
        let fields = table.schema();
        let projection = fields.fields().iter().map(|field| match field.name().as_str() {
            "data_type" => self.type_name.call(vec![col("data_type")]).alias("data_type"),
            name => col(name),
        });
        view_of("columns", table, projection).map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `data_type` of DataFusion's `information_schema.columns` (Arrow's name of a type) as
/// PostgreSQL names it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PostgresTypeName {
    signature: Signature,
}

impl PostgresTypeName {
    fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PostgresTypeName {
    fn name(&self) -> &str {
        "khoso_postgres_type_name"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arrow_names] = args.args.as_slice() else {
            return exec_err!("khoso_postgres_type_name takes one argument");
        };
        let arrow_names = arrow_names.to_array(args.number_rows)?;
        let Some(arrow_names) = arrow_names.as_any().downcast_ref::<StringArray>() else {
            return exec_err!("khoso_postgres_type_name takes text");
        };
        let names: StringArray = arrow_names
            .iter()
            .map(|name| {
                name.map(|name| {
                    DataType::from_str(name).map_or("USER-DEFINED", |data_type| postgres_type_name(&data_type))
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(names) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn sizes_read_as_postgresql_writes_them() {
        let sizes = Int64Array::from(vec![
            Some(8192),
            Some(10 * 1024),
            Some(123_456_789),
            None,
            Some(i64::MIN),
        ]);
        let pretty = size_pretty(&[ColumnarValue::Array(Arc::new(sizes))]).expect("sizes");
        let ColumnarValue::Array(pretty) = pretty else {
            panic!("an array")
        };
        let pretty = pretty.as_any().downcast_ref::<StringArray>().expect("text");
        let texts: Vec<Option<&str>> = pretty.iter().collect();
        assert_eq!(
            texts,
            [
                Some("8192 bytes"),
                Some("10 kB"),
                Some("118 MB"),
                None,
                Some("-8192 PB")
            ]
        );
    }

    #[test]
    fn arrow_types_read_as_postgresql_names_them() {
        for (arrow, postgres) in [
            (DataType::Utf8View, "text"),
            (DataType::Int64, "bigint"),
            (DataType::Int32, "integer"),
            (DataType::Float64, "double precision"),
            (DataType::Boolean, "boolean"),
            (DataType::Date32, "date"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp with time zone",
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                "timestamp without time zone",
            ),
        ] {
            // Through the text DataFusion's information_schema holds, as the function reads it.
            let text = arrow.to_string();
            let parsed = DataType::from_str(&text).expect("Arrow reads its own type names");
            assert_eq!(postgres_type_name(&parsed), postgres, "{text}");
        }
    }
}
