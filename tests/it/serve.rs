//! `khoso serve` as a process: it answers on the address it prints; a commit made by
//! `khoso ingest` in another process shows on the next request, with a new ETag; and the API,
//! `khoso kpi` and the pages show the same numbers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use crate::{Data, corpus, khoso, run, stderr, stdout};

/// A running `khoso serve`, stopped when dropped.
pub struct Server {
    child: Child,
    /// Where it answers: `127.0.0.1:PORT`.
    pub address: String,
}

impl Server {
    pub fn start(data: &(impl Data + ?Sized)) -> Server {
        Self::start_with(data, &[])
    }

    /// `khoso serve` with more arguments.
    pub fn start_with(data: &(impl Data + ?Sized), args: &[&str]) -> Server {
        Self::start_logging(data, args, Stdio::null())
    }

    /// `khoso serve` with more arguments, its log (stderr) going to `log`.
    pub fn start_logging(data: &(impl Data + ?Sized), args: &[&str], log: impl Into<Stdio>) -> Server {
        let mut command = khoso(data);
        command.args(["serve", "--addr", "127.0.0.1:0"]).args(args).stderr(log);
        Self::spawn(command)
    }

    /// The server `command` starts (`khoso … serve --addr 127.0.0.1:0 …`).
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = lines
            .find_map(|line| {
                let line = line.ok()?;
                let start = line.find("http://")? + "http://".len();
                Some(line[start..].split('/').next()?.to_string())
            })
            .expect("the server prints its address");
        Server { child, address }
    }

    /// A plain HTTP/1.0 request (see [`http`]).
    pub fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (String, String) {
        http(&self.address, method, path, headers, body)
    }

    /// A GET with extra header lines.
    pub fn get_with(&self, path: &str, headers: &[&str]) -> (String, String) {
        self.request("GET", path, headers, &[])
    }

    /// A GET's body.
    pub fn get(&self, path: &str) -> String {
        self.get_with(path, &[]).1
    }

    /// A GET's body as JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let body = self.get(path);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it neither exited nor crashed).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The most memory the process has held so far (`VmHWM`), in MB.
    pub fn peak_memory_mb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    }

    /// CPU time the process has used (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime and stime are the
        // 12th and 13th, in clock ticks of 1/100 s.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<f64> = after.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        fields.get(10..12).map_or(0.0, |t| (t[0] + t[1]) / 100.0)
    }

    /// Asserts that the same process is running and answers `/healthz` and `/` within a
    /// second each (`/` may send a stranger to the sign-in page of a private server).
    pub fn assert_answers(&mut self, after: &str) {
        assert!(self.running(), "the server process stopped after {after}");
        for path in ["/healthz", "/"] {
            let asked = std::time::Instant::now();
            let (head, _) = self.get_with(path, &[]);
            assert!(matches!(status(&head), 200 | 303), "{path} after {after}: {head}");
            assert!(
                asked.elapsed() < std::time::Duration::from_secs(1),
                "{path} took {:?} after {after}",
                asked.elapsed()
            );
        }
    }

    /// Stops the server with SIGTERM and returns how long it took to exit.
    pub fn terminate(&mut self) -> std::time::Duration {
        let asked = std::time::Instant::now();
        // The shell's own kill: no package needed.
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.pid())])
            .status()
            .expect("sh runs");
        while asked.elapsed() < std::time::Duration::from_secs(30) {
            if !self.running() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        asked.elapsed()
    }

    /// Kills the server at once (SIGKILL), whatever it is doing.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A plain HTTP/1.0 request (no chunked answers) with extra header lines and a body: the
/// head and the body of the answer (empty if the server went away).
pub fn http(address: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (String, String) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return (String::new(), String::new());
    };
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    if method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok();
    // The server may answer (413) before it has read the whole body.
    stream.write_all(body).ok();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_string(), body.to_string())
}

/// The status code of a response head.
pub fn status(head: &str) -> u16 {
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The value of a header in an answer's head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn t1_national_2024(server: &Server) -> f64 {
    server.json("/api/v1/kpis/T1_pupils?year=2024-2025")["values"][0]["value"]
        .as_f64()
        .expect("a value")
}

