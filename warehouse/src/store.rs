//! The warehouse on disk: Delta tables under one data directory, the archive of accepted files,
//! and the commit that turns a validated report into a new table version.
//!
//! Where each file lives is [`crate::layout::Layout`]'s business; which tables there are,
//! [`crate::catalogue`]'s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use datafusion::prelude::{Expr, SessionContext, cast, col, lit};
use deltalake::kernel::DataType as DeltaType;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::{StreamExt, TryStreamExt};
use ingest::{ReportKind, ValidatedReport};
use sha2::{Digest, Sha256};

use crate::accounts::Role;
use crate::approvals::APPROVALS;
use crate::catalogue::{self, CATALOGUE};
use crate::cluster::Cluster;
use crate::data_files;
use crate::guard::{QueryLimits, check_read_only, located, read_only_options};
use crate::kpi::{self, KpiRow};
use crate::layout::Layout;
use crate::metrics::{Dimension, Metrics};
use crate::reference::reference_tables;
use crate::storage::Storage;
use crate::tables::{
    KPI_VALUES, SOURCE_VERSIONS, SUBMISSIONS, Submission, fact_table, kpi_values_table_schema, partition_columns,
    report_batch, submissions_schema,
};
use crate::{Error, Result};

/// Commit metadata key under which `kpi_values` records what its values were computed from.
const SOURCES_METADATA: &str = "khoso.sources";

/// Commit metadata key under which a fact-table commit of an earlier khoso recorded its one
/// submission.
const SUBMISSION_METADATA: &str = "khoso.submission";

/// Commit metadata key under which a fact-table commit records its submissions (a list).
const SUBMISSIONS_METADATA: &str = "khoso.submissions";

/// How many one-row files the submissions table may gather before they are compacted into one.
const SUBMISSION_FILES_BEFORE_COMPACTION: usize = 32;

/// Versions to read tables at, by table name; a table not named is read at its latest version.
pub type TableVersions = BTreeMap<String, u64>;

/// Who uploaded a file, and when.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file's name as the user knows it (kept for people; never used as a path).
    pub file_name: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// The file's SHA-256, hashed once when it was received.
    pub sha256: String,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new table version now holds the slice.
    Committed(Submission),
    /// The slice already holds exactly these bytes: nothing changed.
    Unchanged(Submission),
}

/// A warehouse directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    layout: Layout,
    /// The KPIs and views, once attached with [`Warehouse::with_metrics`].
    metrics: Option<Arc<Metrics>>,
    /// Set once this handle has repaired what a killed process may have left unrecorded.
    recovered: Arc<AtomicBool>,
    /// Each table as last loaded at its latest version: the next read of a newer version
    /// replays only the commits in between, not the whole log.
    loaded: Arc<std::sync::Mutex<HashMap<String, DeltaTable>>>,
    /// Each table's latest version as last seen: the next look lists only the commits after it.
    seen: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    /// The Ballista cluster queries and the KPI refresh run on, once attached with
    /// [`Warehouse::with_cluster`]; this process otherwise.
    cluster: Option<Cluster>,
}

impl Warehouse {
    /// Creates the warehouse's empty tables where missing in a folder (made if need be), and
    /// opens it. Running it on an existing warehouse changes nothing.
    pub async fn init(root: &Path) -> Result<Self> {
        Self::init_in(Storage::new(&root.to_string_lossy(), &[], true)?).await
    }

    /// [`Warehouse::init`] in any storage (a folder, or a prefix of an object store).
    pub async fn init_in(storage: Storage) -> Result<Self> {
        let warehouse = Self::at(storage);
        warehouse.complete().await.map_err(|e| warehouse.unreachable(e))?;
        Ok(warehouse)
    }

    /// Opens an existing warehouse in a folder.
    pub async fn open(root: &Path) -> Result<Self> {
        Self::open_in(Storage::new(&root.to_string_lossy(), &[], false)?).await
    }

    /// Opens an existing warehouse in any storage. One made by an earlier khoso gains what it
    /// lacks (a table added to the catalogue since, a column added to a table's schema, the
    /// pseudonym key), empty.
    pub async fn open_in(storage: Storage) -> Result<Self> {
        let warehouse = Self::at(storage);
        let found = warehouse
            .latest_version(SUBMISSIONS)
            .await
            .map_err(|e| warehouse.unreachable(e))?;
        if found.is_none() {
            return Err(Error::NotAWarehouse(warehouse.layout.storage().url().to_string()));
        }
        warehouse.complete().await?;
        Ok(warehouse)
    }

    /// The first failure to reach a warehouse on an object store, with where its settings come
    /// from.
    fn unreachable(&self, error: Error) -> Error {
        match (self.storage().is_shared(), error) {
            (true, Error::Io(e)) => Error::Refused(format!(
                "cannot reach the warehouse at {}: {e}. The endpoint and credentials come from \
                 AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                 --storage-option KEY=VALUE",
                self.storage().url()
            )),
            (_, error) => error,
        }
    }

    /// Makes the catalogue's Delta tables, their columns and the pseudonym key where missing.
    async fn complete(&self) -> Result<()> {
        crate::pseudonym::Pseudonyms::create(&self.layout).await?;
        for table in catalogue::delta_tables() {
            let partitions = table.partitioning.iter().map(|c| c.to_string()).collect();
            self.create_table(table.name, (table.schema)(), partitions).await?;
            self.evolve_table(table.name, (table.schema)()).await?;
        }
        Ok(())
    }

    fn at(storage: Storage) -> Self {
        Self {
            layout: Layout::new(storage),
            metrics: None,
            recovered: Arc::new(AtomicBool::new(false)),
            loaded: Arc::default(),
            seen: Arc::default(),
            cluster: None,
        }
    }

    /// Attaches the KPIs: their views join the SQL session, and their values are kept fresh.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs the KPI refresh and SQL sessions' queries on `cluster` (the reading of one file's
    /// preview, the ledgers and the catalogue stay in this process).
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// This warehouse with its queries run by this process, whatever cluster is attached.
    pub fn without_cluster(&self) -> Self {
        Self {
            cluster: None,
            ..self.clone()
        }
    }

    /// The attached KPIs.
    pub fn metrics(&self) -> Result<&Metrics> {
        self.metrics
            .as_deref()
            .ok_or_else(|| Error::Internal("no metrics attached to the warehouse".into()))
    }

    /// Where the warehouse is kept.
    pub fn storage(&self) -> &Storage {
        self.layout.storage()
    }

    /// Where everything is under the data directory.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A table's handle, not loaded yet.
    fn table_builder(&self, name: &str) -> Result<DeltaTableBuilder> {
        Ok(DeltaTableBuilder::from_url(self.layout.table_url(name)?)?
            .with_storage_options(self.layout.storage().options().clone()))
    }

