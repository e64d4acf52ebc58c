//! The `khoso` binary end to end: init → ingest → corrected re-upload supersedes → SQL sees it
//! and time travel sees the old version; bad files write nothing; concurrent provinces both
//! land; a process killed mid-commit leaves the table readable and whole. The same assertions
//! hold with the warehouse in a folder and in a bucket of an S3 API (the test's own server),
//! where writers of different machines share no lock.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::s3::{S3Server, in_bucket, in_folder};
use crate::{Data, corpus, khoso, run, stderr, stdout};

/// Runs `khoso sql` and returns the CSV lines after the header.
fn sql(data: &(impl Data + ?Sized), query: &str, extra: &[&str]) -> Vec<String> {
    let output = run(khoso(data).args(["sql", query, "--format", "csv"]).args(extra));
    assert!(output.status.success(), "{query}: {}", stderr(&output));
    stdout(&output).lines().skip(1).map(str::to_string).collect()
}

fn single(data: &(impl Data + ?Sized), query: &str) -> String {
    let lines = sql(data, query, &[]);
    assert_eq!(lines.len(), 1, "{query}: {lines:?}");
    lines[0].clone()
}

fn init(data: &(impl Data + ?Sized)) {
    let output = run(khoso(data).arg("init"));
    assert!(output.status.success(), "{}", stderr(&output));
}

fn ingest(data: &(impl Data + ?Sized), file: &Path) -> std::process::Output {
    run(khoso(data)
        .args(["ingest", "--kind", "school", "--user", "tester"])
        .arg(file))
}

/// A copy of a corpus file with some text replaced.
fn variant(dir: &Path, name: &str, from: &str, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(corpus(from)).expect("corpus file");
    for (old, new) in edits {
        assert!(text.contains(old), "{from} has no {old:?}");
        text = text.replace(old, new);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write variant");
    path
}

#[test]
fn ingest_supersede_time_travel_and_idempotence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    supersede_and_time_travel(&data, dir.path());
    // Every row carries its submission, and the archive holds the file by its hash.
    let sha = single(
        &data,
        "SELECT sha256 FROM submissions WHERE file_name = 'corrected.csv'",
    );
    let archived = std::fs::read_dir(data.join("archive").join(&sha[..2]))
        .expect("archive folder")
        .flatten()
        .any(|e| e.file_name().to_string_lossy() == format!("{sha}.csv"));
    assert!(archived, "archived copy of {sha}");
}

#[test]
fn on_s3_ingest_supersede_time_travel_and_idempotence() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = server.bucket("supersede");
    supersede_and_time_travel(&bucket, dir.path());
    let sha = single(
        &bucket,
        "SELECT sha256 FROM submissions WHERE file_name = 'corrected.csv'",
    );
    assert!(
        server.holds(&bucket, &format!("warehouse/archive/{}/{sha}.csv", &sha[..2])),
        "archived copy of {sha} in the bucket"
    );
}

/// Init, ingest, the same bytes again, a corrected file that supersedes, the old version read
/// back, and every row's lineage.
fn supersede_and_time_travel(data: &(impl Data + ?Sized), dir: &Path) {
    init(data);
    assert_eq!(single(data, "SELECT count(*) FROM school_reports"), "0");

    let first = ingest(data, &corpus("good_utf8_no_bom.csv"));
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(single(data, "SELECT sum(students) FROM school_reports"), "3684");
    let version_before = single(data, "SELECT table_version FROM submissions");

    // A plan names the files it reads, never where the warehouse is kept.
    let plan = run(khoso(data).args(["sql", "EXPLAIN SELECT * FROM school_reports", "--role", "analyst"]));
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan = stdout(&plan);
    let named = plan.matches("tables/school_reports/").count();
    assert!(named > 0, "{plan}");
    assert_eq!(plan.matches("DATA/tables/school_reports/").count(), named, "{plan}");

    // The same bytes again: nothing changes, and it says so.
    let again = ingest(data, &corpus("good_utf8_no_bom.csv"));
    assert!(again.status.success());
    assert!(stdout(&again).contains("unchanged"), "{}", stdout(&again));
    assert_eq!(single(data, "SELECT count(*) FROM submissions"), "1");

    // A corrected file for the same slice replaces it whole.
    let corrected = variant(dir, "corrected.csv", "good_utf8_no_bom.csv", &[("1234", "2000")]);
    let output = ingest(data, &corrected);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(single(data, "SELECT count(*) FROM school_reports"), "3");
    assert_eq!(single(data, "SELECT sum(students) FROM school_reports"), "4450");
    let history = sql(
        data,
        "SELECT file_name, uploaded_by, supersedes IS NOT NULL FROM submissions ORDER BY uploaded_at",
        &[],
    );
    assert_eq!(
        history,
        vec!["good_utf8_no_bom.csv,tester,false", "corrected.csv,tester,true"]
    );
    let superseded = single(
        data,
        "SELECT count(*) FROM submissions s JOIN submissions t ON t.supersedes = s.submission_id",
    );
    assert_eq!(superseded, "1");

    // The old version stays readable.
    let pin = format!("school_reports={version_before}");
    assert_eq!(
        sql(data, "SELECT sum(students) FROM school_reports", &["--at", &pin]),
        vec!["3684"]
    );
    let missing = run(khoso(data).args(["sql", "SELECT 1 FROM school_reports", "--at", "school_reports=99"]));
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));

    let lineage = single(
        data,
        "SELECT count(*) FROM school_reports r JOIN submissions s USING (submission_id) WHERE s.file_name = 'corrected.csv'",
    );
    assert_eq!(lineage, "3");
}

