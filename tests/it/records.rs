//! Learner and teacher records: every path keeps pseudonyms, never the identifiers sent; the
//! record-based KPIs equal an independent count of the files; small groups are withheld; the
//! rules of a record file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::serve::{Server, status};
use crate::{account, khoso, run, stderr, stdout};

/// One record file, read the simple way: its header and its rows of cells.
struct RecordFile {
    rows: Vec<Vec<String>>,
}

impl RecordFile {
    fn read(path: &Path) -> RecordFile {
        let text = std::fs::read_to_string(path).expect("read");
        let separator = if text.lines().next().unwrap_or("").contains(';') {
            ';'
        } else {
            ','
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let split = |line: &str| line.split(separator).map(|c| c.trim().to_string()).collect::<Vec<_>>();
        lines.next().expect("a header row");
        RecordFile {
            rows: lines.map(split).collect(),
        }
    }

    /// The cells of the `index`-th column of the schema (the generator writes schema order).
    fn column(&self, index: usize) -> impl Iterator<Item = &str> {
        self.rows.iter().map(move |r| r[index].as_str())
    }
}

fn yes(cell: &str) -> bool {
    matches!(cell, "TRUE" | "Có" | "1" | "x")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every run of 12 digits in a text (each 12-digit window of a longer run), but those inside a
/// pseudonym: 64 hex digits hold a run of 12 decimal ones by chance, and one such run equals one
/// of the tens of thousands of identifiers searched for about once in a thousand test runs.
fn twelve_digit_runs(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for token in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let bytes = token.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            if !bytes[start].is_ascii_digit() {
                start += 1;
                continue;
            }
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            for window in start..=end.saturating_sub(12) {
                if end - window >= 12 {
                    found.push(&token[window..window + 12]);
                }
            }
            start = end;
        }
    }
    found
}

/// Every text of a file: a Parquet file's values (its pages are compressed, so its bytes would
/// hide them), any other file's bytes.
fn texts_of(path: &Path) -> Vec<String> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let bytes = std::fs::read(path).expect("read");
    let mut texts = vec![String::from_utf8_lossy(&bytes).into_owned()];
    if path.extension().is_some_and(|e| e == "parquet") {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).expect("open"))
            .expect("a Parquet file")
            .build()
            .expect("reader");
        // As JSON lines: Delta's checkpoints have nested columns.
        let mut json = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
        for batch in reader {
            json.write(&batch.expect("batch")).expect("json");
        }
        json.finish().expect("json");
        texts.push(String::from_utf8_lossy(&json.into_inner()).into_owned());
    }
    texts
}

/// The raw identifiers found in any file under `dir` or in `logs`.
fn leaked(dir: &Path, logs: &[String], identifiers: &HashSet<String>) -> Vec<String> {
    let mut leaks = Vec::new();
    for path in files_under(dir) {
        for text in texts_of(&path) {
            if let Some(id) = twelve_digit_runs(&text).into_iter().find(|r| identifiers.contains(*r)) {
                leaks.push(format!("{id} in {}", path.display()));
            }
        }
    }
    for (index, log) in logs.iter().enumerate() {
        if let Some(id) = twelve_digit_runs(log).into_iter().find(|r| identifiers.contains(*r)) {
            leaks.push(format!("{id} in log {index}"));
        }
    }
    leaks
}

