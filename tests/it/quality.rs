//! Figures that look wrong: a file with a tenfold jump is accepted with a warning that names
//! the school and the rule; the flag is listed by `khoso check`, `/quality` and its API until
//! the province or an admin explains it (audited); an explanation covers the values it was
//! given for, not the next ones; the KPI page counts the unexplained flags under its figure.

use std::path::{Path, PathBuf};

use crate::serve::{Server, status};
use crate::{account, eventually, khoso, run, sql, stderr, stdout};

const HEADER: &str = "school_year,province_code,school_id,school_name,level,ownership,students,students_online_ready,\
students_domestic_platform,students_digital_record,teachers,teachers_online_ready,teachers_digital_record,\
periods_total,periods_online,internet_for_teaching,management_platform,connected_national_db,cashless_payment";

/// Hà Nội's school report for a year: six primary schools of 200 pupils, half of them able to
/// study online, and S1 with `s1` pupils (as many able as the others' share).
fn report(dir: &Path, year: &str, s1: u32) -> PathBuf {
    let mut lines = vec![HEADER.to_string()];
    for (school, students) in [
        ("S1", s1),
        ("S2", 200),
        ("S3", 200),
        ("S4", 200),
        ("S5", 200),
        ("S6", 200),
    ] {
        let ready = students / 2;
        lines.push(format!(
            "{year},01,{school},Trường {school},primary,public,{students},{ready},{ready},{students},10,5,10,1000,40,x,x,x,"
        ));
    }
    let path = dir.join(format!("ha-noi-{year}-{s1}.csv"));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

fn ingest(data: &Path, file: &Path, dry_run: bool) -> String {
    let mut command = khoso(data);
    command.args(["ingest", "--kind", "school", "--user", "tester"]);
    if dry_run {
        command.arg("--dry-run");
    }
    let output = run(command.arg(file));
    assert!(output.status.success(), "{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// The flag of S1's pupils in the answer of `/api/v1/quality`, if it is there.
fn s1_flag(answer: &str) -> Option<serde_json::Value> {
    let answer: serde_json::Value = serde_json::from_str(answer).expect("JSON");
    answer["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["check_id"] == "school_pupils_change" && f["unit"] == "S1 · primary")
        .cloned()
}

#[test]
fn a_tenfold_jump_is_accepted_with_a_warning_and_listed_until_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let made = run(khoso(&data).arg("init"));
    assert!(made.status.success(), "{}", stderr(&made));
    ingest(&data, &report(dir.path(), "2023-2024", 200), false);

    // The dry run warns, naming the school, the two values and the rule; nothing is written.
    let jumped = report(dir.path(), "2024-2025", 2000);
    let said = ingest(&data, &jumped, true);
    assert!(
        said.contains("[school_pupils_change]")
            && said.contains("S1 · primary (Trường S1): 200 in 2023-2024 → 2,000 in 2024-2025"),
        "{said}"
    );
    assert!(said.contains("200 năm 2023-2024 → 2.000 năm 2024-2025"), "{said}");
    // Five schools of the same size are not flagged: a change of a factor of 1 is no change.
    assert!(!said.contains("S2 · primary"), "{said}");
    // Committed all the same, with the flag said.
    let said = ingest(&data, &jumped, false);
    assert!(
        said.contains("committed") && said.contains("[school_pupils_change] S1 · primary"),
        "{said}"
    );

    // `khoso check` lists it, unexplained.
    let check = run(khoso(&data).args(["check", "--year", "2024-2025", "--json"]));
    assert!(check.status.success(), "{}", stderr(&check));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&check)).expect("JSON");
    let flag = listed
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["check_id"] == "school_pupils_change")
        .expect("the flag");
    assert_eq!(
        (flag["before"].as_f64(), flag["now"].as_f64()),
        (Some(200.0), Some(2000.0))
    );
    assert_eq!(flag["province_code"], "01");
    assert!(flag["explanation"].is_null());

    let admin = account(&data, "bo-gd", "admin", None);
    let hanoi = account(&data, "so-gd-ha-noi", "province", Some("01"));
    let hcm = account(&data, "so-gd-hcm", "province", Some("79"));
    let analyst = account(&data, "phan-tich", "analyst", None);
    let bearer = |token: &str| format!("Authorization: Bearer {token}");
    let mut server = Server::start(&data);
    let (head, answer) = server.get_with("/api/v1/quality?year=2024-2025", &[&bearer(&analyst)]);
    assert_eq!(status(&head), 200, "{answer}");
    assert!(s1_flag(&answer).is_some_and(|f| f["explanation"].is_null()), "{answer}");
    let (_, page) = server.get_with("/quality?year=2024-2025&lang=en", &[&bearer(&analyst)]);
    assert!(
        page.contains("S1 · primary (Trường S1)") && page.contains("2,000 in 2024-2025"),
        "{page}"
    );
    // The KPI page counts the unexplained flags under its figure (the checks run in the
    // background: asked again until they are done).
    let note = eventually(
        || server.get("/kpi/T1_pupils?year=2024-2025&lang=en"),
        |page| page.contains("unexplained flags of figures"),
    );
    assert!(
        note.contains("unexplained flags of figures"),
        "the KPI page says nothing of its flags"
    );

    // Another province sees none of Hà Nội's flags and cannot explain them; an analyst reads only.
    let (_, answer) = server.get_with("/api/v1/quality?year=2024-2025", &[&bearer(&hcm)]);
    assert!(s1_flag(&answer).is_none(), "{answer}");
    let explain = |token: &str, comment: &str| {
        let body = serde_json::json!({
            "year": "2024-2025", "check_id": "school_pupils_change", "province_code": "01",
            "unit": "S1 · primary", "comment": comment,
        });
        server.request(
            "POST",
            "/api/v1/quality/explanations",
            &[&bearer(token), "Content-Type: application/json"],
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(status(&explain(&hcm, "not ours").0), 404);
    assert_eq!(status(&explain(&analyst, "looks fine").0), 403);
    assert_eq!(status(&explain(&hanoi, "   ").0), 400, "an explanation says why");
    let (head, answer) = explain(&hanoi, "S1 merged with two village schools in August 2024");
    assert_eq!(status(&head), 200, "{answer}");

    // Explained: listed with its explanation, and no longer among the unexplained.
    let (_, answer) = server.get_with("/api/v1/quality?year=2024-2025", &[&bearer(&admin)]);
    let flag = s1_flag(&answer).expect("still listed");
    assert_eq!(flag["explanation"]["explained_by"], "so-gd-ha-noi");
    let (_, answer) = server.get_with("/api/v1/quality?year=2024-2025&show=unexplained", &[&bearer(&admin)]);
    assert!(s1_flag(&answer).is_none(), "{answer}");
    server.assert_answers("flags listed and explained");
    server.terminate();
    let audited = eventually(
        || {
            sql(
                &data,
                "SELECT actor, province_code, detail FROM audit_log WHERE action = 'explain_flag'",
            )
        },
        |audited| audited.contains("so-gd-ha-noi"),
    );
    assert!(
        audited.contains("S1 · primary") && audited.contains("merged with two village schools"),
        "{audited}"
    );

    // Sent again with other figures: the explanation was for 200 → 2,000, not 200 → 3,000.
    ingest(&data, &report(dir.path(), "2024-2025", 3000), false);
    let check = run(khoso(&data).args(["check", "--year", "2024-2025", "--province", "01", "--unexplained"]));
    let said = stdout(&check);
    assert!(
        said.contains("[school_pupils_change] S1 · primary") && said.contains("3,000 in 2024-2025"),
        "{said}"
    );
}
