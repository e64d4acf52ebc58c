//! The flags the checks raise: which unit, in which province and year, the two values compared,
//! how far apart, and whether someone has explained it. The same code judges the warehouse as it
//! is (`/quality`, `khoso check`) and as it would be with a file not yet committed (the dry
//! run's warnings), since both hand it a session over the tables.

use std::collections::{BTreeMap, HashMap, HashSet};

use datafusion::prelude::SessionContext;
use ingest::{ProvinceCode, SchoolYear};
use serde::Serialize;

use crate::quality::checks::{Check, CheckKind, MIN_PEERS, UnitValue, province_column};
use crate::quality::reconcile::{Figures, Warning};
use crate::store::Warehouse;
use crate::tables::rows::Explanation;
use crate::{Result, TableVersions};

/// The most flags a warning of the dry run names (it counts them all).
const NAMED: usize = 10;

/// A figure that looks wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// The check that raised it.
    pub check_id: String,
    /// What the check compares.
    pub kind: CheckKind,
    /// The school year flagged.
    pub school_year: SchoolYear,
    /// The province the unit is in, on that year's list.
    pub province_code: String,
    /// The unit: a school (and level), a university, a province.
    pub unit: String,
    /// Its name, as reported.
    pub label: Option<String>,
    /// What the figure is compared with: last year's value (`change`, `share_move`, `missing`),
    /// the peers' median (`outlier`), the count from records (`records`).
    pub before: Option<f64>,
    /// The figure: this year's value, the school's reported figure (`records`); none when
    /// the unit is missing.
    pub now: Option<f64>,
    /// How far apart: the factor, the points, the modified z-score, the relative difference.
    pub measure: f64,
    /// In Vietnamese: the two values and the rule (the check names what is compared).
    pub message_vi: String,
    /// In English.
    pub message_en: String,
    /// Why it is right, if someone said so for these values.
    pub explanation: Option<Explanation>,
}

impl Flag {
    /// The two values as an explanation records them: an explanation covers these only.
    pub fn values(&self) -> String {
        let text = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v}"));
        format!("{} → {}", text(self.before), text(self.now))
    }

    /// What an explanation of this flag as it stands is filed under (see [`Explained`]).
    fn explanation_key(&self) -> ExplanationKey {
        (
            self.check_id.clone(),
            self.school_year,
            self.province_code.clone(),
            self.unit.clone(),
            self.values(),
        )
    }

    /// The unit with its name: "S4 · primary (Trường Tiểu học A)".
    pub fn named_unit(&self) -> String {
        match &self.label {
            Some(label) if !label.is_empty() => format!("{} ({label})", self.unit),
            _ => self.unit.clone(),
        }
    }
}

/// What an explanation is filed under: the check, year, province, unit and the flag's values.
type ExplanationKey = (String, SchoolYear, String, String, String);

/// The latest explanation of each flag as it stood when explained.
#[derive(Debug, Clone, Default)]
pub struct Explained(HashMap<ExplanationKey, Explanation>);

impl Explained {
    /// Indexes explanations given oldest first: a later one of the same flag wins.
    pub fn new(explanations: Vec<Explanation>) -> Self {
        Self(
            explanations
                .into_iter()
                .map(|e| {
                    let key = (
                        e.check_id.clone(),
                        e.school_year,
                        e.province_code.clone(),
                        e.unit.clone(),
                        e.flag_values.clone(),
                    );
                    (key, e)
                })
                .collect(),
        )
    }

    /// The explanation of `flag` as it stands, if it has one.
    pub fn of(&self, flag: &Flag) -> Option<&Explanation> {
        self.0.get(&flag.explanation_key())
    }
}

/// A number as Vietnamese writes it: `1.234,5`.
fn vi_number(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), ""), |(w, f)| (w, f));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match fraction.is_empty() {
        true => format!("{sign}{grouped}"),
        false => format!("{sign}{grouped},{fraction}"),
    }
}

/// A number as English writes it: `1,234.5`.
fn en_number(value: f64, decimals: usize) -> String {
    vi_number(value, decimals)
        .replace('.', "\u{0}")
        .replace(',', ".")
        .replace('\u{0}', ",")
}

