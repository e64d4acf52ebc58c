//! Who is asking: an account signed in by a bearer token (`Authorization: Bearer TOKEN`) or by
//! the session cookie that signing in on the web sets. Sessions live in the server's memory
//! (a restart signs everyone out); each carries the CSRF token its forms must send back.
//! Verified tokens are remembered by their SHA-256 until the accounts file changes, so the
//! Argon2 check runs once per token, and a revocation takes effect on the next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use warehouse::accounts::{Account, Accounts, Role};

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
    /// Sign-in over these accounts.
    pub fn new(accounts: Accounts) -> Self {
        Self {
            accounts,
            sessions: Arc::default(),
            verified: Arc::default(),
        }
    }

    /// The active account of a token.
    pub async fn verify(&self, token: &str) -> warehouse::Result<Option<Account>> {
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
        let accounts = self.accounts.clone();
        let token = token.to_string();
        let account = tokio::task::spawn_blocking(move || accounts.verify(&token))
            .await
            .map_err(|e| warehouse::Error::Internal(e.to_string()))??;
        if let Some(account) = &account {
            let mut verified = self.verified.lock().await;
            if verified.accounts_modified == modified {
                verified.by_hash.insert(key, account.clone());
            }
        }
        Ok(account)
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
    /// revoked credential is nobody.
    pub async fn caller(&self, headers: &HeaderMap) -> warehouse::Result<Option<Caller>> {
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
