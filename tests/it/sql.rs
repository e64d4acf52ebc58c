//! SQL for planners against a running `khoso serve` (with a 3-second, 64 MB limit per query):
//! who may query, JSON with its truncation notice, full CSV and Arrow downloads, formula-safe
//! CSV, the workbench page, the audit of every query, the per-account cap, and hostile queries
//! that each end with a clear error while the dashboard keeps answering.

use crate::serve::{Server, assert_hostile_queries_fail_cleanly, http, status};
use crate::{account, eventually, khoso, run, stdout};

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    server: Server,
    analyst: String,
    admin: String,
    province: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, _) = crate::generated(dir.path(), "0.02", "2024-2025..2024-2025", "3", true);
        let analyst = account(&data, "phan-tich", "analyst", None);
        let admin = account(&data, "bo-gd", "admin", None);
        let province = account(&data, "so-gd-ha-noi", "province", Some("01"));
        let server = Server::start_with(&data, &["--query-timeout-s", "3", "--query-memory-mb", "64"]);
        Fixture {
            _dir: dir,
            data,
            server,
            analyst,
            admin,
            province,
        }
    }

    /// Hà Nội's (01) pupils, by the CLI.
    fn pupils_of_hanoi(&self) -> u64 {
        stdout(&run(khoso(&self.data).args([
            "sql",
            "SELECT sum(students) FROM school_reports WHERE province_code = '01'",
            "--format",
            "csv",
        ])))
        .lines()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("Hà Nội's pupils")
    }

    /// The workbench's form sent by an account: (head, page).
    fn workbench(&self, token: &str, form: &str) -> (String, String) {
        let bearer = format!("Authorization: Bearer {token}");
        self.server.request(
            "POST",
            "/sql",
            &[&bearer, "Content-Type: application/x-www-form-urlencoded"],
            form.as_bytes(),
        )
    }

    fn sql(&self, token: Option<&str>, accept: &str, query: &str) -> (u16, String, String) {
        let mut headers = vec![format!("Accept: {accept}"), "Content-Type: text/plain".to_string()];
        if let Some(token) = token {
            headers.push(format!("Authorization: Bearer {token}"));
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (head, body) = self.server.request("POST", "/api/v1/sql", &headers, query.as_bytes());
        (status(&head), head, body)
    }
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

#[test]
fn who_may_query_and_what_comes_back() {
    let f = Fixture::new();
    let count = "SELECT count(*) AS n FROM school_reports";
    assert_eq!(f.sql(None, "application/json", count).0, 401);
    assert_eq!(
        f.sql(Some(&f.province), "application/json", count).0,
        403,
        "a province uploads, not queries"
    );
    let (code, _, body) = f.sql(Some(&f.analyst), "application/json", count);
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let cli = run(khoso(&f.data).args(["sql", count, "--format", "csv"]));
    assert_eq!(
        format!("n\n{}\n", json["rows"][0]["n"]),
        stdout(&cli),
        "the API and the CLI agree"
    );

    let (code, _, body) = f.sql(Some(&f.analyst), "application/json", "SELECT * FROM audit_log");
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        f.sql(Some(&f.admin), "application/json", "SELECT * FROM audit_log").0,
        200
    );
    let (code, _, body) = f.sql(Some(&f.analyst), "application/json", "DROP TABLE submissions");
    assert_eq!(code, 400);
    assert!(message(&body).contains("read-only"), "{body}");
    let (code, _, body) = f.sql(Some(&f.analyst), "application/json", "SELEC 1");
    assert_eq!(code, 400);
    assert!(
        message(&body).contains("Line: 1, Column"),
        "the position of the mistake: {body}"
    );

    // JSON shows the first 1,000 rows and says how many there are; CSV and Arrow have them all.
    let series = "SELECT value AS n, '=1+1' AS formula FROM generate_series(1, 5000)";
    let (code, head, body) = f.sql(Some(&f.analyst), "application/json", series);
    assert_eq!(code, 200);
    let head = head.to_lowercase();
    assert!(
        head.contains("khoso-rows-shown: 1000") && head.contains("khoso-rows-total: 5000"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (json["shown"].as_u64(), json["total"].as_u64()),
        (Some(1000), Some(5000))
    );
    let (code, _, csv) = f.sql(Some(&f.analyst), "text/csv", series);
    assert_eq!(code, 200);
    assert_eq!(csv.lines().count(), 5001, "every row, and the header");
    assert_eq!(csv.lines().nth(1), Some("1,'=1+1"), "a formula cell is neutralised");
    let arrow = {
        let auth = format!("Authorization: Bearer {}", f.analyst);
        let mut stream = std::net::TcpStream::connect(&f.server.address).expect("connect");
        use std::io::{Read, Write};
        let request = format!(
            "POST /api/v1/sql HTTP/1.0\r\nAccept: application/vnd.apache.arrow.stream\r\n{auth}\r\nContent-Length: {}\r\n\r\n{series}",
            series.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        let start = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        answer[start..].to_vec()
    };
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow), None)
        .expect("an Arrow IPC stream");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 5000);

    // The audit log is written in the background: it holds the queries soon after.
    let audit = eventually(
        || {
            stdout(&run(khoso(&f.data).args([
                "sql",
                "SELECT actor, outcome, detail FROM audit_log WHERE action = 'query' ORDER BY at",
                "--format",
                "csv",
            ])))
        },
        |audit| audit.contains("phan-tich,forbidden") && audit.contains("phan-tich,ok,1 rows in"),
    );
    assert!(
        audit.contains("phan-tich,ok,1 rows in"),
        "queries are audited with rows and time: {audit}"
    );
    assert!(audit.contains("phan-tich,forbidden"), "{audit}");
}