fn kpi_values(data: &Path, kpi: &str) -> Vec<BTreeMap<String, String>> {
    let query = format!(
        "SELECT dimension, unit, school_year, numerator, denominator, people, withheld FROM kpi_values WHERE kpi_id = \
         '{kpi}' ORDER BY dimension, unit, school_year"
    );
    let answer = run(khoso(data).args(["sql", &query, "--format", "csv"]));
    assert!(answer.status.success(), "{}", stderr(&answer));
    let text = stdout(&answer);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn number(text: &str) -> Option<f64> {
    text.parse().ok()
}

#[test]
fn records_are_pseudonymised_everywhere_and_counted_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, reports) = (dir.path().join("data"), dir.path().join("reports"));
    let made = run(khoso(&data)
        .args([
            "generate",
            "--scale",
            "0.003",
            "--years",
            "2023-2024..2024-2025",
            "--out",
        ])
        .arg(&reports)
        .args(["--kind", "school,learner,teacher"]));
    assert!(made.status.success(), "{}", stderr(&made));
    let init = run(khoso(&data).args(["init", "--sample", "--sample-dir"]).arg(&reports));
    assert!(init.status.success(), "{}", stderr(&init));
    let mut logs = vec![stdout(&init), stderr(&init)];

    // What the files say, counted here.
    let mut identifiers = HashSet::new();
    let mut by_year: HashMap<String, HashSet<String>> = HashMap::new();
    // (year, unit) → (online ready, learners), by gender and by grade.
    let mut by_gender: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut by_grade: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut trained: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    // (province, school, level) → (pupils, online ready, digital record) counted in 2024-2025.
    let mut counted: BTreeMap<(String, String, String), [i64; 3]> = BTreeMap::new();
    for path in files_under(&reports.join("learner")) {
        let file = RecordFile::read(&path);
        for row in &file.rows {
            let (year, id, grade, gender, ready) = (&row[0], &row[3], &row[5], &row[6], yes(&row[9]));
            identifiers.insert(id.clone());
            by_year.entry(year.clone()).or_default().insert(id.clone());
            if year == "2024-2025" {
                let level = match row[4].as_str() {
                    "Tiểu học" => "primary",
                    "Trung học cơ sở" => "lower_secondary",
                    "Trung học phổ thông" => "upper_secondary",
                    "Giáo dục thường xuyên" => "continuing",
                    level => level,
                };
                let school = counted
                    .entry((row[1].clone(), row[2].clone(), level.to_string()))
                    .or_default();
                school[0] += 1;
                school[1] += i64::from(ready);
                school[2] += i64::from(yes(&row[11]));
            }
            let gender = match gender.as_str() {
                "Nam" | "male" => "male",
                _ => "female",
            };
            for (map, unit) in [
                (&mut by_gender, gender.to_string()),
                (&mut by_grade, format!("{grade:0>2}")),
            ] {
                let entry = map.entry((year.clone(), unit)).or_default();
                entry.0 += i64::from(ready);
                entry.1 += 1;
            }
        }
    }
    for path in files_under(&reports.join("teacher")) {
        let file = RecordFile::read(&path);
        identifiers.extend(file.column(3).map(str::to_string));
        for row in &file.rows {
            let entry = trained.entry(row[0].clone()).or_default();
            entry.0 += i64::from(yes(&row[6]));
            entry.1 += 1;
        }
    }
    assert!(identifiers.len() > 50_000, "{} identifiers", identifiers.len());

    // The record KPIs against those counts, unit by unit.
    let values = kpi_values(&data, "records_pupils_online_ready");
    for (dimension, expected) in [("gender", &by_gender), ("grade", &by_grade)] {
        for ((year, unit), (ready, learners)) in expected {
            let row = values
                .iter()
                .find(|r| r["dimension"] == dimension && &r["unit"] == unit && &r["school_year"] == year)
                .unwrap_or_else(|| panic!("no {dimension} {unit} {year}"));
            assert_eq!(
                (number(&row["numerator"]), number(&row["denominator"])),
                (Some(*ready as f64), Some(*learners as f64)),
                "{dimension} {unit} {year}"
            );
            assert_eq!(row["people"], learners.to_string());
        }
    }
    let values = kpi_values(&data, "records_teachers_trained");
    for (year, (yes_count, teachers)) in &trained {
        let row = values
            .iter()
            .find(|r| r["dimension"] == "national" && &r["school_year"] == year)
            .expect("national row");
        assert_eq!(number(&row["numerator"]), Some(*yes_count as f64));
        assert_eq!(number(&row["denominator"]), Some(*teachers as f64));
    }

    // The same learner has the same pseudonym in both years: as many pseudonyms are in both
    // years as identifiers are.
    let both = by_year["2023-2024"].intersection(&by_year["2024-2025"]).count();
    assert!(both > 10_000, "{both} learners stay");
    let answer = run(khoso(&data).args([
        "sql",
        "SELECT count(*) AS n FROM (SELECT learner_id FROM learner_records WHERE school_year = '2023-2024' \
         INTERSECT SELECT learner_id FROM learner_records WHERE school_year = '2024-2025')",
        "--format",
        "csv",
    ]));
    assert_eq!(stdout(&answer), format!("n\n{both}\n"), "{}", stderr(&answer));

    // Reconciliation: the schools' reports (as ingested) against the records counted here.
    let reported = run(khoso(&data).args([
        "sql",
        "SELECT province_code, school_id, level, sum(students) AS p, sum(students_online_ready) AS o, \
         sum(students_digital_record) AS d FROM school_reports WHERE school_year = '2024-2025' GROUP BY 1, 2, 3",
        "--format",
        "csv",
    ]));
    let mut differing = Vec::new();
    let mut compared = 0;
    for line in stdout(&reported).lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let key = (cells[0].to_string(), cells[1].to_string(), cells[2].to_string());
        let Some(records) = counted.get(&key) else {
            continue;
        };
        compared += 1;
        let claimed: Vec<i64> = cells[3..].iter().map(|c| c.parse().expect("a count")).collect();
        let worst = (0..3)
            .map(|i| match (claimed[i], records[i]) {
                (r, c) if r == c => 0.0,
                (_, 0) => 1.0,
                (r, c) => (r - c).abs() as f64 / c as f64,
            })
            .fold(0.0, f64::max);
        if worst > 0.05 {
            differing.push(format!("{}/{}", key.1, key.2));
        }
    }
    differing.sort();
    assert!(
        !differing.is_empty() && differing.len() * 10 < compared,
        "{differing:?} of {compared}"
    );
    let analyst = account(&data, "phan-tich", "analyst", None);
    let admin = account(&data, "bo-gd", "admin", None);

    // The pages and the API, with their log.
    let log_path = dir.path().join("serve.log");
    let mut server = Server::start_logging(&data, &[], std::fs::File::create(&log_path).expect("log file"));
    for page in [
        "/",
        "/kpi/records_pupils_online_ready?year=2024-2025",
        "/kpi/T1_pupils?year=2024-2025",
        "/api/v1/kpis/records_pupils_online_ready?by=grade",
    ] {
        let (head, body) = server.get_with(page, &[]);
        assert_eq!(status(&head), 200, "{page}: {body}");
    }
    let auth = format!("Authorization: Bearer {analyst}");
    let (head, body) = server.get_with("/api/v1/reconciliation?year=2024-2025", &[&auth]);
    assert_eq!(status(&head), 200, "{body}");
    let found: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut listed: Vec<String> = found["schools"]
        .as_array()
        .expect("schools")
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["school_id"].as_str().unwrap_or(""),
                s["level"].as_str().unwrap_or("")
            )
        })
        .collect();
    listed.sort();
    assert_eq!(listed, differing, "the schools that differ, as counted here");
    let totals: i64 = found["provinces"]
        .as_array()
        .expect("provinces")
        .iter()
        .map(|p| p["compared"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(totals, compared as i64);
    assert_eq!(
        status(&server.get_with("/api/v1/reconciliation", &[]).0),
        401,
        "not for strangers"
    );
    // One analyst asking for it 16 times at once: each answer whole or "too many", and the same
    // server answers its pages in time afterwards.
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let asks: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let path = "/api/v1/reconciliation?year=2024-2025";
                    status(&crate::serve::http(&server.address, "GET", path, &[&auth], b"").0)
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().expect("a request")).collect()
    });
    assert!(answers.iter().all(|s| [200, 429].contains(s)), "{answers:?}");
    server.assert_answers("a flood of reconciliations");
    let (head, page) = server.get_with("/reconciliation?year=2024-2025&lang=en", &[&auth]);
    assert!(
        status(&head) == 200 && page.contains(&differing[0][..7]),
        "the page lists them"
    );
    // The dry run of either side warns that it disagrees with the other side already in.
    let province = &differing[0][..2];
    let province_file = |kind: &str| {
        files_under(&reports.join(kind).join("2024-2025"))
            .into_iter()
            .find(|p| p.to_string_lossy().contains(&format!("{kind}-{province}-")))
            .expect("the province's file")
    };
    for kind in ["learner", "school"] {
        let sent = province_file(kind);
        let (head, body) = server.request(
            "POST",
            &format!("/api/v1/submissions?kind={kind}&year=2024-2025&province={province}&dry_run=true"),
            &[&format!("Authorization: Bearer {admin}")],
            &std::fs::read(&sent).expect("read"),
        );
        assert_eq!(status(&head), 200, "{body}");
        assert!(
            body.contains("records_differ") && body.contains(&differing[0][..7]),
            "{kind}: {body}"
        );
    }
    let page = server.get("/kpi/T1_pupils?year=2024-2025&lang=en");
    assert!(
        page.contains("/kpi/records_pupils_online_ready") && page.contains("counted from the learner"),
        "the reported KPI shows its twin from records"
    );
    server.terminate();
    logs.push(std::fs::read_to_string(&log_path).expect("log"));
    // So does `khoso ingest --dry-run` on the warehouse, and it commits nothing.
    let count_submissions = || {
        let answer = run(khoso(&data).args(["sql", "SELECT count(*) AS n FROM submissions", "--format", "csv"]));
        stdout(&answer)
    };
    let submissions = count_submissions();
    for kind in ["learner", "school"] {
        let sent = province_file(kind);
        let dry = run(khoso(&data).args(["ingest", "--kind", kind, "--dry-run"]).arg(&sent));
        let said = stdout(&dry);
        assert!(dry.status.success(), "{}", stderr(&dry));
        assert!(
            said.contains("[records_differ]") && said.contains(&differing[0][..7]) && said.contains("dry run"),
            "{kind}: {said}"
        );
        logs.extend([said, stderr(&dry)]);
    }
    assert_eq!(count_submissions(), submissions);

    assert!(
        !leaked(&reports, &[], &identifiers).is_empty(),
        "the search finds identifiers where they are"
    );
    let leaks = leaked(&data, &logs, &identifiers);
    assert!(leaks.is_empty(), "raw identifiers on disk or in logs: {leaks:?}");
}

