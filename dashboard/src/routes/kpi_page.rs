//! `/kpi/{id}`: one KPI in depth — national trend, provinces ranked and on the tile map,
//! breakdowns by level and ownership, the data table and the definition.

use askama::Template;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use ingest::{ProvinceRegistry, ReportKind, SchoolYear};
use warehouse::kpi::metrics::{Dimension, Kpi};
use warehouse::tables::rows::{KpiRow, Status};

use super::error::AppError;
use super::kpi_words::{coverage_text, formula, kpi_name, points, province, province_name, target_text};
use super::page::{Chrome, PageRequest, pick_year};
use crate::charts::map::Area;
use crate::charts::{self, Bar, TrendGuides};
use crate::figures::Figures;
use crate::i18n::{Lang, Words};

/// A row of the KPI page's table.
pub struct TableRow {
    unit: String,
    href: String,
    value: String,
    /// The twin KPI's value for the same unit.
    twin: String,
    numerator: String,
    denominator: String,
    status: String,
    colour: String,
    coverage: String,
    review: String,
}

/// The report kinds a KPI's figures come from: its table's kind, or for a view, both kinds of
/// provincial report.
fn kinds_of(kpi: &Kpi) -> Vec<ReportKind> {
    match ReportKind::ALL
        .into_iter()
        .find(|k| warehouse::fact_table(*k).eq_ignore_ascii_case(&kpi.table))
    {
        Some(kind) => vec![kind],
        None => vec![ReportKind::School, ReportKind::University],
    }
}

/// The KPI that measures the same thing the other way (from records, or as reported), and how
/// each is named on the page.
pub struct Twin {
    id: String,
    name: String,
    /// How this KPI's figures are made.
    this_way: String,
    /// How the twin's are.
    other_way: String,
    /// The twin's national value this year.
    national: String,
}

fn twin_of<'m>(metrics: &'m warehouse::kpi::metrics::Metrics, kpi: &Kpi) -> Option<&'m Kpi> {
    match &kpi.reported_as {
        Some(id) => metrics.kpi(id),
        None => metrics
            .kpis
            .iter()
            .find(|k| k.reported_as.as_deref() == Some(kpi.id.as_str())),
    }
}

/// How many of the files a figure rests on the ministry has approved: "đã duyệt" when all,
/// else "a/n".
fn review_of(figures: &Figures, kpi: &Kpi, dimension: Dimension, unit: &str, year: &str, lang: Lang) -> String {
    let registry = ProvinceRegistry::shipped();
    let kinds = kinds_of(kpi);
    let school_year = year.parse::<SchoolYear>().ok();
    let files: Vec<_> = figures
        .current_submissions()
        .into_iter()
        .filter(|s| Some(s.school_year) == school_year && kinds.contains(&s.kind))
        .filter(|s| match dimension {
            Dimension::Province => s.province_code.as_deref() == Some(unit),
            Dimension::Province2025 => s
                .province_code
                .as_deref()
                .zip(school_year)
                .is_some_and(|(code, y)| registry.code_2025(code, y) == Some(unit)),
            _ => true,
        })
        .collect();
    let approved = files
        .iter()
        .filter(|s| {
            figures
                .review(&s.submission_id)
                .is_some_and(|d| d.decision == warehouse::tables::rows::Verdict::Approved)
        })
        .count();
    match files.len() {
        0 => String::new(),
        n if approved == n => lang.pick("đã duyệt", "approved").to_string(),
        n => format!("{approved}/{n} {}", lang.pick("đã duyệt", "approved")),
    }
}

/// A breakdown of the KPI by level, ownership, grade or gender.
pub struct Breakdown {
    title: String,
    svg: String,
}

/// `/kpi/{id}`.
#[derive(Template)]
#[template(path = "kpi.html")]
pub struct KpiPage {
    chrome: Chrome,
    id: String,
    name: String,
    description: String,
    years: Vec<String>,
    year: String,
    list: String,
    by_province: bool,
    trend_svg: String,
    bars_svg: String,
    map_svg: String,
    /// The same provinces as a tile grid.
    tiles_svg: String,
    /// The map's shades, when it is shaded by value (a KPI with no target).
    map_legend: Option<ShadeLegend>,
    breakdowns: Vec<Breakdown>,
    twin: Option<Twin>,
    rows: Vec<TableRow>,
    formula: String,
    target: String,
    source: String,
    /// What the plausibility checks found under the figure.
    quality: String,
}