/// The median of values sorted ascending (none for none).
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Each value's modified z-score against the group's median, and the median: 0.6745 × (x −
/// median) ÷ MAD; when more than half the values are equal (MAD = 0), (x − median) ÷ (1.2533 ×
/// the mean absolute deviation); none when every value is the same.
pub fn modified_z(values: &[f64]) -> Option<(f64, Vec<f64>)> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = median(&sorted)?;
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - middle).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = median(&deviations)?;
    let mean_deviation = deviations.iter().sum::<f64>() / deviations.len() as f64;
    let scale = match (mad > 0.0, mean_deviation > 0.0) {
        (true, _) => mad / 0.6745,
        (false, true) => 1.253314 * mean_deviation,
        (false, false) => return None,
    };
    Some((middle, values.iter().map(|v| (v - middle) / scale).collect()))
}

/// A unit: (its province, its key).
type UnitKey = (String, String);

/// A unit judged among its peers: the unit, its figures, its value.
type Member<'a> = (&'a UnitKey, &'a UnitValue, f64);

/// A unit's figures in the two years.
struct Pair<'a> {
    last: Option<&'a UnitValue>,
    now: Option<&'a UnitValue>,
}

/// Judges one check's unit figures for `year` (`rows` as [`Check::unit_values`] selects them).
pub fn judge(check: &Check, year: SchoolYear, rows: &[UnitValue]) -> Vec<Flag> {
    let this = year.to_string();
    let last_year = SchoolYear::starting(year.start() - 1);
    let last = last_year.to_string();
    let mut units: BTreeMap<UnitKey, Pair> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.school_year == this || r.school_year == last) {
        let Some(province) = row.province_code.clone() else {
            continue;
        };
        let pair = units
            .entry((province, row.unit.clone()))
            .or_insert(Pair { last: None, now: None });
        if row.school_year == this {
            pair.now = Some(row);
        } else if row.school_year == last {
            pair.last = Some(row);
        }
    }
    let floor = check.floor.unwrap_or(0.0);
    // A share in percent, where its denominator reaches the floor.
    let share = |row: &UnitValue| match (row.value, row.base) {
        (Some(n), Some(d)) if d > 0.0 && d >= floor && n.is_finite() && d.is_finite() => Some(100.0 * n / d),
        _ => None,
    };
    let flag = |(province, unit): &UnitKey, row: &UnitValue, before, now, measure, (vi, en): (String, String)| Flag {
        check_id: check.id.clone(),
        kind: check.kind,
        school_year: year,
        province_code: province.clone(),
        unit: unit.clone(),
        label: row.label.clone().filter(|l| !l.is_empty()),
        before,
        now,
        measure,
        message_vi: vi,
        message_en: en,
        explanation: None,
    };
    let mut flags = Vec::new();
    match check.kind {
        CheckKind::Change => {
            let factor = check.factor.unwrap_or(f64::INFINITY);
            for (unit, pair) in &units {
                let (Some(old_row), Some(new_row)) = (pair.last, pair.now) else {
                    continue;
                };
                let (Some(old), Some(new)) = (old_row.value, new_row.value) else {
                    continue;
                };
                if !(old.is_finite() && new.is_finite()) || old.max(new) < floor.max(f64::MIN_POSITIVE) {
                    continue;
                }
                if new > factor * old || old > factor * new {
                    let measure = match old.min(new) {
                        m if m > 0.0 => old.max(new) / m,
                        _ => f64::INFINITY,
                    };
                    let times = |number: fn(f64, usize) -> String| match measure.is_finite() {
                        true => number(measure, 1),
                        false => "∞".to_string(),
                    };
                    let words = (
                        format!(
                            "{} năm {last} → {} năm {this} (gấp {} lần; quy tắc: hơn {} lần)",
                            vi_number(old, 0),
                            vi_number(new, 0),
                            times(vi_number),
                            vi_number(factor, 1)
                        ),
                        format!(
                            "{} in {last} → {} in {this} ({}×; rule: more than {}×)",
                            en_number(old, 0),
                            en_number(new, 0),
                            times(en_number),
                            en_number(factor, 1)
                        ),
                    );
                    flags.push(flag(unit, new_row, Some(old), Some(new), measure, words));
                }
            }
        }
        CheckKind::ShareMove => {
            let points = check.points.unwrap_or(f64::INFINITY);
            for (unit, pair) in &units {
                let (Some(old_row), Some(new_row)) = (pair.last, pair.now) else {
                    continue;
                };
                let (Some(old), Some(new)) = (share(old_row), share(new_row)) else {
                    continue;
                };
                let moved = (new - old).abs();
                if moved > points {
                    let words = (
                        format!(
                            "{}% năm {last} → {}% năm {this} ({} điểm; quy tắc: hơn {} điểm)",
                            vi_number(old, 1),
                            vi_number(new, 1),
                            vi_number(moved, 1),
                            vi_number(points, 1)
                        ),
                        format!(
                            "{}% in {last} → {}% in {this} ({} points; rule: more than {} points)",
                            en_number(old, 1),
                            en_number(new, 1),
                            en_number(moved, 1),
                            en_number(points, 1)
                        ),
                    );
                    flags.push(flag(unit, new_row, Some(old), Some(new), moved, words));
                }
            }
        }
        CheckKind::Outlier => {
            let limit = check.z.unwrap_or(f64::INFINITY);
            let least = check.min_peers.unwrap_or(MIN_PEERS);
            let mut groups: BTreeMap<(&str, Option<&str>), Vec<Member>> = BTreeMap::new();
            for (unit, pair) in &units {
                let Some(row) = pair.now else {
                    continue;
                };
                let value = match check.denominator {
                    Some(_) => share(row),
                    None => row.value.filter(|v| v.is_finite() && *v >= floor),
                };
                if let Some(value) = value {
                    groups
                        .entry((unit.0.as_str(), row.peer_group.as_deref()))
                        .or_default()
                        .push((unit, row, value));
                }
            }
            let percent = if check.denominator.is_some() { "%" } else { "" };
            for ((_, peers), members) in groups {
                if members.len() < least {
                    continue;
                }
                let values: Vec<f64> = members.iter().map(|(_, _, v)| *v).collect();
                let Some((middle, scores)) = modified_z(&values) else {
                    continue;
                };
                let group = peers.map(|p| format!(" ({p})")).unwrap_or_default();
                for ((unit, row, value), z) in members.into_iter().zip(scores) {
                    if z.abs() > limit {
                        let words = (
                            format!(
                                "{}{percent}, trung vị của {} đơn vị cùng nhóm trong tỉnh{group}: {}{percent} (z = {}; \
                                 quy tắc: |z| > {})",
                                vi_number(value, 1),
                                values.len(),
                                vi_number(middle, 1),
                                vi_number(z, 2),
                                vi_number(limit, 1)
                            ),
                            format!(
                                "{}{percent} against a median of {}{percent} among the province's {} peers{group} (z = \
                                 {}; rule: |z| > {})",
                                en_number(value, 1),
                                en_number(middle, 1),
                                values.len(),
                                en_number(z, 2),
                                en_number(limit, 1)
                            ),
                        );
                        flags.push(flag(unit, row, Some(middle), Some(value), z, words));
                    }
                }
            }
        }
        CheckKind::Missing => {
            let reporting: HashSet<&str> = units
                .iter()
                .filter(|(_, pair)| pair.now.is_some())
                .map(|((province, _), _)| province.as_str())
                .collect();
            for (unit, pair) in &units {
                if let (Some(old_row), None) = (pair.last, pair.now)
                    && reporting.contains(unit.0.as_str())
                {
                    let old = old_row.value.unwrap_or(0.0);
                    let words = (
                        format!(
                            "có trong báo cáo năm {last} ({}) nhưng không có trong năm {this}",
                            vi_number(old, 0)
                        ),
                        format!("in the {last} report ({}) but not in {this}'s", en_number(old, 0)),
                    );
                    flags.push(flag(unit, old_row, Some(old), None, 1.0, words));
                }
            }
        }
        CheckKind::Records => {}
    }
    flags
}

