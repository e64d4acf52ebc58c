//! Row rules across columns: a province valid in its year, a part no larger than its whole,
//! unique keys and people, one slice per file.

use crate::problem::{Problem, Rule};
use crate::provinces::{ProvinceLookup, ProvinceRegistry};
use crate::report::{ColumnValues, ReportColumn};
use crate::text::SchoolYear;
use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeSet;

use super::{Validator, same_text};

impl<'a> Validator<'a> {
    /// Row rules across columns: province valid in its year, part ≤ whole, unique keys, one
    /// slice per file. Returns the file's (school year, province) when it has exactly one.
    pub(super) fn check_rows(&mut self, columns: &[ReportColumn]) -> Option<(SchoolYear, Option<String>)> {
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
    pub(super) fn check_province(
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
    pub(super) fn check_ranges_by(&mut self, columns: &[ReportColumn]) {
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

    pub(super) fn check_unique_keys(&mut self, columns: &[ReportColumn]) {
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
    pub(super) fn check_unique_people(&mut self, columns: &[ReportColumn], name: &str) {
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
