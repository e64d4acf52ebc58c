//! What the SQL workbench remembers: each account's recent queries (`DATA/sql/history-<id>.json`)
//! and the queries saved under a name for everyone who may query (`DATA/sql/saved.json`), each
//! rewritten whole over the version it was read at ([`Storage::update_json`]).

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::storage::Storage;
use crate::{Error, Result};

/// A query an account ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, in microseconds since the Unix epoch, UTC.
    pub at: i64,
    /// The query.
    pub sql: String,
    /// Rows it gave, if it ran.
    pub rows: Option<u64>,
    /// How long it took.
    pub millis: u64,
    /// The error, if it failed.
    pub error: Option<String>,
}

/// A query saved under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQuery {
    /// Its id, in links (`/sql?saved=ID`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The query.
    pub sql: String,
    /// Who saved it.
    pub owner: String,
    /// When, in microseconds since the Unix epoch, UTC.
    pub at: i64,
}

/// How many of an account's queries its history keeps.
const HISTORY_KEPT: usize = 200;

/// The workbench's memory in a warehouse.
#[derive(Debug, Clone)]
pub struct Workbench {
    storage: Storage,
    dir: &'static str,
}

impl Workbench {
    /// The workbench files of a warehouse.
    pub fn new(layout: &crate::layout::Layout) -> Self {
        Self {
            storage: layout.storage().clone(),
            dir: layout.workbench(),
        }
    }

    fn history_file(&self, account_id: &str) -> Result<String> {
        if account_id.is_empty() || !account_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Internal(format!("not an account id: {account_id:?}")));
        }
        Ok(format!("{}/history-{account_id}.json", self.dir))
    }

    /// Remembers a query an account ran (its last [`HISTORY_KEPT`]).
    pub async fn record(&self, account_id: &str, entry: &HistoryEntry) -> Result<()> {
        self.storage
            .update_json(&self.history_file(account_id)?, |history: &mut Vec<HistoryEntry>| {
                history.push(entry.clone());
                let over = history.len().saturating_sub(HISTORY_KEPT);
                history.drain(..over);
                Ok(())
            })
            .await
    }

    /// An account's last `n` queries, newest first.
    pub async fn history(&self, account_id: &str, n: usize) -> Result<Vec<HistoryEntry>> {
        let history: Vec<HistoryEntry> = self
            .storage
            .read_json(&self.history_file(account_id)?)
            .await?
            .unwrap_or_default();
        Ok(history.into_iter().rev().take(n).collect())
    }

    fn saved_file(&self) -> String {
        format!("{}/saved.json", self.dir)
    }

    /// Every saved query, newest first.
    pub async fn saved(&self) -> Result<Vec<SavedQuery>> {
        let mut saved: Vec<SavedQuery> = self.storage.read_json(&self.saved_file()).await?.unwrap_or_default();
        saved.sort_by_key(|s| std::cmp::Reverse(s.at));
        Ok(saved)
    }

    /// Saves a query under a name; returns it with its id.
    pub async fn save(&self, name: &str, sql: &str, owner: &str) -> Result<SavedQuery> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(Error::Sql("a saved query needs a name of 1 to 120 characters".into()));
        }
        let query = SavedQuery {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            name: name.to_string(),
            sql: sql.to_string(),
            owner: owner.to_string(),
            at: Utc::now().timestamp_micros(),
        };
        self.storage
            .update_json(&self.saved_file(), |saved: &mut Vec<SavedQuery>| {
                saved.push(query.clone());
                Ok(())
            })
            .await?;
        Ok(query)
    }
}
