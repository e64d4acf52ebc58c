//! `/quality` and `/api/v1/quality`: the flags of the plausibility checks (see
//! [`warehouse::quality`]) for a school year, by province, with a form to explain each; and
//! `POST /api/v1/quality/explanations`. A province account sees and explains its own province's
//! flags; an analyst sees every flag; an admin sees and explains every flag.
//!
//! A year's flags are computed once per state of the warehouse (its tables, metrics, decisions
//! and explanations), in the background under the query time limit, and kept: the KPI pages
//! count theirs from the same list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::Query;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use ingest::{ProvinceCode, ProvinceRegistry, SchoolYear};
use serde::Deserialize;
use warehouse::kpi::metrics::{Dimension, Kpi};
use warehouse::quality::explanations::{MAX_COMMENT, explanation_of};
use warehouse::quality::flags::{Explained, Flag};

use super::audit::{audit, audit_event};
use super::error::AppError;
use super::kpi_words::province_name;
use super::page::{Chrome, PageError, PageRequest, check_csrf};
use super::roles::{Explainer, FlagReader};
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::{Lang, Words};
use warehouse::people::rights::{Action, Role};

/// The most flags a page lists (the API gives them all).
const LISTED: usize = 500;

/// A year's flags, or why there are none.
type Computed = Result<Arc<Vec<Flag>>, String>;

/// A year's flags being computed: the task is stopped when the list is let go.
struct Computing {
    answer: Shared<BoxFuture<'static, Computed>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Computing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Each school year's flags at the warehouse's current state, computed once, and the
/// explanations at their latest version, read once.
#[derive(Clone, Default)]
pub struct FlagLists {
    raised: Arc<Mutex<HashMap<(String, SchoolYear), Computing>>>,
    explained: Arc<tokio::sync::Mutex<Option<ExplainedAt>>>,
}

/// Why there are no flags to show after `limit`.
fn unfinished(limit: std::time::Duration) -> String {
    format!(
        "the plausibility checks did not finish within {} s (the query time limit); they are stopped, and start \
         again on the next request",
        limit.as_secs()
    )
}

/// The explanations as read at a version of their table.
type ExplainedAt = (Option<u64>, Arc<Explained>);

/// A year's flags and what explains them.
pub(super) struct YearFlags {
    /// Every flag of the year, without explanations.
    pub raised: Arc<Vec<Flag>>,
    /// The explanations in force.
    pub explained: Arc<Explained>,
}

impl FlagLists {
    /// The computation of `year`'s flags at the state `key` (started now if it is not running
    /// or done; one that failed is started again). Lists of other states are let go.
    fn of(&self, state: &AppState, key: String, year: SchoolYear) -> Shared<BoxFuture<'static, Computed>> {
        let mut kept = self.raised.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.retain(|(at, _), computing| *at == key && !matches!(computing.answer.peek(), Some(Err(_))));
        let warehouse = Arc::clone(&state.warehouse);
        let limit = state.settings.query_limits.timeout;
        kept.entry((key, year))
            .or_insert_with(|| {
                let task = tokio::spawn(async move {
                    match tokio::time::timeout(limit, warehouse.flags_raised(year, None)).await {
                        Ok(Ok(flags)) => Ok(Arc::new(flags)),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(unfinished(limit)),
                    }
                });
                Computing {
                    task: task.abort_handle(),
                    answer: async move { task.await.unwrap_or_else(|e| Err(e.to_string())) }
                        .boxed()
                        .shared(),
                }
            })
            .answer
            .clone()
    }

    /// The explanations in force (read again when their table has a new version).
    async fn explained(&self, state: &AppState) -> Result<Arc<Explained>, AppError> {
        let version = state.warehouse.explanations_version().await?;
        let mut kept = self.explained.lock().await;
        if let Some((at, explained)) = kept.as_ref()
            && *at == version
        {
            return Ok(Arc::clone(explained));
        }
        let explained = Arc::new(Explained::new(state.warehouse.explanations().await?));
        *kept = Some((version, Arc::clone(&explained)));
        Ok(explained)
    }
}

