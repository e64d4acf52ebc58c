//! Other engines read khoso's tables where they lie, on disk and in a bucket of an S3 API:
//! polars (`pl.read_delta`), DuckDB over the files the `deltalake` Python package lists, and
//! Spark SQL through Sail (`pysail`, a Spark Connect server in local-cluster mode) give the same
//! rows, sums and KPI as khoso.

use std::path::{Path, PathBuf};

use crate::s3::S3Server;
use crate::{Data, available, khoso, python_with, run, stderr, stdout};

/// For each fact table: its rows by school year, with the pupils of the school reports and the
/// national `T1_pupils` (pupils able to study online) of each year.
const KHOSO_QUERY: &str = "\
    SELECT 'school_reports' AS t, school_year, count(*) AS n, sum(students) AS s FROM school_reports GROUP BY 2 \
    UNION ALL SELECT 'university_reports', school_year, count(*), 0 FROM university_reports GROUP BY 2 \
    UNION ALL SELECT 'content_coverage', school_year, count(*), 0 FROM content_coverage GROUP BY 2 \
    UNION ALL SELECT 'T1_pupils', school_year, 0, round(value, 9) FROM kpi_values \
      WHERE kpi_id = 'T1_pupils' AND unit = 'VN' \
    ORDER BY 1, 2";

/// The same, read by polars and by DuckDB: one CSV line per (reader, answer).
const PYTHON: &str = r#"
import os, sys, duckdb, polars as pl
from deltalake import DeltaTable
tables = sys.argv[1]
kinds = ["school_reports", "university_reports", "content_coverage"]
def show(reader, out):
    for line in sorted(out):
        print(reader, *line, sep=",")

out = []
for t in kinds:
    frame = pl.read_delta(f"{tables}/{t}")
    s = pl.col("students").sum() if t == "school_reports" else pl.lit(0)
    out += [(t, *row) for row in frame.group_by("school_year").agg(pl.len(), s).iter_rows()]
school = pl.read_delta(f"{tables}/school_reports")
for year, ready, pupils in school.group_by("school_year").agg(
        pl.col("students_online_ready").sum(), pl.col("students").sum()).iter_rows():
    out.append(("T1_pupils", year, 0, round(100 * ready / pupils, 9)))
show("polars", out)

out = []
for t in kinds:
    s = "sum(students)" if t == "school_reports" else "0"
    columns = f"school_year, count(*), {s}, sum({'students_online_ready' if s != '0' else '0'})"
    if tables.startswith("s3://"):
        # DuckDB's own S3 reader is an extension it downloads; the files come through the
        # deltalake package's dataset instead.
        files = DeltaTable(f"{tables}/{t}").to_pyarrow_dataset()
        query = f"SELECT {columns} FROM files GROUP BY 1"
    else:
        files = DeltaTable(f"{tables}/{t}").file_uris()
        query = f"SELECT {columns} FROM read_parquet({files!r}, hive_partitioning = true) GROUP BY 1"
    out += [(t, *row) for row in duckdb.sql(query).fetchall()]
out = [(t, year, n, s) for (t, year, n, s, _) in out] + [
    ("T1_pupils", year, 0, round(100 * ready / pupils, 9))
    for (t, year, n, pupils, ready) in out if t == "school_reports"]
show("duckdb", out)

# Spark SQL through Sail's Spark Connect server, its work spread over local worker processes.
os.environ["SAIL_MODE"] = "local-cluster"
from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession
server = SparkConnectServer("127.0.0.1", 0)
server.start(background=True)
spark = SparkSession.builder.remote(f"sc://127.0.0.1:{server.listening_address[1]}").getOrCreate()
out = []
for t in kinds:
    spark.read.format("delta").load(f"{tables}/{t}").createOrReplaceTempView(t)
    s = "sum(students)" if t == "school_reports" else "0"
    out += [(t, *row) for row in spark.sql(f"SELECT school_year, count(*), {s} FROM {t} GROUP BY 1").collect()]
