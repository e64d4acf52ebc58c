//! Who calls: every call carries an account's credential — `Authorization: Bearer TOKEN`, or
//! `Basic` with the account's name and token (a client's handshake sends it once and is given
//! the bearer header back). Only analyst and admin accounts get in; a revoked account is out at
//! its next call. Wrong credentials spend the caller's address's budget of sign-in checks, as on
//! every other way in.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use tonic::Status;
use tonic::metadata::MetadataMap;
use warehouse::people::accounts::Account;
use warehouse::people::rights::Action;
use warehouse::tables::rows::AuditEvent;

use crate::pg::WireState;

/// Basic credentials' base64, padded or not (Go's Flight client leaves the padding off).
const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A credential as a call carries it.
enum Credential {
    Bearer(String),
    Basic { name: String, token: String },
}

impl Credential {
    fn of(metadata: &MetadataMap) -> Result<Self, Status> {
        let missing = || {
            Status::unauthenticated(
                "sign in: send `authorization: Bearer TOKEN`, or Basic with the account's name and its token",
            )
        };
        let header = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(missing)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return Ok(Credential::Bearer(token.trim().to_string()));
        }
        let encoded = header.strip_prefix("Basic ").ok_or_else(missing)?;
        let decoded = BASIC
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(missing)?;
        let (name, token) = decoded.split_once(':').ok_or_else(missing)?;
        Ok(Credential::Basic {
            name: name.to_string(),
            token: token.to_string(),
        })
    }

    fn token(&self) -> &str {
        match self {
            Credential::Bearer(token) | Credential::Basic { token, .. } => token,
        }
    }
}

/// A caller signed in: its account and the token it signed in with.
pub(super) struct Signed {
    pub(super) account: Account,
    pub(super) token: String,
}

/// The account a call comes from, allowed to query; else why not (a refused credential is
/// audited).
pub(super) async fn caller(
    state: &WireState,
    metadata: &MetadataMap,
    source: Option<std::net::SocketAddr>,
) -> Result<Signed, Status> {
    let credential = Credential::of(metadata)?;
    let source = source.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip());
    let account = crate::auth::from_source(source, state.auth.verify(credential.token()))
        .await
        .map_err(|e| match e {
            crate::auth::AuthError::TooMany(_) => Status::resource_exhausted(e.to_string()),
            crate::auth::AuthError::Warehouse(e) => Status::unavailable(e.to_string()),
        })?;
    let named = |account: &Account| match &credential {
        Credential::Basic { name, .. } => account.name == *name,
        Credential::Bearer(_) => true,
    };
    match account {
        Some(account) if named(&account) && account.role.may(Action::Query) => Ok(Signed {
            account,
            token: credential.token().to_string(),
        }),
        Some(account) if named(&account) => {
            let why = warehouse::people::rights::refusal(account.role, Action::Query).0;
            refused(
                state,
                "forbidden",
                &format!("an Arrow Flight SQL client as {:?}: {why}", account.name),
            );
            Err(Status::permission_denied(why))
        }
        _ => {
            refused(
                state,
                "unauthorized",
                "an Arrow Flight SQL client: a token that matches no active account of that name",
            );
            Err(Status::unauthenticated(
                "the token matches no active account of that name",
            ))
        }
    }
}

fn refused(state: &WireState, outcome: &str, detail: &str) {
    let mut event = AuditEvent::now("sign_in", outcome);
    event.detail = Some(detail.to_string());
    state.audit.record(event);
}

/// A handshake's account signed in: audited as a sign-in.
pub(super) fn signed_in(state: &WireState, account: &Account) {
    let mut event = AuditEvent::now("sign_in", "ok");
    event.actor = Some(account.name.clone());
    event.role = Some(account.role.as_str().to_string());
    event.detail = Some("an Arrow Flight SQL client".into());
    state.audit.record(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(header: &str) -> Result<Credential, Status> {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", header.parse().expect("a header"));
        Credential::of(&metadata)
    }

    #[test]
    fn basic_credentials_are_read_padded_or_not_and_bearer_tokens_as_they_are() {
        // "ana:k1x" needs one padding character; Go's client sends it without.
        for encoded in ["YW5hOmsxeA==", "YW5hOmsxeA"] {
            match credential(&format!("Basic {encoded}")) {
                Ok(Credential::Basic { name, token }) => assert_eq!((name.as_str(), token.as_str()), ("ana", "k1x")),
                _ => panic!("{encoded} is ana:k1x"),
            }
        }
        assert!(matches!(credential("Bearer  khoso_x "), Ok(Credential::Bearer(token)) if token == "khoso_x"));
        for refused in ["Basic !!!", "Basic YW5h", "Digest abc", "khoso_x"] {
            assert!(credential(refused).is_err(), "{refused}");
        }
        assert!(Credential::of(&MetadataMap::new()).is_err());
    }
}
