//! The upload portal against a running `khoso serve`: roles enforced on every path (401, 403),
//! dry run then commit, an invalid file answered 422 with nothing written, the size limit
//! (413), the web flow with its session cookie and CSRF token, the audit log of every attempt,
//! and 34 provinces uploading at once.

use std::path::{Path, PathBuf};

use crate::s3::S3Server;
use crate::serve::{Server, header, status};
use crate::{Data, khoso, run, sql, sql_at, stderr, stdout};

/// A warehouse with no data, and generated reports for two school years (63 provinces in
/// 2024-2025, 34 in 2025-2026) to upload.
struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    reports: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, reports) = crate::generated(dir.path(), "0.01", "2024-2025..2025-2026", "7", false);
        Fixture {
            _dir: dir,
            data,
            reports,
        }
    }

    /// The token of a new account.
    fn account(&self, name: &str, role: &str, province: Option<&str>) -> String {
        crate::account(&self.data, name, role, province)
    }

    /// The bytes of the generated file of a slice (in whichever file style the generator gave it).
    fn report(&self, kind: &str, province: &str, year: &str) -> Vec<u8> {
        std::fs::read(self.report_path(kind, province, year)).expect("read")
    }

    fn report_path(&self, kind: &str, province: &str, year: &str) -> PathBuf {
        let dir = self.reports.join(kind).join(year);
        let name = format!("{kind}-{province}-{year}.");
        std::fs::read_dir(&dir)
            .expect("generated reports")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&name))
            })
            .unwrap_or_else(|| panic!("{name}* in {}", dir.display()))
    }

    fn sql(&self, query: &str) -> String {
        sql(&self.data, query)
    }
}

/// Signs in on the web with a token; returns the `Cookie:` header of the session.
fn sign_in(server: &Server, token: &str) -> String {
    let form = format!("token={token}");
    let (head, _) = server.request(
        "POST",
        "/sign-in",
        &["Content-Type: application/x-www-form-urlencoded"],
        form.as_bytes(),
    );
    assert_eq!(status(&head), 303, "{head}");
    let cookie = header(&head, "set-cookie").expect("a session cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    format!("Cookie: {}", cookie.split(';').next().expect("pair"))
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the form")
        .to_string()
}

/// The upload form's body: CSRF token, a school report of 2024-2025 under `file_name`; with its
/// `Content-Type` header.
fn upload_form(csrf: &str, file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "khosoBOUNDARY";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf), ("kind", "school"), ("year", "2024-2025")] {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("Content-Type: multipart/form-data; boundary={boundary}"), body)
}

/// The id of the staged upload a checked-file page offers to commit.
fn staged_id(page: &str) -> String {
    page.split("action=\"/upload/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the commit form")
        .to_string()
}

fn upload(server: &Server, token: Option<&str>, query: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let headers: Vec<&str> = auth.iter().map(String::as_str).collect();
    let (head, body) = server.request("POST", &format!("/api/v1/submissions?{query}"), &headers, body);
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status(&head), json)
}

fn is_csv(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "csv")
}

#[test]
fn the_work_of_an_upload_is_logged_under_its_request() {
    let fixture = Fixture::new();
    let admin = fixture.account("bo-gd", "admin", None);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("serve.log");
    let server = Server::start_logging(
        &fixture.data,
        &["--log-format", "json"],
        std::fs::File::create(&log).expect("log file"),
    );
    let file = fixture.report("school", "01", "2024-2025");
    let auth = format!("Authorization: Bearer {admin}");
    let (head, body) = server.request(
        "POST",
        "/api/v1/submissions?kind=school&year=2024-2025&province=01",
        &[&auth, "X-Request-Id: upload-of-ha-noi"],
        &file,
    );
    assert_eq!(status(&head), 200, "{body}");
    let text = crate::eventually(
        || std::fs::read_to_string(&log).unwrap_or_default(),
        |text| text.contains("batch committed"),
    );
    let events: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let committed = events
        .iter()
        .find(|e| e["message"] == "batch committed")
        .unwrap_or_else(|| panic!("the commit is logged: {text}"));
    // The intake's event carries the request it was done for: its id, method and route.
    assert_eq!(committed["span"]["name"], "request", "{committed}");
    assert_eq!(committed["span"]["request_id"], "upload-of-ha-noi", "{committed}");
    assert_eq!(committed["span"]["method"], "POST", "{committed}");
    assert_eq!(committed["span"]["route"], "/api/v1/submissions", "{committed}");
}

