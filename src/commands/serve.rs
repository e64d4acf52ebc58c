//! `khoso serve`, `khoso report`, `khoso cluster`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use warehouse::Warehouse;
use warehouse::kpi::metrics::Metrics;
use warehouse::query::cluster::{Cluster, ExecutorPlace};
use warehouse::query::guard::QueryLimits;

use super::common::{INVALID_INPUT, Place};
use super::intake::init;
use crate::cli::{ClusterCommand, InitArgs, ReportArgs, ServeArgs};

pub(super) async fn serve(data: &Place, metrics: Arc<Metrics>, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(mb) = args.max_memory_mb {
        // Before any work draws on the ceiling.
        warehouse::query::engine::set_memory_ceiling(mb.saturating_mul(1024 * 1024));
    }
    let session_key = args
        .session_key
        .as_deref()
        .map(dashboard::auth::SessionKey::from_configuration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--session-key / KHOSO_SESSION_KEY: {e}"))?;
    let warehouse = match data.open().await {
        Ok(warehouse) => warehouse.with_metrics(metrics),
        Err(warehouse::Error::NotAWarehouse(_)) => {
            println!("no warehouse at {data} yet: loading the sample data first");
            let sample = InitArgs {
                sample: true,
                sample_dir: args.sample_dir.clone(),
            };
            init(data, metrics.clone(), sample).await?;
            data.open().await?.with_metrics(metrics)
        }
        Err(e) => return Err(e.into()),
    };
    warehouse.recover().await?;
    let reconciled = warehouse.reconcile_audit().await?;
    if reconciled > 0 {
        println!("audit log: wrote the missing event of {reconciled} committed files");
    }
    warehouse.ensure_kpis_fresh().await?;
    // What an earlier process of this machine was receiving, and uploads staged a day ago
    // and never committed, go.
    warehouse.intake(args.require_approval).clear_received().await?;
    let settings = dashboard::Settings {
        private: args.private,
        max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
        max_record_upload_bytes: args.max_record_upload_mb.saturating_mul(1024 * 1024),
        require_approval: args.require_approval,
        query_limits: QueryLimits {
            timeout: std::time::Duration::from_secs(args.query_timeout_s),
            memory_bytes: args.query_memory_mb.saturating_mul(1024 * 1024),
            ..QueryLimits::default()
        },
        behind_proxy: args.behind_proxy,
        session_key,
    };
    let state = dashboard::AppState::with_settings(warehouse, settings);
    let audit = state.audit.clone();
    // The SQL servers beside the dashboard, each running until the dashboard stops.
    let mut wires: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    if let Some(pg_addr) = &args.pg_addr {
        let (address, wire) = dashboard::pg::serve_pg(pg_addr, dashboard::pg::WireState::of(&state))
            .await
            .with_context(|| format!("listening on {pg_addr}"))?;
        println!("khoso SQL for PostgreSQL clients: postgresql://ACCOUNT@{address}/khoso (password: the token)");
        wires.push(Box::pin(wire));
    }
    if let Some(flight_addr) = &args.flight_addr {
        let (address, flight) = dashboard::flight::serve_flight(flight_addr, dashboard::pg::WireState::of(&state))
            .await
            .with_context(|| format!("listening on {flight_addr}"))?;
        println!(
            "khoso SQL for Arrow Flight SQL clients: grpc://{address} (username: the account, password: the token)"
        );
        wires.push(Box::pin(flight));
    }
    let (address, server) = dashboard::serve(&args.addr, state)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    println!("khoso dashboard: http://{address}/  (Ctrl-C stops it)");
    match wires.is_empty() {
        true => server.await?,
        false => {
            tokio::select! {
                stopped = server => stopped?,
                _ = futures::future::select_all(wires) => {}
            }
        }
    }
    audit.flush().await;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `khoso report`: the server's report page, rendered without a server and written to a file.
pub(super) async fn report(warehouse: Warehouse, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let encode = |text: &str| dashboard::percent_encode(text.as_bytes());
    let mut path = format!("/province/{}/report?lang={}", encode(&args.province), args.lang.code());
    for (name, value) in [("year", &args.year), ("list", &args.list)] {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", encode(value)));
        }
    }
    let (status, html) = dashboard::render_page(dashboard::AppState::new(warehouse), &path).await?;
    if !status.is_success() {
        // The error page says what was wrong in its first paragraph.
        let said = html
            .split("<p")
            .nth(1)
            .and_then(|p| p.split_once('>'))
            .and_then(|(_, rest)| rest.split("</p>").next())
            .unwrap_or("no report");
        eprintln!("khoso report: {said}");
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    std::fs::write(&args.out, html).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} (print it to PDF from a browser: A4)", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `khoso cluster`: runs a scheduler or an executor over the warehouse's storage until stopped.
pub(super) async fn cluster_node(data: &Place, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let storage = data.storage(false)?;
    match command {
        ClusterCommand::Scheduler { bind, executor_timeout } => {
            let bind = first_address(&bind).await?;
            tracing::info!(%bind, warehouse = %data, "Ballista scheduler");
            let timeout = std::time::Duration::from_secs(executor_timeout);
            warehouse::query::cluster::run_scheduler(bind, timeout, storage).await?;
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            external_host,
            tasks,
            memory_mb,
        } => {
            let place = ExecutorPlace {
                scheduler: Cluster::parse(&scheduler)?,
                bind: first_address(&bind).await?,
                external_host,
                tasks,
                memory_bytes: memory_mb.map(|mb| mb * 1024 * 1024),
            };
            tracing::info!(scheduler = %place.scheduler, bind = %place.bind, warehouse = %data, "Ballista executor");
            warehouse::query::cluster::run_executor(place, storage).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first address `text` (HOST:PORT) names.
async fn first_address(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(text)
        .await
        .with_context(|| format!("{text:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{text:?} names no address"))
}