/// A learner file of `rows` (12 columns in schema order, English headers).
fn learner_csv(rows: &[[&str; 12]], extra_header: Option<&str>) -> String {
    let mut header = "school_year,province_code,school_id,learner_id,level,grade,gender,device,home_internet,\
                      online_ready,domestic_platform,digital_record"
        .to_string();
    if let Some(extra) = extra_header {
        header.push(',');
        header.push_str(extra);
    }
    let mut text = header + "\n";
    for row in rows {
        text.push_str(&row.join(","));
        if extra_header.is_some() {
            text.push_str(",Nguyễn Văn A");
        }
        text.push('\n');
    }
    text
}

fn learner(id: &str, grade: &str, gender: &str, ready: &str) -> [String; 12] {
    [
        "2024-2025",
        "01",
        "0100001",
        id,
        "primary",
        grade,
        gender,
        "own",
        "TRUE",
        ready,
        "FALSE",
        "TRUE",
    ]
    .map(str::to_string)
}

fn as_refs(rows: &[[String; 12]]) -> Vec<[&str; 12]> {
    rows.iter().map(|r| r.each_ref().map(String::as_str)).collect()
}

#[test]
fn a_record_file_breaking_a_rule_is_refused_whole_without_echoing_identifiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    let file = dir.path().join("learners.csv");
    let errors = dir.path().join("errors.csv");
    let ingest = |text: &str| {
        std::fs::write(&file, text).expect("write");
        let output = run(khoso(&data)
            .args(["ingest", "--kind", "learner", "--errors-out"])
            .arg(&errors)
            .arg(&file));
        let problems = std::fs::read_to_string(&errors).unwrap_or_default();
        (
            output.status.success(),
            format!("{}{}", stdout(&output), stderr(&output)),
            problems,
        )
    };
    let good: Vec<[String; 12]> = (0..12)
        .map(|i| learner(&format!("0010{:08}", 2_000_000 + i), "3", "female", "TRUE"))
        .collect();

    // A name column: the whole file is refused, and says to remove it.
    let (ok, said, problems) = ingest(&learner_csv(&as_refs(&good), Some("Họ và tên")));
    assert!(!ok && problems.contains("personal_data"), "{said}\n{problems}");
    assert!(
        said.contains("Họ và tên") && said.contains("Delete the column"),
        "{said}"
    );
    for header in [
        "Ngày sinh",
        "Địa chỉ thường trú",
        "SĐT phụ huynh",
        "Date of birth",
        "Phone",
    ] {
        let (ok, said, problems) = ingest(&learner_csv(&as_refs(&good), Some(header)));
        assert!(!ok && problems.contains("personal_data"), "{header}: {said}");
    }

    // Bad identifiers, a grade its level does not teach, a person twice: every problem listed,
    // none with the identifier in it, and nothing written.
    let mut bad = good.clone();
    bad[1][3] = "12345".into();
    bad[2][5] = "7".into();
    bad[3][3] = bad[0][3].clone();
    let (ok, said, problems) = ingest(&learner_csv(&as_refs(&bad), None));
    assert!(!ok, "{said}");
    for rule in ["person_id", "range_by", "unique_key"] {
        assert!(problems.contains(rule), "{rule}: {problems}");
    }
    assert!(
        !problems.contains(&bad[0][3]) && !said.contains(&bad[0][3]),
        "{problems}\n{said}"
    );
    assert!(!problems.contains("12345"), "an identifier is never echoed: {problems}");

    // A spreadsheet's lost leading zero is given back.
    let mut zeros = good.clone();
    zeros[0][3] = zeros[0][3].trim_start_matches('0').to_string();
    assert_eq!(zeros[0][3].len(), 10, "two zeros lost is not one");
    zeros[0][3] = format!("0{}", zeros[0][3]);
    let (ok, said, _) = ingest(&learner_csv(&as_refs(&zeros), None));
    assert!(ok, "{said}");
    assert!(said.contains("leading zero"), "{said}");

    let sql = |query: &str| stdout(&run(khoso(&data).args(["sql", query, "--format", "csv"])));
    assert_eq!(sql("SELECT count(*) AS n FROM learner_records"), "n\n12\n");
    let identifiers: HashSet<String> = good.iter().map(|r| r[3].clone()).collect();
    assert!(leaked(&data, &[], &identifiers).is_empty());
}

