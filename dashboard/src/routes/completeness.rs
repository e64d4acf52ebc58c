//! `/completeness`: for a school year, every province × report kind — reported (when, by whom,
//! how many rows, how many earlier files it replaced) or missing.

use askama::Template;
use axum::response::Response;
use ingest::{ProvinceRegistry, ReportKind, SchoolYear};
use warehouse::Submission;

use super::error::AppError;
use super::page::{Chrome, PageRequest};
use crate::figures::Figures;
use crate::i18n::{Lang, Words};

/// One slice: a province's (or the nation's) report of one kind for the year.
pub struct Cell {
    history: String,
    review: String,
    reported: bool,
    expected: bool,
    when: String,
    by: String,
    rows: String,
    file_name: String,
    replaced: usize,
}

/// One province's line.
pub struct Line {
    code: String,
    name: String,
    cells: Vec<Cell>,
}

/// How many provinces reported a kind.
pub struct Tally {
    kind: String,
    reported: usize,
    expected: usize,
    missing: Vec<String>,
}

/// `/completeness?year=`.
#[derive(Template)]
#[template(path = "completeness.html")]
pub struct CompletenessPage {
    chrome: Chrome,
    years: Vec<String>,
    year: String,
    old_list: bool,
    kinds: Vec<String>,
    lines: Vec<Line>,
    tallies: Vec<Tally>,
    national: Vec<(String, Cell)>,
}

/// The report kinds each province sends; the others are national.
const PROVINCIAL: [ReportKind; 2] = [ReportKind::School, ReportKind::University];

fn cell(figures: &Figures, slice: &[&Submission], expected: bool, lang: Lang) -> Cell {
    let review = slice
        .last()
        .map_or_else(String::new, |s| review_text(figures, &s.submission_id, lang));
    let history = slice.last().map_or_else(String::new, |s| {
        format!(
            "/history?kind={}&year={}{}",
            s.kind,
            s.school_year,
            s.province_code
                .as_deref()
                .map(|p| format!("&province={p}"))
                .unwrap_or_default()
        )
    });
    match slice.last() {
        Some(current) => Cell {
            history,
            review,
            reported: true,
            expected,
            when: chrono::DateTime::from_timestamp_micros(current.uploaded_at)
                .map(|at| lang.date_time(at))
                .unwrap_or_default(),
            by: current.uploaded_by.clone(),
            rows: lang.number(current.rows as f64, 0),
            file_name: current.file_name.clone(),
            replaced: slice.len() - 1,
        },
        None => Cell {
            history,
            review,
            reported: false,
            expected,
            when: String::new(),
            by: String::new(),
            rows: String::new(),
            file_name: String::new(),
            replaced: 0,
        },
    }
}

/// Whether the ministry approved a submission: the words for its review state.
pub fn review_text(figures: &Figures, submission_id: &str, lang: Lang) -> String {
    match figures.review(submission_id) {
        Some(d) if d.decision == warehouse::tables::rows::Verdict::Approved => {
            lang.pick("đã duyệt", "approved").to_string()
        }
        Some(_) => lang.pick("bị trả lại", "returned").to_string(),
        None => lang.pick("chưa duyệt", "not reviewed yet").to_string(),
    }
}

pub async fn completeness(page: PageRequest) -> Response {
    page.respond(completeness_page(&page))
}

fn completeness_page(page: &PageRequest) -> Result<CompletenessPage, AppError> {
    let (figures, query, lang) = (page.figures.as_ref(), &page.query, page.lang);
    let mut years: Vec<String> = figures
        .submissions
        .iter()
        .map(|s| s.school_year.to_string())
        .chain(figures.years())
        .collect();
    years.sort();
    years.dedup();
    let year = super::page::pick_year(&years, query.year.as_deref())?;
    let school_year: SchoolYear = year
        .parse()
        .map_err(|_| AppError::BadRequest(format!("{year:?} is not a school year like 2024-2025")))?;
    // Submissions are oldest first, so each slice's last one is the one in force.
    let slice = |kind: ReportKind, province: Option<&str>| -> Vec<&Submission> {
        figures
            .submissions
            .iter()
            .filter(|s| s.kind == kind && s.school_year == school_year && s.province_code.as_deref() == province)
            .collect()
    };
    let registry = ProvinceRegistry::shipped();
    // Every province must send its school report. A university report is expected from a
    // province whose area (its 2025 province) has sent one in some school year: the others
    // have no university.
    let lineage = |code: &str, year: SchoolYear| registry.code_2025(code, year);
    let expected = |kind: ReportKind, code: &str| {
        kind == ReportKind::School
            || figures.submissions.iter().any(|s| {
                s.kind == kind
                    && s.province_code
                        .as_deref()
                        .is_some_and(|c| lineage(c, s.school_year) == lineage(code, school_year))
            })
    };
    let provinces = registry.list_for(school_year);
    let lines: Vec<Line> = provinces
        .iter()
        .map(|p| Line {
            code: p.code.clone(),
            name: p.name_vi.clone(),
            cells: PROVINCIAL
                .iter()
                .map(|&kind| cell(figures, &slice(kind, Some(&p.code)), expected(kind, &p.code), lang))
                .collect(),
        })
        .collect();
    let tallies = PROVINCIAL
        .iter()
        .enumerate()
        .map(|(i, kind)| Tally {
            kind: lang.report_kind(*kind).to_string(),
            reported: lines.iter().filter(|l| l.cells[i].reported).count(),
            expected: lines.iter().filter(|l| l.cells[i].expected).count(),
            missing: lines
                .iter()
                .filter(|l| l.cells[i].expected && !l.cells[i].reported)
                .map(|l| format!("{} ({})", l.name, l.code))
                .collect(),
        })
        .collect();
    let national = ReportKind::ALL
        .into_iter()
        .filter(|k| !PROVINCIAL.contains(k))
        .map(|kind| {
            (
                lang.report_kind(kind).to_string(),
                cell(figures, &slice(kind, None), true, lang),
            )
        })
        .collect();
    Ok(CompletenessPage {
        chrome: page.chrome(),
        years,
        year,
        old_list: std::ptr::eq(provinces, registry.before_2025.as_slice()),
        kinds: PROVINCIAL.iter().map(|k| lang.report_kind(*k).to_string()).collect(),
        lines,
        tallies,
        national,
    })
}
