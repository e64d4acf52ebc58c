//! The HTML pages.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use ingest::{ProvinceRegistry, SchoolYear};
use serde::Deserialize;
use warehouse::kpi::KpiRow;
use warehouse::metrics::{Dimension, Kpi};

use super::AppError;
use crate::AppState;
use crate::charts::{self, Bar, Point, TrendGuides};
use crate::i18n::Lang;

/// What every page shows around its content.
pub struct Chrome {
    /// The page's language.
    pub lang: Lang,
    /// When the last accepted file was committed.
    pub as_of: String,
}

/// Query parameters the pages understand.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    year: Option<String>,
    list: Option<String>,
}

/// The language of a request: `?lang=`, else the `lang` cookie, else Vietnamese.
fn language(query: &PageQuery, headers: &HeaderMap) -> Lang {
    if let Some(lang) = query.lang.as_deref().and_then(Lang::from_code) {
        return lang;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("lang="))
        .find_map(Lang::from_code)
        .unwrap_or_default()
}

/// A rendered page; `?lang=` is remembered in a cookie.
fn page(template: &impl Template, query: &PageQuery, lang: Lang) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            if query.lang.is_some()
                && let Ok(cookie) =
                    HeaderValue::from_str(&format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code()))
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => AppError::Internal(e.to_string()).page(lang),
    }
}

async fn chrome(state: &AppState, lang: Lang) -> Result<Chrome, AppError> {
    let batches = state
        .warehouse
        .query(
            "SELECT CAST(max(uploaded_at) AS VARCHAR) AS at FROM submissions",
            &warehouse::TableVersions::new(),
        )
        .await?;
    let csv = warehouse::render(&batches, warehouse::OutputFormat::Csv)?;
    let at = csv.lines().nth(1).unwrap_or("").to_string();
    // "2026-11-29T07:15:28.674246" → "2026-11-29 07:15 UTC"
    let as_of = match at.get(..16) {
        Some(minutes) => format!("{} UTC", minutes.replace('T', " ")),
        None => lang.pick("chưa có số liệu", "no data yet").to_string(),
    };
    Ok(Chrome { lang, as_of })
}

fn kpi_name(kpi: &Kpi, lang: Lang) -> String {
    lang.pick(&kpi.name_vi, &kpi.name_en).to_string()
}