#[test]
fn roles_are_enforced_and_every_attempt_is_audited() {
    let fixture = Fixture::new();
    let ha_noi = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let ha_giang = fixture.account("so-gd-ha-giang", "province", Some("02"));
    let analyst = fixture.account("phan-tich", "analyst", None);
    let admin = fixture.account("bo-gd", "admin", None);
    let server = Server::start(&fixture.data);
    let file = fixture.report("school", "01", "2024-2025");
    let query = "kind=school&year=2024-2025";

    assert_eq!(upload(&server, None, query, &file).0, 401, "no credential");
    assert_eq!(
        upload(&server, Some("khoso_0000_wrong"), query, &file).0,
        401,
        "a wrong token"
    );
    assert_eq!(
        upload(&server, Some(&analyst), query, &file).0,
        403,
        "an analyst uploading"
    );
    let (code, json) = upload(&server, Some(&ha_noi), &format!("{query}&province=79"), &file);
    assert_eq!(code, 403, "a province uploading for another: {json}");
    assert!(
        json["message"].as_str().is_some_and(|m| m.contains("province 01 only")),
        "{json}"
    );
    assert_eq!(
        upload(&server, Some(&ha_noi), "kind=content&year=2024-2025", &file).0,
        403
    );
    let (code, json) = upload(&server, Some(&ha_giang), "kind=school&year=2025-2026", &file);
    assert_eq!(code, 403, "code 02 no longer exists in 2025-2026: {json}");
    assert_eq!(
        upload(&server, Some(&admin), query, &file).0,
        400,
        "an admin must name the province"
    );
    assert_eq!(
        fixture.sql("SELECT count(*) AS n FROM submissions"),
        "n\n0\n",
        "nothing written"
    );

    let (code, json) = upload(&server, Some(&ha_noi), query, &file);
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["outcome"], "committed");
    let (code, json) = upload(&server, Some(&admin), &format!("{query}&province=01"), &file);
    assert_eq!((code, json["outcome"].as_str()), (200, Some("unchanged")), "{json}");

    let audit = fixture.sql("SELECT actor, action, outcome FROM audit_log ORDER BY at");
    let expected = [
        ",upload,unauthorized",
        ",upload,unauthorized",
        "phan-tich,upload,forbidden",
        "so-gd-ha-noi,upload,forbidden",
        "so-gd-ha-noi,upload,forbidden",
        "so-gd-ha-giang,upload,forbidden",
        "bo-gd,upload,bad_request",
        "so-gd-ha-noi,upload,committed",
        "bo-gd,upload,unchanged",
    ];
    assert_eq!(audit.lines().skip(1).collect::<Vec<_>>(), expected, "{audit}");
    let sha = fixture.sql("SELECT sha256 FROM audit_log WHERE outcome = 'committed'");
    let submitted = fixture.sql("SELECT sha256 FROM submissions");
    assert_eq!(sha, submitted, "the audit names the file by its SHA-256");
}

#[test]
fn dry_run_commit_invalid_and_too_large() {
    let fixture = Fixture::new();
    let token = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let server = Server::start_with(&fixture.data, &["--max-upload-mb", "1"]);
    let query = "kind=school&year=2024-2025";
    let file = fixture.report("school", "01", "2024-2025");

    let (code, json) = upload(&server, Some(&token), &format!("{query}&dry_run=true"), &file);
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["outcome"], "dry_run");
    let preview = &json["preview"];
    let rows = preview["rows"].as_u64().expect("rows");
    assert!(rows > 0);
    let t1 = preview["kpis"]
        .as_array()
        .expect("kpis")
        .iter()
        .find(|k| k["kpi_id"] == "T1_pupils")
        .expect("T1_pupils");
    assert!(t1["in_force"].is_null(), "nothing in force yet");
    assert_eq!(
        fixture.sql("SELECT count(*) AS n FROM school_reports"),
        "n\n0\n",
        "a dry run writes nothing"
    );

    let (code, json) = upload(&server, Some(&token), query, &file);
    assert_eq!((code, json["outcome"].as_str()), (200, Some("committed")), "{json}");
    assert_eq!(
        fixture.sql("SELECT count(*) AS n FROM school_reports"),
        format!("n\n{rows}\n")
    );
    // The value the dry run promised is the value the warehouse now has.
    let api = server.json("/api/v1/kpis/T1_pupils?by=province&year=2024-2025");
    assert_eq!(api["values"][0]["value"], t1["with_file"]);

    let text = String::from_utf8_lossy(&file).into_owned();
    let broken = text.replacen("2024-2025", "2024/25", 1);
    let (code, json) = upload(&server, Some(&token), query, broken.as_bytes());
    assert_eq!(code, 422, "{json}");
    let problems = json["problems"].as_array().expect("problems");
    assert!(!problems.is_empty() && problems[0]["row"].is_number(), "{json}");
    assert_eq!(
        fixture.sql("SELECT count(*) AS n FROM submissions"),
        "n\n1\n",
        "the invalid file wrote nothing"
    );

    let big = vec![b'x'; 1024 * 1024 + 1];
    let (code, json) = upload(&server, Some(&token), query, &big);
    assert_eq!(code, 413, "{json}");
    assert!(json["message"].as_str().is_some_and(|m| m.contains("1 MB")), "{json}");
    let leftovers = std::fs::read_dir(fixture.data.join("receiving"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "no staged file left behind");
}