#[test]
fn a_bad_file_writes_nothing_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    init(&data);
    let errors = dir.path().join("errors.csv");
    let output = run(khoso(&data)
        .args(["ingest", "--kind", "school", "--errors-out"])
        .arg(&errors)
        .arg(corpus("good_utf8_bom.csv"))
        .arg(corpus("negatives.csv")));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("non_negative"), "{}", stderr(&output));
    // The valid file of the same run is not committed either.
    assert_eq!(single(&data, "SELECT count(*) FROM submissions"), "0");
    let csv = std::fs::read_to_string(&errors).expect("errors file");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "file,row,column,value,rule,message_vi,message_en");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].contains(",2,Tổng số học sinh,'-5,non_negative,"),
        "{}",
        lines[1]
    );

    let dry = run(khoso(&data)
        .args(["ingest", "--kind", "school", "--dry-run"])
        .arg(corpus("good_english.csv")));
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("dry run"), "{}", stdout(&dry));
    assert_eq!(single(&data, "SELECT count(*) FROM school_reports"), "0");
}

/// Reports of three kinds loaded by one `khoso ingest` without `--kind` land as when each kind
/// is loaded with its `--kind`: the same submissions, rows and KPI values. A file whose header
/// names no report stops the whole command before anything is written.
#[test]
fn files_of_several_kinds_load_in_one_command_each_known_by_its_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (by_kind, reports) = crate::generated(dir.path(), "0.02", "2024-2025..2025-2026", "7", false);
    let files = |kind: &str| -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut folders = vec![reports.join(kind)];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("folder") {
                let path = entry.expect("entry").path();
                match path.is_dir() {
                    true => folders.push(path),
                    false => found.push(path),
                }
            }
        }
        found.sort();
        found
    };
    for kind in ["school", "university", "content"] {
        let output = run(khoso(&by_kind).args(["ingest", "--kind", kind]).args(files(kind)));
        assert!(output.status.success(), "{kind}: {}", stderr(&output));
    }
    let all: Vec<_> = ["content", "university", "school"]
        .into_iter()
        .flat_map(files)
        .collect();

    let together = dir.path().join("together");
    init(&together);
    let stranger = dir.path().join("notes.csv");
    std::fs::write(&stranger, "STT,Ghi chú\n1,xem lại\n").expect("write");
    let refused = run(khoso(&together).arg("ingest").args(&all).arg(&stranger));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("notes.csv") && stderr(&refused).contains("[unknown_kind]"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(single(&together, "SELECT count(*) FROM submissions"), "0");

    let output = run(khoso(&together).arg("ingest").args(&all));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("KPIs up to date"), "{}", stdout(&output));
    for query in [
        "SELECT kind, school_year, province_code, rows, sha256 FROM submissions ORDER BY 1, 2, 3",
        "SELECT school_year, province_code, sum(students), count(*) FROM school_reports GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT school_year, sum(students), sum(lecturers) FROM university_reports GROUP BY 1 ORDER BY 1",
        "SELECT school_year, sum(lessons_total) FROM content_coverage GROUP BY 1 ORDER BY 1",
        "SELECT kpi_id, dimension, unit, school_year, value, status FROM kpi_values ORDER BY 1, 2, 3, 4",
    ] {
        let (one, three) = (sql(&together, query, &[]), sql(&by_kind, query, &[]));
        assert!(!one.is_empty(), "{query}");
        assert_eq!(one, three, "{query}");
    }
}

