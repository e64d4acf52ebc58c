//! Who is asking: an account signed in by a bearer token (`Authorization: Bearer TOKEN`) or by
//! the session cookie that signing in on the web sets. Sessions live in the server's memory
//! (a restart signs everyone out); each carries the CSRF token its forms must send back.
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
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};
use warehouse::accounts::{Account, Accounts, Role};
use warehouse::audit::AuditEvent;

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
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

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

#[derive(Debug, Clone)]
struct Session {
    account_id: String,
    csrf: String,
    expires: Instant,
}

/// The server's sign-in state.
#[derive(Debug, Clone)]
pub struct Auth {
    accounts: Accounts,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    verified: Arc<Mutex<VerifiedTokens>>,
    limiter: Arc<Limiter>,
    audit: AuditQueue,
}

/// Tokens already checked, by SHA-256, valid while the accounts file is unchanged.
#[derive(Debug, Default)]
struct VerifiedTokens {
    accounts_modified: Option<SystemTime>,
    by_hash: HashMap<[u8; 32], Account>,
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

impl Auth {
    /// Sign-in over these accounts; refusals for too many attempts go to `audit`.
    pub fn new(accounts: Accounts, audit: AuditQueue) -> Self {
        Self {
            accounts,
            sessions: Arc::default(),
            verified: Arc::default(),
            limiter: Arc::default(),
            audit,
        }
    }

    /// The active account of a token. A token not checked before costs one Argon2 check, within
    /// the request's source's budget and the server's turns.
    pub async fn verify(&self, token: &str) -> Result<Option<Account>, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let modified = self.accounts.modified();
        {
            let mut verified = self.verified.lock().await;
            if verified.accounts_modified != modified {
                *verified = VerifiedTokens {
                    accounts_modified: modified,
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
            .map_err(|e| warehouse::Error::Internal(e.to_string()))?;
        // Asked again with the turn in hand: the checks that waited meanwhile may have spent
        // the budget.
        admit()?;
        let accounts = self.accounts.clone();
        let token = token.to_string();
        let account = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            accounts.verify(&token)
        })
        .await
        .map_err(|e| warehouse::Error::Internal(e.to_string()))??;
        if account.is_none() {
            self.limiter.failed(source);
        }
        if let Some(account) = &account {
            let mut verified = self.verified.lock().await;
            if verified.accounts_modified == modified {
                verified.by_hash.insert(key, account.clone());
            }
        }
        Ok(account)
    }

    /// Whether the account with this id is still active (not revoked).
    pub fn is_active(&self, account_id: &str) -> warehouse::Result<bool> {
        Ok(self
            .accounts
            .list()?
            .iter()
            .any(|a| a.id == account_id && a.is_active()))
    }

    /// Opens a web session for an account; returns its id (the cookie's value).
    pub async fn open_session(&self, account: &Account) -> String {
        let id = random_hex(32);
        let mut sessions = self.sessions.lock().await;
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                account_id: account.id.clone(),
                csrf: random_hex(16),
                expires: now + SESSION_LIFETIME,
            },
        );
        id
    }

    /// Ends a web session.
    pub async fn close_session(&self, id: &str) {
        self.sessions.lock().await.remove(id);
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
        let Some(id) = session_id(headers) else {
            return Ok(None);
        };
        let session = {
            let sessions = self.sessions.lock().await;
            sessions.get(id).filter(|s| s.expires > Instant::now()).cloned()
        };
        let Some(session) = session else {
            return Ok(None);
        };
        let account = self
            .accounts
            .list()?
            .into_iter()
            .find(|a| a.id == session.account_id && a.is_active());
        Ok(account.map(|account| Caller {
            account,
            csrf: Some(session.csrf),
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