#[test]
fn the_web_flow_signs_in_checks_and_commits() {
    let fixture = Fixture::new();
    let token = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let server = Server::start(&fixture.data);

    let (head, _) = server.request(
        "POST",
        "/sign-in",
        &["Content-Type: application/x-www-form-urlencoded"],
        b"token=khoso_0000_wrong",
    );
    assert_eq!(status(&head), 401);
    let (head, _) = server.get_with("/upload", &[]);
    assert_eq!(status(&head), 303, "anonymous callers are sent to sign in: {head}");

    let session = sign_in(&server, &token);

    let (head, page) = server.get_with("/upload", &[&session]);
    assert_eq!(status(&head), 200);
    assert!(page.contains("/templates/school.xlsx"), "templates are offered");
    let (head, template) = server.get_with("/templates/school.csv?lang=en", &[]);
    assert_eq!(status(&head), 200);
    assert!(
        template.starts_with("\u{feff}school_year,province_code,school_id"),
        "{template}"
    );
    let (head, xlsx) = server.get_with("/templates/university.xlsx", &[]);
    assert_eq!(status(&head), 200);
    assert!(xlsx.starts_with("PK"), "an xlsx file (a zip)");
    let csrf = csrf_of(&page);
    assert!(page.contains("so-gd-ha-noi"));

    let file = fixture.report("school", "01", "2024-2025");
    let multipart = |csrf: &str| upload_form(csrf, "../../etc/passwd.csv", &file);
    let (content_type, body) = multipart("forged");
    let (head, _) = server.request("POST", "/upload", &[&session, &content_type], &body);
    assert_eq!(status(&head), 403, "a form without the session's CSRF token");

    let (content_type, body) = multipart(&csrf);
    let (head, page) = server.request("POST", "/upload", &[&session, &content_type], &body);
    assert_eq!(status(&head), 200, "{page}");
    assert!(page.contains("hợp lệ"), "the dry run says the file is valid");
    assert!(
        page.contains("Học sinh đủ điều kiện học trực tuyến"),
        "the province's KPIs"
    );
    assert_eq!(
        fixture.sql("SELECT count(*) AS n FROM submissions"),
        "n\n0\n",
        "nothing written yet"
    );
    let id = staged_id(&page);
    let (head, page) = server.request(
        "POST",
        &format!("/upload/{id}/commit"),
        &[&session, "Content-Type: application/x-www-form-urlencoded"],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(status(&head), 200, "{page}");
    assert!(page.contains("đã ghi vào kho"), "{page}");
    let submitted = fixture.sql("SELECT file_name, uploaded_by FROM submissions");
    assert_eq!(submitted, "file_name,uploaded_by\n../../etc/passwd.csv,so-gd-ha-noi\n");
    assert!(!Path::new("/etc/passwd.csv").exists());
    for folder in ["receiving", "uploads"] {
        let left: Vec<_> = std::fs::read_dir(fixture.data.join(folder))
            .expect(folder)
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.iter().all(|p| !is_csv(p)), "the staged file is gone: {left:?}");
    }

    let (head, _) = server.request(
        "POST",
        "/sign-out",
        &[&session, "Content-Type: application/x-www-form-urlencoded"],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(status(&head), 303);
    let (head, _) = server.get_with("/upload", &[&session]);
    assert_eq!(status(&head), 303, "signed out");
    let audit = fixture.sql("SELECT action, outcome FROM audit_log ORDER BY at");
    for line in [
        "sign_in,unauthorized",
        "sign_in,ok",
        "dry_run,ok",
        "upload,committed",
        "sign_out,ok",
    ] {
        assert!(audit.contains(line), "{line} in {audit}");
    }
}

#[test]
fn thirty_four_provinces_upload_at_once() {
    let fixture = Fixture::new();
    let server = Server::start(&fixture.data);
    provinces_upload_at_once(&fixture, &fixture.data, &[server]);
}

/// The warehouse in a bucket of an S3 API, two web nodes over it (each as on a machine of its
/// own: no lock of one machine is shared): a session opened on one holds on the other, a file
/// checked on one is committed from the other, a sign-out on one ends the session on both; then
/// the 34 provinces upload at once, half through each node.
#[test]
fn on_s3_two_web_nodes_share_sessions_staged_files_and_thirty_four_uploads() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    let fixture = Fixture::new();
    let bucket = s3.bucket("two-nodes");
    let init = run(khoso(&bucket).arg("init"));
    assert!(init.status.success(), "{}", stderr(&init));
    let nodes: Vec<Server> = (0..2)
        .map(|node| {
            let machine = fixture._dir.path().join(format!("node-{node}"));
            std::fs::create_dir_all(&machine).expect("node folder");
            let mut command = khoso(&bucket);
            command.env("TMPDIR", machine).args(["serve", "--addr", "127.0.0.1:0"]);
            Server::spawn(command)
        })
        .collect();
    let token = crate::account(&bucket, "so-gd-ha-noi-web", "province", Some("01"));
    let session = sign_in(&nodes[0], &token);
    let (head, page) = nodes[1].get_with("/upload", &[&session]);
    assert_eq!(status(&head), 200, "the session of node 0 holds on node 1");
    let csrf = csrf_of(&page);
    let (content_type, body) = upload_form(&csrf, "ha-noi.csv", &fixture.report("school", "01", "2024-2025"));
    let (head, page) = nodes[0].request("POST", "/upload", &[&session, &content_type], &body);
    assert_eq!(status(&head), 200, "node 1's CSRF token holds on node 0: {page}");
    let (head, page) = nodes[1].request(
        "POST",
        &format!("/upload/{}/commit", staged_id(&page)),
        &[&session, "Content-Type: application/x-www-form-urlencoded"],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(status(&head), 200, "checked on node 0, committed on node 1: {page}");
    assert_eq!(
        sql(&bucket, "SELECT file_name FROM submissions"),
        "file_name\nha-noi.csv\n"
    );
    let (head, _) = nodes[1].request(
        "POST",
        "/sign-out",
        &[&session, "Content-Type: application/x-www-form-urlencoded"],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(status(&head), 303);
    let (head, _) = nodes[0].get_with("/upload", &[&session]);
    assert_eq!(status(&head), 303, "signed out on node 1, so on node 0");

    provinces_upload_at_once(&fixture, &bucket, &nodes);
}

/// The 34 provinces of 2025 each upload their 2025-2026 school report, all at once, spread over
/// the `servers`: every upload is committed, and each slice holds exactly its own file.
fn provinces_upload_at_once(fixture: &Fixture, data: &(impl Data + ?Sized), servers: &[Server]) {
    let provinces: Vec<String> = ingest::ProvinceRegistry::shipped()
        .from_2025
        .iter()
        .map(|p| p.code.clone())
        .collect();
    assert_eq!(provinces.len(), 34);
    let uploads: Vec<(String, String, Vec<u8>)> = provinces
        .iter()
        .map(|code| {
            let token = crate::account(data, &format!("so-gd-{code}"), "province", Some(code));
            (code.clone(), token, fixture.report("school", code, "2025-2026"))
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = uploads
            .iter()
            .enumerate()
            .map(|(n, (code, token, file))| {
                let server = &servers[n % servers.len()];
                scope.spawn(move || (code, upload(server, Some(token), "kind=school&year=2025-2026", file)))
            })
            .collect();
        for handle in handles {
            let (code, (status, json)) = handle.join().expect("upload thread");
            assert_eq!(
                (status, json["outcome"].as_str()),
                (200, Some("committed")),
                "{code}: {json}"
            );
        }
    });
    // Every slice holds exactly its own file's rows.
    let counts = sql(
        data,
        "SELECT s.province_code, s.rows, count(r.school_id) AS n, count(DISTINCT r.submission_id) AS files \
         FROM submissions s JOIN school_reports r ON r.submission_id = s.submission_id \
         WHERE s.school_year = '2025-2026' GROUP BY 1, 2 ORDER BY 1",
    );
    let lines: Vec<&str> = counts.lines().skip(1).collect();
    assert_eq!(lines.len(), 34, "{counts}");
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[1], fields[2], "rows recorded = rows stored: {line}");
        assert_eq!(fields[3], "1", "one file per slice: {line}");
    }
    let totals = sql(
        data,
        "SELECT count(*) AS n FROM school_reports WHERE school_year = '2025-2026'",
    );
    // The files' rows, read here with the ingest library, apart from the server.
    let expected: usize = provinces
        .iter()
        .map(|code| {
            let path = fixture.report_path("school", code, "2025-2026");
            let options = ingest::ReadOptions::default();
            ingest::read_report(
                &path,
                ingest::ReportKind::School,
                &ingest::SliceHint::default(),
                &options,
            )
            .expect("a valid generated file")
            .rows
        })
        .sum();
    assert_eq!(totals, format!("n\n{expected}\n"));
}