#[test]
fn groups_under_ten_people_are_withheld_on_every_public_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    // Twelve learners: 7 boys (4 able to study online), 5 girls (1 able).
    let rows: Vec<[String; 12]> = (0..12)
        .map(|i| {
            let gender = if i < 7 { "male" } else { "female" };
            let ready = if i < 4 || i == 7 { "TRUE" } else { "FALSE" };
            learner(&format!("0790{:08}", 5_000_000 + i), "2", gender, ready)
        })
        .collect();
    let file = dir.path().join("learners.csv");
    std::fs::write(&file, learner_csv(&as_refs(&rows), None)).expect("write");
    let ingest = run(khoso(&data).args(["ingest", "--kind", "learner"]).arg(&file));
    assert!(ingest.status.success(), "{}", stderr(&ingest));

    let values = kpi_values(&data, "records_pupils_online_ready");
    let national = values.iter().find(|r| r["dimension"] == "national").expect("national");
    assert_eq!(
        (
            number(&national["numerator"]),
            number(&national["denominator"]),
            national["withheld"].as_str()
        ),
        (Some(5.0), Some(12.0), "false")
    );
    for gender in ["male", "female"] {
        let row = values
            .iter()
            .find(|r| r["dimension"] == "gender" && r["unit"] == gender)
            .expect("gender row");
        assert_eq!(
            (
                row["numerator"].as_str(),
                row["denominator"].as_str(),
                row["people"].as_str(),
                row["withheld"].as_str()
            ),
            ("", "", "", "true"),
            "{gender} is a group of fewer than 10"
        );
    }

    let mut server = Server::start(&data);
    let json = server.json("/api/v1/kpis/records_pupils_online_ready?by=gender");
    let text = json.to_string();
    assert!(text.contains("\"withheld\":true") && !text.contains("0.5714"), "{text}");
    let page = server.get("/kpi/records_pupils_online_ready?year=2024-2025&lang=en");
    assert!(page.contains("&lt; 10"), "the page says < 10");
    // As the page writes a share (the map's outlines are numbers too).
    for share in ["57.1%", "20.0%"] {
        let at = page
            .find(share)
            .map(|i| &page[page.floor_char_boundary(i.saturating_sub(200))..(i + 20).min(page.len())]);
        assert!(at.is_none(), "a small group's share on the page: {at:?}");
    }
    server.assert_answers("withheld figures");
    server.terminate();
}

