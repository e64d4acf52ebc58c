//! `/reconciliation` and `/api/v1/reconciliation`: schools' reports beside their counted learner
//! records, for analysts and admins (see [`warehouse::quality::reconcile`]).

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use ingest::SchoolYear;
use serde::Deserialize;
use warehouse::kpi::metrics::Dimension;
use warehouse::quality::reconcile::{DEFAULT_TOLERANCE, Reconciliation};

use super::error::AppError;
use super::kpi_words::province_name;
use super::page::{Chrome, PageRequest};
use super::roles::Querier;
use crate::AppState;
use crate::i18n::{Lang, Words};

/// The most differing schools a page lists (the API gives them all).
const LISTED: usize = 500;

/// What is asked: a school year (default: the latest with figures), a province, a tolerance in
/// percent (default 5).
#[derive(Debug, Default, Deserialize)]
pub struct ReconciliationQuery {
    year: Option<String>,
    province: Option<String>,
    tolerance: Option<f64>,
}

/// Reconciles for `account` under the limits of any query: one of the account's query slots
/// (as for SQL) and the query time limit, since it counts every learner of a year.
async fn reconcile(
    state: &AppState,
    account: &str,
    query: &ReconciliationQuery,
    latest: Option<&String>,
) -> Result<Reconciliation, AppError> {
    let year: SchoolYear = match (&query.year, latest) {
        (Some(year), _) | (None, Some(year)) => year
            .parse()
            .map_err(|_| AppError::BadRequest(format!("{year:?} is not a school year like 2024-2025")))?,
        (None, None) => return Err(AppError::NotFound("no school year has figures yet".into())),
    };
    let province = super::page::province_asked(query.province.as_deref())?;
    let tolerance = match query.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(percent) if percent.is_finite() && (0.0..=1000.0).contains(&percent) => percent / 100.0,
        Some(percent) => {
            return Err(AppError::BadRequest(format!(
                "tolerance {percent} must be a percentage from 0 to 1000"
            )));
        }
    };
    let _slot = state.query_slots.take(account).await?;
    let limits = &state.settings.query_limits;
    let found = tokio::time::timeout(
        limits.timeout,
        state.warehouse.reconciliation(year, province.as_ref(), tolerance),
    )
    .await
    .map_err(|_| AppError::from(limits.timed_out()))??;
    Ok(found)
}

/// A line of figures as the page writes them: reported / counted.
pub struct Line {
    name: String,
    href: String,
    level: String,
    compared: String,
    pupils: String,
    online_ready: String,
    digital_record: String,
    difference: String,
}

fn both(lang: Lang, reported: i64, counted: i64) -> String {
    format!(
        "{} / {}",
        lang.number(reported as f64, 0),
        lang.number(counted as f64, 0)
    )
}

/// `/reconciliation`.
#[derive(Template)]
#[template(path = "reconciliation.html")]
pub struct ReconciliationPage {
    chrome: Chrome,
    years: Vec<String>,
    year: String,
    province: String,
    tolerance: String,
    provinces: Vec<Line>,
    schools: Vec<Line>,
    more: usize,
}

async fn page(
    page: PageRequest,
    Querier { caller, .. }: Querier,
    Query(query): Query<ReconciliationQuery>,
) -> Response {
    let years = page.figures.years();
    let account = caller.account.name.as_str();
    let built = reconcile(&page.state, account, &query, years.last())
        .await
        .map(|found| {
            let lang = page.lang;
            let year = found.school_year.to_string();
            let name = |code: &str| province_name(code, Dimension::Province, &year);
            let provinces = found
                .provinces
                .iter()
                .map(|p| Line {
                    name: name(&p.province_code),
                    href: format!("?year={year}&province={}", p.province_code),
                    level: String::new(),
                    compared: format!("{}/{}", p.differing, p.compared),
                    pupils: both(lang, p.reported.pupils, p.counted.pupils),
                    online_ready: both(lang, p.reported.online_ready, p.counted.online_ready),
                    digital_record: both(lang, p.reported.digital_record, p.counted.digital_record),
                    difference: String::new(),
                })
                .collect();
            let schools = found
                .schools
                .iter()
                .take(LISTED)
                .map(|s| Line {
                    name: format!("{} ({})", s.school_name, s.school_id),
                    href: format!("/province/{}?year={year}&list=province", s.province_code),
                    level: lang.breakdown_unit(&s.level),
                    compared: name(&s.province_code),
                    pupils: both(lang, s.reported.pupils, s.counted.pupils),
                    online_ready: both(lang, s.reported.online_ready, s.counted.online_ready),
                    digital_record: both(lang, s.reported.digital_record, s.counted.digital_record),
                    difference: lang.percent(Some(s.difference * 100.0)),
                })
                .collect();
            ReconciliationPage {
                chrome: page.chrome(),
                years: years.clone(),
                year,
                province: found.province_code.as_deref().unwrap_or_default().to_string(),
                tolerance: lang.number(found.tolerance * 100.0, 1),
                provinces,
                schools,
                more: found.schools.len().saturating_sub(LISTED),
            }
        });
    page.respond(built)
}

async fn api(
    page: PageRequest,
    Querier { caller, .. }: Querier,
    Query(query): Query<ReconciliationQuery>,
) -> Result<Json<impl serde::Serialize>, AppError> {
    let account = caller.account.name.as_str();
    Ok(Json(
        reconcile(&page.state, account, &query, page.figures.years().last()).await?,
    ))
}

/// Reconciliation's page and API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reconciliation", get(page))
        .route("/api/v1/reconciliation", get(api))
}
