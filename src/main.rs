//! `khoso`: the education data warehouse and KPI dashboard for Decision 131/QĐ-TTg.

use std::process::ExitCode;

mod cli;
mod commands;
mod config;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What is logged when `RUST_LOG` does not say: warnings from everything, the server's own
/// account of its work (a line per request). The Delta kernel logs as errors what it returns
/// to us as results (a table being created has no log yet): those are said where they matter.
/// So does Ballista's client of a query that failed on a cluster; its scheduler's complaints about
/// the metrics of a stage's plan are noise.
const DEFAULT_LOG: &str = "warn,buoyant_kernel=off,deltalake_core=off,ballista_scheduler::display=off,ballista_core::execution_plans::distributed_query=off,khoso=info,dashboard=info,warehouse=info";

/// Log lines go to stderr, as text or JSON; `RUST_LOG` chooses which.
fn start_logs(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let args = config::parse();
    start_logs(args.log_format);
    if let Some(folder) = &args.schemas
        && let Err(e) = ingest::schema::use_schemas_from(folder)
    {
        eprintln!("khoso: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("khoso: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let code = commands::run(args).await;
        // A query stopped at its time limit is cancelled on the cluster before the process ends.
        warehouse::query::cluster::settle(std::time::Duration::from_secs(2)).await;
        code
    });
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            eprintln!("khoso: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Work still running on a blocking thread (a file being parsed, a sign-in check) is not
    // waited for: nothing it does is half-written if it stops here.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
