//! A warehouse made by an earlier khoso (`tests/fixtures/warehouse-2026-11`, see the fixtures'
//! README) opens in this one without a manual step: it verifies whole, answers SQL on every
//! table, refreshes its KPIs, keeps its accounts, and takes new files next to the old ones.

use std::path::Path;

use crate::{khoso, run, sql, stderr, stdout};

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("folder");
    for entry in std::fs::read_dir(from).expect("fixture").flatten() {
        let target = to.join(entry.file_name());
        match entry.path().is_dir() {
            true => copy(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
}

#[test]
fn a_warehouse_of_november_2026_opens_and_takes_new_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/warehouse-2026-11"),
        &data,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("secret").join("pseudonym.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("key mode");
    }

    let checked = run(khoso(&data).arg("verify"));
    assert!(stdout(&checked).contains("no problem found"), "{}", stdout(&checked));
    assert_eq!(
        sql(
            &data,
            "SELECT kind, count(*) AS n, sum(rows) AS rows FROM submissions GROUP BY 1 ORDER BY 1"
        ),
        format!(
            "kind,n,rows\ncontent,2,{}\nlearner,1,{}\nschool,6,{}\n",
            sql(&data, "SELECT count(*) FROM content_coverage")
                .lines()
                .nth(1)
                .expect("count"),
            sql(&data, "SELECT count(*) FROM learner_records")
                .lines()
                .nth(1)
                .expect("count"),
            sql(&data, "SELECT count(*) FROM school_reports")
                .lines()
                .nth(1)
                .expect("count"),
        ),
        "every table reads, and its rows are those its submissions recorded"
    );
    let pseudonyms = sql(
        &data,
        "SELECT count(*) FROM learner_records WHERE length(learner_id) <> 64",
    );
    assert_eq!(pseudonyms.lines().nth(1), Some("0"), "{pseudonyms}");
    let users = run(khoso(&data).args(["users", "list"]));
    assert!(stdout(&users).contains("bo-gd-admin"), "{}", stdout(&users));
    let kpis = run(khoso(&data).args(["kpi", "--format", "csv", "--by", "province"]));
    assert!(kpis.status.success(), "{}", stderr(&kpis));
    assert!(stdout(&kpis).lines().count() > 10, "{}", stdout(&kpis));

    // A new file lands next to the old ones; the old slices keep their rows.
    let before = sql(&data, "SELECT count(*) FROM school_reports WHERE province_code <> '06'");
    let reports = dir.path().join("reports");
    let made = run(khoso(&data)
        .args([
            "generate",
            "--scale",
            "0.002",
            "--years",
            "2024-2025..2024-2025",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&reports));
    assert!(made.status.success(), "{}", stderr(&made));
    let file = std::fs::read_dir(reports.join("school").join("2024-2025"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("school-06-"))
        })
        .expect("a file of province 06");
    let ingested = run(khoso(&data).args(["ingest", "--kind", "school"]).arg(&file));
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    assert_eq!(
        sql(&data, "SELECT count(*) FROM school_reports WHERE province_code <> '06'"),
        before
    );
    let added = sql(&data, "SELECT count(*) FROM submissions WHERE province_code = '06'");
    assert_eq!(added.lines().nth(1), Some("1"), "{added}");
    let checked = run(khoso(&data).arg("verify"));
    assert!(stdout(&checked).contains("no problem found"), "{}", stdout(&checked));
}