#[test]
fn private_dashboards_need_a_sign_in_and_provinces_see_their_own() {
    let fixture = Fixture::new();
    let ha_noi = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let hue = fixture.account("so-gd-hue", "province", Some("46"));
    let analyst = fixture.account("phan-tich", "analyst", None);
    let server = Server::start_with(&fixture.data, &["--private"]);
    for (token, code) in [(&ha_noi, "01"), (&hue, "46")] {
        let file = fixture.report("school", code, "2024-2025");
        let (status, json) = upload(&server, Some(token), "kind=school&year=2024-2025", &file);
        assert_eq!(status, 200, "{json}");
    }
    let (head, _) = server.get_with("/", &[]);
    assert_eq!(status(&head), 303, "a private dashboard sends strangers to sign in");
    assert_eq!(header(&head, "location"), Some("/sign-in"));
    let (head, body) = server.get_with("/api/v1/kpis", &[]);
    assert_eq!(status(&head), 401, "{body}");
    let bearer = |token: &str| format!("Authorization: Bearer {token}");
    let (head, _) = server.get_with("/kpi/T1_pupils", &[&bearer(&analyst)]);
    assert_eq!(status(&head), 200);

    let seen = |token: &str| -> Vec<String> {
        let (_, body) = server.get_with("/api/v1/submissions", &[&bearer(token)]);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        json.as_array()
            .expect("submissions")
            .iter()
            .map(|s| s["province_code"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(seen(&ha_noi), ["01"], "a province sees its own submissions");
    assert_eq!(seen(&hue), ["46"]);
    assert_eq!(seen(&analyst), ["01", "46"], "an analyst sees every one");

    // A revoked token stops working at once.
    let revoked = run(khoso(&fixture.data).args(["users", "revoke", "phan-tich"]));
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let (head, _) = server.get_with("/kpi/T1_pupils", &[&bearer(&analyst)]);
    assert_eq!(status(&head), 303);
}

#[test]
fn a_slice_history_shows_what_each_file_changed() {
    let fixture = Fixture::new();
    let token = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let server = Server::start(&fixture.data);
    let path = fixture.report_path("school", "01", "2025-2026");
    assert!(is_csv(&path), "this test edits a CSV file");
    let first = std::fs::read_to_string(&path).expect("read");
    // The second file drops the last school.
    let lines: Vec<&str> = first.lines().filter(|l| !l.trim().is_empty()).collect();
    let second = lines[..lines.len() - 1].join("\n") + "\n";
    let second_path = path.with_file_name("second.csv");
    std::fs::write(&second_path, &second).expect("write");
    for body in [&first, &second] {
        let (status, json) = upload(&server, Some(&token), "kind=school&year=2025-2026", body.as_bytes());
        assert_eq!((status, json["outcome"].as_str()), (200, Some("committed")), "{json}");
    }
    // Totals of pupils in each file, read with the ingest library.
    let pupils = |path: &Path| -> i64 {
        let report = ingest::read_report(
            path,
            ingest::ReportKind::School,
            &ingest::SliceHint::default(),
            &ingest::ReadOptions::default(),
        )
        .expect("valid");
        match report.column("students") {
            Some(ingest::ColumnValues::Count(values)) => values.iter().flatten().sum(),
            _ => panic!("students"),
        }
    };
    let (before, after) = (pupils(&path), pupils(&second_path));
    assert!(before > after);
    let (head, page) = server.get_with("/history?kind=school&province=01&year=2025-2026&lang=en", &[]);
    assert_eq!(status(&head), 200, "{page}");
    let rows: Vec<&str> = page.split("<tr").skip(2).collect();
    assert_eq!(rows.len(), 2, "two versions: {page}");
    use dashboard::i18n::Words;
    let en = dashboard::i18n::Lang::En;
    assert!(
        rows[0].contains("<td>+0</td><td>−1</td>"),
        "the newest dropped one school: {}",
        rows[0]
    );
    assert!(
        rows[0].contains(&format!(
            "students: {} → {}",
            en.number(before as f64, 0),
            en.number(after as f64, 0)
        )),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains(&format!("<td>+{}</td><td>−0</td>", lines.len() - 1)),
        "{}",
        rows[1]
    );
    let completeness = server.get("/completeness?year=2025-2026");
    let link = "/history?kind=school&#38;year=2025-2026&#38;province=01";
    assert!(completeness.contains(link), "linked from completeness");
}

#[test]
fn with_approval_required_a_returned_file_leaves_the_last_approved_version() {
    let fixture = Fixture::new();
    let ha_noi = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let admin = fixture.account("bo-gd", "admin", None);
    let analyst = fixture.account("phan-tich", "analyst", None);
    let server = Server::start_with(&fixture.data, &["--require-approval"]);
    let path = fixture.report_path("school", "01", "2025-2026");
    assert!(is_csv(&path), "this test edits a CSV file");
    let first = std::fs::read_to_string(&path).expect("read");
    let query = "kind=school&year=2025-2026";
    let rows = || fixture.sql("SELECT count(*) AS n FROM school_reports");
    let decide = |token: &str, id: &str, verb: &str, comment: Option<&str>| {
        let body = comment
            .map(|c| serde_json::json!({ "comment": c }).to_string())
            .unwrap_or_default();
        let mut headers = vec![format!("Authorization: Bearer {token}")];
        if comment.is_some() {
            headers.push("Content-Type: application/json".into());
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (head, answer) = server.request(
            "POST",
            &format!("/api/v1/submissions/{id}/{verb}"),
            &headers,
            body.as_bytes(),
        );
        (status(&head), answer)
    };

    let (code, json) = upload(&server, Some(&ha_noi), query, first.as_bytes());
    assert_eq!((code, json["outcome"].as_str()), (202, Some("pending")), "{json}");
    assert_eq!(rows(), "n\n0\n", "held, not in the warehouse");
    let held = json["held"]["id"].as_str().expect("held id").to_string();
    assert_eq!(
        decide(&analyst, &held, "approve", None).0,
        403,
        "only an admin approves"
    );
    let (code, answer) = decide(&admin, &held, "approve", None);
    assert_eq!(code, 200, "{answer}");
    let first_rows = json["held"]["rows"].as_i64().expect("rows");
    assert_eq!(rows(), format!("n\n{first_rows}\n"), "approved, so committed");
    let submission: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        submission["submission"]["uploaded_by"], "so-gd-ha-noi",
        "in the sender's name"
    );

    // A second file, with one school fewer, is returned: the slice keeps the approved one.
    let lines: Vec<&str> = first.lines().filter(|l| !l.trim().is_empty()).collect();
    let second = lines[..lines.len() - 1].join("\n") + "\n";
    let (code, json) = upload(&server, Some(&ha_noi), query, second.as_bytes());
    assert_eq!(code, 202, "{json}");
    let held = json["held"]["id"].as_str().expect("held id").to_string();
    assert_eq!(decide(&admin, &held, "return", None).0, 400, "a return needs a comment");
    let (code, answer) = decide(&admin, &held, "return", Some("Thiếu trường TH số 23"));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(rows(), format!("n\n{first_rows}\n"), "still the approved version");
    assert_eq!(decide(&admin, &held, "approve", None).0, 400, "decided already");

    let (head, page) = server.get_with("/upload", &[&format!("Authorization: Bearer {ha_noi}")]);
    assert_eq!(status(&head), 200);
    assert!(
        page.contains("bị trả lại") && page.contains("Thiếu trường TH số 23"),
        "the province sees why"
    );
    assert!(page.contains("đã duyệt"), "and that its first file was approved");
    let completeness = server.get("/completeness?year=2025-2026");
    let line = completeness
        .split("<tr>")
        .find(|r| r.contains("Hà Nội (01)"))
        .expect("Hà Nội");
    assert!(line.contains("đã duyệt"), "{line}");
    let kpi = server.get("/kpi/T1_pupils?year=2025-2026&list=province");
    let row = kpi
        .split("<tr>")
        .find(|r| r.starts_with("<td><a href=\"/province/01?"))
        .expect("Hà Nội's row");
    assert!(
        row.contains("<td>đã duyệt</td>"),
        "the figure rests on approved data: {row}"
    );
    let audit = fixture.sql("SELECT actor, action, outcome FROM audit_log ORDER BY at");
    for event in ["so-gd-ha-noi,upload,pending", "bo-gd,approve,ok", "bo-gd,return,ok"] {
        assert!(audit.contains(event), "{event} in {audit}");
    }

    // Two admins approving one file at the same moment: one commits it, the other is told that
    // this file was decided on — by its own id, not the submission the other approval made.
    let third = lines[..lines.len() - 2].join("\n") + "\n";
    let (code, json) = upload(&server, Some(&ha_noi), query, third.as_bytes());
    assert_eq!(code, 202, "{json}");
    let held = json["held"]["id"].as_str().expect("held id").to_string();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let both: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| decide(&admin, &held, "approve", None)))
            .collect();
        both.into_iter().map(|t| t.join().expect("decided")).collect()
    });
    let codes: Vec<u16> = answers.iter().map(|(code, _)| *code).collect();
    assert!(codes.contains(&200) && codes.contains(&400), "{answers:?}");
    let refused = answers.iter().find(|(code, _)| *code == 400).map(|(_, answer)| answer);
    assert!(
        refused.is_some_and(|answer| answer.contains(&held)),
        "the refusal names the file decided on: {answers:?}"
    );
}

