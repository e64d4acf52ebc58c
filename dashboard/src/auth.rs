//! Who is asking: an account signed in by a bearer token (`Authorization: Bearer TOKEN`) or by
//! the session cookie that signing in on the web sets. The cookie is signed (HMAC-SHA-256 under
//! the session key: `KHOSO_SESSION_KEY` from the configuration, else the warehouse's own
//! `secret/session.key`), so every web node of one warehouse, behind one load balancer, knows
//! it without asking the node that set it, and a restart signs nobody out; the CSRF token its
//! forms must send back is derived from it under the same key. A session ends when it expires,
//! when its account is revoked, or at sign-out (noted in the warehouse, so every node knows).
//! Verified tokens are remembered by their SHA-256 until the accounts file changes, so the
//! Argon2 check runs once per token, and a revocation takes effect on the next request.
//!
//! Argon2 is slow and memory-hungry on purpose, so the server spends it sparingly: at most
//! [`CHECKS_AT_ONCE`] checks run at a time, and each source (the client's IP address) has a
//! budget of wrong credentials that refills with time ([`SOURCE_BURST`], one more every
//! [`SOURCE_REFILL`]); right ones cost nothing (34 provinces signing in at once from one
//! network all get in). Past the budget, or when the checks are busy for long, the answer is
//! `429 Too Many Requests` with `Retry-After`, and no Argon2 work is done.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};
use warehouse::people::accounts::{Account, Accounts};
use warehouse::people::rights::Role;
use warehouse::tables::rows::AuditEvent;

use crate::AuditQueue;

/// Argon2 checks that run at once, server-wide.
pub const CHECKS_AT_ONCE: usize = 1;

/// Wrong credentials a source may send in a row before it must wait.
pub const SOURCE_BURST: u32 = 10;

/// The time in which a source earns one more wrong credential.
pub const SOURCE_REFILL: Duration = Duration::from_secs(2);

/// How long a check waits for its turn before the answer is "busy, retry".
const CHECK_WAIT: Duration = Duration::from_secs(10);

/// Sources whose budgets are remembered; past it, full budgets are forgotten.
const SOURCES_KEPT: usize = 10_000;

tokio::task_local! {
    /// The address a request came from, for the budgets of sign-in checks.
    static SOURCE: IpAddr;
}

/// Runs `work` (a request's handling) as coming from `source`.
pub async fn from_source<F: Future>(source: IpAddr, work: F) -> F::Output {
    SOURCE.scope(source, work).await
}

tokio::task_local! {
    /// The account a request turned out to come from, for its log line.
    static ACCOUNT: std::cell::RefCell<Option<String>>;
}

/// Runs `work` (a request's handling) and says which account it turned out to come from.
pub async fn noting_account<F: Future>(work: F) -> (F::Output, Option<String>) {
    ACCOUNT
        .scope(std::cell::RefCell::new(None), async {
            let output = work.await;
            (output, ACCOUNT.with(|account| account.borrow().clone()))
        })
        .await
}

/// Notes the account of the request being handled.
pub fn note_account(name: &str) {
    ACCOUNT
        .try_with(|account| *account.borrow_mut() = Some(name.to_string()))
        .ok();
}

fn current_source() -> IpAddr {
    SOURCE
        .try_with(|source| *source)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Why a credential could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Too many checks from this source, or the checks are busy: try again after the delay.
    #[error("too many sign-in attempts: try again in {} s", .0.as_secs().max(1))]
    TooMany(Duration),
    /// The accounts could not be read.
    #[error(transparent)]
    Warehouse(#[from] warehouse::Error),
}

/// A source's budget of checks.
#[derive(Debug, Clone, Copy)]
struct Budget {
    checks: f64,
    at: Instant,
    /// Checks refused since the last audit event about them, and when that was.
    refused: u64,
    reported: Option<Instant>,
}

impl Budget {
    fn full(now: Instant) -> Self {
        Self {
            checks: f64::from(SOURCE_BURST),
            at: now,
            refused: 0,
            reported: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.duration_since(self.at).as_secs_f64() / SOURCE_REFILL.as_secs_f64();
        self.checks = (self.checks + earned).min(f64::from(SOURCE_BURST));
        self.at = now;
    }
}

/// The sign-in checks' budgets and turns.
#[derive(Debug)]
struct Limiter {
    budgets: std::sync::Mutex<HashMap<IpAddr, Budget>>,
    turns: Arc<Semaphore>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            budgets: std::sync::Mutex::default(),
            turns: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
        }
    }
}

