//! Every piece of work has an owner and a budget: a chart, an Excel or CSV download, a function
//! folded while planning, an upload being read, a cursor, a portal, a client that stops reading.
//! Each family is run against one `khoso serve` with a 5 s time limit, a 256 MB query pool and a
//! 1,536 MB memory ceiling, and after each the same process must answer `/` and `/healthz`
//! within a second, be idle within two seconds of the deadline, and have stayed under the ceiling.
//!
//! The wire's families need psycopg (`KHOSO_TEST_PYTHON`, as `wire.rs`); without it they say so
//! and pass, except under CI.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve::{Server, header, status};
use crate::{account, available, python_with, run, stderr, stdout};

/// The time limit of a query, in seconds, as the server is started.
const TIMEOUT_S: u64 = 5;

/// The server's memory ceiling, in MB.
const CEILING_MB: u64 = 1536;

struct Budgeted {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    server: Server,
    analyst: String,
    pg_port: String,
}

impl Budgeted {
    fn new() -> Budgeted {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, _) = crate::generated(dir.path(), "0.02", "2024-2025..2024-2025", "27", true);
        let analyst = account(&data, "phan-tich", "analyst", None);
        let pg_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port().to_string())
            .expect("a free port");
        let timeout = TIMEOUT_S.to_string();
        let ceiling = CEILING_MB.to_string();
        let pg_addr = format!("127.0.0.1:{pg_port}");
        let server = Server::start_with(
            &data,
            &[
                "--query-timeout-s",
                &timeout,
                "--query-memory-mb",
                "256",
                "--max-memory-mb",
                &ceiling,
                "--max-upload-mb",
                "60",
                "--pg-addr",
                &pg_addr,
            ],
        );
        Budgeted {
            _dir: dir,
            data,
            server,
            analyst,
            pg_port,
        }
    }

    fn bearer(&self) -> String {
        format!("Authorization: Bearer {}", self.analyst)
    }

    /// `POST path` with a JSON body as the analyst: (status, body, seconds taken).
    fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, String, f64) {
        let started = Instant::now();
        let auth = self.bearer();
        let (head, answer) = self.server.request(
            "POST",
            path,
            &[auth.as_str(), "Content-Type: application/json"],
            body.to_string().as_bytes(),
        );
        (status(&head), answer, started.elapsed().as_secs_f64())
    }

    /// After work begun at `started`: the server's CPU is idle from two seconds past the deadline,
    /// it stayed under its ceiling, and it answers its pages within a second.
    fn assert_within_budget(&mut self, what: &str, started: Instant) {
        let idle_from = started + Duration::from_secs(TIMEOUT_S + 2);
        if let Some(wait) = idle_from.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let before = self.server.cpu_seconds();
        std::thread::sleep(Duration::from_secs(1));
        let busy = self.server.cpu_seconds() - before;
        assert!(
            busy < 0.3,
            "{what}: the server used {busy:.2} s of CPU in the second after its deadline + 2 s"
        );
        let peak = self.server.peak_memory_mb();
        assert!(
            peak < CEILING_MB,
            "{what}: the server grew to {peak} MB, past its {CEILING_MB} MB ceiling"
        );
        self.server.assert_answers(what);
    }

    /// A scenario of `budget_client.py` as the analyst, with `seconds`; its JSON answer.
    fn wire(&self, python: &std::path::Path, scenario: &str, seconds: &str) -> serde_json::Value {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/budget_client.py");
        let output =
            run(Command::new(python)
                .arg(script)
                .args([scenario, &self.pg_port, "phan-tich", &self.analyst, seconds]));
        assert!(output.status.success(), "{scenario}: {}", stderr(&output));
        serde_json::from_str(stdout(&output).trim()).unwrap_or_else(|e| panic!("{scenario}: {e}: {}", stdout(&output)))
    }
}

