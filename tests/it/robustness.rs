//! Nobody takes khoso down: hostile uploads, sign-in floods, the small gaps of who sees what,
//! and bounded fuzzing of SQL and files — each against a running `khoso serve`, each ending
//! with the same server process answering `/healthz` and `/` within a second. (Hostile
//! queries over HTTP are in `sql.rs`, over the wire in `wire.rs`, from one list in `serve.rs`.)

use std::io::Write;
use std::time::{Duration, Instant};

use crate::serve::{Server, header, http, status};
use crate::{account, corpus, eventually, khoso, run, stdout};

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    server: Server,
    province: String,
    analyst: String,
}

impl Fixture {
    fn new(args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, _) = crate::generated(dir.path(), "0.02", "2024-2025..2024-2025", "5", true);
        let province = account(&data, "so-gd-ha-noi", "province", Some("01"));
        let analyst = account(&data, "phan-tich", "analyst", None);
        let mut all = vec!["--query-memory-mb", "64", "--max-upload-mb", "5"];
        if !args.contains(&"--query-timeout-s") {
            all.extend(["--query-timeout-s", "3"]);
        }
        all.extend_from_slice(args);
        let server = Server::start_with(&data, &all);
        Fixture {
            _dir: dir,
            data,
            server,
            province,
            analyst,
        }
    }

    /// A dry run of `body` sent as a school report for 2024-2025 by the province account.
    fn dry_run(&self, content_type: &str, body: &[u8]) -> (u16, String) {
        let auth = format!("Authorization: Bearer {}", self.province);
        let kind = format!("Content-Type: {content_type}");
        let (head, answer) = self.server.request(
            "POST",
            "/api/v1/submissions?kind=school&year=2024-2025&dry_run=true",
            &[auth.as_str(), kind.as_str()],
            body,
        );
        (status(&head), answer)
    }
}

/// The bytes of an `.xlsx` made of `parts` (name, content), deflated.
fn workbook(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(*name, options).expect("zip part");
        zip.write_all(content).expect("zip write");
    }
    zip.finish().expect("zip done").into_inner()
}

