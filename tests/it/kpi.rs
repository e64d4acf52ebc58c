//! Every KPI of metrics.toml, computed by `khoso kpi` on the bundled sample data, checked
//! against an independent computation: the raw report files summed here in Rust, formula by
//! formula, without the engine's SQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ingest::generate::{GenerateOptions, generate};
use ingest::{ColumnValues, ReadOptions, ReportKind, SliceHint, ValidatedReport, read_report};
use serde_json::Value;

use crate::{khoso, run, stderr, stdout};

/// One report row, by column name.
#[derive(Debug, Clone)]
struct Row {
    kind: ReportKind,
    cells: HashMap<String, Cell>,
}

#[derive(Debug, Clone)]
enum Cell {
    Text(Option<String>),
    Count(i64),
    Flag(bool),
}

impl Row {
    fn count(&self, column: &str) -> f64 {
        match self.cells.get(column) {
            Some(Cell::Count(n)) => *n as f64,
            other => panic!("{column}: {other:?}"),
        }
    }

    fn flag(&self, column: &str) -> bool {
        matches!(self.cells.get(column), Some(Cell::Flag(true)))
    }

    fn text(&self, column: &str) -> String {
        match self.cells.get(column) {
            Some(Cell::Text(Some(text))) => text.clone(),
            _ => String::new(),
        }
    }

    /// The row's unit in a dimension.
    fn unit(&self, dimension: &str) -> String {
        let registry = ingest::ProvinceRegistry::shipped();
        match dimension {
            "national" => "VN".into(),
            "province" => self.text("province_code"),
            "province_2025" => self.text("province_2025_code"),
            "region" => registry
                .province_2025(&self.text("province_2025_code"))
                .map(|p| p.region_code.clone())
                .unwrap_or_default(),
            "level" if self.kind == ReportKind::University => "higher".into(),
            "level" => self.text("level"),
            "ownership" => self.text("ownership"),
            other => panic!("dimension {other}"),
        }
    }

    fn institution(&self) -> String {
        match self.kind {
            ReportKind::University => format!("university:{}", self.text("institution_id")),
            _ => format!("school:{}", self.text("school_id")),
        }
    }
}

fn rows_of(report: &ValidatedReport) -> Vec<Row> {
    (0..report.rows)
        .map(|i| Row {
            kind: report.kind,
            cells: report
                .columns
                .iter()
                .map(|c| {
                    let cell = match &c.values {
                        ColumnValues::Text(v) => Cell::Text(v.get(i).map(str::to_string)),
                        ColumnValues::Count(v) => Cell::Count(v[i].unwrap_or(0)),
                        ColumnValues::Flag(v) => Cell::Flag(v[i]),
                    };
                    (c.name.clone(), cell)
                })
                .collect(),
        })
        .collect()
}

/// Every row of every report file under a folder.
fn load_rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for kind in ReportKind::ALL {
        let mut stack = vec![dir.join(kind.as_str())];
        while let Some(folder) = stack.pop() {
            // The sample has no record files.
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let report = read_report(&path, kind, &SliceHint::default(), &ReadOptions::default())
                    .unwrap_or_else(|p| panic!("{}: {p:?}", path.display()));
                rows.extend(rows_of(&report));
            }
        }
    }
    rows
}

/// The independent formula of each KPI: which rows it reads, and (numerator, denominator) of a
/// group of them.
/// (numerator, denominator) of a group of rows.
type Sums = fn(&[&Row]) -> (f64, f64);