#[test]
fn sql_is_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    init(&data);
    for query in [
        "DROP TABLE submissions",
        "INSERT INTO submissions SELECT * FROM submissions",
        "COPY (SELECT 1) TO 'x.csv'",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let output = run(khoso(&data).args(["sql", query]));
        assert_eq!(output.status.code(), Some(2), "{query}");
        assert!(stderr(&output).contains("read-only"), "{query}: {}", stderr(&output));
    }
    let tables = sql(
        &data,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        &[],
    );
    assert_eq!(
        tables,
        vec![
            "approvals",
            "audit_log",
            "content_coverage",
            "educators",
            "institutions",
            "kpi_values",
            "learner_records",
            "learners",
            "levels",
            "provinces",
            "quality_explanations",
            "regions",
            "school_reports",
            "submissions",
            "teacher_records",
            "university_reports"
        ]
    );
    assert!(!dir.path().join("x.csv").exists());
}

#[test]
fn two_provinces_ingested_concurrently_both_land() {
    in_folder(provinces_at_once);
}

#[test]
fn on_s3_two_provinces_ingested_concurrently_both_land() {
    in_bucket("provinces", provinces_at_once);
}

/// Two provinces' files ingested by two processes at once (on an object store, as from two
/// machines: no lock of one machine between them); then two files of one slice at once.
fn provinces_at_once(data: &(impl Data + ?Sized), dir: &Path) {
    init(data);
    let hanoi = corpus("good_utf8_no_bom.csv");
    let saigon = variant(dir, "hcm.csv", "good_utf8_no_bom.csv", &[(",01,", ",79,")]);
    for output in ingest_at_once(data, dir, &[hanoi.clone(), saigon]) {
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let slices = sql(
        data,
        "SELECT province_code, count(*) FROM school_reports GROUP BY 1 ORDER BY 1",
        &[],
    );
    assert_eq!(slices, vec!["01,3", "79,3"]);
    assert_eq!(single(data, "SELECT count(*) FROM submissions"), "2");

    // Two new files of one slice at once: the slice ends holding one of them whole, recorded as
    // its current submission; a file that lost the race is told so, and wrote nothing.
    let first = variant(dir, "hanoi-a.csv", "good_utf8_no_bom.csv", &[("1234", "2000")]);
    let second = variant(dir, "hanoi-b.csv", "good_utf8_no_bom.csv", &[("1234", "3000")]);
    let outputs = ingest_at_once(data, dir, &[first, second]);
    let mut landed = 0;
    for output in &outputs {
        match output.status.success() {
            true => landed += 1,
            // Not the file's fault: exit code 1.
            false => {
                assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
                assert!(stderr(output).contains("at the same moment"), "{}", stderr(output));
            }
        }
    }
    assert!(landed >= 1, "one of the two files lands");
    let holds = single(
        data,
        "SELECT s.file_name || ':' || sum(r.students) FROM school_reports r JOIN submissions s USING (submission_id) \
         WHERE r.province_code = '01' GROUP BY s.file_name",
    );
    let current = single(
        data,
        "SELECT file_name FROM submissions WHERE province_code = '01' AND submission_id NOT IN \
         (SELECT supersedes FROM submissions WHERE supersedes IS NOT NULL)",
    );
    let expected_sum = if current == "hanoi-a.csv" { 4450 } else { 5450 };
    assert_eq!(holds, format!("{current}:{expected_sum}"));
    assert_eq!(
        single(data, "SELECT count(*) FROM submissions")
            .parse::<usize>()
            .expect("count"),
        2 + landed
    );
}

/// `khoso ingest` of each file, all started at once, each as from a machine of its own (see
/// [`at_once`]).
fn ingest_at_once(data: &(impl Data + ?Sized), dir: &Path, files: &[std::path::PathBuf]) -> Vec<std::process::Output> {
    let commands: Vec<Vec<String>> = files
        .iter()
        .map(|file| {
            vec![
                "ingest".into(),
                "--kind".into(),
                "school".into(),
                file.display().to_string(),
            ]
        })
        .collect();
    at_once(data, dir, &commands)
}

/// `khoso` with each of `commands`, all started at once, each as from a machine of its own (its
/// own temporary folder, so that on an object store no lock of one machine is shared).
fn at_once(data: &(impl Data + ?Sized), dir: &Path, commands: &[Vec<String>]) -> Vec<std::process::Output> {
    let children: Vec<_> = commands
        .iter()
        .enumerate()
        .map(|(machine, args)| {
            let temporary = dir.join(format!("machine-{machine}"));
            std::fs::create_dir_all(&temporary).expect("machine folder");
            khoso(data)
                .args(args)
                .env("TMPDIR", temporary)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    children
        .into_iter()
        .map(|child| child.wait_with_output().expect("wait"))
        .collect()
}

#[test]
fn a_process_killed_mid_commit_leaves_the_previous_version() {
    in_folder(killed_mid_commit);
}

#[test]
fn on_s3_a_process_killed_mid_commit_leaves_the_previous_version() {
    in_bucket("killed", killed_mid_commit);
}

/// Ingests of a large file killed at many moments: the slice always holds the old or the new
/// file whole, and the next commit records what a killed one left unrecorded.
fn killed_mid_commit(data: &(impl Data + ?Sized), dir: &Path) {
    init(data);
    assert!(ingest(data, &corpus("good_utf8_no_bom.csv")).status.success());

    // A large replacement for the same slice, so a commit takes long enough to be interrupted.
    let big_rows = 60_000;
    let source = std::fs::read_to_string(corpus("good_utf8_no_bom.csv")).expect("corpus");
    let mut lines = source.lines();
    let mut text = format!("{}\n", lines.next().expect("header"));
    let template = lines.next().expect("a row");
    for i in 0..big_rows {
        text.push_str(&template.replace("0100001", &format!("9{i:07}")));
        text.push('\n');
    }
    let big = dir.join("big.csv");
    std::fs::write(&big, text).expect("write big file");

    let counts = ["3".to_string(), big_rows.to_string()];
    for delay_ms in [30, 120, 250, 400, 500, 600, 700, 850, 1000, 1300, 1800] {
        let mut child = khoso(data)
            .args(["ingest", "--kind", "school"])
            .arg(&big)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().ok();
        child.wait().expect("wait");
        let count = single(data, "SELECT count(*) FROM school_reports WHERE province_code = '01'");
        assert!(
            counts.contains(&count),
            "after a kill at {delay_ms} ms the slice has {count} rows"
        );
    }

    // The next commit records any table version a killed process left without its submission.
    let other = variant(dir, "hcm.csv", "good_utf8_no_bom.csv", &[(",01,", ",79,")]);
    assert!(ingest(data, &other).status.success());
    let orphans = single(
        data,
        "SELECT count(*) FROM (SELECT DISTINCT submission_id FROM school_reports) r \
         LEFT JOIN submissions s USING (submission_id) WHERE s.submission_id IS NULL",
    );
    assert_eq!(orphans, "0");
}

#[test]
fn templates_are_written_in_both_languages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(khoso(dir.path()).args(["template", "school", "--out", "-"]));
    assert!(output.status.success());
    let header = stdout(&output);
    assert!(header.starts_with("\u{feff}Năm học,Mã tỉnh,Mã trường"), "{header}");
    let english = run(khoso(dir.path()).args(["template", "university", "--lang", "en", "--out", "-"]));
    assert!(
        stdout(&english).contains("institution_id,institution_name"),
        "{}",
        stdout(&english)
    );
    let xlsx = dir.path().join("t.xlsx");
    let output = run(khoso(dir.path())
        .args(["template", "content", "--format", "xlsx", "--out"])
        .arg(&xlsx));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::metadata(&xlsx).expect("xlsx written").len() > 1000);
}

#[test]
fn making_a_warehouse_logs_nothing_a_user_would_take_for_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = run(khoso(&dir.path().join("data")).env_remove("RUST_LOG").arg("init"));
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(stderr(&made), "", "a new warehouse's empty tables are not errors");
}