/// Every flag of `year` (a school year with figures) and the explanations in force, waiting for
/// the flags up to `wait`; none if they are not ready by then.
pub(super) async fn year_flags(
    page: &PageRequest,
    year: SchoolYear,
    wait: std::time::Duration,
) -> Result<Option<YearFlags>, AppError> {
    let lists = &page.state.flags;
    let computing = lists.of(&page.state, page.figures.key.clone(), year);
    let raised = match tokio::time::timeout(wait, computing).await {
        Ok(Ok(flags)) => flags,
        Ok(Err(why)) => return Err(AppError::Busy(why)),
        Err(_) => return Ok(None),
    };
    Ok(Some(YearFlags {
        raised,
        explained: lists.explained(&page.state).await?,
    }))
}

/// Whether `caller` may see a flag: a province account its own province's (on the flag's
/// year's list, or the province it rolled up to), other accounts every one.
fn sees(caller: &Caller, flag: &Flag) -> bool {
    match (caller.role(), caller.account.province.as_deref()) {
        (Role::Province, Some(own)) => {
            flag.province_code == own
                || ProvinceRegistry::shipped().code_2025(&flag.province_code, flag.school_year) == Some(own)
        }
        (Role::Province, None) => false,
        _ => true,
    }
}

/// What is asked: a school year (default: the latest with figures), a province, only the
/// unexplained flags.
#[derive(Debug, Default, Deserialize)]
pub struct QualityQuery {
    year: Option<String>,
    province: Option<String>,
    show: Option<String>,
}

/// The flags a caller asked for, and what was asked.
struct Asked {
    year: SchoolYear,
    province: Option<ProvinceCode>,
    unexplained_only: bool,
    flags: Vec<Flag>,
    total: usize,
}

async fn asked_flags(page: &PageRequest, caller: &Caller, query: &QualityQuery) -> Result<Asked, AppError> {
    let years = page.figures.years();
    let year: SchoolYear = match (&query.year, years.last()) {
        (Some(year), _) | (None, Some(year)) => year
            .parse()
            .map_err(|_| AppError::BadRequest(format!("{year:?} is not a school year like 2024-2025")))?,
        (None, None) => return Err(AppError::NotFound("no school year has figures yet".into())),
    };
    if !years.contains(&year.to_string()) {
        return Err(AppError::NotFound(format!(
            "{year} has no figures: the school years with figures are {}",
            years.join(", ")
        )));
    }
    let province = super::page::province_asked(query.province.as_deref())?;
    let limit = page.state.settings.query_limits.timeout;
    let all = year_flags(page, year, limit)
        .await?
        .ok_or_else(|| AppError::Busy(unfinished(limit)))?;
    let unexplained_only = query.show.as_deref() == Some("unexplained");
    let visible: Vec<Flag> = all
        .raised
        .iter()
        .filter(|f| sees(caller, f))
        .filter(|f| province.as_ref().is_none_or(|p| f.province_code == p.as_str()))
        .map(|f| Flag {
            explanation: all.explained.of(f).cloned(),
            ..f.clone()
        })
        .collect();
    let total = visible.len();
    let flags = visible
        .into_iter()
        .filter(|f| !unexplained_only || f.explanation.is_none())
        .collect();
    Ok(Asked {
        year,
        province,
        unexplained_only,
        flags,
        total,
    })
}

/// How many of a year's flags rest under a KPI's figure, unexplained: those of the checks
/// reading a table the KPI reads.
pub(super) fn unexplained_under(flags: &YearFlags, kpi: &Kpi, metrics: &warehouse::kpi::metrics::Metrics) -> usize {
    let read = metrics.tables_read(&kpi.table);
    let bearing: Vec<&str> = metrics
        .checks
        .iter()
        .filter(|c| !metrics.check_tables(c).is_disjoint(&read))
        .map(|c| c.id.as_str())
        .collect();
    flags
        .raised
        .iter()
        .filter(|f| bearing.contains(&f.check_id.as_str()) && flags.explained.of(f).is_none())
        .count()
}

