//! `khoso`: the education data warehouse and KPI dashboard for Decision 131/QĐ-TTg.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("khoso: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(commands::run(args)) {
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