impl Limiter {
    /// Whether the source may have a check now: it has failures left in its budget. When it has
    /// none, the wait until it has one, and — once a minute per source — the audit event
    /// counting the refusals.
    fn admit(&self, source: IpAddr) -> Result<(), (Duration, Option<Box<AuditEvent>>)> {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(budget) = budgets.get_mut(&source) else {
            return Ok(());
        };
        budget.refill(now);
        if budget.checks >= 1.0 {
            return Ok(());
        }
        budget.refused += 1;
        let wait = SOURCE_REFILL.mul_f64(1.0 - budget.checks);
        let report = budget
            .reported
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        let event = report.then(|| {
            let mut event = AuditEvent::now("sign_in", "too_many");
            event.detail = Some(format!(
                "{} sign-in attempts from {source} refused: more than {SOURCE_BURST} wrong credentials, one more \
                 allowed every {} s",
                budget.refused,
                SOURCE_REFILL.as_secs()
            ));
            budget.refused = 0;
            budget.reported = Some(now);
            Box::new(event)
        });
        Err((wait, event))
    }

    /// Spends one unit of the source's budget on a check that found no account.
    fn failed(&self, source: IpAddr) {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if budgets.len() >= SOURCES_KEPT {
            budgets.retain(|_, budget| {
                budget.refill(now);
                budget.checks < f64::from(SOURCE_BURST)
            });
        }
        let budget = budgets.entry(source).or_insert_with(|| Budget::full(now));
        budget.refill(now);
        budget.checks = (budget.checks - 1.0).max(0.0);
    }
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "khoso_session";

/// How long a web session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Where a warehouse keeps its session key when the configuration gives none.
const SESSION_KEY_FILE: &str = "secret/session.key";

/// Where a warehouse notes the sessions signed out before they expired (by their nonce), for
/// every web node to refuse.
const SIGNED_OUT: &str = "sessions/signed-out";

/// The shortest session key accepted from the configuration, in bytes.
const SESSION_KEY_BYTES: usize = 32;

/// A signed-in account, and how it signed in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub account: Account,
    /// The CSRF token of its web session (none for a bearer token, which needs none).
    pub csrf: Option<String>,
}

impl Caller {
    /// Its role.
    pub fn role(&self) -> Role {
        self.account.role
    }
}

/// A web session, as its signed cookie carries it: `ACCOUNT.EXPIRES.NONCE.SIGNATURE`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    account_id: String,
    /// Unix seconds.
    expires: i64,
    nonce: String,
}

/// The key web sessions are signed with.
#[derive(Clone)]
pub struct SessionKey(Arc<[u8]>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    /// A key from the configuration: at least 32 bytes of text (e.g. 64 hex digits).
    pub fn from_configuration(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text.len() >= SESSION_KEY_BYTES {
            true => Ok(Self(Arc::from(text.as_bytes()))),
            false => Err(format!(
                "the session key must be at least {SESSION_KEY_BYTES} characters (e.g. `openssl rand -hex 32`)"
            )),
        }
    }

    /// The warehouse's own key, made on first use (by whichever node comes first; the others
    /// read it).
    async fn of_warehouse(warehouse: &warehouse::Warehouse) -> warehouse::Result<Self> {
        let storage = warehouse.storage();
        if let Some(key) = storage.read(SESSION_KEY_FILE).await? {
            return Ok(Self(Arc::from(key)));
        }
        storage.create(SESSION_KEY_FILE, random_hex(32).into_bytes()).await?;
        let key = storage
            .read(SESSION_KEY_FILE)
            .await?
            .ok_or_else(|| warehouse::Error::Internal("the session key vanished as it was made".into()))?;
        Ok(Self(Arc::from(key)))
    }

    /// The MAC of `text` for one purpose (a session, a CSRF token), so that one is never taken
    /// for the other.
    fn mac(&self, purpose: &str, text: &str) -> hmac::Hmac<Sha256> {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(text.as_bytes());
        mac
    }

    fn sign(&self, purpose: &str, text: &str) -> String {
        hex::encode(self.mac(purpose, text).finalize().into_bytes())
    }

    fn cookie(&self, session: &Session) -> String {
        let payload = format!("{}.{}.{}", session.account_id, session.expires, session.nonce);
        let signature = self.sign("session", &payload);
        format!("{payload}.{signature}")
    }

    /// The session a cookie carries, if this key signed it and it has not expired.
    fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        let (payload, signature) = cookie.rsplit_once('.')?;
        // Compared in constant time, as MACs are.
        self.mac("session", payload)
            .verify_slice(&hex::decode(signature).ok()?)
            .ok()?;
        let mut parts = payload.split('.');
        let session = Session {
            account_id: parts.next()?.to_string(),
            expires: parts.next()?.parse().ok()?,
            nonce: parts.next()?.to_string(),
        };
        (parts.next().is_none() && session.expires > now).then_some(session)
    }

    fn csrf(&self, session: &Session) -> String {
        self.sign("csrf", &session.nonce)[..32].to_string()
    }
}

