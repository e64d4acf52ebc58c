//! The audit events of queries, written in the background: a query does not wait for the audit
//! log's commit, and the events that gather while one commit runs go together in the next.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use warehouse::Warehouse;
use warehouse::tables::rows::AuditEvent;

use crate::telemetry::Telemetry;

enum Entry {
    Event(Box<AuditEvent>),
    /// Answered once every event sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// The queue of audit events on their way to `audit_log`. Clones share it.
#[derive(Clone)]
pub struct AuditQueue {
    sender: UnboundedSender<Entry>,
    /// The writer's end, until the first event starts the writer.
    receiver: Arc<Mutex<Option<UnboundedReceiver<Entry>>>>,
    warehouse: Arc<Warehouse>,
    telemetry: Telemetry,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQueue").finish_non_exhaustive()
    }
}

impl AuditQueue {
    /// A queue into the warehouse's audit log; its writer starts with the first event.
    pub fn new(warehouse: Arc<Warehouse>, telemetry: Telemetry) -> Self {
        let (sender, receiver) = unbounded_channel();
        Self {
            sender,
            receiver: Arc::new(Mutex::new(Some(receiver))),
            warehouse,
            telemetry,
        }
    }

    /// Queues an event (and counts it, see [`Telemetry::event`]).
    pub fn record(&self, event: AuditEvent) {
        self.telemetry.event(&event);
        self.start();
        // The writer runs as long as the process: a send does not fail.
        self.sender.send(Entry::Event(Box::new(event))).ok();
    }

    /// Queues a planner's query's event, its time counted by `channel` (`http`, `wire`).
    pub fn record_query(&self, channel: &str, elapsed: std::time::Duration, event: AuditEvent) {
        self.telemetry.query(channel, elapsed);
        self.record(event);
    }

    /// Waits until every event queued so far is written (before the server stops).
    pub async fn flush(&self) {
        self.start();
        let (done, written) = oneshot::channel();
        if self.sender.send(Entry::Flush(done)).is_ok() {
            written.await.ok();
        }
    }

    fn start(&self) {
        let Some(mut entries) = self.receiver.lock().ok().and_then(|mut receiver| receiver.take()) else {
            return;
        };
        let warehouse = Arc::clone(&self.warehouse);
        tokio::spawn(async move {
            while let Some(first) = entries.recv().await {
                let mut events = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(entry) = next {
                    match entry {
                        Entry::Event(event) => events.push(*event),
                        Entry::Flush(done) => flushes.push(done),
                    }
                    next = entries.try_recv().ok();
                }
                if let Err(e) = warehouse.record_audit(&events).await {
                    tracing::error!(cause = %e, "the audit log could not be written");
                }
                for done in flushes {
                    done.send(()).ok();
                }
            }
        });
    }
}