pub async fn kpi(page: PageRequest, Path(id): Path<String>) -> Response {
    if let Some(id) = id.strip_suffix(".csv") {
        return super::api::kpi_csv(&page.state, id, page.query.list.as_deref(), page.lang)
            .await
            .into_response();
    }
    // The flags under the figure, if the checks are done within a moment (they go on running).
    let year = pick_year(&page.figures.years(), page.query.year.as_deref())
        .ok()
        .and_then(|y| y.parse::<SchoolYear>().ok())
        .filter(|y| page.figures.years().contains(&y.to_string()));
    let flags = match year {
        Some(year) => super::quality::year_flags(&page, year, FLAGS_WAIT).await.ok().flatten(),
        None => None,
    };
    page.respond(kpi_page(&page, &id, flags.as_ref()))
}

/// How long a KPI page waits for its year's flags before saying the checks are running.
const FLAGS_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

fn kpi_page(page: &PageRequest, id: &str, flags: Option<&super::quality::YearFlags>) -> Result<KpiPage, AppError> {
    let (state, figures, query, lang) = (&page.state, page.figures.as_ref(), &page.query, page.lang);
    let metrics = state.warehouse.metrics()?;
    let kpi = metrics
        .kpi(id)
        .ok_or_else(|| AppError::NotFound(format!("{} {id:?}", lang.pick("Không có chỉ tiêu", "No KPI"))))?;
    let national = figures.rows(id, Dimension::National);
    let years = figures.years();
    let year = pick_year(&years, query.year.as_deref())?;
    let asked = match query.list.as_deref() {
        Some("province_2025") => Dimension::Province2025,
        _ => Dimension::Province,
    };
    let dimension = if kpi.all_dimensions().contains(&asked) {
        asked
    } else {
        Dimension::National
    };

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
    let trend_svg = charts::trend(&points(&years, &national), &guides, y_label).map_err(AppError::internal)?;

    let mut in_year: Vec<&KpiRow> = figures
        .rows(id, dimension)
        .into_iter()
        .filter(|r| r.school_year == year)
        .collect();
    in_year.sort_by(|a, b| b.value.unwrap_or(f64::MIN).total_cmp(&a.value.unwrap_or(f64::MIN)));
    let label = |row: &KpiRow| match dimension {
        Dimension::National => lang.pick("Cả nước", "Viet Nam").to_string(),
        _ => province_name(&row.unit, dimension, &year),
    };
    let province_href = |code: &str| match dimension {
        Dimension::Province => format!("/province/{code}?year={year}&list=province"),
        _ => format!("/province/{code}?year={year}"),
    };
    let bars: Vec<Bar> = in_year
        .iter()
        .filter_map(|r| {
            r.value.map(|value| Bar {
                label: label(r),
                value,
                status: r.status,
            })
        })
        .collect();
    let bars_svg = charts::ranked_bars(&bars, target.map(|t| t.value)).map_err(AppError::internal)?;
    let (map_svg, tiles_svg, map_legend) = if dimension == Dimension::National {
        (String::new(), String::new(), None)
    } else {
        let areas = province_areas(kpi, dimension, &year, &in_year, lang, &province_href);
        let (map, tiles) = province_map(&areas, lang)?;
        (map, tiles, areas.legend)
    };
    let breakdowns = [
        Dimension::Level,
        Dimension::Ownership,
        Dimension::Grade,
        Dimension::Gender,
    ]
    .into_iter()
    .filter(|d| kpi.all_dimensions().contains(d))
    .map(|d| {
        let shares: Vec<charts::Share> = figures
            .rows(id, d)
            .into_iter()
            .filter(|r| r.school_year == year)
            .map(|r| charts::Share {
                label: lang.breakdown_unit(&r.unit),
                value: r.value,
                text: lang.figure(kpi.unit, Some(r)),
                status: r.status,
            })
            .collect();
        Breakdown {
            title: match d {
                Dimension::Level => lang.pick("Theo cấp học", "By level"),
                Dimension::Ownership => lang.pick("Theo loại hình", "By ownership"),
                Dimension::Grade => lang.pick("Theo lớp", "By grade"),
                _ => lang.pick("Theo giới tính", "By gender"),
            }
            .to_string(),
            svg: charts::breakdown(&shares, target.map(|t| t.value)),
        }
    })
    .collect();
    let twin = twin_of(metrics, kpi);
    let twin_row = |unit: &str| {
        twin.and_then(|t| figures.value(&t.id, dimension, unit, &year))
            .map(|r| lang.figure(twin.map_or(kpi.unit, |t| t.unit), Some(r)))
            .unwrap_or_default()
    };
    let rows = in_year
        .iter()
        .map(|r| TableRow {
            unit: label(r),
            href: match dimension {
                Dimension::National => String::new(),
                _ => province_href(&r.unit),
            },
            value: lang.figure(kpi.unit, Some(r)),
            twin: twin_row(&r.unit),
            numerator: r.numerator.map(|n| lang.number(n, 0)).unwrap_or_default(),
            denominator: r.denominator.map(|d| lang.number(d, 0)).unwrap_or_default(),
            status: lang.status(r.status).to_string(),
            colour: charts::status_css(r.status),
            coverage: coverage_text(r, lang),
            review: review_of(figures, kpi, dimension, &r.unit, &year, lang),
        })
        .collect();
    let twin_summary = twin.map(|t| {
        let (records, reports) = (
            lang.pick(
                "đếm từ hồ sơ người học, giáo viên trong CSDL ngành",
                "counted from the learner and teacher records of the national education database",
            ),
            lang.pick("theo báo cáo của các trường", "as the schools report it"),
        );
        let from_records = kpi.reported_as.is_some();
        Twin {
            id: t.id.clone(),
            name: kpi_name(t, lang),
            this_way: if from_records { records } else { reports }.to_string(),
            other_way: if from_records { reports } else { records }.to_string(),
            national: lang.figure(t.unit, figures.value(&t.id, Dimension::National, "VN", &year)),
        }
    });
    let quality = super::quality::kpi_note(flags, kpi, metrics, &year, lang);
    Ok(KpiPage {
        chrome: page.chrome(),
        id: kpi.id.clone(),
        name: kpi_name(kpi, lang),
        description: lang.pick(&kpi.description_vi, &kpi.description_en).to_string(),
        years,
        year,
        list: dimension.as_str().to_string(),
        by_province: dimension != Dimension::National,
        trend_svg,
        bars_svg,
        map_svg,
        tiles_svg,
        map_legend,
        breakdowns,
        twin: twin_summary,
        rows,
        formula: formula(kpi),
        target: target_text(kpi, lang),
        source: kpi.source.clone(),
        quality,
    })
}