    pub(crate) async fn create_table(&self, name: &str, schema: SchemaRef, partitions: Vec<String>) -> Result<()> {
        if self.latest_version(name).await?.is_some() {
            return Ok(());
        }
        let mut builder = self
            .table_builder(name)?
            .build()?
            .create()
            .with_table_name(name)
            .with_save_mode(SaveMode::Ignore)
            .with_partition_columns(partitions);
        for field in schema.fields() {
            builder = builder.with_column(field.name(), delta_type(field.data_type()), field.is_nullable(), None);
        }
        match builder.await {
            Ok(_) => Ok(()),
            // Another process made it at the same moment (its first commit is conditional).
            Err(_) if self.latest_version(name).await?.is_some() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds to a table the columns its catalogue schema has and it lacks (a column added to a
    /// report kind's schema file since the table was made), nullable: the rows written before
    /// read as null.
    async fn evolve_table(&self, name: &str, schema: SchemaRef) -> Result<()> {
        let table = self.table(name, None).await?;
        let have: HashMap<String, DeltaType> = table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| (f.name().to_string(), f.data_type().clone()))
            .collect();
        for field in schema.fields() {
            // The types of report columns: counts, yes/no, text.
            let report_type = matches!(
                field.data_type(),
                ArrowType::Int64 | ArrowType::Boolean | ArrowType::Utf8
            );
            if let Some(logged) = have.get(field.name())
                && report_type
                && logged != &delta_type(field.data_type())
            {
                return Err(Error::Refused(format!(
                    "column {} of table {name} holds {logged} values; its schema now says {}. A column cannot \
                     change type: give the new meaning a new name, and the old one `formerly`",
                    field.name(),
                    delta_type(field.data_type())
                )));
            }
        }
        let missing: Vec<deltalake::kernel::StructField> = schema
            .fields()
            .iter()
            .filter(|f| !have.contains_key(f.name()))
            .map(|f| deltalake::kernel::StructField::new(f.name(), delta_type(f.data_type()), true))
            .collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|f| f.name().to_string()).collect();
            match table.add_columns().with_fields(missing).await {
                Ok(_) => {
                    tracing::info!(table = name, columns = ?names, "the table gained the columns its schema has now")
                }
                // Another process added them at the same moment.
                Err(_)
                    if self
                        .table(name, None)
                        .await?
                        .snapshot()?
                        .schema()
                        .field(&names[0])
                        .is_some() => {}
                Err(e) => Err(e)?,
            }
        }
        self.state_columns(name).await
    }

    /// Writes in a table's log what its report schema states of its columns (former names, a
    /// default: see [`crate::scan::Stated`]) where the log says otherwise.
    async fn state_columns(&self, name: &str) -> Result<()> {
        use deltalake::kernel::MetadataValue;
        let logged = |table: &DeltaTable, stated: &crate::scan::Stated| -> Result<bool> {
            let snapshot = table.snapshot()?;
            let schema = snapshot.schema();
            let logged = schema.field(stated.name()).map(|f| f.metadata());
            Ok(stated.metadata().iter().all(
                |(key, value)| matches!(logged.and_then(|m| m.get(key)), Some(MetadataValue::String(v)) if v == value),
            ))
        };
        for stated in crate::tables::stated_columns(name) {
            let table = self.table(name, None).await?;
            if logged(&table, &stated)? {
                continue;
            }
            let wanted = stated.metadata();
            let metadata = wanted
                .into_iter()
                .map(|(key, value)| (key, MetadataValue::String(value)))
                .collect();
            let updated = table
                .update_field_metadata()
                .with_field_name(stated.name())
                .with_metadata(metadata)
                .await;
            match updated {
                Ok(_) => tracing::info!(
                    table = name,
                    column = stated.name(),
                    "the column's former names and default are in the log"
                ),
                // Another process wrote the same at the same moment.
                Err(_) if logged(&self.table(name, None).await?, &stated)? => {}
                Err(e) => Err(e)?,
            }
        }
        Ok(())
    }

    /// Opens a table at its latest version, or at `version`.
    pub async fn table(&self, name: &str, version: Option<u64>) -> Result<DeltaTable> {
        let Some(latest) = self.latest_version(name).await? else {
            // Not a table (yet): deltalake says so.
            return Ok(self.table_builder(name)?.load().await?);
        };
        let wanted = version.unwrap_or(latest);
        if wanted > latest {
            return Err(Error::NoSuchVersion(name.to_string(), wanted, latest));
        }
        let kept = self
            .loaded_table(name)
            .filter(|t| t.version().is_some_and(|v| v <= wanted));
        let table = match kept {
            Some(mut table) => {
                table.load_version(wanted).await?;
                table
            }
            None => self.table_builder(name)?.with_version(wanted).load().await?,
        };
        if wanted == latest {
            self.loaded
                .lock()
                .map_err(|_| Error::Internal("the table cache is poisoned".into()))?
                .insert(name.to_string(), table.clone());
        }
        Ok(table)
    }

    /// The table as last loaded at its latest version, if it was.
    fn loaded_table(&self, name: &str) -> Option<DeltaTable> {
        self.loaded.lock().ok()?.get(name).cloned()
    }

