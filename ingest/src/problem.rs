//! A problem found in a file: where (row as the user sees it, column), what (value, rule), and
//! how to fix it, in Vietnamese and English.

use std::collections::BTreeMap;
use std::fmt;

/// The rule a problem breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The file cannot be opened or parsed.
    Unreadable,
    /// The file is not UTF-8 or UTF-16.
    Encoding,
    /// The file has no header row.
    EmptyFile,
    /// The file has a header row but no data.
    NoRows,
    /// The requested worksheet does not exist.
    MissingSheet,
    /// A required column has no header.
    MissingColumn,
    /// Two headers name the same column.
    DuplicateColumn,
    /// A required cell is blank.
    Required,
    /// A count is not a whole number.
    WholeNumber,
    /// A count is below zero.
    NonNegative,
    /// A count is outside the column's range.
    Range,
    /// A cell starts like a spreadsheet formula.
    Formula,
    /// A yes/no cell has another value.
    Flag,
    /// A category cell has a value not in the list.
    AllowedValues,
    /// A school year is not written like 2024-2025.
    SchoolYearFormat,
    /// A province code that does not exist.
    ProvinceUnknown,
    /// A province code merged away before the school year.
    ProvinceMerged,
    /// A part exceeds its whole.
    PartOfWhole,
    /// Two rows share the same key.
    UniqueKey,
    /// A cell disagrees with `--year` or `--province`.
    ArgumentMismatch,
    /// The file holds more than one (province, school year).
    OneSlice,
    /// The file's shape is past a bound (columns, cell length, a workbook's unpacked size or
    /// area), found before its cells are read.
    Bounds,
    /// A person's identifier is not 12 digits.
    PersonId,
    /// A column holds personal data khoso must not receive (a name, a birth date, an address,
    /// a phone number).
    PersonalData,
    /// A count outside the range its row's category allows (a grade its level does not teach).
    RangeBy,
    /// A text longer than its column allows (a name, a commune).
    TooLong,
    /// A header row that does not say which report a file is, when no kind was given.
    UnknownKind,
    /// Problems past the ones listed, counted by rule and column.
    More,
}

impl Rule {
    /// Stable identifier, as written in the errors CSV.
    pub fn code(self) -> &'static str {
        match self {
            Rule::Unreadable => "unreadable",
            Rule::Encoding => "encoding",
            Rule::EmptyFile => "empty_file",
            Rule::NoRows => "no_rows",
            Rule::MissingSheet => "missing_sheet",
            Rule::MissingColumn => "missing_column",
            Rule::DuplicateColumn => "duplicate_column",
            Rule::Required => "required",
            Rule::WholeNumber => "whole_number",
            Rule::NonNegative => "non_negative",
            Rule::Range => "range",
            Rule::Formula => "formula",
            Rule::Flag => "flag",
            Rule::AllowedValues => "allowed_values",
            Rule::SchoolYearFormat => "school_year_format",
            Rule::ProvinceUnknown => "province_unknown",
            Rule::ProvinceMerged => "province_merged",
            Rule::PartOfWhole => "part_of_whole",
            Rule::UniqueKey => "unique_key",
            Rule::ArgumentMismatch => "argument_mismatch",
            Rule::OneSlice => "one_slice",
            Rule::Bounds => "bounds",
            Rule::PersonId => "person_id",
            Rule::PersonalData => "personal_data",
            Rule::RangeBy => "range_by",
            Rule::TooLong => "too_long",
            Rule::UnknownKind => "unknown_kind",
            Rule::More => "more",
        }
    }
}

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Row number as the user sees it in Excel (header = 1); `None` for the file as a whole.
    pub row: Option<usize>,
    /// The column, by its header in the file (or its schema name when it is missing).
    pub column: Option<String>,
    /// The cell's text.
    pub value: Option<String>,
    /// The rule broken.
    pub rule: Rule,
    /// What is wrong and how to fix it, in Vietnamese.
    pub message_vi: String,
    /// What is wrong and how to fix it, in English.
    pub message_en: String,
}

impl Problem {
    /// A problem with the whole file; `detail` completes the message.
    pub fn file(rule: Rule, detail: String) -> Self {
        let (vi, en) = match rule {
            Rule::Unreadable => (
                format!("Không đọc được tệp ({detail}). Hãy lưu lại dưới dạng CSV UTF-8 hoặc Excel .xlsx."),
                format!("The file cannot be read ({detail}). Save it again as CSV UTF-8 or Excel .xlsx."),
            ),
            Rule::Encoding => (
                format!("Tệp không phải mã UTF-8/UTF-16 ({detail}). Trong Excel chọn Lưu thành → \"CSV UTF-8\"."),
                format!("The file is not UTF-8/UTF-16 text ({detail}). In Excel use Save As → \"CSV UTF-8\"."),
            ),
            Rule::EmptyFile => (
                "Tệp rỗng: không có dòng tiêu đề. Hãy dùng mẫu từ `khoso template`.".to_string(),
                "The file is empty: there is no header row. Start from `khoso template`.".to_string(),
            ),
            Rule::NoRows => (
                "Tệp chỉ có dòng tiêu đề, không có dòng số liệu nào.".to_string(),
                "The file has a header row but no data rows.".to_string(),
            ),
            Rule::MissingSheet => (
                format!("Không có trang tính {detail}."),
                format!("There is no worksheet {detail}."),
            ),
            _ => (detail.clone(), detail),
        };
        Self {
            row: None,
            column: None,
            value: None,
            rule,
            message_vi: vi,
            message_en: en,
        }
    }

