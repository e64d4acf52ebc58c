//! `metrics.toml`: the KPIs of Decision 131 as data, and the check that every one of them can be
//! computed before anything starts.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ingest::{ProvinceRegistry, SchoolYear};
use serde::Deserialize;

use crate::quality::checks::Check;
use crate::{Error, Result};

/// The metrics file shipped with khoso.
pub const BUILT_IN: &str = include_str!("../../../metrics.toml");

/// How a KPI's value is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// 100 × numerator ÷ denominator.
    Percent,
    /// numerator ÷ denominator.
    Ratio,
    /// The numerator alone (no denominator).
    Count,
}

/// How a value is compared with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Comparison {
    /// At least the target.
    #[serde(rename = ">=")]
    AtLeast,
    /// More than the target.
    #[serde(rename = ">")]
    MoreThan,
}

impl Comparison {
    /// Whether `value` meets `target`.
    pub fn met(self, value: f64, target: f64) -> bool {
        match self {
            Comparison::AtLeast => value >= target,
            Comparison::MoreThan => value > target,
        }
    }

    /// The symbol, as written in the file.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => ">=",
            Comparison::MoreThan => ">",
        }
    }
}

/// What a KPI may be split by (every KPI has the national value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The whole country.
    National,
    /// The six socio-economic regions (of the 2025 provinces).
    Region,
    /// Provinces as reported (63 codes up to 2024-2025, 34 from 2025-2026).
    Province,
    /// The 34 provinces of 1 July 2025, earlier years rolled up across the merger.
    #[serde(rename = "province_2025")]
    Province2025,
    /// School level.
    Level,
    /// Public or private.
    Ownership,
    /// Grade (1–12), from learner records.
    Grade,
    /// Gender, from learner records.
    Gender,
}

impl Dimension {
    /// Every dimension, national first.
    pub const ALL: [Dimension; 8] = [
        Self::National,
        Self::Region,
        Self::Province,
        Self::Province2025,
        Self::Level,
        Self::Ownership,
        Self::Grade,
        Self::Gender,
    ];

    /// Its name, as written in metrics.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::National => "national",
            Self::Region => "region",
            Self::Province => "province",
            Self::Province2025 => "province_2025",
            Self::Level => "level",
            Self::Ownership => "ownership",
            Self::Grade => "grade",
            Self::Gender => "gender",
        }
    }

    /// The column of the KPI's table the dimension needs.
    fn required_column(self) -> Option<&'static str> {
        match self {
            Self::National => None,
            Self::Region | Self::Province2025 => Some("province_2025_code"),
            Self::Province => Some("province_code"),
            Self::Level => Some("level"),
            Self::Ownership => Some("ownership"),
            Self::Grade => Some("grade"),
            Self::Gender => Some("gender"),
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dimension {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| {
            Error::Sql(format!(
                "unknown dimension {s:?}: use national, region, province, province_2025, level, ownership, grade or \
                 gender"
            ))
        })
    }
}

/// A target: a value to reach by a school year.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The school year the target is judged on (the 2025 targets on 2024-2025).
    pub year: String,
    /// The value to reach, in the KPI's unit.
    pub value: f64,
    /// `>=` or `>`.
    pub comparison: Comparison,
}

impl Target {
    /// The school year, parsed (checked at load).
    pub fn school_year(&self) -> SchoolYear {
        self.year.parse().unwrap_or(SchoolYear::starting(0))
    }
}

/// A declared view: a name other KPIs can use as their table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewDef {
    /// SQL name.
    pub name: String,
    /// Meaning, in Vietnamese.
    pub description_vi: String,
    /// Meaning, in English.
    pub description_en: String,
    /// The SELECT that defines it.
    pub sql: String,
}