    /// The names of the tables a query may pin to a version.
    pub fn table_names() -> Vec<&'static str> {
        catalogue::source_tables().map(|t| t.name).collect()
    }

    /// The latest version of every table: the highest-numbered commit file in each table's
    /// `_delta_log` (the Delta protocol's definition of the latest version). A listing of the
    /// commits after the last one seen, per table, without loading any table state, so it is
    /// cheap enough to ask on every request.
    pub async fn versions(&self) -> Result<TableVersions> {
        let names = Self::table_names();
        let latest = futures::future::try_join_all(names.iter().map(|name| self.latest_version(name))).await?;
        names
            .into_iter()
            .zip(latest)
            .map(|(name, latest)| {
                let latest = latest.ok_or_else(|| Error::Internal(format!("table {name} has no commit")))?;
                Ok((name.to_string(), latest))
            })
            .collect()
    }

    /// The latest version of the `approvals` table (none before the first decision's table
    /// exists): readers that keep decisions in memory read them again when it changes.
    pub async fn decisions_version(&self) -> Result<Option<u64>> {
        self.latest_version(APPROVALS).await
    }

    /// The highest-numbered commit file in a table's log (none if there is no table): the
    /// commits after the last one this handle saw.
    pub(crate) async fn latest_version(&self, name: &str) -> Result<Option<u64>> {
        let seen = self.seen.lock().ok().and_then(|seen| seen.get(name).copied());
        let log = object_store::path::Path::from(self.layout.table_log(name));
        let offset = seen.map(|v| object_store::path::Path::from(format!("{log}/{v:020}.json")));
        let store = self.layout.storage().store();
        let mut listing = match &offset {
            Some(offset) => store.list_with_offset(Some(&log), offset),
            None => store.list(Some(&log)),
        };
        let mut latest = seen;
        while let Some(meta) = listing.try_next().await.map_err(crate::storage::object_error)? {
            let version = meta
                .location
                .filename()
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok());
            latest = latest.max(version);
        }
        if let (Some(latest), Ok(mut seen)) = (latest, self.seen.lock()) {
            seen.insert(name.to_string(), latest);
        }
        Ok(latest)
    }

    /// The tag the KPI values of the tables as they are now carry (or will carry once
    /// computed): every table's latest version and the metrics' fingerprint. Cheap; a reader
    /// that kept values under the same tag may keep using them.
    pub async fn current_tag(&self) -> Result<String> {
        self.source_tag(&self.versions().await?)
    }

    /// A DataFusion session with every table registered: the warehouse's Delta tables (at the
    /// pinned versions, else the latest) and the reference tables; every table readable, for
    /// the server's own work.
    pub async fn session(&self, pins: &TableVersions) -> Result<SessionContext> {
        self.session_with(pins, None, None, Role::Admin).await
    }

    /// [`Warehouse::session`] as an account of `reader` sees it (see
    /// [`crate::catalogue::ReaderSchema`]), with one table replaced by another provider
    /// (before the views are made, so they read the replacement).
    pub(crate) async fn session_with(
        &self,
        pins: &TableVersions,
        replacement: Option<(&str, Arc<dyn datafusion::catalog::TableProvider>)>,
        limits: Option<&QueryLimits>,
        reader: Role,
    ) -> Result<SessionContext> {
        if let Some(unknown) = pins.keys().find(|k| !Self::table_names().contains(&k.as_str())) {
            return Err(Error::UnknownTable(unknown.clone()));
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
                    crate::scan::DeltaFiles::provider(&table)?
                }
                // Ledgers made after the warehouse (a warehouse of an older khoso) may not be
                // there yet.
                catalogue::Storage::Ledger if self.latest_version(entry.name).await?.is_none() => continue,
                catalogue::Storage::Ledger => {
                    let table = self.table(entry.name, None).await?;
                    table.update_datafusion_session(&ctx.state())?;
                    crate::scan::DeltaFiles::provider(&table)?
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
        crate::engine::run(async move {
            check_read_only(&sql)?;
            let ctx = warehouse.session(&pins).await?;
            let frame = ctx
                .sql_with_options(&sql, read_only_options())
                .await
                .map_err(|e| located(&sql, Error::from_query(e)))?;
            frame.collect().await.map_err(Error::from_query)
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
        let shape = limits.check_text(sql)?;
        let (warehouse, sql, pins, limits) = (self.clone(), sql.to_string(), pins.clone(), *limits);
        let planned = crate::engine::stream(async move {
            check_read_only(&sql)?;
            let ctx = warehouse.session_with(&pins, None, Some(&limits), reader).await?;
            let frame = ctx
                .sql_with_options(&sql, read_only_options())
                .await
                .map_err(|e| located(&sql, Error::from_query(e)))
                .map_err(|e| warehouse.hide_paths_of(e))?;
            let stream = frame.execute_stream().await.map_err(Error::from_query)?;
            if !shape.explain {
                return Ok(stream);
            }
            // A plan names the files it reads: shown without the server's paths.
            let schema = stream.schema();
            let hidden = stream.map(move |batch| {
                batch.and_then(|batch| {
                    warehouse
                        .hide_paths_in(&batch)
                        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
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
            TryStreamExt::try_collect::<Vec<_>>(stream)
                .await
                .map_err(Error::from_query)
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
            ctx.register_table(entry.name, crate::scan::DeltaFiles::provider(&table)?)?;
        }
        if let Some(metrics) = &self.metrics {
            for view in &metrics.views {
                ctx.deregister_table(view.name.as_str())?;
            }
            metrics.register_views(ctx).await?;
        }
        Ok(())
    }

    /// Every submission, oldest first.
    pub async fn submissions(&self) -> Result<Vec<Submission>> {
        self.submissions_where(None).await
    }

    /// The submissions that match a filter, oldest first. The filter is pushed down to the
    /// table's file statistics, so a lookup by slice or id opens only the files it needs.
    async fn submissions_where(&self, filter: Option<Expr>) -> Result<Vec<Submission>> {
        self.submissions_at(None, filter).await
    }

    async fn submissions_at(&self, version: Option<u64>, filter: Option<Expr>) -> Result<Vec<Submission>> {
        let ctx = SessionContext::new();
        let table = self.table(SUBMISSIONS, version).await?;
        table.update_datafusion_session(&ctx.state())?;
        let mut frame = ctx.read_table(crate::scan::DeltaFiles::provider(&table)?)?;
        if let Some(filter) = filter {
            frame = frame.filter(filter)?;
        }
        let columns: Vec<Expr> = submissions_schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "uploaded_at" => cast(col("uploaded_at"), ArrowType::Int64).alias("uploaded_at"),
                name => col(name),
            })
            .collect();
        let batches = frame
            .select(columns)?
            .sort(vec![
                col("uploaded_at").sort(true, true),
                col("submission_id").sort(true, true),
            ])?
            .collect()
            .await?;
        rows_of(&batches, SUBMISSIONS)
    }

    /// The submission that holds a slice now, if any.
    pub async fn current_submission(
        &self,
        kind: ReportKind,
        school_year: &str,
        province_code: Option<&str>,
    ) -> Result<Option<Submission>> {
        let mut filter = col("kind")
            .eq(lit(kind.as_str()))
            .and(col("school_year").eq(lit(school_year)));
        filter = match province_code {
            Some(code) => filter.and(col("province_code").eq(lit(code))),
            None => filter.and(col("province_code").is_null()),
        };
        Ok(self.submissions_where(Some(filter)).await?.pop())
    }

    /// Commits validated reports, each with its file and upload: archives each file by its
    /// SHA-256, replaces each report's (kind, province, school year) slice, and records a
    /// submission per file. A file whose bytes its slice already holds changes nothing.
    ///
    /// The files of one table are written in one Delta transaction (two files of the same
    /// slice in one batch are committed one after the other, the later last), then their
    /// submissions in one append: a batch of 458 files is a few commits, not a thousand.
    ///
    /// One commit runs at a time per warehouse, across processes (a file lock); a crash at any
    /// point leaves the previous table versions intact and readable, and the submissions of a
    /// written table version are recorded by the next process (see
    /// [`Warehouse::recover`]).
    pub(crate) async fn commit_batch(
        &self,
        files: &[(&ValidatedReport, &Path, &Upload)],
    ) -> Result<Vec<CommitOutcome>> {
        let _lock = self.lock().await?;
        self.recover_locked().await?;
        // Each table is written over the version it is at now, once every commit up to it has
        // its submissions recorded: the slices' current submissions (what a file supersedes)
        // are those of that version, and a commit of another process after it that touches the
        // same slice makes this one fail (on disk the lock keeps others out anyway).
        let mut bases: HashMap<&'static str, u64> = HashMap::new();
        let mut submissions = self.submissions().await?;
        let recorded = submission_ids(&submissions);
        let mut repaired = false;
        for (report, ..) in files {
            let table = fact_table(report.kind);
            if !bases.contains_key(table) {
                let version = self
                    .latest_version(table)
                    .await?
                    .ok_or_else(|| Error::Internal(format!("table {table} has no commit")))?;
                repaired |= self.record_commits(table, version, &recorded).await?;
                bases.insert(table, version);
            }
        }
        if repaired {
            submissions = self.submissions().await?;
        }
        let mut current: HashMap<(ReportKind, ingest::SchoolYear, Option<ingest::ProvinceCode>), Submission> =
            HashMap::new();
        for submission in submissions {
            let slice = (
                submission.kind,
                submission.school_year,
                submission.province_code.clone(),
            );
            current.insert(slice, submission);
        }
        // Rounds: the n-th file of a slice in the batch goes in round n.
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<(ReportKind, ingest::SchoolYear, Option<ingest::ProvinceCode>), usize> = HashMap::new();
        for (index, (report, ..)) in files.iter().enumerate() {
            let times = seen
                .entry((report.kind, report.school_year, report.province_code.clone()))
                .or_default();
            if rounds.len() <= *times {
                rounds.push(Vec::new());
            }
            rounds[*times].push(index);
            *times += 1;
        }
        let mut outcomes: Vec<Option<CommitOutcome>> = vec![None; files.len()];
        for round in rounds {
            let mut by_table: BTreeMap<&'static str, Vec<(usize, Submission, Rows)>> = BTreeMap::new();
            for index in round {
                let (report, file, upload) = files[index];
                let slice = (report.kind, report.school_year, report.province_code.clone());
                let previous = current.get(&slice);
                if let Some(previous) = previous
                    && previous.sha256 == upload.sha256
                {
                    outcomes[index] = Some(CommitOutcome::Unchanged(previous.clone()));
                    continue;
                }
                let submission = Submission {
                    submission_id: match &report.stored {
                        Some(stored) => stored.submission_id.clone(),
                        None => uuid::Uuid::new_v4().to_string(),
                    },
                    kind: report.kind,
                    province_code: report.province_code.clone(),
                    school_year: report.school_year,
                    rows: report.rows as i64,
                    sha256: upload.sha256.clone(),
                    file_name: upload.file_name.clone(),
                    uploaded_by: upload.uploaded_by.clone(),
                    uploaded_at: upload.uploaded_at.timestamp_micros(),
                    table_version: -1,
                    supersedes: previous.map(|c| c.submission_id.clone()),
                };
                let rows = self.rows_to_write(report, file, &submission).await?;
                by_table
                    .entry(fact_table(report.kind))
                    .or_default()
                    .push((index, submission, rows));
            }
            let mut recorded = Vec::new();
            for (table, writes) in by_table {
                let base = bases.get(table).copied();
                let version = match self.write_slices(table, base, &writes).await {
                    Ok(version) => version,
                    Err(Error::Delta(e)) if is_conflict(&e) => return Err(self.lost_race(table, &writes).await),
                    Err(e) => return Err(e),
                };
                bases.insert(table, version as u64);
                for (index, mut submission, _) in writes {
                    submission.table_version = version;
                    current.insert(
                        (
                            submission.kind,
                            submission.school_year,
                            submission.province_code.clone(),
                        ),
                        submission.clone(),
                    );
                    outcomes[index] = Some(CommitOutcome::Committed(submission.clone()));
                    recorded.push(submission);
                }
            }
            if !recorded.is_empty() {
                self.record_submissions(&recorded).await?;
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| Error::Internal("a file of the batch was not committed".into())))
            .collect()
    }

    /// A file's rows to write, archiving the file: a record file's data files, written when it
    /// was read, are linked into the archive (its copy of pseudonyms, never the identifiers sent)
    /// and moved into the table's folder; a report's own bytes are archived as they are.
    async fn rows_to_write(&self, report: &ValidatedReport, file: &Path, submission: &Submission) -> Result<Rows> {
        match &report.stored {
            Some(stored) => {
                let table = fact_table(report.kind);
                let partition =
                    data_files::slice_partition(report.kind, report.school_year, report.province_code.as_deref());
                let added = data_files::place(
                    self.layout.storage(),
                    &stored.folder,
                    &stored.submission_id,
                    &format!("tables/{table}"),
                    &partition,
                )
                .await?;
                std::fs::remove_dir_all(&stored.folder).ok();
                // The archive keeps the table's files (a hard link on disk, a copy on S3).
                let archived = self.archived_records(&submission.sha256)?;
                for action in &added {
                    if let deltalake::kernel::Action::Add(add) = action {
                        let name = add.path.rsplit('/').next().unwrap_or(&add.path);
                        let from = format!("tables/{table}/{}", add.path);
                        self.layout.storage().copy(&from, &format!("{archived}/{name}")).await?;
                    }
                }
                Ok(Rows::Files(added))
            }
            None if report.kind.holds_people() => Err(Error::Internal(format!(
                "a {} file reached the commit without its pseudonymised rows",
                report.kind
            ))),
            None => {
                self.archive(file, &submission.sha256).await?;
                Ok(Rows::Batch(report_batch(report, &submission.submission_id)?))
            }
        }
    }

    /// Replaces the slices of `writes` in one transaction of a table, recording their
    /// submissions in its commit; returns the new version.
    async fn write_slices(&self, table: &str, base: Option<u64>, writes: &[(usize, Submission, Rows)]) -> Result<i64> {
        let kind = writes
            .first()
            .map(|(_, s, _)| s.kind)
            .ok_or_else(|| Error::Internal("nothing to write".into()))?;
        let submissions: Vec<&Submission> = writes.iter().map(|(_, s, _)| s).collect();
        let metadata = serde_json::to_value(&submissions).map_err(|e| Error::Internal(e.to_string()))?;
        let commit_properties =
            CommitProperties::default().with_metadata([(SUBMISSIONS_METADATA.to_string(), metadata)]);
        let (mut batches, mut added) = (Vec::new(), Vec::new());
        for (_, _, rows) in writes {
            match rows {
                Rows::Batch(batch) => batches.push(batch.clone()),
                Rows::Files(actions) => added.extend(actions.iter().cloned()),
            }
        }
        let delta = self.table(table, base).await?;
        if !added.is_empty() {
            if !batches.is_empty() {
                return Err(Error::Internal(format!("{table}: rows both in memory and in files")));
            }
            let slices: Vec<data_files::PartitionValues> = submissions
                .iter()
                .map(|s| data_files::slice_partition(kind, s.school_year, s.province_code.as_deref()))
                .collect();
            let mut actions = data_files::removals(&delta, &slices).await?;
            actions.extend(added);
            let predicate = slices
                .iter()
                .map(|slice| {
                    let terms: Vec<String> = slice
                        .iter()
                        .map(|(name, value)| format!("{name} = '{value}'"))
                        .collect();
                    format!("({})", terms.join(" AND "))
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let operation = DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by: Some(partition_columns(kind).iter().map(|c| c.to_string()).collect()),
                predicate: Some(predicate),
            };
            let snapshot = delta.snapshot()?;
            let committed = CommitBuilder::from(commit_properties)
                .with_actions(actions)
                .build(Some(snapshot), delta.log_store(), operation)
                .await?;
            return Ok(committed.version() as i64);
        }
        let slices = submissions
            .iter()
            .map(|submission| {
                let mut slice = col("school_year").eq(lit(submission.school_year.to_string()));
                if let Some(code) = &submission.province_code {
                    slice = slice.and(col("province_code").eq(lit(code.as_str())));
                }
                slice
            })
            .reduce(Expr::or)
            .ok_or_else(|| Error::Internal("nothing to write".into()))?;
        let written = delta
            .write(batches)
            .with_writer_properties(crate::tables::writer_properties(kind))
            .with_save_mode(SaveMode::Overwrite)
            // A renamed column's former column is in the table, not in new rows: null there.
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .with_replace_where(slices)
            .with_partition_columns(partition_columns(kind).iter().copied())
            .with_commit_properties(commit_properties)
            .await?;
        Ok(written.version().unwrap_or(0) as i64)
    }

    /// Commits one validated report (see [`Warehouse::commit_batch`]).
    pub(crate) async fn commit(&self, report: &ValidatedReport, file: &Path, upload: &Upload) -> Result<CommitOutcome> {
        let mut outcomes = self.commit_batch(&[(report, file, upload)]).await?;
        outcomes
            .pop()
            .ok_or_else(|| Error::Internal("the commit has no outcome".into()))
    }

    /// The tag of KPI values computed from these table versions under the attached metrics.
    fn source_tag(&self, versions: &TableVersions) -> Result<String> {
        let mut tag: Vec<String> = versions.iter().map(|(t, v)| format!("{t}={v}")).collect();
        tag.push(format!("metrics={}", &self.metrics()?.fingerprint[..12]));
        Ok(tag.join(" "))
    }

    /// The tag the `kpi_values` table carries now.
    async fn kpi_values_tag(&self) -> Result<Option<String>> {
        let table = self.table(KPI_VALUES, None).await?;
        let last = StreamExt::collect::<Vec<_>>(table.history(Some(1))).await;
        Ok(last.into_iter().flatten().find_map(|info| {
            info.info
                .get(SOURCES_METADATA)
                .and_then(|v| v.as_str().map(str::to_string))
        }))
    }

    /// Makes sure `kpi_values` holds the KPIs of the tables as they are now; recomputes them
    /// (one atomic overwrite, under the commit lock) when any table or the metrics changed.
    /// Returns the tag of the values.
    /// The work runs on the query runtime ([`crate::engine`]), never on the caller's threads.
    pub async fn ensure_kpis_fresh(&self) -> Result<String> {
        let warehouse = self.clone();
        crate::engine::run(async move { warehouse.ensure_kpis_fresh_here().await }).await?
    }

    async fn ensure_kpis_fresh_here(&self) -> Result<String> {
        let tag = self.source_tag(&self.versions().await?)?;
        if self.kpi_values_tag().await?.as_deref() == Some(tag.as_str()) {
            return Ok(tag);
        }
        let _lock = self.lock().await?;
        let mut refreshing = self.clone();
        // Processes of other machines may refresh at the same moment: one overwrite wins, and
        // the others look again (the values may be fresh now, or stale again).
        for _ in 0..KPI_REFRESH_ATTEMPTS {
            match refreshing.refresh_kpis_locked().await {
                Err(Error::Delta(e)) if is_conflict(&e) => continue,
                // The dashboard needs its figures: without the cluster, this process computes
                // them itself, slower.
                Err(Error::Cluster(cause)) if refreshing.cluster.is_some() => {
                    tracing::warn!(%cause, "the cluster could not refresh the KPIs: this process does");
                    refreshing = refreshing.without_cluster();
                }
                done => return done,
            }
        }
        Err(Error::Internal(
            "the KPI values kept being rewritten by other processes".into(),
        ))
    }

    async fn refresh_kpis_locked(&self) -> Result<String> {
        // Pinned to the versions of the tag, so values and tag agree whatever commits next.
        let versions = self.versions().await?;
        let tag = self.source_tag(&versions)?;
        if self.kpi_values_tag().await?.as_deref() == Some(tag.as_str()) {
            return Ok(tag);
        }
        let previous_tag = self.kpi_values_tag().await?;
        let ctx = self.session(&versions).await?;
        let metrics = self.metrics()?;
        let started = std::time::Instant::now();
        let (values, how) = match self.changed_since(previous_tag.as_deref(), &versions).await? {
            Some(changed) => match self.all_kpi_values().await {
                Ok(previous) => (
                    kpi::compute_changed(&ctx, metrics, &previous, &changed).await?,
                    changed
                        .iter()
                        .map(|(table, years)| {
                            let years: Vec<String> = years.iter().map(|y| y.to_string()).collect();
                            format!("{table} {}", years.join(", "))
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(_) => (kpi::compute(&ctx, metrics).await?, "everything".to_string()),
            },
            None => (kpi::compute(&ctx, metrics).await?, "everything".to_string()),
        };
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            from = how.as_str(),
            "KPI values computed"
        );
        let batch = kpi::to_batch(&values)?;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![tag.as_str(); batch.num_rows()])));
        let batch = RecordBatch::try_new(kpi_values_table_schema(), columns)?;
        self.table(KPI_VALUES, None)
            .await?
            .write(vec![batch])
            .with_save_mode(SaveMode::Overwrite)
            // Recomputed whole each time: the columns are this khoso's, whatever an older one wrote.
            .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
            .with_commit_properties(
                CommitProperties::default()
                    .with_metadata([(SOURCES_METADATA.to_string(), serde_json::Value::String(tag.clone()))]),
            )
            .await?;
        Ok(tag)
    }

    /// What changed since the KPI values tagged `previous` were computed: for each fact table
    /// whose version moved, the school years of the submissions committed since. None when the
    /// values must be computed in full: no earlier values, other metrics, a table the tag does
    /// not name, or a table version no submission explains (the safe answer is everything).
    async fn changed_since(&self, previous: Option<&str>, versions: &TableVersions) -> Result<Option<kpi::Changed>> {
        let Some(previous) = previous else {
            return Ok(None);
        };
        let mut before = BTreeMap::new();
        let mut same_metrics = false;
        for pair in previous.split(' ') {
            let Some((name, value)) = pair.split_once('=') else {
                return Ok(None);
            };
            match name {
                "metrics" => same_metrics = self.metrics()?.fingerprint.starts_with(value),
                _ => {
                    let Ok(version) = value.parse::<u64>() else {
                        return Ok(None);
                    };
                    before.insert(name.to_string(), version);
                }
            }
        }
        if !same_metrics {
            return Ok(None);
        }
        let submissions = self.submissions().await?;
        let mut changed = kpi::Changed::new();
        for (table, &now) in versions {
            let Some(&then) = before.get(table) else {
                return Ok(None);
            };
            if now == then || table == SUBMISSIONS {
                continue;
            }
            let years: std::collections::BTreeSet<ingest::SchoolYear> = submissions
                .iter()
                .filter(|s| fact_table(s.kind) == table)
                .filter(|s| (then as i64) < s.table_version && s.table_version <= now as i64)
                .map(|s| s.school_year)
                .collect();
            if years.is_empty() {
                return Ok(None);
            }
            changed.insert(table.clone(), years);
        }
        Ok(Some(changed))
    }

    /// Every row of `kpi_values` as it is.
    async fn all_kpi_values(&self) -> Result<Vec<KpiRow>> {
        let ctx = SessionContext::new();
        let table = self.table(KPI_VALUES, None).await?;
        table.update_datafusion_session(&ctx.state())?;
        let batches = ctx
            .read_table(crate::scan::DeltaFiles::provider(&table)?)?
            .collect()
            .await?;
        rows_of(&batches, KPI_VALUES)
    }

    /// Fresh KPI values of one dimension (and one KPI, if given), in file order of the KPIs,
    /// then unit and year; with the tag they were computed under.
    pub async fn kpi_rows(&self, kpi: Option<&str>, dimension: Dimension) -> Result<(Vec<KpiRow>, String)> {
        let tag = self.ensure_kpis_fresh().await?;
        let ctx = SessionContext::new();
        let table = self.table(KPI_VALUES, None).await?;
        table.update_datafusion_session(&ctx.state())?;
        let mut filter = col("dimension").eq(lit(dimension.as_str()));
        if let Some(id) = kpi {
            filter = filter.and(col("kpi_id").eq(lit(id)));
        }
        let batches = ctx
            .read_table(crate::scan::DeltaFiles::provider(&table)?)?
            .filter(filter)?
            .sort(vec![col("unit").sort(true, true), col("school_year").sort(true, true)])?
            .collect()
            .await?;
        let mut rows: Vec<KpiRow> = rows_of(&batches, KPI_VALUES)?;
        let order: Vec<&str> = self.metrics()?.kpis.iter().map(|k| k.id.as_str()).collect();
        rows.sort_by_key(|r| order.iter().position(|id| *id == r.kpi_id));
        Ok((rows, tag))
    }

    /// Every fresh KPI value (all KPIs, all dimensions) and the submissions they rest on, read
    /// at one version of `kpi_values` and the `submissions` version of its tag: one consistent
    /// state of the warehouse for a reader to keep while [`Warehouse::current_tag`] is unchanged.
    pub async fn kpi_snapshot(&self) -> Result<KpiSnapshot> {
        let fresh = self.ensure_kpis_fresh().await?;
        let table = self.table(KPI_VALUES, None).await?;
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        let batches = ctx
            .read_table(crate::scan::DeltaFiles::provider(&table)?)?
            .sort(vec![
                col("dimension").sort(true, true),
                col("unit").sort(true, true),
                col("school_year").sort(true, true),
            ])?
            .collect()
            .await?;
        // The tag in the rows themselves: the one the values were computed under, whatever
        // committed since.
        let tag = batches
            .iter()
            .find_map(|b| {
                let tags = b
                    .column_by_name(SOURCE_VERSIONS)?
                    .as_any()
                    .downcast_ref::<StringArray>()?;
                (!tags.is_empty()).then(|| tags.value(0).to_string())
            })
            .unwrap_or(fresh);
        let submissions_version = tag
            .split(' ')
            .find_map(|pair| pair.strip_prefix(&format!("{SUBMISSIONS}=")))
            .and_then(|v| v.parse::<u64>().ok());
        let mut rows: Vec<KpiRow> = rows_of(&batches, KPI_VALUES)?;
        let order: Vec<&str> = self.metrics()?.kpis.iter().map(|k| k.id.as_str()).collect();
        rows.sort_by_key(|r| order.iter().position(|id| *id == r.kpi_id));
        let submissions = self.submissions_at(submissions_version, None).await?;
        Ok(KpiSnapshot { tag, rows, submissions })
    }

    /// What a commit that lost the race for its slice answers: another process committed a
    /// file of the same slice in between. Its data files, written for nothing, go.
    async fn lost_race(&self, table: &str, writes: &[(usize, Submission, Rows)]) -> Error {
        for (_, _, rows) in writes {
            if let Rows::Files(actions) = rows {
                for action in actions {
                    if let deltalake::kernel::Action::Add(add) = action {
                        let path = format!("tables/{table}/{}", add.path);
                        self.layout.storage().delete(&path).await.ok();
                    }
                }
            }
        }
        let slices: Vec<String> = writes
            .iter()
            .map(|(_, s, _)| {
                let province = s
                    .province_code
                    .as_deref()
                    .map(|p| format!(", province {p}"))
                    .unwrap_or_default();
                format!("{} {}{province}", s.kind, s.school_year)
            })
            .collect();
        Error::Refused(format!(
            "Một tệp khác của cùng phần dữ liệu ({slices}) vừa được ghi cùng lúc; tệp này chưa được ghi. \
             Hãy xem phần dữ liệu hiện có rồi gửi lại nếu tệp này vẫn đúng. / Another file of the same \
             slice ({slices}) was committed at the same moment; this one was not. Look at what the slice \
             holds now, and send this file again if it is still the right one.",
            slices = slices.join("; ")
        ))
    }

    /// Appends the submissions of fact-table commits. Each commit's submissions are recorded
    /// once: the append carries the commit's application id (`khoso.TABLE.VERSION`), so a
    /// process repairing an unrecorded commit and the process that made it, racing, cannot both
    /// write them (Delta refuses the second).
    async fn record_submissions(&self, submissions: &[Submission]) -> Result<()> {
        let table = self.table(SUBMISSIONS, None).await?;
        // Those recorded by the time of this version are left out; those recorded after it make
        // the append fail (and are recorded).
        let mut unrecorded = Vec::new();
        let mut commits = std::collections::BTreeSet::new();
        for submission in submissions {
            let commit = recorded_commit(submission);
            let recorded = table
                .snapshot()?
                .transaction_version(table.log_store().as_ref(), &commit)
                .await?;
            if recorded.is_none() {
                unrecorded.push(submission.clone());
                commits.insert(commit);
            }
        }
        if unrecorded.is_empty() {
            return Ok(());
        }
        let batch = Submission::to_batch(&unrecorded)?;
        let mut properties = CommitProperties::default();
        for commit in commits {
            properties = properties.with_application_transaction(deltalake::kernel::Transaction::new(commit, 0));
        }
        let written = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(properties)
            .await;
        let table = match written {
            Ok(table) => table,
            Err(e) if is_recorded_already(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // Every append adds a small file; lookups by slice scan them, so keep them few.
        if table.get_file_uris()?.count() > SUBMISSION_FILES_BEFORE_COMPACTION
            && let Err(e) = self.compact_submissions(table).await
        {
            tracing::warn!(cause = %e, "the submissions table was not compacted");
        }
        Ok(())
    }

    /// Rewrites the submissions of a version as one file. An overwrite, not Delta's OPTIMIZE:
    /// its removals count as changes, so two processes compacting at once cannot both commit
    /// (delta-rs does not check OPTIMIZE's removals against each other, and both compacted
    /// files would stay); an append committed meanwhile keeps its file.
    async fn compact_submissions(&self, table: DeltaTable) -> Result<()> {
        let rows = self.submissions_at(table.version(), None).await?;
        table
            .write(vec![Submission::to_batch(&rows)?])
            .with_save_mode(SaveMode::Overwrite)
            .await?;
        Ok(())
    }

    /// Repairs what a process killed mid-commit left (see below); a server calls it at start so
    /// that its first page already shows every committed file.
    pub async fn recover(&self) -> Result<()> {
        let _lock = self.lock().await?;
        self.recover_locked().await
    }

    async fn recover_locked(&self) -> Result<()> {
        if !self.recovered.load(Ordering::Acquire) {
            self.recover_unrecorded_commits().await?;
            self.recovered.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// A process killed between the fact-table commit and the submissions append leaves a table
    /// version without its submission row; the commit metadata holds the row, so the first
    /// commit of the next process writes it. On a disk, commits take turns, so only a table's
    /// last commit can be such; on an object store, processes of other machines commit in
    /// between, so the last [`COMMITS_RECOVERED`] are looked at.
    async fn recover_unrecorded_commits(&self) -> Result<()> {
        let recorded = submission_ids(&self.submissions().await?);
        for kind in ReportKind::ALL {
            let table = fact_table(kind);
            if let Some(latest) = self.latest_version(table).await? {
                self.record_commits(table, latest, &recorded).await?;
            }
        }
        Ok(())
    }

    /// Records the submissions of a table's last [`COMMITS_RECOVERED`] commits up to `version`
    /// that are not recorded yet: by a process killed between its commit and the append, or
    /// still between them (the append's application id keeps the two from both recording).
    /// `recorded` are the ids recorded already; true when it recorded any.
    async fn record_commits(&self, table: &str, version: u64, recorded: &HashSet<String>) -> Result<bool> {
        let mut repaired = false;
        let first = version.saturating_sub(COMMITS_RECOVERED - 1);
        let commits: Vec<(u64, Option<Vec<u8>>)> = futures::stream::iter(first..=version)
            .map(|version| async move {
                let path = format!("{}/{version:020}.json", self.layout.table_log(table));
                Ok::<_, Error>((version, self.layout.storage().read(&path).await?))
            })
            .buffered(8)
            .try_collect()
            .await?;
        for (version, commit) in commits {
            let unrecorded: Vec<Submission> = committed_submissions(commit.as_deref().unwrap_or_default())
                .into_iter()
                .filter(|s| !recorded.contains(&s.submission_id))
                .map(|s| Submission {
                    table_version: version as i64,
                    ..s
                })
                .collect();
            if !unrecorded.is_empty() {
                self.record_submissions(&unrecorded).await?;
                repaired = true;
            }
        }
        Ok(repaired)
    }

    /// Keeps a file as it came in the archive, under its SHA-256; returns its path there.
    async fn archive(&self, file: &Path, sha256: &str) -> Result<String> {
        let extension = file
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| "bin".to_string());
        let folder = self
            .layout
            .archive_folder(sha256)
            .ok_or_else(|| Error::Internal(format!("not a SHA-256: {sha256:?}")))?;
        let target = format!("{folder}/{sha256}.{extension}");
        if !self.layout.storage().exists(&target).await? {
            self.layout.storage().upload(file, &target).await?;
        }
        Ok(target)
    }

    /// Where the archive keeps a record file: the folder of the Parquet files of its
    /// pseudonymised rows, under the SHA-256 of the bytes sent (so a file sent again is still
    /// recognised).
    fn archived_records(&self, sha256: &str) -> Result<String> {
        let folder = self
            .layout
            .archive_folder(sha256)
            .ok_or_else(|| Error::Internal(format!("not a SHA-256: {sha256:?}")))?;
        Ok(format!("{folder}/{sha256}.parquet"))
    }

    /// The commit lock: one commit (or upkeep) at a time per machine.
    pub(crate) async fn lock(&self) -> Result<File> {
        self.layout.storage().lock("commit.lock").await
    }
}

/// The Delta type a column of khoso's Arrow schemas is stored as.
fn delta_type(arrow: &ArrowType) -> DeltaType {
    match arrow {
        ArrowType::Int64 => DeltaType::LONG,
        ArrowType::Float64 => DeltaType::DOUBLE,
        ArrowType::Boolean => DeltaType::BOOLEAN,
        ArrowType::Timestamp(..) => DeltaType::TIMESTAMP,
        _ => DeltaType::STRING,
    }
}

/// A DataFusion session whose queries yield often and whose growing functions are bounded
/// (see [`crate::bounds`]), under a user's query `limits` when given (a memory pool of its own
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
        .with_physical_optimizer_rule(Arc::new(crate::bounds::YieldEverywhere));
    if let Some(limits) = limits {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(crate::engine::query_memory(limits.memory_bytes))
            .build_arc()?;
        builder = builder
            .with_runtime_env(runtime)
            .with_physical_optimizer_rule(Arc::new(crate::engine::Deadline {
                timeout: limits.timeout,
            }));
    }
    let mut state = builder.build();
    if let Some(cluster) = cluster {
        state = cluster.upgrade(state)?;
    }
    let bounded = crate::bounds::bounded_functions(state.scalar_functions().values(), crate::bounds::MAX_CALL_BYTES);
    for function in bounded {
        state.register_udf(Arc::new(function))?;
    }
    state.register_function_rewrite(Arc::new(crate::bounds::BoundedConcatRewrite::new(
        crate::bounds::MAX_CALL_BYTES,
    )))?;
    let ctx = SessionContext::new_with_state(state);
    catalogue::read_as(&ctx, reader)?;
    Ok(ctx)
}

/// Times a KPI refresh that lost the race to another process's looks again.
const KPI_REFRESH_ATTEMPTS: usize = 8;

/// Fact-table commits the repair of unrecorded submissions looks back at (see
/// [`Warehouse::recover`]).
const COMMITS_RECOVERED: u64 = 20;

/// The submissions a fact-table commit (its log file's lines) says it wrote.
fn committed_submissions(commit: &[u8]) -> Vec<Submission> {
    let info = serde_json::Deserializer::from_slice(commit)
        .into_iter::<serde_json::Value>()
        .flatten()
        .find_map(|action| action.get("commitInfo").cloned());
    let Some(info) = info else {
        return Vec::new();
    };
    match (info.get(SUBMISSIONS_METADATA), info.get(SUBMISSION_METADATA)) {
        (Some(list), _) => serde_json::from_value(list.clone()).unwrap_or_default(),
        (None, Some(one)) => serde_json::from_value(one.clone()).into_iter().collect(),
        (None, None) => Vec::new(),
    }
}

/// The ids of submissions.
fn submission_ids(submissions: &[Submission]) -> HashSet<String> {
    submissions.iter().map(|s| s.submission_id.clone()).collect()
}

/// The application id under which a submission's fact-table commit is recorded.
fn recorded_commit(submission: &Submission) -> String {
    format!("khoso.{}.{}", fact_table(submission.kind), submission.table_version)
}

/// Whether a commit failed because another writer changed what it rests on.
fn is_conflict(error: &deltalake::DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        error,
        deltalake::DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)
        }
    )
}

/// Whether an append failed because another process appended under the same application id
/// (recorded the same commit's submissions, decided on the same file).
pub(crate) fn is_recorded_already(error: &deltalake::DeltaTableError) -> bool {
    use deltalake::kernel::transaction::{CommitConflictError, TransactionError};
    matches!(
        error,
        deltalake::DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction)
        }
    )
}

/// The rows a commit writes: a batch in memory, or the actions adding the data files a record
/// file's rows were written to.
enum Rows {
    Batch(RecordBatch),
    Files(Vec<deltalake::kernel::Action>),
}

/// Every KPI value at one state of the warehouse, with the submissions of that state.
#[derive(Debug, Clone)]
pub struct KpiSnapshot {
    /// The tables' versions and the metrics fingerprint the values were computed from.
    pub tag: String,
    /// Every KPI × dimension × unit × school year, in file order of the KPIs.
    pub rows: Vec<KpiRow>,
    /// Every submission up to that state, oldest first.
    pub submissions: Vec<Submission>,
}

/// Batches as typed rows, by way of Arrow's JSON writer (column names are field names).
pub(crate) fn rows_of<T: serde::de::DeserializeOwned>(batches: &[RecordBatch], table: &str) -> Result<Vec<T>> {
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let json = writer.into_inner();
    if json.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&json).map_err(|e| Error::Internal(format!("reading {table}: {e}")))
}

/// The SHA-256 of a file, read in blocks (never held in memory whole).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(id: &str, supersedes: Option<&str>) -> Submission {
        Submission {
            submission_id: id.to_string(),
            kind: ReportKind::School,
            province_code: Some("01".parse().expect("code")),
            school_year: "2024-2025".parse().expect("year"),
            rows: 3,
            sha256: "ab".repeat(32),
            file_name: format!("{id}.csv"),
            uploaded_by: "cli".to_string(),
            uploaded_at: 1,
            table_version: 1,
            supersedes: supersedes.map(str::to_string),
        }
    }

    /// A table made before a column joined its schema (here `submissions` without `supersedes`)
    /// gains the column when the warehouse opens: its rows read as null, new rows carry it.
    #[tokio::test]
    async fn a_table_made_before_a_column_was_added_gains_it_and_its_old_rows_read_null() {
        let dir = tempfile::tempdir().expect("tempdir");
        let full = Submission::to_batch(&[submission("old", Some("older"))]).expect("batch");
        let kept: Vec<usize> = (0..full.num_columns())
            .filter(|&i| full.schema().field(i).name() != "supersedes")
            .collect();
        let folder = dir.path().join("tables").join(SUBMISSIONS);
        std::fs::create_dir_all(&folder).expect("folder");
        let url = url::Url::from_directory_path(&folder).expect("url");
        DeltaTable::try_from_url(url)
            .await
            .expect("table")
            .write(vec![full.project(&kept).expect("older columns")])
            .with_save_mode(SaveMode::Append)
            .await
            .expect("an older table");

        let warehouse = Warehouse::init(dir.path()).await.expect("opens");
        warehouse
            .record_submissions(&[submission("new", Some("old"))])
            .await
            .expect("a row with the column");
        let mut read = warehouse.submissions().await.expect("read");
        read.sort_by(|a, b| a.submission_id.cmp(&b.submission_id));
        let ids: Vec<(&str, Option<&str>)> = read
            .iter()
            .map(|s| (s.submission_id.as_str(), s.supersedes.as_deref()))
            .collect();
        assert_eq!(ids, [("new", Some("old")), ("old", None)]);
        // Opening again changes nothing.
        let version = warehouse.latest_version(SUBMISSIONS).await.expect("version");
        let again = Warehouse::open(dir.path()).await.expect("opens again");
        assert_eq!(again.latest_version(SUBMISSIONS).await.expect("version"), version);
    }
}
