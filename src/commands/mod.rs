//! What each command does: argument handling and printing around the library crates.

mod admin;
mod common;
mod intake;
mod quality;
mod query;
mod serve;

use std::process::ExitCode;

use warehouse::query::cluster::Cluster;

use crate::cli::{Cli, Command, ConfigCommand};
use admin::{backup, config_check, maintain, restore, users, verify};
use common::{Place, load_metrics, open};
use intake::{generate, ingest_command, init, template};
use quality::check;
use query::{check_metrics, kpi, sql};
use serve::{cluster_node, report, serve};

/// Runs a command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let metrics_file = cli.metrics.as_deref();
    let data = &Place {
        location: cli.data.clone(),
        options: cli.storage_options.clone(),
        cluster: cli.cluster.as_deref().map(Cluster::parse).transpose()?,
    };
    match cli.command {
        Command::Template(args) => template(args),
        Command::Generate(args) => generate(args),
        Command::CheckMetrics(args) => check_metrics(args.file.as_deref().or(metrics_file)).await,
        // Everything that reads the warehouse needs valid KPIs: refuse to start without them.
        Command::Init(args) => init(data, load_metrics(metrics_file).await?, args).await,
        Command::Ingest(args) => ingest_command(data, load_metrics(metrics_file).await?, args).await,
        Command::Sql(args) => sql(&open(data, metrics_file).await?, args).await,
        Command::Kpi(args) => kpi(&open(data, metrics_file).await?, args).await,
        Command::Check(args) => check(&open(data, metrics_file).await?, args).await,
        Command::Serve(args) => serve(data, load_metrics(metrics_file).await?, args).await,
        Command::Report(args) => report(open(data, metrics_file).await?, args).await,
        Command::Users(args) => users(data, args.command).await,
        Command::Cluster(args) => cluster_node(data, args.command).await,
        Command::Maintain(args) => maintain(data, args).await,
        Command::Backup { to } => backup(data, metrics_file, &to).await,
        Command::Restore { from } => restore(data, &from).await,
        Command::Verify { backup } => verify(data, backup.as_deref()).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(),
    }
}
