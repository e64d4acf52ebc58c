//! Boards: named pages of charts, each a query with how to draw it (pinned from `/sql`).
//! Analysts and admins make boards, pin charts and see every board; an admin may make a board
//! public, when none of its queries reads records of people (whose small groups an arbitrary
//! query cannot withhold), and then everyone sees it as they see the dashboard. A board's charts
//! are drawn again only when the tables change: the drawing is kept per board, language and
//! tables' state, and the page carries an `ETag` of the same (a matching `If-None-Match` gets
//! 304). Each query runs under the server's query limits.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::Mutex;
use warehouse::people::rights::Role;
use warehouse::people::workbench::{Board, PinnedChart, Workbench};

use super::error::AppError;
use super::page::{Chrome, PageQuery, language};
use super::page::{PageError, check_csrf};
use super::roles::{Admin, Querier};
use crate::AppState;
use crate::charts::result::{ChartKind, ChartSpec, ResultColumns};
use crate::i18n::Lang;

/// The drawings of boards, each board's behind its own lock (a board being drawn holds up
/// the views of that board only): by language, the last drawing with the state it was drawn
/// at (the board's charts and the tables').
#[derive(Debug, Clone, Default)]
pub struct BoardDrawings(Arc<Mutex<HashMap<String, Arc<Mutex<Drawn>>>>>);

/// A board's last drawings, by language: (the state drawn at, the charts).
type Drawn = HashMap<&'static str, (String, Arc<Vec<DrawnChart>>)>;

/// A chart of a board as drawn: its title, its SVG or why there is none, its query.
#[derive(Debug, Clone)]
pub struct DrawnChart {
    title: String,
    svg: String,
    problem: String,
    query_link: String,
}

/// `/boards/{id}`.
#[derive(Template)]
#[template(path = "board.html")]
pub struct BoardPage {
    chrome: Chrome,
    csrf: String,
    board: Board,
    charts: Arc<Vec<DrawnChart>>,
    /// Whether the viewer may query (links to the queries) and is an admin (the public switch).
    querier: bool,
    admin: bool,
}

/// `/boards`.
#[derive(Template)]
#[template(path = "boards.html")]
pub struct BoardsPage {
    chrome: Chrome,
    csrf: String,
    boards: Vec<Board>,
    querier: bool,
}

/// The tables a query reads that hold people (learner and teacher records, or a declared view
/// over them), by the words it names.
fn reads_people(state: &AppState, sql: &str) -> bool {
    let Ok(metrics) = state.warehouse.metrics() else {
        return true;
    };
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .flat_map(|word| metrics.tables_read(word))
        .any(|table| {
            ingest::ReportKind::ALL
                .into_iter()
                .any(|kind| kind.holds_people() && warehouse::fact_table(kind) == table)
        })
}

/// Draws a board's charts (each query under the server's limits, as an analyst reads), or
/// gives the drawing kept for the same board, language and tables' state.
async fn drawings(state: &AppState, board: &Board, lang: Lang, tag: &str) -> Arc<Vec<DrawnChart>> {
    let key = format!("{}|{tag}", serde_json::to_string(&board.charts).unwrap_or_default());
    let this_board = Arc::clone(state.boards.0.lock().await.entry(board.id.clone()).or_default());
    let mut kept = this_board.lock().await;
    if let Some((drawn_at, drawn)) = kept.get(lang.code())
        && *drawn_at == key
    {
        return Arc::clone(drawn);
    }
    let mut drawn = Vec::with_capacity(board.charts.len());
    for chart in &board.charts {
        let picture = async {
            let (batches, _) =
                super::sql::slots::run_shown(state, Role::Analyst, &chart.sql, &state.settings.query_limits)
                    .await
                    .map_err(|e| e.to_string())?;
            let columns = Arc::new(ResultColumns::read(&batches)?);
            let kind = ChartKind::parse(&chart.chart).ok_or_else(|| format!("no chart kind {:?}", chart.chart))?;
            let spec = ChartSpec {
                kind,
                x: chart.x.clone(),
                y: chart.y.clone(),
                series: chart.series.clone(),
            };
            columns
                .draw_within(&spec, lang, state.settings.query_limits.timeout)
                .await
        };
        let (svg, problem) = match picture.await {
            Ok(svg) => (svg, String::new()),
            Err(problem) => (String::new(), problem),
        };
        drawn.push(DrawnChart {
            title: chart.title.clone(),
            svg,
            problem,
            query_link: format!("/sql?q={}", super::page::percent_encode(chart.sql.as_bytes())),
        });
    }
    let drawn = Arc::new(drawn);
    // The drawing of the board's earlier state is let go.
    kept.insert(lang.code(), (key, Arc::clone(&drawn)));
    drawn
}

