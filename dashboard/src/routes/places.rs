//! `/province/{code}` and `/region/{code}`: every KPI of one place against the national value
//! and the target, with trends; a province's submissions, a region's provinces. A province's
//! page for a school year also comes laid out for A4 paper (`/province/{code}/report`, and
//! `khoso report`).

use askama::Template;
use axum::extract::Path;
use axum::response::Response;
use ingest::{Province, ProvinceRegistry, SchoolYear};
use warehouse::kpi::metrics::Dimension;

use super::error::AppError;
use super::kpi_words::{kpi_name, points};
use super::page::{Chrome, PageRequest, pick_year};
use crate::AppState;
use crate::charts;
use crate::charts::map::Area;
use crate::figures::Figures;
use crate::i18n::{Lang, Words};

/// One KPI of the place.
pub struct PlaceRow {
    id: String,
    name: String,
    value: String,
    national: String,
    target: String,
    status: String,
    colour: String,
    trend_svg: String,
}

/// One submission of a province.
pub struct SubmissionRow {
    kind: String,
    year: String,
    file_name: String,
    rows: String,
    uploaded_by: String,
    uploaded_at: String,
    current: bool,
    sha256: String,
    review: String,
}

/// A link to another place.
pub struct PlaceLink {
    href: String,
    name: String,
}

/// A province's or a region's page.
#[derive(Template)]
#[template(path = "place.html")]
pub struct PlacePage {
    chrome: Chrome,
    title: String,
    subtitle: String,
    years: Vec<String>,
    year: String,
    /// The list to keep when the year changes (`province` for a province as reported).
    keep_list: String,
    rows: Vec<PlaceRow>,
    submissions: Option<Vec<SubmissionRow>>,
    links_title: String,
    links: Vec<PlaceLink>,
    /// Where the place is: its provinces dark on the map of the list, the rest light.
    locator_svg: String,
}

/// The provinces of `list` (`2008`, `2025`) as a locator: those `here` says are the place's in
/// dark blue, the rest light grey, each linked to its page and titled with its name.
fn locator(list: &str, here: impl Fn(&str) -> bool, year: &str, lang: Lang) -> Result<String, AppError> {
    let registry = ProvinceRegistry::shipped();
    let provinces = match list {
        "2008" => &registry.before_2025,
        _ => &registry.from_2025,
    };
    let areas: Vec<Area> = provinces
        .iter()
        .map(|p| Area {
            code: p.code.clone(),
            title: format!("{} ({})", lang.pick(&p.name_vi, &p.name_en), p.code),
            href: match list {
                "2008" => format!("/province/{}?year={year}&list=province", p.code),
                _ => format!("/province/{}?year={year}", p.code),
            },
            fill: match here(&p.code) {
                true => "#1d4ed8",
                false => "#e5e7eb",
            }
            .to_string(),
        })
        .collect();
    Ok(charts::map::boundary_map(list, &areas, lang)
        .map_err(AppError::internal)?
        .svg)
}

/// The figures of one unit of a dimension, every KPI that is split by it.
fn place_rows(
    state: &AppState,
    figures: &Figures,
    dimension: Dimension,
    unit: &str,
    years: &[String],
    year: &str,
    lang: Lang,
) -> Result<Vec<PlaceRow>, AppError> {
    let metrics = state.warehouse.metrics()?;
    let mut rows = Vec::new();
    for kpi in metrics.kpis.iter().filter(|k| k.all_dimensions().contains(&dimension)) {
        let ours: Vec<_> = figures
            .rows(&kpi.id, dimension)
            .into_iter()
            .filter(|r| r.unit == unit)
            .collect();
        let national = figures.rows(&kpi.id, Dimension::National);
        let current = ours.iter().find(|r| r.school_year == year);
        let status = current.and_then(|r| r.status);
        let target = current.and_then(|r| r.target_value.zip(r.target_year.as_deref()));
        rows.push(PlaceRow {
            id: kpi.id.clone(),
            name: kpi_name(kpi, lang),
            value: lang.figure(kpi.unit, current.copied()),
            national: lang.figure(kpi.unit, national.iter().find(|r| r.school_year == year).copied()),
            target: target.map_or_else(String::new, |(value, by)| {
                format!("{} ({by})", lang.value(kpi.unit, Some(value)))
            }),
            status: lang.status(status).to_string(),
            colour: charts::status_css(status),
            trend_svg: charts::versus(
                &points(years, &ours),
                &points(years, &national),
                target.map(|t| t.0),
                status,
            )
            .map_err(AppError::internal)?,
        });
    }
    Ok(rows)
}