#[test]
fn hostile_queries_end_with_a_clear_error_while_the_dashboard_answers() {
    let f = Fixture::new();
    let (address, token) = (f.server.address.clone(), f.analyst.clone());
    assert_hostile_queries_fail_cleanly(&f.server, move |query| {
        let auth = format!("Authorization: Bearer {token}");
        let headers = [auth.as_str(), "Accept: application/json"];
        let (head, body) = http(&address, "POST", "/api/v1/sql", &headers, query.as_bytes());
        (status(&head) == 400).then(|| message(&body))
    });
    // A 10 MB query text is refused before it is parsed.
    let huge = format!("SELECT 1 -- {}", "x".repeat(10 * 1024 * 1024));
    let (code, _, body) = f.sql(Some(&f.analyst), "application/json", &huge);
    assert_eq!(code, 400);
    assert!(
        message(&body).contains("the limit is 1024 KB"),
        "{}",
        &body[..body.len().min(300)]
    );
    let (head, _) = f.server.get_with("/healthz", &[]);
    assert_eq!(status(&head), 200, "the server lives");
}

#[test]
fn one_account_runs_two_queries_at_a_time_and_the_workbench_shows_results() {
    let f = Fixture::new();
    let slow = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| f.sql(Some(&f.analyst), "application/json", slow).0))
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(answers.contains(&429), "a third query at once is refused: {answers:?}");
    assert_eq!(
        f.sql(Some(&f.admin), "application/json", "SELECT 1").0,
        200,
        "others are not held up"
    );

    let bearer = format!("Authorization: Bearer {}", f.analyst);
    let (head, page) = f.server.get_with("/sql", &[&bearer]);
    assert_eq!(status(&head), 200);
    for table in ["school_reports", "kpi_values", "provinces", "learners"] {
        assert!(
            page.contains(&format!("<code>{table}</code>")),
            "{table} in the schema browser"
        );
    }
    assert!(
        page.contains("Tổng số học sinh"),
        "column descriptions from the report schemas"
    );
    let form = "sql=SELECT+value+FROM+generate_series%281%2C+5000%29";
    let (head, page) = f.workbench(&f.analyst, form);
    assert_eq!(status(&head), 200, "{page}");
    assert!(
        page.contains("Hiển thị 1.000 / 5.000 dòng"),
        "the notice of what is cut"
    );
    assert_eq!(page.matches("<tr><td>").count(), 1000);
    let (head, page) = f.workbench(&f.analyst, "sql=SELECT+code%0AFROM+nowhere");
    assert_eq!(status(&head), 400);
    assert!(page.contains("id=\"sql-error\""), "the error is shown");
    assert!(
        page.contains("data-line=\"2\" data-column=\"6\"") && page.contains("FROM nowhere\n     ^"),
        "the error points at the unknown table: {page}"
    );
    let (_, _, body) = f.sql(
        Some(&f.analyst),
        "application/json",
        "SELECT code\nFROM provinces WHERE",
    );
    assert!(
        message(&body).contains("syntax error: Expected: an expression, found: EOF (at line 2, column 21)"),
        "{body}"
    );
    let (head, csv) = f.workbench(&f.analyst, &format!("{form}&format=csv"));
    assert_eq!(status(&head), 200);
    assert_eq!(csv.lines().count(), 5001, "the download has every row");
    // The history remembers the query; a saved query opens for another account by its link.
    let (_, page) = f.server.get_with("/sql", &[&bearer]);
    assert!(
        page.contains("Truy vấn gần đây của bạn") && page.contains("generate_series(1, 5000)"),
        "history"
    );
    let (head, _) = f.server.request(
        "POST",
        "/sql/save",
        &[&bearer, "Content-Type: application/x-www-form-urlencoded"],
        b"name=Pupils+by+year&sql=SELECT+school_year%2C+sum%28students%29+FROM+school_reports+GROUP+BY+1",
    );
    assert_eq!(status(&head), 303, "{head}");
    let link = crate::serve::header(&head, "location")
        .expect("the saved query's link")
        .to_string();
    assert!(link.starts_with("/sql?saved="), "{link}");
    let admin = format!("Authorization: Bearer {}", f.admin);
    let (head, page) = f.server.get_with(&link, &[&admin]);
    assert_eq!(status(&head), 200);
    assert!(
        page.contains("SELECT school_year, sum(students) FROM school_reports GROUP BY 1</textarea>"),
        "opened"
    );
    assert!(page.contains("Pupils by year"), "listed among the saved queries");
    let download = |format: &str, query: &str| {
        let form = format!("sql={}&format={format}", query.replace(' ', "+").replace(',', "%2C"));
        let mut stream = std::net::TcpStream::connect(&f.server.address).expect("connect");
        use std::io::{Read, Write};
        let request = format!(
            "POST /sql HTTP/1.0\r\n{bearer}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        let start = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        (
            String::from_utf8_lossy(&answer[..start]).into_owned(),
            answer[start..].to_vec(),
        )
    };
    let query = "SELECT value AS n, '@SUM(A1)' AS f FROM generate_series(1,5000)";
    let (_, json) = download("json", query);
    let json: serde_json::Value = serde_json::from_slice(&json).expect("a JSON array");
    assert_eq!(json.as_array().map(Vec::len), Some(5000));
    let (_, parquet) = download("parquet", query);
    let parquet_file = f.data.with_file_name("download.parquet");
    std::fs::write(&parquet_file, parquet).expect("write");
    let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&parquet_file).expect("open"),
    )
    .expect("a Parquet file")
    .build()
    .expect("reader");
    assert_eq!(reader.map(|b| b.expect("batch").num_rows()).sum::<usize>(), 5000);
    let (head, xlsx) = download("xlsx", query);
    assert!(head.contains(" 200 "), "{head}");
    assert!(xlsx.starts_with(b"PK"), "an XLSX file");
    let (head, refused) = download("xlsx", "SELECT value FROM generate_series(1,1100000)");
    assert!(head.contains(" 400 "), "{head}");
    assert!(String::from_utf8_lossy(&refused).contains("download CSV or Parquet"));
}

