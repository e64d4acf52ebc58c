//! What the SQL workbench remembers: each account's recent queries (`DATA/sql/history-<id>.jsonl`,
//! one JSON line per query, appended) and the queries saved under a name for everyone who may
//! query (`DATA/sql/saved.json`, rewritten through a temporary file under a lock).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use chrono::Utc;
use serde::{Deserialize, Serialize};

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

/// The workbench's memory under a warehouse directory.
#[derive(Debug, Clone)]
pub struct Workbench {
    dir: PathBuf,
}

impl Workbench {
    /// The workbench files of a warehouse.
    pub fn new(layout: &crate::layout::Layout) -> Self {
        Self {
            dir: layout.workbench(),
        }
    }

    fn history_file(&self, account_id: &str) -> Result<PathBuf> {
        if account_id.is_empty() || !account_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Internal(format!("not an account id: {account_id:?}")));
        }
        Ok(self.dir.join(format!("history-{account_id}.jsonl")))
    }

    /// Remembers a query an account ran.
    pub fn record(&self, account_id: &str, entry: &HistoryEntry) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut line = serde_json::to_vec(entry).map_err(|e| Error::Internal(e.to_string()))?;
        line.push(b'\n');
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(self.history_file(account_id)?)?;
        file.write_all(&line)?;
        Ok(())
    }

    /// An account's last `n` queries, newest first.
    pub fn history(&self, account_id: &str, n: usize) -> Result<Vec<HistoryEntry>> {
        let text = match std::fs::read_to_string(self.history_file(account_id)?) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(text
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str(line).ok())
            .take(n)
            .collect())
    }

    fn saved_file(&self) -> PathBuf {
        self.dir.join("saved.json")
    }

    /// Every saved query, newest first.
    pub fn saved(&self) -> Result<Vec<SavedQuery>> {
        match std::fs::read(self.saved_file()) {
            Ok(bytes) => {
                let mut saved: Vec<SavedQuery> =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("saved queries: {e}")))?;
                saved.sort_by_key(|s| std::cmp::Reverse(s.at));
                Ok(saved)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves a query under a name; returns it with its id.
    pub fn save(&self, name: &str, sql: &str, owner: &str) -> Result<SavedQuery> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(Error::Sql("a saved query needs a name of 1 to 120 characters".into()));
        }
        std::fs::create_dir_all(&self.dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("saved.lock"))?;
        lock.lock()?;
        let mut saved = self.saved()?;
        let query = SavedQuery {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            name: name.to_string(),
            sql: sql.to_string(),
            owner: owner.to_string(),
            at: Utc::now().timestamp_micros(),
        };
        saved.push(query.clone());
        let partial = self.dir.join("saved.json.partial");
        std::fs::write(
            &partial,
            serde_json::to_vec_pretty(&saved).map_err(|e| Error::Internal(e.to_string()))?,
        )?;
        std::fs::rename(&partial, self.saved_file())?;
        Ok(query)
    }
}