/// A one-sheet workbook whose sheet holds `cells` (`<c>` elements, in rows) and says
/// `dimension` of itself.
fn sheet_workbook(dimension: &str, rows: &str, shared_strings: &[u8]) -> Vec<u8> {
    let content_types = br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
    let rels = br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    let book = br#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    let book_rels = br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;
    let sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>"#
    );
    workbook(&[
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", rels),
        ("xl/workbook.xml", book),
        ("xl/_rels/workbook.xml.rels", book_rels),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ("xl/sharedStrings.xml", shared_strings),
    ])
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[test]
fn crafted_files_are_refused_before_they_are_read() {
    let mut f = Fixture::new(&[]);
    let no_strings = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="0" uniqueCount="0"></sst>"#;
    // A1 and the sheet's last cell, declared honestly: 17 billion cells of area.
    let corners = r#"<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c></row><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>y</t></is></c></row>"#;
    // The same cells under a lying dimension of one cell.
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "corners",
            sheet_workbook("A1:XFD1048576", corners, no_strings),
            "1048576 rows × 16384 columns",
        ),
        (
            "corners, small dimension",
            sheet_workbook("A1", corners, no_strings),
            "16384 columns",
        ),
    ];
    // Shared strings that unpack to 300 MB from a few hundred KB.
    let bomb = {
        let mut strings = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>"#.to_vec();
        strings.extend(std::iter::repeat_n(b'a', 300 * 1024 * 1024));
        strings.extend_from_slice(b"</t></si></sst>");
        sheet_workbook("A1", r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#, &strings)
    };
    assert!(bomb.len() < 2 * 1024 * 1024, "the bomb is small: {} bytes", bomb.len());
    cases.push(("unpacks to 300 MB", bomb, "256 MB"));
    for (what, file, said) in cases {
        let started = Instant::now();
        let (code, body) = f.dry_run(XLSX, &file);
        assert_eq!(code, 422, "{what}: {body}");
        assert!(body.contains("\"rule\":\"bounds\""), "{what}: {body}");
        assert!(body.contains(said), "{what} names the bound {said:?}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            started.elapsed()
        );
        f.server.assert_answers(what);
    }
    // CSV: a header of a million columns, a cell of 4 MB, a header with no end.
    let wide = format!("{}\n", vec!["a"; 1_000_000].join(","));
    let wider_than_allowed = format!("{}\n1\n", vec!["a"; 300].join(","));
    let long_cell = format!(
        "school_year,province_code,school_id\n2024-2025,01,{}\n",
        "x".repeat(4 * 1024 * 1024)
    );
    let endless_header = "y".repeat(3 * 1024 * 1024);
    // Two million short rows under a header of 256 columns: 512 million cells for 4 MB of text,
    // refused before they are split.
    let short_rows = format!("{}\n{}", vec!["a"; 256].join(","), "1\n".repeat(2_000_000));
    for (what, body, said) in [
        (
            "short rows under a wide header",
            short_rows,
            "far shorter than the header",
        ),
        ("a million columns", wide, "longer than 64 KB"),
        ("300 columns", wider_than_allowed, "at most 256"),
        ("a 4 MB cell", long_cell, "longer than 4096 bytes"),
        ("a header with no end", endless_header, "longer than 64 KB"),
    ] {
        let (code, answer) = f.dry_run("text/csv", body.as_bytes());
        assert_eq!(code, 422, "{what}: {}", &answer[..answer.len().min(400)]);
        assert!(answer.contains(said), "{what}: {}", &answer[..answer.len().min(400)]);
        f.server.assert_answers(what);
    }
    // Past the size limit, as a body and as a form field that is not the file.
    let (code, _) = f.dry_run("text/csv", &vec![b'1'; 6 * 1024 * 1024]);
    assert_eq!(code, 413, "a 6 MB body over a 5 MB limit");
    let boundary = "XkhosoX";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{}\r\n",
        "n".repeat(20 * 1024 * 1024)
    )
    .into_bytes();
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let (code, answer) = f.dry_run(&format!("multipart/form-data; boundary={boundary}"), &form);
    assert_eq!(code, 413, "a 20 MB form field: {answer}");
    // A right file still goes through.
    let good = std::fs::read(corpus("good_utf8_bom.csv")).expect("corpus file");
    let (code, answer) = f.dry_run("text/csv", &good);
    assert!(
        code == 200 || code == 422,
        "a real file gets an answer: {code} {answer}"
    );
    f.server.assert_answers("the uploads");
    let peak = f.server.peak_memory_mb();
    assert!(peak < 1500, "the server's peak memory was {peak} MB");
}

