//! The page kit: what every page shares and nothing else provides — the frame around a page
//! ([`Chrome`]), the request's language, the figures and query a page is asked with
//! ([`PageRequest`]), the school year asked for, rendering a page or an error page, and forms
//! with their CSRF token.

use std::sync::Arc;

use askama::Template;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use ingest::SchoolYear;
use serde::Deserialize;
use warehouse::kpi::metrics::Dimension;

use super::error::AppError;
use crate::AppState;
use crate::auth::Caller;
use crate::figures::Figures;
use crate::i18n::{Lang, Words};

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
    /// The KPI the overview's map shows.
    pub map: Option<String>,
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

/// The language of a request, as an extractor: `?lang=`, else the `lang` cookie, else
/// Vietnamese.
pub struct PageLang(pub Lang);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(language_of(&parts.headers, &parts.uri)))
    }
}

/// A result whose error is answered as a page in the request's language: a page's handler
/// returns `Result<_, PageError>` and writes `….or_page(lang)?`.
pub trait OrPage<T> {
    /// The error as a page in `lang`.
    fn or_page(self, lang: Lang) -> Result<T, PageError>;
}

impl<T, E: Into<AppError>> OrPage<T> for Result<T, E> {
    fn or_page(self, lang: Lang) -> Result<T, PageError> {
        self.map_err(|e| e.into().in_lang(lang))
    }
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

/// An error of a route that answers both programs and people (a layer before every route, the
/// fallback), as the request's path expects: JSON under `/api/`, else a page in the request's
/// language.
pub fn answer_error(error: AppError, headers: &HeaderMap, uri: &Uri) -> Response {
    match uri.path().starts_with("/api/") {
        true => error.json(),
        false => error.page(language_of(headers, uri)),
    }
}

/// A page built, or the error page; `?lang=` is remembered in a cookie.
pub fn respond(built: Result<impl Template, AppError>, query: &PageQuery, lang: Lang) -> Response {
    let html = built.and_then(|page| page.render().map_err(AppError::internal));
    let mut response = html.map_or_else(|e| e.page(lang), |html| Html(html).into_response());
    if query.lang.is_some()
        && let Ok(cookie) =
            HeaderValue::from_str(&format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code()))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The province a query asks for (`?province=01`), none when it asks for none.
pub fn province_asked(asked: Option<&str>) -> Result<Option<ingest::ProvinceCode>, AppError> {
    match asked.map(str::trim) {
        None | Some("") => Ok(None),
        Some(code) => code
            .parse()
            .map(Some)
            .map_err(|_| AppError::BadRequest(format!("{code:?} is not a province code such as 01"))),
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

pub fn render(status: StatusCode, page: &impl Template, lang: Lang) -> Response {
    page.render().map_or_else(
        |e| AppError::internal(e).page(lang),
        |html| (status, Html(html)).into_response(),
    )
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

impl AppError {
    /// The error as a page in the user's language.
    pub fn page(self, lang: Lang) -> Response {
        self.log();
        let status = self.status();
        let title = match &self {
            AppError::NotFound(_) => lang.pick("Không tìm thấy", "Not found"),
            AppError::BadRequest(_) => lang.pick("Yêu cầu không hợp lệ", "Bad request"),
            AppError::Unauthorized(_) => lang.pick("Cần đăng nhập", "Sign-in needed"),
            AppError::Forbidden(_) => lang.pick("Không được phép", "Not allowed"),
            AppError::TooLarge(_) => lang.pick("Tệp quá lớn", "File too large"),
            AppError::TooMany(_) => lang.pick("Quá nhiều truy vấn cùng lúc", "Too many queries at once"),
            AppError::SlowDown(..) => lang.pick("Quá nhiều lần đăng nhập", "Too many sign-in attempts"),
            AppError::Busy(_) => lang.pick("Máy chủ đang bận", "The server is busy"),
            AppError::Internal(_) => lang.pick("Lỗi hệ thống", "Something went wrong"),
        };
        let page = ErrorPage {
            chrome: Chrome::bare(lang),
            title: title.to_string(),
            message: self.to_string(),
        };
        let response = match Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        };
        self.with_retry_after(response)
    }
}

/// An error of a page, in the page's language.
pub struct PageError(AppError, Lang);

impl AppError {
    /// The error as the page of a request in `lang` shows it.
    pub fn in_lang(self, lang: Lang) -> PageError {
        PageError(self, lang)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.page(self.1)
    }
}

/// A form that carries the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub(super) csrf: String,
}

/// The caller of a cookie-signed form post, if its CSRF token matches.
pub(super) async fn form_caller(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Caller, AppError> {
    let caller = state
        .auth
        .caller(headers)
        .await?
        .ok_or_else(|| AppError::Unauthorized("sign in first".into()))?;
    check_csrf(&caller, Some(csrf))?;
    Ok(caller)
}

/// Checks that a form posted with a web session's cookie carries that session's CSRF token (a
/// bearer token needs none).
pub fn check_csrf(caller: &Caller, sent: Option<&str>) -> Result<(), AppError> {
    match caller.csrf.as_deref() {
        Some(expected) if Some(expected) != sent => Err(AppError::Forbidden(
            "the form has expired: reload the page and try again".into(),
        )),
        _ => Ok(()),
    }
}

/// Bytes percent-encoded for a URL: everything but ASCII letters, digits and `-_.~`.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Whether cookies should say `Secure`: the server is behind a proxy that says the request came
/// over HTTPS.
pub(crate) fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.behind_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}
