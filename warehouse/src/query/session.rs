//! SQL sessions over the warehouse: every table registered at pinned or latest versions, under a
//! query's limits and its reader's role, run here or on the cluster; and the paths of the
//! warehouse hidden from what a reader sees.

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::people::rights::Role;
use crate::query::cluster::{self, Cluster};
use crate::query::guard::{QueryLimits, check_read_only, located, read_only_options};
use crate::store::{TableVersions, Warehouse};
use crate::tables::catalogue::{self, CATALOGUE};
use crate::tables::reference::reference_tables;
use crate::{Error, Result};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;

/// What a statement answers and what it asks: see [`Warehouse::describe`].
#[derive(Debug, Clone)]
pub struct Described {
    /// The columns of its result.
    pub columns: datafusion::arrow::datatypes::SchemaRef,
    /// Its parameters by placeholder (`$1`, `$2`, …, in order) with their types where the
    /// statement settles them.
    pub parameters: Vec<(String, Option<ArrowType>)>,
}

impl Warehouse {
    /// A DataFusion session with every table registered: the warehouse's Delta tables (at the
    /// pinned versions, else the latest) and the reference tables; every table readable, for
    /// the server's own work.
    pub async fn session(&self, pins: &TableVersions) -> Result<SessionContext> {
        self.session_with(pins, None, None, Role::Admin).await
    }