#[test]
fn a_held_record_file_waits_as_pseudonyms_and_commits_when_approved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    let province = account(&data, "so-gd-ha-noi", "province", Some("01"));
    let admin = account(&data, "bo-gd", "admin", None);
    let rows: Vec<[String; 12]> = (0..20)
        .map(|i| learner(&format!("0010{:08}", 7_000_000 + i), "4", "male", "TRUE"))
        .collect();
    let body = learner_csv(&as_refs(&rows), None);
    let identifiers: HashSet<String> = rows.iter().map(|r| r[3].clone()).collect();

    let server = Server::start_with(&data, &["--require-approval"]);
    let (head, answer) = server.request(
        "POST",
        "/api/v1/submissions?kind=learner&year=2024-2025",
        &[&format!("Authorization: Bearer {province}")],
        body.as_bytes(),
    );
    assert_eq!(status(&head), 202, "{answer}");
    let json: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let held = json["held"]["id"].as_str().expect("held id").to_string();
    assert!(leaked(&data, &[], &identifiers).is_empty(), "held as pseudonyms");

    let (head, answer) = server.request(
        "POST",
        &format!("/api/v1/submissions/{held}/approve"),
        &[&format!("Authorization: Bearer {admin}")],
        b"",
    );
    assert_eq!(status(&head), 200, "{answer}");
    let sql = |query: &str| stdout(&run(khoso(&data).args(["sql", query, "--format", "csv"])));
    assert_eq!(
        sql("SELECT count(DISTINCT learner_id) AS n FROM learner_records"),
        "n\n20\n"
    );
    assert!(leaked(&data, &[], &identifiers).is_empty());

    // A province account never reads records (it has no SQL at all).
    let (head, _) = server.request(
        "POST",
        "/api/v1/sql",
        &[
            &format!("Authorization: Bearer {province}"),
            "Content-Type: application/json",
        ],
        br#"{"sql": "SELECT * FROM learner_records"}"#,
    );
    assert_eq!(status(&head), 403);
}

