//! Where query work runs: a tokio runtime of its own, with a bounded number of threads, apart
//! from the threads that serve pages, sign-ins and uploads. A query's plan and its stream run
//! there; the caller gets the batches through a small channel, and dropping the caller's stream
//! (a time limit, a client gone, shutdown) aborts the work at its next yield point. Operators
//! yield often: every operator's output is wrapped so it spends tokio's cooperative budget
//! (see [`crate::query::bounds`]), so an abort takes effect within milliseconds even inside a cross
//! join that produces batches without ever waiting on its input.
//!
//! The runtime lives for the whole process and is never waited on: shutting the server down
//! does not wait for a query to finish. Memory is bounded per query and, for all queries
//! together, per process ([`query_memory`]).

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use tracing::Instrument;

use crate::{Error, Result};

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// The stack of each query thread. Planning and evaluating an expression recurse on its depth,
/// which the guard bounds ([`crate::query::guard::QueryShape`]); this leaves a wide margin above the
/// deepest expression it lets through. Only the pages a thread touches are ever committed.
const QUERY_THREAD_STACK: usize = 256 * 1024 * 1024;

/// Threads the query runtime keeps for blocking work: reading files, and Delta's log replay,
/// which waits in a blocking thread for reads that themselves need one. Table loads are held
/// well below it ([`TABLE_LOADS`]), so that the waiting ones never take every thread the reads
/// need (with one thread per load waiting and none left to read, every query of the server
/// would stall).
const BLOCKING_THREADS: usize = 64;

/// Tables being loaded (their logs replayed) at once, process-wide; the others wait their turn.
pub const TABLE_LOADS: usize = 16;

/// The turns of table loads ([`TABLE_LOADS`]).
pub fn table_load_turn() -> &'static tokio::sync::Semaphore {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(TABLE_LOADS);
    &TURNS
}

/// Batches a query may have produced ahead of its reader.
const BATCHES_AHEAD: usize = 2;

/// The query runtime: as many threads as cores (at least two), named `khoso-query`.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(BLOCKING_THREADS.max(threads * 4))
            .thread_name("khoso-query")
            .thread_stack_size(QUERY_THREAD_STACK)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("the query runtime cannot start: {e}"))
    })
}

/// A handle to the query runtime, to run a server whose every task is query work (the
/// PostgreSQL wire protocol) there.
pub fn handle() -> Handle {
    runtime().handle().clone()
}

/// The memory a query may hold: its own limit, and a share of the process's ceiling
/// ([`process_memory`]), so that many queries at once, each within its limit, cannot together
/// exhaust the server. Past either, operators that can spill do; others fail with "Resources
/// exhausted".
pub fn query_memory(bytes: usize) -> Arc<dyn MemoryPool> {
    let own = TrackConsumersPool::new(GreedyMemoryPool::new(bytes), NonZeroUsize::MIN.saturating_add(4));
    Arc::new(QueryMemory {
        own: Arc::new(own),
        server: process_memory(),
    })
}

/// The process's memory ceiling, set once before the first work ([`set_memory_ceiling`]).
static CEILING: OnceLock<usize> = OnceLock::new();

/// Sets the process's memory ceiling (`--max-memory-mb`); false when work has already drawn on
/// the ceiling it had.
pub fn set_memory_ceiling(bytes: usize) -> bool {
    CEILING.set(bytes).is_ok()
}

/// The process's memory ceiling: as set, else half the machine's memory (`MemTotal` of
/// `/proc/meminfo`), or 8 GB where that cannot be read.
pub fn memory_ceiling() -> usize {
    *CEILING.get_or_init(|| {
        let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        });
        total_kb.map_or(8 << 30, |kb| kb * 1024 / 2)
    })
}

/// The one budget every piece of work draws its memory from: query pools, Excel downloads,
/// uploads being read, charts being rasterised. Work that cannot have its share is refused
/// ([`reserve`]) rather than let the process grow past the ceiling.
pub fn process_memory() -> Arc<dyn MemoryPool> {
    static PROCESS: OnceLock<Arc<dyn MemoryPool>> = OnceLock::new();
    Arc::clone(PROCESS.get_or_init(|| Arc::new(GreedyMemoryPool::new(memory_ceiling()))))
}