#[test]
fn a_commit_from_another_process_shows_on_the_next_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    let first = run(khoso(&data)
        .args(["ingest", "--kind", "school"])
        .arg(corpus("good_utf8_no_bom.csv")));
    assert!(first.status.success(), "{}", stderr(&first));

    let server = Server::start(&data);
    // 2,500 of 3,684 pupils able to study online.
    let before = t1_national_2024(&server);
    assert!((before - 100.0 * 2500.0 / 3684.0).abs() < 1e-9, "{before}");
    let (head, body) = server.get_with("/", &[]);
    assert!(body.contains("Học sinh đủ điều kiện học trực tuyến"));
    let etag = header(&head, "etag").expect("an ETag").to_string();
    let (unchanged, body) = server.get_with("/", &[&format!("If-None-Match: {etag}")]);
    assert!(
        unchanged.starts_with("HTTP/1.0 304") || unchanged.starts_with("HTTP/1.1 304"),
        "{unchanged}"
    );
    assert!(body.is_empty());

    let text = std::fs::read_to_string(corpus("good_utf8_no_bom.csv")).expect("corpus");
    let fixed = dir.path().join("fixed.csv");
    std::fs::write(&fixed, text.replacen(",800,", ",1000,", 1)).expect("write");
    let second = run(khoso(&data).args(["ingest", "--kind", "school"]).arg(&fixed));
    assert!(second.status.success(), "{}", stderr(&second));
    let after = t1_national_2024(&server);
    assert!((after - 100.0 * 2700.0 / 3684.0).abs() < 1e-9, "{after}");
    // The old ETag no longer matches: the page comes whole, under a new ETag.
    let (changed, body) = server.get_with("/", &[&format!("If-None-Match: {etag}")]);
    assert!(changed.contains(" 200 "), "{changed}");
    assert!(body.contains("class=\"card\""));
    assert_ne!(header(&changed, "etag"), Some(etag.as_str()));
}

#[test]
fn api_cli_and_pages_show_the_same_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", "2023-2024..2024-2025", "11", true);
    let cli = run(khoso(&data)
        .args(["kpi", "--kpi", "T1_pupils", "--by", "province", "--year", "2024-2025"])
        .args(["--format", "json"]));
    assert!(cli.status.success(), "{}", stderr(&cli));
    let cli: Vec<serde_json::Value> = serde_json::from_str(&stdout(&cli)).expect("json");
    assert_eq!(cli.len(), 63);

    let server = Server::start(&data);
    let api = server.json("/api/v1/kpis/T1_pupils?by=province&year=2024-2025");
    let api = api["values"].as_array().expect("values");
    let page = server.get("/kpi/T1_pupils?year=2024-2025&list=province");
    let english = server.get("/kpi/T1_pupils?year=2024-2025&list=province&lang=en");
    use dashboard::i18n::Words;
    let vi = dashboard::i18n::Lang::Vi;
    let en = dashboard::i18n::Lang::En;
    for row in &cli {
        let unit = row["unit"].as_str().expect("unit");
        let from_api = api
            .iter()
            .find(|v| v["unit"] == unit)
            .expect("the API has the province");
        assert_eq!(from_api["value"], row["value"], "{unit}: API and CLI");
        assert_eq!(from_api["status"], row["status"], "{unit}");
        let value = row["value"].as_f64();
        for (body, lang) in [(&page, vi), (&english, en)] {
            let line = body
                .split("<tr>")
                .find(|r| r.starts_with(&format!("<td><a href=\"/province/{unit}?")))
                .unwrap_or_else(|| panic!("{unit} in the table"));
            assert!(
                line.contains(&format!("<td class=\"value\">{}</td>", lang.percent(value))),
                "{unit}: {line}"
            );
            // The map's shape of the province links to its page and says the same value.
            let start = body
                .find(&format!("data-code=\"{unit}\""))
                .unwrap_or_else(|| panic!("{unit} on the map"));
            let anchor = &body[body[..start].rfind("<a ").expect("its link")..start];
            assert!(
                anchor.contains(&format!("href=\"/province/{unit}?")),
                "{unit}: {anchor}"
            );
            let title = &body[start..];
            let title = &title[title.find("<title>").expect("a title") + 7..title.find("</title>").expect("closed")];
            assert!(
                title.contains(&format!("({unit}): {}", lang.percent(value))),
                "{unit}: {title}"
            );
        }
    }
}

