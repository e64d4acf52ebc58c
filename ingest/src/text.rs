//! Normalising what people type into cells: headers, counts, flags, school years, codes.

use std::fmt;
use std::str::FromStr;

/// Folds a header or a category value for comparison: diacritics removed (đ → d), lower case,
/// every run of spaces and punctuation made one space.
pub fn fold_header(text: &str) -> String {
    let ascii = deunicode::deunicode(text).to_lowercase();
    let mut folded = String::with_capacity(ascii.len());
    for word in ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !folded.is_empty() {
            folded.push(' ');
        }
        folded.push_str(word);
    }
    folded
}

/// Whether a cell would be taken for a formula by a spreadsheet.
pub fn looks_like_formula(cell: &str) -> bool {
    matches!(cell.chars().next(), Some('=' | '+' | '@'))
        || (cell.starts_with('-')
            && cell.len() > 1
            && !cell[1..]
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ','))
}

/// Why a count cell was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountError {
    /// Not a whole number at all.
    NotWhole,
    /// A whole number below zero.
    Negative,
}

/// Parses a whole number ≥ 0 as people write it: `1234`, `1.234` (Vietnamese thousands), `1,234`,
/// `1 234`, or `1234.0` as Excel exports it.
pub fn parse_count(cell: &str) -> Result<i64, CountError> {
    if cell.len() <= 18 && !cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only, as most cells are: no room for more than an i64 holds.
        return cell.parse().map_err(|_| CountError::NotWhole);
    }
    let compact: String = cell.chars().filter(|c| !c.is_whitespace() && *c != '\u{a0}').collect();
    let (negative, digits) = match compact.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, compact.strip_prefix('+').unwrap_or(&compact)),
    };
    let value = parse_unsigned(digits).ok_or(CountError::NotWhole)?;
    if negative && value != 0 {
        return Err(CountError::Negative);
    }
    Ok(value)
}

fn parse_unsigned(digits: &str) -> Option<i64> {
    if digits.is_empty() {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse().ok();
    }
    // Thousands groups: one separator used throughout, groups of exactly three digits.
    for separator in ['.', ','] {
        let groups: Vec<&str> = digits.split(separator).collect();
        let grouped = groups.len() > 1
            && (1..=3).contains(&groups[0].len())
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && groups[1..].iter().all(|g| g.len() == 3);
        if grouped {
            return groups.concat().parse().ok();
        }
    }
    // A whole number with a zero fraction, as a spreadsheet may export it: 1234.0 or 1234,00.
    let (whole, fraction) = digits.split_once(['.', ','])?;
    let plain = !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit());
    (plain && !fraction.is_empty() && fraction.bytes().all(|b| b == b'0'))
        .then(|| whole.parse().ok())
        .flatten()
}

/// Parses a yes/no cell: TRUE/FALSE, 1/0, x/blank, Có/Không, yes/no, y/n. A blank cell is
/// "no" (the x/blank convention); `None` means the text is not a flag at all.
pub fn parse_flag(cell: &str) -> Option<bool> {
    match fold_header(cell).as_str() {
        "" | "0" | "false" | "khong" | "no" | "n" | "f" | "sai" => Some(false),
        "1" | "true" | "x" | "co" | "yes" | "y" | "t" | "dung" => Some(true),
        _ => None,
    }
}

/// A school year such as 2024-2025: September of the first year to May of the second. Stored
/// and sent as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchoolYear {
    start: i32,
}

impl SchoolYear {
    /// The school year that starts in September of `start`.
    pub fn starting(start: i32) -> Self {
        Self { start }
    }

    /// The calendar year it starts in.
    pub fn start(self) -> i32 {
        self.start
    }

    /// The calendar year it ends in (a 2025 target is judged on 2024-2025).
    pub fn end(self) -> i32 {
        self.start + 1
    }

    /// The next school year.
    pub fn next(self) -> Self {
        Self::starting(self.start + 1)
    }

    /// The first day of teaching, used to pick the province list in force.
    pub fn first_day(self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(self.start, 9, 5).unwrap_or_default()
    }
}

impl fmt::Display for SchoolYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.start + 1)
    }
}

/// Why a school year was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolYearError;

impl fmt::Display for SchoolYearError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a school year is written like 2024-2025, two consecutive years")
    }
}

impl std::error::Error for SchoolYearError {}

impl From<SchoolYear> for String {
    fn from(year: SchoolYear) -> String {
        year.to_string()
    }
}

impl TryFrom<String> for SchoolYear {
    type Error = SchoolYearError;

    fn try_from(text: String) -> Result<Self, SchoolYearError> {
        text.parse()
    }
}

impl FromStr for SchoolYear {
    type Err = SchoolYearError;

    /// Accepts `2024-2025`, `2024 - 2025`, `2024–2025` and `2024/2025`; the years must follow
    /// each other and lie between 2000 and 2100.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.trim().split_once(['-', '–', '—', '/']).ok_or(SchoolYearError)?;
        let parse = |part: &str| {
            let part = part.trim();
            (part.len() == 4 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<i32>().ok())
                .flatten()
        };
        match (parse(a), parse(b)) {
            (Some(a), Some(b)) if b == a + 1 && (2000..2100).contains(&a) => Ok(Self::starting(a)),
            _ => Err(SchoolYearError),
        }
    }
}

