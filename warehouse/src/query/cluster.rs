//! The work on Apache Ballista: a scheduler and executors started from khoso's binary, and the
//! sessions that send their queries there.
//!
//! A session made with a [`Cluster`] plans a query here (the SQL guard, the reader's catalogue,
//! the bounded functions) and sends the optimised logical plan to the scheduler, which cuts it
//! into stages that the executors run, reading the tables from the warehouse's storage. What the
//! plan names travels with it:
//! - a Delta table ([`DeltaFiles`]) as the version's frozen file list ([`FrozenFiles`]), so that
//!   no node opens the log again and every node reads the same version;
//! - a reference table (an in-memory table) as its rows;
//! - views are already part of the plan; the bounded functions and `||` go by name, and every
//!   node has them ([`node_state`]), so a limit holds wherever the function runs.
//!
//! Every node is started with the warehouse's location and storage options, from which its
//! object store is built ([`Storage::register_in`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaLogicalExtensionCodec;
use ballista_core::serde::protobuf::CancelJobParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::Session;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{FunctionRegistry, TaskContext};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, PlanProperties};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::{Stream, StreamExt};

use crate::place::storage::Storage;
use crate::tables::scan::{DeltaFiles, FrozenFiles};
use crate::{Error, Result};

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// A Ballista scheduler that runs queries: `df://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    host: String,
    port: u16,
}

impl Cluster {
    /// The scheduler at `url` (`df://host:port`, the port 50050 when left out).
    pub fn parse(url: &str) -> Result<Self> {
        let refused = |why: &str| Error::Refused(format!("--cluster {url:?}: {why} (write df://HOST:PORT)"));
        let parsed = url::Url::parse(url).map_err(|e| refused(&e.to_string()))?;
        if parsed.scheme() != "df" {
            return Err(refused("a Ballista scheduler's address starts with df://"));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| refused("no host"))?;
        Ok(Self {
            host: host.to_string(),
            port: parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT),
        })
    }

    /// The scheduler's gRPC address, as Ballista's client takes it.
    fn grpc_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// `state` made to send its queries to this cluster: planned here, run there. Ballista
    /// puts DataFusion's own functions back in the state; the caller registers its own after.
    pub fn upgrade(&self, state: SessionState) -> Result<SessionState> {
        let state = state.upgrade_for_ballista(self.grpc_url())?;
        let planner = ClusterPlanner {
            ballista: Arc::clone(state.query_planner()),
            scheduler: self.grpc_url(),
        };
        let mut state = SessionStateBuilder::new_from_existing(state)
            .with_query_planner(Arc::new(planner))
            .build();
        // The scheduler plans with the session it builds for khoso ([`node_state`]), not with the
        // adaptive planner's own rules (new in Ballista 55), which leave a plan no task can
        // finish (see [`EmptyAsMemory`]).
        state
            .config_mut()
            .options_mut()
            .set(BALLISTA_ADAPTIVE_PLANNER_ENABLED, "false")?;
        Ok(state)
    }

    /// The configuration a session sending queries to a cluster starts from.
    pub fn session_config(config: SessionConfig) -> SessionConfig {
        config.with_ballista_logical_extension_codec(Arc::new(TableCodec::default()))
    }
}

impl std::fmt::Display for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

/// What Ballista's client says when the cluster, not the query, failed: the scheduler cannot be
/// reached, or no executor is left to run the query's tasks.
const TROUBLE: [&str; 5] = [
    "tonic::transport",
    "Error connecting",
    "executors were lost",
    "no executors remain",
    "Failed to connect",
];

/// The cluster's failure in `error`, when it is one.
pub(crate) fn trouble(error: &DataFusionError) -> Option<Error> {
    let message = error.to_string();
    TROUBLE
        .iter()
        .any(|sign| message.contains(sign))
        .then(|| Error::Cluster(message))
}

/// Ballista's planner, with two rules of khoso's:
/// - a plan Ballista cannot send (`DESCRIBE`, …) runs on this node, as without a cluster;
/// - a query on the cluster is cancelled there when its reader stops reading before the end (a
///   time limit, a client gone, shutdown): an abandoned query does not keep the executors busy.
#[derive(Debug)]
struct ClusterPlanner {
    ballista: Arc<dyn QueryPlanner + Send + Sync>,
    scheduler: String,
}