#[test]
fn many_accounts_querying_at_once_are_all_answered_and_the_server_goes_on() {
    // Every query opens a session whose tables are loaded from their logs: many at once must not
    // take every thread the loads' own reads need (eight clients once stalled the whole server).
    let dir = tempfile::tempdir().expect("tempdir");
    let data = crate::generated_with_learners(dir.path(), "0.01", "5");
    let tokens: Vec<String> = (0..4)
        .map(|n| account(&data, &format!("dong-thoi-{n}"), "analyst", None))
        .collect();
    let server = Server::start_with(&data, &[]);
    let query = "SELECT count(*), sum(students) FROM school_reports WHERE province_code = '79'";
    let ask = |token: &str| {
        let headers = [
            format!("Authorization: Bearer {token}"),
            "Accept: application/json".to_string(),
        ];
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (head, body) = server.request("POST", "/api/v1/sql", &headers, query.as_bytes());
        let rows = serde_json::from_str::<serde_json::Value>(&body).map(|answer| answer["rows"].to_string());
        (status(&head), rows.unwrap_or(body))
    };
    let expected = ask(&tokens[0]).1;
    let (done, answers) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for token in tokens.iter().chain(tokens.iter()) {
            let (done, ask) = (done.clone(), &ask);
            scope.spawn(move || {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
                while std::time::Instant::now() < until {
                    done.send(Some(ask(token))).ok();
                }
                done.send(None).ok();
            });
        }
        let (mut running, mut answered) = (tokens.len() * 2, 0);
        while running > 0 {
            match answers.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(Some((code, body))) => {
                    assert!(code == 200 && body == expected || code == 429, "{code}: {body}");
                    answered += 1;
                }
                Ok(None) => running -= 1,
                Err(_) => panic!("the server stalled: {answered} queries answered, then none for 30 s"),
            }
        }
    });
    let (head, _) = server.get_with("/", &[]);
    assert_eq!(status(&head), 200, "the pages answer after");
}

