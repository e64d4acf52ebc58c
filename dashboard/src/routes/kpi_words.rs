//! How a KPI and its figures are said on a page: its name, target and formula in words, the
//! coverage of a value, a series for a chart, a province's name in the list of its year.

use ingest::{Province, ProvinceRegistry, SchoolYear};
use warehouse::kpi::metrics::{Dimension, Kpi};
use warehouse::tables::rows::KpiRow;

use crate::charts::Point;
use crate::i18n::{Lang, Words};

/// A KPI's name in the page's language.
pub fn kpi_name(kpi: &Kpi, lang: Lang) -> String {
    lang.pick(&kpi.name_vi, &kpi.name_en).to_string()
}

pub fn target_text(kpi: &Kpi, lang: Lang) -> String {
    if kpi.targets.is_empty() {
        return lang
            .pick("theo dõi, không có chỉ tiêu", "tracked, no target")
            .to_string();
    }
    let targets: Vec<String> = kpi
        .targets
        .iter()
        .map(|t| format!("{} {} ({})", t.comparison.symbol(), lang.percent(Some(t.value)), t.year))
        .collect();
    targets.join("; ")
}

pub fn formula(kpi: &Kpi) -> String {
    let filter = kpi.filter.as_deref().map(|f| format!(" WHERE {f}")).unwrap_or_default();
    match &kpi.denominator {
        Some(d) => format!("100 × {} ÷ {d} FROM {}{filter}", kpi.numerator, kpi.table),
        None => format!("{} FROM {}{filter}", kpi.numerator, kpi.table),
    }
}

pub fn coverage_text(row: &KpiRow, lang: Lang) -> String {
    match row.expected {
        Some(expected) => format!(
            "{}/{}",
            lang.number(row.reported as f64, 0),
            lang.number(expected as f64, 0)
        ),
        None => lang.number(row.reported as f64, 0),
    }
}

/// A series by year, for a chart.
pub fn points(years: &[String], rows: &[&KpiRow]) -> Vec<Point> {
    years
        .iter()
        .map(|y| Point {
            label: y.clone(),
            value: rows.iter().find(|r| &r.school_year == y).and_then(|r| r.value),
        })
        .collect()
}

/// The province a code names in `dimension`'s list for `year`.
pub fn province(code: &str, dimension: Dimension, year: &str) -> Option<&'static Province> {
    let registry = ProvinceRegistry::shipped();
    match dimension {
        Dimension::Province2025 => registry.province_2025(code),
        _ => year
            .parse::<SchoolYear>()
            .ok()
            .and_then(|y| registry.list_for(y).iter().find(|p| p.code == code)),
    }
}

/// A province's name in the list of its year (or of 2025), with its code.
pub fn province_name(code: &str, dimension: Dimension, year: &str) -> String {
    province(code, dimension, year).map_or_else(|| code.to_string(), |p| format!("{} ({code})", p.name_vi))
}