/// Which province a code means: a code of the 34 provinces of 2025 is read on that list
/// (earlier years rolled up across the merger) unless `?list=province` asks for the province
/// as reported; a code only on the 63-province list is read as reported.
fn resolve(code: &str, list: Option<&str>) -> Option<(&'static Province, Dimension)> {
    let registry = ProvinceRegistry::shipped();
    let old = registry.before_2025.iter().find(|p| p.code == code);
    match (list, registry.province_2025(code), old) {
        (Some("province"), _, Some(old)) => Some((old, Dimension::Province)),
        (_, Some(new), _) => Some((new, Dimension::Province2025)),
        (_, None, Some(old)) => Some((old, Dimension::Province)),
        _ => None,
    }
}

/// Whether a school year's province list is the 63-province one.
fn before_merger(year: &str) -> bool {
    let registry = ProvinceRegistry::shipped();
    year.parse::<SchoolYear>()
        .is_ok_and(|y| std::ptr::eq(registry.list_for(y), registry.before_2025.as_slice()))
}

pub async fn province(page: PageRequest, Path(code): Path<String>) -> Response {
    page.respond(province_page(&page, &code))
}

fn province_page(page: &PageRequest, code: &str) -> Result<PlacePage, AppError> {
    let (state, figures, query, lang) = (&page.state, page.figures.as_ref(), &page.query, page.lang);
    let registry = ProvinceRegistry::shipped();
    let (province, dimension) = resolve(code, query.list.as_deref())
        .ok_or_else(|| AppError::NotFound(format!("{} {code:?}", lang.pick("Không có tỉnh", "No province"))))?;
    // A province of the 63 exists up to 2024-2025 only.
    let years: Vec<String> = figures
        .years()
        .into_iter()
        .filter(|y| dimension == Dimension::Province2025 || before_merger(y))
        .collect();
    let year = pick_year(&years, query.year.as_deref())?;
    let rows = place_rows(state, figures, dimension, code, &years, &year, lang)?;
    let belongs = |submission: &warehouse::Submission| {
        let Some(reported) = submission.province_code.as_deref() else {
            return false;
        };
        match dimension {
            Dimension::Province2025 => registry.code_2025(reported, submission.school_year) == Some(code),
            _ => reported == code && before_merger(&submission.school_year.to_string()),
        }
    };
    let mine: Vec<&warehouse::Submission> = figures.submissions.iter().filter(|s| belongs(s)).collect();
    let superseded: std::collections::HashSet<&str> = mine.iter().filter_map(|s| s.supersedes.as_deref()).collect();
    let submissions = mine
        .iter()
        .rev()
        .map(|s| SubmissionRow {
            kind: lang.report_kind(s.kind).to_string(),
            year: s.school_year.to_string(),
            file_name: s.file_name.clone(),
            rows: lang.number(s.rows as f64, 0),
            uploaded_by: s.uploaded_by.clone(),
            uploaded_at: chrono::DateTime::from_timestamp_micros(s.uploaded_at)
                .map(|at| lang.date_time(at))
                .unwrap_or_default(),
            current: !superseded.contains(s.submission_id.as_str()),
            review: super::completeness::review_text(figures, &s.submission_id, lang),
            sha256: s.sha256.get(..12).unwrap_or_default().to_string(),
        })
        .collect();
    let region = registry.regions.iter().find(|r| r.code == province.region_code);
    let mut links: Vec<PlaceLink> = region
        .map(|r| PlaceLink {
            href: format!("/region/{}?year={year}", r.code),
            name: lang.pick(&r.name_vi, &r.name_en).to_string(),
        })
        .into_iter()
        .collect();
    let merged: Vec<&Province> = match dimension {
        Dimension::Province2025 => registry
            .before_2025
            .iter()
            .filter(|p| province.merged_from.contains(&p.code))
            .collect(),
        _ => registry.province_2025(&province.code_2025).into_iter().collect(),
    };
    links.extend(merged.iter().map(|p| PlaceLink {
        href: match dimension {
            Dimension::Province2025 => format!("/province/{}?list=province", p.code),
            _ => format!("/province/{}", p.code),
        },
        name: format!("{} ({})", p.name_vi, p.code),
    }));
    let subtitle = match dimension {
        Dimension::Province2025 => lang.pick(
            "Theo danh sách 34 tỉnh từ 1/7/2025; các năm trước cộng dồn các tỉnh đã sáp nhập",
            "On the list of 34 provinces of 1 July 2025; earlier years add up the provinces merged into it",
        ),
        _ => lang.pick(
            "Theo danh sách 63 tỉnh, như đã báo cáo đến năm học 2024-2025",
            "On the list of 63 provinces, as reported up to 2024-2025",
        ),
    };
    let list = match dimension {
        Dimension::Province2025 => "2025",
        _ => "2008",
    };
    let locator_svg = locator(list, |c| c == code, &year, lang)?;
    Ok(PlacePage {
        chrome: page.chrome(),
        title: format!("{} ({code})", lang.pick(&province.name_vi, &province.name_en)),
        subtitle: subtitle.to_string(),
        years,
        year,
        keep_list: match dimension {
            Dimension::Province => "province".to_string(),
            _ => String::new(),
        },
        rows,
        submissions: Some(submissions),
        links_title: match dimension {
            Dimension::Province2025 => lang.pick(
                "Vùng và các tỉnh đã sáp nhập",
                "Region and the provinces merged into it",
            ),
            _ => lang.pick(
                "Vùng và tỉnh mới từ 1/7/2025",
                "Region and the province it joined on 1 July 2025",
            ),
        }
        .to_string(),
        links,
        locator_svg,
    })
}

