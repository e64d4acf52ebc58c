//! Learner and teacher records consistent with the generated school reports: the records of a
//! (school, level) row count exactly what its report says — pupils, pupils able to study online,
//! on a domestic platform, with a digital record; teachers likewise — except in about one row in
//! 25, whose report overstates its pupils able to study online by a third (the reports that
//! reconciliation must find).
//!
//! A learner is the `i`-th pupil of the cohort that entered a school's level in a given year, so
//! the same learner has the same identifier every year they stay in the school, one grade up.
//! Identifiers are 12 digits, unique nationally: a bijection of that person number onto
//! `0..10¹²` (an affine map modulo 10¹²), so about one in ten starts with a zero, as real ones do.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Cell, LEVELS, Row};
use crate::Result;
use crate::schema::{Lang, ReportKind};
use crate::text::SchoolYear;

/// The grades each level teaches, by the index of [`LEVELS`] (continuing education teaches the
/// secondary programmes).
const GRADES: [(i64, i64); 4] = [(1, 5), (6, 9), (10, 12), (6, 12)];

/// Multiplier of the identifier bijection: coprime with 10¹² (neither even nor a multiple of 5).
const ID_MULTIPLIER: u128 = 374_761_393_919;
/// Offset of the identifier bijection.
const ID_OFFSET: u128 = 52_918_143_211;
/// Teachers' person numbers start here, above every learner's.
const TEACHER_NUMBERS: u64 = 1 << 40;

/// How the file is written: a database export in Vietnamese (`;`, Có/Không) or English (`,`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Export {
    Vietnamese,
    English,
}

/// The 12-digit identifier of a person number.
fn identifier(number: u64) -> String {
    let id = (ID_MULTIPLIER * u128::from(number) + ID_OFFSET) % 1_000_000_000_000;
    format!("{id:012}")
}

/// The dense number of a school: its province's place in the 2008 list and its number there
/// (the digits after the province code of its id).
fn school_number(school_id: &str, province_index: u64) -> u64 {
    let number: u64 = school_id.get(2..).and_then(|n| n.parse().ok()).unwrap_or(0);
    (province_index << 15) | (number & 0x7fff)
}

fn count(row: &Row, column: &str) -> i64 {
    match row.get(column) {
        Some(Cell::Count(n)) => *n,
        _ => 0,
    }
}

fn text<'r>(row: &'r Row, column: &str) -> &'r str {
    match row.get(column) {
        Some(Cell::Text(t)) => t,
        _ => "",
    }
}

/// `n` flags of which exactly `k` are set, in an order drawn from `rng`.
fn exactly(rng: &mut ChaCha8Rng, n: usize, k: i64) -> Vec<bool> {
    let k = (k.max(0) as usize).min(n);
    let mut flags: Vec<bool> = (0..n).map(|i| i < k).collect();
    flags.shuffle(rng);
    flags
}

