//! End-to-end tests of khoso: the corpus of real-world file shapes, and the `khoso` binary
//! driving a warehouse through init, ingest, supersede, time travel, concurrency and a kill.

mod browser;
mod corpus;
mod end_to_end;
mod generated;
mod kpi;
mod metrics;
mod portal;
mod serve;
mod sql;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file of the checked-in corpus.
pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus")
        .join(name)
}

/// The `khoso` binary, with its data directory set.
pub fn khoso(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_khoso"));
    command.env("KHOSO_DATA", data).env_remove("KHOSO_SAMPLE_DIR");
    command
}

/// Runs a command and returns its output, failing the test with its stderr if it could not start.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("khoso runs")
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