/// One KPI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kpi {
    /// Stable identifier.
    pub id: String,
    /// Name, in Vietnamese.
    pub name_vi: String,
    /// Name, in English.
    pub name_en: String,
    /// What it measures, in Vietnamese.
    pub description_vi: String,
    /// What it measures, in English.
    pub description_en: String,
    /// The clause of the decision it tracks, quoted.
    pub source: String,
    /// Percent, ratio or count.
    pub unit: Unit,
    /// The table or view it is computed over.
    pub table: String,
    /// SQL aggregate expression of the numerator.
    pub numerator: String,
    /// SQL aggregate expression of the denominator (not for counts).
    pub denominator: Option<String>,
    /// SQL condition on the table's rows.
    pub filter: Option<String>,
    /// Dimensions it may be split by besides national.
    pub dimensions: Vec<Dimension>,
    /// The school year the straight line to the target starts from.
    pub baseline: Option<String>,
    /// Targets, by school year.
    pub targets: Vec<Target>,
    /// Targets a province adopted for itself, by province code.
    #[serde(default)]
    pub province_targets: BTreeMap<String, Vec<Target>>,
    /// How far below the line a value may be and still be "at risk" rather than "off track",
    /// in the KPI's unit.
    pub tolerance: f64,
    /// The id of the KPI that measures the same thing from the schools' own reports (for a KPI
    /// computed from records): the KPI pages show the two side by side.
    pub reported_as: Option<String>,
    /// Whether the KPI counts people from records (its table, or a view it reads, is a record
    /// table): values of groups under [`crate::kpi::compute::MIN_GROUP`] people are withheld. Found when
    /// the file is loaded, not written in it.
    #[serde(skip)]
    pub counts_people: bool,
    /// The first school year whose reports have every report column the KPI names, when one
    /// of them was added to its report kind later (its schema's `from`): the KPI counts the
    /// rows of that year on, and its baseline cannot be earlier. Found when the file is loaded.
    #[serde(skip)]
    pub reported_from: Option<SchoolYear>,
}

impl Kpi {
    /// Every dimension this KPI is computed for, national first.
    pub fn all_dimensions(&self) -> Vec<Dimension> {
        let mut all = vec![Dimension::National];
        all.extend(self.dimensions.iter().copied().filter(|d| *d != Dimension::National));
        all
    }

    /// The baseline school year, parsed (checked at load).
    pub fn baseline_year(&self) -> Option<SchoolYear> {
        self.baseline.as_deref().and_then(|y| y.parse().ok())
    }