#[test]
fn a_result_is_drawn_as_a_chart_on_the_page_and_through_the_api() {
    let mut f = Fixture::new();
    let chart = |token: Option<&str>, body: &str| {
        let mut headers = vec!["Content-Type: application/json".to_string()];
        if let Some(token) = token {
            headers.push(format!("Authorization: Bearer {token}"));
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (head, body) = f.server.request("POST", "/api/v1/sql/chart", &headers, body.as_bytes());
        (
            status(&head),
            crate::serve::header(&head, "content-type").map(str::to_string),
            body,
        )
    };
    let pupils = "SELECT province_code, sum(students) AS pupils FROM school_reports GROUP BY 1 ORDER BY 1";
    let request = |extra: &str| format!("{{\"sql\": {}, \"lang\": \"en\"{extra}}}", serde_json::json!(pupils));

    // The first guess for a result by province is the tile map, its tooltips in the language asked.
    let (code, content_type, svg) = chart(Some(&f.analyst), &request(""));
    assert_eq!(code, 200, "{svg}");
    assert_eq!(content_type.as_deref(), Some("image/svg+xml"));
    let english = grouped(f.pupils_of_hanoi());
    assert!(svg.contains(&format!("Ha Noi (01): {english}")), "{english} in {svg}");
    assert_eq!(
        svg.matches("<a href=\"/province/").count(),
        63,
        "the 63 provinces of 2024-2025"
    );

    // Bars as PNG, asked for by name; a column that is not there, or not a number, is said.
    let (code, content_type, png) = chart(
        Some(&f.analyst),
        &request(", \"chart\": \"bar\", \"x\": \"province_code\", \"y\": \"pupils\", \"format\": \"png\""),
    );
    assert_eq!((code, content_type.as_deref()), (200, Some("image/png")));
    // The body as text: the signature's first byte is not UTF-8.
    assert!(png.starts_with("\u{fffd}PNG\r\n"), "a PNG image");
    let (code, _, body) = chart(Some(&f.analyst), &request(", \"chart\": \"bar\", \"y\": \"students\""));
    assert_eq!(code, 400);
    assert!(
        message(&body).contains("no column \"students\"") && message(&body).contains("province_code, pupils"),
        "{body}"
    );
    let (code, _, body) = chart(Some(&f.analyst), &request(", \"chart\": \"pie\""));
    assert_eq!(code, 400);
    assert!(
        message(&body).contains("bar, stacked_bar, line, scatter, map"),
        "{body}"
    );

    // Who may: as for any query.
    assert_eq!(chart(None, &request("")).0, 401);
    assert_eq!(chart(Some(&f.province), &request("")).0, 403);
    let (code, _, body) = chart(
        Some(&f.analyst),
        "{\"sql\": \"SELECT * FROM audit_log\", \"chart\": \"bar\", \"x\": \"actor\", \"y\": \"at\"}",
    );
    assert_eq!(code, 403, "{body}");

    // The workbench draws the result under the table, with the picker and the downloads.
    let bearer = format!("Authorization: Bearer {}", f.analyst);
    let form = format!(
        "sql={}&chart=stacked_bar&x=level&y=pupils&series=ownership",
        form_encode("SELECT level, ownership, sum(students) AS pupils FROM school_reports GROUP BY 1, 2")
    );
    let (head, page) = f.workbench(&f.analyst, &form);
    assert_eq!(status(&head), 200, "{page}");
    let drawn = &page[page.find("id=\"result-chart\"").expect("the chart section")..];
    assert!(
        drawn.contains("<option value=\"stacked_bar\" selected>"),
        "the picker shows the pick"
    );
    assert!(
        drawn.contains("<svg") && drawn.contains(">public<"),
        "the stacks' legend"
    );
    let link = drawn
        .split("href=\"/sql/chart?")
        .nth(2)
        .and_then(|rest| rest.split('"').next())
        .expect("the PNG link")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let (head, _) = f.server.get_with(&format!("/sql/chart?{link}"), &[&bearer]);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(crate::serve::header(&head, "content-type"), Some("image/png"));
    assert!(
        crate::serve::header(&head, "content-disposition").is_some_and(|d| d.contains("khoso-chart.png")),
        "{head}"
    );

    // Bars of three million rows as PNG: the first 1,000 rows read, 100 bars drawn; the same
    // server still answers its pages in time.
    let (code, content_type, _) = chart(
        Some(&f.analyst),
        "{\"sql\": \"SELECT CAST(value AS VARCHAR) AS label, value FROM generate_series(1, 3000000)\", \"chart\": \
         \"bar\", \"format\": \"png\"}",
    );
    assert_eq!((code, content_type.as_deref()), (200, Some("image/png")));
    f.server.assert_answers("a PNG chart of three million rows");
}

/// A whole number with its thousands grouped by commas, as the English pages write it.
fn grouped(number: u64) -> String {
    grouped_by(number, ',')
}

/// A whole number with its thousands grouped by `separator` (`.` in Vietnamese).
fn grouped_by(number: u64, separator: char) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(digit);
    }
    out
}