/// The server's sign-in state.
#[derive(Debug, Clone)]
pub struct Auth {
    accounts: Accounts,
    session_key: Arc<tokio::sync::OnceCell<SessionKey>>,
    warehouse: Arc<warehouse::Warehouse>,
    verified: Arc<Mutex<VerifiedTokens>>,
    limiter: Arc<Limiter>,
    audit: AuditQueue,
}

/// Tokens already checked, by SHA-256, valid while the accounts file is unchanged.
#[derive(Debug, Default)]
struct VerifiedTokens {
    accounts_version: Option<String>,
    by_hash: HashMap<[u8; 32], Account>,
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

impl Auth {
    /// Sign-in over a warehouse's accounts, sessions signed with `session_key` (else with the
    /// warehouse's own); refusals for too many attempts go to `audit`.
    pub fn new(warehouse: Arc<warehouse::Warehouse>, session_key: Option<SessionKey>, audit: AuditQueue) -> Self {
        Self {
            accounts: Accounts::new(warehouse.layout()),
            session_key: Arc::new(tokio::sync::OnceCell::new_with(session_key)),
            warehouse,
            verified: Arc::default(),
            limiter: Arc::default(),
            audit,
        }
    }

    async fn session_key(&self) -> warehouse::Result<&SessionKey> {
        self.session_key
            .get_or_try_init(|| SessionKey::of_warehouse(&self.warehouse))
            .await
    }

