//! What every page shares (language, the frame around the content, formatting helpers), and
//! the overview, catalogue and error pages.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use ingest::ProvinceRegistry;
use warehouse::kpi::metrics::{Dimension, Kpi};
use warehouse::tables::rows::{KpiRow, Status};

use super::error::AppError;
use super::kpi_page::{ShadeLegend, province_areas};
use super::kpi_words::{coverage_text, formula, kpi_name, points, target_text};
use super::page::{Chrome, PageLang, PageRequest, pick_year};
use crate::AppState;
use crate::charts::{self};
use crate::i18n::Words;

/// The overview and the KPI catalogue.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/catalogue", get(catalogue))
}

/// A card of the overview.
pub struct Card {
    id: String,
    name: String,
    value: String,
    status: String,
    colour: String,
    progress: u32,
    target: String,
    sparkline: String,
    coverage: String,
}

/// A link from the overview: a region or a KPI, by its code and name.
pub struct Link {
    code: String,
    name: String,
}

/// `/`: every KPI as a card for one school year.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    years: Vec<String>,
    year: String,
    cards: Vec<Card>,
    /// KPIs with no figure in any year yet (the record-based ones before records are loaded),
    /// named below the cards rather than shown as empty cards.
    without_figures: Vec<Link>,
    /// The map of one KPI by province.
    map: Option<OverviewMap>,
    regions: Vec<Link>,
}

/// The overview's map: the KPI picked (`?map=`, device access by default) by province.
pub struct OverviewMap {
    id: String,
    name: String,
    /// The KPIs with figures by province, to pick from.
    choices: Vec<Link>,
    svg: String,
    /// The shades, when the KPI is shaded by value.
    legend: Option<ShadeLegend>,
}

/// The KPI the overview's map shows when none is asked for: device access, one of the three
/// figures the plan's dashboard exists for.
const OVERVIEW_MAP_KPI: &str = "records_device_access";

pub async fn overview(page: PageRequest) -> Response {
    page.respond(overview_page(&page))
}

fn overview_page(page: &PageRequest) -> Result<OverviewPage, AppError> {
    let (figures, query, lang) = (&page.figures, &page.query, page.lang);
    let metrics = page.state.warehouse.metrics()?;
    let years = figures.years();
    let year = pick_year(&years, query.year.as_deref())?;
    let mut series: BTreeMap<&str, Vec<&KpiRow>> = BTreeMap::new();
    for row in figures.all(Dimension::National) {
        series.entry(row.kpi_id.as_str()).or_default().push(row);
    }
    let (mut cards, mut without_figures) = (Vec::new(), Vec::new());
    for kpi in &metrics.kpis {
        let history = series.get(kpi.id.as_str()).cloned().unwrap_or_default();
        if history.is_empty() {
            without_figures.push(Link {
                code: kpi.id.clone(),
                name: kpi_name(kpi, lang),
            });
            continue;
        }
        let current = history.iter().find(|r| r.school_year == year);
        let status = current.and_then(|r| r.status);
        let value = current.and_then(|r| r.value);
        let progress = match (value, current.and_then(|r| r.target_value)) {
            (Some(v), Some(t)) if t > 0.0 => ((v / t) * 100.0).clamp(0.0, 100.0) as u32,
            (Some(v), None) => v.clamp(0.0, 100.0) as u32,
            _ => 0,
        };
        cards.push(Card {
            id: kpi.id.clone(),
            name: kpi_name(kpi, lang),
            value: lang.figure(kpi.unit, current.copied()),
            status: lang.status(status).to_string(),
            colour: charts::status_css(status),
            progress,
            target: target_text(kpi, lang),
            sparkline: charts::sparkline(&points(&years, &history), status).map_err(AppError::internal)?,
            coverage: current.map(|r| coverage_text(r, lang)).unwrap_or_default(),
        });
    }
    let map = overview_map(page, &metrics.kpis, &year)?;
    let regions = ProvinceRegistry::shipped()
        .regions
        .iter()
        .map(|r| Link {
            code: r.code.clone(),
            name: lang.pick(&r.name_vi, &r.name_en).to_string(),
        })
        .collect();
    Ok(OverviewPage {
        chrome: page.chrome(),
        years,
        year,
        cards,
        without_figures,
        map,
        regions,
    })
}

/// The map of the KPI asked for by `?map=` (else device access, else the first KPI with
/// figures by province) in `year`, each province in its status colour.
fn overview_map(page: &PageRequest, kpis: &[Kpi], year: &str) -> Result<Option<OverviewMap>, AppError> {
    let (figures, lang) = (&page.figures, page.lang);
    let choices: Vec<&Kpi> = kpis
        .iter()
        .filter(|k| !figures.rows(&k.id, Dimension::Province).is_empty())
        .collect();
    let asked = page.query.map.as_deref().unwrap_or(OVERVIEW_MAP_KPI);
    let Some(kpi) = choices.iter().find(|k| k.id == asked).or(choices.first()) else {
        return Ok(None);
    };
    let in_year: Vec<&KpiRow> = figures
        .rows(&kpi.id, Dimension::Province)
        .into_iter()
        .filter(|r| r.school_year == year)
        .collect();
    let href = |code: &str| format!("/province/{code}?year={year}&list=province");
    let areas = province_areas(kpi, Dimension::Province, year, &in_year, lang, &href);
    Ok(Some(OverviewMap {
        id: kpi.id.clone(),
        name: kpi_name(kpi, lang),
        choices: choices
            .iter()
            .map(|k| Link {
                code: k.id.clone(),
                name: kpi_name(k, lang),
            })
            .collect(),
        svg: charts::map::boundary_map(areas.list, &areas.areas, lang)
            .map_err(AppError::internal)?
            .svg,
        legend: areas.legend,
    }))
}

/// An entry of the catalogue.
pub struct CatalogueEntry {
    id: String,
    name: String,
    description: String,
    formula: String,
    unit: String,
    target: String,
    source: String,
}

/// `/catalogue`: every KPI's formula, unit, targets and source.
#[derive(Template)]
#[template(path = "catalogue.html")]
pub struct CataloguePage {
    chrome: Chrome,
    entries: Vec<CatalogueEntry>,
}

pub async fn catalogue(page: PageRequest) -> Response {
    page.respond(catalogue_page(&page))
}

fn catalogue_page(page: &PageRequest) -> Result<CataloguePage, AppError> {
    let lang = page.lang;
    let metrics = page.state.warehouse.metrics()?;
    Ok(CataloguePage {
        chrome: page.chrome(),
        entries: metrics
            .kpis
            .iter()
            .map(|kpi| CatalogueEntry {
                id: kpi.id.clone(),
                name: kpi_name(kpi, lang),
                description: lang.pick(&kpi.description_vi, &kpi.description_en).to_string(),
                formula: formula(kpi),
                unit: lang.unit(kpi.unit).to_string(),
                target: target_text(kpi, lang),
                source: kpi.source.clone(),
            })
            .collect(),
    })
}

pub async fn not_found(PageLang(lang): PageLang, headers: HeaderMap, uri: Uri) -> Response {
    let error = AppError::NotFound(format!("{} {}", lang.pick("Không có trang", "No page"), uri.path()));
    super::page::answer_error(error, &headers, &uri)
}