/// Writes the records of one province and year from its school rows (as generated for its
/// school report); returns the file and its rows.
pub(super) fn write(
    kind: ReportKind,
    path: &Path,
    rows: &[Row],
    year: SchoolYear,
    province_index: impl Fn(&str) -> u64,
    rng: &mut ChaCha8Rng,
    export: Export,
) -> Result<(PathBuf, usize)> {
    let schema = kind.schema();
    let (separator, lang) = match export {
        Export::Vietnamese => (';', Lang::Vi),
        Export::English => (',', Lang::En),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let header: Vec<&str> = schema.columns.iter().map(|c| c.header(lang)).collect();
    write!(out, "{}\r\n", header.join(&separator.to_string()))?;
    let word = |column: &str, value: &'static str| -> &'static str {
        match export {
            Export::English => value,
            Export::Vietnamese => schema
                .column(column)
                .and_then(|c| c.values.iter().find(|v| v.value == value))
                .and_then(|v| v.aliases.first())
                .map_or(value, |a| {
                    // Schemas are 'static: so are their aliases.
                    let alias: &'static str = a.as_str();
                    alias
                }),
        }
    };
    let flag = |b: bool| match (export, b) {
        (Export::English, true) => "TRUE",
        (Export::English, false) => "FALSE",
        (Export::Vietnamese, true) => "Có",
        (Export::Vietnamese, false) => "Không",
    };
    let mut written = 0;
    let mut writer = RowWriter {
        out,
        line: String::with_capacity(160),
        separator,
        year: year.to_string(),
    };
    for row in rows {
        let school_id = text(row, "school_id");
        let level_name = text(row, "level");
        let Some(level) = LEVELS.iter().position(|(name, ..)| *name == level_name) else {
            continue;
        };
        let province = text(row, "province_code");
        let school = school_number(school_id, province_index(school_id.get(..2).unwrap_or("")));
        let level_word = word("level", LEVELS[level].0);
        match kind {
            ReportKind::Learner => {
                let n = count(row, "students").max(0) as usize;
                let mut ready_count = count(row, "students_online_ready");
                // About one row in 25 reports a third more pupils able to study online than
                // its records hold.
                if rng.random_bool(0.04) {
                    ready_count = (ready_count as f64 * 0.75).round() as i64;
                }
                let ready = exactly(rng, n, ready_count);
                let domestic = exactly(rng, n, count(row, "students_domestic_platform"));
                let record = exactly(rng, n, count(row, "students_digital_record"));
                let (low, high) = GRADES[level];
                let grades = (high - low + 1) as usize;
                for j in 0..n {
                    // Pupils spread evenly over the level's grades; the `i`-th of grade `g`
                    // entered the level `g - low` years ago.
                    let grade_index = j * grades / n;
                    let first_of_grade = (grade_index * n).div_ceil(grades);
                    let i = (j - first_of_grade) as u64;
                    let entered = (year.start() - grade_index as i32).rem_euclid(32) as u64;
                    let person = (((school * 4 + level as u64) * 32 + entered) << 11) | (i & 0x7ff);
                    let female = (person.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 63) == 1;
                    let device = match (ready[j], rng.random_range(0..10)) {
                        (true, 0..7) | (false, 0..2) => "own",
                        (true, _) | (false, 2..5) => "shared",
                        (false, _) => "none",
                    };
                    let internet = ready[j] || rng.random_bool(0.4);
                    let grade = (low + grade_index as i64).to_string();
                    let gender = word("gender", if female { "female" } else { "male" });
                    let own = [grade.as_str(), gender, word("device", device), flag(internet)];
                    let flags = [flag(ready[j]), flag(domestic[j]), flag(record[j])];
                    writer.row([province, school_id, level_word], person, &[&own[..], &flags[..]])?;
                }
                written += n;
            }
            ReportKind::Teacher => {
                let n = count(row, "teachers").max(0) as usize;
                let ready = exactly(rng, n, count(row, "teachers_online_ready"));
                let record = exactly(rng, n, count(row, "teachers_digital_record"));
                for j in 0..n {
                    let person = TEACHER_NUMBERS + (((school * 4 + level as u64) << 11) | (j as u64 & 0x7ff));
                    let trained = rng.random_bool(if ready[j] { 0.8 } else { 0.35 });
                    let flags = [flag(ready[j]), flag(trained), flag(record[j])];
                    writer.row([province, school_id, level_word], person, &[&flags[..]])?;
                }
                written += n;
            }
            _ => {}
        }
    }
    writer.out.flush()?;
    Ok((path.to_path_buf(), written))
}

/// Writes a record file's rows: the school year, then the row's province, school, person
/// (as their identifier), level, and the cells of its kind.
struct RowWriter<W> {
    out: W,
    line: String,
    separator: char,
    year: String,
}

impl<W: Write> RowWriter<W> {
    fn row(&mut self, place: [&str; 3], person: u64, rest: &[&[&str]]) -> std::io::Result<()> {
        let [province, school, level] = place;
        self.line.clear();
        let id = identifier(person);
        let cells = [self.year.as_str(), province, school, id.as_str(), level];
        for (index, cell) in cells.iter().chain(rest.iter().flat_map(|r| r.iter())).enumerate() {
            if index > 0 {
                self.line.push(self.separator);
            }
            self.line.push_str(cell);
        }
        self.line.push_str("\r\n");
        self.out.write_all(self.line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_twelve_digits_and_never_repeat() {
        let mut seen = std::collections::HashSet::new();
        for number in (0..200_000u64).chain([TEACHER_NUMBERS, TEACHER_NUMBERS + 1, (1 << 39) - 1]) {
            let id = identifier(number);
            assert_eq!(id.len(), 12);
            assert!(seen.insert(id), "{number}");
        }
        assert!(seen.iter().any(|id| id.starts_with('0')));
    }
}