#[test]
fn a_flood_of_wrong_tokens_costs_the_server_little() {
    let mut f = Fixture::new(&[]);
    let known_id = f.analyst.split('_').nth(1).expect("id").to_string();
    let ask = |token: &str| {
        let auth = format!("Authorization: Bearer {token}");
        let asked = Instant::now();
        let (head, _) = f.server.get_with("/api/v1/kpis", &[auth.as_str()]);
        (head, asked.elapsed())
    };
    // The same time for a known account id with a wrong secret and for an unknown id.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..4 {
        known.push(ask(&format!("khoso_{known_id}_{i:032x}")).1);
        unknown.push(ask(&format!("khoso_ffffff{i:02x}_{i:032x}")).1);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    assert!(
        k / u < 3.0 && u / k < 3.0,
        "a wrong secret of a known id takes {k:.3} s, an unknown id {u:.3} s"
    );
    // A flood: most are refused with 429 and Retry-After, without an Argon2 check each.
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let (address, token) = (f.server.address.clone(), format!("khoso_{known_id}_{i:032x}"));
            std::thread::spawn(move || {
                let auth = format!("Authorization: Bearer {token}");
                http(&address, "GET", "/api/v1/kpis", &[auth.as_str()], &[]).0
            })
        })
        .collect();
    let asked = Instant::now();
    let (head, _) = f.server.get_with("/", &[]);
    assert_eq!(status(&head), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the overview took {:?}",
        asked.elapsed()
    );
    let answers: Vec<String> = flood.into_iter().map(|t| t.join().expect("thread")).collect();
    let refused: Vec<&String> = answers.iter().filter(|h| status(h) == 429).collect();
    assert!(refused.len() >= 30, "{} of 40 were refused", refused.len());
    assert!(
        refused
            .iter()
            .all(|h| header(h, "retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1))),
        "429 says when to retry: {}",
        refused[0]
    );
    let statuses: Vec<u16> = answers.iter().map(|h| status(h)).collect();
    // A public page answers a wrong token as it answers a stranger.
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 401 | 429)),
        "wrong tokens get the public page, 401 or 429: {statuses:?}"
    );
    // The right token of the same account is not locked out once the budget refills.
    std::thread::sleep(Duration::from_secs(3));
    let (head, _) = ask(&f.analyst);
    assert_eq!(status(&head), 200, "{head}");
    // The failures are in the audit log, written in a few commits, not one each.
    let commits = || {
        std::fs::read_dir(f.data.join("tables/audit_log/_delta_log"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    };
    let counted = eventually(
        || {
            stdout(&run(khoso(&f.data).args([
                "sql",
                "SELECT outcome, count(*) AS n FROM audit_log WHERE action = 'sign_in' GROUP BY 1 ORDER BY 1",
                "--format",
                "csv",
            ])))
        },
        |text| text.contains("too_many"),
    );
    assert!(
        counted.contains("too_many"),
        "refusals are counted in the audit log: {counted}"
    );
    assert!(commits() < 20, "{} audit commits for 48 failed sign-ins", commits());
    f.server.assert_answers("the flood");
}

#[test]
fn what_strangers_and_accounts_see() {
    let mut f = Fixture::new(&["--private", "--behind-proxy"]);
    // Private: every page and API needs a sign-in; the sign-in page and /healthz do not.
    for path in [
        "/",
        "/history?kind=school&province=01&year=2024-2025",
        "/templates/school.csv",
        "/api/v1/provinces",
        "/catalogue",
    ] {
        let (head, _) = f.server.get_with(path, &[]);
        assert!(matches!(status(&head), 401 | 303), "a stranger at {path}: {head}");
    }
    for path in ["/sign-in", "/healthz", "/static/khoso.css"] {
        let (head, _) = f.server.get_with(path, &[]);
        assert_eq!(status(&head), 200, "{path}: {head}");
    }
    // Signing in over HTTPS (the proxy says so) sets a Secure cookie.
    let form = format!("token={}", f.analyst);
    let (head, _) = f.server.request(
        "POST",
        "/sign-in",
        &[
            "Content-Type: application/x-www-form-urlencoded",
            "X-Forwarded-Proto: https",
        ],
        form.as_bytes(),
    );
    let cookie = header(&head, "set-cookie").expect("a session cookie").to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().expect("name=value").to_string();
    // The cookie alone does not run a query through the JSON API: it needs the CSRF token.
    let with_cookie = format!("Cookie: {session}");
    let (head, body) = f.server.request(
        "POST",
        "/api/v1/sql",
        &[with_cookie.as_str(), "Content-Type: text/plain"],
        b"SELECT 1",
    );
    assert_eq!(status(&head), 403, "a cookie without the CSRF header: {body}");
    // A province account lists at least what a stranger would on a public server.
    let province = format!("Authorization: Bearer {}", f.province);
    let listed = f.server.get_with("/api/v1/submissions", &[province.as_str()]).1;
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert!(listed.as_array().is_some_and(|a| a.len() > 1), "{listed}");
    // No answer shows where the server keeps its files.
    let root = std::fs::canonicalize(&f.data).expect("data dir");
    let root = root.to_string_lossy();
    let analyst = format!("Authorization: Bearer {}", f.analyst);
    let (_, plan) = f.server.request(
        "POST",
        "/api/v1/sql",
        &[analyst.as_str(), "Content-Type: text/plain"],
        b"EXPLAIN SELECT sum(students) FROM school_reports",
    );
    assert!(plan.contains("DATA"), "{plan}");
    assert!(!plan.contains(root.trim_start_matches('/')), "{plan}");
    f.server.assert_answers("the checks of who sees what");
}

/// A small random generator (xorshift), so a failing case can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.roll(items.len())]
    }
}

