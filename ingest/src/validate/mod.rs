//! Turning a sheet of text cells into a validated report, or into every problem it has.

mod cell_rules;
mod row_rules;

use foldhash::{HashMap, HashMapExt};

use crate::problem::{Problem, Problems, Rule};
use crate::provinces::ProvinceRegistry;
use crate::report::{ColumnValues, ReportColumn, SliceHint, TextValues, ValidatedReport};
use crate::schema::{ColumnSpec, ColumnType, ReportKind, ReportSchema};
use crate::sheet::CellColumn;
use crate::sheet::RawSheet;
use crate::text::{SchoolYear, looks_like_formula};

/// A column of the schema and where its cells come from.
enum Source<'a> {
    /// A column of the sheet: its header and its cells.
    Sheet { header: &'a str, cells: CellColumn<'a> },
    /// Filled from the slice hint.
    Hint(String),
    /// Absent and optional.
    Absent,
}

impl Source<'_> {
    fn cell(&self, row: usize) -> Option<&str> {
        match self {
            Source::Sheet { cells, .. } => cells.get(row).map(str::trim).filter(|c| !c.is_empty()),
            Source::Hint(value) => Some(value),
            Source::Absent => None,
        }
    }
}

/// How many distinct values of a column are remembered once parsed (see
/// [`Validator::parse_column`]): categories, yes/no values and years are a handful; a file of
/// all-different cells is parsed cell by cell, with memory bounded.
const REMEMBERED_VALUES: usize = 256;

/// How many of a column's remembered values are looked for one after the other before a hash
/// table is asked: a handful of short texts are found faster by their bytes than by a hash.
const FEW_VALUES: usize = 8;

/// Whether two short texts (a category, a code, a year) are the same, compared byte by byte:
/// quicker than a call to compare them, once per cell.
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut at = 0;
    while at < a.len() {
        if a[at] != b[at] {
            return false;
        }
        at += 1;
    }
    true
}

/// The values of a column's cells parsed so far, by their text (see [`REMEMBERED_VALUES`]).
struct Remembered<'c, V> {
    /// The first [`FEW_VALUES`].
    few: Vec<(&'c str, V)>,
    /// The others.
    many: HashMap<&'c str, V>,
}

impl<'c, V> Remembered<'c, V> {
    fn new() -> Self {
        Self {
            few: Vec::with_capacity(FEW_VALUES),
            many: HashMap::new(),
        }
    }

    fn get(&self, cell: &str) -> Option<&V> {
        match self.few.iter().find(|(text, _)| same_text(text, cell)) {
            Some((_, value)) => Some(value),
            None if self.many.is_empty() => None,
            None => self.many.get(cell),
        }
    }

    /// Remembers the value of `cell`, unless [`REMEMBERED_VALUES`] are remembered already.
    fn remember(&mut self, cell: &'c str, value: V) {
        if self.few.len() < FEW_VALUES {
            self.few.push((cell, value));
        } else if self.many.len() < REMEMBERED_VALUES - FEW_VALUES {
            self.many.insert(cell, value);
        }
    }
}

