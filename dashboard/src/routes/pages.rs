//! What every page shares (language, the frame around the content, formatting helpers), and
//! the overview, catalogue and error pages.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use ingest::{Province, ProvinceRegistry, SchoolYear};
use serde::Deserialize;
use warehouse::kpi::KpiRow;
use warehouse::metrics::{Dimension, Kpi};

use super::AppError;
use crate::AppState;
use crate::charts::{self, Point};
use crate::figures::Figures;
use crate::i18n::{Lang, Words};

/// The figures' pages (the history of a slice is `history`'s, the SQL workbench `sql`'s).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/kpi/{id}", get(super::kpi_page::kpi))
        .route("/province/{code}", get(super::places::province))
        .route("/province/{code}/report", get(super::places::province_report))
        .route("/region/{code}", get(super::places::region))
        .route("/completeness", get(super::completeness::completeness))
        .route("/catalogue", get(catalogue))
}

/// What every page shows around its content.
pub struct Chrome {
    /// The page's language.
    pub lang: Lang,
    /// When the last accepted file was committed.
    pub as_of: String,
    /// The same page in the other language (the query, with the school year and list kept).
    pub other_language: String,
}

impl Chrome {
    /// The frame of a page about `figures`, asked for with `query`.
    pub fn new(figures: &Figures, lang: Lang, query: &PageQuery) -> Self {
        let as_of = figures.as_of().map_or_else(
            || lang.pick("chưa có số liệu", "no data yet").to_string(),
            |at| lang.date_time(at),
        );
        let mut other_language = format!("?lang={}", lang.other().code());
        // Only values that parse as what they are go back into the link.
        if let Some(year) = query.year.as_deref().and_then(|y| y.parse::<SchoolYear>().ok()) {
            other_language.push_str(&format!("&year={year}"));
        }
        if let Some(list) = query.list.as_deref().and_then(|l| l.parse::<Dimension>().ok()) {
            other_language.push_str(&format!("&list={}", list.as_str()));
        }
        Self {
            lang,
            as_of,
            other_language,
        }
    }

    /// The frame of a page that could not read the figures.
    pub fn bare(lang: Lang) -> Self {
        Self {
            lang,
            as_of: "—".to_string(),
            other_language: format!("?lang={}", lang.other().code()),
        }
    }
}

/// Query parameters the pages understand.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub lang: Option<String>,
    pub year: Option<String>,
    pub list: Option<String>,
}

/// The language of a request: `?lang=`, else the `lang` cookie, else Vietnamese.
pub fn language(query: &PageQuery, headers: &HeaderMap) -> Lang {
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

/// The language of a request known only by its headers and address.
pub fn language_of(headers: &HeaderMap, uri: &Uri) -> Lang {
    let query = Query::<PageQuery>::try_from_uri(uri).map(|q| q.0).unwrap_or_default();
    language(&query, headers)
}

/// What every figure page is asked with: the server, the figures of this request (set by the
/// revalidation layer), the query and the language.
pub struct PageRequest {
    /// The server.
    pub state: AppState,
    /// The warehouse's figures for this request.
    pub figures: Arc<Figures>,
    /// The query parameters.
    pub query: PageQuery,
    /// The page's language.
    pub lang: Lang,
}

impl axum::extract::FromRequestParts<AppState> for PageRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Response> {
        let query = Query::<PageQuery>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .map_err(|e| AppError::BadRequest(e.body_text()).page(Lang::default()))?;
        let lang = language(&query, &parts.headers);
        let figures = match parts.extensions.get::<Arc<Figures>>() {
            Some(figures) => Arc::clone(figures),
            None => state.figures().await.map_err(|e| AppError::from(e).page(lang))?,
        };
        Ok(Self {
            state: state.clone(),
            figures,
            query,
            lang,
        })
    }
}

impl PageRequest {
    /// The page built, or the error page.
    pub fn respond(&self, built: Result<impl Template, AppError>) -> Response {
        respond(built, &self.query, self.lang)
    }

    /// The frame of the page.
    pub fn chrome(&self) -> Chrome {
        Chrome::new(&self.figures, self.lang, &self.query)
    }
}

/// A page built, or the error page; `?lang=` is remembered in a cookie.
pub fn respond(built: Result<impl Template, AppError>, query: &PageQuery, lang: Lang) -> Response {
    let html = match built.and_then(|page| page.render().map_err(|e| AppError::Internal(e.to_string()))) {
        Ok(html) => html,
        Err(e) => return e.page(lang),
    };
    let mut response = Html(html).into_response();
    if query.lang.is_some()
        && let Ok(cookie) =
            HeaderValue::from_str(&format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code()))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

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

/// The school year asked for (else the latest of `years`).
pub fn pick_year(years: &[String], asked: Option<&str>) -> Result<String, AppError> {
    match asked {
        Some(asked) => {
            let year: SchoolYear = asked
                .parse()
                .map_err(|_| AppError::BadRequest(format!("{asked:?} is not a school year like 2024-2025")))?;
            Ok(year.to_string())
        }
        None => Ok(years.last().cloned().unwrap_or_default()),
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
    regions: Vec<Link>,
}

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
            sparkline: charts::sparkline(&points(&years, &history), status).map_err(AppError::Internal)?,
            coverage: current.map(|r| coverage_text(r, lang)).unwrap_or_default(),
        });
    }
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
        regions,
    })
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

pub async fn not_found(Query(query): Query<PageQuery>, headers: HeaderMap, uri: Uri) -> Response {
    let lang = language(&query, &headers);
    let error = AppError::NotFound(format!("{} {}", lang.pick("Không có trang", "No page"), uri.path()));
    if uri.path().starts_with("/api/") {
        return error.json();
    }
    let mut response = error.page(lang);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