/// A random SQL expression over `school_reports`, `depth` levels deep.
fn expression(dice: &mut Dice, depth: usize) -> String {
    let leaves = [
        "students",
        "teachers",
        "1",
        "0",
        "NULL",
        "'01'",
        "school_name",
        "-9223372036854775808",
        "1e308",
    ];
    if depth == 0 {
        return dice.pick(&leaves).to_string();
    }
    let a = expression(dice, depth - 1);
    let b = expression(dice, depth - 1);
    match dice.roll(10) {
        0 => format!(
            "({a} {} {b})",
            dice.pick(&["+", "-", "*", "/", "%", "||", "=", "<", "AND", "OR"])
        ),
        1 => format!(
            "{}({a})",
            dice.pick(&["abs", "length", "upper", "sqrt", "ln", "md5", "NOT "])
        ),
        2 => format!(
            "repeat(CAST({a} AS VARCHAR), {})",
            dice.pick(&["2", "1000000000", "-1", "students"])
        ),
        3 => format!(
            "lpad(CAST({a} AS VARCHAR), {})",
            dice.pick(&["5", "2000000000", "teachers"])
        ),
        4 => format!("CASE WHEN {a} IS NULL THEN {b} ELSE {a} END"),
        5 => format!(
            "CAST({a} AS {})",
            dice.pick(&["BIGINT", "DOUBLE", "VARCHAR", "DATE", "DECIMAL(38,10)"])
        ),
        6 => format!("range({a}, {b})"),
        7 => format!("({a}) IN ({b}, {a}, 1, 2, 3)"),
        8 => format!("coalesce({a}, {b})"),
        _ => format!("(SELECT max({a}) FROM school_reports)"),
    }
}

