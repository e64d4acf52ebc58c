//! A warehouse made by an earlier khoso (`tests/fixtures/warehouse-2026-11`, see the fixtures'
//! README) opens in this one without a manual step: it verifies whole, answers SQL on every
//! table, refreshes its KPIs, keeps its accounts, and takes new files next to the old ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Data, khoso, run, sql, stderr, stdout};

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
    let file = crate::school_report_of(dir.path(), "0.002", "3", "06");
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

/// A warehouse read with report schemas other than the built-in ones (`--schemas`), and with a
/// metrics file when given.
struct Changed {
    data: PathBuf,
    schemas: PathBuf,
    metrics: Option<PathBuf>,
}

impl Data for Changed {
    fn point(&self, command: &mut Command) {
        self.data.point(command);
        command.env("KHOSO_SCHEMAS", &self.schemas);
        if let Some(metrics) = &self.metrics {
            command.env("KHOSO_METRICS", metrics);
        }
    }
}

/// The school report as the ministry changed it after the fixture was made: a count of pupils
/// taught through the national repository, required from 2026-2027 (part of the pupils); a count
/// of tablets with a default of 0; `computers_for_teaching` renamed `teaching_computers`.
fn changed_school_schema() -> String {
    let built_in = include_str!("../../ingest/schemas/school.toml");
    let renamed = built_in.replace(
        "name = \"computers_for_teaching\"",
        "name = \"teaching_computers\"\nformerly = [\"computers_for_teaching\"]",
    );
    assert_ne!(renamed, built_in, "the school schema has computers_for_teaching");
    renamed
        + r#"
[[columns]]
name = "students_repository"
type = "count"
required = true
from = "2026-2027"
description_vi = "Số học sinh học qua kho học liệu số quốc gia"
description_en = "Pupils taught through the national repository"
aliases = ["Số học sinh học qua kho học liệu"]

[[columns]]
name = "tablets_for_teaching"
type = "count"
required = false
default = 0
description_vi = "Số máy tính bảng phục vụ dạy học"
description_en = "Tablets for teaching"

[[parts]]
part = "students_repository"
whole = "students"
"#
}

const SCHOOL_HEADER: &str = "school_year,province_code,school_id,school_name,level,ownership,students,\
students_online_ready,students_domestic_platform,students_digital_record,teachers,teachers_online_ready,\
teachers_digital_record,periods_total,periods_online,internet_for_teaching,management_platform,\
connected_national_db,cashless_payment";

/// A school report of Hà Nội with `extra` columns (header, then one value per school).
fn school_file(dir: &Path, year: &str, extra: &[(&str, [&str; 2])]) -> PathBuf {
    let mut text = SCHOOL_HEADER.to_string();
    for (header, _) in extra {
        text.push_str(&format!(",{header}"));
    }
    text.push('\n');
    for (school, students) in [(0, "400"), (1, "250")] {
        text.push_str(&format!(
            "{year},01,01990{school},Trường {school},primary,public,{students},100,50,200,20,10,15,1000,40,yes,yes,no,yes"
        ));
        for (_, values) in extra {
            text.push_str(&format!(",{}", values[school]));
        }
        text.push('\n');
    }
    let path = dir.join(format!("school-01-{year}-{}.csv", extra.len()));
    std::fs::write(&path, text).expect("file");
    path
}