#[test]
fn charts_of_any_value_are_drawn_within_the_deadline() {
    let mut budgeted = Budgeted::new();
    let started = Instant::now();
    let values = "SELECT school_year, CAST(v AS DOUBLE) AS share, CAST(v AS DOUBLE) * 2 AS twice FROM (VALUES \
                  ('2023-2024', 'Infinity'), ('2024-2025', '-Infinity'), ('2025-2026', 'NaN'), ('2026-2027', '1e308'), \
                  ('2027-2028', '42')) t(school_year, v)";
    for (chart, format) in [
        ("line", "svg"),
        ("line", "png"),
        ("scatter", "svg"),
        ("bar", "svg"),
        ("stacked_bar", "svg"),
        ("map", "svg"),
    ] {
        let (x, y) = match chart {
            "scatter" => ("share", "twice"),
            _ => ("school_year", "share"),
        };
        let body = serde_json::json!({"sql": values, "chart": chart, "x": x, "y": y, "format": format, "lang": "en"});
        let (code, answer, seconds) = budgeted.post_json("/api/v1/sql/chart", &body);
        assert!(seconds < (TIMEOUT_S + 2) as f64, "a {chart} chart took {seconds:.1} s");
        match (chart, format) {
            ("map", _) => assert!(matches!(code, 200 | 400), "{chart}: {code} {answer}"),
            (_, "png") => assert_eq!(code, 200, "{chart} png: {answer}"),
            _ => {
                assert_eq!(code, 200, "{chart}: {answer}");
                assert!(
                    answer.contains("values are not drawn"),
                    "{chart} says what it left out: {answer}"
                );
            }
        }
    }
    // The workbench draws its first guess of every result: the same query there.
    let first_guess = serde_json::json!({"sql": values});
    let (code, answer, _) = budgeted.post_json("/api/v1/sql/chart", &first_guess);
    assert_eq!(code, 200, "{answer}");
    budgeted.assert_within_budget("charts of infinite values", started);
}

