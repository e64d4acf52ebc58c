//! The KPI engine: every KPI of `metrics.toml`, as a ratio of sums, for every unit of every
//! dimension and every school year, with its target, status, trend and coverage.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use ingest::{ProvinceRegistry, SchoolYear};

use crate::kpi::metrics::{Dimension, Kpi, Metrics, Target, Unit};
use crate::query::columns::{number_column, text_column};
use crate::tables::rows::{KpiRow, Status};
use crate::{Error, Result};

/// reported ÷ expected, at most 1; none when nothing was expected.
fn coverage_ratio(reported: i64, expected: Option<i64>) -> Option<f64> {
    expected
        .filter(|e| *e > 0)
        .map(|e| (reported as f64 / e as f64).min(1.0))
}

/// The SQL that computes a KPI for a dimension: one row per (school year, unit) with the sums
/// of the numerator and denominator and the rows behind them.
pub fn kpi_sql(kpi: &Kpi, dimension: Dimension) -> String {
    kpi_sql_in(kpi, dimension, None)
}

/// A condition on `school_year` keeping the given years (all when none are given).
fn years_condition(years: Option<&BTreeSet<SchoolYear>>) -> String {
    match years {
        None => "true".to_string(),
        Some(years) => {
            let listed: Vec<String> = years.iter().map(|y| format!("'{y}'")).collect();
            format!("school_year IN ({})", listed.join(", "))
        }
    }
}

/// [`kpi_sql`] over the given school years only.
fn kpi_sql_in(kpi: &Kpi, dimension: Dimension, years: Option<&BTreeSet<SchoolYear>>) -> String {
    let unit = unit_expression(dimension);
    let join = match dimension {
        Dimension::Region => REGION_JOIN,
        _ => "",
    };
    let denominator = kpi.denominator.as_deref().unwrap_or("NULL");
    format!(
        "SELECT school_year, {unit} AS unit,\n       CAST({} AS DOUBLE) AS numerator,\n       CAST({denominator} AS DOUBLE) AS denominator,\n       count(*) AS row_count\nFROM (SELECT * FROM {} WHERE {}) AS kpi_rows{join}\nGROUP BY school_year, {unit}\nORDER BY school_year, unit",
        kpi.numerator,
        kpi.table,
        rows_condition(kpi.filter.as_deref(), years)
    )
}

/// The unit of a row in a dimension, as SQL over a KPI's rows.
fn unit_expression(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::National => "'VN'",
        Dimension::Region => "kpi_region",
        Dimension::Province => "province_code",
        Dimension::Province2025 => "province_2025_code",
        Dimension::Level => "level",
        Dimension::Ownership => "ownership",
        // Two digits, so that grades sort as numbers.
        Dimension::Grade => "lpad(CAST(grade AS VARCHAR), 2, '0')",
        Dimension::Gender => "gender",
    }
}

/// Gives a KPI's rows their region (by their 2025 province).
const REGION_JOIN: &str = "\nJOIN (SELECT code AS kpi_province, region_code AS kpi_region FROM provinces WHERE valid_to IS NULL) AS kpi_regions\n  ON kpi_province = province_2025_code";

/// The condition on a KPI's rows: its filter, and the school years asked for.
fn rows_condition(filter: Option<&str>, years: Option<&BTreeSet<SchoolYear>>) -> String {
    let filter = filter.unwrap_or("true");
    match years {
        None => filter.to_string(),
        Some(_) => format!("({filter}) AND {}", years_condition(years)),
    }
}

struct SumRow {
    year: SchoolYear,
    unit: String,
    numerator: f64,
    denominator: Option<f64>,
    /// The rows behind the sums.
    rows: i64,
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let started = std::time::Instant::now();
    let frame = ctx.sql(sql).await?;
    let planned = started.elapsed().as_secs_f64();
    let batches = frame.collect().await?;
    tracing::debug!(planned, seconds = started.elapsed().as_secs_f64(), sql, "KPI query");
    Ok(batches)
}

/// KPIs summed by one query: those over the same rows (table, filter and school years).
struct SumsOf<'k> {
    kpis: Vec<&'k Kpi>,
    /// The dimensions each KPI allows (the nation first).
    allowed: Vec<Vec<Dimension>>,
    years: Option<BTreeSet<SchoolYear>>,
}

impl SumsOf<'_> {
    /// Every dimension one of the KPIs allows, each once.
    fn dimensions(&self) -> Vec<Dimension> {
        let mut all: Vec<Dimension> = Vec::new();
        for dimension in self.allowed.iter().flatten() {
            if !all.contains(dimension) {
                all.push(*dimension);
            }
        }
        all
    }
}

