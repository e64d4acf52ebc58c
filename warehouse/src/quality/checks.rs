//! The plausibility checks of `metrics.toml` (`[[check]]`): what each compares, over which
//! table, and where it starts to flag. A check never refuses a file; it flags a figure for
//! someone to look at (see [`crate::quality::flags`]).
//!
//! Every check but `records` reads one table or view per unit — a school, a university, a
//! province — in a school year and the year before, as the SELECT of [`Check::unit_values`]:
//!
//! - `change`: a unit's `value` is more than `factor` times last year's, or less than last
//!   year's divided by it; units whose larger value is under `floor` are left alone.
//! - `share_move`: a unit's share (100 × `numerator` ÷ `denominator`) moved more than `points`
//!   from last year's; units whose denominator is under `floor` either year are left alone.
//! - `outlier`: a unit's share (or `value`) is far from its peers' — the units of the same
//!   province and the same `peers` columns — by a modified z-score over `z` (Iglewicz and
//!   Hoaglin: 0.6745 × (x − median) ÷ MAD); groups of fewer than `min_peers` are not judged.
//! - `missing`: a unit of last year's reports is not in this year's, in a province that did
//!   report this year.
//! - `records`: a school's report differs from its counted learner records by more than
//!   `tolerance` (see [`crate::quality::reconcile`]).

use std::fmt;

use datafusion::arrow::array::RecordBatch;
use ingest::{ProvinceCode, ProvinceRegistry, SchoolYear};
use serde::{Deserialize, Serialize};

use crate::query::columns::{number_column, text_column};

/// What a check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A unit's count against last year's, as a factor.
    Change,
    /// A unit's share against last year's, in points.
    ShareMove,
    /// A unit's share against its peers', as a modified z-score.
    Outlier,
    /// A unit of last year missing this year.
    Missing,
    /// A school's report against its learner records.
    Records,
}

impl CheckKind {
    /// Its name, as in `metrics.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Change => "change",
            CheckKind::ShareMove => "share_move",
            CheckKind::Outlier => "outlier",
            CheckKind::Missing => "missing",
            CheckKind::Records => "records",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The smallest peer group an `outlier` check judges, unless it says otherwise.
pub const MIN_PEERS: usize = 5;

/// One `[[check]]` of `metrics.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Stable identifier: an explanation names it.
    pub id: String,
    /// What it flags, in Vietnamese.
    pub name_vi: String,
    /// What it flags, in English.
    pub name_en: String,
    /// What it compares.
    pub kind: CheckKind,
    /// The table or declared view it reads (not for `records`, which reads the school reports
    /// and the learner records).
    pub table: Option<String>,
    /// The columns naming a unit (a school: `["school_id"]`); none: the province is the unit.
    #[serde(default)]
    pub key: Vec<String>,
    /// A column with the unit's name, shown beside its key.
    pub label: Option<String>,
    /// `change`, `missing`, or an `outlier` without a denominator: the SQL aggregate compared.
    pub value: Option<String>,
    /// `share_move` and `outlier`: the share's numerator, an SQL aggregate.
    pub numerator: Option<String>,
    /// `share_move` and `outlier`: the share's denominator, an SQL aggregate.
    pub denominator: Option<String>,
    /// `outlier`: the key columns that, with the province, make a unit's peer group.
    #[serde(default)]
    pub peers: Vec<String>,
    /// SQL condition on the table's rows.
    pub filter: Option<String>,
    /// `change`: flagged beyond this factor either way (2.0: doubled or halved).
    pub factor: Option<f64>,
    /// `share_move`: flagged beyond this many points.
    pub points: Option<f64>,
    /// `outlier`: flagged beyond this modified z-score either way.
    pub z: Option<f64>,
    /// `outlier`: the smallest peer group judged (default [`MIN_PEERS`]).
    pub min_peers: Option<usize>,
    /// `change`: the larger of the two values under which a unit is not judged; `share_move`
    /// and `outlier`: the denominator under which it is not.
    pub floor: Option<f64>,
    /// `records`: the relative difference beyond which a school is flagged (0.05 is 5%).
    pub tolerance: Option<f64>,
}

