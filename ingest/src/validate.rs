//! Turning a sheet of text cells into a validated report, or into every problem it has.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};

use crate::cells::CellColumn;
use crate::problem::{Problem, Problems, Rule};
use crate::provinces::{ProvinceLookup, ProvinceRegistry};
use crate::read::RawSheet;
use crate::report::{ColumnValues, ReportColumn, SliceHint, TextValues, ValidatedReport};
use crate::schema::{ColumnSpec, ColumnType, DefaultValue, ReportKind, ReportSchema};
use crate::text::{CountError, SchoolYear, looks_like_formula, normalize_province_code, parse_count, parse_flag};

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
    Validator::new(sheet, kind.schema(), hint, people).run(kind)
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

    /// Parses one column of every kept row, recording a problem for each bad cell. A value
    /// that parsed without a problem is remembered (up to [`REMEMBERED_VALUES`] of a column), so
    /// that the same category, yes/no or school year in a million rows is parsed once.
    fn parse_column(&mut self, index: usize) -> ColumnValues {
        let spec: &ColumnSpec = &self.schema.columns[index];
        let required = self.required_columns[index];
        // A cell without a value holds the column's stated default, if it has one.
        let default = spec.default.as_ref().map(DefaultValue::as_cell);
        let rows = self.rows.clone();
        // Taken out while its cells are parsed, so that problems can be added meanwhile.
        let source = std::mem::replace(&mut self.sources[index], Source::Absent);
        let values = match spec.column_type {
            ColumnType::Count => {
                let mut values = Vec::with_capacity(rows.len());
                let mut known = Remembered::new();
                for (row, &sheet_row) in rows.iter().enumerate() {
                    let value = match source.cell(sheet_row).or(default.as_deref()) {
                        Some(cell) => match known.get(cell) {
                            Some(&value) => Some(value),
                            None => {
                                let value = self.parse_count_cell(row, index, spec, cell);
                                if let Some(value) = value {
                                    known.remember(cell, value);
                                }
                                value
                            }
                        },
                        None => {
                            if required {
                                self.required(row, index);
                            }
                            None
                        }
                    };
                    values.push(value);
                }
                ColumnValues::Count(values)
            }
            ColumnType::Flag => {
                let mut values = Vec::with_capacity(rows.len());
                let mut known = Remembered::new();
                for (row, &sheet_row) in rows.iter().enumerate() {
                    let cell = source.cell(sheet_row).or(default.as_deref()).unwrap_or("");
                    let flag = match known.get(cell) {
                        Some(&flag) => Some(flag),
                        None => {
                            let flag = parse_flag(cell);
                            if let Some(flag) = flag {
                                known.remember(cell, flag);
                            }
                            flag
                        }
                    };
                    match flag {
                        Some(_) => {}
                        None => self.cell_problem(
                            Rule::Flag,
                            row,
                            index,
                            cell,
                            "Phải là Có/Không (hoặc TRUE/FALSE, 1/0, x/để trống).".into(),
                            "Must be yes/no (Có/Không, TRUE/FALSE, 1/0, or x/blank).".into(),
                        ),
                    }
                    values.push(flag.unwrap_or(false));
                }
                ColumnValues::Flag(values)
            }
            column_type => {
                let mut values = TextValues::with_capacity(rows.len(), rows.len() * 8);
                let mut known: Remembered<Option<String>> = Remembered::new();
                // Free text and identifiers rarely repeat: not worth remembering.
                let remember = !matches!(column_type, ColumnType::Text | ColumnType::PersonId);
                for (row, &sheet_row) in rows.iter().enumerate() {
                    let Some(cell) = source.cell(sheet_row).or(default.as_deref()) else {
                        if required {
                            self.required(row, index);
                        }
                        values.push(None);
                        continue;
                    };
                    if let Some(value) = known.get(cell) {
                        values.push(value.as_deref());
                        continue;
                    }
                    if is_plain(spec, cell) {
                        values.push(Some(cell));
                        continue;
                    }
                    let problems = self.problems.total();
                    let value = self.parse_text_cell(row, index, spec, cell);
                    values.push(value.as_deref());
                    // A column naming another year or province is parsed row by row, so that its
                    // rows are counted.
                    let clean =
                        self.problems.total() == problems && !self.sent_for_another.iter().any(|s| s.column == index);
                    if remember && clean {
                        known.remember(cell, value);
                    }
                }
                ColumnValues::Text(values)
            }
        };
        self.sources[index] = source;
        values
    }

    fn required(&mut self, row: usize, index: usize) {
        let spec = &self.schema.columns[index];
        let (vi, en) = (
            format!("Ô bắt buộc ({}) đang để trống.", spec.description_vi),
            format!("This cell ({}) is required but blank.", spec.description_en),
        );
        self.cell_problem(Rule::Required, row, index, "", vi, en);
    }

    fn formula(&mut self, row: usize, index: usize, cell: &str) {
        self.cell_problem(
            Rule::Formula,
            row,
            index,
            cell,
            "Ô có dạng công thức bảng tính; hãy nhập giá trị, không nhập công thức.".into(),
            "The cell looks like a spreadsheet formula; enter the value itself.".into(),
        );
    }

    fn parse_count_cell(&mut self, row: usize, index: usize, spec: &ColumnSpec, cell: &str) -> Option<i64> {
        match parse_count(cell) {
            Ok(value) => {
                let below = spec.min.is_some_and(|min| value < min);
                let above = spec.max.is_some_and(|max| value > max);
                if below || above {
                    let (min, max) = (spec.min.unwrap_or(0), spec.max.unwrap_or(i64::MAX));
                    self.cell_problem(
                        Rule::Range,
                        row,
                        index,
                        cell,
                        format!("Phải từ {min} đến {max}."),
                        format!("Must be between {min} and {max}."),
                    );
                    return None;
                }
                Some(value)
            }
            Err(_) if looks_like_formula(cell) => {
                self.formula(row, index, cell);
                None
            }
            Err(CountError::Negative) => {
                self.cell_problem(
                    Rule::NonNegative,
                    row,
                    index,
                    cell,
                    "Số lượng không được âm.".into(),
                    "A count cannot be negative.".into(),
                );
                None
            }
            Err(CountError::NotWhole) => {
                self.cell_problem(
                    Rule::WholeNumber,
                    row,
                    index,
                    cell,
                    "Phải là số nguyên không âm, ví dụ 1234 hoặc 1.234.".into(),
                    "Must be a whole number, e.g. 1234 or 1.234.".into(),
                );
                None
            }
        }
    }

    fn parse_text_cell(&mut self, row: usize, index: usize, spec: &ColumnSpec, cell: &str) -> Option<String> {
        if looks_like_formula(cell) {
            self.formula(row, index, cell);
            return None;
        }
        match spec.column_type {
            ColumnType::Category => {
                let value = spec.category_value(cell).map(str::to_string);
                if value.is_none() {
                    let allowed: Vec<String> = spec
                        .values
                        .iter()
                        .map(|v| match v.aliases.first() {
                            Some(alias) => format!("{alias} ({})", v.value),
                            None => v.value.clone(),
                        })
                        .collect();
                    let allowed = allowed.join(", ");
                    self.cell_problem(
                        Rule::AllowedValues,
                        row,
                        index,
                        cell,
                        format!("Giá trị không hợp lệ; chọn một trong: {allowed}."),
                        format!("Not an allowed value; use one of: {allowed}."),
                    );
                }
                value
            }
            ColumnType::SchoolYear => match cell.parse::<SchoolYear>() {
                Ok(year) => {
                    if let Some(hint) = self.hint.school_year
                        && hint != year
                    {
                        self.sent_for_another(row, index, year.to_string(), hint.to_string());
                    }
                    Some(year.to_string())
                }
                Err(_) => {
                    self.cell_problem(
                        Rule::SchoolYearFormat,
                        row,
                        index,
                        cell,
                        "Năm học phải viết dạng 2024-2025 (hai năm liên tiếp).".into(),
                        "A school year is written like 2024-2025 (two consecutive years).".into(),
                    );
                    None
                }
            },
            ColumnType::ProvinceCode => match normalize_province_code(cell) {
                Some(code) => {
                    if let Some(hint) = &self.hint.province_code
                        && hint.as_str() != code
                    {
                        self.sent_for_another(row, index, code.clone(), hint.to_string());
                    }
                    Some(code)
                }
                None => {
                    self.cell_problem(
                        Rule::ProvinceUnknown,
                        row,
                        index,
                        cell,
                        "Mã tỉnh gồm 2 chữ số, ví dụ 01 (Hà Nội), 79 (Hồ Chí Minh).".into(),
                        "A province code has 2 digits, e.g. 01 (Hà Nội), 79 (Hồ Chí Minh).".into(),
                    );
                    None
                }
            },
            ColumnType::PersonId => {
                let digits: String = cell.trim_start_matches('\'').chars().filter(|c| *c != ' ').collect();
                let all_digits = digits.bytes().all(|b| b.is_ascii_digit());
                match digits.len() {
                    12 if all_digits => Some(digits),
                    11 if all_digits => {
                        self.restored_zeros += 1;
                        Some(format!("0{digits}"))
                    }
                    _ => {
                        self.cell_problem(
                            Rule::PersonId,
                            row,
                            index,
                            cell,
                            "Mã định danh cá nhân gồm đúng 12 chữ số. Nếu Excel hiện dạng 1,2E+11, hãy định dạng cột \
                             là Văn bản (Text) rồi xuất lại từ CSDL."
                                .into(),
                            "A personal identification number has exactly 12 digits. If Excel shows it as 1.2E+11, \
                             format the column as Text and export it again from the database."
                                .into(),
                        );
                        None
                    }
                }
            }
            ColumnType::Text => match spec.max_chars {
                Some(max) if cell.chars().count() > max => {
                    let chars = cell.chars().count();
                    // The cell itself may be megabytes: the problem shows its start.
                    let start: String = cell.chars().take(40).collect();
                    self.cell_problem(
                        Rule::TooLong,
                        row,
                        index,
                        &format!("{start}…"),
                        format!("Dài {chars} ký tự; cột này tối đa {max} ký tự. Hãy rút gọn."),
                        format!("{chars} characters long; this column takes at most {max}. Shorten it."),
                    );
                    None
                }
                _ => Some(cell.to_string()),
            },
            ColumnType::Count | ColumnType::Flag => Some(cell.to_string()),
        }
    }

    /// Row rules across columns: province valid in its year, part ≤ whole, unique keys, one
    /// slice per file. Returns the file's (school year, province) when it has exactly one.
    fn check_rows(&mut self, columns: &[ReportColumn]) -> Option<(SchoolYear, Option<String>)> {
        let text = |name: &str| match columns.iter().find(|c| c.name == name).map(|c| &c.values) {
            Some(ColumnValues::Text(values)) => Some(values),
            _ => None,
        };
        let position = |name: &str| self.schema.columns.iter().position(|c| c.name == name);
        let years = text("school_year");
        let provinces = text("province_code");
        let registry = ProvinceRegistry::shipped();
        let mut slices = BTreeSet::new();
        // A file is one year and province, read once: its rows are that pair again.
        let mut last_year: Option<(&str, SchoolYear)> = None;
        let mut valid: Option<(SchoolYear, &str)> = None;
        let mut last_slice = None;
        let province_column = position("province_code");

        for row in 0..self.rows.len() {
            let year = match years.and_then(|y| y.get(row)) {
                Some(text) => match last_year {
                    Some((last, year)) if same_text(last, text) => Some(year),
                    _ => {
                        let year = text.parse::<SchoolYear>().ok();
                        last_year = year.map(|year| (text, year));
                        year
                    }
                },
                None => None,
            };
            let province = provinces.and_then(|p| p.get(row));
            if let (Some(year), Some(code), Some(column)) = (year, province, province_column)
                && valid.is_none_or(|(valid_year, valid_code)| valid_year != year || !same_text(valid_code, code))
                && self.check_province(row, column, code, year, registry)
            {
                valid = Some((year, code));
            }
            let same_slice = |(last_year, last_province): (SchoolYear, Option<&str>)| {
                Some(last_year) == year
                    && last_province
                        .zip(province)
                        .map_or(last_province == province, |(a, b)| same_text(a, b))
            };
            if let Some(year) = year
                && !last_slice.is_some_and(same_slice)
            {
                slices.insert((year, province));
                last_slice = Some((year, province));
            }
        }

        for rule in &self.schema.parts {
            let (Some(part), Some(whole)) = (count_values(columns, &rule.part), count_values(columns, &rule.whole))
            else {
                continue;
            };
            let column = position(&rule.part).unwrap_or(0);
            for row in 0..self.rows.len() {
                if let (Some(p), Some(w)) = (part[row], whole[row])
                    && p > w
                {
                    let (part_spec, whole_spec) = (&self.schema.columns[column], self.schema.column(&rule.whole));
                    let whole_vi = whole_spec.map_or(rule.whole.as_str(), |s| s.description_vi.as_str());
                    let whole_en = whole_spec.map_or(rule.whole.as_str(), |s| s.description_en.as_str());
                    let (vi, en) = (
                        format!("{} ({p}) lớn hơn {whole_vi} ({w}).", part_spec.description_vi),
                        format!("{} ({p}) exceeds {whole_en} ({w}).", part_spec.description_en),
                    );
                    self.cell_problem(Rule::PartOfWhole, row, column, &p.to_string(), vi, en);
                }
            }
        }

        self.check_ranges_by(columns);
        self.check_unique_keys(columns);

        if slices.len() > 1 {
            let listed: Vec<String> = slices
                .iter()
                .map(|(year, province)| match province {
                    Some(code) => format!("{year}/{code}"),
                    None => year.to_string(),
                })
                .collect();
            let listed = listed.join(", ");
            self.problems.push(Problem {
                row: None,
                column: None,
                value: None,
                rule: Rule::OneSlice,
                message_vi: format!("Tệp chứa nhiều năm học/tỉnh ({listed}); mỗi tệp chỉ gồm một tỉnh và một năm học."),
                message_en: format!(
                    "The file mixes school years/provinces ({listed}); send one file per province and year."
                ),
            });
        }
        slices
            .into_iter()
            .next()
            .map(|(year, province)| (year, province.map(str::to_string)))
    }

    /// Whether `code` names a province in `year`; a problem of the row if not.
    fn check_province(
        &mut self,
        row: usize,
        column: usize,
        code: &str,
        year: SchoolYear,
        registry: &ProvinceRegistry,
    ) -> bool {
        match registry.lookup(code, year) {
            ProvinceLookup::Valid(_) => return true,
            ProvinceLookup::MergedInto { old, successor } => {
                let (vi, en) = (
                    format!(
                        "Mã tỉnh {} ({}) không còn từ 01/07/2025; năm học {year} dùng mã {} ({}).",
                        old.code, old.name_vi, successor.code, successor.name_vi
                    ),
                    format!(
                        "Province code {} ({}) no longer exists from 2025-07-01; for {year} use {} ({}).",
                        old.code, old.name_en, successor.code, successor.name_en
                    ),
                );
                self.cell_problem(Rule::ProvinceMerged, row, column, code, vi, en);
            }
            ProvinceLookup::Unknown => {
                let count = registry.list_for(year).len();
                let (vi, en) = (
                    format!("Mã tỉnh {code} không có trong danh mục {count} tỉnh của năm học {year}."),
                    format!("Province code {code} is not among the {count} provinces of school year {year}."),
                );
                self.cell_problem(Rule::ProvinceUnknown, row, column, code, vi, en);
            }
        }
        false
    }

    /// Counts within the range their row's category allows (a grade its level teaches).
    fn check_ranges_by(&mut self, columns: &[ReportColumn]) {
        for rule in &self.schema.range_by {
            let (Some(counts), Some(ColumnValues::Text(categories))) = (
                count_values(columns, &rule.column),
                columns.iter().find(|c| c.name == rule.by).map(|c| &c.values),
            ) else {
                continue;
            };
            let Some(column) = self.schema.columns.iter().position(|c| c.name == rule.column) else {
                continue;
            };
            let by = self.schema.column(&rule.by);
            for (row, (count, category)) in counts.iter().zip(categories.iter()).enumerate() {
                let (Some(count), Some(category)) = (*count, category) else {
                    continue;
                };
                let Some(&[low, high]) = rule.ranges.get(category) else {
                    continue;
                };
                if (low..=high).contains(&count) {
                    continue;
                }
                let shown = by
                    .and_then(|c| c.values.iter().find(|v| v.value == category))
                    .and_then(|v| v.aliases.first())
                    .map_or(category, String::as_str);
                let (what_vi, what_en) = self
                    .schema
                    .column(&rule.column)
                    .map_or((rule.column.as_str(), rule.column.as_str()), |c| {
                        (c.description_vi.as_str(), c.description_en.as_str())
                    });
                let (vi, en) = (
                    format!("{what_vi} {count} không thuộc {shown} ({category}): phải từ {low} đến {high}."),
                    format!("{what_en} {count} is not taught at {category} ({shown}): it must be {low} to {high}."),
                );
                self.cell_problem(Rule::RangeBy, row, column, &count.to_string(), vi, en);
            }
        }
    }

    fn check_unique_keys(&mut self, columns: &[ReportColumn]) {
        let key_columns: Vec<&ReportColumn> = self
            .schema
            .keys
            .iter()
            .filter_map(|k| columns.iter().find(|c| &c.name == k))
            .collect();
        let key_of = |row: usize| -> String {
            let parts: Vec<String> = key_columns
                .iter()
                .map(|c| match &c.values {
                    ColumnValues::Text(v) => v.get(row).unwrap_or_default().to_string(),
                    ColumnValues::Count(v) => v[row].map(|n| n.to_string()).unwrap_or_default(),
                    ColumnValues::Flag(v) => v[row].to_string(),
                })
                .collect();
            parts.join(" / ")
        };
        let last_key = self
            .schema
            .keys
            .last()
            .and_then(|k| self.schema.columns.iter().position(|c| &c.name == k));
        if let Some(spec) = self.schema.person_id() {
            self.check_unique_people(columns, &spec.name.clone());
            return;
        }
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(self.rows.len());
        for row in 0..self.rows.len() {
            let key = key_of(row);
            if let Some(&first) = seen.get(&key) {
                let first_row = self.excel_row(first);
                let (vi, en) = (
                    format!("Trùng khóa ({key}) với dòng {first_row}; mỗi dòng phải khác nhau."),
                    format!("Same key ({key}) as row {first_row}; every row must be distinct."),
                );
                self.cell_problem(Rule::UniqueKey, row, last_key.unwrap_or(0), &key, vi, en);
            } else {
                seen.insert(key, row);
            }
        }
    }
}