/// Normalises a province code: Excel drops the leading zero of `01`, so `1` becomes `01`.
/// `None` when the cell is not one or two digits.
pub fn normalize_province_code(cell: &str) -> Option<String> {
    let code = cell.trim();
    let code = code.strip_suffix(".0").unwrap_or(code);
    match code.len() {
        1 | 2 if code.bytes().all(|b| b.is_ascii_digit()) => Some(format!("{code:0>2}")),
        _ => None,
    }
}

/// A province's code: two digits, as the General Statistics Office numbers provinces (the 63
/// of 2008–2025 and the 34 from 1 July 2025 share the numbering). Stored and sent as its text;
/// reads as `&str` where text is wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProvinceCode(String);

impl ProvinceCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ProvinceCode {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProvinceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a province code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvinceCodeError(String);

impl fmt::Display for ProvinceCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a province code: a province code has 2 digits, e.g. 01",
            self.0
        )
    }
}

impl std::error::Error for ProvinceCodeError {}

/// Reads a code as people write it: `1`, `01`, `1.0` (a number cell of Excel) are all 01.
impl FromStr for ProvinceCode {
    type Err = ProvinceCodeError;

    fn from_str(text: &str) -> Result<Self, ProvinceCodeError> {
        normalize_province_code(text)
            .map(ProvinceCode)
            .ok_or_else(|| ProvinceCodeError(text.to_string()))
    }
}

impl TryFrom<String> for ProvinceCode {
    type Error = ProvinceCodeError;

    fn try_from(text: String) -> Result<Self, ProvinceCodeError> {
        text.parse()
    }
}

impl From<ProvinceCode> for String {
    fn from(code: ProvinceCode) -> String {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_removes_diacritics_case_and_punctuation() {
        assert_eq!(fold_header("Tổng số học sinh"), "tong so hoc sinh");
        assert_eq!(fold_header("  Đường  truyền/Internet "), "duong truyen internet");
        assert_eq!(fold_header("students_online_ready"), "students online ready");
    }

    #[test]
    fn counts_accept_thousands_separators() {
        let cases = [
            ("1234", Ok(1234)),
            ("1.234", Ok(1234)),
            ("1.234.567", Ok(1_234_567)),
            ("1,234", Ok(1234)),
            ("1 234", Ok(1234)),
            ("1\u{a0}234", Ok(1234)),
            ("1234.0", Ok(1234)),
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("-5", Err(CountError::Negative)),
            ("-1.234", Err(CountError::Negative)),
            ("12.5", Err(CountError::NotWhole)),
            ("1.23", Err(CountError::NotWhole)),
            ("1.234,5", Err(CountError::NotWhole)),
            ("abc", Err(CountError::NotWhole)),
            ("=SUM(A1:A3)", Err(CountError::NotWhole)),
            ("", Err(CountError::NotWhole)),
        ];
        for (cell, expected) in cases {
            assert_eq!(parse_count(cell), expected, "{cell:?}");
        }
    }

    #[test]
    fn flags_accept_the_usual_spellings() {
        for yes in ["TRUE", "true", "1", "x", "X", "Có", "co", "yes"] {
            assert_eq!(parse_flag(yes), Some(true), "{yes}");
        }
        for no in ["FALSE", "0", "", "Không", "khong", "no"] {
            assert_eq!(parse_flag(no), Some(false), "{no}");
        }
        assert_eq!(parse_flag("maybe"), None);
    }

    #[test]
    fn school_years_must_be_consecutive() {
        assert_eq!("2024-2025".parse::<SchoolYear>().map(|y| y.start()), Ok(2024));
        assert_eq!(
            "2024 – 2025".parse::<SchoolYear>().map(|y| y.to_string()),
            Ok("2024-2025".into())
        );
        assert_eq!("2024/2025".parse::<SchoolYear>().map(|y| y.end()), Ok(2025));
        for bad in ["2024-2026", "2024", "24-25", "2025-2024", "năm 2024-2025"] {
            assert!(bad.parse::<SchoolYear>().is_err(), "{bad}");
        }
    }

    #[test]
    fn province_codes_get_their_leading_zero() {
        assert_eq!(normalize_province_code("1").as_deref(), Some("01"));
        assert_eq!(normalize_province_code(" 79 ").as_deref(), Some("79"));
        assert_eq!(normalize_province_code("1.0").as_deref(), Some("01"));
        assert_eq!(normalize_province_code("Hà Nội"), None);
        assert_eq!(normalize_province_code("123"), None);
    }

    #[test]
    fn formula_looking_cells_are_recognised() {
        for cell in ["=1+1", "+SUM(A1)", "@cmd", "-cmd|' /C calc'!A0"] {
            assert!(looks_like_formula(cell), "{cell}");
        }
        for cell in ["Trường A", "-5", "12", "THCS Lê Lợi"] {
            assert!(!looks_like_formula(cell), "{cell}");
        }
    }
}