out += [("T1_pupils", year, 0, round(value, 9)) for year, value in spark.sql(
    "SELECT school_year, 100 * sum(students_online_ready) / sum(students) FROM school_reports GROUP BY 1").collect()]
show("spark", out)
sys.stdout.flush()
os._exit(0)  # the server's threads would keep the process
"#;

/// A line of answers: its key (table or KPI, school year, rows) and its last number.
type Answer = (String, f64);

fn answer(line: &str) -> Answer {
    let (key, number) = line.rsplit_once(',').expect("a CSV line");
    (key.to_string(), number.parse().expect("a number"))
}

#[test]
fn polars_duckdb_and_spark_read_the_tables_as_khoso_does() {
    let Some(python) = readers() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", "2023-2024..2024-2025", "11", true);
    let tables = data.join("tables").to_string_lossy().into_owned();
    agree(&python, &data, &tables, &[], dir.path());
}

#[test]
fn on_s3_polars_duckdb_and_spark_read_the_tables_as_khoso_does() {
    let Some(python) = readers() else {
        return;
    };
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, reports) = crate::generated(dir.path(), "0.01", "2023-2024..2024-2025", "11", false);
    let bucket = server.bucket("readers");
    let init = run(khoso(&bucket).arg("init"));
    assert!(init.status.success(), "{}", stderr(&init));
    // A few provinces of each year, and the other kinds: enough to compare, few enough for the
    // test's S3 server.
    for kind in ["school", "university", "content"] {
        let files: Vec<PathBuf> = ["2023-2024", "2024-2025"]
            .iter()
            .flat_map(|year| {
                let mut files: Vec<PathBuf> = std::fs::read_dir(reports.join(kind).join(year))
                    .expect("generated reports")
                    .flatten()
                    .map(|entry| entry.path())
                    .collect();
                files.sort();
                files.truncate(3);
                files
            })
            .collect();
        let ingested = run(khoso(&bucket).args(["ingest", "--kind", kind]).args(&files));
        assert!(ingested.status.success(), "{}", stderr(&ingested));
    }
    let tables = format!("{}/tables", bucket.location);
    let mut env: Vec<(&str, &str)> = bucket.env().to_vec();
    env.push(("AWS_ALLOW_HTTP", "true"));
    agree(&python, &bucket, &tables, &env, dir.path());
}

/// A Python with the readers, or none (outside CI) when they are not installed.
fn readers() -> Option<PathBuf> {
    let python = python_with("duckdb, polars, deltalake, pysail, pyspark");
    available(
        python.is_some(),
        "Python's duckdb, polars, deltalake, pysail and pyspark-client",
    )
    .then_some(python)
    .flatten()
}

/// khoso's answers and the readers' (given the tables' location and what they need to reach
/// it) are the same.
fn agree(python: &Path, data: &(impl Data + ?Sized), tables: &str, env: &[(&str, &str)], dir: &Path) {
    let ours = run(khoso(data).args(["sql", KHOSO_QUERY, "--format", "csv"]));
    assert!(ours.status.success(), "{}", stderr(&ours));
    let ours: Vec<Answer> = stdout(&ours).lines().skip(1).map(answer).collect();
    assert!(ours.len() >= 8, "{ours:?}");

    // As a file: PySpark looks for a Spark installation when run by `python -c`.
    let script = dir.join("read.py");
    std::fs::write(&script, PYTHON).expect("script");
    let theirs = run(std::process::Command::new(python)
        .arg(&script)
        .arg(tables)
        .envs(env.iter().copied()));
    assert!(theirs.status.success(), "{}", stderr(&theirs));
    let theirs = stdout(&theirs);
    for reader in ["polars", "duckdb", "spark"] {
        let read: Vec<Answer> = theirs
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("{reader},")))
            .map(answer)
            .collect();
        assert_eq!(read.len(), ours.len(), "{reader}: {read:?}");
        for (read, ours) in read.iter().zip(&ours) {
            assert!(
                read.0 == ours.0 && (read.1 - ours.1).abs() < 1e-6,
                "{reader} reads {read:?} where khoso reads {ours:?}"
            );
        }
    }
}