/// The SELECT items summing each KPI's numerator and denominator (`kpi_numerator_{i}`,
/// `kpi_denominator_{i}`, as doubles) and counting the rows (`row_count`).
fn sum_columns(kpis: &[&Kpi]) -> Vec<String> {
    let mut columns = Vec::new();
    for (index, kpi) in kpis.iter().enumerate() {
        let denominator = kpi.denominator.as_deref().unwrap_or("NULL");
        columns.push(format!("CAST({} AS DOUBLE) AS kpi_numerator_{index}", kpi.numerator));
        columns.push(format!("CAST({denominator} AS DOUBLE) AS kpi_denominator_{index}"));
    }
    columns.push("count(*) AS row_count".to_string());
    columns
}

/// Each KPI's numerators and denominators, row by row.
type Fractions = Vec<(Vec<Option<f64>>, Vec<Option<f64>>)>;

/// A batch's [`sum_columns`]: each KPI's numerators and denominators, and the rows counted.
fn summed(batch: &RecordBatch, kpis: usize) -> Result<(Fractions, Vec<Option<f64>>)> {
    let column = |name: &str| -> Result<Vec<Option<f64>>> { number_column(batch, batch.schema().index_of(name)?) };
    let fractions = (0..kpis)
        .map(|index| {
            Ok((
                column(&format!("kpi_numerator_{index}"))?,
                column(&format!("kpi_denominator_{index}"))?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok((fractions, column("row_count")?))
}

/// The column of the units of a dimension in a [`sums`] query; none for the nation.
fn unit_column(dimension: Dimension) -> Option<String> {
    (dimension != Dimension::National).then(|| format!("kpi_unit_{dimension}"))
}

/// Sums the KPIs of `of` by every dimension each allows, in one query: one scan of their rows,
/// grouped by GROUPING SETS (a record table of 19 million learners is read once, not once per
/// KPI and dimension). Returns each KPI's sums by dimension, in order of year and unit.
async fn sums(ctx: &SessionContext, of: &SumsOf<'_>) -> Result<Vec<HashMap<Dimension, Vec<SumRow>>>> {
    let mut by_kpi: Vec<HashMap<Dimension, Vec<SumRow>>> = (0..of.kpis.len()).map(|_| HashMap::new()).collect();
    let Some(first) = of.kpis.first() else {
        return Ok(by_kpi);
    };
    let dimensions = of.dimensions();
    let columns: Vec<(Dimension, String)> = dimensions
        .iter()
        .filter_map(|d| unit_column(*d).map(|c| (*d, c)))
        .collect();
    let units: String = columns
        .iter()
        .map(|(d, c)| format!(", {} AS {c}", unit_expression(*d)))
        .collect();
    let mut select: Vec<String> = vec!["school_year".to_string()];
    select.extend(columns.iter().map(|(_, c)| c.clone()));
    select.extend(columns.iter().map(|(_, c)| format!("grouping({c}) AS grouping_{c}")));
    select.extend(sum_columns(&of.kpis));
    let sets: Vec<String> = dimensions
        .iter()
        .map(|d| match unit_column(*d) {
            Some(column) => format!("(school_year, {column})"),
            None => "(school_year)".to_string(),
        })
        .collect();
    let join = match dimensions.contains(&Dimension::Region) {
        true => REGION_JOIN,
        false => "",
    };
    let sql = format!(
        "SELECT {}\nFROM (SELECT *{units} FROM (SELECT * FROM {} WHERE {}) AS kpi_rows{join}) AS kpi_units\nGROUP BY \
         GROUPING SETS ({})",
        select.join(",\n       "),
        first.table,
        rows_condition(first.filter.as_deref(), of.years.as_ref()),
        sets.join(", ")
    );
    for batch in collect(ctx, &sql).await? {
        let column = |name: &str| batch.schema().index_of(name).map_err(Error::from);
        let years = text_column(&batch, column("school_year")?)?;
        let (fractions, counts) = summed(&batch, of.kpis.len())?;
        let mut unit_values = Vec::new();
        for (dimension, name) in &columns {
            let grouped = number_column(&batch, column(&format!("grouping_{name}"))?)?;
            unit_values.push((*dimension, text_column(&batch, column(name)?)?, grouped));
        }
        for row in 0..batch.num_rows() {
            let Some(year) = years[row].as_deref().and_then(|y| y.parse::<SchoolYear>().ok()) else {
                continue;
            };
            // The row's set: the dimension whose column it is grouped by; none, the nation.
            let mut grouped_by = unit_values.iter().filter(|(_, _, grouped)| grouped[row] == Some(0.0));
            let (dimension, unit) = match (grouped_by.next(), grouped_by.next()) {
                (None, _) => (Dimension::National, "VN".to_string()),
                (Some((dimension, units, _)), None) => match &units[row] {
                    Some(unit) => (*dimension, unit.clone()),
                    None => continue,
                },
                (Some(_), Some(_)) => continue,
            };
            for (index, allowed) in of.allowed.iter().enumerate() {
                if !allowed.contains(&dimension) {
                    continue;
                }
                by_kpi[index].entry(dimension).or_default().push(SumRow {
                    year,
                    unit: unit.clone(),
                    numerator: fractions[index].0[row].unwrap_or(0.0),
                    denominator: fractions[index].1[row],
                    rows: counts[row].unwrap_or(0.0) as i64,
                });
            }
        }
    }
    for sums in by_kpi.iter_mut().flat_map(|by_dimension| by_dimension.values_mut()) {
        sums.sort_by(|a, b| (a.year, &a.unit).cmp(&(b.year, &b.unit)));
    }
    Ok(by_kpi)
}

/// Whether a KPI's numerator and denominator are each one plain SUM or COUNT (no DISTINCT, no
/// FILTER): then its sums over a unit are the sums of its sums over the unit's parts, and
/// [`sums_by_parts`] may add them up from the finest parts.
async fn additive(ctx: &SessionContext, kpi: &Kpi) -> Result<bool> {
    use datafusion::logical_expr::{Expr, LogicalPlan};

    fn bare(expr: &Expr) -> &Expr {
        match expr {
            Expr::Alias(alias) => bare(&alias.expr),
            Expr::Cast(cast) => bare(&cast.expr),
            Expr::TryCast(cast) => bare(&cast.expr),
            expr => expr,
        }
    }
    fn one_sum_or_count(plan: &LogicalPlan) -> bool {
        let LogicalPlan::Projection(projection) = plan else {
            return false;
        };
        let ([expr], LogicalPlan::Aggregate(aggregate)) = (projection.expr.as_slice(), projection.input.as_ref())
        else {
            return false;
        };
        let (Expr::Column(_), true, [aggregated]) = (
            bare(expr),
            aggregate.group_expr.is_empty(),
            aggregate.aggr_expr.as_slice(),
        ) else {
            return false;
        };
        match bare(aggregated) {
            Expr::AggregateFunction(function) => {
                matches!(function.func.name(), "sum" | "count")
                    && !function.params.distinct
                    && function.params.filter.is_none()
                    && function.params.order_by.is_empty()
            }
            _ => false,
        }
    }
    for expression in std::iter::once(&kpi.numerator).chain(kpi.denominator.as_ref()) {
        let sql = format!("SELECT {expression} FROM {}", kpi.table);
        let plan = ctx.sql(&sql).await?.into_unoptimized_plan();
        if !one_sum_or_count(&plan) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// [`sums`] for KPIs that are all [`additive`]: one query sums them by the finest parts of every
/// dimension they use (year, province, 2025 province, level, …: thousands of rows however many
/// learners), and each unit's sums are added up from its parts here (a region from its 2025
/// provinces). A plain GROUP BY is several times cheaper than the grouping sets over the rows.
async fn sums_by_parts(ctx: &SessionContext, of: &SumsOf<'_>) -> Result<Vec<HashMap<Dimension, Vec<SumRow>>>> {
    let mut by_kpi: Vec<HashMap<Dimension, Vec<SumRow>>> = (0..of.kpis.len()).map(|_| HashMap::new()).collect();
    let Some(first) = of.kpis.first() else {
        return Ok(by_kpi);
    };
    // The columns of the parts: a region is known by its 2025 provinces.
    let part_of = |dimension: Dimension| match dimension {
        Dimension::Region => Dimension::Province2025,
        dimension => dimension,
    };
    let mut parts: Vec<Dimension> = Vec::new();
    for dimension in of.dimensions() {
        if dimension != Dimension::National && !parts.contains(&part_of(dimension)) {
            parts.push(part_of(dimension));
        }
    }
    let mut select: Vec<String> = vec!["school_year".to_string()];
    select.extend(parts.iter().map(|d| format!("{} AS kpi_part_{d}", unit_expression(*d))));
    select.extend(sum_columns(&of.kpis));
    let grouped: Vec<String> = (1..=parts.len() + 1).map(|n| n.to_string()).collect();
    let sql = format!(
        "SELECT {}\nFROM (SELECT * FROM {} WHERE {}) AS kpi_rows\nGROUP BY {}",
        select.join(",\n       "),
        first.table,
        rows_condition(first.filter.as_deref(), of.years.as_ref()),
        grouped.join(", ")
    );
    let registry = ProvinceRegistry::shipped();
    // (KPI, dimension, year, unit) → numerator, denominator, rows.
    type Key = (usize, Dimension, SchoolYear, String);
    let mut totals: BTreeMap<Key, (f64, Option<f64>, i64)> = BTreeMap::new();
    for batch in collect(ctx, &sql).await? {
        let column = |name: &str| batch.schema().index_of(name).map_err(Error::from);
        let years = text_column(&batch, column("school_year")?)?;
        let (fractions, counts) = summed(&batch, of.kpis.len())?;
        let mut values: HashMap<Dimension, Vec<Option<String>>> = HashMap::new();
        for part in &parts {
            values.insert(*part, text_column(&batch, column(&format!("kpi_part_{part}"))?)?);
        }
        for row in 0..batch.num_rows() {
            let Some(year) = years[row].as_deref().and_then(|y| y.parse::<SchoolYear>().ok()) else {
                continue;
            };
            for (index, allowed) in of.allowed.iter().enumerate() {
                for &dimension in allowed {
                    let part = values.get(&part_of(dimension)).and_then(|v| v[row].as_deref());
                    let unit = match dimension {
                        Dimension::National => Some("VN"),
                        Dimension::Region => part
                            .and_then(|code| registry.province_2025(code))
                            .map(|p| p.region_code.as_str()),
                        _ => part,
                    };
                    let Some(unit) = unit else {
                        continue;
                    };
                    let total = totals
                        .entry((index, dimension, year, unit.to_string()))
                        .or_insert((0.0, None, 0));
                    total.0 += fractions[index].0[row].unwrap_or(0.0);
                    if let Some(denominator) = fractions[index].1[row] {
                        total.1 = Some(total.1.unwrap_or(0.0) + denominator);
                    }
                    total.2 += counts[row].unwrap_or(0.0) as i64;
                }
            }
        }
    }
    for ((index, dimension, year, unit), (numerator, denominator, rows)) in totals {
        by_kpi[index].entry(dimension).or_default().push(SumRow {
            year,
            unit,
            numerator,
            denominator,
            rows,
        });
    }
    Ok(by_kpi)
}

/// Who reported to a KPI, by year: rows by (province as reported, 2025 province).
type Reporters = BTreeMap<SchoolYear, BTreeMap<(String, String), i64>>;

/// Who reported to the KPIs of a table and filter in the given years; none for a national
/// table (it has no provinces).
async fn reporters(ctx: &SessionContext, kpi: &Kpi, years: Option<&BTreeSet<SchoolYear>>) -> Result<Option<Reporters>> {
    let has_provinces = ctx
        .table(kpi.table.as_str())
        .await?
        .schema()
        .has_column_with_unqualified_name("province_2025_code");
    if !has_provinces {
        return Ok(None);
    }
    let sql = format!(
        "SELECT school_year, province_code, province_2025_code, count(*) AS row_count FROM {} WHERE {} GROUP BY 1, 2, \
         3",
        kpi.table,
        rows_condition(kpi.filter.as_deref(), years)
    );
    let mut reporters = Reporters::new();
    for batch in collect(ctx, &sql).await? {
        let years = text_column(&batch, 0)?;
        let codes = text_column(&batch, 1)?;
        let codes_2025 = text_column(&batch, 2)?;
        let counts = number_column(&batch, 3)?;
        for i in 0..batch.num_rows() {
            let Some(year) = years[i].as_deref().and_then(|y| y.parse().ok()) else {
                continue;
            };
            let key = (
                codes[i].clone().unwrap_or_default(),
                codes_2025[i].clone().unwrap_or_default(),
            );
            *reporters.entry(year).or_default().entry(key).or_default() += counts[i].unwrap_or(0.0) as i64;
        }
    }
    Ok(Some(reporters))
}

/// Coverage of one unit: (reported, expected).
fn coverage(reporters: Option<&Reporters>, dimension: Dimension, unit: &str, year: SchoolYear) -> (i64, Option<i64>) {
    let Some(reporters) = reporters else {
        // A national report (content): it is there or not.
        return (1, Some(1));
    };
    let registry = ProvinceRegistry::shipped();
    let now = reporters.get(&year).cloned().unwrap_or_default();
    let before = reporters.get(&SchoolYear::starting(year.start() - 1));
    let same_list = registry.list_for(year).len() == registry.list_for(SchoolYear::starting(year.start() - 1)).len();
    // A code of the previous year, as a code of this year's list.
    let carried = |(code, code_2025): &(String, String)| if same_list { code.clone() } else { code_2025.clone() };
    let region_of = |code_2025: &str| registry.province_2025(code_2025).map(|p| p.region_code.as_str());
    match dimension {
        Dimension::Province | Dimension::Province2025 => {
            let matches = |key: &(String, String), this_year: bool| {
                if dimension == Dimension::Province2025 {
                    key.1 == unit
                } else if this_year {
                    key.0 == unit
                } else {
                    carried(key) == unit
                }
            };
            let reported: i64 = now.iter().filter(|(k, _)| matches(k, true)).map(|(_, n)| n).sum();
            let expected = before.map(|b| b.iter().filter(|(k, _)| matches(k, false)).map(|(_, n)| n).sum());
            (reported, expected)
        }
        _ => {
            let in_scope = |code_2025: &str| dimension != Dimension::Region || region_of(code_2025) == Some(unit);
            let reported: BTreeSet<String> = now.keys().filter(|k| in_scope(&k.1)).map(|k| k.0.clone()).collect();
            let expected = match before {
                Some(before) => {
                    let mut expected: BTreeSet<String> =
                        before.keys().filter(|k| in_scope(&k.1)).map(carried).collect();
                    expected.extend(reported.iter().cloned());
                    expected.len()
                }
                None => registry
                    .list_for(year)
                    .iter()
                    .filter(|p| in_scope(&p.code_2025))
                    .count(),
            };
            (reported.len() as i64, Some(expected as i64))
        }
    }
}

/// Judges one value against a unit's series: the status, the line, the gap, the trend.
pub struct Judge<'a> {
    /// The targets that apply to the unit.
    pub targets: &'a [Target],
    /// The baseline school year.
    pub baseline: Option<SchoolYear>,
    /// At-risk tolerance, in the KPI's unit.
    pub tolerance: f64,
    /// The unit's values by year (all years known).
    pub series: &'a BTreeMap<SchoolYear, Option<f64>>,
}

/// What [`Judge::judge`] finds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judgement {
    /// The target judged.
    pub target: Option<Target>,
    /// The line's value this year.
    pub line_value: Option<f64>,
    /// The status.
    pub status: Option<Status>,
    /// Target minus value.
    pub gap: Option<f64>,
    /// The trend at the target's year.
    pub projected: Option<f64>,
    /// The first year the trend meets the target.
    pub reach_year: Option<SchoolYear>,
}

impl Judge<'_> {
    /// Judges the value of `year`.
    pub fn judge(&self, year: SchoolYear) -> Judgement {
        let mut sorted: Vec<&Target> = self.targets.iter().collect();
        sorted.sort_by_key(|t| t.school_year());
        let target = sorted
            .iter()
            .find(|t| t.school_year() >= year)
            .or(sorted.last())
            .map(|t| (*t).clone());
        let value = self.series.get(&year).copied().flatten();
        let (Some(target), Some(value)) = (target, value) else {
            return Judgement::default();
        };
        let target_year = target.school_year();
        let gap = Some(target.value - value);
        let trend = least_squares(
            self.series
                .range(..=year)
                .filter_map(|(y, v)| v.map(|v| (f64::from(y.end()), v))),
        );
        let projected = trend.map(|(a, b)| a + b * f64::from(target_year.end()));
        let reach_year = if target.comparison.met(value, target.value) {
            Some(year)
        } else {
            trend.and_then(|(a, b)| {
                (b > 0.0)
                    .then(|| {
                        (year.end()..=year.end() + 100)
                            .find(|x| target.comparison.met(a + b * f64::from(*x), target.value))
                    })
                    .flatten()
                    .map(|end| SchoolYear::starting(end - 1))
            })
        };
        let baseline_value = self
            .baseline
            .filter(|b| *b < target_year)
            .and_then(|b| self.series.get(&b).copied().flatten().map(|v| (b, v)));
        let line_value = baseline_value.map(|(b, v)| {
            let span = f64::from(target_year.start() - b.start());
            let done = f64::from((year.start() - b.start()).min(target_year.start() - b.start()));
            v + (target.value - v) * done / span
        });
        let status = if target.comparison.met(value, target.value) {
            Status::Met
        } else if year >= target_year {
            Status::Missed
        } else {
            match line_value {
                None => Status::NoBaseline,
                Some(line) if value >= line => Status::OnTrack,
                Some(line) if value >= line - self.tolerance => Status::AtRisk,
                Some(_) => Status::OffTrack,
            }
        };
        Judgement {
            target: Some(target),
            line_value,
            status: Some(status),
            gap,
            projected,
            reach_year,
        }
    }
}

/// Intercept and slope of the least-squares line through the points; none for fewer than two
/// distinct x.
fn least_squares(points: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let points: Vec<(f64, f64)> = points.collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((mean_y - slope * mean_x, slope))
}

/// The value of a numerator and denominator in a KPI's unit; none for a zero denominator.
pub fn value_of(unit: Unit, numerator: f64, denominator: Option<f64>) -> Option<f64> {
    match unit {
        Unit::Count => Some(numerator),
        Unit::Ratio | Unit::Percent => {
            let denominator = denominator.filter(|d| *d != 0.0)?;
            let ratio = numerator / denominator;
            Some(if unit == Unit::Percent { ratio * 100.0 } else { ratio })
        }
    }
}

/// Computes every KPI for every dimension it allows, in a session with the warehouse's tables
/// and the metrics' views.
pub async fn compute(ctx: &SessionContext, metrics: &Metrics) -> Result<Vec<KpiRow>> {
    let all: Vec<(&Kpi, Option<BTreeSet<SchoolYear>>)> = metrics.kpis.iter().map(|kpi| (kpi, None)).collect();
    compute_all(ctx, &all, &[]).await
}

/// What changed since KPI values were last computed: the school years each table changed in.
pub type Changed = BTreeMap<String, BTreeSet<SchoolYear>>;

/// Brings earlier values (`previous`, of the same metrics) up to date after the changes in
/// `changed`: a KPI is summed again over the school years its tables changed in only (none, for
/// a KPI reading none of them), its other years' sums and coverage taken from `previous`; then
/// every year of it is judged again from its sums (a baseline that changed moves every year's
/// line), so that each value is made the same way as by [`compute`], which it equals.
pub async fn compute_changed(
    ctx: &SessionContext,
    metrics: &Metrics,
    previous: &[KpiRow],
    changed: &Changed,
) -> Result<Vec<KpiRow>> {
    let all: Vec<(&Kpi, Option<BTreeSet<SchoolYear>>)> = metrics
        .kpis
        .iter()
        .map(|kpi| {
            let years: BTreeSet<SchoolYear> = metrics
                .tables_read(&kpi.table)
                .iter()
                .filter_map(|table| changed.get(table))
                .flatten()
                .copied()
                .collect();
            (kpi, Some(years))
        })
        .collect();
    compute_all(ctx, &all, previous).await
}

/// Computes one KPI for every dimension it allows.
pub async fn compute_kpi(ctx: &SessionContext, kpi: &Kpi) -> Result<Vec<KpiRow>> {
    compute_all(ctx, &[(kpi, None)], &[]).await
}

/// Computes KPIs, each over every school year (`None`) or the given years (the others kept from
/// `previous`), summing those over the same rows in one query.
async fn compute_all(
    ctx: &SessionContext,
    kpis: &[(&Kpi, Option<BTreeSet<SchoolYear>>)],
    previous: &[KpiRow],
) -> Result<Vec<KpiRow>> {
    let mut groups: Vec<SumsOf> = Vec::new();
    for (kpi, years) in kpis {
        let same_rows = |of: &SumsOf| {
            of.kpis
                .first()
                .is_some_and(|k| k.table == kpi.table && k.filter == kpi.filter)
                && of.years == *years
        };
        match groups.iter_mut().find(|of| same_rows(of)) {
            Some(of) => {
                of.kpis.push(kpi);
                of.allowed.push(kpi.all_dimensions());
            }
            None => groups.push(SumsOf {
                kpis: vec![kpi],
                allowed: vec![kpi.all_dimensions()],
                years: years.clone(),
            }),
        }
    }
    // The groups are summed side by side: each is a few small queries, mostly planning.
    let assembled = futures::future::try_join_all(groups.iter().map(|of| assemble_group(ctx, of, previous))).await?;
    let mut by_id: HashMap<&str, Vec<KpiRow>> = assembled.into_iter().flatten().collect();
    Ok(kpis
        .iter()
        .flat_map(|(kpi, _)| by_id.remove(kpi.id.as_str()).unwrap_or_default())
        .collect())
}

/// The KPIs of one group of [`compute_all`], each with its rows.
async fn assemble_group<'k>(
    ctx: &SessionContext,
    of: &SumsOf<'k>,
    previous: &[KpiRow],
) -> Result<Vec<(&'k str, Vec<KpiRow>)>> {
    let Some(first) = of.kpis.first() else {
        return Ok(Vec::new());
    };
    // Nothing to sum again: everything is kept.
    let nothing_new = of.years.as_ref().is_some_and(BTreeSet::is_empty);
    let started = std::time::Instant::now();
    let (sums, reporters) = match nothing_new {
        true => ((0..of.kpis.len()).map(|_| HashMap::new()).collect(), None),
        false => {
            // A year's coverage rests on it and the year before: the changed years'
            // coverage and their next years' is counted again, from those years and the
            // ones before.
            let reporter_years = of.years.as_ref().map(|years| {
                years
                    .iter()
                    .flat_map(|y| [SchoolYear::starting(y.start() - 1), *y, y.next()])
                    .collect::<BTreeSet<_>>()
            });
            let mut all_additive = true;
            for kpi in &of.kpis {
                all_additive &= additive(ctx, kpi).await?;
            }
            let sums = match all_additive {
                true => sums_by_parts(ctx, of).await?,
                false => sums(ctx, of).await?,
            };
            (sums, reporters(ctx, first, reporter_years.as_ref()).await?)
        }
    };
    tracing::debug!(table = %first.table, kpis = of.kpis.len(), seconds = started.elapsed().as_secs_f64(), "KPIs summed");
    Ok(of
        .kpis
        .iter()
        .zip(sums)
        .map(|(kpi, sums)| {
            let before: Vec<&KpiRow> = previous.iter().filter(|r| r.kpi_id == kpi.id).collect();
            let only = of.years.as_ref().map(|years| (years, before.as_slice()));
            (kpi.id.as_str(), assemble(kpi, sums, reporters.as_ref(), only))
        })
        .collect())
}

/// A value kept from an earlier computation, as the sums it was made of (a withheld value keeps
/// its group under the minimum).
fn kept_sums(row: &KpiRow) -> Option<SumRow> {
    Some(SumRow {
        year: row.school_year.parse().ok()?,
        unit: row.unit.clone(),
        numerator: row.numerator.unwrap_or(0.0),
        denominator: row.denominator,
        rows: if row.withheld {
            0
        } else {
            row.people.unwrap_or(MIN_GROUP)
        },
    })
}

/// A KPI's values for every dimension it allows, from its sums (`sums`, fresh) and who
/// reported: every school year, or (`only`) the given years, the others kept from earlier
/// values of the KPI.
fn assemble(
    kpi: &Kpi,
    mut sums: HashMap<Dimension, Vec<SumRow>>,
    reporters: Option<&Reporters>,
    only: Option<(&BTreeSet<SchoolYear>, &[&KpiRow])>,
) -> Vec<KpiRow> {
    // A year's coverage rests on it and the year before: the changed years' coverage and their
    // next years' is counted again.
    let coverage_years: Option<BTreeSet<SchoolYear>> =
        only.map(|(years, _)| years.iter().flat_map(|y| [*y, y.next()]).collect());
    let mut values = Vec::new();
    for dimension in kpi.all_dimensions() {
        let mut rows = sums.remove(&dimension).unwrap_or_default();
        let mut kept_coverage: HashMap<(String, SchoolYear), (i64, Option<i64>)> = HashMap::new();
        if let Some((years, before)) = only {
            for row in before.iter().filter(|r| r.dimension == dimension.as_str()) {
                let Some(sums) = kept_sums(row) else {
                    continue;
                };
                if years.contains(&sums.year) {
                    continue;
                }
                kept_coverage.insert((sums.unit.clone(), sums.year), (row.reported, row.expected));
                rows.push(sums);
            }
            rows.sort_by(|a, b| (a.year, &a.unit).cmp(&(b.year, &b.unit)));
        }
        let mut series: HashMap<&str, BTreeMap<SchoolYear, Option<f64>>> = HashMap::new();
        // A group of fewer than MIN_GROUP people shows nothing of itself, nor weighs in its
        // unit's trend.
        let withheld = |row: &SumRow| kpi.counts_people && row.rows < MIN_GROUP;
        for row in &rows {
            let value = match withheld(row) {
                true => None,
                false => value_of(kpi.unit, row.numerator, row.denominator),
            };
            series.entry(row.unit.as_str()).or_default().insert(row.year, value);
        }
        for row in &rows {
            let judge = Judge {
                targets: kpi.targets_for(dimension, &row.unit),
                baseline: kpi.baseline_year(),
                tolerance: kpi.tolerance,
                series: &series[row.unit.as_str()],
            };
            let judgement = judge.judge(row.year);
            let recounted = coverage_years.as_ref().is_none_or(|years| years.contains(&row.year));
            let kept = kept_coverage.get(&(row.unit.clone(), row.year)).filter(|_| !recounted);
            // A level or an ownership is reported by the provinces that report at all.
            let (reported, expected) = match (kept, dimension) {
                (Some(kept), _) => *kept,
                (None, Dimension::Province | Dimension::Province2025 | Dimension::Region) => {
                    coverage(reporters, dimension, &row.unit, row.year)
                }
                (None, _) => coverage(reporters, Dimension::National, "VN", row.year),
            };
            let target = judgement.target;
            let shown = !withheld(row);
            values.push(KpiRow {
                kpi_id: kpi.id.clone(),
                dimension: dimension.to_string(),
                unit: row.unit.clone(),
                school_year: row.year.to_string(),
                numerator: Some(row.numerator).filter(|_| shown),
                denominator: row.denominator.filter(|_| shown),
                value: value_of(kpi.unit, row.numerator, row.denominator).filter(|_| shown),
                people: (kpi.counts_people && shown).then_some(row.rows),
                withheld: !shown,
                target_year: target.as_ref().map(|t| t.year.clone()),
                target_value: target.as_ref().map(|t| t.value),
                comparison: target.as_ref().map(|t| t.comparison.symbol().to_string()),
                line_value: judgement.line_value,
                status: judgement.status,
                gap: judgement.gap,
                projected: judgement.projected,
                reach_year: judgement.reach_year.map(|y| y.to_string()),
                reported,
                expected,
                coverage: coverage_ratio(reported, expected),
            });
        }
    }
    values
}

/// The fewest people a figure from records may describe: a smaller group's value, numerator
/// and denominator are withheld everywhere (pages, API, `kpi_values`), shown as "< 10".
pub const MIN_GROUP: i64 = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::metrics::Comparison;

    fn year(start: i32) -> SchoolYear {
        SchoolYear::starting(start)
    }

    fn target(value: f64, comparison: Comparison) -> Target {
        Target {
            year: "2024-2025".into(),
            value,
            comparison,
        }
    }

    /// Judges `year` of a series against one 2024-2025 target, baseline 2021-2022, tolerance 5.
    fn judge(series: &[(i32, Option<f64>)], at: i32, target: Target, baseline: Option<i32>) -> Judgement {
        let series: BTreeMap<SchoolYear, Option<f64>> = series.iter().map(|(y, v)| (year(*y), *v)).collect();
        let targets = [target];
        Judge {
            targets: &targets,
            baseline: baseline.map(year),
            tolerance: 5.0,
            series: &series,
        }
        .judge(year(at))
    }

    const AT_LEAST_50: fn() -> Target = || target(50.0, Comparison::AtLeast);

    #[test]
    fn exactly_on_the_line_is_on_track() {
        // Baseline 20 in 2021-2022, target 50 in 2024-2025: the line is 30 in 2022-2023.
        let j = judge(
            &[(2021, Some(20.0)), (2022, Some(30.0))],
            2022,
            AT_LEAST_50(),
            Some(2021),
        );
        assert_eq!(j.line_value, Some(30.0));
        assert_eq!(j.status, Some(Status::OnTrack));
        assert_eq!(j.gap, Some(20.0));
    }

    #[test]
    fn below_the_line_within_tolerance_is_at_risk_beyond_is_off_track() {
        let at_risk = judge(
            &[(2021, Some(20.0)), (2022, Some(25.0))],
            2022,
            AT_LEAST_50(),
            Some(2021),
        );
        assert_eq!(at_risk.status, Some(Status::AtRisk));
        let off = judge(
            &[(2021, Some(20.0)), (2022, Some(24.9))],
            2022,
            AT_LEAST_50(),
            Some(2021),
        );
        assert_eq!(off.status, Some(Status::OffTrack));
    }

    #[test]
    fn exactly_at_target_meets_at_least_but_not_more_than() {
        let series = [(2021, Some(20.0)), (2024, Some(50.0))];
        assert_eq!(
            judge(&series, 2024, AT_LEAST_50(), Some(2021)).status,
            Some(Status::Met)
        );
        let strict = judge(&series, 2024, target(50.0, Comparison::MoreThan), Some(2021));
        assert_eq!(strict.status, Some(Status::Missed));
        let earlier = judge(
            &[(2021, Some(20.0)), (2023, Some(50.0))],
            2023,
            target(50.0, Comparison::MoreThan),
            Some(2021),
        );
        assert_eq!(
            earlier.status,
            Some(Status::OnTrack),
            "50 is above the 2023-2024 line of 40"
        );
    }

    #[test]
    fn a_target_year_passed_below_target_is_missed_and_stays_judged_after() {
        let series = [
            (2021, Some(20.0)),
            (2024, Some(49.9)),
            (2025, Some(60.0)),
            (2026, Some(45.0)),
        ];
        assert_eq!(
            judge(&series, 2024, AT_LEAST_50(), Some(2021)).status,
            Some(Status::Missed)
        );
        assert_eq!(
            judge(&series, 2025, AT_LEAST_50(), Some(2021)).status,
            Some(Status::Met)
        );
        assert_eq!(
            judge(&series, 2026, AT_LEAST_50(), Some(2021)).status,
            Some(Status::Missed)
        );
    }

    #[test]
    fn no_baseline_value_means_no_line() {
        let j = judge(&[(2022, Some(30.0))], 2022, AT_LEAST_50(), Some(2021));
        assert_eq!(j.status, Some(Status::NoBaseline));
        assert_eq!(j.line_value, None);
        let none = judge(&[(2022, Some(30.0))], 2022, AT_LEAST_50(), None);
        assert_eq!(none.status, Some(Status::NoBaseline));
    }

    #[test]
    fn zero_denominator_gives_no_value_and_no_status() {
        assert_eq!(value_of(Unit::Percent, 0.0, Some(0.0)), None);
        assert_eq!(value_of(Unit::Percent, 5.0, None), None);
        assert_eq!(value_of(Unit::Percent, 1.0, Some(4.0)), Some(25.0));
        assert_eq!(value_of(Unit::Ratio, 1.0, Some(4.0)), Some(0.25));
        assert_eq!(value_of(Unit::Count, 7.0, None), Some(7.0));
        let j = judge(&[(2021, Some(20.0)), (2022, None)], 2022, AT_LEAST_50(), Some(2021));
        assert_eq!(j, Judgement::default());
    }

    #[test]
    fn the_trend_projects_the_target_year_and_when_it_is_reached() {
        let series = [(2021, Some(20.0)), (2022, Some(30.0)), (2023, Some(40.0))];
        let j = judge(&series, 2023, AT_LEAST_50(), Some(2021));
        assert!((j.projected.expect("projection") - 50.0).abs() < 1e-9);
        assert_eq!(j.reach_year, Some(year(2024)));
        let slow = judge(
            &[(2021, Some(20.0)), (2022, Some(22.0)), (2023, Some(24.0))],
            2023,
            AT_LEAST_50(),
            Some(2021),
        );
        assert_eq!(
            slow.reach_year,
            Some(year(2036)),
            "2 points a year from 24 in 2023-2024: 50 in 2036-2037"
        );
        let falling = judge(
            &[(2021, Some(30.0)), (2022, Some(20.0))],
            2022,
            AT_LEAST_50(),
            Some(2021),
        );
        assert_eq!(falling.reach_year, None);
    }
}
