//! What a validated report would do if committed, shown before it is: its size and totals, the
//! KPI values it would give its province (or the nation, for a national report) next to the
//! values in force and last year's, and warnings that are not errors — a school whose pupils
//! changed by more than half, a KPI that moved by more than 20 points, schools reported last
//! year and missing now.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionContext, cast, col, lit};
use ingest::{ColumnValues, ValidatedReport};
use serde::Serialize;

use crate::intake::reconcile::Warning;
use crate::kpi::metrics::Dimension;
use crate::store::{TableVersions, Warehouse};
use crate::tables::schemas::{fact_schema, fact_table, report_batch};
use crate::{Error, Result};

/// A school whose pupils (or a university whose students) changed by more than this share.
const UNIT_CHANGE: f64 = 0.5;

/// A KPI that moved by more than this many points from last year.
const KPI_MOVE: f64 = 20.0;

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

        // The table as it would be for this province: its other years, and this file.
        let current = SessionContext::new();
        let delta = self.table(table, None).await?;
        delta.update_datafusion_session(&current.state())?;
        let mut frame = current.read_table(crate::tables::scan::DeltaFiles::provider(&delta)?)?;
        if let Some(province) = &report.province_code {
            frame = frame.filter(col("province_code").eq(lit(province.as_str())))?;
        }
        let aligned: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name()))
            .collect();
        let kept = frame.clone().filter(col("school_year").not_eq(lit(year.as_str())))?;
        let mut batches = kept.select(aligned.clone())?.collect().await?;
        let before = frame
            .filter(col("school_year").eq(lit(last_year.as_str())))?
            .select(aligned)?
            .collect()
            .await?;
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
            let values = crate::kpi::compute::compute_kpi(&ctx, kpi).await?;
            let value = |y: &str| {
                values
                    .iter()
                    .find(|r| r.dimension == dimension.as_str() && r.unit == unit && r.school_year == y)
                    .and_then(|r| r.value)
            };
            let now = in_force
                .iter()
                .find(|r| r.kpi_id == kpi.id && r.unit == unit && r.school_year == year)
                .and_then(|r| r.value);
            let preview = PreviewValue {
                kpi_id: kpi.id.clone(),
                unit: unit.clone(),
                with_file: value(&year),
                in_force: now,
                last_year: value(&last_year),
            };
            if preview.with_file.is_none() && preview.in_force.is_none() {
                continue;
            }
            if let (Some(new), Some(old)) = (preview.with_file, preview.last_year)
                && (new - old).abs() > KPI_MOVE
            {
                let vi = |v: f64| format!("{v:.1}").replace('.', ",");
                warnings.push(Warning {
                    rule: "kpi_move",
                    message_vi: format!(
                        "{}: {} năm {last_year} → {} năm {year} (thay đổi hơn {KPI_MOVE} điểm) — kiểm tra lại số liệu",
                        kpi.name_vi,
                        vi(old),
                        vi(new)
                    ),
                    message_en: format!(
                        "{}: {old:.1} in {last_year} → {new:.1} in {year} (moved more than {KPI_MOVE} points) — check the figures",
                        kpi.name_en
                    ),
                });
            }
            kpis.push(preview);
        }
        warnings.extend(unit_warnings(report, &before, &last_year)?);
        if let (ingest::ReportKind::School, Some(province)) = (report.kind, &report.province_code) {
            let counted = self.counted_records(report.school_year, province).await?;
            warnings.extend(crate::intake::reconcile::disagreement(
                &reported_by_school(report),
                &counted,
                false,
            ));
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
fn reported_by_school(report: &ValidatedReport) -> crate::intake::reconcile::BySchool {
    let mut figures = crate::intake::reconcile::BySchool::new();
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

/// Schools (or universities) whose numbers jumped, and those that were there last year and
/// are missing now.
fn unit_warnings(
    report: &ValidatedReport,
    before: &[datafusion::arrow::array::RecordBatch],
    last_year: &str,
) -> Result<Vec<Warning>> {
    let (Some(column), Some(first)) = (unit_column(report), before.first()) else {
        return Ok(Vec::new());
    };
    let before = concat_batches(&first.schema(), before)?;
    let ids = before
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::Internal(format!("{column} is not text")))?;
    let students = before
        .column_by_name("students")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| Error::Internal("students is not a count".into()))?;
    let mut last: HashMap<&str, i64> = HashMap::new();
    for i in 0..before.num_rows() {
        if ids.is_valid(i) {
            *last.entry(ids.value(i)).or_default() += students.value(i);
        }
    }
    let (Some(ColumnValues::Text(new_ids)), Some(ColumnValues::Count(new_students))) =
        (report.column(column), report.column("students"))
    else {
        return Ok(Vec::new());
    };
    let mut now: HashMap<&str, i64> = HashMap::new();
    for (id, count) in new_ids.iter().zip(new_students) {
        if let (Some(id), Some(count)) = (id, count) {
            *now.entry(id).or_default() += count;
        }
    }
    let mut warnings = Vec::new();
    let mut jumped: Vec<String> = now
        .iter()
        .filter_map(|(id, &count)| {
            let &old = last.get(id)?;
            (old > 0 && ((count - old) as f64).abs() > UNIT_CHANGE * old as f64)
                .then(|| format!("{id} ({old} → {count})"))
        })
        .collect();
    jumped.sort();
    if !jumped.is_empty() {
        warnings.push(Warning {
            rule: "unit_change",
            message_vi: format!(
                "Số người học thay đổi hơn 50% so với năm {last_year} ({} đơn vị): {}",
                jumped.len(),
                jumped.join(", ")
            ),
            message_en: format!(
                "Students changed by more than 50% since {last_year} ({}): {}",
                jumped.len(),
                jumped.join(", ")
            ),
        });
    }
    let mut missing: Vec<&str> = last.keys().filter(|id| !now.contains_key(*id)).copied().collect();
    missing.sort();
    if !missing.is_empty() {
        warnings.push(Warning {
            rule: "missing_units",
            message_vi: format!(
                "Đã báo cáo năm {last_year} nhưng không có trong tệp này ({} đơn vị): {}",
                missing.len(),
                missing.join(", ")
            ),
            message_en: format!(
                "Reported in {last_year} but missing from this file ({}): {}",
                missing.len(),
                missing.join(", ")
            ),
        });
    }
    Ok(warnings)
}