/// A province's report for one school year, laid out for A4 paper: every KPI against the
/// target and the nation with its trend, what the figures rest on (the files in force that
/// year), and which reports are in.
#[derive(Template)]
#[template(path = "province_report.html")]
pub struct ProvinceReport {
    chrome: Chrome,
    title: String,
    subtitle: String,
    year: String,
    rows: Vec<PlaceRow>,
    /// The files the year's figures rest on.
    files: Vec<SubmissionRow>,
    /// Each report kind of the year: its name, and whether a file of it is in.
    kinds: Vec<(String, bool)>,
    links_title: String,
    links: Vec<PlaceLink>,
    /// Where the province is.
    locator_svg: String,
}

/// `/province/{code}/report?year=&lang=&list=`: see [`ProvinceReport`].
pub async fn province_report(page: PageRequest, Path(code): Path<String>) -> Response {
    page.respond(province_page(&page, &code).and_then(|place| {
        let lang = page.lang;
        // A report is of a year with figures: not of a province of the 63 after it merged.
        if !place.years.contains(&place.year) {
            return Err(AppError::NotFound(format!(
                "{} {} {}; {}: {}",
                lang.pick("Không có số liệu của", "No figures of"),
                place.title,
                place.year,
                lang.pick("các năm học có số liệu", "school years with figures"),
                place.years.join(", ")
            )));
        }
        let files: Vec<SubmissionRow> = place
            .submissions
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.current && s.year == place.year)
            .collect();
        let kinds = ingest::ReportKind::ALL
            .into_iter()
            .filter(|kind| kind.is_provincial())
            .map(|kind| {
                let name = lang.report_kind(kind).to_string();
                let is_in = files.iter().any(|f| f.kind == name);
                (name, is_in)
            })
            .collect();
        Ok(ProvinceReport {
            chrome: place.chrome,
            title: place.title,
            subtitle: place.subtitle,
            year: place.year,
            rows: place.rows,
            files,
            kinds,
            links_title: place.links_title,
            links: place.links,
            locator_svg: place.locator_svg,
        })
    }))
}

pub async fn region(page: PageRequest, Path(code): Path<String>) -> Response {
    page.respond(region_page(&page, &code))
}

fn region_page(page: &PageRequest, code: &str) -> Result<PlacePage, AppError> {
    let (state, figures, query, lang) = (&page.state, page.figures.as_ref(), &page.query, page.lang);
    let registry = ProvinceRegistry::shipped();
    let region = registry
        .regions
        .iter()
        .find(|r| r.code == code)
        .ok_or_else(|| AppError::NotFound(format!("{} {code:?}", lang.pick("Không có vùng", "No region"))))?;
    let years = figures.years();
    let year = pick_year(&years, query.year.as_deref())?;
    let rows = place_rows(state, figures, Dimension::Region, code, &years, &year, lang)?;
    let links = registry
        .from_2025
        .iter()
        .filter(|p| p.region_code == code)
        .map(|p| PlaceLink {
            href: format!("/province/{}?year={year}", p.code),
            name: format!("{} ({})", lang.pick(&p.name_vi, &p.name_en), p.code),
        })
        .collect();
    let here = |c: &str| registry.from_2025.iter().any(|p| p.code == c && p.region_code == code);
    let locator_svg = locator("2025", here, &year, lang)?;
    Ok(PlacePage {
        chrome: page.chrome(),
        title: lang.pick(&region.name_vi, &region.name_en).to_string(),
        subtitle: lang
            .pick(
                "Vùng kinh tế - xã hội, theo 34 tỉnh từ 1/7/2025",
                "Socio-economic region, of the 34 provinces of 1 July 2025",
            )
            .to_string(),
        years,
        year,
        keep_list: String::new(),
        rows,
        submissions: None,
        links_title: lang.pick("Các tỉnh trong vùng", "Provinces of the region").to_string(),
        links,
        locator_svg,
    })
}
