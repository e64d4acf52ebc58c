//! `khoso maintain`: a warehouse filled file by file is compacted, checkpointed and (with a
//! retention) vacuumed, and every answer stays the same, time travel included.

use std::path::{Path, PathBuf};

use crate::{khoso, run, sql, sql_at, stderr, stdout};

/// Everything a planner or the dashboard could read, for the comparison.
fn everything(data: &Path, early: &str) -> Vec<String> {
    let mut answers: Vec<String> = [
        "SELECT * FROM submissions ORDER BY submission_id",
        "SELECT school_year, province_code, level, sum(students), sum(students_online_ready), count(*) \
         FROM school_reports GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        "SELECT * FROM school_reports ORDER BY school_id, level, school_year",
    ]
    .iter()
    .map(|query| sql(data, query))
    .collect();
    answers.push(sql_at(
        data,
        "SELECT province_code, count(*), sum(students) FROM school_reports GROUP BY 1 ORDER BY 1",
        &[early.to_string()],
    ));
    let kpis = run(khoso(&data.to_path_buf()).args(["kpi", "--format", "csv", "--by", "province"]));
    assert!(kpis.status.success(), "{}", stderr(&kpis));
    // Every value, without the versions it was computed from (upkeep makes new ones).
    let values = stdout(&kpis)
        .lines()
        .map(|line| line.rsplit_once(',').map_or(line, |(values, _)| values))
        .collect::<Vec<_>>()
        .join("\n");
    answers.push(values);
    answers
}

/// The first line where two sets of answers differ.
fn same(before: &[String], after: &[String]) -> Result<(), String> {
    for (b, a) in before.iter().zip(after) {
        if let Some((b, a)) = b.lines().zip(a.lines()).find(|(b, a)| b != a) {
            return Err(format!("before: {b}\nafter:  {a}"));
        }
        if b.lines().count() != a.lines().count() {
            return Err(format!(
                "{} lines before, {} after",
                b.lines().count(),
                a.lines().count()
            ));
        }
    }
    Ok(())
}

/// `khoso maintain`'s line for a table: (files before, after, stored before, stored after).
fn files_of(output: &str, table: &str) -> (usize, usize, usize, usize) {
    let line = output
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no line for {table}: {output}"));
    let numbers: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    // version, files, → files, (MB, → MB are not integers), stored, → stored
    (numbers[1], numbers[2], numbers[3], numbers[4])
}

fn maintain(data: &Path, args: &[&str]) -> String {
    let output = run(khoso(&data.to_path_buf()).arg("maintain").args(args));
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

#[test]
fn upkeep_compacts_small_files_and_every_answer_stays_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, reports) = crate::generated(dir.path(), "0.02", "2024-2025..2024-2025", "11", false);
    // A commit per file, as provinces send them: each leaves small files behind.
    let mut files: Vec<PathBuf> = std::fs::read_dir(reports.join("school").join("2024-2025"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.truncate(16);
    for file in &files {
        let ingested = run(khoso(&data).args(["ingest", "--kind", "school"]).arg(file));
        assert!(ingested.status.success(), "{}", stderr(&ingested));
    }
    // Three slices sent again with other figures: their first files are replaced.
    let again = dir.path().join("again");
    let made = run(khoso(&data)
        .args([
            "generate",
            "--scale",
            "0.02",
            "--years",
            "2024-2025..2024-2025",
            "--seed",
            "12",
            "--out",
        ])
        .arg(&again));
    assert!(made.status.success(), "{}", stderr(&made));
    for file in &files[..3] {
        let name = file.file_name().expect("name");
        let ingested = run(khoso(&data)
            .args(["ingest", "--kind", "school"])
            .arg(again.join("school").join("2024-2025").join(name)));
        assert!(ingested.status.success(), "{}", stderr(&ingested));
    }
    let before = everything(&data, "school_reports=4");

    let output = maintain(&data, &[]);
    let (submissions_before, submissions_after, ..) = files_of(&output, "submissions");
    assert!(submissions_before >= files.len() + 3, "{output}");
    assert_eq!(submissions_after, 1, "{output}");
    let (_, _, stored_before, stored_after) = files_of(&output, "school_reports");
    assert!(stored_after >= stored_before, "nothing is removed by default: {output}");
    assert!(output.contains("every version kept"), "{output}");
    if let Err(difference) = same(&before, &everything(&data, "school_reports=4")) {
        panic!("{difference}\n{output}");
    }

    // With a retention, what versions within it need stays: all of it, here.
    let output = maintain(&data, &["--retain-days", "1"]);
    let (_, _, stored_before, stored_after) = files_of(&output, "school_reports");
    assert_eq!(stored_after, stored_before, "{output}");
    if let Err(difference) = same(&before, &everything(&data, "school_reports=4")) {
        panic!("{difference}\n{output}");
    }

    // The upkeep is in the audit log.
    let audit = sql(
        &data,
        "SELECT count(*) FROM audit_log WHERE action = 'maintain' AND outcome = 'ok'",
    );
    assert_eq!(audit.lines().nth(1), Some("2"), "{audit}");

    let refused = run(khoso(&data).args(["maintain", "--retain-days", "0"]));
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--retain-days"), "{}", stderr(&refused));
}
