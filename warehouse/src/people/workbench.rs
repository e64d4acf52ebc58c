//! What the SQL workbench remembers: each account's recent queries (`DATA/sql/history-<id>.json`),
//! the queries saved under a name for everyone who may query (`DATA/sql/saved.json`) and the
//! boards of charts (`DATA/sql/boards.json`), each rewritten whole over the version it was read
//! at ([`Storage::update_json`]).

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::place::storage::Storage;
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

/// A named board of charts, each a query with how to draw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// Its id, in links (`/boards/ID`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Who made it.
    pub owner: String,
    /// Whether everyone may see it (an admin decides), or analysts and admins only.
    pub public: bool,
    /// Its charts, in the order they were pinned.
    pub charts: Vec<PinnedChart>,
}

/// A chart pinned to a board: its title, its query, and the chart's kind and columns (as
/// `/api/v1/sql/chart` takes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedChart {
    /// Its title.
    pub title: String,
    /// The query.
    pub sql: String,
    /// The chart's kind (`bar`, `line`…).
    pub chart: String,
    /// The column along the chart.
    pub x: String,
    /// The number drawn.
    pub y: String,
    /// The column of the series, if any.
    pub series: Option<String>,
    /// Who pinned it.
    pub pinned_by: String,
}

/// The most charts a board holds (each is a query run when the board's tables change).
pub const BOARD_CHARTS: usize = 12;

/// A name of 1 to 120 characters, or what to fix.
fn checked_name(name: &str, what: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(Error::Sql(format!("{what} needs a name of 1 to 120 characters")));
    }
    Ok(name.to_string())
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
    pub fn new(layout: &crate::place::layout::Layout) -> Self {
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
        let query = SavedQuery {
            id: new_id(),
            name: checked_name(name, "a saved query")?,
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
    fn boards_file(&self) -> String {
        format!("{}/boards.json", self.dir)
    }

    /// Every board.
    pub async fn boards(&self) -> Result<Vec<Board>> {
        Ok(self.storage.read_json(&self.boards_file()).await?.unwrap_or_default())
    }

    /// The board with this id.
    pub async fn board(&self, id: &str) -> Result<Option<Board>> {
        Ok(self.boards().await?.into_iter().find(|b| b.id == id))
    }

    /// Makes a board, not public; returns it with its id.
    pub async fn create_board(&self, name: &str, owner: &str) -> Result<Board> {
        let board = Board {
            id: new_id(),
            name: checked_name(name, "a board")?,
            owner: owner.to_string(),
            public: false,
            charts: Vec::new(),
        };
        self.storage
            .update_json(&self.boards_file(), |boards: &mut Vec<Board>| {
                boards.push(board.clone());
                Ok(())
            })
            .await?;
        Ok(board)
    }

    /// Changes a board with `change`; an unknown board is an error.
    async fn change_board(&self, id: &str, change: impl Fn(&mut Board) -> Result<()>) -> Result<()> {
        self.storage
            .update_json(&self.boards_file(), |boards: &mut Vec<Board>| {
                let board = boards
                    .iter_mut()
                    .find(|b| b.id == id)
                    .ok_or_else(|| Error::NotFound(format!("no board {id:?}")))?;
                change(board)
            })
            .await
    }

    /// Pins a chart to a board (at most [`BOARD_CHARTS`]).
    pub async fn pin(&self, id: &str, chart: &PinnedChart) -> Result<()> {
        let title = checked_name(&chart.title, "a chart")?;
        self.change_board(id, |board| {
            if board.charts.len() >= BOARD_CHARTS {
                return Err(Error::Sql(format!("a board holds at most {BOARD_CHARTS} charts")));
            }
            board.charts.push(PinnedChart {
                title: title.clone(),
                ..chart.clone()
            });
            Ok(())
        })
        .await
    }

    /// Makes a board public or not.
    pub async fn set_public(&self, id: &str, public: bool) -> Result<()> {
        self.change_board(id, |board| {
            board.public = public;
            Ok(())
        })
        .await
    }
}

/// A new id for links.
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}
