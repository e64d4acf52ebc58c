//! PostgreSQL clients against `khoso serve --pg-addr`: Debian's `psql` signs in with an
//! account's name and token, lists and describes the tables, reads the same numbers as
//! `khoso sql`, sees a commit from another process on its next query, and is refused anything
//! that writes; wrong tokens and province accounts are turned away.
//!
//! Needs `psql` on the PATH (`.ci/run` installs Debian's `postgresql-client`). Without it the
//! test says so and passes, except under CI (`CI` set), where it fails.

use std::process::{Command, Output};

use crate::serve::Server;
use crate::{account, corpus, khoso, run, stderr, stdout};

fn psql(port: &str, user: &str, password: &str, command: &str) -> Output {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            user,
            "-d",
            "khoso",
            "-X",
            "-A",
            "-t",
            "-c",
            command,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn psql_reads_and_cannot_write() {
    if Command::new("psql").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install postgresql-client (.ci/run does)"
        );
        eprintln!("skipped: no psql here (apt-get install postgresql-client)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", "2024-2025..2024-2025", "9", true);
    let analyst = account(&data, "phan-tich", "analyst", None);
    let province = account(&data, "so-gd-ha-noi", "province", Some("01"));
    let port = free_port().to_string();
    let _server = Server::start_with(&data, &["--pg-addr", &format!("127.0.0.1:{port}")]);

    let tables = psql(&port, "phan-tich", &analyst, "\\dt");
    assert!(tables.status.success(), "{}", stderr(&tables));
    for table in ["school_reports", "submissions", "kpi_values", "provinces"] {
        assert!(stdout(&tables).contains(table), "{table} in \\dt: {}", stdout(&tables));
    }
    assert!(
        !stdout(&tables).contains("audit_log"),
        "the audit log is not on the wire"
    );
    let described = psql(&port, "phan-tich", &analyst, "\\d school_reports");
    assert!(stdout(&described).contains("students"), "{}", stdout(&described));

    let query = "SELECT count(*) FROM submissions";
    let count = |label: &str| {
        let answer = psql(&port, "phan-tich", &analyst, query);
        assert!(answer.status.success(), "{label}: {}", stderr(&answer));
        stdout(&answer).trim().to_string()
    };
    let before = count("before");
    let cli = run(khoso(&data).args(["sql", query, "--format", "csv"]));
    assert_eq!(
        stdout(&cli).lines().nth(1),
        Some(before.as_str()),
        "psql and khoso sql agree"
    );
    let ingested = run(khoso(&data)
        .args(["ingest", "--kind", "school"])
        .arg(corpus("good_utf8_no_bom.csv")));
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    let after = count("after");
    assert_eq!(
        after.parse::<u64>().expect("a count"),
        before.parse::<u64>().expect("a count") + 1,
        "a commit from another process shows on the next query"
    );

    for statement in ["DROP TABLE submissions", "INSERT INTO regions VALUES ('X', 'x', 'x')"] {
        let refused = psql(&port, "phan-tich", &analyst, statement);
        assert!(!refused.status.success(), "{statement}");
        assert!(
            stderr(&refused).contains("read-only"),
            "{statement}: {}",
            stderr(&refused)
        );
    }
    let wrong = psql(&port, "phan-tich", "khoso_0000_wrong", "SELECT 1");
    assert!(stderr(&wrong).contains("authentication failed"), "{}", stderr(&wrong));
    let other_name = psql(&port, "someone-else", &analyst, "SELECT 1");
    assert!(!other_name.status.success(), "the token belongs to phan-tich");
    let refused = psql(&port, "so-gd-ha-noi", &province, "SELECT 1");
    assert!(!refused.status.success(), "a province account does not query");
    assert_eq!(count("still"), after, "the server still answers");
}
