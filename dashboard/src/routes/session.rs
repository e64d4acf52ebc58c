//! Signing in and out of the web pages: the token is checked once, and a session cookie
//! (HttpOnly, SameSite=Strict, Secure behind HTTPS) carries the session, with a CSRF token for
//! its forms. Every attempt is audited.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::audit::{audit, audit_event};
use super::error::AppError;
use super::page::{Chrome, CsrfForm, OrPage, PageError, PageLang, PageQuery, form_caller, language, render};
use crate::AppState;
use crate::auth::{Caller, SESSION_COOKIE};

/// The session's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
}

/// `/sign-in`.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    chrome: Chrome,
    message: String,
}

async fn sign_in_page(Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = language(&query, &headers);
    render(
        StatusCode::OK,
        &SignInPage {
            chrome: Chrome::bare(lang),
            message: String::new(),
        },
        lang,
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
}

async fn sign_in(
    State(state): State<AppState>,
    PageLang(lang): PageLang,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignInForm>,
) -> Result<Response, PageError> {
    if let Err(refused) = same_origin(&headers) {
        let mut event = audit_event(None, "sign_in", "forbidden");
        event.detail = Some("a sign-in form sent from another site".into());
        state.audit.record(event);
        return Err(refused.in_lang(lang));
    }
    let account = state.auth.verify(&form.token).await.or_page(lang)?;
    let Some(account) = account else {
        // Queued, so a flood of wrong tokens is written in a few commits, not one each.
        let mut event = audit_event(None, "sign_in", "unauthorized");
        event.detail = Some("a token that matches no active account".into());
        state.audit.record(event);
        let page = SignInPage {
            chrome: Chrome::bare(lang),
            message: lang
                .pick(
                    "Mã truy cập không đúng hoặc đã bị thu hồi.",
                    "That token is wrong or has been revoked.",
                )
                .to_string(),
        };
        return Ok(render(StatusCode::UNAUTHORIZED, &page, lang));
    };
    let session = state.auth.open_session(&account).await.or_page(lang)?;
    let caller = Caller { account, csrf: None };
    audit(&state, audit_event(Some(&caller), "sign_in", "ok")).await;
    let mut response = Redirect::to("/upload").into_response();
    let secure = match super::page::secure_cookies(&state, &headers) {
        true => "; Secure",
        false => "",
    };
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{secure}"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Refuses a form another site's page sent (login CSRF: signing a victim in as the attacker):
/// a browser says where a form comes from (`Sec-Fetch-Site`, `Origin`, else `Referer`), and it
/// must be this server. A client that says nothing (a script, curl) is not a browser tricked
/// into sending.
fn same_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = || AppError::Forbidden("a sign-in form sent from another site is refused: open /sign-in here".into());
    if text("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return Err(refused());
    }
    let host = text("host").unwrap_or_default();
    let sender = text("origin").filter(|o| *o != "null").or_else(|| text("referer"));
    let sender_host = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        rest.split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    match (sender, text("origin")) {
        (_, Some("null")) => Err(refused()),
        (Some(url), _) if sender_host(url) != host.to_ascii_lowercase() => Err(refused()),
        _ => Ok(()),
    }
}

async fn sign_out(
    State(state): State<AppState>,
    PageLang(lang): PageLang,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, PageError> {
    let caller = form_caller(&state, &headers, &form.csrf).await.or_page(lang)?;
    if let Some(cookie) = crate::auth::session_id(&headers) {
        state.auth.close_session(cookie).await.or_page(lang)?;
    }
    audit(&state, audit_event(Some(&caller), "sign_out", "ok")).await;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("khoso_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}
