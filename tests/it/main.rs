//! End-to-end tests of khoso: the corpus of real-world file shapes, and the `khoso` binary
//! driving a warehouse through init, ingest, supersede, time travel, concurrency and a kill.

mod browser;
mod budget;
mod cluster;
mod corpus;
mod docs;
mod end_to_end;
mod flight;
mod generated;
mod kpi;
mod layout;
mod metrics;
mod portal;
mod quality;
mod readers;
mod records;
mod robustness;
mod s3;
mod serve;
mod sql;
mod tools;
mod upgrade;
mod upkeep;
mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file of the checked-in corpus.
pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus")
        .join(name)
}

/// Where a test's warehouse is: a folder, or a bucket of the test's S3 server ([`s3::Bucket`]).
pub trait Data {
    /// Points `khoso` at it.
    fn point(&self, command: &mut Command);
}

impl Data for Path {
    fn point(&self, command: &mut Command) {
        command.env("KHOSO_DATA", self);
    }
}

impl Data for PathBuf {
    fn point(&self, command: &mut Command) {
        self.as_path().point(command);
    }
}

/// The `khoso` binary, pointed at a warehouse.
pub fn khoso(data: &(impl Data + ?Sized)) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_khoso"));
    command.env_remove("KHOSO_SAMPLE_DIR");
    data.point(&mut command);
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

/// `khoso sql` as CSV, with the tables pinned by `at` (`TABLE=VERSION`, `--at`); fails the test
/// if the query fails.
pub fn sql_at(data: &(impl Data + ?Sized), query: &str, at: &[String]) -> String {
    let mut command = khoso(data);
    command.args(["sql", "--format", "csv"]);
    for pin in at {
        command.args(["--at", pin]);
    }
    let answer = run(command.arg(query));
    assert!(answer.status.success(), "{query}: {}", stderr(&answer));
    stdout(&answer)
}

/// `khoso sql` as CSV (see [`sql_at`]).
pub fn sql(data: &(impl Data + ?Sized), query: &str) -> String {
    sql_at(data, query, &[])
}

/// Generates reports into `DIR/reports` (scale, school years `first..last`, seed) and, with
/// `load`, loads them into a new warehouse at `DIR/data` (else only makes it); returns
/// (data, reports).
pub fn generated(dir: &Path, scale: &str, years: &str, seed: &str, load: bool) -> (PathBuf, PathBuf) {
    let (data, reports) = (dir.join("data"), dir.join("reports"));
    let made = run(khoso(&data)
        .args(["generate", "--scale", scale, "--years", years, "--seed", seed, "--out"])
        .arg(&reports));
    assert!(made.status.success(), "{}", stderr(&made));
    let init = if load {
        run(khoso(&data).args(["init", "--sample", "--sample-dir"]).arg(&reports))
    } else {
        run(khoso(&data).arg("init"))
    };
    assert!(init.status.success(), "{}", stderr(&init));
    (data, reports)
}

/// The generated 2024-2025 school report of one province (scale, seed), written under
/// `DIR/reports-SEED`.
pub fn school_report_of(dir: &Path, scale: &str, seed: &str, province: &str) -> PathBuf {
    let reports = dir.join(format!("reports-{seed}"));
    let made = run(Command::new(env!("CARGO_BIN_EXE_khoso"))
        .args([
            "generate",
            "--scale",
            scale,
            "--years",
            "2024-2025..2024-2025",
            "--seed",
            seed,
            "--out",
        ])
        .arg(&reports));
    assert!(made.status.success(), "{}", stderr(&made));
    std::fs::read_dir(reports.join("school").join("2024-2025"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("school-{province}-")))
        })
        .unwrap_or_else(|| panic!("a school report of province {province}"))
}

/// [`generated`] reports of the school years 2023-2024 and 2024-2025, loaded, with the learner
/// records of 2024-2025 of the same scale and seed (for the breakdowns by grade and gender);
/// returns the warehouse.
pub fn generated_with_learners(dir: &Path, scale: &str, seed: &str) -> PathBuf {
    let (data, _) = generated(dir, scale, "2023-2024..2024-2025", seed, true);
    let records = dir.join("records");
    let made = run(khoso(&data)
        .args(["generate", "--kind", "learner", "--scale", scale, "--seed", seed])
        .args(["--years", "2024-2025..2024-2025", "--out"])
        .arg(&records));
    assert!(made.status.success(), "{}", stderr(&made));
    let files: Vec<PathBuf> = std::fs::read_dir(records.join("learner").join("2024-2025"))
        .expect("records")
        .flatten()
        .map(|e| e.path())
        .collect();
    let loaded = run(khoso(&data).args(["ingest", "--kind", "learner"]).args(&files));
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    data
}

/// Makes an account and returns its token (the last line `khoso users add` prints).
pub fn account(data: &(impl Data + ?Sized), name: &str, role: &str, province: Option<&str>) -> String {
    let mut command = khoso(data);
    command.args(["users", "add", name, "--role", role]);
    if let Some(province) = province {
        command.args(["--province", province]);
    }
    let made = run(&mut command);
    assert!(made.status.success(), "{}", stderr(&made));
    stdout(&made).lines().last().expect("the token").to_string()
}

/// What `read` gives once `done` holds of it (the audit log is written in the background), or
/// after ten seconds.
pub fn eventually<T>(read: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let value = read();
        if done(&value) || std::time::Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Whether a client the test needs is here; outside CI a missing one skips the test.
pub fn available(found: bool, what: &str) -> bool {
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {what} (.ci/run does)"
        );
        eprintln!("skipped: {what} is not installed here (see .ci/run)");
    }
    found
}

/// A Python that can import `modules` (e.g. `"psycopg"`, `"polars, duckdb"`): `KHOSO_TEST_PYTHON`,
/// the venv `.ci/run` makes, or `python3`.
pub fn python_with(modules: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KHOSO_TEST_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|output| output.status.success())
    })
}