/// Whether a cell is stored as it is, with nothing to check: free text within its column's length
/// that cannot be taken for a formula, or an identifier of exactly 12 digits.
fn is_plain(spec: &ColumnSpec, cell: &str) -> bool {
    match spec.column_type {
        // Bytes bound characters: a text of at most `max_chars` bytes is short enough.
        ColumnType::Text => spec.max_chars.is_none_or(|max| cell.len() <= max) && !looks_like_formula(cell),
        ColumnType::PersonId => cell.len() == 12 && cell.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// Validates a sheet against a kind's schema. Returns the report, or every problem found.
pub fn validate(sheet: &RawSheet, kind: ReportKind, hint: &SliceHint) -> Result<ValidatedReport, Vec<Problem>> {
    validate_part(sheet, kind, hint, &mut People::default()).map_err(Problems::into_vec)
}

/// The people a file has named so far: identifier → the row it is on. A file read in blocks
/// keeps one for all its blocks, so that a person twice is found across them.
pub type People = HashMap<u64, usize>;

/// Validates one block of a file whose earlier blocks named `people`.
pub(crate) fn validate_part(
    sheet: &RawSheet,
    kind: ReportKind,
    hint: &SliceHint,
    people: &mut People,
) -> Result<ValidatedReport, Problems> {
    let validated = Validator::new(sheet, kind.schema(), hint, people).run(kind);
    match &validated {
        Ok(report) => tracing::debug!(target: "ingest::validate", kind = kind.as_str(), rows = report.rows, "valid"),
        Err(problems) => {
            tracing::debug!(target: "ingest::validate", kind = kind.as_str(), problems = problems.total(), "problems")
        }
    }
    validated
}

/// The rows of a column naming another school year or province than the one the file was sent
/// for (the upload's, or `--year`/`--province`).
struct SentForAnother {
    column: usize,
    /// The first such row (its index among the kept rows), and what it names.
    row: usize,
    value: String,
    expected: String,
    rows: usize,
}

struct Validator<'a> {
    schema: &'a ReportSchema,
    people: &'a mut People,
    hint: &'a SliceHint,
    sources: Vec<Source<'a>>,
    /// The sheet's header of each column of the schema (none when it is not in the sheet).
    headers: Vec<Option<&'a str>>,
    /// Indices (in the sheet) of the rows that are not blank.
    rows: Vec<usize>,
    first_data_row: usize,
    problems: Problems,
    notices: Vec<String>,
    /// Identifiers of 11 digits given back the leading zero a spreadsheet took off.
    restored_zeros: usize,
    /// Rows whose school year or province is not the one the file was sent for, by column: said
    /// once for the file (see [`Validator::sent_for_another`]).
    sent_for_another: Vec<SentForAnother>,
    /// Whether each column of the schema must have a value in every row: as the schema says,
    /// until the file's school year is known (see [`ColumnSpec::required_in`]).
    required_columns: Vec<bool>,
    /// Columns the file does not carry that are required from a later school year than some:
    /// missing only if the file's year is one of those.
    added_later: Vec<usize>,
}

impl<'a> Validator<'a> {
    fn new(sheet: &'a RawSheet, schema: &'a ReportSchema, hint: &'a SliceHint, people: &'a mut People) -> Self {
        let mut validator = Self {
            schema,
            people,
            hint,
            sources: Vec::new(),
            headers: Vec::new(),
            rows: Vec::new(),
            first_data_row: sheet.header_row + 1,
            problems: Problems::default(),
            notices: Vec::new(),
            restored_zeros: 0,
            sent_for_another: Vec::new(),
            required_columns: schema.columns.iter().map(|c| c.required).collect(),
            added_later: Vec::new(),
        };
        validator.map_columns(sheet);
        validator
    }

    /// The row number the user sees for the `index`-th kept (non-blank) row.
    fn excel_row(&self, index: usize) -> usize {
        self.first_data_row + self.rows[index]
    }

    fn map_columns(&mut self, sheet: &'a RawSheet) {
        let sheet_columns: Vec<CellColumn<'a>> = (0..sheet.cells.width().min(sheet.headers.len()))
            .map(|column| sheet.cells.column(column))
            .collect();
        let height = sheet.cells.rows();
        // A row is blank when every cell is; blank rows (trailing ones above all) are skipped.
        let is_blank = |row: usize| {
            !sheet_columns
                .iter()
                .any(|cells| cells.get(row).is_some_and(|c| !c.trim().is_empty()))
        };
        self.rows = (0..height).filter(|&row| !is_blank(row)).collect();
        let skipped = height - self.rows.len();
        if skipped > 0 {
            self.notices.push(format!(
                "{skipped} dòng trống được bỏ qua / {skipped} blank rows skipped"
            ));
        }

        let mut found: HashMap<&str, (&'a str, CellColumn<'a>)> = HashMap::new();
        for (header, cells) in sheet.headers.iter().zip(sheet_columns) {
            match self.schema.column_for_header(header) {
                Some(spec) => {
                    if let Some((first, _)) = found.get(spec.name.as_str()) {
                        self.problems.push(Problem::column(
                            Rule::DuplicateColumn,
                            header,
                            format!(
                                "Cột \"{header}\" trùng với cột \"{first}\" (cùng là {}); hãy xóa một cột.",
                                spec.name
                            ),
                            format!(
                                "Column \"{header}\" repeats column \"{first}\" (both are {}); delete one.",
                                spec.name
                            ),
                        ));
                    } else {
                        found.insert(&spec.name, (header, cells));
                    }
                }
                None if header.is_empty() && cells.is_blank() => {}
                None if let Some(data) = self.schema.personal_data_named(header) => {
                    self.problems.push(Problem::column(
                        Rule::PersonalData,
                        header,
                        format!(
                            "Cột \"{header}\" chứa {} — dữ liệu cá nhân mà khoso không được nhận (Nghị định \
                             13/2023/NĐ-CP). Hãy xoá cột này rồi gửi lại; mã định danh là đủ.",
                            data.what_vi
                        ),
                        format!(
                            "Column \"{header}\" holds {} — personal data khoso must not receive (Decree \
                             13/2023/NĐ-CP). Delete the column and send the file again; the identifier is enough.",
                            data.what_en
                        ),
                    ));
                }
                None => self.notices.push(format!(
                    "cột \"{header}\" không thuộc mẫu, bỏ qua / column \"{header}\" is not in the template, ignored"
                )),
            }
        }

        for spec in &self.schema.columns {
            let source = match found.remove(spec.name.as_str()) {
                Some((header, cells)) => Source::Sheet { header, cells },
                None => match (spec.column_type, &self.hint.school_year, &self.hint.province_code) {
                    (ColumnType::SchoolYear, Some(year), _) => Source::Hint(year.to_string()),
                    (ColumnType::ProvinceCode, _, Some(code)) => Source::Hint(code.to_string()),
                    _ if spec.required && spec.from.is_none() => {
                        let example = spec.aliases.first().map_or(spec.name.as_str(), String::as_str);
                        let (fill_vi, fill_en) = match spec.column_type {
                            ColumnType::SchoolYear => (" hoặc dùng --year", " or pass --year"),
                            ColumnType::ProvinceCode => (" hoặc dùng --province", " or pass --province"),
                            _ => ("", ""),
                        };
                        self.problems.push(Problem::column(
                            Rule::MissingColumn,
                            &spec.name,
                            format!("Thiếu cột bắt buộc \"{example}\" ({}){fill_vi}.", spec.description_vi),
                            format!(
                                "Required column \"{}\" ({}) is missing{fill_en}.",
                                spec.name, spec.description_en
                            ),
                        ));
                        Source::Absent
                    }
                    _ => {
                        if spec.required {
                            self.added_later.push(self.sources.len());
                        }
                        Source::Absent
                    }
                },
            };
            self.headers.push(match &source {
                Source::Sheet { header, .. } => Some(*header),
                _ => None,
            });
            self.sources.push(source);
        }
    }

    fn header(&self, column: usize) -> &str {
        match self.headers[column] {
            Some(header) => header,
            None => &self.schema.columns[column].name,
        }
    }

    fn cell_problem(&mut self, rule: Rule, row: usize, column: usize, value: &str, vi: String, en: String) {
        // A person's identifier is personal data: a problem names its row, never its value.
        let value = match self.schema.columns[column].column_type {
            ColumnType::PersonId => "",
            _ => value,
        };
        let problem = Problem::cell(rule, self.excel_row(row), self.header(column), value, vi, en);
        self.problems.push(problem);
    }

    fn run(mut self, kind: ReportKind) -> Result<ValidatedReport, Problems> {
        if self.rows.is_empty() && self.problems.listed().iter().all(|p| p.rule != Rule::MissingColumn) {
            self.problems.push(Problem::file(Rule::NoRows, String::new()));
        }
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        // The school year first: which columns a report must have depends on it.
        let mut parsed: Vec<Option<ColumnValues>> = self.schema.columns.iter().map(|_| None).collect();
        let year_column = self
            .schema
            .columns
            .iter()
            .position(|c| c.column_type == ColumnType::SchoolYear);
        if let Some(index) = year_column {
            parsed[index] = Some(self.parse_column(index));
        }
        let year = self
            .hint
            .school_year
            .or_else(|| match year_column.and_then(|i| parsed[i].as_ref()) {
                Some(ColumnValues::Text(years)) => years.iter().flatten().find_map(|y| y.parse().ok()),
                _ => None,
            });
        if let Some(year) = year {
            self.rules_of_year(year);
        }
        if self.problems.listed().iter().any(|p| p.rule == Rule::MissingColumn) {
            return Err(self.problems);
        }
        let mut columns = Vec::with_capacity(self.schema.columns.len() + 1);
        for (index, values) in parsed.into_iter().enumerate() {
            let values = values.unwrap_or_else(|| self.parse_column(index));
            columns.push(ReportColumn {
                name: self.schema.columns[index].name.clone(),
                values,
            });
        }
        self.say_sent_for_another();
        let slice = self.check_rows(&columns);
        if !self.problems.is_empty() {
            // Row by row, as the user walks the sheet; within a row, in column order.
            self.problems.sort_by_row();
            return Err(self.problems);
        }
        let (school_year, province_code) = slice.ok_or_else(Problems::default)?;
        if self.restored_zeros > 0 {
            let n = self.restored_zeros;
            self.notices.push(format!(
                "{n} mã định danh 11 chữ số được thêm số 0 ở đầu (bảng tính đã bỏ mất) / {n} identifiers of 11 \
                 digits given back their leading zero (a spreadsheet had dropped it)"
            ));
        }
        if kind.is_provincial() {
            let registry = ProvinceRegistry::shipped();
            let code_2025 = province_code
                .as_deref()
                .and_then(|code| registry.code_2025(code, school_year))
                .map(str::to_string);
            columns.push(ReportColumn {
                name: "province_2025_code".to_string(),
                values: ColumnValues::Text(TextValues::repeated(code_2025.as_deref(), self.rows.len())),
            });
        }
        Ok(ValidatedReport {
            kind,
            school_year,
            province_code: province_code.and_then(|code| code.parse().ok()),
            rows: self.rows.len(),
            columns,
            notices: self.notices,
            stored: None,
        })
    }

    /// Notes a row naming `value` where the file was sent for `expected`: one problem of the file,
    /// not one per row, in words that suit the portal and the command line alike.
    fn sent_for_another(&mut self, row: usize, column: usize, value: String, expected: String) {
        match self.sent_for_another.iter_mut().find(|s| s.column == column) {
            Some(seen) => seen.rows += 1,
            None => self.sent_for_another.push(SentForAnother {
                column,
                row,
                value,
                expected,
                rows: 1,
            }),
        }
    }

    /// The problems noted by [`Validator::sent_for_another`].
    fn say_sent_for_another(&mut self) {
        for seen in std::mem::take(&mut self.sent_for_another) {
            let (what_vi, what_en) = match self.schema.columns[seen.column].column_type {
                ColumnType::SchoolYear => ("năm học", "school year"),
                _ => ("tỉnh", "province"),
            };
            let (more_vi, more_en) = match seen.rows - 1 {
                0 => (String::new(), String::new()),
                more => (format!(" và {more} dòng khác"), format!(" and {more} more rows")),
            };
            let (row, header) = (self.excel_row(seen.row), self.header(seen.column).to_string());
            let (value, expected) = (&seen.value, &seen.expected);
            self.cell_problem(
                Rule::ArgumentMismatch,
                seen.row,
                seen.column,
                value,
                format!(
                    "Tệp ghi {what_vi} {value} (dòng {row}{more_vi}) nhưng được gửi cho {what_vi} {expected}. Hãy gửi \
                     tệp của {what_vi} {expected}, hoặc sửa cột \"{header}\"."
                ),
                format!(
                    "The file is for {what_en} {value} (row {row}{more_en}), but it was sent for {what_en} \
                     {expected}. Send the file of {what_en} {expected}, or correct column \"{header}\"."
                ),
            );
        }
    }

    /// The rules of a report of `year`: a column added in a later year is not required, one
    /// added in this year or before must be there.
    fn rules_of_year(&mut self, year: SchoolYear) {
        for (index, spec) in self.schema.columns.iter().enumerate() {
            self.required_columns[index] = spec.required_in(year);
        }
        for index in std::mem::take(&mut self.added_later) {
            let spec = &self.schema.columns[index];
            if !spec.required_in(year) {
                continue;
            }
            let example = spec.aliases.first().map_or(spec.name.as_str(), String::as_str);
            let from = spec.from.map(|y| y.to_string()).unwrap_or_default();
            self.problems.push(Problem::column(
                Rule::MissingColumn,
                &spec.name,
                format!(
                    "Thiếu cột bắt buộc \"{example}\" ({}): báo cáo từ năm học {from} phải có cột này. Hãy tải mẫu \
                     của năm học {year}.",
                    spec.description_vi
                ),
                format!(
                    "Required column \"{}\" ({}) is missing: reports from school year {from} on have it. Download \
                     the template of {year}.",
                    spec.name, spec.description_en
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content report as the ministry changed it: `video_lessons` added from 2026-2027 and
    /// required from then, `quiz_items` added with a default of 0, `question_bank_items` renamed
    /// `bank_items`.
    fn changed() -> ReportSchema {
        let text = include_str!("../../schemas/content.toml").replace(
            "name = \"question_bank_items\"\ntype = \"count\"",
            "name = \"bank_items\"\nformerly = [\"question_bank_items\"]\ntype = \"count\"",
        ) + r#"
[[columns]]
name = "video_lessons"
type = "count"
required = true
from = "2026-2027"
description_vi = "Số bài giảng video"
description_en = "Video lessons"
aliases = ["Số bài giảng video"]

[[columns]]
name = "quiz_items"
type = "count"
required = false
default = 0
description_vi = "Số câu hỏi trắc nghiệm"
description_en = "Quiz items"
"#;
        ReportSchema::from_toml(&text).expect("the changed schema")
    }

    fn sheet(headers: &[&str], rows: &[&[&str]]) -> RawSheet {
        let columns = (0..headers.len())
            .map(|c| rows.iter().map(|row| Some(row[c].to_string())).collect())
            .collect();
        RawSheet::from_columns(headers.iter().map(|h| h.to_string()).collect(), 1, columns).expect("sheet")
    }

    fn check(schema: &ReportSchema, sheet: &RawSheet) -> Result<ValidatedReport, Vec<Problem>> {
        Validator::new(sheet, schema, &SliceHint::default(), &mut People::default())
            .run(ReportKind::Content)
            .map_err(Problems::into_vec)
    }

    fn counts(report: &ValidatedReport, column: &str) -> Vec<Option<i64>> {
        match report.column(column) {
            Some(ColumnValues::Count(values)) => values.clone(),
            other => panic!("{column}: {other:?}"),
        }
    }

    const BEFORE: [&str; 6] = [
        "school_year",
        "subject",
        "grade",
        "lessons_total",
        "lessons_with_materials",
        "question_bank_items",
    ];

    #[test]
    fn a_file_of_a_year_before_a_column_was_added_is_checked_by_the_rules_of_its_year() {
        let schema = changed();
        let report = check(&schema, &sheet(&BEFORE, &[&["2025-2026", "Toán", "1", "10", "5", "7"]]))
            .expect("a 2025-2026 file needs no video_lessons");
        assert_eq!(counts(&report, "video_lessons"), vec![None]);
        assert_eq!(counts(&report, "quiz_items"), vec![Some(0)], "the stated default");
        assert_eq!(
            counts(&report, "bank_items"),
            vec![Some(7)],
            "read under its former name"
        );

        let problems = check(&schema, &sheet(&BEFORE, &[&["2026-2027", "Toán", "1", "10", "5", "7"]]))
            .expect_err("a 2026-2027 file needs video_lessons");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].rule, Rule::MissingColumn);
        assert!(
            problems[0].message_en.contains("from school year 2026-2027")
                && problems[0].message_en.contains("template of 2026-2027"),
            "{}",
            problems[0].message_en
        );
        assert!(
            problems[0].message_vi.contains("2026-2027"),
            "{}",
            problems[0].message_vi
        );
    }

    #[test]
    fn a_column_required_from_a_year_is_required_in_every_row_from_then() {
        let schema = changed();
        let headers = [
            "school_year",
            "subject",
            "grade",
            "lessons_total",
            "lessons_with_materials",
            "bank_items",
            "Số bài giảng video",
            "quiz_items",
        ];
        let report = check(
            &schema,
            &sheet(
                &headers,
                &[
                    &["2026-2027", "Toán", "1", "10", "5", "7", "3", ""],
                    &["2026-2027", "Toán", "2", "10", "5", "7", "4", "9"],
                ],
            ),
        )
        .expect("valid");
        assert_eq!(counts(&report, "video_lessons"), vec![Some(3), Some(4)]);
        assert_eq!(
            counts(&report, "quiz_items"),
            vec![Some(0), Some(9)],
            "a blank cell holds the default"
        );

        let problems = check(
            &schema,
            &sheet(&headers, &[&["2026-2027", "Toán", "1", "10", "5", "7", "", "1"]]),
        )
        .expect_err("blank from 2026-2027");
        assert_eq!(
            problems.iter().map(|p| (p.rule, p.row)).collect::<Vec<_>>(),
            vec![(Rule::Required, Some(2))]
        );
        // The same blank cell in a file of 2025-2026 is no problem.
        let earlier = check(
            &schema,
            &sheet(&headers, &[&["2025-2026", "Toán", "1", "10", "5", "7", "", "1"]]),
        )
        .expect("optional before 2026-2027");
        assert_eq!(counts(&earlier, "video_lessons"), vec![None]);
    }

    #[test]
    fn a_file_sent_for_another_province_is_said_once_in_words_for_everyone() {
        let schema = ReportKind::School.schema();
        let headers = [
            "school_year",
            "province_code",
            "school_id",
            "school_name",
            "level",
            "ownership",
            "students",
            "students_online_ready",
            "students_domestic_platform",
            "students_digital_record",
            "teachers",
            "teachers_online_ready",
            "teachers_digital_record",
            "periods_total",
            "periods_online",
            "internet_for_teaching",
            "management_platform",
            "connected_national_db",
            "cashless_payment",
        ];
        let row = |id: &'static str| -> [&'static str; 19] {
            [
                "2024-2025",
                "79",
                id,
                "Trường A",
                "primary",
                "public",
                "10",
                "5",
                "5",
                "5",
                "2",
                "1",
                "1",
                "100",
                "5",
                "yes",
                "yes",
                "yes",
                "no",
            ]
        };
        let rows = [row("1"), row("2"), row("3")];
        let rows: Vec<&[&str]> = rows.iter().map(|r| r.as_slice()).collect();
        let hint = SliceHint {
            province_code: Some("01".parse().expect("code")),
            ..SliceHint::default()
        };
        let problems = Validator::new(&sheet(&headers, &rows), schema, &hint, &mut People::default())
            .run(ReportKind::School)
            .map_err(Problems::into_vec)
            .expect_err("sent for 01");
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        assert_eq!((problem.rule, problem.row), (Rule::ArgumentMismatch, Some(2)));
        assert_eq!(
            problem.message_en,
            "The file is for province 79 (row 2 and 2 more rows), but it was sent for province 01. Send the file \
             of province 01, or correct column \"province_code\"."
        );
        assert!(!problem.message_vi.contains("--"), "{}", problem.message_vi);
    }

    #[test]
    fn a_sheet_of_wrong_cells_lists_a_thousand_problems_and_counts_the_rest() {
        let schema = ReportKind::Content.schema();
        let rows: Vec<[String; 6]> = (0..3000)
            .map(|i| {
                [
                    "2024-2025".into(),
                    format!("Môn {i}"),
                    "1".into(),
                    "x".into(),
                    "y".into(),
                    "z".into(),
                ]
            })
            .collect();
        let rows: Vec<Vec<&str>> = rows.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
        let rows: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
        let problems = check(schema, &sheet(&BEFORE, &rows)).expect_err("wrong counts");
        let (listed, more): (Vec<&Problem>, Vec<&Problem>) = problems.iter().partition(|p| p.rule != Rule::More);
        assert_eq!(listed.len(), crate::problem::MAX_LISTED, "listed in full");
        assert_eq!(more.len(), 3, "a count for each column: {more:?}");
        let counted: usize = more
            .iter()
            .filter_map(|p| p.message_en.split_whitespace().next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(listed.len() + counted, 9000, "every wrong cell is listed or counted");
    }

    #[test]
    fn a_name_past_its_columns_length_is_refused_with_its_start() {
        let schema = ReportKind::Content.schema();
        let long = "Toán-".repeat(30);
        let problems =
            check(schema, &sheet(&BEFORE, &[&["2024-2025", &long, "1", "10", "5", "7"]])).expect_err("too long");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].rule, Rule::TooLong);
        assert!(
            problems[0]
                .message_en
                .contains("150 characters long; this column takes at most 100"),
            "{}",
            problems[0].message_en
        );
        assert_eq!(problems[0].value.as_deref().map(|v| v.chars().count()), Some(41));
        let fits = "Toán-".repeat(20);
        check(schema, &sheet(&BEFORE, &[&["2024-2025", &fits, "1", "10", "5", "7"]])).expect("100 characters fit");
    }

    #[test]
    fn a_default_or_a_start_year_a_column_cannot_hold_is_refused() {
        let text = include_str!("../../schemas/content.toml").to_string();
        let with = |column: &str| ReportSchema::from_toml(&(text.clone() + column)).map(|_| ());
        let column = |extra: &str| {
            format!(
                "\n[[columns]]\nname = \"extra\"\ntype = \"count\"\nrequired = false\nmin = 1\n{extra}\ndescription_vi = \
                 \"x\"\ndescription_en = \"x\"\n"
            )
        };
        assert!(with(&column("default = 1")).is_ok());
        assert!(
            with(&column("default = 0"))
                .expect_err("below min")
                .to_string()
                .contains("default")
        );
        assert!(with(&column("default = \"many\"")).is_err(), "text for a count");
        assert!(with(&column("from = \"2026\"")).is_err(), "not a school year");
        let year = "\n[[columns]]\nname = \"year2\"\ntype = \"school_year\"\nrequired = false\nfrom = \"2026-2027\"\n\
                    description_vi = \"x\"\ndescription_en = \"x\"\n";
        assert!(with(year).is_err(), "the school year column is in every year");
    }
}