/// Takes `bytes` of the process's ceiling for some work (named in both languages in the
/// refusal) until the reservation is dropped; refused with [`Error::Busy`] when the running work
/// holds too much of it.
pub fn reserve(work_vi: &str, work_en: &str, bytes: usize) -> Result<MemoryReservation> {
    let pool = process_memory();
    let reservation = MemoryConsumer::new(work_en).register(&pool);
    reservation.try_grow(bytes).map_err(|_| {
        let (held, ceiling, asked) = (pool.reserved() >> 20, memory_ceiling() >> 20, (bytes >> 20).max(1));
        Error::Busy(format!(
            "Máy chủ đang dùng gần hết bộ nhớ cho phép ({held} / {ceiling} MB): {work_vi} ({asked} MB) phải chờ; \
             hãy thử lại sau ít phút. / The server's memory ceiling is nearly reached ({held} of {ceiling} MB held \
             by running work): {work_en} ({asked} MB) must wait; try again in a moment."
        ))
    })?;
    Ok(reservation)
}

/// A query's memory pool: every reservation counts against the query's own pool and the
/// process's.
#[derive(Debug)]
struct QueryMemory {
    own: Arc<dyn MemoryPool>,
    server: Arc<dyn MemoryPool>,
}

impl std::fmt::Display for QueryMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} within {}", self.own, self.server)
    }
}

impl MemoryPool for QueryMemory {
    fn name(&self) -> &str {
        "khoso_query_memory"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.own.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.own.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.server.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.server.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> datafusion::error::Result<()> {
        self.own.try_grow(reservation, additional)?;
        self.server
            .try_grow(reservation, additional)
            .inspect_err(|_| self.own.shrink(reservation, additional))
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.own.memory_limit()
    }
}

/// Work on the query runtime, aborted when this handle is dropped.
struct Spawned<T>(JoinHandle<T>);

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Spawned<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(Error::from)
    }
}

/// Runs `work` on the query runtime and waits for it; dropping the returned future aborts it.
/// The work's events belong to the caller's span (its request, its command).
pub async fn run<F>(work: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Spawned(runtime().spawn(work.in_current_span())).await
}