/// Queries that would run for ever, fill the memory or overflow the stack, each with what its
/// error may say on a server started with `--query-timeout-s 3 --query-memory-mb 64`: a cross
/// join of the biggest table sorted, a bigger one streamed, a sum over a three-way cross join
/// (an aggregate that never waits on its input), a huge `generate_series`, a recursive CTE
/// without end, values grown past the cap of one function's result, and expressions too deep or
/// too long to plan.
pub fn hostile_queries() -> Vec<(String, [&'static str; 2])> {
    let flat = format!("SELECT 1{}", "+1".repeat(5_000));
    let nested = format!("SELECT {}1{}", "(".repeat(2_000), ")".repeat(2_000));
    let listed = format!(
        "SELECT count(*) FROM school_reports WHERE school_id IN ({})",
        (0..20_000).map(|i| format!("'S{i}'")).collect::<Vec<_>>().join(",")
    );
    let chained = format!(
        "WITH c0 AS (SELECT 1 AS x), {} SELECT x FROM c300",
        (1..=300)
            .map(|i| format!("c{i} AS (SELECT x FROM c{})", i - 1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cases: [(&str, [&'static str; 2]); 13] = [
        (
            "SELECT a.*, b.*, c.school_id FROM school_reports a CROSS JOIN school_reports b \
             CROSS JOIN school_reports c ORDER BY 1",
            ["more than 64 mb of memory", "longer than 3 s"],
        ),
        (
            "SELECT a.*, b.school_id, c.school_id FROM school_reports a CROSS JOIN school_reports b \
             CROSS JOIN school_reports c CROSS JOIN school_reports d",
            ["longer than 3 s", "more than 64 mb of memory"],
        ),
        (
            "SELECT sum(a.students + b.students + c.students + d.students) FROM school_reports a, \
             school_reports b, school_reports c, school_reports d",
            ["longer than 3 s", "longer than 3 s"],
        ),
        (
            "SELECT sum(value) FROM generate_series(1, 100000000000)",
            ["longer than 3 s", "longer than 3 s"],
        ),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
            ["longer than 3 s", "more than 64 mb of memory"],
        ),
        (
            "SELECT length(repeat('x', 2000000000))",
            ["the limit is 32 mb", "the limit is 32 mb"],
        ),
        (
            "SELECT length(lpad(school_name, 100000000)) FROM school_reports",
            ["the limit is 32 mb", "the limit is 32 mb"],
        ),
        (
            "SELECT length(replace(repeat('a', 1000000), 'a', repeat('b', 1000)))",
            ["the limit is 32 mb", "the limit is 32 mb"],
        ),
        (
            "SELECT cardinality(range(1, 10000000000))",
            ["the limit is 32 mb", "the limit is 32 mb"],
        ),
        (
            "WITH a AS (SELECT repeat('x', 20000000) AS s) SELECT length(s || s || s) FROM a",
            ["the limit is 32 mb", "the limit is 32 mb"],
        ),
        (flat.as_str(), ["too complex", "operators"]),
        (nested.as_str(), ["too complex", "nested parentheses"]),
        (listed.as_str(), ["too complex", "list items"]),
    ];
    let mut queries: Vec<(String, [&'static str; 2])> = cases.iter().map(|(q, e)| (q.to_string(), *e)).collect();
    queries.push((chained, ["too complex", "select, join"]));
    queries
}

/// Sends each hostile query with `send` (which gives the error the client got, or `None` when
/// the query did not fail) and checks that it ends with a clear error within 20 s while the
/// dashboard keeps answering, quickly.
pub fn assert_hostile_queries_fail_cleanly<F>(server: &Server, send: F)
where
    F: Fn(&str) -> Option<String> + Clone + Send + 'static,
{
    for (query, expected) in hostile_queries() {
        let started = std::time::Instant::now();
        let shown = query.chars().take(120).collect::<String>();
        let running = {
            let send = send.clone();
            std::thread::spawn(move || send(&query))
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        let asked = std::time::Instant::now();
        let (head, page) = server.get_with("/", &[]);
        assert_eq!(status(&head), 200, "the overview during {shown}: {head}");
        assert!(page.contains("class=\"card\""));
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(2),
            "the overview took {:?} during {shown}",
            asked.elapsed()
        );
        let said = running
            .join()
            .expect("query thread")
            .unwrap_or_else(|| panic!("{shown} did not fail"))
            .to_lowercase();
        assert!(expected.iter().any(|e| said.contains(e)), "{shown}: {said}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(6),
            "{shown} took {:?}",
            started.elapsed()
        );
        // Stopped, not only answered: the server is idle again within a second.
        std::thread::sleep(std::time::Duration::from_secs(1));
        let busy = server.cpu_seconds();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let spent = server.cpu_seconds() - busy;
        assert!(
            spent < 0.5,
            "{shown}: the server spent {spent:.2} s of CPU in the second after it failed"
        );
    }
}

#[test]
fn every_request_leaves_one_log_line_naming_its_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", "2024-2025..2024-2025", "4", true);
    let token = crate::account(&data, "phan-tich", "analyst", None);
    let log = dir.path().join("serve.log");
    let server = Server::start_logging(
        &data,
        &["--log-format", "json"],
        std::fs::File::create(&log).expect("log file"),
    );
    let (head, _) = server.get_with("/api/v1/kpis", &[&format!("Authorization: Bearer {token}")]);
    assert_eq!(status(&head), 200, "{head}");
    let id = header(&head, "x-request-id")
        .expect("the answer names its request")
        .to_string();
    let (head, _) = server.get_with("/province/99", &["X-Request-Id: from-the-proxy-42"]);
    assert_eq!(header(&head, "x-request-id"), Some("from-the-proxy-42"));
    let lines = crate::eventually(
        || std::fs::read_to_string(&log).unwrap_or_default(),
        |text| text.contains("from-the-proxy-42"),
    );
    let events: Vec<serde_json::Value> = lines.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let line = |request_id: &str| {
        events
            .iter()
            .find(|e| e["request_id"] == request_id)
            .unwrap_or_else(|| panic!("a line for request {request_id} in {lines}"))
    };
    let kpis = line(&id);
    assert_eq!(kpis["target"], "khoso::request");
    assert_eq!(kpis["level"], "INFO");
    assert_eq!(kpis["method"], "GET");
    assert_eq!(kpis["path"], "/api/v1/kpis");
    assert_eq!(kpis["status"], 200);
    assert_eq!(kpis["account"], "phan-tich");
    assert!(kpis["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{kpis}");
    let missing = line("from-the-proxy-42");
    assert_eq!(
        (missing["status"].as_u64(), missing["account"].as_str()),
        (Some(404), Some("-"))
    );
    assert_eq!(
        events.iter().filter(|e| e["target"] == "khoso::request").count(),
        2,
        "one line per request: {lines}"
    );
}

#[test]
fn metrics_count_requests_by_route_events_and_queries_and_give_the_tables_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, reports) = crate::generated(dir.path(), "0.01", "2024-2025..2024-2025", "4", true);
    let token = crate::account(&data, "phan-tich", "analyst", None);
    let bearer = format!("Authorization: Bearer {token}");
    let admin = format!(
        "Authorization: Bearer {}",
        crate::account(&data, "bo-gd", "admin", None)
    );
    // A private server: the monitoring system and the load balancer need no account.
    let mut server = Server::start_with(&data, &["--private"]);
    let (head, body) = server.get_with("/readyz", &[]);
    assert_eq!((status(&head), body.as_str()), (200, "ready"), "{head}");
    for _ in 0..3 {
        assert_eq!(status(&server.get_with("/api/v1/kpis", &[&bearer]).0), 200);
    }
    // Made-up paths are counted, not kept.
    for i in 0..40 {
        assert_eq!(status(&server.get_with(&format!("/made-up-{i}"), &[&bearer]).0), 404);
    }
    let (head, _) = server.request(
        "POST",
        "/api/v1/sql",
        &[&bearer],
        b"SELECT count(*) FROM school_reports",
    );
    assert_eq!(status(&head), 200, "{head}");
    // A province's file checked (a dry run) on the web.
    let file = std::fs::read_dir(reports.join("school").join("2024-2025"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("school-01-"))
        .expect("Hà Nội's file");
    let (head, body) = server.request(
        "POST",
        "/api/v1/submissions?kind=school&year=2024-2025&province=01&dry_run=true",
        &[&admin],
        &std::fs::read(&file).expect("read"),
    );
    assert_eq!(status(&head), 200, "{body}");
    // Two wrong tokens at the sign-in page: refused, and counted.
    for _ in 0..2 {
        let (head, _) = server.request(
            "POST",
            "/sign-in",
            &["Content-Type: application/x-www-form-urlencoded"],
            b"token=not-a-token",
        );
        assert!(status(&head) < 500, "{head}");
    }

    let (head, text) = server.get_with("/metrics", &[]);
    assert_eq!(status(&head), 200, "{head}");
    assert!(
        header(&head, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{head}"
    );
    for line in [
        "khoso_http_requests_total{route=\"/api/v1/kpis\",method=\"GET\",status=\"200\"} 3",
        "khoso_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 40",
        "khoso_http_request_duration_seconds_count{route=\"/api/v1/kpis\"} 3",
        "khoso_events_total{action=\"query\",outcome=\"ok\"} 1",
        "khoso_events_total{action=\"sign_in\",outcome=\"unauthorized\"} 2",
        "khoso_query_duration_seconds_count{channel=\"http\"} 1",
        "khoso_intake_duration_seconds_count{intent=\"preview\"} 1",
        // The query ended: its slot was given back.
        "khoso_queries_running 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(!text.contains("made-up"), "{text}");
    let refreshes = text
        .lines()
        .find_map(|l| l.strip_prefix("khoso_figures_refresh_duration_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(refreshes.is_some_and(|n| n >= 1), "the figures were made: {text}");
    // The version of each table, as its log says.
    let log = data.join("tables").join("school_reports").join("_delta_log");
    let latest = std::fs::read_dir(log)
        .expect("log")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse::<u64>().ok())
        .max()
        .expect("a version");
    let line = format!("khoso_table_version{{table=\"school_reports\"}} {latest}");
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    // Its data files (none replaced yet: every Parquet file under the table is in use).
    fn parquet_files(folder: &std::path::Path) -> usize {
        std::fs::read_dir(folder)
            .expect("folder")
            .flatten()
            .map(|e| match e.path() {
                path if path.is_dir() => parquet_files(&path),
                path => usize::from(path.extension().is_some_and(|x| x == "parquet")),
            })
            .sum()
    }
    let files = parquet_files(&data.join("tables").join("school_reports"));
    assert!(files > 1);
    let line = format!("khoso_table_files{{table=\"school_reports\"}} {files}");
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");

    // Strangers scraping as fast as they can: the same server still answers its pages.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for i in 0..100 {
                    let path = if i % 2 == 0 { "/metrics" } else { "/readyz" };
                    assert_eq!(status(&server.get_with(path, &[]).0), 200);
                }
            });
        }
    });
    server.assert_answers("400 scrapes");
}

/// Settings come from the file, then `KHOSO_*` variables, then flags, each winning over the one
/// before; `khoso config check` says which, secrets masked; a name the file should not have is
/// refused; and `khoso serve` runs with what the file says.
#[test]
fn settings_come_from_the_file_then_variables_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let init = run(khoso(&data).arg("init"));
    assert!(init.status.success(), "{}", stderr(&init));
    let file = dir.path().join("khoso.toml");
    std::fs::write(
        &file,
        format!(
            "data = {:?}\nstorage-option = [\"aws_secret_access_key=hidden-value\"]\n\n[serve]\n\
             addr = \"127.0.0.1:0\"\nprivate = true\nquery_timeout_s = 12\nmax-upload-mb = 7\n\
             session-key = \"file-session-key-0123456789abcdef\"\n",
            data.display().to_string()
        ),
    )
    .expect("write");
    let bare = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_khoso"));
        command
            .env_remove("KHOSO_DATA")
            .env_remove("KHOSO_SAMPLE_DIR")
            .arg("--config")
            .arg(&file);
        command
    };
    let checked = run(bare()
        .env("KHOSO_MAX_UPLOAD_MB", "9")
        .env("KHOSO_QUERY_MEMORY_MB", "300")
        .env("KHOSO_REQUIRE_APPROVAL", "1")
        .args(["--log-format", "json", "config", "check"]));
    assert!(checked.status.success(), "{}", stderr(&checked));
    let text = stdout(&checked);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
            .to_string()
    };
    let file_source = format!("(file {})", file.display());
    assert!(
        line("data").contains(&data.display().to_string()) && line("data").ends_with(&file_source),
        "{text}"
    );
    assert!(line("serve.query-timeout-s").contains("= 12") && line("serve.query-timeout-s").ends_with(&file_source));
    assert!(line("serve.private").contains("= true"), "{text}");
    assert!(
        line("serve.max-upload-mb").contains("= 9")
            && line("serve.max-upload-mb").ends_with("(variable KHOSO_MAX_UPLOAD_MB)"),
        "{text}"
    );
    assert!(line("serve.query-memory-mb").contains("= 300"), "{text}");
    assert!(line("serve.require-approval").contains("= 1"), "{text}");
    assert!(line("serve.behind-proxy").ends_with("(default)"), "{text}");
    assert!(
        line("log-format").contains("json") && line("log-format").ends_with("(flag)"),
        "{text}"
    );
    assert!(
        !text.contains("hidden-value") && !text.contains("file-session-key"),
        "secrets masked: {text}"
    );
    assert!(line("serve.session-key").contains("****"), "{text}");

    // The server runs with them: private (the file), at the address it says.
    let mut serve = bare();
    serve.arg("serve");
    let mut server = Server::spawn(serve);
    let (head, _) = server.request("GET", "/", &[], b"");
    assert_eq!(status(&head), 303, "private, as the file says: {head}");
    server.assert_answers("a server configured by its file");

    // A name the file should not have stops every command, naming it and the file.
    std::fs::write(&file, "[serve]\nquery_timeout = 5\n").expect("write");
    let refused = run(bare().args(["config", "check"]));
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains("unknown setting `[serve] query_timeout`") && message.contains("query-timeout-s"),
        "{message}"
    );
    let refused = run(bare().arg("serve"));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}
