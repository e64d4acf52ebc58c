//! Every file shape of the corpus, with the outcome it must have: valid with so many rows, or
//! exactly these problems (row as Excel shows it, column as headed in the file, rule).

use ingest::{ReadOptions, ReportKind, Rule, SliceHint, read_report};

use crate::corpus;

enum Expect {
    Valid { rows: usize },
    Problems(Vec<(Option<usize>, Option<&'static str>, Rule)>),
}

struct Case {
    file: &'static str,
    year: Option<&'static str>,
    province: Option<&'static str>,
    expect: Expect,
}

fn case(file: &'static str, expect: Expect) -> Case {
    Case {
        file,
        year: None,
        province: None,
        expect,
    }
}

fn cells(rows: &[usize], column: &'static str, rule: Rule) -> Vec<(Option<usize>, Option<&'static str>, Rule)> {
    rows.iter().map(|r| (Some(*r), Some(column), rule)).collect()
}

fn cases() -> Vec<Case> {
    use Expect::{Problems, Valid};
    vec![
        case("good_utf8_bom.csv", Valid { rows: 3 }),
        case("good_utf8_no_bom.csv", Valid { rows: 3 }),
        case("good_utf16le_tab.csv", Valid { rows: 3 }),
        case("good_utf16be.csv", Valid { rows: 3 }),
        case("good_semicolon_thousands.csv", Valid { rows: 3 }),
        case("good_english.csv", Valid { rows: 3 }),
        case("good_code_lost_zero.csv", Valid { rows: 3 }),
        Case {
            year: Some("2024-2025"),
            province: Some("01"),
            ..case("no_year_no_province.csv", Valid { rows: 3 })
        },
        case(
            "no_year_no_province.csv",
            Problems(vec![
                (None, Some("school_year"), Rule::MissingColumn),
                (None, Some("province_code"), Rule::MissingColumn),
            ]),
        ),
        Case {
            year: Some("2023-2024"),
            province: Some("79"),
            ..case(
                "good_utf8_bom.csv",
                // Once for the file, at its first row, not once per row.
                Problems(
                    [
                        cells(&[2], "Năm học", Rule::ArgumentMismatch),
                        cells(&[2], "Mã tỉnh", Rule::ArgumentMismatch),
                    ]
                    .concat(),
                ),
            )
        },
        case(
            "wrong_types.csv",
            Problems(vec![
                (Some(2), Some("Tổng số học sinh"), Rule::WholeNumber),
                (Some(3), Some("Tổng số giáo viên"), Rule::WholeNumber),
                (Some(4), Some("Có Internet cho dạy học"), Rule::Flag),
                (Some(4), Some("Cấp học"), Rule::AllowedValues),
            ]),
        ),
        case(
            "negatives.csv",
            Problems(vec![
                (Some(2), Some("Tổng số học sinh"), Rule::NonNegative),
                (Some(3), Some("Số tiết dạy trực tuyến"), Rule::NonNegative),
            ]),
        ),
        case(
            "part_greater_than_whole.csv",
            Problems(vec![
                (
                    Some(2),
                    Some("Số học sinh đủ điều kiện học trực tuyến"),
                    Rule::PartOfWhole,
                ),
                (Some(4), Some("Số tiết dạy trực tuyến"), Rule::PartOfWhole),
            ]),
        ),
        case("duplicate_keys.csv", Problems(cells(&[5], "Cấp học", Rule::UniqueKey))),
        case(
            "unknown_province.csv",
            Problems(cells(&[2, 3, 4], "Mã tỉnh", Rule::ProvinceUnknown)),
        ),
        case(
            "merged_province.csv",
            Problems(cells(&[2, 3, 4], "Mã tỉnh", Rule::ProvinceMerged)),
        ),
        case(
            "bad_school_year.csv",
            Problems(cells(&[2, 3, 4], "Năm học", Rule::SchoolYearFormat)),
        ),
        case("empty.csv", Problems(vec![(None, None, Rule::EmptyFile)])),
        case("header_only.csv", Problems(vec![(None, None, Rule::NoRows)])),
        case(
            "formula_cells.csv",
            Problems(vec![
                (Some(2), Some("Tên trường"), Rule::Formula),
                (Some(3), Some("Tổng số học sinh"), Rule::Formula),
                (Some(4), Some("Xã/phường"), Rule::Formula),
            ]),
        ),
        case(
            "missing_column.csv",
            Problems(vec![(None, Some("students"), Rule::MissingColumn)]),
        ),
        case("two_provinces.csv", Problems(vec![(None, None, Rule::OneSlice)])),
        case("legacy_encoding.csv", Problems(vec![(None, None, Rule::Encoding)])),
        case(
            "duplicate_column.csv",
            Problems(vec![(None, Some("tong so hoc sinh"), Rule::DuplicateColumn)]),
        ),
    ]
}

#[test]
fn every_corpus_file_has_its_expected_outcome() {
    for case in cases() {
        let hint = SliceHint {
            school_year: case.year.map(|y| y.parse().expect("valid year")),
            province_code: case.province.map(|p| p.parse().expect("a province code")),
        };
        let result = read_report(&corpus(case.file), ReportKind::School, &hint, &ReadOptions::default());
        match (case.expect, result) {
            (Expect::Valid { rows }, Ok(report)) => assert_eq!(report.rows, rows, "{}", case.file),
            (Expect::Valid { .. }, Err(problems)) => {
                let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
                panic!("{} should be valid, got:\n{}", case.file, listed.join("\n"))
            }
            (Expect::Problems(expected), Err(problems)) => {
                let mut found: Vec<_> = problems.iter().map(|p| (p.row, p.column.as_deref(), p.rule)).collect();
                let mut expected = expected;
                found.sort_by_key(|p| format!("{p:?}"));
                expected.sort_by_key(|p| format!("{p:?}"));
                assert_eq!(found, expected, "{}", case.file);
                for problem in &problems {
                    assert!(
                        !problem.message_vi.is_empty() && !problem.message_en.is_empty(),
                        "{problem}"
                    );
                }
            }
            (Expect::Problems(expected), Ok(_)) => {
                panic!("{} should fail with {expected:?}", case.file)
            }
        }
    }
}

#[test]
fn all_corpus_shapes_normalise_to_the_same_values() {
    let reference = read_report(
        &corpus("good_utf8_bom.csv"),
        ReportKind::School,
        &SliceHint::default(),
        &ReadOptions::default(),
    )
    .expect("reference file is valid");
    for file in [
        "good_utf8_no_bom.csv",
        "good_utf16le_tab.csv",
        "good_utf16be.csv",
        "good_semicolon_thousands.csv",
        "good_english.csv",
        "good_code_lost_zero.csv",
    ] {
        let report = read_report(
            &corpus(file),
            ReportKind::School,
            &SliceHint::default(),
            &ReadOptions::default(),
        )
        .unwrap_or_else(|p| panic!("{file}: {p:?}"));
        assert_eq!(report.columns, reference.columns, "{file}");
    }
}

#[test]
fn merged_away_code_names_its_successor() {
    let problems = read_report(
        &corpus("merged_province.csv"),
        ReportKind::School,
        &SliceHint::default(),
        &ReadOptions::default(),
    )
    .expect_err("code 27 is gone in 2025-2026");
    let first = &problems[0];
    assert!(first.message_vi.contains("24 (Bắc Ninh)"), "{}", first.message_vi);
    assert!(first.message_en.contains("use 24"), "{}", first.message_en);
}