/// A flag as the page lists it.
pub struct Line {
    province: String,
    province_href: String,
    check: String,
    unit: String,
    message: String,
    explanation: Option<String>,
    /// What the explain form sends back to find the flag.
    check_id: String,
    province_code: String,
    unit_key: String,
    values: String,
    may_explain: bool,
}

/// A check's count of flags.
pub struct CheckCount {
    name: String,
    flags: usize,
    unexplained: usize,
}

/// `/quality`.
#[derive(Template)]
#[template(path = "quality.html")]
pub struct QualityPage {
    chrome: Chrome,
    csrf: String,
    years: Vec<String>,
    year: String,
    province: String,
    unexplained_only: bool,
    total: usize,
    counts: Vec<CheckCount>,
    lines: Vec<Line>,
    more: usize,
    max_comment: usize,
}

fn quality_page(page: &PageRequest, caller: &Caller, asked: Asked) -> Result<QualityPage, AppError> {
    let lang = page.lang;
    let metrics = page.state.warehouse.metrics()?;
    let year = asked.year.to_string();
    let may_explain = caller.role().may(Action::Explain);
    let check_name = |id: &str| {
        metrics
            .checks
            .iter()
            .find(|c| c.id == id)
            .map_or(id.to_string(), |c| lang.pick(&c.name_vi, &c.name_en).to_string())
    };
    let counts = metrics
        .checks
        .iter()
        .map(|check| {
            let raised: Vec<&Flag> = asked.flags.iter().filter(|f| f.check_id == check.id).collect();
            CheckCount {
                name: lang.pick(&check.name_vi, &check.name_en).to_string(),
                flags: raised.len(),
                unexplained: raised.iter().filter(|f| f.explanation.is_none()).count(),
            }
        })
        .filter(|c| c.flags > 0)
        .collect();
    let lines = asked
        .flags
        .iter()
        .take(LISTED)
        .map(|flag| Line {
            province: province_name(&flag.province_code, Dimension::Province, &year),
            province_href: format!("/province/{}?year={year}&list=province", flag.province_code),
            check: check_name(&flag.check_id),
            unit: flag.named_unit(),
            message: lang.pick(&flag.message_vi, &flag.message_en).to_string(),
            explanation: flag.explanation.as_ref().map(|e| {
                format!(
                    "{} ({}, {}): {}",
                    lang.pick("Đã giải thích", "Explained"),
                    e.explained_by,
                    super::review::when(e.explained_at, lang),
                    e.comment
                )
            }),
            check_id: flag.check_id.clone(),
            province_code: flag.province_code.clone(),
            unit_key: flag.unit.clone(),
            values: flag.values(),
            may_explain,
        })
        .collect();
    Ok(QualityPage {
        chrome: page.chrome(),
        csrf: caller.csrf.clone().unwrap_or_default(),
        years: page.figures.years(),
        year,
        province: asked
            .province
            .as_ref()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        unexplained_only: asked.unexplained_only,
        total: asked.total,
        counts,
        more: asked.flags.len().saturating_sub(LISTED),
        lines,
        max_comment: MAX_COMMENT,
    })
}

async fn page(page: PageRequest, FlagReader { caller, .. }: FlagReader, Query(query): Query<QualityQuery>) -> Response {
    let built = async {
        let asked = asked_flags(&page, &caller, &query).await?;
        quality_page(&page, &caller, asked)
    };
    page.respond(built.await)
}

async fn api(
    page: PageRequest,
    FlagReader { caller, .. }: FlagReader,
    Query(query): Query<QualityQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let asked = asked_flags(&page, &caller, &query).await?;
    Ok(Json(serde_json::json!({
        "school_year": asked.year,
        "province_code": asked.province,
        "flags": asked.flags,
    })))
}