/// Text as a form value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_board_of_charts_follows_the_tables_and_keeps_to_its_readers() {
    let f = Fixture::new();
    let post = |token: &str, path: &str, form: &str| {
        let bearer = format!("Authorization: Bearer {token}");
        let (head, body) = f.server.request(
            "POST",
            path,
            &[&bearer, "Content-Type: application/x-www-form-urlencoded"],
            form.as_bytes(),
        );
        (
            status(&head),
            crate::serve::header(&head, "location").map(str::to_string),
            body,
        )
    };
    let get = |token: Option<&str>, path: &str, etag: Option<&str>| {
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push(format!("Authorization: Bearer {token}"));
        }
        if let Some(etag) = etag {
            headers.push(format!("If-None-Match: {etag}"));
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (head, body) = f.server.get_with(path, &headers);
        let etag = crate::serve::header(&head, "etag").unwrap_or_default().to_string();
        (status(&head), body, etag)
    };

    let (code, board, body) = post(&f.analyst, "/boards", "name=Pupils+by+province");
    assert_eq!(code, 303, "{body}");
    let board = board.expect("the board's link");
    let id = board.trim_start_matches("/boards/").to_string();
    let query =
        "SELECT province_code, sum(students) AS pupils FROM school_reports WHERE province_code = '01' GROUP BY 1";
    let pin = format!(
        "board={id}&title=Pupils+of+Ha+Noi&sql={}&chart=bar&x=province_code&y=pupils",
        form_encode(query)
    );
    let (code, _, body) = post(&f.analyst, "/boards/pin", &pin);
    assert_eq!(code, 303, "{body}");

    // Analysts see it, with the chart, its data as of and the way back to its query.
    let (code, page, etag) = get(Some(&f.analyst), &board, None);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("<h2>Pupils of Ha Noi</h2>") && page.contains("<svg"),
        "{page}"
    );
    assert!(
        page.contains(&grouped_by(f.pupils_of_hanoi(), '.')),
        "the chart's bar says the CLI's sum"
    );
    assert!(
        page.contains("href=\"/sql?q=") && page.contains("Số liệu đến"),
        "{page}"
    );
    assert!(!etag.is_empty());
    assert_eq!(get(Some(&f.analyst), &board, Some(&etag)).0, 304, "unchanged: 304");

    // Not public: a province account is refused, a stranger sent to sign in; an analyst cannot
    // make it public, an admin can, and then everyone sees it (without the query).
    assert_eq!(get(Some(&f.province), &board, None).0, 403);
    assert_eq!(get(None, &board, None).0, 303);
    assert_eq!(post(&f.analyst, &format!("{board}/public"), "public=1").0, 403);
    assert_eq!(post(&f.admin, &format!("{board}/public"), "public=1").0, 303);
    let (code, page, _) = get(None, &board, None);
    assert_eq!(code, 200);
    assert!(page.contains("<svg") && !page.contains("href=\"/sql?q="), "{page}");
    assert!(
        get(None, "/boards", None).1.contains("Pupils by province"),
        "listed for everyone"
    );

    // Only an admin pins to a public board, and a public board takes no query of people's records.
    let (code, _, body) = post(&f.analyst, "/boards/pin", &pin);
    assert_eq!(code, 403, "an analyst pinning to a public board: {body}");
    let records = format!(
        "board={id}&title=Learners&sql={}&chart=bar&x=gender&y=n",
        form_encode("SELECT gender, count(*) AS n FROM learner_records GROUP BY 1")
    );
    let (code, _, body) = post(&f.admin, "/boards/pin", &records);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("10"), "{body}");

    // A commit changes the tables: the board is drawn again, with another ETag.
    let before = f.pupils_of_hanoi();
    let (_, _, etag) = get(Some(&f.analyst), &board, None);
    let file = crate::school_report_of(f._dir.path(), "0.02", "11", "01");
    let ingested = run(khoso(&f.data).args(["ingest", "--kind", "school"]).arg(&file));
    assert!(ingested.status.success(), "{}", crate::stderr(&ingested));
    let after = f.pupils_of_hanoi();
    assert_ne!(before, after, "another file, other numbers");
    let (code, page, new_etag) = get(Some(&f.analyst), &board, Some(&etag));
    assert_eq!(code, 200, "the tables changed: drawn again");
    assert_ne!(new_etag, etag);
    assert!(page.contains(&grouped_by(after, '.')), "the new sum");
}