    /// A file past one of the reader's bounds, at a row when it is known.
    pub fn bounds(row: Option<usize>, message_vi: String, message_en: String) -> Self {
        Self {
            row,
            column: None,
            value: None,
            rule: Rule::Bounds,
            message_vi,
            message_en,
        }
    }

    /// A problem with a column as a whole (missing, duplicated).
    pub fn column(rule: Rule, column: &str, message_vi: String, message_en: String) -> Self {
        Self {
            row: None,
            column: Some(column.to_string()),
            value: None,
            rule,
            message_vi,
            message_en,
        }
    }

    /// A problem with one cell (or one row, when `column` names the row's key).
    pub fn cell(rule: Rule, row: usize, column: &str, value: &str, message_vi: String, message_en: String) -> Self {
        Self {
            row: Some(row),
            column: Some(column.to_string()),
            value: Some(value.to_string()),
            rule,
            message_vi,
            message_en,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(row) = self.row {
            write!(f, "dòng/row {row}")?;
        } else {
            f.write_str("tệp/file")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", cột/column {column:?}")?;
        }
        if let Some(value) = &self.value {
            write!(f, ", giá trị/value {value:?}")?;
        }
        write!(f, " [{}]: {} / {}", self.rule.code(), self.message_vi, self.message_en)
    }
}

/// Writes problems as CSV (row, column, value, rule, message_vi, message_en), with cells that
/// a spreadsheet would take for formulas neutralised.
pub fn write_problems_csv(problems: &[Problem], out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "row,column,value,rule,message_vi,message_en")?;
    for p in problems {
        let row = p.row.map(|r| r.to_string()).unwrap_or_default();
        let fields = [
            row.as_str(),
            p.column.as_deref().unwrap_or(""),
            p.value.as_deref().unwrap_or(""),
            p.rule.code(),
            &p.message_vi,
            &p.message_en,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

/// Quotes a CSV field, prefixing `'` to a cell that a spreadsheet would run as a formula.
pub fn csv_field(text: &str) -> String {
    let safe = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

/// How many problems of a file are listed in full; past them, they are counted by rule and
/// column.
pub const MAX_LISTED: usize = 1000;

/// The problems of a file, listed up to [`MAX_LISTED`] and counted beyond: what they take stays
/// small whatever the file holds (a sheet of two million rows with every cell wrong is a thousand
/// problems and a count per column, not forty million problems).
#[derive(Debug, Default)]
pub struct Problems {
    listed: Vec<Problem>,
    more: BTreeMap<(&'static str, String), usize>,
}

impl Problems {
    /// Lists a problem, or counts it past [`MAX_LISTED`].
    pub fn push(&mut self, problem: Problem) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(problem);
        } else {
            *self
                .more
                .entry((problem.rule.code(), problem.column.unwrap_or_default()))
                .or_default() += 1;
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// How many, listed and counted.
    pub fn total(&self) -> usize {
        self.listed.len() + self.more.values().sum::<usize>()
    }

    /// The problems listed in full.
    pub fn listed(&self) -> &[Problem] {
        &self.listed
    }

    /// The listed problems in row order, as the user walks the sheet.
    pub fn sort_by_row(&mut self) {
        self.listed.sort_by_key(|p| p.row.unwrap_or(0));
    }

    /// Takes in another list of the same file (a later block's).
    pub fn absorb(&mut self, other: Problems) {
        other.listed.into_iter().for_each(|p| self.push(p));
        for (key, count) in other.more {
            *self.more.entry(key).or_default() += count;
        }
    }

    /// The listed problems, then one line per (rule, column) counted beyond them.
    pub fn into_vec(self) -> Vec<Problem> {
        let mut all = self.listed;
        for ((rule, column), count) in self.more {
            all.push(Problem {
                row: None,
                column: (!column.is_empty()).then_some(column.clone()),
                value: None,
                rule: Rule::More,
                message_vi: format!(
                    "Còn {count} lỗi [{rule}] nữa ở cột \"{column}\" (chỉ liệt kê {MAX_LISTED} lỗi đầu)."
                ),
                message_en: format!(
                    "{count} more [{rule}] problems in column \"{column}\" (only the first {MAX_LISTED} are listed)."
                ),
            });
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_csv_quotes_and_neutralises_cells() {
        let problems = vec![Problem::cell(
            Rule::Formula,
            5,
            "Tên trường",
            "=HYPERLINK(\"x\")",
            "công thức".into(),
            "formula, really".into(),
        )];
        let mut out = Vec::new();
        write_problems_csv(&problems, &mut out).expect("write to memory");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text.lines().nth(1),
            Some("5,Tên trường,\"'=HYPERLINK(\"\"x\"\")\",formula,công thức,\"formula, really\"")
        );
    }
}