/// The rows of a unit's figures, as [`Check::unit_values`] selects them.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitValue {
    /// The school year.
    pub school_year: String,
    /// The province the unit is in, on the list of the year judged.
    pub province_code: Option<String>,
    /// The unit: its key columns joined by " · ".
    pub unit: String,
    /// Its name.
    pub label: Option<String>,
    /// Its peer group's columns joined by " · " (for `outlier`).
    pub peer_group: Option<String>,
    /// The value, or the share's numerator.
    pub value: Option<f64>,
    /// The share's denominator.
    pub base: Option<f64>,
}

impl UnitValue {
    /// The rows of [`Check::unit_values`]' batches, read column by column.
    pub(crate) fn from_batches(batches: &[RecordBatch]) -> crate::Result<Vec<UnitValue>> {
        let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for batch in batches {
            let column = |name: &str| batch.schema().index_of(name).map_err(crate::Error::from);
            let texts = |name: &str| text_column(batch, column(name)?);
            let numbers = |name: &str| number_column(batch, column(name)?);
            let (years, provinces, units, labels, peers) = (
                texts("school_year")?,
                texts("province_code")?,
                texts("unit")?,
                texts("label")?,
                texts("peer_group")?,
            );
            let (values, bases) = (numbers("value")?, numbers("base")?);
            for (((((year, province_code), unit), label), peer_group), (value, base)) in years
                .into_iter()
                .zip(provinces)
                .zip(units)
                .zip(labels)
                .zip(peers)
                .zip(values.into_iter().zip(bases))
            {
                let (Some(school_year), Some(unit)) = (year, unit) else {
                    continue;
                };
                rows.push(UnitValue {
                    school_year,
                    province_code,
                    unit,
                    label,
                    peer_group,
                    value,
                    base,
                });
            }
        }
        Ok(rows)
    }
}

/// The column that says a row's province on the list of `year`: its code as reported while
/// the 63 provinces stood, the 2025 province it rolls up to once the 34 did (so that last
/// year's rows of merged provinces are compared with their successor's).
pub fn province_column(year: SchoolYear) -> &'static str {
    match ProvinceRegistry::shipped().from_2025_in(year) {
        true => "province_2025_code",
        false => "province_code",
    }
}