fn formula(kpi: &str) -> (&'static [ReportKind], Sums) {
    use ReportKind::{Content, Learner, School, Teacher, University};
    match kpi {
        "T1_pupils" | "T1_students" => (if kpi == "T1_pupils" { &[School] } else { &[University] }, |rows| {
            (sum_of(rows, "students_online_ready"), sum_of(rows, "students"))
        }),
        "T1_teachers" => (&[School, University], |rows| {
            // School teachers and university lecturers, under their own column names.
            rows.iter().fold((0.0, 0.0), |(ready, all), r| {
                let (ready_column, all_column) = match r.kind {
                    University => ("lecturers_online_ready", "lecturers"),
                    _ => ("teachers_online_ready", "teachers"),
                };
                (ready + r.count(ready_column), all + r.count(all_column))
            })
        }),
        "T2_domestic_platforms" => (&[School, University], |rows| {
            (sum_of(rows, "students_domestic_platform"), sum_of(rows, "students"))
        }),
        "T3_repository_coverage" => (&[Content], |rows| {
            (sum_of(rows, "lessons_with_materials"), sum_of(rows, "lessons_total"))
        }),
        "T4_online_degrees" => (&[University], |rows| {
            count_where(rows, |r| r.count("online_degree_programs") > 0.0)
        }),
        "T5_primary_online_content" => (&[School], |rows| {
            let primary: Vec<&Row> = rows.iter().copied().filter(|r| r.text("level") == "primary").collect();
            (sum_of(&primary, "periods_online"), sum_of(&primary, "periods_total"))
        }),
        "T5_secondary_online_content" => (&[School], |rows| {
            let secondary: Vec<&Row> = rows
                .iter()
                .copied()
                .filter(|r| ["lower_secondary", "upper_secondary"].contains(&r.text("level").as_str()))
                .collect();
            (
                sum_of(&secondary, "periods_online"),
                sum_of(&secondary, "periods_total"),
            )
        }),
        "T6_online_classes" => (&[University], |rows| {
            (sum_of(rows, "classes_online"), sum_of(rows, "classes_total"))
        }),
        "T7_second_degree_online" => (&[University], |rows| {
            (
                sum_of(rows, "second_degree_online"),
                sum_of(rows, "second_degree_learners"),
            )
        }),
        "management_platform" => (&[School, University], |rows| distinct_with(rows, "management_platform")),
        "connected_national_db" => (&[School, University], |rows| {
            distinct_with(rows, "connected_national_db")
        }),
        "question_bank" => (&[Content], |rows| {
            count_where(rows, |r| r.count("question_bank_items") > 0.0)
        }),
        "learner_digital_records" => (&[School, University], |rows| {
            (sum_of(rows, "students_digital_record"), sum_of(rows, "students"))
        }),
        "teacher_digital_records" => (&[School], |rows| {
            (sum_of(rows, "teachers_digital_record"), sum_of(rows, "teachers"))
        }),
        "cashless_payment" => (&[School], |rows| distinct_with(rows, "cashless_payment")),
        // Each school once, whatever levels it teaches.
        "internet_for_teaching" => (&[School], |rows| distinct_with(rows, "internet_for_teaching")),
        "records_pupils_online_ready" => (&[Learner], |rows| count_where(rows, |r| r.flag("online_ready"))),
        "records_device_access" => (&[Learner], |rows| {
            count_where(rows, |r| ["own", "shared"].contains(&r.text("device").as_str()))
        }),
        "records_own_device" => (&[Learner], |rows| count_where(rows, |r| r.text("device") == "own")),
        "records_home_internet" => (&[Learner], |rows| count_where(rows, |r| r.flag("home_internet"))),
        "records_domestic_platform" => (&[Learner], |rows| count_where(rows, |r| r.flag("domestic_platform"))),
        "records_learner_digital_record" => (&[Learner], |rows| count_where(rows, |r| r.flag("digital_record"))),
        "records_teachers_online_ready" => (&[Teacher], |rows| count_where(rows, |r| r.flag("online_ready"))),
        "records_teachers_trained" => (&[Teacher], |rows| {
            count_where(rows, |r| r.flag("digital_skills_trained"))
        }),
        "records_teacher_digital_record" => (&[Teacher], |rows| count_where(rows, |r| r.flag("digital_record"))),
        other => panic!("no independent formula for KPI {other}: add one to this test"),
    }
}