#[async_trait::async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !runs_on_cluster(plan) {
            return DefaultPhysicalPlanner::default()
                .create_physical_plan(plan, session)
                .await;
        }
        let planned = self.ballista.create_physical_plan(plan, session).await?;
        Ok(match planned.is::<DistributedQueryExec<LogicalPlanNode>>() {
            true => Arc::new(CancelledWhenDropped {
                properties: Arc::clone(planned.properties()),
                query: planned,
                scheduler: self.scheduler.clone(),
            }),
            false => planned,
        })
    }
}

/// Whether Ballista can run `plan`: it can be sent (not `DESCRIBE`, …) and its executors can run
/// every part of it (not a recursive query, whose work table they refuse).
fn runs_on_cluster(plan: &LogicalPlan) -> bool {
    let mut recursive = false;
    let walked = plan.apply_with_subqueries(|node| {
        recursive |= matches!(node, LogicalPlan::RecursiveQuery(_));
        Ok(match recursive {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    walked.is_ok() && !recursive && LogicalPlanNode::try_from_logical_plan(plan, &TableCodec::default()).is_ok()
}

/// A query running on the cluster, cancelled there when its stream is dropped before its end.
#[derive(Debug)]
struct CancelledWhenDropped {
    query: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    scheduler: String,
}

impl DisplayAs for CancelledWhenDropped {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CancelledWhenDropped")
    }
}

impl ExecutionPlan for CancelledWhenDropped {
    fn name(&self) -> &str {
        "CancelledWhenDropped"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.query]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let query = children
            .pop()
            .filter(|_| children.is_empty())
            .ok_or_else(|| DataFusionError::Internal("a query on the cluster has one input".into()))?;
        Ok(Arc::new(Self {
            properties: Arc::clone(query.properties()),
            query,
            scheduler: self.scheduler.clone(),
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let stream = self.query.execute(partition, context)?;
        Ok(Box::pin(CancelOnDrop {
            stream,
            query: Arc::clone(&self.query),
            scheduler: self.scheduler.clone(),
            running: Some(Running::new()),
        }))
    }
}

/// The stream of a query on the cluster; dropped before its end, it asks the scheduler to
/// cancel the query's job.
struct CancelOnDrop {
    stream: SendableRecordBatchStream,
    query: Arc<dyn ExecutionPlan>,
    scheduler: String,
    /// Until the query has ended or been cancelled.
    running: Option<Running>,
}

/// Queries on a cluster this process has not seen end or be cancelled yet.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// One of [`RUNNING`].
struct Running;

impl Running {
    fn new() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits, at most `limit`, until every query this process sent to a cluster has ended or been
/// cancelled there: a command that stops a query at its time limit and exits does not leave
/// it running on the cluster.
pub async fn settle(limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while RUNNING.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Stream for CancelOnDrop {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.stream.poll_next_unpin(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            self.running = None;
        }
        next
    }
}

impl RecordBatchStream for CancelOnDrop {
    fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let job = self
            .query
            .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
            .and_then(DistributedQueryExec::job_id);
        let (Some(job), Some(running), Ok(runtime)) = (job, self.running.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let scheduler = self.scheduler.clone();
        runtime.spawn(async move {
            let _running = running;
            let cancelled = match SchedulerGrpcClient::connect(scheduler).await {
                Ok(mut client) => client
                    .cancel_job(CancelJobParams {
                        job_id: job.to_string(),
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match cancelled {
                Ok(()) => tracing::info!(%job, "query stopped before its end: cancelled on the cluster"),
                Err(e) => tracing::warn!(%job, error = %e, "a query stopped before its end could not be cancelled on the cluster"),
            }
        });
    }
}

/// Ballista's port for a scheduler.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How often an executor tells the scheduler it is alive.
const HEARTBEAT_SECONDS: u64 = 5;

/// Runs a Ballista scheduler on `bind` until the process ends. It plans the queries sessions
/// send it over `storage`'s tables, and counts an executor silent for `executor_timeout` as
/// lost: its tasks run again elsewhere, and a query left without executors fails.
pub async fn run_scheduler(bind: SocketAddr, executor_timeout: Duration, storage: Storage) -> Result<()> {
    let timeout = executor_timeout.as_secs();
    if timeout <= HEARTBEAT_SECONDS {
        return Err(Error::Refused(format!(
            "an executor's timeout must be longer than its heartbeat, {HEARTBEAT_SECONDS} s"
        )));
    }
    let mut config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        executor_timeout_seconds: timeout,
        no_executors_grace_period_seconds: timeout,
        expire_dead_executor_interval_seconds: HEARTBEAT_SECONDS,
        override_logical_codec: Some(Arc::new(TableCodec::default())),
        ..SchedulerConfig::default()
    };
    config.override_session_builder = Some(Arc::new(move |config: SessionConfig| {
        node_state(config, &storage).map_err(|e| DataFusionError::External(Box::new(e)))
    }));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista_error)?;
    start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(ballista_error)
}

/// Where an executor listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ExecutorPlace {
    /// The scheduler to register with.
    pub scheduler: Cluster,
    /// The address of its Arrow Flight service (other executors and clients fetch results
    /// there); its gRPC service takes the next port.
    pub bind: SocketAddr,
    /// The name other machines reach it by, when not the bound address.
    pub external_host: Option<String>,
    /// Concurrent tasks (the machine's cores when not given).
    pub tasks: Option<usize>,
    /// Bytes of memory its tasks may hold together (a share of the machine's when not given).
    pub memory_bytes: Option<u64>,
}

/// Runs a Ballista executor until the process ends, reading `storage`'s tables with khoso's
/// functions.
pub async fn run_executor(place: ExecutorPlace, storage: Storage) -> Result<()> {
    // Shuffle files and spills: this machine's, never the warehouse's folder.
    let work = std::env::temp_dir()
        .join("khoso-executor")
        .join(place.bind.port().to_string());
    std::fs::create_dir_all(&work)?;
    let registry = BallistaFunctionRegistry::from(&node_state(SessionConfig::new_with_ballista(), &storage)?);
    let runtime_storage = storage.clone();
    let runtime_work = work.clone();
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        bind_host: place.bind.ip().to_string(),
        external_host: place.external_host,
        port: place.bind.port(),
        grpc_port: place.bind.port().checked_add(1).ok_or_else(|| {
            Error::Refused(format!(
                "--bind {}: the next port is the executor's gRPC port",
                place.bind
            ))
        })?,
        scheduler_host: place.scheduler.host,
        scheduler_port: place.scheduler.port,
        vcores: place.tasks.unwrap_or(defaults.vcores),
        work_dir: Some(work.to_string_lossy().into_owned()),
        memory_pool_size: place.memory_bytes,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(TableCodec::default())),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            node_runtime(&runtime_storage, &runtime_work).map_err(|e| DataFusionError::External(Box::new(e)))
        })),
        ..defaults
    };
    start_executor_process(Arc::new(config)).await.map_err(ballista_error)
}

fn ballista_error(error: ballista_core::error::BallistaError) -> Error {
    Error::failed("the cluster", error)
}

/// The runtime of a cluster node: the warehouse's object store, spills in `work`.
fn node_runtime(storage: &Storage, work: &std::path::Path) -> Result<Arc<RuntimeEnv>> {
    let runtime = RuntimeEnvBuilder::new().with_temp_file_path(work).build()?;
    storage.register_in(&runtime)?;
    Ok(Arc::new(runtime))
}

/// The session of a cluster node: DataFusion's defaults, the warehouse's store, and khoso's
/// bounds (yield points, so an executor stops a cancelled job's task at once; the bounded
/// functions under the names the plans it receives call them by).
fn node_state(config: SessionConfig, storage: &Storage) -> Result<SessionState> {
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(node_runtime(storage, &std::env::temp_dir())?)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(EmptyAsMemory))
        .with_physical_optimizer_rule(Arc::new(crate::query::bounds::YieldEverywhere))
        .build();
    let bounded = crate::query::bounds::bounded_functions(
        state.scalar_functions().values(),
        crate::query::bounds::MAX_CALL_BYTES,
    );
    for function in bounded {
        state.register_udf(Arc::new(function))?;
    }
    state.register_udf(
        crate::query::bounds::BoundedConcatRewrite::new(crate::query::bounds::MAX_CALL_BYTES).function(),
    )?;
    Ok(state)
}