#[test]
fn record_files_have_their_own_upload_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    let province = account(&data, "so-gd-ha-noi", "province", Some("01"));
    let server = Server::start_with(&data, &["--max-upload-mb", "1", "--max-record-upload-mb", "3"]);
    let auth = format!("Authorization: Bearer {province}");
    let learners = |count: usize| {
        let rows: Vec<[String; 12]> = (0..count)
            .map(|i| learner(&format!("0010{:08}", 10_000_000 + i), "5", "female", "FALSE"))
            .collect();
        learner_csv(&as_refs(&rows), None)
    };
    let upload = |query: &str, body: &[u8]| {
        let (head, answer) = server.request("POST", &format!("/api/v1/submissions?{query}"), &[&auth], body);
        (status(&head), answer)
    };
    // 1.5 MB of learners: past the reports' limit, within the records'.
    let body = learners(20_000);
    assert!(body.len() > 1024 * 1024 && body.len() < 3 * 1024 * 1024);
    let (code, answer) = upload("kind=learner&year=2024-2025", body.as_bytes());
    assert_eq!(code, 200, "{answer}");
    // The same size as a school report is refused as it arrives.
    let (code, answer) = upload("kind=school&year=2024-2025", body.as_bytes());
    assert_eq!(code, 413, "{answer}");
    let (code, answer) = upload("kind=learner&year=2024-2025", learners(45_000).as_bytes());
    assert_eq!(code, 413, "{answer}");
}