fn sum_of(rows: &[&Row], column: &str) -> f64 {
    rows.iter().map(|r| r.count(column)).sum()
}

fn count_where(rows: &[&Row], keep: impl Fn(&Row) -> bool) -> (f64, f64) {
    (rows.iter().filter(|r| keep(r)).count() as f64, rows.len() as f64)
}

fn distinct_with(rows: &[&Row], flag: &str) -> (f64, f64) {
    let all: BTreeSet<String> = rows.iter().map(|r| r.institution()).collect();
    let with: BTreeSet<String> = rows.iter().filter(|r| r.flag(flag)).map(|r| r.institution()).collect();
    (with.len() as f64, all.len() as f64)
}

/// `khoso kpi --by DIMENSION --format json`, keyed by (kpi, unit, year).
fn engine_values(data: &Path, dimension: &str) -> BTreeMap<(String, String, String), Value> {
    let output = run(khoso(data).args(["kpi", "--by", dimension, "--format", "json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&output)).expect("json");
    rows.into_iter()
        .map(|row| {
            let key = |k: &str| row[k].as_str().unwrap_or_default().to_string();
            ((key("kpi_id"), key("unit"), key("school_year")), row)
        })
        .collect()
}

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data")
}

/// A warehouse of the sample data under `dir`: its reports, and its records too when `records`
/// (made at `init --sample` as its `records.toml` says: half a minute of a debug build).
fn sample_warehouse(dir: &Path, records: bool) -> PathBuf {
    let data = dir.join("data");
    let sample = match records {
        true => sample_dir(),
        false => {
            let copy = dir.join("sample-reports");
            copy_reports(&sample_dir(), &copy);
            copy
        }
    };
    let output = run(khoso(&data).args(["init", "--sample", "--sample-dir"]).arg(sample));
    assert!(output.status.success(), "{}", stderr(&output));
    data
}

/// The report files under `from` (every folder, not `records.toml`) copied to `to`.
fn copy_reports(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("folder");
    for entry in std::fs::read_dir(from).expect("read").flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_reports(&path, &to.join(entry.file_name()));
        } else if path.parent() != Some(sample_dir().as_path()) {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

#[test]
fn every_kpi_matches_an_independent_computation_on_the_sample_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sample_warehouse(dir.path(), true);
    let rows = load_rows(&sample_dir());
    // Schools teaching two levels (TH&THCS) are there, so a share of schools that counted a
    // school once per level would differ from the independent count below.
    let mut levels: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.kind == ReportKind::School) {
        levels
            .entry((row.text("school_year"), row.text("school_id")))
            .or_default()
            .insert(row.text("level"));
    }
    assert!(
        levels.values().filter(|l| l.len() > 1).count() > 10,
        "multi-level schools"
    );
    let metrics: toml::Table = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("metrics.toml"),
    )
    .expect("toml");
    let kpis = metrics["kpi"].as_array().expect("kpis");

    // The first start shows every KPI with a value: those counted from learner and teacher
    // records from the records the sample makes at `init --sample`.
    let national = engine_values(&data, "national");
    for kpi in kpis {
        let id = kpi["id"].as_str().expect("id");
        let key = (id.to_string(), "VN".to_string(), "2024-2025".to_string());
        let value = national.get(&key).and_then(|row| row["value"].as_f64());
        assert!(value.is_some(), "{id} has a national value in 2024-2025");
    }

    let mut checked = 0;
    for dimension in ["national", "region", "province", "province_2025", "level", "ownership"] {
        let engine = engine_values(&data, dimension);
        for kpi in kpis {
            let id = kpi["id"].as_str().expect("id");
            let allowed = kpi["dimensions"].as_array().expect("dimensions");
            if dimension != "national" && !allowed.iter().any(|d| d.as_str() == Some(dimension)) {
                continue;
            }
            let (kinds, compute) = formula(id);
            let mut groups: BTreeMap<(String, String), Vec<&Row>> = BTreeMap::new();
            for row in rows.iter().filter(|r| kinds.contains(&r.kind)) {
                groups
                    .entry((row.unit(dimension), row.text("school_year")))
                    .or_default()
                    .push(row);
            }
            for ((unit, year), group) in &groups {
                let (numerator, denominator) = compute(group);
                if denominator == 0.0 && numerator == 0.0 && id.starts_with("T5") {
                    // A unit with no rows at the KPI's level is not a KPI row.
                    continue;
                }
                let key = (id.to_string(), unit.clone(), year.clone());
                let value = engine
                    .get(&key)
                    .unwrap_or_else(|| panic!("{dimension}: engine has no {key:?}"));
                assert_eq!(
                    value["numerator"].as_f64(),
                    Some(numerator),
                    "{dimension} {key:?} numerator"
                );
                assert_eq!(
                    value["denominator"].as_f64(),
                    Some(denominator),
                    "{dimension} {key:?} denominator"
                );
                let expected = 100.0 * numerator / denominator;
                let got = value["value"].as_f64().expect("a value");
                assert!(
                    (got - expected).abs() < 1e-9,
                    "{dimension} {key:?}: {got} vs {expected}"
                );
                checked += 1;
            }
        }
        let expected_rows: usize = engine.len();
        assert!(expected_rows > 0, "{dimension}: no values");
    }
    // 17 KPIs × 5 years nationally alone is 85; with provinces and regions, thousands.
    assert!(checked > 2_000, "only {checked} values checked");

    check_ratio_of_sums(&data);
    check_the_merger(&data);
}