impl Check {
    /// The SELECT of every unit's figures in each of `years` and the year before (in a
    /// province, if given): one row per school year and unit. The years are of one province
    /// list (one [`province_column`]), the first one's. The years and the province come from
    /// parsed types; the expressions from the checked `metrics.toml`.
    pub fn unit_values(&self, years: &[SchoolYear], province: Option<&ProvinceCode>) -> Option<String> {
        let table = self.table.as_deref()?;
        let place = province_column(*years.first()?);
        let read: std::collections::BTreeSet<SchoolYear> = years
            .iter()
            .flat_map(|year| [SchoolYear::starting(year.start() - 1), *year])
            .collect();
        let read: Vec<String> = read.iter().map(|year| format!("'{year}'")).collect();
        let joined = |columns: &[String]| match columns.is_empty() {
            true => "NULL".to_string(),
            false => format!(
                "concat_ws(' · ', {})",
                columns
                    .iter()
                    .map(|c| format!("CAST({c} AS VARCHAR)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let unit = match self.key.is_empty() {
            true => place.to_string(),
            false => joined(&self.key),
        };
        let value = self.value.as_ref().or(self.numerator.as_ref())?;
        let base = self.denominator.as_deref().unwrap_or("NULL");
        let label = self
            .label
            .as_deref()
            .map_or("NULL".to_string(), |l| format!("max(CAST({l} AS VARCHAR))"));
        let mut conditions = vec![format!("school_year IN ({})", read.join(", "))];
        conditions.extend(self.key.iter().map(|c| format!("{c} IS NOT NULL")));
        conditions.push(format!("{place} IS NOT NULL"));
        if let Some(code) = province {
            conditions.push(format!("{place} = '{}'", code.as_str()));
        }
        if let Some(filter) = &self.filter {
            conditions.push(format!("({filter})"));
        }
        let mut groups = vec!["school_year".to_string(), place.to_string()];
        groups.extend(self.key.iter().cloned());
        Some(format!(
            "SELECT CAST(school_year AS VARCHAR) AS school_year, CAST({place} AS VARCHAR) AS province_code, {unit} AS \
             unit, {label} AS label, {} AS peer_group, CAST(({value}) AS DOUBLE) AS value, CAST(({base}) AS DOUBLE) AS \
             base FROM {table} WHERE {} GROUP BY {}",
            joined(&self.peers),
            conditions.join(" AND "),
            groups.join(", ")
        ))
    }

    /// What the check needs that it lacks, or has that it should not, as (field, message);
    /// the SQL is planned by the metrics' own check.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let id = self.id.as_str();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.push(("id", "an id is letters, digits and _ only".to_string()));
        }
        for (field, text) in [("name_vi", &self.name_vi), ("name_en", &self.name_en)] {
            if text.trim().is_empty() {
                problems.push((field, "must not be empty".to_string()));
            }
        }
        let kind = self.kind;
        let needs = |field: &'static str, present: bool, problems: &mut Vec<(&'static str, String)>| {
            if !present {
                problems.push((field, format!("a {kind} check needs {field}")));
            }
        };
        let refuses = |field: &'static str, present: bool, problems: &mut Vec<(&'static str, String)>| {
            if present {
                problems.push((field, format!("a {kind} check has no {field}")));
            }
        };
        let positive =
            |field: &'static str, value: Option<f64>, least: f64, problems: &mut Vec<(&'static str, String)>| {
                if let Some(v) = value
                    && (!v.is_finite() || v <= least)
                {
                    problems.push((field, format!("{v} must be a number above {least}")));
                }
            };
        let share = self.numerator.is_some() || self.denominator.is_some();
        match kind {
            CheckKind::Records => {
                needs("tolerance", self.tolerance.is_some(), &mut problems);
                positive("tolerance", self.tolerance, 0.0, &mut problems);
                for (field, present) in [
                    ("table", self.table.is_some()),
                    ("key", !self.key.is_empty()),
                    ("value", self.value.is_some()),
                    ("numerator", share),
                    ("factor", self.factor.is_some()),
                    ("points", self.points.is_some()),
                    ("z", self.z.is_some()),
                    ("floor", self.floor.is_some()),
                ] {
                    refuses(field, present, &mut problems);
                }
                return problems;
            }
            CheckKind::Change | CheckKind::Missing => {
                needs("value", self.value.is_some(), &mut problems);
                refuses("numerator", share, &mut problems);
            }
            CheckKind::ShareMove => {
                needs("numerator", self.numerator.is_some(), &mut problems);
                needs("denominator", self.denominator.is_some(), &mut problems);
                refuses("value", self.value.is_some(), &mut problems);
            }
            CheckKind::Outlier => {
                if self.value.is_some() == self.numerator.is_some() {
                    problems.push((
                        "value",
                        "an outlier check compares a value, or a share (numerator and denominator)".to_string(),
                    ));
                }
                if self.numerator.is_some() != self.denominator.is_some() {
                    problems.push(("denominator", "a share needs a numerator and a denominator".to_string()));
                }
                if let Some(peer) = self.peers.iter().find(|p| !self.key.contains(p)) {
                    problems.push((
                        "peers",
                        format!("{peer} is not a key column: a unit's peer group must be one"),
                    ));
                }
                if self.key.is_empty() {
                    problems.push(("key", "an outlier check compares units within a province".to_string()));
                }
            }
        }
        needs("table", self.table.is_some(), &mut problems);
        for (field, present, wanted) in [
            ("factor", self.factor.is_some(), CheckKind::Change),
            ("points", self.points.is_some(), CheckKind::ShareMove),
            ("z", self.z.is_some(), CheckKind::Outlier),
        ] {
            match kind == wanted {
                true => needs(field, present, &mut problems),
                false => refuses(field, present, &mut problems),
            }
        }
        refuses(
            "min_peers",
            self.min_peers.is_some() && kind != CheckKind::Outlier,
            &mut problems,
        );
        refuses(
            "peers",
            !self.peers.is_empty() && kind != CheckKind::Outlier,
            &mut problems,
        );
        refuses("tolerance", self.tolerance.is_some(), &mut problems);
        refuses(
            "floor",
            self.floor.is_some() && kind == CheckKind::Missing,
            &mut problems,
        );
        positive("factor", self.factor, 1.0, &mut problems);
        positive("points", self.points, 0.0, &mut problems);
        positive("z", self.z, 0.0, &mut problems);
        if let Some(floor) = self.floor
            && (!floor.is_finite() || floor < 0.0)
        {
            problems.push(("floor", format!("{floor} must be 0 or more")));
        }
        if self.min_peers.is_some_and(|n| n < 3) {
            problems.push((
                "min_peers",
                "a median and its deviation need at least 3 peers".to_string(),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Check {
        toml::from_str(text).expect("a check")
    }

    #[test]
    fn each_kind_names_what_it_lacks_and_what_it_should_not_have() {
        let jump = check(
            "id = 'jump'\nname_vi = 'a'\nname_en = 'a'\nkind = 'change'\ntable = 'school_reports'\nkey = \
             ['school_id']\nvalue = 'sum(students)'\nfactor = 2.0\nfloor = 100",
        );
        assert!(jump.problems().is_empty(), "{:?}", jump.problems());
        let no_factor = Check {
            factor: None,
            z: Some(3.5),
            ..jump.clone()
        };
        let fields: Vec<&str> = no_factor.problems().iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["factor", "z"]);
        let shrinking = Check {
            factor: Some(0.5),
            ..jump.clone()
        };
        assert_eq!(shrinking.problems()[0].0, "factor");
        let outlier = Check {
            kind: CheckKind::Outlier,
            factor: None,
            z: Some(3.5),
            value: None,
            numerator: Some("sum(students_online_ready)".into()),
            denominator: Some("sum(students)".into()),
            key: vec!["school_id".into(), "level".into()],
            peers: vec!["level".into(), "ownership".into()],
            ..jump.clone()
        };
        assert_eq!(
            outlier.problems(),
            [(
                "peers",
                "ownership is not a key column: a unit's peer group must be one".to_string()
            )]
        );
        let records = check("id = 'records'\nname_vi = 'a'\nname_en = 'a'\nkind = 'records'\ntolerance = 0.05");
        assert!(records.problems().is_empty());
        assert!(
            records
                .unit_values(&["2024-2025".parse().expect("year")], None)
                .is_none()
        );
    }

    #[test]
    fn a_year_of_the_34_provinces_compares_last_year_by_the_province_it_rolled_up_to() {
        assert_eq!(province_column("2024-2025".parse().expect("year")), "province_code");
        assert_eq!(
            province_column("2025-2026".parse().expect("year")),
            "province_2025_code"
        );
        let by_province = check(
            "id = 'p'\nname_vi = 'a'\nname_en = 'a'\nkind = 'change'\ntable = 'learners'\nvalue = \
             'sum(students)'\nfactor = 1.5",
        );
        let sql = by_province
            .unit_values(
                &["2025-2026".parse().expect("year")],
                Some(&"01".parse().expect("code")),
            )
            .expect("sql");
        assert!(sql.contains("school_year IN ('2024-2025', '2025-2026')"), "{sql}");
        assert!(sql.contains("province_2025_code = '01'"), "{sql}");
        assert!(sql.contains("province_2025_code AS unit"), "{sql}");
    }
}
