//! Where query work runs: a tokio runtime of its own, with a bounded number of threads, apart
//! from the threads that serve pages, sign-ins and uploads. A query's plan and its stream run
//! there; the caller gets the batches through a small channel, and dropping the caller's stream
//! (a time limit, a client gone, shutdown) aborts the work at its next yield point. Operators
//! yield often: every operator's output is wrapped so it spends tokio's cooperative budget
//! (see [`crate::bounds`]), so an abort takes effect within milliseconds even inside a cross
//! join that produces batches without ever waiting on its input.
//!
//! The runtime lives for the whole process and is never waited on: shutting the server down
//! does not wait for a query to finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
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
