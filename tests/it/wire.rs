//! PostgreSQL clients against `khoso serve --pg-addr`: Debian's `psql` signs in with an
//! account's name and token, lists and describes the tables, reads the same numbers as
//! `khoso sql` (also with psql variables), sees a commit from another process on its next
//! query, and is refused anything that writes; wrong tokens and province accounts are turned
//! away. Python's psycopg binds parameters on the server, reads through a named cursor and runs
//! DBeaver's catalog queries. Hostile queries on the wire end with a clear error while the
//! dashboard answers, an account runs two queries at a time, and every query is audited.
//!
//! Needs `psql` on the PATH (`.ci/run` installs Debian's `postgresql-client`) and a Python with
//! psycopg (`KHOSO_TEST_PYTHON`, else `target/pyenv/bin/python`, else `python3`; `.ci/run` makes
//! the venv). Without them a test says so and passes, except under CI (`CI` set), where it fails.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::serve::{Server, assert_hostile_queries_fail_cleanly, status};
use crate::{account, available, corpus, eventually, khoso, python_with, run, stderr, stdout};

pub(crate) fn has_psql() -> bool {
    available(Command::new("psql").arg("--version").output().is_ok(), "psql")
}

/// psql signed in as `user`, printing bare values.
fn psql_command(port: &str, user: &str, password: &str) -> Command {
    let mut command = Command::new("psql");
    command
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
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10");
    command
}

pub(crate) fn psql(port: &str, user: &str, password: &str, command: &str) -> Output {
    psql_command(port, user, password)
        .args(["-c", command])
        .output()
        .expect("psql runs")
}

/// psql reading its commands from standard input, with `-v` variables.
pub(crate) fn psql_script(port: &str, user: &str, password: &str, variables: &[&str], script: &[u8]) -> Output {
    let mut command = psql_command(port, user, password);
    for variable in variables {
        command.args(["-v", variable]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script)
        .expect("the script is sent");
    child.wait_with_output().expect("psql ends")
}

/// The rows of `khoso sql` as text (CSV without quoting: the values compared have no commas).
pub(crate) fn cli_rows(data: &Path, sql: &str) -> Vec<Vec<String>> {
    let output = run(khoso(data).args(["sql", sql, "--format", "csv"]));
    assert!(output.status.success(), "{sql}: {}", stderr(&output));
    stdout(&output)
        .lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether a role may do a piece of work is one rule (`warehouse::people::rights`), and every
/// way in keeps it: the pages, the API and the PostgreSQL wire (which offers querying only; the
/// CLI is the operator of the data directory, with no role).
#[test]
fn each_role_does_its_own_work_on_every_way_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, reports) = crate::generated(dir.path(), "0.01", "2024-2025..2024-2025", "9", true);
    let accounts = [
        ("so-gd-ha-noi", account(&data, "so-gd-ha-noi", "province", Some("01"))),
        ("phan-tich", account(&data, "phan-tich", "analyst", None)),
        ("bo-gd", account(&data, "bo-gd", "admin", None)),
    ];
    // What each role may do: upload, query, review (the rights' own table).
    let rights = [[true, false, false], [false, true, false], [true, true, true]];
    let port = free_port().to_string();
    let server = Server::start_with(&data, &["--pg-addr", &format!("127.0.0.1:{port}")]);
    let file = std::fs::read(reports.join("school/2024-2025/school-01-2024-2025.csv")).expect("a school report of 01");
    for ((name, token), may) in accounts.iter().zip(rights) {
        let bearer = format!("Authorization: Bearer {token}");
        let headers = [bearer.as_str()];
        let answered = |method: &str, path: &str, body: &[u8]| status(&server.request(method, path, &headers, body).0);
        // (work, channel, status): refused is 403, anything else is the work being let in.
        let tried = [
            (0, "page", answered("GET", "/upload", b"")),
            (
                0,
                "api",
                answered(
                    "POST",
                    "/api/v1/submissions?kind=school&year=2024-2025&province=01",
                    &file,
                ),
            ),
            (1, "page", answered("GET", "/sql", b"")),
            (1, "api", answered("POST", "/api/v1/sql", b"SELECT 1")),
            (2, "page", answered("GET", "/review", b"")),
            (
                2,
                "api",
                answered("POST", "/api/v1/submissions/no-such-id/approve", b""),
            ),
        ];
        for (work, channel, code) in tried {
            let work_name = ["upload", "query", "review"][work];
            assert_ne!(code, 401, "{name} is signed in ({work_name} on the {channel})");
            assert_eq!(code != 403, may[work], "{name} {work_name} on the {channel}: {code}");
        }
        if has_psql() {
            let signed_in = psql(&port, name, token, "SELECT 1").status.success();
            assert_eq!(signed_in, may[1], "{name} query on the wire");
        }
    }
}

