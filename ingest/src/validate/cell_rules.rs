//! The rules of one cell: required, not a formula, a count, a flag, a category, a school year or
//! a province; a value that parsed is remembered for the column's next rows.

use crate::problem::Rule;
use crate::report::{ColumnValues, TextValues};
use crate::schema::{ColumnSpec, ColumnType, DefaultValue};
use crate::text::{CountError, SchoolYear, looks_like_formula, normalize_province_code, parse_count, parse_flag};

use super::{Remembered, Source, Validator, is_plain};

impl<'a> Validator<'a> {
    /// Parses one column of every kept row, recording a problem for each bad cell. A value
    /// that parsed without a problem is remembered (up to [`REMEMBERED_VALUES`] of a column), so
    /// that the same category, yes/no or school year in a million rows is parsed once.
    pub(super) fn parse_column(&mut self, index: usize) -> ColumnValues {
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

    pub(super) fn required(&mut self, row: usize, index: usize) {
        let spec = &self.schema.columns[index];
        let (vi, en) = (
            format!("Ô bắt buộc ({}) đang để trống.", spec.description_vi),
            format!("This cell ({}) is required but blank.", spec.description_en),
        );
        self.cell_problem(Rule::Required, row, index, "", vi, en);
    }

    pub(super) fn formula(&mut self, row: usize, index: usize, cell: &str) {
        self.cell_problem(
            Rule::Formula,
            row,
            index,
            cell,
            "Ô có dạng công thức bảng tính; hãy nhập giá trị, không nhập công thức.".into(),
            "The cell looks like a spreadsheet formula; enter the value itself.".into(),
        );
    }

    pub(super) fn parse_count_cell(&mut self, row: usize, index: usize, spec: &ColumnSpec, cell: &str) -> Option<i64> {
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

    pub(super) fn parse_text_cell(
        &mut self,
        row: usize,
        index: usize,
        spec: &ColumnSpec,
        cell: &str,
    ) -> Option<String> {
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
}
