//! What the server is doing, for Prometheus (`GET /metrics`, the text format): requests by
//! route and status with their durations, the audited events by action and outcome (sign-ins,
//! uploads, decisions, queries — a failed sign-in is `khoso_events_total{action="sign_in",
//! outcome="unauthorized"}`), queries' durations by channel, the time to take a file sent on
//! the web and to bring the figures up to the tables, and each table's version.
//!
//! Every label takes its values from a set the server chose (a route as declared, an action and
//! an outcome as audited, a channel, a table's name), never from what a client sent: a flood of
//! made-up paths adds nothing but `route="unmatched"`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use warehouse::intake::steps::Intent;
use warehouse::tables::rows::AuditEvent;
use warehouse::{TableVersions, Warehouse};

/// A request's route (as declared, e.g. `/kpi/{id}`), method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntentLabels {
    intent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// The server's counters. Clones share them.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Durations<RouteLabels>,
    events: Family<EventLabels, Counter>,
    query_seconds: Durations<ChannelLabels>,
    table_versions: Family<TableLabels, Gauge>,
    intake_seconds: Durations<IntentLabels>,
    figures_seconds: Histogram,
    queries_running: Gauge,
    table_files: Family<TableLabels, Gauge>,
    /// Each table's file count, with the version it was counted at: counted again only for a
    /// new version.
    files_counted: Arc<tokio::sync::Mutex<HashMap<String, u64>>>,
    /// The tables' versions as last read, and when: read again at most once a second, so that
    /// a flood of scrapes (they need no account) does not become a flood of listings of the
    /// store.
    versions: Arc<tokio::sync::Mutex<Option<(Instant, TableVersions)>>>,
}

/// How long the tables' versions read for `/metrics` and `/readyz` are kept.
const VERSIONS_KEPT: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Durations from 1 ms to about 33 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("khoso");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        let request_seconds: Durations<RouteLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            request_seconds.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Audited events (sign-ins, uploads, decisions, queries), by action and outcome",
            events.clone(),
        );
        let query_seconds: Durations<ChannelLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "query_duration_seconds",
            "Time of planners' SQL queries, by channel (http, wire)",
            query_seconds.clone(),
        );
        let intake_seconds: Durations<IntentLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "intake_duration_seconds",
            "Time to take a file sent on the web (validate, preview, commit or hold), by intent",
            intake_seconds.clone(),
        );
        let figures_seconds = seconds();
        registry.register(
            "figures_refresh_duration_seconds",
            "Time to bring the dashboard's figures up to the tables (the KPI refresh included)",
            figures_seconds.clone(),
        );
        let queries_running = Gauge::default();
        registry.register(
            "queries_running",
            "Planners' SQL queries running now (HTTP and the PostgreSQL wire)",
            queries_running.clone(),
        );
        let table_files = Family::<TableLabels, Gauge>::default();
        registry.register(
            "table_files",
            "Each Delta table's data files at its latest version",
            table_files.clone(),
        );
        let table_versions = Family::<TableLabels, Gauge>::default();
        registry.register(
            "table_version",
            "Each Delta table's latest version",
            table_versions.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            request_seconds,
            events,
            query_seconds,
            table_versions,
            intake_seconds,
            figures_seconds,
            queries_running,
            table_files,
            files_counted: Arc::default(),
            versions: Arc::default(),
        }
    }
}

impl Telemetry {
    /// A request answered: `route` as declared (`None` for no route), its status, its time.
    pub fn request(&self, route: Option<&str>, method: &str, status: u16, elapsed: Duration) {
        let route = route.unwrap_or("unmatched").to_string();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// An audited event.
    pub fn event(&self, event: &AuditEvent) {
        self.events
            .get_or_create(&EventLabels {
                action: event.action.clone(),
                outcome: event.outcome.clone(),
            })
            .inc();
    }

    /// A planner's query ended (whatever its outcome) after `elapsed`.
    pub fn query(&self, channel: &str, elapsed: Duration) {
        self.query_seconds
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A file sent on the web was taken (validated, previewed, committed or held) in `elapsed`.
    pub fn intake(&self, intent: Intent, elapsed: Duration) {
        let intent = match intent {
            Intent::Validate => "validate",
            Intent::Preview => "preview",
            Intent::Stage => "stage",
            Intent::Commit => "commit",
        };
        self.intake_seconds
            .get_or_create(&IntentLabels {
                intent: intent.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The dashboard's figures were made again, in `elapsed`.
    pub fn figures_refreshed(&self, elapsed: Duration) {
        self.figures_seconds.observe(elapsed.as_secs_f64());
    }

    /// The count of running queries, for the query slots to keep.
    pub fn queries_running(&self) -> Gauge {
        self.queries_running.clone()
    }

    /// The tables' latest versions, as of at most a second ago.
    pub async fn versions(&self, warehouse: &Warehouse) -> Result<TableVersions, warehouse::Error> {
        let mut kept = self.versions.lock().await;
        if let Some((read, versions)) = kept.as_ref()
            && read.elapsed() < VERSIONS_KEPT
        {
            return Ok(versions.clone());
        }
        let versions = warehouse.versions().await?;
        *kept = Some((Instant::now(), versions.clone()));
        Ok(versions)
    }

    /// The text Prometheus reads, with the tables' versions as of at most a second ago.
    pub async fn render(&self, warehouse: &Warehouse) -> Result<String, warehouse::Error> {
        let mut counted = self.files_counted.lock().await;
        for (table, version) in self.versions(warehouse).await? {
            let labels = TableLabels { table: table.clone() };
            self.table_versions
                .get_or_create(&labels)
                .set(i64::try_from(version).unwrap_or(i64::MAX));
            if counted.get(&table) != Some(&version) {
                let files = warehouse
                    .table(&table, Some(version))
                    .await?
                    .snapshot()?
                    .log_data()
                    .num_files();
                self.table_files
                    .get_or_create(&labels)
                    .set(i64::try_from(files).unwrap_or(i64::MAX));
                counted.insert(table, version);
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).map_err(|e| warehouse::Error::failed("the metrics text", e))?;
        Ok(text)
    }
}