    /// The active account of a token. A token not checked before costs one Argon2 check, within
    /// the request's source's budget and the server's turns.
    pub async fn verify(&self, token: &str) -> Result<Option<Account>, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let version = self.accounts.version().await?;
        {
            let mut verified = self.verified.lock().await;
            if verified.accounts_version != version {
                *verified = VerifiedTokens {
                    accounts_version: version.clone(),
                    by_hash: HashMap::new(),
                };
            }
            if let Some(account) = verified.by_hash.get(&key) {
                return Ok(Some(account.clone()));
            }
        }
        let source = current_source();
        let admit = || match self.limiter.admit(source) {
            Ok(()) => Ok(()),
            Err((wait, event)) => {
                if let Some(event) = event {
                    self.audit.record(*event);
                }
                Err(AuthError::TooMany(wait))
            }
        };
        admit()?;
        let turn = tokio::time::timeout(CHECK_WAIT, Arc::clone(&self.limiter.turns).acquire_owned())
            .await
            .map_err(|_| AuthError::TooMany(CHECK_WAIT))?
            .map_err(|e| warehouse::Error::failed("the sign-in checks", e))?;
        // Asked again with the turn in hand: the checks that waited meanwhile may have spent
        // the budget.
        admit()?;
        let accounts = self.accounts.list().await?;
        let token = token.to_string();
        let account = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            warehouse::people::accounts::verify_among(accounts, &token)
        })
        .await
        .map_err(warehouse::Error::from)??;
        if account.is_none() {
            self.limiter.failed(source);
        }
        if let Some(account) = &account {
            let mut verified = self.verified.lock().await;
            if verified.accounts_version == version {
                verified.by_hash.insert(key, account.clone());
            }
        }
        Ok(account)
    }

    /// Whether the account with this id is still active (not revoked).
    pub async fn is_active(&self, account_id: &str) -> warehouse::Result<bool> {
        Ok(self
            .accounts
            .list()
            .await?
            .iter()
            .any(|a| a.id == account_id && a.is_active()))
    }

    /// Opens a web session for an account; returns the session cookie's value.
    pub async fn open_session(&self, account: &Account) -> warehouse::Result<String> {
        let session = Session {
            account_id: account.id.clone(),
            expires: chrono::Utc::now().timestamp() + SESSION_LIFETIME.as_secs() as i64,
            nonce: random_hex(16),
        };
        Ok(self.session_key().await?.cookie(&session))
    }

    /// Ends the web session of a cookie, on every node.
    pub async fn close_session(&self, cookie: &str) -> warehouse::Result<()> {
        let key = self.session_key().await?;
        if let Some(session) = key.session(cookie, chrono::Utc::now().timestamp()) {
            let note = format!("{SIGNED_OUT}/{}", session.nonce);
            self.warehouse
                .storage()
                .write(&note, session.expires.to_string().into_bytes())
                .await?;
        }
        Ok(())
    }

    /// Who sent a request: a bearer token first, else the session cookie. An unknown or
    /// revoked credential is nobody. The account found is noted for the request's log line.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, AuthError> {
        let caller = self.find_caller(headers).await?;
        if let Some(caller) = &caller {
            note_account(&caller.account.name);
        }
        Ok(caller)
    }

    async fn find_caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, AuthError> {
        if let Some(token) = bearer(headers) {
            return Ok(self.verify(token).await?.map(|account| Caller { account, csrf: None }));
        }
        let Some(cookie) = session_id(headers) else {
            return Ok(None);
        };
        let key = self.session_key().await?;
        let Some(session) = key.session(cookie, chrono::Utc::now().timestamp()) else {
            return Ok(None);
        };
        let signed_out = format!("{SIGNED_OUT}/{}", session.nonce);
        if self.warehouse.storage().exists(&signed_out).await? {
            return Ok(None);
        }
        let account = self
            .accounts
            .list()
            .await?
            .into_iter()
            .find(|a| a.id == session.account_id && a.is_active());
        Ok(account.map(|account| Caller {
            account,
            csrf: Some(key.csrf(&session)),
        }))
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The session cookie's value.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SessionKey {
        SessionKey::from_configuration(text).expect("a long enough key")
    }

    #[test]
    fn a_signed_session_holds_on_any_node_with_the_key_and_nowhere_else() {
        let (node_a, node_b) = (key(&"k".repeat(40)), key(&"k".repeat(40)));
        let session = Session {
            account_id: "a1b2c3d4".into(),
            expires: 2_000,
            nonce: "00ff".repeat(8),
        };
        let cookie = node_a.cookie(&session);
        assert_eq!(node_b.session(&cookie, 1_000), Some(session.clone()));
        assert_eq!(node_b.csrf(&session), node_a.csrf(&session));
        assert_eq!(node_b.csrf(&session).len(), 32);
        assert_eq!(node_b.session(&cookie, 2_000), None, "expired");
        assert_eq!(key(&"x".repeat(40)).session(&cookie, 1_000), None, "another key");
        // Another account, a later expiry, a changed signature: refused.
        let forged = cookie.replacen("a1b2c3d4", "e5f6a7b8", 1);
        assert_eq!(node_b.session(&forged, 1_000), None);
        let extended = cookie.replacen(".2000.", ".9000.", 1);
        assert_eq!(node_b.session(&extended, 1_000), None);
        let mut flipped = cookie.clone();
        let last = flipped.pop().expect("a signature");
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(node_b.session(&flipped, 1_000), None);
        for junk in ["", ".", "a.b.c.d", "a.1.n.zz", &format!("{cookie}.x")] {
            assert_eq!(node_b.session(junk, 1_000), None, "{junk:?}");
        }
        // The CSRF token is not the session's signature, nor another session's token.
        let other = Session {
            nonce: "11ee".repeat(8),
            ..session.clone()
        };
        assert_ne!(node_a.csrf(&other), node_a.csrf(&session));
        assert!(!cookie.contains(&node_a.csrf(&session)));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(SessionKey::from_configuration("short").is_err());
        assert!(SessionKey::from_configuration(&"k".repeat(32)).is_ok());
        assert_eq!(format!("{:?}", key(&"s".repeat(40))), "SessionKey(…)");
    }
}