#[test]
fn a_report_kind_changed_in_its_schema_file_evolves_an_earlier_warehouse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/warehouse-2026-11"),
        &data,
    );
    let computers =
        "SELECT school_year, school_id, level, computers_for_teaching FROM school_reports ORDER BY 1, 2, 3, 4";
    let before = sql(&data, computers);
    let over_five = sql(
        &data,
        "SELECT count(*) FROM school_reports WHERE computers_for_teaching > 5",
    );
    let rows = sql(&data, "SELECT count(*) AS n FROM school_reports");
    assert!(before.lines().count() > 20, "{before}");

    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).expect("schemas");
    std::fs::write(schemas.join("school.toml"), changed_school_schema()).expect("schema");
    let changed = Changed {
        data: data.clone(),
        schemas: schemas.clone(),
        metrics: None,
    };

    // The old rows read as the schema now says: the renamed column under its new name (the old
    // name is gone), the column with a default as 0, the added one as null.
    assert_eq!(
        sql(
            &changed,
            &computers.replace("computers_for_teaching", "teaching_computers")
        ),
        before.replacen("computers_for_teaching", "teaching_computers", 1)
    );
    assert_eq!(
        sql(
            &changed,
            "SELECT count(*) FROM school_reports WHERE teaching_computers > 5"
        ),
        over_five,
        "a filter on the renamed column"
    );
    assert_eq!(
        sql(
            &changed,
            "SELECT count(*) AS n FROM school_reports WHERE tablets_for_teaching = 0 AND students_repository IS NULL"
        ),
        rows
    );
    let columns = sql(&changed, "SELECT * FROM school_reports LIMIT 1");
    let header = columns.lines().next().expect("header");
    assert!(
        header.contains("teaching_computers") && !header.contains("computers_for_teaching"),
        "{header}"
    );
    // The change is written in the table once: opening again commits nothing.
    let log = data.join("tables").join("school_reports").join("_delta_log");
    let commits = || std::fs::read_dir(&log).expect("log").count();
    let written = commits();
    sql(&changed, "SELECT 1");
    assert_eq!(commits(), written);

    // A file of 2025-2026 is valid under the rules of its year (its old header included); a file
    // of 2026-2027 needs the new column, and is taken with it.
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("files");
    let earlier = school_file(&files, "2025-2026", &[("computers_for_teaching", ["12", "3"])]);
    let taken = run(khoso(&changed).args(["ingest", "--kind", "school"]).arg(&earlier));
    assert!(taken.status.success(), "{}{}", stdout(&taken), stderr(&taken));
    let missing = school_file(&files, "2026-2027", &[("teaching_computers", ["12", "3"])]);
    let refused = run(khoso(&changed).args(["ingest", "--kind", "school"]).arg(&missing));
    assert!(!refused.status.success());
    let said = stdout(&refused) + &stderr(&refused);
    assert!(
        said.contains("students_repository") && said.contains("2026-2027"),
        "{said}"
    );
    let later = school_file(
        &files,
        "2026-2027",
        &[
            ("teaching_computers", ["12", "3"]),
            ("Số học sinh học qua kho học liệu", ["120", "80"]),
            ("tablets_for_teaching", ["5", ""]),
        ],
    );
    let taken = run(khoso(&changed).args(["ingest", "--kind", "school"]).arg(&later));
    assert!(taken.status.success(), "{}{}", stdout(&taken), stderr(&taken));
    assert_eq!(
        sql(
            &changed,
            "SELECT school_year, school_id, teaching_computers, students_repository, tablets_for_teaching \
             FROM school_reports WHERE province_code = '01' AND school_year >= '2025-2026' ORDER BY 1, 2"
        ),
        "school_year,school_id,teaching_computers,students_repository,tablets_for_teaching\n\
         2025-2026,019900,12,,0\n2025-2026,019901,3,,0\n\
         2026-2027,019900,12,120,5\n2026-2027,019901,3,80,0\n"
    );

    // The template follows the year asked for.
    let template = |year: &str| {
        let made = run(khoso(&changed).args(["template", "school", "--lang", "en", "--year", year, "--out", "-"]));
        assert!(made.status.success(), "{}", stderr(&made));
        stdout(&made)
    };
    assert!(!template("2025-2026").contains("students_repository"));
    assert!(template("2026-2027").contains("students_repository"));
    assert!(template("2026-2027").contains("teaching_computers"));

    // A KPI of the new column is measured from the year it is reported, and its baseline cannot
    // be earlier.
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("metrics");
    let kpi = |baseline: &str| {
        format!(
            "{shipped}\n[[kpi]]\nid = \"repository\"\nname_vi = \"Học sinh học qua kho học liệu\"\nname_en = \"Pupils \
             taught through the repository\"\ndescription_vi = \"x\"\ndescription_en = \"x\"\nsource = \"x\"\nunit = \
             \"percent\"\ntable = \"school_reports\"\nnumerator = \"sum(students_repository)\"\ndenominator = \
             \"sum(students)\"\ndimensions = [\"province\"]\nbaseline = \"{baseline}\"\ntargets = [{{ year = \
             \"2029-2030\", value = 50.0, comparison = \">=\" }}]\ntolerance = 5.0\n"
        )
    };
    let too_early = dir.path().join("too-early.toml");
    std::fs::write(&too_early, kpi("2024-2025")).expect("metrics");
    let checked = run(khoso(&changed).arg("check-metrics").arg(&too_early));
    assert!(!checked.status.success());
    assert!(
        stdout(&checked).contains("repository") && stdout(&checked).contains("baseline = \"2026-2027\""),
        "{}",
        stdout(&checked)
    );
    let metrics = dir.path().join("metrics.toml");
    std::fs::write(&metrics, kpi("2026-2027")).expect("metrics");
    let measured = Changed {
        metrics: Some(metrics),
        ..changed
    };
    let refreshed = run(khoso(&measured).args(["kpi", "--by", "province", "--format", "csv"]));
    assert!(refreshed.status.success(), "{}", stderr(&refreshed));
    assert_eq!(
        sql(
            &measured,
            "SELECT school_year, unit, round(value, 6) AS value FROM kpi_values WHERE kpi_id = 'repository' \
             ORDER BY dimension, unit, school_year"
        ),
        // 100 × (120 + 80) / (400 + 250), by province 01 and for the nation, in 2026-2027 only.
        format!(
            "school_year,unit,value\n2026-2027,VN,{v}\n2026-2027,01,{v}\n",
            v = (100.0_f64 * 200.0 / 650.0 * 1e6).round() / 1e6
        )
    );
    let checked = run(khoso(&measured).arg("verify"));
    assert!(stdout(&checked).contains("no problem found"), "{}", stdout(&checked));
}