/// Plans an empty input (a table without files, `WHERE false`) as an empty in-memory source.
///
/// The scheduler restricts each task's plan to its partitions and sums the operators' metrics
/// of a stage task by task, operator by operator. An `EmptyExec` has no metrics, and the stand-in
/// Ballista puts in its place for a task that reads none of its partitions has: the tasks of one
/// stage then report different numbers of operators, the scheduler refuses their statuses, and
/// the query never ends. An in-memory source has metrics in every task.
#[derive(Debug)]
struct EmptyAsMemory;

impl PhysicalOptimizerRule for EmptyAsMemory {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.is::<EmptyExec>() {
                return Ok(Transformed::no(node));
            }
            let partitions = node.output_partitioning().partition_count();
            let source = MemorySourceConfig::try_new(&vec![Vec::new(); partitions], node.schema(), None)?;
            Ok(Transformed::yes(DataSourceExec::from_data_source(source)))
        })
        .data()
    }

    fn name(&self) -> &str {
        "khoso_empty_as_memory"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How a plan's tables travel to the scheduler; Ballista's codec for its own nodes and file
/// formats, functions by name.
#[derive(Debug, Default)]
pub struct TableCodec {
    ballista: BallistaLogicalExtensionCodec,
}

/// The first byte of an encoded table: which kind it is.
const DELTA_FILES: u8 = b'D';
const ROWS: u8 = b'M';

impl LogicalExtensionCodec for TableCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DfResult<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let undecodable = |why: String| DataFusionError::Internal(format!("table {table_ref} from the client: {why}"));
        match buf.split_first() {
            Some((&DELTA_FILES, frozen)) => {
                let frozen: FrozenFiles = serde_json::from_slice(frozen).map_err(|e| undecodable(e.to_string()))?;
                let files = DeltaFiles::thaw(schema, frozen).map_err(|e| undecodable(e.to_string()))?;
                Ok(Arc::new(files))
            }
            Some((&ROWS, stream)) => {
                let reader = StreamReader::try_new(stream, None)?;
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
            }
            _ => Err(undecodable("not a table khoso sends".into())),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let Some(files) = node.downcast_ref::<DeltaFiles>() {
            buf.push(DELTA_FILES);
            serde_json::to_writer(buf, files.frozen()).map_err(|e| DataFusionError::External(Box::new(e)))?;
            return Ok(());
        }
        if let Some(table) = node.downcast_ref::<MemTable>() {
            buf.push(ROWS);
            let mut writer = StreamWriter::try_new(buf, &table.schema())?;
            for partition in &table.batches {
                let batches = partition
                    .try_read()
                    .map_err(|_| DataFusionError::Internal(format!("table {table_ref} is being written")))?;
                for batch in batches.iter() {
                    writer.write(batch)?;
                }
            }
            writer.finish()?;
            return Ok(());
        }
        Err(DataFusionError::NotImplemented(format!(
            "table {table_ref} cannot be sent to the cluster"
        )))
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> DfResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

/// DataFusion's errors are the engine's, or the cluster's when it could not run a query.
impl From<DataFusionError> for Error {
    fn from(error: DataFusionError) -> Self {
        trouble(&error).unwrap_or(Error::DataFusion(error))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::bytes::{
        logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
    };

    use super::*;

    #[tokio::test]
    async fn a_plan_sent_to_the_scheduler_reads_what_it_reads_here() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = crate::tables::scan::tests::sample(dir.path()).await;
        let here = SessionContext::new();
        here.register_table("t", DeltaFiles::provider(&table).expect("provider"))
            .expect("register");
        for (name, reference) in crate::tables::reference::reference_tables().expect("reference tables") {
            here.register_table(name, reference).expect("register");
        }
        // What the scheduler has: no table, no log, only the plan's bytes.
        let there = SessionContext::new();
        let codec = TableCodec::default();
        for sql in [
            "SELECT * FROM t ORDER BY school_year, province_code, pupils",
            "SELECT province_code, sum(pupils) FROM t WHERE school_year = '2024-2025' GROUP BY 1 ORDER BY 1",
            "SELECT p.name_en, count(*) FROM t JOIN provinces p ON p.code = t.province_code \
             WHERE p.valid_to IS NULL OR t.province_code = '01' GROUP BY 1 ORDER BY 1",
            "SELECT count(*) FROM t",
        ] {
            let plan = here.sql(sql).await.expect(sql).into_optimized_plan().expect(sql);
            let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &codec).expect("encoded");
            let decoded =
                logical_plan_from_bytes_with_extension_codec(&bytes, &there.task_ctx(), &codec).expect("decoded");
            let ran_there = there
                .execute_logical_plan(decoded)
                .await
                .expect(sql)
                .collect()
                .await
                .expect(sql);
            let ran_here = here.sql(sql).await.expect(sql).collect().await.expect(sql);
            assert!(!ran_here.is_empty(), "{sql}");
            assert_eq!(
                pretty_format_batches(&ran_there).expect("format").to_string(),
                pretty_format_batches(&ran_here).expect("format").to_string(),
                "{sql}"
            );
        }
    }

    #[test]
    fn a_scheduler_is_named_by_a_df_url() {
        let cluster = Cluster::parse("df://10.0.0.10:50070").expect("parsed");
        assert_eq!(cluster.to_string(), "df://10.0.0.10:50070");
        assert_eq!(cluster.grpc_url(), "http://10.0.0.10:50070");
        assert_eq!(
            Cluster::parse("df://scheduler").expect("parsed").to_string(),
            "df://scheduler:50050"
        );
        for wrong in ["http://scheduler:50050", "scheduler:50050", "df://:50050", ""] {
            let refused = Cluster::parse(wrong).expect_err(wrong).to_string();
            assert!(refused.contains("df://HOST:PORT"), "{wrong}: {refused}");
        }
    }

    #[test]
    fn the_clusters_failures_are_told_from_the_querys() {
        let lost = DataFusionError::Execution(
            "Job 1 failed: all executors were lost and no executor re-registered within 10s".into(),
        );
        assert!(matches!(trouble(&lost), Some(Error::Cluster(_))));
        let refused = DataFusionError::Execution("Job 2 failed: repeat would make 9000 MB of text".into());
        assert!(trouble(&refused).is_none());
        assert!(matches!(Error::from(lost), Error::Cluster(_)));
    }

    #[tokio::test]
    async fn a_version_travels_as_its_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = crate::tables::scan::tests::sample(dir.path()).await;
        let files = DeltaFiles::provider(&table).expect("provider");
        let codec = TableCodec::default();
        let mut buf = Vec::new();
        codec
            .try_encode_table_provider(&TableReference::bare("t"), Arc::clone(&files), &mut buf)
            .expect("encoded");
        let decoded = codec
            .try_decode_table_provider(
                &buf,
                &TableReference::bare("t"),
                files.schema(),
                &SessionContext::new().task_ctx(),
            )
            .expect("decoded");
        let (sent, received) = (
            files.downcast_ref::<DeltaFiles>().expect("DeltaFiles"),
            decoded.downcast_ref::<DeltaFiles>().expect("DeltaFiles"),
        );
        assert_eq!(sent.frozen(), received.frozen());
        assert_eq!(sent.frozen().files.len(), 6, "the replaced slice's file is not sent");
        // Another provider is not sent as something it is not.
        let view = SessionContext::new().sql("SELECT 1").await.expect("plan").into_view();
        assert!(
            codec
                .try_encode_table_provider(&TableReference::bare("v"), view, &mut Vec::new())
                .is_err()
        );
    }
}