    /// The targets that apply to a unit: a province's own, else the KPI's.
    pub fn targets_for(&self, dimension: Dimension, unit: &str) -> &[Target] {
        match dimension {
            Dimension::Province | Dimension::Province2025 => self
                .province_targets
                .get(unit)
                .map_or(self.targets.as_slice(), Vec::as_slice),
            _ => &self.targets,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    #[serde(default, rename = "view")]
    views: Vec<ViewDef>,
    #[serde(rename = "kpi")]
    kpis: Vec<Kpi>,
    #[serde(default, rename = "check")]
    checks: Vec<Check>,
}

/// One mistake in a metrics file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsProblem {
    /// The KPI or view it is in (none for the file as a whole).
    pub item: Option<String>,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MetricsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{item}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// The checked KPIs and views.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// SHA-256 of the file's text: KPI results computed under other metrics are stale.
    pub fingerprint: String,
    /// Declared views, in file order.
    pub views: Vec<ViewDef>,
    /// KPIs, in file order.
    pub kpis: Vec<Kpi>,
    /// Plausibility checks, in file order.
    pub checks: Vec<Check>,
}

impl Metrics {
    /// Parses and checks a metrics file: every mistake found, each naming its KPI and field.
    pub async fn load(text: &str) -> std::result::Result<Self, Vec<MetricsProblem>> {
        let file: MetricsFile = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |span| span.start.min(text.len()));
            let line = text[..start].lines().count().max(1);
            vec![MetricsProblem {
                item: item_at(text, start),
                field: format!("line {line}"),
                message: e.message().trim().to_string(),
            }]
        })?;
        let mut metrics = Metrics {
            fingerprint: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            views: file.views,
            kpis: file.kpis,
            checks: file.checks,
        };
        for index in 0..metrics.kpis.len() {
            metrics.kpis[index].counts_people = metrics.reads_people(&metrics.kpis[index].table);
            metrics.kpis[index].reported_from = metrics.reported_from(&metrics.kpis[index]);
        }
        let problems = metrics.check().await;
        for kpi in &mut metrics.kpis {
            if let Some(year) = kpi.reported_from {
                let from = format!("school_year >= '{year}'");
                kpi.filter = Some(match &kpi.filter {
                    Some(filter) => format!("({filter}) AND {from}"),
                    None => from,
                });
            }
        }
        if problems.is_empty() {
            Ok(metrics)
        } else {
            Err(problems)
        }
    }

    /// Whether a table, or a declared view, reads a table of people (learner or teacher records).
    fn reads_people(&self, table: &str) -> bool {
        self.tables_read(table).iter().any(|name| {
            ingest::ReportKind::ALL
                .into_iter()
                .any(|k| k.holds_people() && crate::fact_table(k) == name)
        })
    }

    /// See [`Kpi::reported_from`].
    fn reported_from(&self, kpi: &Kpi) -> Option<SchoolYear> {
        let tables = self.tables_read(&kpi.table);
        let named: BTreeSet<String> = [Some(&kpi.numerator), kpi.denominator.as_ref(), kpi.filter.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|sql| sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            .map(str::to_ascii_lowercase)
            .collect();
        ingest::ReportKind::ALL
            .into_iter()
            .filter(|kind| tables.contains(crate::fact_table(*kind)))
            .flat_map(|kind| kind.schema().columns.iter())
            .filter(|column| named.contains(&column.name))
            .filter_map(|column| column.from)
            .max()
    }

    /// The catalogue's tables a table or a declared view reads: itself, or those its SQL names,
    /// through the views it names.
    pub fn tables_read(&self, table: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut pending = vec![table.to_ascii_lowercase()];
        let mut seen = BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if crate::tables::catalogue::entry(&name).is_some() {
                found.insert(name);
            } else if let Some(view) = self.views.iter().find(|v| v.name.eq_ignore_ascii_case(&name)) {
                pending.extend(
                    view.sql
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|word| !word.is_empty())
                        .map(str::to_ascii_lowercase),
                );
            }
        }
        found
    }

    /// The KPI with this id.
    pub fn kpi(&self, id: &str) -> Option<&Kpi> {
        self.kpis.iter().find(|k| k.id == id)
    }

    /// Registers the declared views in a session that has the warehouse's tables.
    pub async fn register_views(&self, ctx: &SessionContext) -> Result<()> {
        for view in &self.views {
            let frame = ctx
                .sql(&view.sql)
                .await
                .map_err(|e| Error::Sql(format!("view {}: {e}", view.name)))?;
            ctx.register_table(view.name.as_str(), frame.into_view())?;
        }
        Ok(())
    }

    async fn check(&self) -> Vec<MetricsProblem> {
        let mut problems = Vec::new();
        let mut problem = |item: &str, field: &str, message: String| {
            problems.push(MetricsProblem {
                item: Some(item.to_string()),
                field: field.to_string(),
                message,
            })
        };
        let ctx = match schema_session().await {
            Ok(ctx) => ctx,
            Err(e) => {
                problem("metrics", "session", e.to_string());
                return problems;
            }
        };
        let mut names = HashSet::new();
        for view in &self.views {
            if !names.insert(view.name.clone()) || ctx.table_exist(view.name.as_str()).unwrap_or(false) {
                problem(&view.name, "name", "a table or view of that name already exists".into());
                continue;
            }
            match ctx.sql(&view.sql).await {
                Ok(frame) => {
                    if let Err(e) = ctx.register_table(view.name.as_str(), frame.into_view()) {
                        problem(&view.name, "sql", e.to_string());
                    }
                }
                Err(e) => problem(&view.name, "sql", first_line(&e.to_string())),
            }
        }

        let mut ids = HashSet::new();
        for kpi in &self.kpis {
            let id = kpi.id.as_str();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                problem(id, "id", "an id is letters, digits and _ only".into());
            }
            if !ids.insert(id) {
                problem(id, "id", "another KPI has the same id".into());
            }
            for (field, text) in [
                ("name_vi", &kpi.name_vi),
                ("name_en", &kpi.name_en),
                ("source", &kpi.source),
            ] {
                if text.trim().is_empty() {
                    problem(id, field, "must not be empty".into());
                }
            }
            let columns = match ctx.table(kpi.table.as_str()).await {
                Ok(frame) => frame
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<HashSet<_>>(),
                Err(_) => {
                    problem(id, "table", format!("no table or view {:?}", kpi.table));
                    continue;
                }
            };
            let filter = kpi.filter.as_deref().unwrap_or("true");
            if let Err(e) = plan(&ctx, &format!("SELECT 1 FROM {} WHERE ({filter})", kpi.table)).await {
                problem(id, "filter", e);
                continue;
            }
            let mut expressions = vec![("numerator", kpi.numerator.as_str())];
            match (&kpi.denominator, kpi.unit) {
                (Some(denominator), Unit::Percent | Unit::Ratio) => expressions.push(("denominator", denominator)),
                (None, Unit::Count) => {}
                (Some(_), Unit::Count) => problem(id, "denominator", "a count has no denominator".into()),
                (None, _) => problem(id, "denominator", "a percent or ratio needs a denominator".into()),
            }
            for (field, expression) in expressions {
                // Grouped by school year, a non-aggregate expression fails to plan.
                let sql = format!(
                    "SELECT school_year, CAST(({expression}) AS DOUBLE) FROM {} WHERE ({filter}) GROUP BY school_year",
                    kpi.table
                );
                if let Err(e) = plan(&ctx, &sql).await {
                    problem(id, field, e);
                }
            }
            if !columns.contains("school_year") {
                problem(id, "table", format!("{} has no school_year column", kpi.table));
            }
            for dimension in &kpi.dimensions {
                if let Some(column) = dimension.required_column()
                    && !columns.contains(column)
                {
                    problem(
                        id,
                        "dimensions",
                        format!("{dimension} needs column {column}, which {} lacks", kpi.table),
                    );
                }
            }
            let baseline = match &kpi.baseline {
                Some(text) => match text.parse::<SchoolYear>() {
                    Ok(year) => Some(year),
                    Err(e) => {
                        problem(id, "baseline", format!("{text:?}: {e}"));
                        None
                    }
                },
                None => None,
            };
            if let Some(from) = kpi.reported_from {
                match baseline {
                    Some(baseline) if baseline < from => problem(
                        id,
                        "baseline",
                        format!(
                            "{baseline} is before {from}, the first school year whose reports have the columns it \
                             reads: use baseline = \"{from}\" or later"
                        ),
                    ),
                    None if !kpi.targets.is_empty() => problem(
                        id,
                        "baseline",
                        format!(
                            "it reads a column reported from {from} on: give it baseline = \"{from}\" (or later) to \
                             measure its targets from"
                        ),
                    ),
                    _ => {}
                }
            }
            let all_targets = kpi
                .targets
                .iter()
                .map(|t| ("targets", t))
                .chain(kpi.province_targets.values().flatten().map(|t| ("province_targets", t)));
            let mut seen_years = HashSet::new();
            for (field, target) in all_targets {
                match target.year.parse::<SchoolYear>() {
                    Ok(year) => {
                        if baseline.is_some_and(|b| year <= b) {
                            problem(id, field, format!("target year {year} is not after the baseline"));
                        }
                        if field == "targets" && !seen_years.insert(year) {
                            problem(id, field, format!("two targets for {year}"));
                        }
                    }
                    Err(e) => problem(id, field, format!("{:?}: {e}", target.year)),
                }
                if !target.value.is_finite()
                    || target.value < 0.0
                    || (kpi.unit == Unit::Percent && target.value > 100.0)
                {
                    problem(id, field, format!("target value {} is out of range", target.value));
                }
            }
            let registry = ProvinceRegistry::shipped();
            for code in kpi.province_targets.keys() {
                let known = registry
                    .before_2025
                    .iter()
                    .chain(&registry.from_2025)
                    .any(|p| &p.code == code);
                if !known {
                    problem(id, "province_targets", format!("no province {code:?}"));
                }
            }
            if let Some(other) = &kpi.reported_as
                && (other == &kpi.id || !self.kpis.iter().any(|k| &k.id == other))
            {
                problem(id, "reported_as", format!("no other KPI {other:?}"));
            }
            if !kpi.tolerance.is_finite() || kpi.tolerance < 0.0 {
                problem(id, "tolerance", format!("{} must be 0 or more", kpi.tolerance));
            }
        }
        if self.kpis.is_empty() {
            problem("metrics", "kpi", "the file declares no KPI".into());
        }
        let mut check_ids = HashSet::new();
        for check in &self.checks {
            let id = check.id.as_str();
            if !check_ids.insert(id) {
                problem(id, "id", "another check has the same id".into());
            }
            let found = check.problems();
            for (field, message) in &found {
                problem(id, field, message.clone());
            }
            if !found.is_empty() {
                continue;
            }
            if let Some(table) = &check.table {
                let columns: HashSet<String> = match ctx.table(table.as_str()).await {
                    Ok(frame) => frame.schema().fields().iter().map(|f| f.name().clone()).collect(),
                    Err(_) => {
                        problem(id, "table", format!("no table or view {table:?}"));
                        continue;
                    }
                };
                let lacking: Vec<&str> = ["school_year", "province_code", "province_2025_code"]
                    .into_iter()
                    .filter(|c| !columns.contains(*c))
                    .collect();
                if !lacking.is_empty() {
                    problem(
                        id,
                        "table",
                        format!(
                            "{table} lacks {}: a check compares provinces' school years",
                            lacking.join(", ")
                        ),
                    );
                    continue;
                }
            }
            // Planned for a year of each province list, with and without a province.
            for (year, province) in [("2024-2025", None), ("2025-2026", Some("01"))] {
                let year: SchoolYear = year.parse().expect("a school year");
                let province: Option<ingest::ProvinceCode> = province.map(|p| p.parse().expect("a province code"));
                if let Some(sql) = check.unit_values(&[year], province.as_ref())
                    && let Err(e) = plan(&ctx, &sql).await
                {
                    problem(id, "sql", e);
                    break;
                }
            }
        }
        problems
    }

    /// The catalogue's tables a check reads (the school reports and the learner records for
    /// `records`).
    pub fn check_tables(&self, check: &Check) -> BTreeSet<String> {
        match &check.table {
            Some(table) => self.tables_read(table),
            None => ["school_reports", "learner_records"].map(str::to_string).into(),
        }
    }
}