#[test]
fn a_server_killed_during_a_commit_restarts_consistent() {
    let fixture = Fixture::new();
    let token = fixture.account("so-gd-ha-noi", "province", Some("01"));
    let small = crate::corpus("good_utf8_no_bom.csv");
    let first = run(khoso(&fixture.data).args(["ingest", "--kind", "school"]).arg(&small));
    assert!(first.status.success(), "{}", stderr(&first));
    // Replacements of the same slice big enough for a commit to be interrupted, each a little
    // different (so that none is "unchanged").
    let big_rows = 60_000;
    let source = std::fs::read_to_string(&small).expect("corpus");
    let mut lines = source.lines();
    let header = lines.next().expect("header").to_string();
    let template = lines.next().expect("a row").to_string();
    let big_file = |variant: u64| {
        let mut text = format!("{header}\n");
        for i in 0..big_rows {
            let row = template.replace("0100001", &format!("9{i:07}"));
            let row = if i == 0 {
                row.replace("Kim Liên", &format!("Kim Liên {variant}"))
            } else {
                row
            };
            text.push_str(&row);
            text.push('\n');
        }
        std::sync::Arc::new(text.into_bytes())
    };
    let single = |query: &str| fixture.sql(query).lines().nth(1).unwrap_or_default().to_string();
    let counts = ["3".to_string(), big_rows.to_string()];
    let mut landed = 0;
    for delay_ms in [200, 700, 1000, 1150, 1300, 1400, 1500, 1650, 1800, 2400] {
        let mut server = Server::start(&fixture.data);
        let body = big_file(delay_ms);
        let (address, auth) = (server.address.clone(), format!("Authorization: Bearer {token}"));
        let sending = std::thread::spawn(move || {
            crate::serve::http(
                &address,
                "POST",
                "/api/v1/submissions?kind=school&year=2024-2025",
                &[&auth],
                &body,
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        server.kill();
        let (head, _) = sending.join().expect("the upload thread ends with the server");
        landed += usize::from(status(&head) == 200);
        // The next start repairs what the kill left, before it answers.
        let restarted = Server::start(&fixture.data);
        let count = single("SELECT count(*) AS n FROM school_reports WHERE province_code = '01'");
        eprintln!(
            "kill at {delay_ms} ms: answer {:?}, slice {count} rows",
            head.lines().next()
        );
        assert!(
            counts.contains(&count),
            "after a kill at {delay_ms} ms the slice has {count} rows"
        );
        let orphans = single(
            "SELECT count(*) AS n FROM (SELECT DISTINCT submission_id FROM school_reports) r \
             LEFT JOIN submissions s USING (submission_id) WHERE s.submission_id IS NULL",
        );
        assert_eq!(orphans, "0", "after a kill at {delay_ms} ms");
        let unaudited = single(
            "SELECT count(*) AS n FROM submissions s WHERE NOT EXISTS \
             (SELECT 1 FROM audit_log a WHERE a.detail LIKE '%submission ' || s.submission_id || ' %')",
        );
        assert_eq!(
            unaudited, "0",
            "every committed file has its audit event (kill at {delay_ms} ms)"
        );
        let unfounded = single(
            "SELECT count(*) AS n FROM audit_log a WHERE a.outcome = 'committed' AND NOT EXISTS \
             (SELECT 1 FROM submissions s WHERE a.detail LIKE '%submission ' || s.submission_id || ' %')",
        );
        assert_eq!(unfounded, "0", "no audit event for a commit that did not land");
        let shown = restarted.json("/api/v1/submissions");
        assert_eq!(
            shown.as_array().map(Vec::len).unwrap_or_default().to_string(),
            single("SELECT count(*) AS n FROM submissions"),
            "the restarted server shows every submission"
        );
    }
    eprintln!("{landed} of 10 uploads answered before the kill");
}

/// Every table a backup holds and a query can pin, each whole and in a fixed order: pinned to
/// the versions of `manifest` (a backup's) when given.
fn tables_at(data: &Path, versions: Option<&serde_json::Value>) -> Vec<String> {
    let order = [
        ("school_reports", "school_id, level, school_year"),
        ("university_reports", "institution_id, school_year"),
        ("content_coverage", "school_year, subject, grade"),
        ("submissions", "submission_id"),
    ];
    order
        .iter()
        .map(|(table, by)| {
            let pins: Vec<String> = versions
                .and_then(|v| v[table].as_u64())
                .map(|version| format!("{table}={version}"))
                .into_iter()
                .collect();
            sql_at(data, &format!("SELECT * FROM {table} ORDER BY {by}"), &pins)
        })
        .collect()
}

fn manifest(backup: &Path) -> serde_json::Value {
    let text = std::fs::read(backup.join("manifest.json")).expect("a manifest");
    serde_json::from_slice(&text).expect("JSON")
}

/// Backups and upkeep taken again and again while the 34 provinces upload: the backups restore
/// warehouses equal to the original at the backup's versions, which `verify` finds whole; a later backup copies only
/// what changed and restores the same KPIs; a changed byte is found by `verify`, named, and
/// stops a restore.
#[test]
fn backups_during_thirty_four_uploads_restore_the_same_warehouse() {
    let fixture = Fixture::new();
    let history: Vec<PathBuf> = std::fs::read_dir(fixture.reports.join("school").join("2024-2025"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .collect();
    let loaded = run(khoso(&fixture.data).args(["ingest", "--kind", "school"]).args(&history));
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    let server = Server::start(&fixture.data);
    let root = fixture._dir.path();
    let backups = root.join("backups");
    let backup = |to: &Path| {
        let made = run(khoso(&fixture.data).arg("backup").arg("--to").arg(to));
        assert!(made.status.success(), "{}", stderr(&made));
        stdout(&made)
    };

    let uploading = std::sync::atomic::AtomicBool::new(true);
    let during = std::thread::scope(|scope| {
        let backing_up = scope.spawn(|| {
            let mut made = 0;
            while uploading.load(std::sync::atomic::Ordering::Acquire) || made == 0 {
                backup(&backups);
                // Upkeep meanwhile too: it compacts under the same commits.
                let kept = run(khoso(&fixture.data).arg("maintain"));
                assert!(kept.status.success(), "{}", stderr(&kept));
                made += 1;
            }
            made
        });
        provinces_upload_at_once(&fixture, &fixture.data, &[server]);
        uploading.store(false, std::sync::atomic::Ordering::Release);
        backing_up.join().expect("backups")
    });
    assert!(during >= 1);

    // The last backup taken during the uploads: the warehouse as it was at its versions.
    let taken = manifest(&backups);
    let restored = root.join("restored");
    let done = run(khoso(&restored).arg("restore").arg("--from").arg(&backups));
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(
        tables_at(&restored, None),
        tables_at(&fixture.data, Some(&taken["versions"])),
        "the restored warehouse is the original at the backup's versions"
    );
    let checked = run(khoso(&restored).arg("verify"));
    assert!(checked.status.success(), "{}", stdout(&checked));
    assert!(stdout(&checked).contains("no problem found"), "{}", stdout(&checked));

    // Once the uploads are over: a backup copies only what changed, and restores the same
    // tables, KPIs and earlier versions.
    let again = backup(&backups);
    let files = manifest(&backups)["files"].as_array().expect("files").len();
    let copied: usize = again
        .split("; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{again}"));
    assert!(copied < files / 2, "incremental: {again}");
    let last = root.join("last");
    let done = run(khoso(&last).arg("restore").arg("--from").arg(&backups));
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(tables_at(&last, None), tables_at(&fixture.data, None));
    let early = serde_json::json!({"school_reports": 1, "submissions": 1});
    assert_eq!(tables_at(&last, Some(&early)), tables_at(&fixture.data, Some(&early)));
    let kpis = |data: &Path| {
        let answer = run(khoso(&data.to_path_buf()).args(["kpi", "--format", "csv", "--by", "province"]));
        assert!(answer.status.success(), "{}", stderr(&answer));
        stdout(&answer)
    };
    assert_eq!(kpis(&last), kpis(&fixture.data));

    // One byte changed in a backed-up data file: verify names it, and a restore refuses.
    let part = manifest(&backups)["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .find(|p| p.starts_with("tables/school_reports/") && p.ends_with(".parquet"))
        .expect("a data file")
        .to_string();
    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).expect("file");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(path, bytes).expect("write");
    };
    flip(&backups.join(&part));
    let checked = run(khoso(&fixture.data).arg("verify").arg("--backup").arg(&backups));
    assert_eq!(checked.status.code(), Some(1), "{}", stdout(&checked));
    assert!(stdout(&checked).contains(&part), "{}", stdout(&checked));
    let refused = run(khoso(&root.join("damaged")).arg("restore").arg("--from").arg(&backups));
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("damaged"), "{}", stderr(&refused));
    assert!(!root.join("damaged").join("tables").join("submissions").exists());

    // And in the warehouse itself, an archived file that changed.
    let archived = std::fs::read_dir(fixture.data.join("archive"))
        .expect("archive")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).expect("folder").flatten())
        .map(|f| f.path())
        .find(|p| p.is_file())
        .expect("an archived file");
    flip(&archived);
    let checked = run(khoso(&fixture.data).arg("verify"));
    assert_eq!(checked.status.code(), Some(1), "{}", stdout(&checked));
    let name = archived.file_name().expect("name").to_string_lossy().into_owned();
    assert!(stdout(&checked).contains(&name), "{}", stdout(&checked));
}