/// Plans a query on the query runtime (`plan` returns its stream) and reads the stream there; the
/// batches come back through a channel. Dropping the returned stream aborts the work.
pub async fn stream<F>(plan: F) -> Result<SendableRecordBatchStream>
where
    F: Future<Output = Result<SendableRecordBatchStream>> + Send + 'static,
{
    let (schema_tx, schema_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel::<std::result::Result<RecordBatch, DataFusionError>>(BATCHES_AHEAD);
    let work = Spawned(
        runtime().spawn(
            async move {
                let mut stream = match plan.await {
                    Ok(stream) => stream,
                    Err(e) => {
                        schema_tx.send(Err(e)).ok();
                        return;
                    }
                };
                if schema_tx.send(Ok(stream.schema())).is_err() {
                    return;
                }
                while let Some(batch) = stream.next().await {
                    let failed = batch.is_err();
                    if batch_tx.send(batch).await.is_err() || failed {
                        return;
                    }
                }
            }
            .in_current_span(),
        ),
    );
    let schema = schema_rx
        .await
        .map_err(|_| Error::Internal("the query stopped before it was planned".into()))??;
    let batches = Received {
        batches: batch_rx,
        _work: work,
    };
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// Why a query stopped at its deadline: what every path says of it.
pub fn timed_out_message(timeout: Duration) -> String {
    format!(
        "the query ran longer than {} s and was stopped: narrow it (WHERE, LIMIT, fewer joins)",
        timeout.as_secs()
    )
}

/// Ends every stream of a plan at its deadline, whoever reads it and whether or not it is read:
/// the plan's root is wrapped ([`DeadlineExec`]) so that its stream is read on the query runtime
/// by a task that stops at the deadline, taken from when the stream starts. A cursor or a
/// suspended portal nobody fetches from, a download whose client stopped reading, a stream
/// dropped late: the work under them ends at the deadline all the same.
#[derive(Debug)]
pub struct Deadline {
    /// From a stream's start to its end.
    pub timeout: Duration,
}

impl PhysicalOptimizerRule for Deadline {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        if plan.is::<DeadlineExec>() {
            return Ok(plan);
        }
        Ok(Arc::new(DeadlineExec {
            properties: Arc::clone(plan.properties()),
            input: plan,
            timeout: self.timeout,
        }))
    }

    fn name(&self) -> &str {
        "khoso_deadline"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The root of a plan under a [`Deadline`].
#[derive(Debug)]
struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    timeout: Duration,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeadlineExec: {} s", self.timeout.as_secs())
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .filter(|_| children.is_empty())
            .ok_or_else(|| DataFusionError::Internal("a deadline has one input".into()))?;
        Ok(Arc::new(Self {
            properties: Arc::clone(input.properties()),
            input,
            timeout: self.timeout,
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let stream = self.input.execute(partition, context)?;
        Ok(until(stream, deadline, self.timeout))
    }
}

/// Reads `stream` on the query runtime until `deadline`, when it is dropped (its work with it)
/// and the reader gets the time limit's error; dropping the returned stream aborts it sooner.
fn until(
    stream: SendableRecordBatchStream,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let (batch_tx, batch_rx) = mpsc::channel::<std::result::Result<RecordBatch, DataFusionError>>(BATCHES_AHEAD);
    let work = Spawned(
        runtime().spawn(
            async move {
                let mut stream = stream;
                let read = async {
                    while let Some(batch) = stream.next().await {
                        let failed = batch.is_err();
                        if batch_tx.send(batch).await.is_err() || failed {
                            return;
                        }
                    }
                };
                if tokio::time::timeout_at(deadline, read).await.is_err() {
                    drop(stream);
                    let late = DataFusionError::Execution(timed_out_message(timeout));
                    batch_tx.try_send(Err(late)).ok();
                }
            }
            .in_current_span(),
        ),
    );
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        Received {
            batches: batch_rx,
            _work: work,
        },
    ))
}

/// The batches of a query running on the query runtime; dropping it aborts the query.
struct Received {
    batches: mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>,
    _work: Spawned<()>,
}

impl Stream for Received {
    type Item = std::result::Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.batches.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_holds_memory_within_its_own_limit_and_the_servers() {
        let server: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100));
        let query = |limit: usize| -> Arc<dyn MemoryPool> {
            Arc::new(QueryMemory {
                own: Arc::new(GreedyMemoryPool::new(limit)),
                server: Arc::clone(&server),
            })
        };
        let (a, b) = (query(80), query(80));
        let first = MemoryConsumer::new("first").register(&a);
        let second = MemoryConsumer::new("second").register(&b);
        first.try_grow(70).expect("within both");
        assert!(first.try_grow(20).is_err(), "past its own 80");
        assert!(second.try_grow(40).is_err(), "past the server's 100");
        assert_eq!(b.reserved(), 0, "a refused reservation leaves nothing behind");
        second.try_grow(30).expect("what the server has left");
        drop(first);
        second.try_grow(50).expect("the first query's memory came back");
        assert_eq!((b.reserved(), server.reserved()), (80, 80));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_nobody_reads_ends_at_its_deadline() {
        use datafusion::execution::session_state::SessionStateBuilder;
        use datafusion::prelude::SessionContext;

        let timeout = Duration::from_millis(300);
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(Deadline { timeout }))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let endless = "SELECT 1 AS n UNION ALL SELECT sum(a.value * b.value) FROM generate_series(1, 1000000) a, \
                       generate_series(1, 1000000) b";
        let mut stream = ctx
            .sql(endless)
            .await
            .expect("planned")
            .execute_stream()
            .await
            .expect("started");
        let first = stream.next().await.expect("a first batch").expect("its row");
        assert_eq!(first.num_rows(), 1);
        // Nobody reads past the first row until well after the deadline.
        tokio::time::sleep(timeout * 3).await;
        let rest = tokio::time::timeout(Duration::from_secs(1), async {
            let mut last = None;
            while let Some(batch) = stream.next().await {
                last = Some(batch);
            }
            last
        })
        .await
        .expect("the stream ended by itself");
        let error = rest.expect("an answer").expect_err("the deadline's error");
        assert!(error.to_string().contains("ran longer than"), "{error}");
        let plan = ctx
            .sql(endless)
            .await
            .expect("planned")
            .create_physical_plan()
            .await
            .expect("plan");
        assert_eq!(plan.name(), "DeadlineExec", "the root of every plan");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_on_the_query_threads_and_stops_when_dropped() {
        let name = run(async { std::thread::current().name().map(str::to_string) })
            .await
            .expect("ran");
        assert_eq!(name.as_deref(), Some("khoso-query"));

        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let endless = run(async move {
            loop {
                if alive_tx.send(()).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        let waited = tokio::time::timeout(Duration::from_millis(50), endless).await;
        assert!(waited.is_err(), "endless work does not finish");
        // Dropped: the task is aborted, its sender goes, and the channel closes.
        let closed = tokio::time::timeout(Duration::from_secs(1), async {
            while alive_rx.recv().await.is_some() {}
        })
        .await;
        assert!(closed.is_ok(), "the work stopped within a second of being dropped");
    }
}