    /// [`Warehouse::session`] as an account of `reader` sees it (see
    /// [`crate::tables::catalogue::ReaderSchema`]), with one table replaced by another provider
    /// (before the views are made, so they read the replacement).
    pub(crate) async fn session_with(
        &self,
        pins: &TableVersions,
        replacement: Option<(&str, Arc<dyn datafusion::catalog::TableProvider>)>,
        limits: Option<&QueryLimits>,
        reader: Role,
    ) -> Result<SessionContext> {
        if let Some(unknown) = pins.keys().find(|k| !Self::table_names().contains(&k.as_str())) {
            return Err(Error::UnknownTable(format!(
                "no table {unknown:?} to pin: the tables with versions are {}",
                catalogue::source_tables()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // A preview's replacement (a file not yet committed) is read here.
        let cluster = self.cluster.as_ref().filter(|_| replacement.is_none());
        let ctx = bounded_session(limits, reader, cluster)?;
        let reference = reference_tables()?;
        for entry in CATALOGUE {
            let provider: Arc<dyn datafusion::catalog::TableProvider> = match entry.storage {
                _ if replacement.as_ref().is_some_and(|(name, _)| *name == entry.name) => {
                    replacement.as_ref().map(|(_, p)| Arc::clone(p)).expect("matched")
                }
                catalogue::Storage::Reference => match reference.iter().find(|(name, _)| *name == entry.name) {
                    Some((_, table)) => Arc::clone(table) as _,
                    None => continue,
                },
                catalogue::Storage::Source => {
                    let table = self.table(entry.name, pins.get(entry.name).copied()).await?;
                    table.update_datafusion_session(&ctx.state())?;
                    crate::tables::scan::DeltaFiles::provider(&table)?
                }
                // Ledgers made after the warehouse (a warehouse of an older khoso) may not be
                // there yet.
                catalogue::Storage::Ledger if self.latest_version(entry.name).await?.is_none() => continue,
                catalogue::Storage::Ledger => {
                    let table = self.table(entry.name, None).await?;
                    table.update_datafusion_session(&ctx.state())?;
                    crate::tables::scan::DeltaFiles::provider(&table)?
                }
            };
            ctx.register_table(entry.name, provider)?;
        }
        if let Some(metrics) = &self.metrics {
            metrics.register_views(&ctx).await?;
        }
        Ok(ctx)
    }

    /// Runs one read-only SQL statement and collects the result.
    /// For the server's own queries; users' queries go through [`Warehouse::query_stream`]. It
    /// runs on the query runtime.
    pub async fn query(&self, sql: &str, pins: &TableVersions) -> Result<Vec<RecordBatch>> {
        let (warehouse, sql, pins) = (self.clone(), sql.to_string(), pins.clone());
        crate::query::engine::run(async move {
            check_read_only(&sql)?;
            let ctx = warehouse.session(&pins).await?;
            let frame = ctx
                .sql_with_options(&sql, read_only_options())
                .await
                .map_err(|e| located(&sql, query_error(e)))?;
            frame.collect().await.map_err(query_error)
        })
        .await?
    }

    /// Plans one read-only query under limits and starts it: its batches come as a stream (the
    /// caller applies the time limit to reading it, see [`QueryLimits::timeout`]).
    pub async fn query_stream(
        &self,
        sql: &str,
        pins: &TableVersions,
        limits: &QueryLimits,
        reader: Role,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        self.query_stream_with(sql, Vec::new(), pins, limits, reader).await
    }

    /// [`Warehouse::query_stream`] of a statement with parameters (`$1`, `$2`, …), bound to
    /// `parameters` in their order.
    pub async fn query_stream_with(
        &self,
        sql: &str,
        parameters: Vec<ScalarValue>,
        pins: &TableVersions,
        limits: &QueryLimits,
        reader: Role,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        let shape = limits.check_text(sql)?;
        let (warehouse, sql, pins, limits) = (self.clone(), sql.to_string(), pins.clone(), *limits);
        let planned = crate::query::engine::stream(async move {
            let mut frame = warehouse.planned(&sql, &pins, &limits, reader).await?;
            if !parameters.is_empty() {
                frame = frame.with_param_values(parameters).map_err(query_error)?;
            }
            let stream = frame.execute_stream().await.map_err(query_error)?;
            if !shape.explain {
                return Ok(stream);
            }
            // A plan names the files it reads: shown without the server's paths.
            let schema = stream.schema();
            let hidden = stream.map(move |batch| {
                batch.and_then(|batch| {
                    warehouse
                        .hide_paths_in(&batch)
                        .map_err(|e| DataFusionError::External(Box::new(e)))
                })
            });
            Ok(
                Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    schema, hidden,
                )) as datafusion::execution::SendableRecordBatchStream,
            )
        });
        tokio::time::timeout(limits.timeout, planned)
            .await
            .map_err(|_| limits.timed_out())?
            .map_err(|e| limits.explain(e))
    }

    /// What a read-only statement answers and what it asks, without running it: the columns of
    /// its result and the types of its parameters (`$1`, `$2`, … in order; a type the statement
    /// does not settle is `None`), as an account of `reader` would run it.
    pub async fn describe(&self, sql: &str, limits: &QueryLimits, reader: Role) -> Result<Described> {
        limits.check_text(sql)?;
        let (warehouse, sql, limits) = (self.clone(), sql.to_string(), *limits);
        let described = crate::query::engine::run(async move {
            let frame = warehouse.planned(&sql, &TableVersions::new(), &limits, reader).await?;
            let columns = Arc::new(frame.schema().as_arrow().clone());
            let mut named = frame
                .logical_plan()
                .get_parameter_types()
                .map_err(query_error)?
                .into_iter()
                .collect::<Vec<_>>();
            // `$1` … `$n` by number; a named placeholder after them, by name.
            named.sort_by_key(|(name, _)| {
                (
                    name.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX),
                    name.clone(),
                )
            });
            Ok::<_, Error>(Described {
                columns,
                parameters: named,
            })
        });
        tokio::time::timeout(limits.timeout, described)
            .await
            .map_err(|_| limits.timed_out())?
            .and_then(|described| described)
            .map_err(|e| limits.explain(e))
    }

    /// A read-only statement planned in a session under `limits` as `reader` sees the tables.
    async fn planned(
        &self,
        sql: &str,
        pins: &TableVersions,
        limits: &QueryLimits,
        reader: Role,
    ) -> Result<datafusion::dataframe::DataFrame> {
        check_read_only(sql)?;
        let ctx = self.session_with(pins, None, Some(limits), reader).await?;
        ctx.sql_with_options(sql, read_only_options())
            .await
            .map_err(|e| located(sql, query_error(e)))
            .map_err(|e| self.hide_paths_of(e))
    }

    /// `text` with the warehouse's location (its folder as a path and as query plans show it,
    /// or its bucket and prefix) written `DATA`: no answer shows where the server keeps its files.
    pub fn hide_paths(&self, text: &str) -> String {
        self.layout.storage().hide_location(text)
    }

    /// A batch of text (an `EXPLAIN`'s plan) with [`Warehouse::hide_paths`] applied to every
    /// text column.
    pub fn hide_paths_in(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::compute::cast;

        let columns = batch
            .columns()
            .iter()
            .map(|column| match column.data_type() {
                ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
                    let text = cast(column, &ArrowType::Utf8)?;
                    let hidden: StringArray = text
                        .as_string::<i32>()
                        .iter()
                        .map(|value| value.map(|v| self.hide_paths(v)))
                        .collect();
                    Ok(cast(
                        &(Arc::new(hidden) as datafusion::arrow::array::ArrayRef),
                        column.data_type(),
                    )?)
                }
                _ => Ok(Arc::clone(column)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// An error of a user's query with [`Warehouse::hide_paths`] applied to its message.
    pub fn hide_paths_of(&self, error: Error) -> Error {
        match error {
            Error::Sql(message) => Error::Sql(self.hide_paths(&message)),
            other => other,
        }
    }

    /// Runs one read-only query under limits and collects it.
    pub async fn query_limited(
        &self,
        sql: &str,
        pins: &TableVersions,
        limits: &QueryLimits,
        reader: Role,
    ) -> Result<Vec<RecordBatch>> {
        let run = async {
            let stream = self.query_stream(sql, pins, limits, reader).await?;
            TryStreamExt::try_collect::<Vec<_>>(stream).await.map_err(query_error)
        };
        tokio::time::timeout(limits.timeout, run)
            .await
            .map_err(|_| limits.timed_out())?
            .map_err(|e| limits.explain(e))
    }

    /// A session for SQL clients on the wire: like [`Warehouse::session`], under a query's
    /// limits (memory, and a deadline on every stream), as an account of `reader` sees it.
    pub async fn wire_session(&self, limits: &QueryLimits, reader: Role) -> Result<SessionContext> {
        self.session_with(&TableVersions::new(), None, Some(limits), reader)
            .await
    }

    /// Brings a long-lived session up to the tables' latest versions: the Delta tables and
    /// `kpi_values` get fresh providers, and the metrics' views are made again over them.
    pub async fn refresh_session(&self, ctx: &SessionContext) -> Result<()> {
        for entry in catalogue::delta_tables() {
            if !ctx.table_exist(entry.name)? {
                continue;
            }
            let table = self.table(entry.name, None).await?;
            table.update_datafusion_session(&ctx.state())?;
            ctx.deregister_table(entry.name)?;
            ctx.register_table(entry.name, crate::tables::scan::DeltaFiles::provider(&table)?)?;
        }
        if let Some(metrics) = &self.metrics {
            for view in &metrics.views {
                ctx.deregister_table(view.name.as_str())?;
            }
            metrics.register_views(ctx).await?;
        }
        Ok(())
    }
}

/// The Parquet footers and page indexes every session of this process has read, up to
/// DataFusion's default bound (50 MB), least recently used out first. A Delta table's files
/// never change in place, and an entry is only used for a file of the same size and time.
fn file_metadata_cache() -> &'static Arc<FileMetadataCache> {
    static CACHE: std::sync::OnceLock<Arc<FileMetadataCache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        Arc::new(DefaultCache::new(CacheManagerConfig::default().metadata_cache_limit).with_name("khoso file metadata"))
    })
}

/// A DataFusion session whose queries yield often and whose growing functions are bounded
/// (see [`crate::query::bounds`]), under a user's query `limits` when given (a memory pool of its own
/// within the process's, every stream ended at its deadline), and whose queries run on
/// `cluster` when given.
fn bounded_session(limits: Option<&QueryLimits>, reader: Role, cluster: Option<&Cluster>) -> Result<SessionContext> {
    use datafusion::execution::FunctionRegistry;
    use datafusion::execution::session_state::SessionStateBuilder;

    let mut config = datafusion::prelude::SessionConfig::new().with_information_schema(true);
    if cluster.is_some() {
        config = Cluster::session_config(config);
    }
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(crate::query::bounds::YieldEverywhere));
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new().with_cache_manager(
        CacheManagerConfig::default().with_file_metadata_cache(Some(Arc::clone(file_metadata_cache()))),
    );
    if let Some(limits) = limits {
        runtime = runtime.with_memory_pool(crate::query::engine::query_memory(limits.memory_bytes));
        builder = builder.with_physical_optimizer_rule(Arc::new(crate::query::engine::Deadline {
            timeout: limits.timeout,
        }));
    }
    builder = builder.with_runtime_env(runtime.build_arc()?);
    let mut state = builder.build();
    if let Some(cluster) = cluster {
        state = cluster.upgrade(state)?;
    }
    let bounded = crate::query::bounds::bounded_functions(
        state.scalar_functions().values(),
        crate::query::bounds::MAX_CALL_BYTES,
    );
    for function in bounded {
        state.register_udf(Arc::new(function))?;
    }
    state.register_function_rewrite(Arc::new(crate::query::bounds::BoundedConcatRewrite::new(
        crate::query::bounds::MAX_CALL_BYTES,
    )))?;
    let ctx = SessionContext::new_with_state(state);
    catalogue::read_as(&ctx, reader)?;
    Ok(ctx)
}

/// An error while planning or running a user's query is the query's fault, unless the cluster it
/// was sent to failed. A table kept from the reader stays that error, whatever the engine wrapped
/// it in.
fn query_error(error: DataFusionError) -> Error {
    if let Some(trouble) = cluster::trouble(&error) {
        return trouble;
    }
    if let DataFusionError::External(cause) = error.find_root()
        && let Some(Error::NotReadable(message)) = cause.downcast_ref::<Error>()
    {
        return Error::NotReadable(message.clone());
    }
    Error::Sql(error.to_string())
}