/// A national value is the ratio of the summed numerators and denominators; averaging the
/// provinces' percentages gives another number, and this catches it.
fn check_ratio_of_sums(data: &Path) {
    let national = engine_values(data, "national");
    let provinces = engine_values(data, "province");
    let key = ("T1_pupils".to_string(), "VN".to_string(), "2024-2025".to_string());
    let value = national[&key]["value"].as_f64().expect("value");
    let in_year: Vec<&Value> = provinces
        .iter()
        .filter(|((kpi, _, year), _)| kpi == "T1_pupils" && year == "2024-2025")
        .map(|(_, v)| v)
        .collect();
    let numerator: f64 = in_year.iter().map(|v| v["numerator"].as_f64().expect("n")).sum();
    let denominator: f64 = in_year.iter().map(|v| v["denominator"].as_f64().expect("d")).sum();
    let mean_of_ratios: f64 =
        in_year.iter().map(|v| v["value"].as_f64().expect("v")).sum::<f64>() / in_year.len() as f64;
    assert!((value - 100.0 * numerator / denominator).abs() < 1e-9);
    assert!(
        (value - mean_of_ratios).abs() > 0.05,
        "ratio of sums {value} vs mean of ratios {mean_of_ratios}"
    );
}

/// 2023-2024 rows of old 24 (Bắc Giang) and 27 (Bắc Ninh) roll up to the new 24, and the
/// national value is the same under either province list.
fn check_the_merger(data: &Path) {
    let provinces = engine_values(data, "province");
    let merged = engine_values(data, "province_2025");
    let field = |map: &BTreeMap<(String, String, String), Value>, unit: &str, column: &str| {
        map[&("T1_pupils".to_string(), unit.to_string(), "2023-2024".to_string())][column]
            .as_f64()
            .expect("number")
    };
    for column in ["numerator", "denominator"] {
        assert_eq!(
            field(&merged, "24", column),
            field(&provinces, "24", column) + field(&provinces, "27", column),
            "{column}"
        );
    }
    let national = engine_values(data, "national");
    for year in ["2021-2022", "2023-2024", "2025-2026"] {
        let total = |map: &BTreeMap<(String, String, String), Value>| -> f64 {
            map.iter()
                .filter(|((kpi, _, y), _)| kpi == "T1_pupils" && y == year)
                .map(|(_, v)| v["numerator"].as_f64().expect("n"))
                .sum()
        };
        let country = national[&("T1_pupils".to_string(), "VN".to_string(), year.to_string())]["numerator"]
            .as_f64()
            .expect("n");
        assert_eq!(total(&provinces), country, "{year} by the list in force");
        assert_eq!(total(&merged), country, "{year} by the 2025 list");
    }
}