/// `GET /boards/{id}`.
async fn board_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let lang = language(&query, &headers);
    let shown = async {
        let caller = state.auth.caller(&headers).await.map_err(AppError::from)?;
        let role = caller.as_ref().map(|c| c.role());
        let querier = role.is_some_and(|r| r.may(warehouse::people::rights::Action::Query));
        let board = Workbench::new(state.warehouse.layout())
            .board(&id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("{} {id:?}", lang.pick("Không có bảng", "No board"))))?;
        if !board.public && !querier {
            return match caller {
                None => Ok(Redirect::to("/sign-in").into_response()),
                Some(_) => Err(AppError::Forbidden(
                    lang.pick(
                        "Bảng này chỉ dành cho chuyên viên phân tích và quản trị.",
                        "This board is for analysts and admins.",
                    )
                    .to_string(),
                )),
            };
        }
        let tag = state.warehouse.current_tag().await?;
        // The board, the language, what the viewer may do and the tables' state.
        let state_of_page = format!(
            "{}|{}|{querier}|{tag}",
            serde_json::to_string(&board).unwrap_or_default(),
            lang.code()
        );
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(state_of_page.as_bytes()));
        let etag = format!("\"board-{}\"", &digest[..16]);
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|sent| sent.split(',').any(|t| t.trim() == etag))
        {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        let figures = state.figures().await?;
        let page = BoardPage {
            chrome: Chrome::new(&figures, lang, &query),
            csrf: caller.as_ref().and_then(|c| c.csrf.clone()).unwrap_or_default(),
            charts: drawings(&state, &board, lang, &tag).await,
            board,
            querier,
            admin: role == Some(Role::Admin),
        };
        let html = page.render().map_err(AppError::internal)?;
        let mut response = Html(html).into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(response)
    };
    shown.await.map_err(|e: AppError| e.in_lang(lang))
}

/// `GET /boards`: the boards the viewer may see.
async fn boards_page(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let lang = language(&query, &headers);
    let listed = async {
        let caller = state.auth.caller(&headers).await.map_err(AppError::from)?;
        let querier = caller
            .as_ref()
            .is_some_and(|c| c.role().may(warehouse::people::rights::Action::Query));
        let boards = Workbench::new(state.warehouse.layout())
            .boards()
            .await?
            .into_iter()
            .filter(|b| b.public || querier)
            .collect();
        let figures = state.figures().await?;
        let page = BoardsPage {
            chrome: Chrome::new(&figures, lang, &query),
            csrf: caller.and_then(|c| c.csrf).unwrap_or_default(),
            boards,
            querier,
        };
        page.render()
            .map(|html| Html(html).into_response())
            .map_err(AppError::internal)
    };
    listed.await.map_err(|e: AppError| e.in_lang(lang))
}

/// The form that makes a board.
#[derive(Debug, Deserialize)]
pub struct NewBoard {
    csrf: Option<String>,
    name: String,
}