/// `/admin/status` shows an admin each table's version and files, the last files committed,
/// the last backup and upkeep, and a failed sign-in; nobody else sees it.
#[test]
fn the_status_page_shows_versions_backups_upkeep_and_trouble() {
    let fixture = Fixture::new();
    let admin = fixture.account("bo-gd-admin", "admin", None);
    let province = fixture.account("so-gd-hue", "province", Some("46"));
    let server = Server::start(&fixture.data);
    let page = |cookie: &str| server.get_with("/admin/status?lang=en", &[cookie]);
    let session = sign_in(&server, &admin);
    let (head, before) = page(&session);
    assert_eq!(status(&head), 200, "{before}");
    assert!(before.contains("none yet: khoso backup"), "{before}");
    assert!(before.contains("none yet: khoso maintain"), "{before}");

    let (code, json) = upload(
        &server,
        Some(&province),
        "kind=school&year=2024-2025",
        &fixture.report("school", "46", "2024-2025"),
    );
    assert_eq!((code, json["outcome"].as_str()), (200, Some("committed")), "{json}");
    let (head, _) = server.request(
        "POST",
        "/sign-in",
        &["Content-Type: application/x-www-form-urlencoded"],
        b"token=not-a-token",
    );
    assert!(status(&head) >= 300, "{head}");
    for command in [vec!["maintain"], vec!["backup", "--to"]] {
        let mut khoso = khoso(&fixture.data);
        khoso.args(&command);
        if command.len() == 2 {
            khoso.arg(fixture._dir.path().join("backup"));
        }
        let done = run(&mut khoso);
        assert!(done.status.success(), "{}", stderr(&done));
    }

    let (head, after) = crate::eventually(
        || page(&session),
        |(_, page)| page.contains("unauthorized") && !page.contains("none yet"),
    );
    assert_eq!(status(&head), 200);
    for expected in [
        "school_reports",
        "submissions",
        "audit_log",
        "so-gd-hue",
        " 46 2024-2025",
        "tables: ",
        "files (",
        "sign_in",
        "unauthorized",
    ] {
        assert!(after.contains(expected), "{expected:?} is missing: {after}");
    }
    let version = sql(&fixture.data, "SELECT max(table_version) AS v FROM submissions");
    let version = version.lines().nth(1).expect("a version");
    assert!(
        after.contains(&format!("<td>school_reports</td><td>{version}</td>")),
        "{after}"
    );

    let (head, _) = page(&sign_in(&server, &province));
    assert_eq!(status(&head), 403, "a province account is refused");
    let (head, _) = page("X-Nothing: 1");
    assert_eq!(status(&head), 303, "a stranger is sent to sign in");
}