#[test]
fn coverage_says_when_a_province_has_not_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample");
    let summary = generate_small(&sample, "2024-2025", 5);
    let hanoi_last_year = summary
        .files
        .iter()
        .find(|f| f.to_string_lossy().contains("school-01-2024-2025"))
        .expect("Hà Nội's 2024-2025 school file");
    std::fs::remove_file(hanoi_last_year).expect("remove");
    let data = dir.path().join("data");
    let output = run(khoso(&data).args(["init", "--sample", "--sample-dir"]).arg(&sample));
    assert!(output.status.success(), "{}", stderr(&output));

    let national = engine_values(&data, "national");
    let key = |year: &str| ("T1_pupils".to_string(), "VN".to_string(), year.to_string());
    let last = &national[&key("2024-2025")];
    assert_eq!(
        (last["reported"].as_i64(), last["expected"].as_i64()),
        (Some(62), Some(63))
    );
    let first = &national[&key("2023-2024")];
    assert_eq!(
        (first["reported"].as_i64(), first["expected"].as_i64()),
        (Some(63), Some(63))
    );
    let provinces = engine_values(&data, "province");
    assert!(!provinces.contains_key(&("T1_pupils".to_string(), "01".to_string(), "2024-2025".to_string())));
    let hcm = &provinces[&("T1_pupils".to_string(), "79".to_string(), "2024-2025".to_string())];
    assert_eq!(
        hcm["reported"].as_i64(),
        hcm["expected"].as_i64(),
        "a province keeps its schools"
    );
}

/// Generated reports at scale 0.02 from 2023-2024 to `last_year`.
fn generate_small(out: &Path, last_year: &str, seed: u64) -> ingest::generate::GenerateSummary {
    let options = GenerateOptions {
        scale: 0.02,
        first_year: "2023-2024".parse().expect("year"),
        last_year: last_year.parse().expect("year"),
        seed,
        out: out.to_path_buf(),
        kinds: ReportKind::REPORTS.to_vec(),
        write_from: None,
    };
    generate(&options, |_| {}).expect("generate")
}

/// A small generated warehouse: three years, the merger in the last.
fn small_warehouse(dir: &Path) -> PathBuf {
    let sample = dir.join("sample");
    generate_small(&sample, "2025-2026", 9);
    let data = dir.join("data");
    let output = run(khoso(&data).args(["init", "--sample", "--sample-dir"]).arg(&sample));
    assert!(output.status.success(), "{}", stderr(&output));
    data
}