#[test]
fn psql_reads_and_cannot_write() {
    if !has_psql() {
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
    let views = psql(&port, "phan-tich", &analyst, "\\dv");
    assert!(stdout(&views).contains("institutions"), "{}", stdout(&views));

    // psql's variables, as a planner keeps a province code in a script.
    let by_variable = psql_script(
        &port,
        "phan-tich",
        &analyst,
        &["code=01"],
        b"SELECT count(*), sum(students) FROM school_reports WHERE province_code = :'code';\n",
    );
    assert!(by_variable.status.success(), "{}", stderr(&by_variable));
    let expected = cli_rows(
        &data,
        "SELECT count(*), sum(students) FROM school_reports WHERE province_code = '01'",
    );
    assert_eq!(stdout(&by_variable).trim(), expected[0].join("|"));

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

    // Engine options and the time zone are shared by every client: not settable. A client's
    // own session parameters are.
    for statement in [
        "DROP TABLE submissions",
        "INSERT INTO regions VALUES ('X', 'x', 'x')",
        "SET datafusion.runtime.memory_limit = '100G'",
        "SET datafusion.execution.batch_size = 1",
        "SET TIME ZONE 'Asia/Ho_Chi_Minh'",
        "SET timezone = 'Asia/Ho_Chi_Minh'",
        "SET \"datafusion.execution.batch_size\" = 1",
        "SET \"DataFusion\".\"execution\".batch_size = 1",
        "SET datafusion.runtime.temp_directory = '/tmp'",
        "SELECT * INTO kept FROM provinces",
        "WITH p AS (SELECT 1 AS x) SELECT x INTO kept FROM p",
        "EXPLAIN ANALYZE SELECT * INTO kept FROM provinces",
    ] {
        let refused = psql(&port, "phan-tich", &analyst, statement);
        assert!(!refused.status.success(), "{statement}");
        assert!(
            stderr(&refused).contains("read-only"),
            "{statement}: {}",
            stderr(&refused)
        );
    }
    let kept = psql(&port, "phan-tich", &analyst, "SELECT count(*) FROM kept");
    assert!(!kept.status.success(), "no table was made by SELECT … INTO");
    // A plan names no path of the server's.
    let plan = psql(
        &port,
        "phan-tich",
        &analyst,
        "EXPLAIN SELECT sum(students) FROM school_reports",
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let root = std::fs::canonicalize(&data).expect("data");
    assert!(stdout(&plan).contains("DATA/tables"), "{}", stdout(&plan));
    assert!(
        !stdout(&plan).contains(root.to_string_lossy().trim_start_matches('/')),
        "{}",
        stdout(&plan)
    );
    let session = psql_script(
        &port,
        "phan-tich",
        &analyst,
        &[],
        b"SET application_name = 'bao-cao';\nSET extra_float_digits = 3;\nSET TIME ZONE 'UTC';\nSELECT 1;\n",
    );
    assert!(session.status.success(), "{}", stderr(&session));
    assert!(stderr(&session).is_empty(), "{}", stderr(&session));
    let wrong = psql(&port, "phan-tich", "khoso_0000_wrong", "SELECT 1");
    assert!(stderr(&wrong).contains("authentication failed"), "{}", stderr(&wrong));
    let other_name = psql(&port, "someone-else", &analyst, "SELECT 1");
    assert!(!other_name.status.success(), "the token belongs to phan-tich");
    let refused = psql(&port, "so-gd-ha-noi", &province, "SELECT 1");
    assert!(!refused.status.success(), "a province account does not query");
    assert_eq!(count("still"), after, "the server still answers");

    // A revoked account's open connection is closed at its next statement.
    let khoso_bin = env!("CARGO_BIN_EXE_khoso");
    let revoke = format!(
        "SELECT 1;\n\\! KHOSO_DATA='{}' '{khoso_bin}' users revoke phan-tich >/dev/null\nSELECT 2;\nSELECT 3;\n",
        data.display()
    );
    let revoked = psql_script(&port, "phan-tich", &analyst, &[], revoke.as_bytes());
    assert!(
        stderr(&revoked).contains("revoked"),
        "{} / {}",
        stdout(&revoked),
        stderr(&revoked)
    );
    assert!(
        !stdout(&revoked).contains('3'),
        "no statement ran after the revocation: {}",
        stdout(&revoked)
    );

    // Sign-ins over the wire are audited, the refused ones too.
    let sign_ins = "SELECT outcome, actor FROM audit_log WHERE action = 'sign_in' \
                    AND detail LIKE 'a PostgreSQL client%' ORDER BY at";
    let outcomes = eventually(|| cli_rows(&data, sign_ins), |events| events.len() >= 4);
    for expected in [["ok", "phan-tich"], ["unauthorized", ""], ["forbidden", ""]] {
        assert!(
            outcomes.iter().any(|event| event == &expected),
            "{expected:?} in {outcomes:?}"
        );
    }
}

#[test]
fn psycopg_binds_parameters_uses_cursors_and_reads_the_catalog() {
    let python = python_with("psycopg");
    if !available(python.is_some(), "Python's psycopg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", "2023-2024..2024-2025", "5", true);
    let analyst = account(&data, "phan-tich", "analyst", None);
    let port = free_port().to_string();
    let _server = Server::start_with(&data, &["--pg-addr", &format!("127.0.0.1:{port}")]);

    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/wire_client.py");
    let output = run(Command::new(python.expect("python"))
        .arg(client)
        .args([&port, "phan-tich", &analyst]));
    assert!(output.status.success(), "{}", stderr(&output));
    let answers: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let rows = |name: &str| -> Vec<Vec<String>> {
        let answer = &answers[name];
        assert!(answer.get("error").is_none(), "{name}: {answer}");
        let values: Vec<Vec<serde_json::Value>> =
            serde_json::from_value(answer["rows"].clone()).unwrap_or_else(|e| panic!("{name}: {e}: {answer}"));
        values
            .into_iter()
            .map(|row| row.iter().map(|v| v.as_str().unwrap_or("NULL").to_string()).collect())
            .collect()
    };
    let column =
        |name: &str, index: usize| -> Vec<String> { rows(name).into_iter().map(|row| row[index].clone()).collect() };

    // Two connections left idle after a query each do not keep the account from a third.
    assert_eq!(rows("after_idle"), [["3"]]);
    // Parameters bound by the server give what the same query with literals gives.
    assert_eq!(
        rows("province_year"),
        cli_rows(
            &data,
            "SELECT count(*), sum(students) FROM school_reports WHERE province_code = '01' \
             AND school_year = '2024-2025'"
        )
    );
    assert_eq!(
        rows("students_over"),
        cli_rows(&data, "SELECT count(*) FROM school_reports WHERE students > 500")
    );
    assert_eq!(rows("typed"), [["xã Hòa Bình", "5", "1.5", "2025-01-01"]]);
    assert_eq!(
        rows("any_year"),
        cli_rows(
            &data,
            "SELECT school_year, sum(students) FROM school_reports \
             WHERE school_year IN ('2023-2024', '2024-2025') GROUP BY school_year ORDER BY school_year"
        )
    );
    assert_eq!(
        rows("named_cursor"),
        cli_rows(
            &data,
            "SELECT school_id FROM school_reports WHERE province_code = '01' ORDER BY school_id"
        ),
        "a named cursor returns every row, in order"
    );
    assert_eq!(answers["write"]["sqlstate"], "25006", "{}", answers["write"]);

    // DBeaver's catalog queries.
    assert!(rows("version")[0][0].contains("DataFusion"));
    assert_eq!(rows("session"), [["public"]]);
    assert_eq!(rows("search_path")[0][0], "public");
    let namespaces = column("namespaces", 2);
    assert!(namespaces.contains(&"public".to_string()) && namespaces.contains(&"pg_catalog".to_string()));
    let relations = rows("relations");
    for (relation, kind) in [("school_reports", "r"), ("kpi_values", "r"), ("institutions", "v")] {
        assert!(
            relations.contains(&vec![relation.to_string(), kind.to_string()]),
            "{relation} ({kind}) in pg_class: {relations:?}"
        );
    }
    assert!(column("attributes", 0).contains(&"code".to_string()));
    let tables = column("tables", 0);
    assert!(tables.contains(&"school_reports".to_string()) && tables.contains(&"provinces".to_string()));
    assert!(
        !tables.contains(&"audit_log".to_string()),
        "the audit log is not on the wire"
    );
    assert!(column("columns", 0).contains(&"students".to_string()));
    assert_eq!(column("types", 0), ["int8", "text"]);

    // A 10 MB query text is refused at parse time; the connection goes on.
    assert_eq!(answers["huge"]["sqlstate"], "54000", "{}", answers["huge"]);
    assert!(
        answers["huge"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the limit is 1024 KB"))
    );
    assert_eq!(rows("after_huge"), [["2"]]);
}

#[test]
fn hostile_queries_on_the_wire_end_with_a_clear_error_and_every_query_is_audited() {
    if !has_psql() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.02", "2024-2025..2024-2025", "3", true);
    let analyst = account(&data, "phan-tich", "analyst", None);
    let port = free_port().to_string();
    let server = Server::start_with(
        &data,
        &[
            "--pg-addr",
            &format!("127.0.0.1:{port}"),
            "--query-timeout-s",
            "3",
            "--query-memory-mb",
            "64",
        ],
    );
    let psql_in_background = |sql: &str| {
        let (port, analyst, sql) = (port.clone(), analyst.clone(), sql.to_string());
        std::thread::spawn(move || psql(&port, "phan-tich", &analyst, &sql))
    };

    let (hostile_port, hostile_token) = (port.clone(), analyst.clone());
    assert_hostile_queries_fail_cleanly(&server, move |query| {
        // From standard input: some are too long for a command line.
        let script = format!("{query};\n");
        let answer = psql_script(
            &hostile_port,
            "phan-tich",
            &hostile_token,
            &["ON_ERROR_STOP=1"],
            script.as_bytes(),
        );
        (!answer.status.success()).then(|| stderr(&answer))
    });
    // A 10 MB query text (from a file: too long for a command line) is refused before parsing.
    let huge = format!("SELECT 1 -- {}\n;\n", "x".repeat(10 * 1024 * 1024));
    let refused = psql_script(&port, "phan-tich", &analyst, &[], huge.as_bytes());
    assert!(
        stderr(&refused).contains("the limit is 1024 KB"),
        "{}",
        stderr(&refused)
    );

    // Two queries of an account run at once; a third is turned away until one ends. The web
    // and the wire share the account's slots.
    let slow = "SELECT sum(value) FROM generate_series(1, 100000000000)";
    let first = psql_in_background(slow);
    let second = psql_in_background(slow);
    std::thread::sleep(Duration::from_millis(800));
    let third = psql(&port, "phan-tich", &analyst, "SELECT 1");
    assert!(
        stderr(&third).contains("2 of your queries are running already"),
        "{}",
        stderr(&third)
    );
    let auth = format!("Authorization: Bearer {analyst}");
    let (head, _) = server.request("POST", "/api/v1/sql", &[&auth], b"SELECT 1");
    assert_eq!(status(&head), 429, "the web shares the slots: {head}");
    for slow in [first, second] {
        assert!(stderr(&slow.join().expect("psql thread")).contains("longer than 3 s"));
    }
    let fine = psql(&port, "phan-tich", &analyst, "SELECT count(*) FROM provinces");
    assert_eq!(
        stdout(&fine).trim(),
        cli_rows(&data, "SELECT count(*) FROM provinces")[0][0]
    );

    // Every wire query is in the audit log: who, the outcome, how long, how many rows.
    let audited = "SELECT outcome, detail FROM audit_log WHERE actor = 'phan-tich' AND action = 'query' \
                   AND detail LIKE '%(wire%' ORDER BY at";
    let events = eventually(|| cli_rows(&data, audited), |events| events.len() >= 10);
    let outcomes: Vec<&str> = events.iter().map(|event| event[0].as_str()).collect();
    for outcome in ["timed_out", "too_large", "too_many", "ok"] {
        assert!(outcomes.contains(&outcome), "{outcome} in {outcomes:?}");
    }
    let last = events.last().expect("an event");
    assert!(
        last[0] == "ok" && last[1].starts_with("1 rows in ") && last[1].ends_with("SELECT count(*) FROM provinces"),
        "{last:?}"
    );
    let (head, _) = server.get_with("/healthz", &[]);
    assert_eq!(status(&head), 200, "the server lives");
}

/// Ways an analyst might name an admin-only table, and whether the answer may have rows (the
/// catalogue's lists answer with none; every other form is refused).
const ADMIN_TABLE_ATTEMPTS: [(&str, bool); 11] = [
    ("SELECT count(*) FROM audit_log", false),
    ("SELECT a.actor FROM audit_log AS a LIMIT 1", false),
    ("SELECT count(*) FROM public.audit_log", false),
    ("SELECT count(*) FROM datafusion.public.\"audit_log\"", false),
    ("SELECT count(*) FROM AUDIT_LOG", false),
    (
        "WITH recent AS (SELECT * FROM audit_log) SELECT count(*) FROM recent",
        false,
    ),
    (
        "SELECT count(*) FROM (SELECT submission_id FROM approvals) AS decided",
        false,
    ),
    ("CREATE VIEW peek AS SELECT * FROM audit_log", false),
    (
        "SELECT table_name FROM information_schema.tables WHERE table_name IN ('audit_log', 'approvals')",
        true,
    ),
    (
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_log'",
        true,
    ),
    (
        "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'audit_log'",
        true,
    ),
];

#[test]
fn one_catalogue_keeps_admin_tables_from_analysts_on_every_path() {
    if !has_psql() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", "2024-2025..2024-2025", "5", true);
    let analyst = account(&data, "phan-tich", "analyst", None);
    let admin = account(&data, "bo-gd", "admin", None);
    let port = free_port().to_string();
    let server = Server::start_with(&data, &["--pg-addr", &format!("127.0.0.1:{port}")]);
    let api = |token: &str, sql: &str| {
        let auth = format!("Authorization: Bearer {token}");
        let (head, body) = server.request(
            "POST",
            "/api/v1/sql",
            &["Accept: application/json", "Content-Type: text/plain", &auth],
            sql.as_bytes(),
        );
        (status(&head), body)
    };
    // Only the admin-only tables' own names: every other table answers to the analyst.
    let leaked = |text: &str| text.contains("\"actor\"") || text.lines().any(|l| l.trim() == "audit_log");
    for (sql, listing) in ADMIN_TABLE_ATTEMPTS {
        let (code, body) = api(&analyst, sql);
        let cli = run(khoso(&data).args(["sql", sql, "--role", "analyst", "--format", "csv"]));
        let wire = psql(&port, "phan-tich", &analyst, sql);
        if listing {
            // The lists of tables answer, without the admin-only tables (PostgreSQL's own
            // catalogue is on the wire only).
            if !sql.contains("pg_catalog") {
                assert_eq!(code, 200, "{sql}: {body}");
                assert!(body.contains("\"rows\":[]"), "{sql} over HTTP: {body}");
                assert!(cli.status.success(), "{sql}: {}", stderr(&cli));
                assert!(stdout(&cli).lines().count() <= 1, "{sql} on the CLI: {}", stdout(&cli));
            }
            assert!(wire.status.success(), "{sql}: {}", stderr(&wire));
            assert!(stdout(&wire).trim().is_empty(), "{sql} on the wire: {}", stdout(&wire));
            continue;
        }
        assert!(matches!(code, 400 | 403), "{sql} over HTTP: {code} {body}");
        assert!(!leaked(&body), "{sql}: {body}");
        assert!(!cli.status.success(), "{sql} on the CLI: {}", stdout(&cli));
        assert!(
            !wire.status.success() || stdout(&wire).trim().is_empty(),
            "{sql} on the wire: {}",
            stdout(&wire)
        );
        if !sql.starts_with("CREATE") {
            // Refused by the catalogue by name, with the reason, on every path.
            let why = "for admin accounts only";
            assert!(body.contains(why) && code == 403, "{sql} over HTTP: {code} {body}");
            assert!(stderr(&cli).contains(why), "{sql} on the CLI: {}", stderr(&cli));
            assert!(stderr(&wire).contains(why), "{sql} on the wire: {}", stderr(&wire));
        }
    }
    // The same forms read the table for an admin, on every path.
    let sql = "WITH recent AS (SELECT * FROM audit_log AS a) SELECT count(*) > 0 AS any FROM recent";
    let (code, body) = api(&admin, sql);
    assert!(code == 200 && body.contains("true"), "{body}");
    let cli = run(khoso(&data).args(["sql", sql, "--format", "csv"]));
    assert_eq!(stdout(&cli), "any\ntrue\n", "{}", stderr(&cli));
    let wire = psql(&port, "bo-gd", &admin, sql);
    assert_eq!(stdout(&wire).trim(), "t", "{}", stderr(&wire));
    // The schema browser lists what the reader may read.
    let listed = |token: &str| {
        let auth = format!("Authorization: Bearer {token}");
        server
            .request("GET", "/sql", &[&auth], b"")
            .1
            .contains("<code>audit_log</code>")
    };
    assert!(listed(&admin) && !listed(&analyst));
}
