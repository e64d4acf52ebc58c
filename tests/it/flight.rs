//! Arrow Flight SQL (`khoso serve --flight-addr`) with the real client: ADBC's Flight SQL driver
//! from PyPI, with pandas and polars on top, and pyarrow's raw Flight client for the calls no
//! honest client makes. Every answer is checked against the CLI's; the same server answers its
//! pages afterwards.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::wire::{cli_rows, free_port};
use crate::{account, available, eventually, python_with, run, stderr, stdout};

#[test]
fn adbc_reads_a_year_of_records_the_catalogue_and_bound_queries_and_nothing_it_may_not() {
    let python = python_with("adbc_driver_flightsql, pyarrow.flight, polars, pandas");
    if !available(
        python.is_some(),
        "Python's ADBC Flight SQL driver, pyarrow, polars and pandas",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = crate::generated_with_learners(dir.path(), "0.01", "5");
    let analyst = account(&data, "phan-tich", "analyst", None);
    let province = account(&data, "ha-noi", "province", Some("01"));
    let port = free_port().to_string();
    let server = Server::start_with(
        &data,
        &["--flight-addr", &format!("127.0.0.1:{port}"), "--query-timeout-s", "3"],
    );

    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/flight_client.py");
    let output = run(Command::new(python.expect("python")).arg(client).args([
        &port,
        "phan-tich",
        &analyst,
        "2024-2025",
        "ha-noi",
        &province,
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let answers: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let failure = |name: &str| answers[name]["message"].as_str().unwrap_or_default().to_string();
    let one = |sql: &str| cli_rows(&data, sql).remove(0);

    assert_eq!(answers["vendor"], "khoso");
    // The catalogue: the analyst's tables and views, with their kinds and columns; no admin table.
    let tables = answers["tables"].as_object().expect("tables");
    assert_eq!(tables["datafusion.public.school_reports"]["type"], "TABLE");
    assert_eq!(tables["datafusion.public.learners"]["type"], "VIEW");
    assert!(
        tables["datafusion.public.learner_records"]["columns"]
            .as_array()
            .is_some_and(|columns| columns.contains(&"online_ready".into())),
        "{tables:?}"
    );
    for admin in ["audit_log", "approvals"] {
        assert!(
            !tables.keys().any(|name| name.ends_with(admin)),
            "{admin} in {tables:?}"
        );
    }
    assert_eq!(answers["table_types"], serde_json::json!(["TABLE", "VIEW"]));
    assert_eq!(answers["school_reports_schema"]["students"], "int64");
    assert_eq!(answers["school_reports_schema"]["internet_for_teaching"], "bool");

    // Every learner record of the year, as the CLI counts them.
    let year = "school_year = '2024-2025'";
    let counted = one(&format!(
        "SELECT count(*), count(DISTINCT province_code) FROM learner_records WHERE {year}"
    ));
    assert_eq!(answers["records"]["rows"].to_string(), counted[0]);
    assert_eq!(answers["records"]["provinces"].to_string(), counted[1]);
    assert!(counted[0].parse::<u64>().expect("a count") > 100_000, "{counted:?}");

    // Bound queries, with ? and with $1, equal the CLI's; a statement run again with other values.
    let bound = one(&format!(
        "SELECT count(*), sum(students) FROM school_reports WHERE {year} AND students > 100"
    ));
    assert_eq!(
        answers["bound_qmark"],
        serde_json::json!([
            bound[0].parse::<u64>().expect("n"),
            bound[1].parse::<u64>().expect("sum")
        ])
    );
    let schools = one(&format!("SELECT count(*) FROM school_reports WHERE {year}"));
    assert_eq!(answers["bound_dollar"][0].to_string(), schools[0]);
    assert_eq!(answers["bound_again"][0], 0);
    assert_eq!(answers["pandas_rows"].to_string(), schools[0]);
    let students = one(&format!(
        "SELECT count(DISTINCT province_code), sum(students) FROM school_reports WHERE {year}"
    ));
    assert_eq!(answers["polars"]["rows"].to_string(), students[0]);
    assert_eq!(answers["polars"]["students"].to_string(), students[1]);

    // Nothing that writes or sets, no admin table, no query past its time.
    for write in ["delete", "update", "set"] {
        assert!(failure(write).contains("read-only"), "{write}: {}", answers[write]);
    }
    assert!(
        failure("audit_log").contains("admin accounts only"),
        "{}",
        answers["audit_log"]
    );
    assert!(failure("slow").contains("longer than 3 s"), "{}", answers["slow"]);
    assert_eq!(answers["after"], "still here");
    // Wrong tokens, as a name and token or as a bearer token, and a province account: refused.
    for refused in ["wrong_token", "wrong_bearer"] {
        assert!(
            failure(refused).starts_with("UNAUTHENTICATED"),
            "{refused}: {}",
            answers[refused]
        );
    }
    assert!(
        failure("province").contains("analyst and admin accounts"),
        "{}",
        answers["province"]
    );
    // Forged tickets and handles are refused whole: none runs a statement the guard refuses.
    let hostile = answers["hostile"].as_object().expect("hostile");
    for (name, answer) in hostile {
        assert!(answer.is_string(), "{name} was answered: {answer}");
    }
    assert!(
        hostile["forged_delete"]
            .as_str()
            .is_some_and(|a| a.contains("read-only")),
        "{hostile:?}"
    );
    assert!(
        hostile["forged_admin"]
            .as_str()
            .is_some_and(|a| a.contains("admin accounts only")),
        "{hostile:?}"
    );

    // An account's query slots hold on Flight SQL too: of three long statements at once, one is
    // refused and the others stop at the time limit.
    let three: Vec<String> = serde_json::from_value(answers["three_at_once"].clone()).expect("three outcomes");
    assert_eq!(
        three
            .iter()
            .filter(|o| o.contains("queries are running already"))
            .count(),
        1,
        "{three:?}"
    );
    assert_eq!(
        three.iter().filter(|o| o.contains("longer than 3 s")).count(),
        2,
        "{three:?}"
    );

    // Each statement is in the audit log, the refused ones and the one past its time too.
    let audited = "SELECT outcome, detail FROM audit_log WHERE actor = 'phan-tich' AND action = 'query' \
                   AND detail LIKE '%(flight%' ORDER BY at";
    let events = eventually(|| cli_rows(&data, audited), |events| events.len() >= 12);
    let outcomes: Vec<&str> = events.iter().map(|event| event[0].as_str()).collect();
    for outcome in ["ok", "forbidden", "timed_out"] {
        assert!(outcomes.contains(&outcome), "{outcome} in {outcomes:?}");
    }
    assert!(
        events
            .iter()
            .any(|event| event[1].starts_with(&format!("{} rows in ", counted[0]))),
        "the year of records is audited with its rows: {events:?}"
    );
    let sign_ins = "SELECT outcome FROM audit_log WHERE action = 'sign_in' AND detail LIKE '%Arrow Flight SQL%'";
    let sign_ins = eventually(|| cli_rows(&data, sign_ins), |events| events.len() >= 3);
    for outcome in ["ok", "unauthorized", "forbidden"] {
        assert!(
            sign_ins.iter().any(|event| event[0] == outcome),
            "{outcome} in {sign_ins:?}"
        );
    }

    let asked = Instant::now();
    assert!(server.get("/").contains("<html"));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the first page took {:?}",
        asked.elapsed()
    );
}
