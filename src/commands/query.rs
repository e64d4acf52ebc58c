//! `khoso sql`, `khoso kpi` (and `kpi explain`), `khoso check-metrics`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use warehouse::kpi::metrics::{Dimension, Metrics};
use warehouse::query::guard::QueryLimits;
use warehouse::{OutputFormat, RecordBatch, TableVersions, Warehouse};

use super::common::{INVALID_INPUT, metrics_source};
use super::intake::parse_years;
use crate::cli::{ExplainArgs, KpiArgs, KpiCommand, SqlArgs, SqlFormat};

pub(super) async fn check_metrics(file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (text, origin) = metrics_source(file)?;
    match Metrics::load(&text).await {
        Ok(metrics) => {
            println!(
                "{origin}: {} KPIs, {} views, all valid",
                metrics.kpis.len(),
                metrics.views.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for problem in &problems {
                println!("{origin}: {problem}");
            }
            Ok(ExitCode::from(INVALID_INPUT))
        }
    }
}

pub(super) async fn sql(warehouse: &Warehouse, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let pins: TableVersions = args.at.into_iter().collect();
    let limits = QueryLimits {
        timeout: std::time::Duration::from_secs(args.timeout),
        ..QueryLimits::default()
    };
    let batches = match warehouse
        .query_limited(&args.query, &pins, &limits, args.role.into())
        .await
    {
        Ok(batches) => batches,
        Err(e) if e.is_input_error() => {
            eprintln!("khoso: {e}");
            return Ok(ExitCode::from(INVALID_INPUT));
        }
        Err(e) => return Err(e.into()),
    };
    print_batches(&batches, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn print_batches(batches: &[RecordBatch], format: SqlFormat) -> anyhow::Result<()> {
    let format = match format {
        SqlFormat::Table => OutputFormat::Table,
        SqlFormat::Csv => OutputFormat::Csv,
        SqlFormat::Json => OutputFormat::Json,
    };
    print!("{}", warehouse::render(batches, format)?);
    if format == OutputFormat::Table {
        println!();
    }
    Ok(())
}

/// A string as an SQL literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub(super) async fn kpi(warehouse: &Warehouse, args: KpiArgs) -> anyhow::Result<ExitCode> {
    if let Some(KpiCommand::Explain(explain)) = args.explain {
        return kpi_explain(warehouse, explain).await;
    }
    let metrics = warehouse.metrics()?;
    if let Some(id) = &args.kpi
        && metrics.kpi(id).is_none()
    {
        let ids: Vec<&str> = metrics.kpis.iter().map(|k| k.id.as_str()).collect();
        eprintln!("khoso: no KPI {id:?}; the KPIs are {}", ids.join(", "));
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    warehouse.ensure_kpis_fresh().await?;
    let dimension = Dimension::from(args.by);
    let mut conditions = vec![format!("dimension = {}", sql_text(dimension.as_str()))];
    if let Some(id) = &args.kpi {
        conditions.push(format!("kpi_id = {}", sql_text(id)));
    }
    if let Some(year) = args.year {
        conditions.push(format!("school_year = {}", sql_text(&year.to_string())));
    }
    if let Some(years) = &args.years {
        let (first, last) = parse_years(years)?;
        conditions.push(format!(
            "school_year BETWEEN {} AND {}",
            sql_text(&first.to_string()),
            sql_text(&last.to_string())
        ));
    }
    // The table is for reading; CSV and JSON keep every column at full precision.
    let columns = match args.format {
        SqlFormat::Table => {
            "kpi_id, unit, school_year, round(value, 1) AS value, target_year, comparison, target_value, status, \
             round(gap, 1) AS gap, round(projected, 1) AS projected, reach_year, \
             reported || '/' || coalesce(CAST(expected AS VARCHAR), '?') AS coverage"
        }
        _ => "*",
    };
    let order: Vec<String> = metrics
        .kpis
        .iter()
        .enumerate()
        .map(|(i, k)| format!("WHEN {} THEN {i}", sql_text(&k.id)))
        .collect();
    let query = format!(
        "SELECT {columns} FROM kpi_values WHERE {} ORDER BY CASE kpi_id {} END, unit, school_year",
        conditions.join(" AND "),
        order.join(" ")
    );
    // The values are materialised: read here, even when the KPIs are computed on a cluster.
    let batches = warehouse.without_cluster().query(&query, &TableVersions::new()).await?;
    print_batches(&batches, args.format)?;
    Ok(ExitCode::SUCCESS)
}

async fn kpi_explain(warehouse: &Warehouse, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let metrics = warehouse.metrics()?;
    let Some(kpi) = metrics.kpi(&args.kpi) else {
        eprintln!("khoso: no KPI {:?}", args.kpi);
        return Ok(ExitCode::from(INVALID_INPUT));
    };
    warehouse.ensure_kpis_fresh().await?;
    let (dimension, unit) = match &args.province {
        Some(code) => (
            Dimension::Province,
            code.parse::<ingest::ProvinceCode>()
                .with_context(|| format!("--province {code:?}"))?
                .to_string(),
        ),
        None => (Dimension::National, "VN".to_string()),
    };
    let pins = TableVersions::new();
    let year = match args.year {
        Some(year) => year.to_string(),
        None => {
            let latest = warehouse
                .query(
                    &format!(
                        "SELECT max(school_year) FROM kpi_values WHERE kpi_id = {}",
                        sql_text(&kpi.id)
                    ),
                    &pins,
                )
                .await?;
            let text = warehouse::render(&latest, OutputFormat::Csv)?;
            text.lines().nth(1).unwrap_or_default().to_string()
        }
    };
    println!("{} — {} / {}", kpi.id, kpi.name_vi, kpi.name_en);
    println!("Nguồn / source: \"{}\"", kpi.source);
    println!("Đơn vị / unit: {dimension} {unit}, năm học / school year {year}\n");
    println!(
        "SQL ({dimension}):\n{}\n",
        warehouse::kpi::compute::kpi_sql(kpi, dimension)
    );
    let figure = warehouse
        .query(
            &format!(
                "SELECT numerator, denominator, value, target_year, comparison, target_value, status, line_value, \
                 projected, reach_year, reported, expected, source_versions FROM kpi_values \
                 WHERE kpi_id = {} AND dimension = {} AND unit = {} AND school_year = {}",
                sql_text(&kpi.id),
                sql_text(dimension.as_str()),
                sql_text(&unit),
                sql_text(&year)
            ),
            &pins,
        )
        .await?;
    if figure.iter().all(|b| b.num_rows() == 0) {
        eprintln!("khoso: {} has no value for {dimension} {unit} in {year}", kpi.id);
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    print_batches(&figure, SqlFormat::Table)?;
    let scope = match &args.province {
        Some(_) => format!(" AND province_code = {}", sql_text(&unit)),
        None => String::new(),
    };
    let submissions = warehouse
        .query(
            &format!(
                "SELECT submission_id, kind, province_code, file_name, sha256, uploaded_by, uploaded_at FROM submissions \
                 WHERE submission_id IN (SELECT DISTINCT submission_id FROM {} WHERE ({}) AND school_year = {}{scope}) \
                 ORDER BY kind, province_code",
                kpi.table,
                kpi.filter.as_deref().unwrap_or("true"),
                sql_text(&year)
            ),
            &pins,
        )
        .await?;
    let count: usize = submissions.iter().map(RecordBatch::num_rows).sum();
    println!("\nCác tệp đứng sau số liệu / the {count} submissions behind it:");
    print_batches(&submissions, SqlFormat::Table)?;
    Ok(ExitCode::SUCCESS)
}
