//! Property tests of the reader: whatever bytes arrive — random ones, or a valid report with a
//! cell, a separator, an encoding or its length changed at random — reading them ends, soon,
//! with a report or with problems, never with a panic. A valid report's values are the file's.

use std::io::Write;
use std::time::{Duration, Instant};

use ingest::{ColumnValues, Problem, ReadOptions, ReportKind, SliceHint, ValidatedReport, read_report};
use proptest::prelude::*;

/// The longest a small file may take to read, however malformed (generous for a loaded CI machine).
const READ_BOUND: Duration = Duration::from_secs(5);

const HEADER: &str = "school_year,province_code,school_id,school_name,level,ownership,students,students_online_ready,\
students_domestic_platform,students_digital_record,teachers,teachers_online_ready,teachers_digital_record,\
periods_total,periods_online,internet_for_teaching,management_platform,connected_national_db,cashless_payment";

/// One valid school row: counts with every part within its whole.
#[derive(Debug, Clone)]
struct School {
    students: i64,
    ready: i64,
    domestic: i64,
    record: i64,
    teachers: i64,
    teachers_ready: i64,
    periods: i64,
    online: i64,
    internet: bool,
}

fn school() -> impl Strategy<Value = School> {
    (0i64..5_000, 0i64..300, 0i64..20_000, any::<bool>())
        .prop_flat_map(|(students, teachers, periods, internet)| {
            (
                0..=students,
                0..=students,
                0..=students,
                0..=teachers,
                0..=periods,
                Just((students, teachers, periods, internet)),
            )
        })
        .prop_map(
            |(ready, domestic, record, teachers_ready, online, (students, teachers, periods, internet))| School {
                students,
                ready,
                domestic,
                record,
                teachers,
                teachers_ready,
                periods,
                online,
                internet,
            },
        )
}

/// A valid report of Hà Nội (01) for 2024-2025.
fn csv(schools: &[School]) -> String {
    let mut text = format!("{HEADER}\n");
    for (i, s) in schools.iter().enumerate() {
        let flag = if s.internet { "x" } else { "" };
        text.push_str(&format!(
            "2024-2025,01,S{i},Trường {i},primary,public,{},{},{},{},{},{},{},{},{},{flag},x,,x\n",
            s.students,
            s.ready,
            s.domestic,
            s.record,
            s.teachers,
            s.teachers_ready,
            s.teachers_ready,
            s.periods,
            s.online
        ));
    }
    text
}

/// Reads `bytes` as a file named `name`, and how long it took.
fn read(bytes: &[u8], name: &str) -> (Result<ValidatedReport, Vec<Problem>>, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write");
    let started = Instant::now();
    let result = read_report(
        &path,
        ReportKind::School,
        &SliceHint::default(),
        &ReadOptions::default(),
    );
    (result, started.elapsed())
}

/// A change to a valid file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// One cell replaced by arbitrary text.
    Cell { row: usize, column: usize, text: String },
    /// Every comma replaced by another separator.
    Separator(char),
    /// The text re-encoded.
    Encoding(&'static str),
    /// The file cut after this share of its bytes (per mille).
    Cut(usize),
    /// One byte replaced.
    Byte { at: usize, value: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..8, 0usize..19, ".{0,12}").prop_map(|(row, column, text)| Mutation::Cell { row, column, text }),
        prop::sample::select(vec![';', '\t', '|', ' ', '"', '\n']).prop_map(Mutation::Separator),
        prop::sample::select(vec!["utf-16le", "utf-16be", "windows-1258", "latin1-lossy"]).prop_map(Mutation::Encoding),
        (0usize..1000).prop_map(Mutation::Cut),
        (0usize..4096, any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::Cell {
            row,
            column,
            text: cell,
        } => {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let row = row % lines.len();
            let mut cells: Vec<String> = lines[row].split(',').map(str::to_string).collect();
            let column = column % cells.len();
            cells[column] = cell.clone();
            lines[row] = cells.join(",");
            lines.join("\n").into_bytes()
        }
        Mutation::Separator(separator) => text.replace(',', &separator.to_string()).into_bytes(),
        Mutation::Encoding("utf-16le") => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        Mutation::Encoding("utf-16be") => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Mutation::Encoding("windows-1258") => encoding_bytes(text),
        Mutation::Encoding(_) => text.chars().map(|c| c as u32 as u8).collect(),
        Mutation::Cut(per_mille) => {
            let bytes = text.as_bytes();
            bytes[..bytes.len() * per_mille / 1000].to_vec()
        }
        Mutation::Byte { at, value } => {
            let mut bytes = text.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = *value;
            bytes
        }
    }
}

/// The text in a legacy single-byte code page: every character past ASCII as one high byte.
fn encoding_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| {
            if c.is_ascii() {
                c as u8
            } else {
                0xC0 | (c as u32 as u8 & 0x3F)
            }
        })
        .collect()
}

fn counts(report: &ValidatedReport, column: &str) -> Vec<Option<i64>> {
    match report.column(column) {
        Some(ColumnValues::Count(values)) => values.clone(),
        other => panic!("{column}: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_end_in_a_report_or_problems(bytes in prop::collection::vec(any::<u8>(), 0..4096), xlsx in any::<bool>()) {
        let name = if xlsx { "upload.xlsx" } else { "upload.csv" };
        let (result, took) = read(&bytes, name);
        prop_assert!(took < READ_BOUND, "{took:?}");
        if let Err(problems) = result {
            prop_assert!(!problems.is_empty());
            prop_assert!(problems.iter().all(|p| !p.message_en.is_empty() && !p.message_vi.is_empty()));
        }
    }

    #[test]
    fn a_mutated_valid_file_ends_in_a_report_or_problems(schools in prop::collection::vec(school(), 1..8), change in mutation()) {
        let bytes = apply(&csv(&schools), &change);
        let (result, took) = read(&bytes, "upload.csv");
        prop_assert!(took < READ_BOUND, "{change:?}: {took:?}");
        match result {
            Ok(report) => prop_assert!(report.rows <= schools.len() + 1, "{change:?}: {} rows", report.rows),
            Err(problems) => prop_assert!(!problems.is_empty()),
        }
    }

    #[test]
    fn a_valid_file_reads_as_its_values(schools in prop::collection::vec(school(), 1..20)) {
        let (result, _) = read(csv(&schools).as_bytes(), "upload.csv");
        let report = result.map_err(|p| TestCaseError::fail(format!("{p:?}")))?;
        prop_assert_eq!(report.rows, schools.len());
        prop_assert_eq!(counts(&report, "students"), schools.iter().map(|s| Some(s.students)).collect::<Vec<_>>());
        prop_assert_eq!(counts(&report, "periods_online"), schools.iter().map(|s| Some(s.online)).collect::<Vec<_>>());
        prop_assert_eq!(
            report.column("internet_for_teaching"),
            Some(&ColumnValues::Flag(schools.iter().map(|s| s.internet).collect()))
        );
    }
}
