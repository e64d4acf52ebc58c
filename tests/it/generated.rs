//! The synthetic data generator, and loading what it writes through the normal ingest path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ingest::generate::{GenerateOptions, generate};
use ingest::{ColumnValues, ReadOptions, ReportKind, SliceHint, ValidatedReport, read_report};

use crate::{khoso, run, stderr, stdout};

fn options(out: &Path, scale: f64, years: (&str, &str), seed: u64) -> GenerateOptions {
    GenerateOptions {
        scale,
        first_year: years.0.parse().expect("year"),
        last_year: years.1.parse().expect("year"),
        seed,
        out: out.to_path_buf(),
        kinds: ReportKind::REPORTS.to_vec(),
        write_from: None,
    }
}

fn kind_of(path: &Path) -> ReportKind {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    ReportKind::ALL
        .into_iter()
        .find(|k| name.starts_with(k.as_str()))
        .expect("file named by kind")
}

fn load(path: &Path) -> ValidatedReport {
    read_report(path, kind_of(path), &SliceHint::default(), &ReadOptions::default())
        .unwrap_or_else(|problems| panic!("{}: {:?}", path.display(), problems))
}

fn sum(report: &ValidatedReport, column: &str) -> i64 {
    match report.column(column) {
        Some(ColumnValues::Count(values)) => values.iter().flatten().sum(),
        other => panic!("{column} is not a count column: {other:?}"),
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let read_all =
        |files: &[PathBuf]| -> Vec<Vec<u8>> { files.iter().map(|f| std::fs::read(f).expect("read")).collect() };
    let a = generate(
        &options(&dir.path().join("a"), 0.02, ("2023-2024", "2025-2026"), 7),
        |_| {},
    )
    .expect("generate");
    let b = generate(
        &options(&dir.path().join("b"), 0.02, ("2023-2024", "2025-2026"), 7),
        |_| {},
    )
    .expect("generate");
    let c = generate(
        &options(&dir.path().join("c"), 0.02, ("2023-2024", "2025-2026"), 8),
        |_| {},
    )
    .expect("generate");
    assert_eq!(a.rows, b.rows);
    assert_eq!(read_all(&a.files), read_all(&b.files));
    assert_ne!(read_all(&a.files), read_all(&c.files));
}

#[test]
fn scale_one_is_the_national_size_with_the_big_cities_largest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = generate(&options(dir.path(), 1.0, ("2024-2025", "2024-2025"), 131), |_| {}).expect("generate");
    let schools = summary.rows["school"] as f64;
    let universities = summary.rows["university"] as f64;
    assert!((25_000.0..30_000.0).contains(&schools), "{schools} school rows");
    assert!((200.0..280.0).contains(&universities), "{universities} universities");

    let mut pupils: BTreeMap<String, i64> = BTreeMap::new();
    for file in summary.files.iter().filter(|f| kind_of(f) == ReportKind::School) {
        let report = load(file);
        pupils.insert(
            report.province_code.clone().expect("provincial").to_string(),
            sum(&report, "students"),
        );
    }
    assert_eq!(pupils.len(), 63);
    let mut ranked: Vec<(&String, &i64)> = pupils.iter().collect();
    ranked.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
    let top: Vec<&str> = ranked.iter().take(2).map(|(code, _)| code.as_str()).collect();
    assert!(
        top.contains(&"01") && top.contains(&"79"),
        "largest provinces: {ranked:?}"
    );
    let national: i64 = pupils.values().sum();
    // MOET 2024-2025: 8.85 M primary + 6.51 M lower + 2.99 M upper secondary (+ continuing).
    assert!((15_000_000..22_000_000).contains(&national), "{national} pupils");
}

#[test]
fn values_rise_from_the_baseline_and_the_mountains_trail_the_cities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = generate(&options(dir.path(), 0.05, ("2021-2022", "2024-2025"), 131), |_| {}).expect("generate");
    let mut by_year: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let (mut cities, mut mountains) = ((0, 0), (0, 0));
    for file in summary.files.iter().filter(|f| kind_of(f) == ReportKind::School) {
        let report = load(file);
        let (ready, students) = (sum(&report, "students_online_ready"), sum(&report, "students"));
        let entry = by_year.entry(report.school_year.to_string()).or_default();
        entry.0 += ready;
        entry.1 += students;
        if report.school_year.to_string() == "2024-2025" {
            let code = report.province_code.as_deref().unwrap_or("");
            if ["01", "79"].contains(&code) {
                cities = (cities.0 + ready, cities.1 + students);
            } else if ["02", "04", "11", "12"].contains(&code) {
                mountains = (mountains.0 + ready, mountains.1 + students);
            }
        }
    }
    let shares: Vec<f64> = by_year.values().map(|(r, s)| *r as f64 / *s as f64).collect();
    assert!(
        shares.windows(2).all(|w| w[1] > w[0]),
        "online-ready share by year: {shares:?}"
    );
    let share = |(r, s): (i64, i64)| r as f64 / s as f64;
    assert!(
        share(cities) > share(mountains) + 0.1,
        "cities {} mountains {}",
        share(cities),
        share(mountains)
    );
}