/// Which flag is explained, and why.
#[derive(Debug, Deserialize)]
pub struct ExplainForm {
    csrf: Option<String>,
    year: String,
    check_id: String,
    province_code: String,
    unit: String,
    /// The values the flag had on the page (the form's); the API explains the values now.
    values: Option<String>,
    comment: String,
}

/// Explains a flag as it stands (with the values the page showed, for the form), audited.
async fn explain(page: &PageRequest, caller: &Caller, form: &ExplainForm) -> Result<Flag, AppError> {
    let query = QualityQuery {
        year: Some(form.year.clone()),
        province: Some(form.province_code.clone()),
        show: None,
    };
    let asked = asked_flags(page, caller, &query).await?;
    let flag = asked
        .flags
        .into_iter()
        .find(|f| {
            f.check_id == form.check_id
                && f.unit == form.unit
                && form.values.as_ref().is_none_or(|values| *values == f.values())
        })
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no flag {} of {} in province {} for {}: it may have been sent again with other figures; reload the \
                 page",
                form.check_id, form.unit, form.province_code, form.year
            ))
        })?;
    let explanation = explanation_of(&flag, &form.comment, &caller.account.name)?;
    let mut event = audit_event(Some(caller), "explain_flag", "ok");
    event.province_code = Some(flag.province_code.clone());
    event.school_year = Some(flag.school_year.to_string());
    event.detail = Some(format!(
        "{} {} ({}): {}",
        flag.check_id,
        flag.unit,
        flag.values(),
        explanation.comment
    ));
    match page.state.warehouse.explain(&explanation).await {
        Ok(()) => audit(&page.state, event).await,
        Err(e) => {
            event.outcome = "failed".into();
            audit(&page.state, event).await;
            return Err(e.into());
        }
    }
    Ok(Flag {
        explanation: Some(explanation),
        ..flag
    })
}

async fn explain_form(
    page: PageRequest,
    Explainer { caller, .. }: Explainer,
    axum::Form(form): axum::Form<ExplainForm>,
) -> Result<Redirect, PageError> {
    let lang = page.lang;
    let done = async {
        check_csrf(&caller, form.csrf.as_deref())?;
        explain(&page, &caller, &form).await
    };
    done.await.map_err(|e| e.in_lang(lang))?;
    Ok(Redirect::to(&format!(
        "/quality?year={}&province={}",
        urlencoding(&form.year),
        urlencoding(&form.province_code)
    )))
}

/// A value for a query string (school years and province codes are digits and dashes; anything
/// else is dropped).
fn urlencoding(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

async fn explain_api(
    page: PageRequest,
    Explainer { caller, .. }: Explainer,
    Json(form): Json<ExplainForm>,
) -> Result<Json<Flag>, AppError> {
    Ok(Json(explain(&page, &caller, &form).await?))
}

/// The quality page, its form and the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/quality", get(page))
        .route("/quality/explain", post(explain_form))
        .route("/api/v1/quality", get(api))
        .route("/api/v1/quality/explanations", post(explain_api))
}

/// What a KPI page says of the flags under its figure.
pub(super) fn kpi_note(
    flags: Option<&YearFlags>,
    kpi: &Kpi,
    metrics: &warehouse::kpi::metrics::Metrics,
    year: &str,
    lang: Lang,
) -> String {
    match flags {
        Some(flags) => match unexplained_under(flags, kpi, metrics) {
            0 => lang
                .pick(
                    "Không có cảnh báo chưa giải thích nào về số liệu của chỉ tiêu này trong năm.",
                    "No unexplained flag rests under this figure this year.",
                )
                .to_string(),
            n => format!(
                "{} {}",
                lang.number(n as f64, 0),
                lang.pick(
                    "cảnh báo số liệu bất thường chưa được giải thích nằm dưới số liệu này",
                    "unexplained flags of figures that look wrong rest under this figure"
                )
            ),
        },
        None => format!(
            "{} ({year})",
            lang.pick(
                "Đang kiểm tra số liệu bất thường",
                "The plausibility checks are still running"
            )
        ),
    }
}
