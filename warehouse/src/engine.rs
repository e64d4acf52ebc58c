//! Where query work runs: a tokio runtime of its own, with a bounded number of threads, apart
//! from the threads that serve pages, sign-ins and uploads. A query's plan and its stream run
//! there; the caller gets the batches through a small channel, and dropping the caller's stream
//! (a time limit, a client gone, shutdown) aborts the work at its next yield point. Operators
//! yield often: every operator's output is wrapped so it spends tokio's cooperative budget
//! (see [`crate::bounds`]), so an abort takes effect within milliseconds even inside a cross
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

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// The stack of each query thread. Planning and evaluating an expression recurse on its depth,
/// which the guard bounds ([`crate::guard::QueryShape`]); this leaves a wide margin above the
/// deepest expression it lets through. Only the pages a thread touches are ever committed.
const QUERY_THREAD_STACK: usize = 256 * 1024 * 1024;

/// Batches a query may have produced ahead of its reader.
const BATCHES_AHEAD: usize = 2;

/// The query runtime: as many threads as cores (at least two), named `khoso-query`.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(threads * 4)
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

/// The memory a query may hold: its own limit, and a share of one budget for every query of the
/// process (half the machine's memory), so that many queries at once, each within its limit,
/// cannot together exhaust the server. Past either, operators that can spill do; others fail
/// with "Resources exhausted".
pub fn query_memory(bytes: usize) -> Arc<dyn MemoryPool> {
    static SERVER: OnceLock<Arc<dyn MemoryPool>> = OnceLock::new();
    let server = SERVER.get_or_init(|| Arc::new(GreedyMemoryPool::new(server_memory_budget())));
    let own = TrackConsumersPool::new(GreedyMemoryPool::new(bytes), NonZeroUsize::MIN.saturating_add(4));
    Arc::new(QueryMemory {
        own: Arc::new(own),
        server: Arc::clone(server),
    })
}

/// Half the machine's memory (`MemTotal` of `/proc/meminfo`), or 8 GB where that cannot be read.
fn server_memory_budget() -> usize {
    let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<usize>().ok()
    });
    total_kb.map_or(8 << 30, |kb| kb * 1024 / 2)
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
        Pin::new(&mut self.0)
            .poll(cx)
            .map_err(|e| Error::Internal(format!("query work stopped: {e}")))
    }
}

/// Runs `work` on the query runtime and waits for it; dropping the returned future aborts it.
pub async fn run<F>(work: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Spawned(runtime().spawn(work)).await
}

/// Plans a query on the query runtime (`plan` returns its stream) and reads the stream there; the
/// batches come back through a channel. Dropping the returned stream aborts the work.
pub async fn stream<F>(plan: F) -> Result<SendableRecordBatchStream>
where
    F: Future<Output = Result<SendableRecordBatchStream>> + Send + 'static,
{
    let (schema_tx, schema_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel::<std::result::Result<RecordBatch, DataFusionError>>(BATCHES_AHEAD);
    let work = Spawned(runtime().spawn(async move {
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
    }));
    let schema = schema_rx
        .await
        .map_err(|_| Error::Internal("the query stopped before it was planned".into()))??;
    let batches = Received {
        batches: batch_rx,
        _work: work,
    };
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
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
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), endless).await;
        assert!(waited.is_err(), "endless work does not finish");
        // Dropped: the task is aborted, its sender goes, and the channel closes.
        let closed = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while alive_rx.recv().await.is_some() {}
        })
        .await;
        assert!(closed.is_ok(), "the work stopped within a second of being dropped");
    }
}