/// The id (or view name) of the `[[kpi]]` or `[[view]]` block a byte offset falls in.
fn item_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset];
    let block = before
        .rfind("[[kpi]]")
        .max(before.rfind("[[view]]"))
        .max(before.rfind("[[check]]"))?;
    text[block..].lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "id" | "name").then(|| value.trim().trim_matches('"').to_string())
    })
}

async fn plan(ctx: &SessionContext, sql: &str) -> std::result::Result<(), String> {
    match ctx.sql(sql).await {
        Ok(frame) => frame
            .into_optimized_plan()
            .map(|_| ())
            .map_err(|e| first_line(&e.to_string())),
        Err(e) => Err(first_line(&e.to_string())),
    }
}

/// The first line of an engine message, without positions in the SQL we generated around the
/// user's expression (they would point at text the user never wrote).
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    match line.find(" at Line: ") {
        Some(start) => {
            let end = line[start..].find('"').map_or(line.len(), |e| start + e);
            format!("{}{}", &line[..start], &line[end..])
        }
        None => line.to_string(),
    }
}

/// A session with every catalogued table as an empty table of the right schema, to plan
/// expressions against without a data directory; the admin-only tables are refused.
pub async fn schema_session() -> Result<SessionContext> {
    let ctx = SessionContext::new();
    // Views are read by every account: they may read only what everyone may.
    crate::tables::catalogue::read_as(&ctx, crate::people::rights::Role::Analyst)?;
    for table in crate::tables::catalogue::CATALOGUE {
        ctx.register_table(table.name, Arc::new(MemTable::try_new((table.schema)(), vec![vec![]])?))?;
    }
    Ok(ctx)
}
