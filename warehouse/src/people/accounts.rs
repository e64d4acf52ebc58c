//! Accounts: who may upload, query and approve. Kept in `DATA/accounts.json`; each account's
//! secret is stored only as an Argon2id hash (PHC string), and the token that carries it is
//! shown once, when the account is made.
//!
//! A token reads `khoso_<id>_<secret>`: the id finds the account, the secret is checked
//! against its hash. The file is rewritten whole and only over the version it was read at
//! ([`Storage::update_json`]), so a reader never sees half a file and two processes, on one
//! machine or several, never lose each other's change.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::people::rights::{Actor, Role, Via};
use crate::place::layout::Layout;
use crate::place::storage::Storage;
use crate::{Error, Result};

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Random id, the first part of the token.
    pub id: String,
    /// The name people know it by (unique among active accounts).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The province a `province` account speaks for.
    pub province: Option<String>,
    /// Argon2id hash of the token's secret, as a PHC string.
    pub secret_hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Account {
    /// The account acting on the web.
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            role: self.role,
            province: self.province.clone(),
            via: Via::Web,
        }
    }

    /// Whether it can still sign in.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountsFile {
    accounts: Vec<Account>,
}

/// The accounts of one warehouse.
#[derive(Debug, Clone)]
pub struct Accounts {
    storage: Storage,
    path: &'static str,
}

const TOKEN_PREFIX: &str = "khoso_";

impl Accounts {
    /// The accounts of a warehouse.
    pub fn new(layout: &Layout) -> Self {
        Self {
            storage: layout.storage().clone(),
            path: layout.accounts(),
        }
    }

    /// A tag of the accounts as they are now (none if there are none yet): readers that keep
    /// what they checked read again when it changes.
    pub async fn version(&self) -> Result<Option<String>> {
        self.storage.version_of(self.path).await
    }

    /// Every account, revoked ones included, oldest first.
    pub async fn list(&self) -> Result<Vec<Account>> {
        let file: Option<AccountsFile> = self.storage.read_json(self.path).await?;
        Ok(file.unwrap_or_default().accounts)
    }

    /// Makes an account; returns it and its token (the only time the token exists in clear).
    /// A province account needs a province code; the others must not have one.
    pub async fn add(&self, name: &str, role: Role, province: Option<&str>) -> Result<(Account, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(Error::Account("a name is 1 to 64 printable characters".into()));
        }
        let province = match (role, province) {
            (Role::Province, Some(code)) => {
                let registry = ingest::ProvinceRegistry::shipped();
                let known = registry
                    .before_2025
                    .iter()
                    .chain(&registry.from_2025)
                    .any(|p| p.code == code);
                if !known {
                    return Err(Error::Account(format!(
                        "no province {code:?} in either province list (see `khoso sql \"SELECT * FROM provinces\"`)"
                    )));
                }
                Some(code.to_string())
            }
            (Role::Province, None) => {
                return Err(Error::Account("a province account needs --province CODE".into()));
            }
            (_, Some(_)) => return Err(Error::Account("only a province account has a province".into())),
            (_, None) => None,
        };
        let id = random_hex(4);
        let secret = random_hex(16);
        let account = Account {
            id: id.clone(),
            name: name.to_string(),
            role,
            province,
            secret_hash: hash_secret(&secret)?,
            created_at: Utc::now(),
            revoked_at: None,
        };
        self.storage
            .update_json(self.path, |file: &mut AccountsFile| {
                if file.accounts.iter().any(|a| a.is_active() && a.name == name) {
                    return Err(Error::Account(format!("an active account is already named {name:?}")));
                }
                file.accounts.push(account.clone());
                Ok(())
            })
            .await?;
        Ok((account, format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    /// Revokes the active account with this name.
    pub async fn revoke(&self, name: &str) -> Result<Account> {
        let now = Utc::now();
        self.storage
            .update_json(self.path, |file: &mut AccountsFile| {
                let account = file
                    .accounts
                    .iter_mut()
                    .find(|a| a.is_active() && a.name == name)
                    .ok_or_else(|| Error::Account(format!("no active account named {name:?}")))?;
                account.revoked_at = Some(now);
                Ok(account.clone())
            })
            .await
    }

    /// The active account a token belongs to, if the token is right (see [`verify_among`]),
    /// the Argon2 check off the async threads.
    pub async fn verify(&self, token: &str) -> Result<Option<Account>> {
        let accounts = self.list().await?;
        let token = token.to_string();
        tokio::task::spawn_blocking(move || verify_among(accounts, &token)).await?
    }
}

/// The active account among `accounts` a token belongs to, if the token is right. One Argon2
/// check runs whatever the token — against a stand-in hash when no active account has its id —
/// so the answer takes as long for an unknown id as for a known one.
pub fn verify_among(accounts: Vec<Account>, token: &str) -> Result<Option<Account>> {
    let (id, secret) = token
        .trim()
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|t| t.split_once('_'))
        .unwrap_or(("", token));
    let account = accounts
        .into_iter()
        .find(|a| !id.is_empty() && a.id == id && a.is_active());
    let stored = match &account {
        Some(account) => account.secret_hash.clone(),
        None => stand_in_hash()?,
    };
    let hash = PasswordHash::new(&stored).map_err(|e| Error::failed("an account's stored hash", e.to_string()))?;
    let right = Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok();
    Ok(account.filter(|_| right))
}

/// The hash an unknown id's secret is checked against: made once, with the same parameters as
/// every account's, of a secret nobody knows.
fn stand_in_hash() -> Result<String> {
    static STAND_IN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(hash) = STAND_IN.get() {
        return Ok(hash.clone());
    }
    let hash = hash_secret(&random_hex(16))?;
    Ok(STAND_IN.get_or_init(|| hash).clone())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn hash_secret(secret: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::failed("a salt", e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::failed("hashing a secret", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_verify_until_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::new(&dir.path().to_string_lossy(), &[], true).expect("storage");
        let accounts = Accounts::new(&Layout::new(storage));
        let (account, token) = accounts
            .add("so-gd-hanoi", Role::Province, Some("01"))
            .await
            .expect("added");
        assert!(token.starts_with("khoso_"));
        let stored = std::fs::read_to_string(dir.path().join("accounts.json")).expect("file");
        assert!(
            !stored.contains(token.rsplit('_').next().expect("secret")),
            "the secret is not stored"
        );
        assert!(stored.contains("$argon2id$"));
        assert_eq!(accounts.verify(&token).await.expect("verify"), Some(account));
        assert_eq!(accounts.verify(&format!("{token}x")).await.expect("verify"), None);
        assert_eq!(accounts.verify("khoso_nothing_here").await.expect("verify"), None);
        assert!(
            accounts.add("so-gd-hanoi", Role::Analyst, None).await.is_err(),
            "name taken"
        );
        accounts.revoke("so-gd-hanoi").await.expect("revoked");
        assert_eq!(accounts.verify(&token).await.expect("verify"), None);
        assert!(
            accounts.add("x", Role::Province, None).await.is_err(),
            "a province account needs a province"
        );
        assert!(
            accounts.add("x", Role::Province, Some("99")).await.is_err(),
            "no province 99"
        );
        assert!(accounts.add("x", Role::Admin, Some("01")).await.is_err());
    }
}