#[test]
fn generated_files_load_through_init_sample_and_roll_up_across_the_merger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample");
    let summary = generate(&options(&sample, 0.02, ("2024-2025", "2025-2026"), 131), |_| {}).expect("generate");
    let data = dir.path().join("data");
    let output = run(khoso(&data).args(["init", "--sample", "--sample-dir"]).arg(&sample));
    assert!(output.status.success(), "{}", stderr(&output));

    let query = |sql: &str| -> Vec<String> {
        let output = run(khoso(&data).args(["sql", sql, "--format", "csv"]));
        assert!(output.status.success(), "{sql}: {}", stderr(&output));
        stdout(&output).lines().skip(1).map(str::to_string).collect()
    };
    assert_eq!(
        query("SELECT count(*) FROM submissions"),
        vec![summary.files.len().to_string()]
    );
    assert_eq!(
        query("SELECT count(*) FROM school_reports"),
        vec![summary.rows["school"].to_string()]
    );

    // 2024-2025 rows of old 24 (Bắc Giang) and 27 (Bắc Ninh) both roll up to the new 24.
    assert_eq!(
        query(
            "SELECT province_code FROM school_reports WHERE school_year = '2024-2025' \
             AND province_2025_code = '24' GROUP BY 1 ORDER BY 1"
        ),
        vec!["24", "27"]
    );
    // A school of old 27 keeps its id and reports under the new 24 in 2025-2026.
    let moved = query(
        "SELECT count(*) FROM school_reports a JOIN school_reports b USING (school_id, level) \
         WHERE a.school_year = '2024-2025' AND a.province_code = '27' \
         AND b.school_year = '2025-2026' AND b.province_code = '24'",
    );
    let old_27 = query("SELECT count(*) FROM school_reports WHERE school_year = '2024-2025' AND province_code = '27'");
    assert_eq!(moved, old_27);
    // The national total is the same whichever province list it is grouped by.
    let by_old = query(
        "SELECT sum(n) FROM (SELECT province_code, sum(students) n FROM school_reports \
         WHERE school_year = '2024-2025' GROUP BY 1)",
    );
    let by_new = query(
        "SELECT sum(n) FROM (SELECT p.code, sum(students) n FROM school_reports r \
         JOIN provinces p ON p.code = r.province_2025_code AND p.valid_to IS NULL \
         WHERE school_year = '2024-2025' GROUP BY 1)",
    );
    assert_eq!(by_old, by_new);
}

#[test]
fn bundled_sample_data_is_what_its_readme_command_makes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = generate(&options(dir.path(), 0.1, ("2021-2022", "2025-2026"), 131), |_| {}).expect("generate");
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data");
    for file in &summary.files {
        let relative = file.strip_prefix(dir.path()).expect("under the output folder");
        let shipped = std::fs::read(bundled.join(relative)).unwrap_or_else(|e| panic!("{}: {e}", relative.display()));
        assert!(
            shipped == std::fs::read(file).expect("read"),
            "{} differs",
            relative.display()
        );
    }
    let shipped_reports = ReportKind::ALL
        .iter()
        .map(|k| walk(&bundled.join(k.as_str())))
        .sum::<usize>();
    assert_eq!(
        shipped_reports,
        summary.files.len(),
        "sample-data holds files the generator does not make"
    );
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn files_written_from_a_later_year_equal_those_of_a_run_that_writes_every_year() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut every = options(&dir.path().join("every"), 0.01, ("2021-2022", "2025-2026"), 131);
    every.kinds = ReportKind::ALL.to_vec();
    let mut later = every.clone();
    later.out = dir.path().join("later");
    later.write_from = Some("2024-2025".parse().expect("year"));
    let every_files = generate(&every, |_| {}).expect("every year").files;
    let later_files = generate(&later, |_| {}).expect("from 2024-2025").files;
    let relative = |files: &[PathBuf], root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        files
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path).expect("read");
                (
                    path.strip_prefix(root).expect("under its directory").to_path_buf(),
                    bytes,
                )
            })
            .collect()
    };
    let mut every_written = relative(&every_files, &every.out);
    every_written.retain(|path, _| {
        let path = path.to_string_lossy();
        path.contains("2024-2025") || path.contains("2025-2026")
    });
    let later_written = relative(&later_files, &later.out);
    assert!(later_files.iter().any(|p| kind_of(p) == ReportKind::Learner));
    assert!(
        later_written
            .keys()
            .all(|path| !path.to_string_lossy().contains("2023-2024")),
        "nothing before 2024-2025 is written"
    );
    assert_eq!(
        later_written.keys().collect::<Vec<_>>(),
        every_written.keys().collect::<Vec<_>>(),
        "the same files from 2024-2025 on"
    );
    assert!(
        later_written == every_written,
        "the files written from 2024-2025 differ from a full run's"
    );
}
