//! The role a route needs, as an extractor: [`Uploader`], [`Querier`], [`Admin`], [`FlagReader`],
//! [`Explainer`]. Whether a role may do the work is [`warehouse::people::rights`]' rule, the same
//! the PostgreSQL sign-in and the intake ask. A stranger is sent to sign in (a page) or answered 401 (the API); an
//! account of another role is refused with the reason, in the page's language.
//!
//! To give a route a new role: a marker type with its [`Action`], and an alias.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use warehouse::people::rights::{Action, refusal};

use super::error::AppError;
use super::page::language_of;
use crate::AppState;
use crate::auth::Caller;

/// The work a route does, as the rights know it.
pub trait Work {
    /// The action.
    const ACTION: Action;
}

/// Sending reports.
pub enum Uploading {}

impl Work for Uploading {
    const ACTION: Action = Action::Upload;
}

/// Querying with SQL.
pub enum Querying {}

impl Work for Querying {
    const ACTION: Action = Action::Query;
}

/// Reviewing submissions.
pub enum Reviewing {}

impl Work for Reviewing {
    const ACTION: Action = Action::Review;
}

/// Seeing the plausibility checks' flags.
pub enum SeeingFlags {}

impl Work for SeeingFlags {
    const ACTION: Action = Action::SeeFlags;
}

/// Explaining a flag.
pub enum Explaining {}

impl Work for Explaining {
    const ACTION: Action = Action::Explain;
}

/// A signed-in caller whose role may do `W`.
pub struct Signed<W> {
    /// The caller.
    pub caller: Caller,
    work: PhantomData<W>,
}

/// A caller who may upload.
pub type Uploader = Signed<Uploading>;

/// A caller who may query.
pub type Querier = Signed<Querying>;

/// A caller who may review.
pub type Admin = Signed<Reviewing>;

/// A caller who may see the flags.
pub type FlagReader = Signed<SeeingFlags>;

/// A caller who may explain a flag.
pub type Explainer = Signed<Explaining>;

impl<W: Work> FromRequestParts<AppState> for Signed<W> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let api = parts.uri.path().starts_with("/api/");
        let lang = language_of(&parts.headers, &parts.uri);
        let refuse = |error: AppError| match api {
            true => error.into_response(),
            false => error.page(lang),
        };
        let caller = state
            .auth
            .caller(&parts.headers)
            .await
            .map_err(|e| refuse(AppError::from(e)))?;
        match caller {
            Some(caller) if caller.role().may(W::ACTION) => Ok(Self {
                caller,
                work: PhantomData,
            }),
            Some(caller) => {
                let (en, vi) = refusal(caller.role(), W::ACTION);
                Err(refuse(AppError::Forbidden(
                    match api {
                        true => en,
                        false => lang.pick(vi, en),
                    }
                    .to_string(),
                )))
            }
            None if !api => Err(Redirect::to("/sign-in").into_response()),
            None => {
                Err(AppError::Unauthorized("sign in first: send Authorization: Bearer TOKEN".into()).into_response())
            }
        }
    }
}
