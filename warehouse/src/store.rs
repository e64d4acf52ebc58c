//! The warehouse handle: its place, its Delta tables opened (made and given new columns where an
//! earlier khoso left them without), their versions, and the commit lock. Every room extends
//! [`Warehouse`] with what it does (sessions in `query`, the commit in `intake`, the refresh in
//! `kpi`, …); this file uses only the rooms below them: `place`, `tables`, and the KPI definitions
//! and cluster settings it holds.
//!
//! Where each file lives is [`crate::place::layout::Layout`]'s business; which tables there are,
//! [`crate::tables::catalogue`]'s.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use datafusion::prelude::{Expr, SessionContext, cast, col};
use deltalake::kernel::DataType as DeltaType;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::TryStreamExt;

use crate::kpi::metrics::Metrics;
use crate::place::layout::Layout;
use crate::place::storage::Storage;
use crate::query::cluster::Cluster;

use crate::tables::catalogue::{self};
use crate::tables::rows::APPROVALS;
use crate::tables::schemas::SUBMISSIONS;
use crate::tables::stored::StoredRow;
use crate::{Error, Result};

/// Versions to read tables at, by table name; a table not named is read at its latest version.
pub type TableVersions = BTreeMap<String, u64>;

/// A warehouse directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    pub(crate) layout: Layout,
    /// The KPIs and views, once attached with [`Warehouse::with_metrics`].
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Set once this handle has repaired what a killed process may have left unrecorded.
    pub(crate) recovered: Arc<AtomicBool>,
    /// Each table as last loaded at its latest version: the next read of a newer version
    /// replays only the commits in between, not the whole log.
    pub(crate) loaded: Arc<std::sync::Mutex<HashMap<String, DeltaTable>>>,
    /// Each table's latest version as last seen: the next look lists only the commits after it.
    pub(crate) seen: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    /// The Ballista cluster queries and the KPI refresh run on, once attached with
    /// [`Warehouse::with_cluster`]; this process otherwise.
    pub(crate) cluster: Option<Cluster>,
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
        crate::intake::pseudonym::Pseudonyms::create(&self.layout).await?;
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
    /// default: see [`crate::tables::scan::Stated`]) where the log says otherwise.
    async fn state_columns(&self, name: &str) -> Result<()> {
        use deltalake::kernel::MetadataValue;
        let logged = |table: &DeltaTable, stated: &crate::tables::scan::Stated| -> Result<bool> {
            let snapshot = table.snapshot()?;
            let schema = snapshot.schema();
            let logged = schema.field(stated.name()).map(|f| f.metadata());
            Ok(stated.metadata().iter().all(
                |(key, value)| matches!(logged.and_then(|m| m.get(key)), Some(MetadataValue::String(v)) if v == value),
            ))
        };
        for stated in crate::tables::schemas::stated_columns(name) {
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
        let _turn = crate::query::engine::table_load_turn()
            .acquire()
            .await
            .map_err(|e| Error::failed("a table load's turn", e))?;
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
        while let Some(meta) = listing.try_next().await.map_err(crate::place::storage::object_error)? {
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

/// Whether a commit failed because another writer changed what it rests on.
pub(crate) fn is_conflict(error: &deltalake::DeltaTableError) -> bool {
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
    serde_json::from_slice(&json).map_err(|e| Error::failed(format!("reading {table}"), e))
}

impl Warehouse {
    /// Every row of a table of `T` (at a version, the latest if none), those `filter` keeps,
    /// ordered by the `order` columns, ascending.
    pub(crate) async fn read_rows<T: StoredRow>(
        &self,
        table_name: &str,
        version: Option<u64>,
        filter: Option<Expr>,
        order: &[&str],
    ) -> Result<Vec<T>> {
        let ctx = SessionContext::new();
        let table = self.table(table_name, version).await?;
        table.update_datafusion_session(&ctx.state())?;
        let mut frame = ctx.read_table(crate::tables::scan::DeltaFiles::provider(&table)?)?;
        if let Some(filter) = filter {
            frame = frame.filter(filter)?;
        }
        // Times are read as the microseconds their fields hold.
        let columns: Vec<Expr> = T::schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                ArrowType::Timestamp(..) => cast(col(f.name()), ArrowType::Int64).alias(f.name()),
                _ => col(f.name()),
            })
            .collect();
        let batches = frame
            .select(columns)?
            .sort(order.iter().map(|name| col(*name).sort(true, true)).collect())?
            .collect()
            .await?;
        rows_of(&batches, table_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::rows::Submission;
    use crate::tables::stored::StoredRow;
    use ingest::ReportKind;

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
