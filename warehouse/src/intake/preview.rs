//! What a validated report would do if committed, shown before it is: its size and totals, the
//! KPI values it would give its province (or the nation, for a national report) next to the
//! values in force and last year's, and warnings that are not errors — the flags the
//! plausibility checks of `metrics.toml` raise on the tables as they would be with the file
//! (see [`crate::quality`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionContext, cast, col, lit};
use ingest::{ColumnValues, ValidatedReport};
use serde::Serialize;

use crate::Result;
use crate::kpi::metrics::Dimension;
use crate::quality::checks::{Check, CheckKind};
use crate::quality::flags::table_flags;
use crate::quality::reconcile::{Warning, disagreement};
use crate::store::{TableVersions, Warehouse};
use crate::tables::schemas::{fact_schema, fact_table, report_batch};

/// A KPI's value with the file, in force now, and last year.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewValue {
    /// The KPI.
    pub kpi_id: String,
    /// The province code, or `VN`.
    pub unit: String,
    /// With this file.
    pub with_file: Option<f64>,
    /// As the warehouse has it now for the same year.
    pub in_force: Option<f64>,
    /// The year before.
    pub last_year: Option<f64>,
}

/// The summary of a dry run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    /// Data rows.
    pub rows: usize,
    /// Distinct schools, institutions or (subject, grade) pairs.
    pub units: usize,
    /// The sum of every count column, in schema order.
    pub totals: Vec<(String, i64)>,
    /// KPI values of the slice's province (or the nation).
    pub kpis: Vec<PreviewValue>,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

/// The column naming a report's unit (school, institution), if it has one.
fn unit_column(report: &ValidatedReport) -> Option<&'static str> {
    ["school_id", "institution_id"]
        .into_iter()
        .find(|c| report.column(c).is_some())
}

impl Warehouse {
    /// The summary of what committing `report` would do. Reads the warehouse; writes nothing.
    pub async fn preview(&self, report: &ValidatedReport) -> Result<Preview> {
        let table = fact_table(report.kind);
        let schema = fact_schema(report.kind);
        let year = report.school_year.to_string();
        let last_year = ingest::SchoolYear::starting(report.school_year.start() - 1).to_string();

        // The table as it would be for this province: its other years, and this file. Last
        // year's rows of provinces merged into it count as its own (see `province_column`).
        let current = SessionContext::new();
        let delta = self.table(table, None).await?;
        delta.update_datafusion_session(&current.state())?;
        let mut frame = current.read_table(crate::tables::scan::DeltaFiles::provider(&delta)?)?;
        if let Some(province) = &report.province_code {
            let place = crate::quality::checks::province_column(report.school_year);
            frame = frame.filter(col(place).eq(lit(province.as_str())))?;
        }
        let aligned: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name()))
            .collect();
        let kept = frame.filter(col("school_year").not_eq(lit(year.as_str())))?;
        let mut batches = kept.select(aligned)?.collect().await?;
        batches.push(report_batch(report, "preview")?);
        let provider = Arc::new(MemTable::try_new(Arc::clone(&schema), vec![batches])?);
        let ctx = self
            .session_with(
                &TableVersions::new(),
                Some((table, provider)),
                None,
                crate::people::rights::Role::Admin,
            )
            .await?;

        let (dimension, unit) = match &report.province_code {
            Some(code) => (Dimension::Province, code.to_string()),
            None => (Dimension::National, "VN".to_string()),
        };
        let metrics = self.metrics()?;
        let (in_force, _) = self.kpi_rows(None, dimension).await?;
        let mut kpis = Vec::new();
        let mut warnings = Vec::new();
        for kpi in metrics.kpis.iter().filter(|k| k.all_dimensions().contains(&dimension)) {
            let in_force_in = |y: &str| {
                in_force
                    .iter()
                    .find(|r| r.kpi_id == kpi.id && r.unit == unit && r.school_year == y)
                    .and_then(|r| r.value)
            };
            // A KPI that does not read the file's table is what it is in force: not computed again.
            let (with_file, before) = match metrics.tables_read(&kpi.table).contains(table) {
                true => {
                    let values = crate::kpi::compute::compute_kpi(&ctx, kpi).await?;
                    let value = |y: &str| {
                        values
                            .iter()
                            .find(|r| r.dimension == dimension.as_str() && r.unit == unit && r.school_year == y)
                            .and_then(|r| r.value)
                    };
                    (value(&year), value(&last_year))
                }
                false => (in_force_in(&year), in_force_in(&last_year)),
            };
            let preview = PreviewValue {
                kpi_id: kpi.id.clone(),
                unit: unit.clone(),
                with_file,
                in_force: in_force_in(&year),
                last_year: before,
            };
            if preview.with_file.is_none() && preview.in_force.is_none() {
                continue;
            }
            kpis.push(preview);
        }
        // The checks that read this file's table, on the tables as they would be with it.
        let checks: Vec<&Check> = metrics
            .checks
            .iter()
            .filter(|c| c.kind != CheckKind::Records && metrics.check_tables(c).contains(table))
            .collect();
        let flags = table_flags(&ctx, checks, report.school_year, report.province_code.as_ref()).await?;
        warnings.extend(crate::quality::flags::warnings(&metrics.checks, &flags));
        if let (ingest::ReportKind::School, Some(province)) = (report.kind, &report.province_code) {
            let records_checks: Vec<&Check> = metrics.checks.iter().filter(|c| c.kind == CheckKind::Records).collect();
            if !records_checks.is_empty() {
                let counted = self.counted_records(report.school_year, province).await?;
                let reported = reported_by_school(report);
                for check in records_checks {
                    warnings.extend(disagreement(check, &reported, &counted, false));
                }
            }
        }

        let units = match unit_column(report) {
            Some(column) => match report.column(column) {
                Some(ColumnValues::Text(ids)) => ids.iter().flatten().collect::<BTreeSet<_>>().len(),
                _ => report.rows,
            },
            None => report.rows,
        };
        let totals = report
            .columns
            .iter()
            .filter_map(|c| match &c.values {
                ColumnValues::Count(values) => Some((c.name.clone(), values.iter().flatten().sum())),
                _ => None,
            })
            .collect();
        Ok(Preview {
            rows: report.rows,
            units,
            totals,
            kpis,
            warnings,
        })
    }
}

/// A school report's pupils, pupils able to study online and with a digital record, by school
/// and level.
fn reported_by_school(report: &ValidatedReport) -> crate::quality::reconcile::BySchool {
    let mut figures = crate::quality::reconcile::BySchool::new();
    let (Some(ColumnValues::Text(schools)), Some(ColumnValues::Text(levels))) =
        (report.column("school_id"), report.column("level"))
    else {
        return figures;
    };
    let count = |name: &str, row: usize| match report.column(name) {
        Some(ColumnValues::Count(values)) => values[row].unwrap_or(0),
        _ => 0,
    };
    for (row, (school, level)) in schools.iter().zip(levels.iter()).enumerate() {
        if let (Some(school), Some(level)) = (school, level) {
            let entry = figures.entry((school.to_string(), level.to_string())).or_default();
            entry.pupils += count("students", row);
            entry.online_ready += count("students_online_ready", row);
            entry.digital_record += count("students_digital_record", row);
        }
    }
    figures
}