#[test]
fn downloads_and_functions_end_within_their_budget() {
    let mut budgeted = Budgeted::new();

    // An Excel download of a result past what a workbook holds: refused with the advice.
    let started = Instant::now();
    let auth = budgeted.bearer();
    let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let accept = format!("Accept: {xlsx}");
    let wide = "SELECT a.*, b.n FROM school_reports a, generate_series(1, 100000) b(n)";
    let (head, body) = budgeted
        .server
        .request("POST", "/api/v1/sql", &[&auth, &accept], wide.as_bytes());
    assert!(
        started.elapsed() < Duration::from_secs(TIMEOUT_S + 2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&head), 400, "{head}\n{body}");
    assert!(body.contains("CSV or Parquet"), "{body}");
    // One that fits is a real workbook.
    let (head, body) = budgeted.server.request(
        "POST",
        "/api/v1/sql",
        &[&auth, &accept],
        b"SELECT province_code, sum(students) AS pupils FROM school_reports GROUP BY 1",
    );
    assert_eq!(status(&head), 200, "{head}");
    assert!(body.starts_with("PK"), "an .xlsx is a zip");
    budgeted.assert_within_budget("Excel downloads", started);

    // A function whose work is the product of its arguments, folded while planning.
    let started = Instant::now();
    let levenshtein = "SELECT levenshtein(repeat('a', 150000), repeat('b', 150000))";
    let (head, body) = budgeted
        .server
        .request("POST", "/api/v1/sql", &[&auth], levenshtein.as_bytes());
    assert_eq!(status(&head), 400, "{head}\n{body}");
    assert!(body.contains("levenshtein") && body.contains("steps"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused before it ran: {:?}",
        started.elapsed()
    );
    // Rows of the largest values a function may make are shown within a bound, the rest counted.
    let big = "SELECT repeat('x', 20000000) AS big UNION ALL SELECT repeat('y', 20000000) UNION ALL \
               SELECT repeat('z', 20000000)";
    let (head, body) = budgeted.server.request("POST", "/api/v1/sql", &[&auth], big.as_bytes());
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(header(&head, "khoso-rows-shown"), Some("1"), "{head}");
    assert_eq!(header(&head, "khoso-rows-total"), Some("3"), "{head}");
    assert!(body.len() < 25_000_000, "{} bytes", body.len());
    let map = "SELECT map(range(5000), range(5000)) AS m";
    let (head, body) = budgeted.server.request("POST", "/api/v1/sql", &[&auth], map.as_bytes());
    assert!(
        status(&head) < 500,
        "map() of large arrays is the query's fault: {head}\n{body}"
    );
    budgeted.assert_within_budget("long functions", started);

    // Eighty CSV downloads at once by one analyst, none of them read: two run, the rest wait
    // their turn, and the two end at the deadline.
    let started = Instant::now();
    let endless = "SELECT n, repeat('x', 200) AS padding FROM generate_series(1, 1000000000) t(n)";
    let mut unread = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..80 {
        let mut stream = TcpStream::connect(&budgeted.server.address).expect("connect");
        let request = format!(
            "POST /api/v1/sql HTTP/1.0\r\nHost: x\r\n{auth}\r\nAccept: text/csv\r\nContent-Length: {}\r\n\r\n{endless}",
            endless.len()
        );
        stream.write_all(request.as_bytes()).expect("sent");
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut first = [0u8; 12];
        match stream.read_exact(&mut first) {
            Ok(()) if first.starts_with(b"HTTP/1.1 200") || first.starts_with(b"HTTP/1.0 200") => accepted += 1,
            Ok(()) => refused += 1,
            Err(_) => {}
        }
        unread.push(stream);
    }
    assert!(accepted <= 2, "{accepted} downloads ran at once for one account");
    assert!(refused >= 70, "{refused} downloads were told to wait");
    budgeted.assert_within_budget("unread CSV downloads", started);
    // Their slots came back: the analyst's next query runs.
    let (head, body) = budgeted
        .server
        .request("POST", "/api/v1/sql", &[&auth], b"SELECT 1 AS one");
    assert_eq!(status(&head), 200, "{head}\n{body}");
    drop(unread);
}

#[test]
fn files_that_would_fill_the_memory_are_read_small() {
    let mut budgeted = Budgeted::new();
    let province = account(&budgeted.data, "so-gd-ha-noi", "province", Some("01"));
    let started = Instant::now();
    let before = budgeted.server.peak_memory_mb();
    let header = "school_year,province_code,school_id,level,school_name,students\n";
    let mut body = header.as_bytes().to_vec();
    body.extend(std::iter::repeat_n(b",\n".as_slice(), 24_500_000).flatten());
    let auth = format!("Authorization: Bearer {province}");
    let (head, answer) = budgeted.server.request(
        "POST",
        "/api/v1/submissions?kind=school&year=2024-2025&dry_run=true",
        &[auth.as_str(), "Content-Type: text/csv"],
        &body,
    );
    assert_eq!(status(&head), 422, "{head}\n{answer}");
    assert!(answer.contains("mostly blank rows"), "{answer}");
    let grown = budgeted.server.peak_memory_mb().saturating_sub(before);
    assert!(grown < 600, "a 49 MB file of blank rows grew the server by {grown} MB");
    budgeted.assert_within_budget("a file of blank rows", started);

    // A report whose every cell is wrong: the first thousand problems listed, the rest counted.
    let started = Instant::now();
    let template = std::fs::read_to_string(crate::corpus("good_utf8_no_bom.csv")).expect("corpus");
    let header = template.lines().next().expect("a header");
    let wrong = "2024-2025,01,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x\n";
    let body = format!("{header}\n{}", wrong.repeat(100_000));
    let (head, answer) = budgeted.server.request(
        "POST",
        "/api/v1/submissions?kind=school&year=2024-2025&dry_run=true",
        &[auth.as_str(), "Content-Type: text/csv"],
        body.as_bytes(),
    );
    assert_eq!(status(&head), 422, "{head}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let problems = answer["problems"].as_array().cloned().unwrap_or_default();
    assert!(problems.len() < 1100, "{} problems listed", problems.len());
    assert!(
        problems.iter().any(|p| p["rule"] == "more"),
        "the rest are counted: {:?}",
        problems.last()
    );
    budgeted.assert_within_budget("a report of wrong cells", started);
}

#[test]
fn wire_work_ends_at_its_deadline_whoever_reads_it() {
    let Some(python) = python_with("psycopg") else {
        assert!(available(false, "psycopg"));
        return;
    };
    let mut budgeted = Budgeted::new();

    // A cursor whose query never ends, its first row fetched at once, left open past the deadline.
    let started = Instant::now();
    let cursor = budgeted.wire(&python, "cursor", &(TIMEOUT_S + 3).to_string());
    assert_eq!(cursor["first"]["rows"], 1, "{cursor}");
    assert!(cursor["first"]["seconds"].as_f64().is_some_and(|s| s < 3.0), "{cursor}");
    assert_eq!(
        cursor["after"]["sqlstate"], "57014",
        "the cursor's query ended at its deadline: {cursor}"
    );
    budgeted.assert_within_budget("a cursor left open", started);

    // Cursors one after another: each holds a query slot, the third is refused.
    let started = Instant::now();
    let cursors = budgeted.wire(&python, "cursors", &(TIMEOUT_S + 3).to_string());
    assert_eq!(cursors["declared"], 2, "{cursors}");
    assert_eq!(cursors["refusal"]["sqlstate"], "53400", "{cursors}");
    budgeted.assert_within_budget("many cursors", started);

    // Rows asked for with max_rows = 0 (a query with a parameter), none read.
    let started = Instant::now();
    budgeted.wire(&python, "unread", &(TIMEOUT_S + 3).to_string());
    budgeted.assert_within_budget("rows nobody reads", started);

    // FETCH ALL of rows that never end: streamed, stopped at the deadline.
    let started = Instant::now();
    let fetched = budgeted.wire(&python, "fetch_all", "0");
    assert_eq!(fetched["fetch_all"]["sqlstate"], "57014", "{fetched}");
    budgeted.assert_within_budget("FETCH ALL", started);

    // Prepared statements under new names, none closed: a connection keeps a thousand.
    let prepared = budgeted.wire(&python, "prepared", "0");
    assert_eq!(prepared["prepared"], 1000, "{prepared}");
    assert_eq!(prepared["refusal"]["sqlstate"], "54000", "{prepared}");

    // A client's own cancel.
    let started = Instant::now();
    let cancelled = budgeted.wire(&python, "cancel", "0");
    assert_eq!(cancelled["cancelled"]["sqlstate"], "57014", "{cancelled}");
    assert!(
        cancelled["cancelled"]["seconds"].as_f64().is_some_and(|s| s < 3.0),
        "cancelled at once: {cancelled}"
    );
    assert_eq!(cancelled["after"]["rows"], 1, "{cancelled}");
    budgeted.assert_within_budget("a cancelled query", started);

    // SIGTERM stops the server while its clients still hold work.
    let holding = Command::new(&python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/budget_client.py"))
        .args(["unread", &budgeted.pg_port, "phan-tich", &budgeted.analyst, "20"])
        .spawn()
        .expect("python runs");
    std::thread::sleep(Duration::from_secs(2));
    let took = budgeted.server.terminate();
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let mut holding = holding;
    holding.kill().ok();
    holding.wait().ok();
}

#[test]
fn a_sign_in_form_from_another_site_is_refused() {
    let budgeted = Budgeted::new();
    let form = format!("token={}", budgeted.analyst);
    let sign_in = |from: &str| {
        let headers = ["Content-Type: application/x-www-form-urlencoded", from];
        budgeted.server.request("POST", "/sign-in", &headers, form.as_bytes()).0
    };
    let head = sign_in("Origin: http://evil.example");
    assert_eq!(status(&head), 403, "a sign-in form from another site: {head}");
    let head = sign_in("Sec-Fetch-Site: cross-site");
    assert_eq!(status(&head), 403, "{head}");
    let head = sign_in("Referer: http://evil.example/login.html");
    assert_eq!(status(&head), 403, "{head}");
    let head = sign_in(&format!("Origin: http://{}", budgeted.server.address));
    assert_eq!(status(&head), 303, "a sign-in from the server's own page: {head}");
    assert!(header(&head, "set-cookie").is_some());
}