/// `POST /boards`.
async fn create_board(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    axum::Form(form): axum::Form<NewBoard>,
) -> Result<Redirect, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    check_csrf(&caller, form.csrf.as_deref()).map_err(|e| e.in_lang(lang))?;
    let board = Workbench::new(state.warehouse.layout())
        .create_board(&form.name, &caller.account.name)
        .await
        .map_err(|e| AppError::from(e).in_lang(lang))?;
    Ok(Redirect::to(&format!("/boards/{}", board.id)))
}

/// The form that pins a chart (from `/sql`'s chart) to a board.
#[derive(Debug, Deserialize)]
pub struct Pin {
    csrf: Option<String>,
    board: String,
    title: String,
    sql: String,
    chart: String,
    x: String,
    y: String,
    series: Option<String>,
}

/// `POST /boards/pin`.
async fn pin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Querier { caller, .. }: Querier,
    axum::Form(form): axum::Form<Pin>,
) -> Result<Redirect, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    let id = form.board.clone();
    let pinned = async {
        check_csrf(&caller, form.csrf.as_deref())?;
        if ChartKind::parse(&form.chart).is_none() {
            return Err(AppError::BadRequest(format!("no chart kind {:?}", form.chart)));
        }
        let chart = PinnedChart {
            title: form.title,
            sql: form.sql,
            chart: form.chart,
            x: form.x,
            y: form.y,
            series: form.series.filter(|s| !s.is_empty()),
            pinned_by: caller.account.name.clone(),
        };
        let boards = Workbench::new(state.warehouse.layout());
        let board = boards
            .board(&id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no board {id:?}")))?;
        if board.public && caller.role() != Role::Admin {
            // What strangers see is an admin's choice: the same as making a board public.
            return Err(AppError::Forbidden(
                lang.pick(
                    "Bảng này công khai: chỉ quản trị viên được ghim biểu đồ vào đó. Hãy ghim vào một bảng không công \
                     khai, rồi nhờ quản trị viên công khai bảng.",
                    "This board is public: only an admin may pin a chart to it. Pin it to a board that is not public, \
                     then ask an admin to make that board public.",
                )
                .to_string(),
            ));
        }
        if board.public && reads_people(&state, &chart.sql) {
            return Err(people_on_a_public_board(lang));
        }
        boards.pin(&id, &chart).await?;
        Ok(Redirect::to(&format!("/boards/{id}")))
    };
    pinned.await.map_err(|e| e.in_lang(lang))
}

fn people_on_a_public_board(lang: Lang) -> AppError {
    AppError::BadRequest(
        lang.pick(
            "Bảng công khai không được có truy vấn đọc hồ sơ người học hoặc nhà giáo: nhóm dưới 10 người không thể \
             được che trong một truy vấn tùy ý.",
            "A public board cannot hold a query that reads learner or teacher records: groups of fewer than 10 \
             people cannot be withheld from an arbitrary query.",
        )
        .to_string(),
    )
}

/// The form that makes a board public or not.
#[derive(Debug, Deserialize)]
pub struct Publish {
    csrf: Option<String>,
    public: String,
}

/// `POST /boards/{id}/public` (admins).
async fn publish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Admin { caller, .. }: Admin,
    axum::Form(form): axum::Form<Publish>,
) -> Result<Redirect, PageError> {
    let lang = language(&PageQuery::default(), &headers);
    let published = async {
        check_csrf(&caller, form.csrf.as_deref())?;
        let public = form.public == "1";
        let boards = Workbench::new(state.warehouse.layout());
        let board = boards
            .board(&id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no board {id:?}")))?;
        if public && board.charts.iter().any(|c| reads_people(&state, &c.sql)) {
            return Err(people_on_a_public_board(lang));
        }
        boards.set_public(&id, public).await?;
        Ok(Redirect::to(&format!("/boards/{id}")))
    };
    published.await.map_err(|e| e.in_lang(lang))
}

/// The boards' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/boards", get(boards_page).post(create_board))
        .route("/boards/{id}", get(board_page))
        .route("/boards/pin", post(pin))
        .route("/boards/{id}/public", post(publish))
}