#[test]
fn generated_queries_and_files_never_take_the_server_down() {
    let mut f = Fixture::new(&[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dice = Dice(131);
    let mut sent = 0;
    while Instant::now() < deadline {
        let depth = 1 + dice.roll(5);
        let tail = dice.pick(&["", " ORDER BY 1", " LIMIT 5", " GROUP BY 1", ", school_reports b"]);
        let query = format!("SELECT {} FROM school_reports{tail}", expression(&mut dice, depth));
        let auth = format!("Authorization: Bearer {}", f.analyst);
        let (head, body) = f.server.request(
            "POST",
            "/api/v1/sql",
            &[auth.as_str(), "Content-Type: text/plain"],
            query.as_bytes(),
        );
        assert!(
            matches!(status(&head), 200 | 400 | 429),
            "{query}: {head} {}",
            &body[..body.len().min(300)]
        );
        sent += 1;
    }
    assert!(sent > 10, "{sent} generated queries");
    f.server.assert_answers("generated queries");
    // Files: a real report, cut, flipped and stretched at random places.
    let report = std::fs::read(corpus("good_utf8_bom.csv")).expect("corpus file");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut files = 0;
    while Instant::now() < deadline {
        let mut file = report.clone();
        for _ in 0..1 + dice.roll(6) {
            let at = dice.roll(file.len().max(1));
            match dice.roll(5) {
                0 => file.truncate(at),
                1 => {
                    let last = file.len().saturating_sub(1);
                    if let Some(byte) = file.get_mut(at.min(last)) {
                        *byte = dice.roll(256) as u8;
                    }
                }
                2 => {
                    let piece = dice.pick(&["\"", ";", ",", "\n", "\u{feff}", "=1+1", "\r\n", "\t"]);
                    let piece: Vec<u8> = piece
                        .bytes()
                        .cycle()
                        .take(piece.len() * (1 + dice.roll(20_000)))
                        .collect();
                    file.splice(at..at, piece);
                }
                3 => file.splice(0..0, b"PK\x03\x04".iter().copied()).for_each(drop),
                _ => file.extend_from_slice(&report),
            }
        }
        let content_type = dice.pick(&["text/csv", XLSX]);
        let (code, body) = f.dry_run(content_type, &file);
        assert!(
            matches!(code, 200 | 413 | 422),
            "a mangled file got {code}: {}",
            &body[..body.len().min(300)]
        );
        files += 1;
    }
    assert!(files > 10, "{files} generated files");
    f.server.assert_answers("generated files");
}

#[test]
fn queries_up_to_the_bounds_of_their_shape_are_answered() {
    let mut f = Fixture::new(&["--query-timeout-s", "60"]);
    let nested = format!("SELECT {}1{} AS one", "(".repeat(40), ")".repeat(40));
    let chain = format!("SELECT 1{} AS n", "+1".repeat(900));
    let listed = format!(
        "SELECT count(*) AS n FROM school_reports WHERE school_id IN ({})",
        (0..9_000).map(|i| format!("'S{i}'")).collect::<Vec<_>>().join(",")
    );
    let literal = format!("SELECT length('{}') AS n", "x".repeat(900 * 1024));
    let ctes = format!(
        "WITH c0 AS (SELECT 1 AS x), {} SELECT x FROM c250",
        (1..=250)
            .map(|i| format!("c{i} AS (SELECT x FROM c{})", i - 1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let arms = format!(
        "SELECT CASE {} END AS v FROM school_reports LIMIT 1",
        (1..=300)
            .map(|i| format!("WHEN students = {i} THEN 'v{i}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let grown = "SELECT length(repeat(school_name, 3) || lpad('x', 1000)) AS n FROM school_reports LIMIT 3";
    let auth = format!("Authorization: Bearer {}", f.analyst);
    for (what, query) in [
        ("40 nested parentheses", nested.as_str()),
        ("901 terms", chain.as_str()),
        ("an IN list of 9,000", listed.as_str()),
        ("a 900 KB literal", literal.as_str()),
        ("250 chained CTEs", ctes.as_str()),
        ("a CASE of 300 arms", arms.as_str()),
        ("growing functions within their cap", grown),
    ] {
        let asked = Instant::now();
        let (head, body) = f.server.request(
            "POST",
            "/api/v1/sql",
            &[auth.as_str(), "Content-Type: text/plain"],
            query.as_bytes(),
        );
        assert_eq!(status(&head), 200, "{what}: {}", &body[..body.len().min(300)]);
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "{what} took {:?}",
            asked.elapsed()
        );
    }
    f.server.assert_answers("queries at the bounds");
}

/// A query that would run for hours, as its SQL text.
const ENDLESS: &[u8] = b"SELECT sum(a.students + b.students + c.students + d.students) FROM school_reports a, \
      school_reports b, school_reports c, school_reports d";

#[test]
fn a_query_stops_when_its_client_leaves() {
    let mut f = Fixture::new(&["--query-timeout-s", "600"]);
    let request = format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        f.analyst,
        ENDLESS.len()
    );
    let mut client = std::net::TcpStream::connect(&f.server.address).expect("connect");
    client.write_all(request.as_bytes()).expect("head");
    client.write_all(ENDLESS).expect("body");
    std::thread::sleep(Duration::from_secs(2));
    let working = f.server.cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    assert!(f.server.cpu_seconds() - working > 0.5, "the query is running");
    drop(client);
    std::thread::sleep(Duration::from_secs(1));
    let after = f.server.cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    let spent = f.server.cpu_seconds() - after;
    assert!(
        spent < 0.3,
        "the server spent {spent:.2} s of CPU in a second after the client left"
    );
    f.server.assert_answers("a client that left mid-query");
}

#[test]
fn shutdown_does_not_wait_for_a_query() {
    let mut f = Fixture::new(&["--query-timeout-s", "600"]);
    let (address, token) = (f.server.address.clone(), f.analyst.clone());
    std::thread::spawn(move || {
        let auth = format!("Authorization: Bearer {token}");
        http(&address, "POST", "/api/v1/sql", &[auth.as_str()], ENDLESS)
    });
    std::thread::sleep(Duration::from_secs(2));
    f.server.assert_answers("a ten-minute query started");
    let took = f.server.terminate();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with a query running"
    );
}
