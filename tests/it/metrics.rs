//! `khoso check-metrics`: the shipped file passes, and each kind of mistake gets its message,
//! naming the KPI and the field (pinned here word for word).

use std::path::Path;

use crate::{khoso, run, stderr, stdout};

fn shipped() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("metrics.toml")
}

/// Runs check-metrics on a variant of the shipped file; its exit code and messages without
/// the file-name prefix.
fn check(dir: &Path, name: &str, text: &str) -> (Option<i32>, Vec<String>) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write");
    let output = run(khoso(dir).arg("check-metrics").arg(&path));
    let prefix = format!("{}: ", path.display());
    let lines = stdout(&output)
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect();
    (output.status.code(), lines)
}

#[test]
fn the_shipped_metrics_are_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, lines) = check(dir.path(), "shipped", &shipped());
    assert_eq!(code, Some(0));
    assert_eq!(lines, vec!["26 KPIs, 3 views, all valid"]);
}

#[test]
fn each_mistake_names_its_kpi_and_field() {
    let src = shipped();
    let once = |from: &str, to: &str| {
        assert!(src.contains(from), "{from}");
        src.replacen(from, to, 1)
    };
    let cases = [
        (
            "unknown_field",
            once("tolerance = 5.0\n", "tolerance = 5.0\ncolour = \"red\"\n"),
            "T1_pupils: line 72: unknown field `colour`, expected one of `id`, `name_vi`, `name_en`, `description_vi`, \
             `description_en`, `source`, `unit`, `table`, `numerator`, `denominator`, `filter`, `dimensions`, \
             `baseline`, `targets`, `province_targets`, `tolerance`, `reported_as`",
        ),
        (
            "misspelt_column",
            once("sum(students_online_ready)", "sum(studnets_online_ready)"),
            "T1_pupils: numerator: Schema error: No field named studnets_online_ready. \
             Did you mean 'school_reports.students_online_ready'?",
        ),
        (
            "unknown_table",
            once("table = \"school_reports\"", "table = \"schools\""),
            "T1_pupils: table: no table or view \"schools\"",
        ),
        (
            "duplicate_id",
            once("id = \"T1_students\"", "id = \"T1_pupils\""),
            "T1_pupils: id: another KPI has the same id",
        ),
        (
            "bad_year",
            once(
                "targets = [{ year = \"2024-2025\", value = 50.0, comparison = \">=\" }]\n",
                "targets = [{ year = \"2025\", value = 50.0, comparison = \">=\" }]\n",
            ),
            "T1_pupils: targets: \"2025\": a school year is written like 2024-2025, two consecutive years",
        ),
        (
            "target_before_baseline",
            once("baseline = \"2021-2022\"", "baseline = \"2024-2025\""),
            "T1_pupils: targets: target year 2024-2025 is not after the baseline",
        ),
        (
            "dimension_without_column",
            once("dimensions = []", "dimensions = [\"province\"]"),
            "T3_repository_coverage: dimensions: province needs column province_code, which content_coverage lacks",
        ),
        (
            "bad_filter",
            once("filter = \"level = 'primary'\"", "filter = \"level = \""),
            "T5_primary_online_content: filter: SQL error: ParserError(\"Expected: an expression, found: )\")",
        ),
        (
            "bad_comparison",
            once(
                "comparison = \">=\" }]\ntolerance = 1.0",
                "comparison = \"=>\" }]\ntolerance = 1.0",
            ),
            "T5_primary_online_content: line 168: unknown variant `=>`, expected `>=` or `>`",
        ),
        (
            "bad_view",
            once("FROM school_reports\nUNION ALL", "FROM school_report\nUNION ALL"),
            "learners: sql: Error during planning: table 'datafusion.public.school_report' not found",
        ),
        (
            "view_of_an_admin_table",
            once(
                "FROM school_reports\nUNION ALL",
                "FROM school_reports, audit_log\nUNION ALL",
            ),
            "learners: sql: External error: table audit_log is for admin accounts only; an analyst account reads \
             school_reports, university_reports, content_coverage, learner_records, teacher_records, submissions, \
             kpi_values, quality_explanations, provinces, regions, levels",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text, expected) in cases {
        let (code, lines) = check(dir.path(), name, &text);
        assert_eq!(code, Some(2), "{name}");
        assert_eq!(lines.first().map(String::as_str), Some(expected), "{name}: {lines:?}");
    }
}

#[test]
fn the_cli_refuses_to_start_on_invalid_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, shipped().replacen("sum(students)", "sum(pupils)", 1)).expect("write");
    let data = dir.path().join("data");
    for args in [vec!["init"], vec!["kpi"], vec!["sql", "SELECT 1"]] {
        let output = run(khoso(&data).args(&args).arg("--metrics").arg(&bad));
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains("T1_pupils: denominator: Schema error: No field named pupils"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!data.exists(), "nothing was created");
}