/// A backup into a bucket of an S3 API, made twice (the second copies only what changed),
/// verified there and restored onto a disk: the same tables and KPIs.
#[test]
fn a_backup_in_a_bucket_restores_onto_a_disk() {
    let fixture = Fixture::new();
    let files: Vec<PathBuf> = std::fs::read_dir(fixture.reports.join("school").join("2024-2025"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .take(6)
        .collect();
    let loaded = run(khoso(&fixture.data).args(["ingest", "--kind", "school"]).args(&files));
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    crate::s3::in_bucket("backups", |bucket, dir| {
        let to = format!("s3://{}/nightly", bucket.name);
        // The warehouse on this disk, the backup in the bucket (whose settings the variables give).
        let with_bucket = |data: &Path| {
            let mut command = khoso(bucket);
            command.arg("--data").arg(data);
            command
        };
        for _ in 0..2 {
            let made = run(with_bucket(&fixture.data).args(["backup", "--to", &to]));
            assert!(made.status.success(), "{}", stderr(&made));
        }
        let checked = run(with_bucket(&fixture.data).args(["verify", "--backup", &to]));
        assert!(stdout(&checked).contains("no problem found"), "{}", stdout(&checked));
        let restored = dir.join("restored");
        let done = run(with_bucket(&restored).args(["restore", "--from", &to]));
        assert!(done.status.success(), "{}", stderr(&done));
        assert_eq!(tables_at(&restored, None), tables_at(&fixture.data, None));
    });
}