#[test]
fn explain_traces_a_figure_to_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_warehouse(dir.path());
    let output = run(khoso(&data).args(["kpi", "explain", "T1_pupils", "--province", "1", "--year", "2024-2025"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("FROM (SELECT * FROM school_reports WHERE true) AS kpi_rows"),
        "{text}"
    );
    assert!(text.contains("sum(students_online_ready)"), "{text}");
    let sha = |file: &str| {
        let output = run(khoso(&data).args([
            "sql",
            &format!("SELECT sha256 FROM submissions WHERE file_name = '{file}'"),
            "--format",
            "csv",
        ]));
        stdout(&output).lines().nth(1).expect("a submission").to_string()
    };
    let hanoi = sha("school-01-2024-2025.csv");
    assert!(
        text.contains(&hanoi),
        "the Hà Nội file's hash {hanoi} is named:\n{text}"
    );
    assert!(text.contains("the 1 submissions behind it"), "{text}");

    // Nationally, every province's file of the year stands behind the figure.
    let national = run(khoso(&data).args(["kpi", "explain", "T1_pupils", "--year", "2025-2026"]));
    assert!(
        stdout(&national).contains("the 34 submissions behind it"),
        "{}",
        stdout(&national)
    );
    let unknown = run(khoso(&data).args(["kpi", "explain", "T9"]));
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn province_targets_override_the_national_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_warehouse(dir.path());
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("read");
    let own_plan = shipped.replacen(
        "tolerance = 5.0\n",
        "tolerance = 5.0\n\n[kpi.province_targets]\n\"01\" = [{ year = \"2024-2025\", value = 99.0, comparison = \">=\" }]\n",
        1,
    );
    let metrics = dir.path().join("metrics.toml");
    std::fs::write(&metrics, own_plan).expect("write");
    let output = run(khoso(&data)
        .args([
            "kpi",
            "--kpi",
            "T1_pupils",
            "--by",
            "province",
            "--years",
            "2024-2025..2024-2025",
            "--format",
            "json",
        ])
        .arg("--metrics")
        .arg(&metrics));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(rows.len(), 63, "one row per province of 2024-2025");
    let target_of = |code: &str| {
        rows.iter()
            .find(|r| r["unit"] == code)
            .and_then(|r| r["target_value"].as_f64())
            .expect("a target")
    };
    assert_eq!(target_of("01"), 99.0);
    assert_eq!(target_of("79"), 50.0);
    let hanoi = rows.iter().find(|r| r["unit"] == "01").expect("Hà Nội");
    assert_eq!(hanoi["status"], "missed", "Hà Nội's own 99% was not reached: {hanoi}");
}

/// Every row of `kpi_values` but its tag, in a stable order.
fn all_values(data: &Path) -> String {
    let output = run(khoso(data).args([
        "sql",
        "SELECT * EXCEPT (source_versions) FROM kpi_values ORDER BY kpi_id, dimension, unit, school_year",
        "--format",
        "csv",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

#[test]
fn a_refresh_after_a_commit_computes_only_what_changed_and_equals_a_full_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sample_warehouse(dir.path(), false);

    // Hà Nội's 2023-2024 report again, with other figures: pupils able to study online halved.
    let sent = std::fs::read_to_string(sample_dir().join("school/2023-2024/school-01-2023-2024.csv")).expect("read");
    let mut lines = sent.lines();
    let mut changed = format!("{}\n", lines.next().expect("header"));
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        let halved = cells[8].parse::<i64>().expect("a count") / 2;
        cells[8] = halved.to_string();
        changed.push_str(&cells.join(","));
        changed.push('\n');
    }
    let file = dir.path().join("school-01-2023-2024.csv");
    std::fs::write(&file, changed).expect("write");
    let ingest = run(khoso(&data).args(["ingest", "--kind", "school"]).arg(&file));
    assert!(ingest.status.success(), "{}", stderr(&ingest));
    assert!(
        stderr(&ingest).contains("from=\"school_reports 2023-2024\""),
        "only school_reports of 2023-2024 were summed again: {}",
        stderr(&ingest)
    );
    let incremental = all_values(&data);

    // The same metrics under another fingerprint: every value computed in full.
    let metrics = dir.path().join("metrics.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("read");
    std::fs::write(&metrics, format!("{text}\n# the same KPIs\n")).expect("write");
    let full = run(khoso(&data).arg("--metrics").arg(&metrics).args(["kpi"]));
    assert!(full.status.success(), "{}", stderr(&full));
    assert!(stderr(&full).contains("from=\"everything\""), "{}", stderr(&full));
    let recomputed = all_values(&data);
    assert!(incremental.lines().count() > 1000);
    for (a, b) in incremental.lines().zip(recomputed.lines()) {
        assert_eq!(a, b, "an incremental value differs from the full computation");
    }
    assert_eq!(incremental.lines().count(), recomputed.lines().count());
}