/// The flags of a `records` check from a reconciliation's differing schools.
fn records_flags(check: &Check, found: &crate::quality::reconcile::Reconciliation) -> Vec<Flag> {
    found
        .schools
        .iter()
        .map(|school| {
            let figures = |f: &Figures| [f.pupils, f.online_ready, f.digital_record];
            let names_vi = ["học sinh", "đủ điều kiện học trực tuyến", "có hồ sơ số"];
            let names_en = ["pupils", "able to study online", "with a digital record"];
            let (reported, counted) = (figures(&school.reported), figures(&school.counted));
            let differing: Vec<usize> = (0..3).filter(|&i| reported[i] != counted[i]).collect();
            let pairs = |names: [&str; 3], number: fn(f64, usize) -> String| {
                differing
                    .iter()
                    .map(|&i| {
                        format!(
                            "{} {} / {}",
                            names[i],
                            number(reported[i] as f64, 0),
                            number(counted[i] as f64, 0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let worst = differing
                .iter()
                .copied()
                .max_by(|&a, &b| {
                    let gap = |i: usize| (reported[i] - counted[i]).abs() as f64 / counted[i].max(1) as f64;
                    gap(a).total_cmp(&gap(b))
                })
                .unwrap_or(0);
            let tolerance = check.tolerance.unwrap_or_default() * 100.0;
            Flag {
                check_id: check.id.clone(),
                kind: CheckKind::Records,
                school_year: found.school_year,
                province_code: school.province_code.clone(),
                unit: format!("{} · {}", school.school_id, school.level),
                label: Some(school.school_name.clone()).filter(|n| !n.is_empty()),
                before: Some(counted[worst] as f64),
                now: Some(reported[worst] as f64),
                measure: school.difference,
                message_vi: format!(
                    "báo cáo / hồ sơ: {} (lệch {}%; quy tắc: hơn {}%)",
                    pairs(names_vi, vi_number),
                    vi_number(school.difference * 100.0, 1),
                    vi_number(tolerance, 1)
                ),
                message_en: format!(
                    "reported / counted: {} ({}% apart; rule: more than {}%)",
                    pairs(names_en, en_number),
                    en_number(school.difference * 100.0, 1),
                    en_number(tolerance, 1)
                ),
                explanation: None,
            }
        })
        .collect()
}

/// The flags of every check but `records` in a session over the tables, for a school year (and
/// a province).
pub(crate) async fn table_flags<'a>(
    ctx: &SessionContext,
    checks: impl IntoIterator<Item = &'a Check>,
    year: SchoolYear,
    province: Option<&ProvinceCode>,
) -> Result<Vec<Flag>> {
    let mut flags = Vec::new();
    for check in checks {
        flags.extend(check_flags(ctx, check, &[year], province).await?);
    }
    Ok(flags)
}

/// The flags one check raises on the figures of each of `years` (of one province list, see
/// [`Check::unit_values`]; in a province, if given), read in one query; none for a check of
/// records (see [`records_flags`]).
async fn check_flags(
    ctx: &SessionContext,
    check: &Check,
    years: &[SchoolYear],
    province: Option<&ProvinceCode>,
) -> Result<Vec<Flag>> {
    let Some(sql) = check.unit_values(years, province) else {
        return Ok(Vec::new());
    };
    let started = std::time::Instant::now();
    let batches = ctx.sql(&sql).await?.collect().await?;
    let rows = UnitValue::from_batches(&batches)?;
    tracing::debug!(check = %check.id, years = years.len(), seconds = started.elapsed().as_secs_f64(), "check run");
    Ok(years.iter().flat_map(|&year| judge(check, year, &rows)).collect())
}

/// The dry run's warnings: one for each check with flags, the first [`NAMED`] of them said.
pub fn warnings(checks: &[Check], flags: &[Flag]) -> Vec<Warning> {
    checks
        .iter()
        .filter_map(|check| {
            let raised: Vec<&Flag> = flags.iter().filter(|f| f.check_id == check.id).collect();
            if raised.is_empty() {
                return None;
            }
            let said = |text: fn(&Flag) -> &str| {
                let mut named: Vec<String> = raised
                    .iter()
                    .take(NAMED)
                    .map(|f| format!("{}: {}", f.named_unit(), text(f)))
                    .collect();
                if raised.len() > NAMED {
                    named.push("…".to_string());
                }
                named.join("; ")
            };
            Some(Warning {
                rule: check.id.clone(),
                message_vi: format!(
                    "{} ({} đơn vị): {}",
                    check.name_vi,
                    raised.len(),
                    said(|f| &f.message_vi)
                ),
                message_en: format!("{} ({}): {}", check.name_en, raised.len(), said(|f| &f.message_en)),
            })
        })
        .collect()
}

impl Warehouse {
    /// Every check's flags for a school year (in a province, if given), at the tables' latest
    /// versions, by province, then check, then unit; without their explanations (see
    /// [`Warehouse::flags`]).
    pub async fn flags_raised(&self, year: SchoolYear, province: Option<&ProvinceCode>) -> Result<Vec<Flag>> {
        self.flags_raised_by(&[(year, province.cloned())], |_| true).await
    }

    /// [`Warehouse::flags_raised`] on each of `slices` (a school year, in a province if given)
    /// of the checks `wanted` keeps (the others are not run), by school year first: the tables
    /// are opened once, and the checks run side by side on the query runtime.
    async fn flags_raised_by(
        &self,
        slices: &[(SchoolYear, Option<ProvinceCode>)],
        wanted: impl Fn(&Check) -> bool,
    ) -> Result<Vec<Flag>> {
        let metrics = self.metrics()?;
        let checks: Vec<Check> = metrics.checks.iter().filter(|c| wanted(c)).cloned().collect();
        let warehouse = self.clone();
        let ctx = crate::query::engine::run(async move { warehouse.session(&TableVersions::new()).await }).await??;
        // The years of one province and one province list are judged from one query.
        let mut together: BTreeMap<(Option<&ProvinceCode>, &str), Vec<SchoolYear>> = BTreeMap::new();
        for (year, province) in slices {
            together
                .entry((province.as_ref(), province_column(*year)))
                .or_default()
                .push(*year);
        }
        let ctx = &ctx;
        let runs = together.into_iter().flat_map(|((province, _), years)| {
            checks.iter().map(move |check| {
                let (ctx, check, years, province) = (ctx.clone(), check.clone(), years.clone(), province.cloned());
                crate::query::engine::run(async move { check_flags(&ctx, &check, &years, province.as_ref()).await })
            })
        });
        let mut flags = Vec::new();
        for raised in futures::future::try_join_all(runs).await? {
            flags.extend(raised?);
        }
        let records = slices.iter().flat_map(|(year, province)| {
            checks
                .iter()
                .filter(|c| c.kind == CheckKind::Records)
                .map(move |check| async move {
                    let found = self
                        .reconciliation(*year, province.as_ref(), check.tolerance.unwrap_or_default())
                        .await?;
                    Ok::<_, crate::Error>(records_flags(check, &found))
                })
        });
        flags.extend(futures::future::try_join_all(records).await?.into_iter().flatten());
        let order: HashMap<&str, usize> = metrics
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        flags.sort_by(|a, b| {
            (a.school_year, &a.province_code, order.get(a.check_id.as_str()), &a.unit).cmp(&(
                b.school_year,
                &b.province_code,
                order.get(b.check_id.as_str()),
                &b.unit,
            ))
        });
        Ok(flags)
    }

    /// [`Warehouse::flags_raised`], each with its explanation if it has one.
    pub async fn flags(&self, year: SchoolYear, province: Option<&ProvinceCode>) -> Result<Vec<Flag>> {
        self.flags_of(&[(year, province.cloned())], |_| true).await
    }

    /// [`Warehouse::flags`] on each of `slices` (a school year, in a province if given) of the
    /// checks `wanted` keeps (the others are not run), by school year first.
    pub async fn flags_of(
        &self,
        slices: &[(SchoolYear, Option<ProvinceCode>)],
        wanted: impl Fn(&Check) -> bool,
    ) -> Result<Vec<Flag>> {
        let mut flags = self.flags_raised_by(slices, wanted).await?;
        let explained = Explained::new(self.explanations().await?);
        for flag in &mut flags {
            flag.explanation = explained.of(flag).cloned();
        }
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: &str, rule: &str) -> Check {
        let text = format!(
            "id = 'c'\nname_vi = 'c'\nname_en = 'c'\nkind = '{kind}'\ntable = 'school_reports'\nkey = ['school_id']\n{rule}"
        );
        let check: Check = toml::from_str(&text).expect("a check");
        assert!(check.problems().is_empty(), "{:?}", check.problems());
        check
    }

    fn row(year: &str, province: &str, unit: &str, value: f64, base: Option<f64>) -> UnitValue {
        UnitValue {
            school_year: year.to_string(),
            province_code: Some(province.to_string()),
            unit: unit.to_string(),
            label: Some(format!("Trường {unit}")),
            peer_group: Some("primary".to_string()),
            value: Some(value),
            base,
        }
    }

    fn year() -> SchoolYear {
        "2024-2025".parse().expect("year")
    }

    fn flagged(check: &Check, rows: &[UnitValue]) -> Vec<String> {
        judge(check, year(), rows).into_iter().map(|f| f.unit).collect()
    }

    #[test]
    fn a_change_is_flagged_beyond_its_factor_either_way_and_at_or_over_its_floor() {
        let change = check("change", "value = 'sum(students)'\nfactor = 2.0\nfloor = 100");
        let rows = [
            // Exactly doubled: not beyond the factor.
            row("2023-2024", "01", "double", 100.0, None),
            row("2024-2025", "01", "double", 200.0, None),
            // Just past it.
            row("2023-2024", "01", "past", 100.0, None),
            row("2024-2025", "01", "past", 201.0, None),
            // Tenfold, and a fall to a tenth.
            row("2023-2024", "01", "tenfold", 120.0, None),
            row("2024-2025", "01", "tenfold", 1200.0, None),
            row("2023-2024", "01", "fell", 1000.0, None),
            row("2024-2025", "01", "fell", 100.0, None),
            // Tenfold but small: the larger value (90) is under the floor.
            row("2023-2024", "01", "small", 9.0, None),
            row("2024-2025", "01", "small", 90.0, None),
            // At the floor exactly: judged.
            row("2023-2024", "01", "floor", 10.0, None),
            row("2024-2025", "01", "floor", 100.0, None),
            // From nothing.
            row("2023-2024", "01", "from_zero", 0.0, None),
            row("2024-2025", "01", "from_zero", 500.0, None),
            // New this year: nothing to compare.
            row("2024-2025", "01", "new", 5000.0, None),
        ];
        assert_eq!(
            flagged(&change, &rows),
            ["fell", "floor", "from_zero", "past", "tenfold"]
        );
        let flags = judge(&change, year(), &rows);
        let tenfold = flags.iter().find(|f| f.unit == "tenfold").expect("tenfold");
        assert_eq!(
            (tenfold.before, tenfold.now, tenfold.measure),
            (Some(120.0), Some(1200.0), 10.0)
        );
        assert_eq!(
            tenfold.message_en,
            "120 in 2023-2024 → 1,200 in 2024-2025 (10.0×; rule: more than 2.0×)"
        );
        assert_eq!(
            tenfold.message_vi,
            "120 năm 2023-2024 → 1.200 năm 2024-2025 (gấp 10,0 lần; quy tắc: hơn 2,0 lần)"
        );
        assert_eq!(tenfold.named_unit(), "tenfold (Trường tenfold)");
        assert!(
            flags
                .iter()
                .find(|f| f.unit == "from_zero")
                .expect("from zero")
                .measure
                .is_infinite()
        );
    }

    #[test]
    fn a_share_is_flagged_when_it_moves_more_than_its_points_with_enough_behind_it() {
        let moved = check(
            "share_move",
            "numerator = 'sum(students_online_ready)'\ndenominator = 'sum(students)'\npoints = 20\nfloor = 100",
        );
        let rows = [
            // 40% → 60%: exactly 20 points, not more.
            row("2023-2024", "01", "twenty", 400.0, Some(1000.0)),
            row("2024-2025", "01", "twenty", 600.0, Some(1000.0)),
            // 40% → 60.1%.
            row("2023-2024", "01", "over", 400.0, Some(1000.0)),
            row("2024-2025", "01", "over", 601.0, Some(1000.0)),
            // 90% → 30%: a fall counts as much.
            row("2023-2024", "01", "fall", 900.0, Some(1000.0)),
            row("2024-2025", "01", "fall", 300.0, Some(1000.0)),
            // 10% → 90% on 50 pupils: under the floor.
            row("2023-2024", "01", "few", 5.0, Some(50.0)),
            row("2024-2025", "01", "few", 45.0, Some(50.0)),
            // No pupils last year: no share to compare.
            row("2023-2024", "01", "empty", 0.0, Some(0.0)),
            row("2024-2025", "01", "empty", 900.0, Some(1000.0)),
        ];
        assert_eq!(flagged(&moved, &rows), ["fall", "over"]);
        let fall = judge(&moved, year(), &rows)
            .into_iter()
            .find(|f| f.unit == "fall")
            .expect("fall");
        assert_eq!((fall.before, fall.now), (Some(90.0), Some(30.0)));
        assert!(
            fall.message_en
                .starts_with("90.0% in 2023-2024 → 30.0% in 2024-2025 (60.0 points"),
            "{}",
            fall.message_en
        );
    }

    #[test]
    fn an_outlier_is_a_unit_far_from_the_peers_of_its_province_and_group() {
        let outlier = check(
            "outlier",
            "numerator = 'sum(students_online_ready)'\ndenominator = 'sum(students)'\nz = 3.5\nfloor = 30",
        );
        // Shares 50, 52, 54, 56, 58 % and one more: median and MAD of the six decide.
        let peers = |last: f64| {
            let mut rows: Vec<UnitValue> = [50.0, 52.0, 54.0, 56.0, 58.0]
                .iter()
                .enumerate()
                .map(|(i, share)| row("2024-2025", "01", &format!("s{i}"), *share, Some(100.0)))
                .collect();
            rows.push(row("2024-2025", "01", "odd", last, Some(100.0)));
            rows
        };
        // Six values 50 52 54 56 58 x (x ≥ 58): median 55, MAD 3 → z = 0.6745 (x − 55) ÷ 3.
        // |z| = 3.5 at x = 55 + 3.5 × 3 ÷ 0.6745 = 70.567…
        assert!(flagged(&outlier, &peers(70.5)).is_empty());
        assert_eq!(flagged(&outlier, &peers(70.6)), ["odd"]);
        assert_eq!(flagged(&outlier, &peers(100.0)), ["odd"]);
        // The same school in another province, or another level, is not its peer.
        let mut apart = peers(50.0);
        apart.push(row("2024-2025", "79", "alone", 100.0, Some(100.0)));
        let mut other_level = row("2024-2025", "01", "upper", 100.0, Some(100.0));
        other_level.peer_group = Some("upper_secondary".into());
        apart.push(other_level);
        assert!(flagged(&outlier, &apart).is_empty());
        // Five peers at most: too few to judge.
        let few: Vec<UnitValue> = peers(100.0).into_iter().skip(1).collect();
        assert_eq!(few.len(), 5);
        assert_eq!(flagged(&outlier, &few), ["odd"]);
        let four: Vec<UnitValue> = peers(100.0).into_iter().skip(2).collect();
        assert!(flagged(&outlier, &four).is_empty());
        // Under the floor of 30 pupils: left out of the group.
        let mut small = peers(50.0);
        small.push(row("2024-2025", "01", "tiny", 29.0, Some(29.0)));
        assert!(flagged(&outlier, &small).is_empty());
    }

    #[test]
    fn a_unit_is_missing_only_from_a_province_that_reported_this_year() {
        let missing = check("missing", "value = 'sum(students)'");
        let rows = [
            row("2023-2024", "01", "kept", 100.0, None),
            row("2024-2025", "01", "kept", 100.0, None),
            row("2023-2024", "01", "gone", 250.0, None),
            // Province 79 has not reported 2024-2025 yet: completeness says so, not this check.
            row("2023-2024", "79", "not_yet", 300.0, None),
        ];
        let flags = judge(&missing, year(), &rows);
        assert_eq!(flags.iter().map(|f| f.unit.as_str()).collect::<Vec<_>>(), ["gone"]);
        assert_eq!((flags[0].before, flags[0].now), (Some(250.0), None));
        assert_eq!(
            flags[0].message_en,
            "in the 2023-2024 report (250) but not in 2024-2025's"
        );
    }

    #[test]
    fn numbers_are_written_the_way_each_language_writes_them() {
        assert_eq!(vi_number(1234567.0, 0), "1.234.567");
        assert_eq!(en_number(1234567.0, 0), "1,234,567");
        assert_eq!(vi_number(93.75, 1), "93,8");
        assert_eq!(en_number(-1234.5, 1), "-1,234.5");
        assert_eq!(vi_number(-0.01, 1), "0,0");
    }

    #[test]
    fn the_modified_z_score_is_that_of_iglewicz_and_hoaglin() {
        // Median 3, deviations 2 1 0 1 97: MAD 1; 0.6745 × 97 = 65.4.
        let (middle, z) = modified_z(&[1.0, 2.0, 3.0, 4.0, 100.0]).expect("spread");
        assert_eq!(middle, 3.0);
        assert!((z[4] - 0.6745 * 97.0).abs() < 1e-9, "{z:?}");
        assert!((z[0] + 0.6745 * 2.0).abs() < 1e-9);
        // More than half the same: the mean absolute deviation (9 ÷ 5 = 1.8) stands in.
        let (_, z) = modified_z(&[5.0, 5.0, 5.0, 5.0, 14.0]).expect("spread");
        assert!((z[4] - 9.0 / (1.253314 * 1.8)).abs() < 1e-9, "{z:?}");
        assert!(modified_z(&[7.0; 6]).is_none());
        assert!(modified_z(&[]).is_none());
    }
}