#[test]
fn on_s3_accounts_made_at_once_on_several_machines_are_all_kept() {
    in_bucket("accounts", accounts_at_once);
}

fn accounts_at_once(bucket: &crate::s3::Bucket, dir: &Path) {
    init(bucket);
    // Each a read and a conditional rewrite of one document: none may lose another's account.
    let commands: Vec<Vec<String>> = (0..6)
        .map(|machine| {
            ["users", "add", &format!("phan-tich-{machine}"), "--role", "analyst"]
                .map(String::from)
                .to_vec()
        })
        .collect();
    for output in at_once(bucket, dir, &commands) {
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let listed = stdout(&run(khoso(bucket).args(["users", "list"])));
    for machine in 0..6 {
        assert!(listed.contains(&format!("phan-tich-{machine} ")), "{listed}");
    }
}

#[test]
fn an_unreachable_object_store_is_named_with_where_its_settings_come_from() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let nowhere = crate::s3::Bucket {
        endpoint: format!("http://{closed}"),
        name: "khoso-absent".into(),
        location: "s3://khoso-absent/warehouse".into(),
    };
    let answer = run(khoso(&nowhere).args(["sql", "SELECT 1"]));
    assert!(!answer.status.success());
    let said = stderr(&answer);
    assert!(
        said.contains("cannot reach the warehouse at s3://khoso-absent/warehouse/"),
        "{said}"
    );
    assert!(
        said.contains("AWS_ENDPOINT_URL") && said.contains("--storage-option"),
        "{said}"
    );
}