fn target_text(kpi: &Kpi, lang: Lang) -> String {
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

fn formula(kpi: &Kpi) -> String {
    let filter = kpi.filter.as_deref().map(|f| format!(" WHERE {f}")).unwrap_or_default();
    match &kpi.denominator {
        Some(d) => format!("100 × {} ÷ {d} FROM {}{filter}", kpi.numerator, kpi.table),
        None => format!("{} FROM {}{filter}", kpi.numerator, kpi.table),
    }
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

/// `/`: every KPI as a card for one school year.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    years: Vec<String>,
    year: String,
    cards: Vec<Card>,
}

fn coverage_text(row: &KpiRow, lang: Lang) -> String {
    match row.expected {
        Some(expected) => format!(
            "{}/{}",
            lang.number(row.reported as f64, 0),
            lang.number(expected as f64, 0)
        ),
        None => lang.number(row.reported as f64, 0),
    }
}

/// The school years present, and the one asked for (else the latest).
fn pick_year(rows: &[KpiRow], asked: Option<&str>) -> Result<(Vec<String>, String), AppError> {
    let mut years: Vec<String> = rows.iter().map(|r| r.school_year.clone()).collect();
    years.sort();
    years.dedup();
    let year = match asked {
        Some(asked) => {
            let year: SchoolYear = asked
                .parse()
                .map_err(|_| AppError::BadRequest(format!("{asked:?} is not a school year like 2024-2025")))?;
            year.to_string()
        }
        None => years.last().cloned().unwrap_or_default(),
    };
    Ok((years, year))
}

pub async fn overview(State(state): State<AppState>, Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = language(&query, &headers);
    match overview_page(&state, &query, lang).await {
        Ok(page_data) => page(&page_data, &query, lang),
        Err(e) => e.page(lang),
    }
}

async fn overview_page(state: &AppState, query: &PageQuery, lang: Lang) -> Result<OverviewPage, AppError> {
    let metrics = state.warehouse.metrics()?;
    let (rows, _) = state.warehouse.kpi_rows(None, Dimension::National).await?;
    let (years, year) = pick_year(&rows, query.year.as_deref())?;
    let mut series: BTreeMap<&str, Vec<&KpiRow>> = BTreeMap::new();
    for row in &rows {
        series.entry(row.kpi_id.as_str()).or_default().push(row);
    }
    let mut cards = Vec::new();
    for kpi in &metrics.kpis {
        let history = series.get(kpi.id.as_str()).cloned().unwrap_or_default();
        let current = history.iter().find(|r| r.school_year == year);
        let status = current.and_then(|r| r.status.as_deref());
        let points: Vec<Point> = years
            .iter()
            .map(|y| Point {
                label: y.clone(),
                value: history.iter().find(|r| &r.school_year == y).and_then(|r| r.value),
            })
            .collect();
        let value = current.and_then(|r| r.value);
        let progress = match (value, current.and_then(|r| r.target_value)) {
            (Some(v), Some(t)) if t > 0.0 => ((v / t) * 100.0).clamp(0.0, 100.0) as u32,
            (Some(v), None) => v.clamp(0.0, 100.0) as u32,
            _ => 0,
        };
        cards.push(Card {
            id: kpi.id.clone(),
            name: kpi_name(kpi, lang),
            value: lang.percent(value),
            status: lang.status(status).to_string(),
            colour: charts::status_css(status),
            progress,
            target: target_text(kpi, lang),
            sparkline: charts::sparkline(&points, status).map_err(AppError::Internal)?,
            coverage: current.map(|r| coverage_text(r, lang)).unwrap_or_default(),
        });
    }
    Ok(OverviewPage {
        chrome: chrome(state, lang).await?,
        years,
        year,
        cards,
    })
}

/// A row of the KPI page's table.
pub struct TableRow {
    unit: String,
    value: String,
    numerator: String,
    denominator: String,
    status: String,
    colour: String,
    coverage: String,
}

/// `/kpi/{id}`: one KPI in depth.
#[derive(Template)]
#[template(path = "kpi.html")]
pub struct KpiPage {
    chrome: Chrome,
    id: String,
    name: String,
    description: String,
    year: String,
    list: String,
    trend_svg: String,
    bars_svg: String,
    rows: Vec<TableRow>,
    formula: String,
    target: String,
    source: String,
}

/// A province's name in the list of its year (or of 2025).
fn province_name(code: &str, dimension: Dimension, year: &str) -> String {
    let registry = ProvinceRegistry::shipped();
    let province = match dimension {
        Dimension::Province2025 => registry.province_2025(code),
        _ => year
            .parse::<SchoolYear>()
            .ok()
            .and_then(|y| registry.list_for(y).iter().find(|p| p.code == code)),
    };
    province.map_or_else(|| code.to_string(), |p| format!("{} ({code})", p.name_vi))
}

pub async fn kpi(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    if let Some(id) = id.strip_suffix(".csv") {
        return super::api::kpi_csv(&state, id, query.list.as_deref(), lang).await;
    }
    match kpi_page(&state, &id, &query, lang).await {
        Ok(page_data) => page(&page_data, &query, lang),
        Err(e) => e.page(lang),
    }
}

async fn kpi_page(state: &AppState, id: &str, query: &PageQuery, lang: Lang) -> Result<KpiPage, AppError> {
    let metrics = state.warehouse.metrics()?;
    let kpi = metrics
        .kpi(id)
        .ok_or_else(|| AppError::NotFound(format!("{} {id:?}", lang.pick("Không có chỉ tiêu", "No KPI"))))?;
    let (national, _) = state.warehouse.kpi_rows(Some(id), Dimension::National).await?;
    let (years, year) = pick_year(&national, query.year.as_deref())?;
    let list = match query.list.as_deref() {
        Some("province_2025") => Dimension::Province2025,
        _ => Dimension::Province,
    };
    let points: Vec<Point> = years
        .iter()
        .map(|y| Point {
            label: y.clone(),
            value: national.iter().find(|r| &r.school_year == y).and_then(|r| r.value),
        })
        .collect();
    let target = kpi.targets.first();
    let baseline = kpi.baseline.as_ref().and_then(|b| {
        national
            .iter()
            .find(|r| &r.school_year == b)
            .and_then(|r| r.value.map(|v| (b.clone(), v)))
    });
    let guides = TrendGuides {
        target: target.map(|t| (t.year.clone(), t.value)),
        line: baseline.zip(target).map(|(b, t)| (b, (t.year.clone(), t.value))),
    };
    let y_label = lang.pick("Tỷ lệ (%)", "Share (%)");
    let trend_svg = charts::trend(&points, &guides, y_label).map_err(AppError::Internal)?;

    let allowed = kpi.all_dimensions().contains(&list);
    let (by_province, _) = if allowed {
        state.warehouse.kpi_rows(Some(id), list).await?
    } else {
        state.warehouse.kpi_rows(Some(id), Dimension::National).await?
    };
    let mut in_year: Vec<&KpiRow> = by_province.iter().filter(|r| r.school_year == year).collect();
    in_year.sort_by(|a, b| b.value.unwrap_or(f64::MIN).total_cmp(&a.value.unwrap_or(f64::MIN)));
    let dimension = if allowed { list } else { Dimension::National };
    let label = |row: &KpiRow| match dimension {
        Dimension::National => lang.pick("Cả nước", "Viet Nam").to_string(),
        _ => province_name(&row.unit, dimension, &year),
    };
    let bars: Vec<Bar> = in_year
        .iter()
        .filter_map(|r| {
            r.value.map(|value| Bar {
                label: label(r),
                value,
                status: r.status.clone(),
            })
        })
        .collect();
    let bars_svg = charts::ranked_bars(&bars, target.map(|t| t.value)).map_err(AppError::Internal)?;
    let rows = in_year
        .iter()
        .map(|r| TableRow {
            unit: label(r),
            value: lang.percent(r.value),
            numerator: r.numerator.map(|n| lang.number(n, 0)).unwrap_or_default(),
            denominator: r.denominator.map(|d| lang.number(d, 0)).unwrap_or_default(),
            status: lang.status(r.status.as_deref()).to_string(),
            colour: charts::status_css(r.status.as_deref()),
            coverage: coverage_text(r, lang),
        })
        .collect();
    Ok(KpiPage {
        chrome: chrome(state, lang).await?,
        id: kpi.id.clone(),
        name: kpi_name(kpi, lang),
        description: lang.pick(&kpi.description_vi, &kpi.description_en).to_string(),
        year,
        list: dimension.as_str().to_string(),
        trend_svg,
        bars_svg,
        rows,
        formula: formula(kpi),
        target: target_text(kpi, lang),
        source: kpi.source.clone(),
    })
}

/// An entry of the catalogue.
pub struct CatalogueEntry {
    id: String,
    name: String,
    description: String,
    formula: String,
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

pub async fn catalogue(State(state): State<AppState>, Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = language(&query, &headers);
    let build = async {
        let metrics = state.warehouse.metrics()?;
        let entries = metrics
            .kpis
            .iter()
            .map(|kpi| CatalogueEntry {
                id: kpi.id.clone(),
                name: kpi_name(kpi, lang),
                description: lang.pick(&kpi.description_vi, &kpi.description_en).to_string(),
                formula: formula(kpi),
                target: target_text(kpi, lang),
                source: kpi.source.clone(),
            })
            .collect();
        Ok::<_, AppError>(CataloguePage {
            chrome: chrome(&state, lang).await?,
            entries,
        })
    };
    match build.await {
        Ok(page_data) => page(&page_data, &query, lang),
        Err(e) => e.page(lang),
    }
}

/// A page for an error.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Around the message.
    pub chrome: Chrome,
    /// Heading.
    pub title: String,
    /// What happened.
    pub message: String,
}

pub async fn not_found(Query(query): Query<PageQuery>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let lang = language(&query, &headers);
    let error = AppError::NotFound(format!("{} {}", lang.pick("Không có trang", "No page"), uri.path()));
    if uri.path().starts_with("/api/") {
        return error.json();
    }
    let mut response = error.page(lang);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