/// Writes learners as the national database's Parquet export would: text columns, the grade as a
/// number, `extra` as one more column.
fn learner_parquet(path: &Path, rows: &[[String; 12]], extra: Option<&str>) {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use datafusion::parquet::arrow::ArrowWriter;

    let names = [
        "school_year",
        "province_code",
        "school_id",
        "learner_id",
        "level",
        "grade",
        "gender",
        "device",
        "home_internet",
        "online_ready",
        "domestic_platform",
        "digital_record",
    ];
    let mut columns: Vec<(String, ArrayRef)> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let array: ArrayRef = match *name {
                "grade" => Arc::new(
                    rows.iter()
                        .map(|r| r[index].parse::<i64>().ok())
                        .collect::<Int64Array>(),
                ),
                _ => Arc::new(rows.iter().map(|r| Some(r[index].as_str())).collect::<StringArray>()),
            };
            (name.to_string(), array)
        })
        .collect();
    if let Some(extra) = extra {
        columns.push((
            extra.to_string(),
            Arc::new(StringArray::from(vec!["Nguyễn Văn A"; rows.len()])),
        ));
    }
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).expect("create"), batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[test]
fn a_parquet_export_is_read_like_a_csv_file_and_is_still_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    let file = dir.path().join("learners.parquet");
    let ingest = || run(khoso(&data).args(["ingest", "--kind", "learner"]).arg(&file));
    let count = || {
        stdout(&run(khoso(&data).args([
            "sql",
            "SELECT count(*) AS n FROM learner_records",
            "--format",
            "csv",
        ])))
    };

    // 250,000 learners, read 100,000 at a time; the last row's identifier is bad.
    let mut rows: Vec<[String; 12]> = (0..250_000)
        .map(|i| learner(&format!("0010{:08}", 20_000_000 + i), "1", "male", "TRUE"))
        .collect();
    rows[249_999][3] = "not-an-id".into();
    learner_parquet(&file, &rows, None);
    let refused = ingest();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("row 250001"), "{}", stderr(&refused));
    assert_eq!(count(), "n\n0\n", "nothing of the file was written");
    let staged = std::fs::read_dir(data.join("staging")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staged, 0, "its staged blocks are gone");

    rows[249_999][3] = "001099999999".into();
    learner_parquet(&file, &rows, None);
    let taken = ingest();
    assert!(taken.status.success(), "{}", stderr(&taken));
    assert_eq!(count(), "n\n250000\n");

    learner_parquet(&file, &rows[..20], Some("Họ và tên"));
    let refused = ingest();
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("personal_data"), "{}", stderr(&refused));
}