impl Validator<'_> {
    /// One row per person: a file (of one school year) names each identifier once, in this
    /// block or an earlier one. Said by row, never by the identifier.
    fn check_unique_people(&mut self, columns: &[ReportColumn], name: &str) {
        let Some(ColumnValues::Text(ids)) = columns.iter().find(|c| c.name == name).map(|c| &c.values) else {
            return;
        };
        let column = self.schema.columns.iter().position(|c| c.name == name).unwrap_or(0);
        for (row, id) in ids.iter().enumerate() {
            let Some(number) = id.and_then(|id| id.parse::<u64>().ok()) else {
                continue;
            };
            let here = self.excel_row(row);
            let first_row = *self.people.entry(number).or_insert(here);
            if first_row != here {
                let (vi, en) = (
                    format!("Mã định danh ({name}) này đã có ở dòng {first_row}; mỗi người một dòng trong năm học."),
                    format!(
                        "This identifier ({name}) is already on row {first_row}; one row per person in a school year."
                    ),
                );
                self.cell_problem(Rule::UniqueKey, row, column, "", vi, en);
            }
        }
    }
}

fn count_values<'c>(columns: &'c [ReportColumn], name: &str) -> Option<&'c Vec<Option<i64>>> {
    match columns.iter().find(|c| c.name == name).map(|c| &c.values) {
        Some(ColumnValues::Count(values)) => Some(values),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content report as the ministry changed it: `video_lessons` added from 2026-2027 and
    /// required from then, `quiz_items` added with a default of 0, `question_bank_items` renamed
    /// `bank_items`.
    fn changed() -> ReportSchema {
        let text = include_str!("../schemas/content.toml").replace(
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
        let text = include_str!("../schemas/content.toml").to_string();
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