/// The year's provinces (the 63 before 1 July 2025, else the 34) as map areas, each in its
/// status colour — or, for a KPI with no target (tracked only, every status the same), in a
/// shade of its value — and titled with its name, value and status; provinces without a value
/// are grey. Also the list they belong to (`2008` or `2025`) and the shading, if by value.
pub(crate) fn province_areas(
    kpi: &Kpi,
    dimension: Dimension,
    year: &str,
    in_year: &[&KpiRow],
    lang: Lang,
    href: &dyn Fn(&str) -> String,
) -> ProvinceAreas {
    let registry = ProvinceRegistry::shipped();
    let old_list = dimension == Dimension::Province
        && year
            .parse::<SchoolYear>()
            .is_ok_and(|y| std::ptr::eq(registry.list_for(y), registry.before_2025.as_slice()));
    let list = if old_list { "2008" } else { "2025" };
    let shading = match kpi.targets.is_empty() {
        true => charts::Shading::of(in_year.iter().filter_map(|r| r.value)),
        false => None,
    };
    let areas = charts::map::codes(list)
        .into_iter()
        .map(|code| {
            let value = in_year.iter().find(|r| r.unit == code);
            let name = province(&code, dimension, year).map_or(code.as_str(), |p| p.name_vi.as_str());
            Area {
                title: format!(
                    "{name} ({code}): {} — {}",
                    lang.figure(kpi.unit, value.copied()),
                    lang.status(value.and_then(|r| r.status))
                ),
                href: href(&code),
                fill: match (shading, value.and_then(|r| r.value)) {
                    (Some(shading), Some(v)) => shading.fill(v).to_string(),
                    _ => charts::status_css(value.and_then(|r| r.status)),
                },
                code,
            }
        })
        .collect();
    ProvinceAreas {
        list,
        areas,
        legend: shading.map(|s| ShadeLegend::of(s, kpi, lang)),
    }
}

/// A KPI's provinces on a map: their list, their areas, and the legend of their shades when
/// they are shaded by value rather than coloured by status.
pub(crate) struct ProvinceAreas {
    pub list: &'static str,
    pub areas: Vec<Area>,
    pub legend: Option<ShadeLegend>,
}

/// The legend of a map shaded by value: the lowest and highest values as the page writes them.
pub struct ShadeLegend {
    pub low: String,
    pub high: String,
    pub shades: [&'static str; 5],
}

impl ShadeLegend {
    fn of(shading: charts::Shading, kpi: &Kpi, lang: Lang) -> Self {
        let text = |value: f64| lang.value(kpi.unit, Some(value));
        Self {
            low: text(shading.low),
            high: text(shading.high),
            shades: charts::SHADES,
        }
    }
}

/// The provinces' map in status colours, and the same as a tile grid (where the small
/// provinces of the Mekong delta are as easy to reach as the rest).
fn province_map(areas: &ProvinceAreas, lang: Lang) -> Result<(String, String), AppError> {
    let (list, areas) = (areas.list, &areas.areas);
    let map = charts::map::boundary_map(list, areas, lang)
        .map_err(AppError::internal)?
        .svg;
    Ok((map, charts::tile_map(&charts::map::tiles(list, areas, |_| "#fff"))))
}
