//! Where everything lives under the data directory. Every path the warehouse, the server and
//! the CLI use is made here, so moving the warehouse (to another disk, or its tables to an
//! object store) changes this one place.
//!
//! ```text
//! DATA/
//!   tables/NAME/                  a Delta table per catalogue entry (see crate::catalogue)
//!   archive/ab/abcdef….csv        every accepted file as it came, named by its SHA-256
//!   uploads/ID.csv                files being received or waiting for their commit (emptied
//!                                 when the server starts)
//!   pending/ID.csv, ID.json       files held for the ministry's approval, and their notes
//!   sql/saved.json                the workbench's saved queries
//!   sql/history-ACCOUNT.jsonl     each account's query history
//!   accounts.json                 accounts, with their tokens' Argon2 hashes
//!   secret/pseudonym.key          the key of personal identifiers' pseudonyms (mode 600)
//!   commit.lock, approvals.lock   held while a writer runs (one at a time, any process)
//! ```

use std::path::{Path, PathBuf};

/// The paths of one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the data directory `root` (made absolute).
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: std::path::absolute(root)?,
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the Delta tables are.
    pub fn tables(&self) -> PathBuf {
        self.root.join("tables")
    }

    /// A Delta table's directory.
    pub fn table(&self, name: &str) -> PathBuf {
        self.tables().join(name)
    }

    /// A Delta table's commit log.
    pub fn table_log(&self, name: &str) -> PathBuf {
        self.table(name).join("_delta_log")
    }

    /// The archive of accepted files.
    pub fn archive(&self) -> PathBuf {
        self.root.join("archive")
    }

    /// The archive's folder for a file of this SHA-256 (by its first two hex digits).
    pub fn archive_folder(&self, sha256: &str) -> Option<PathBuf> {
        Some(self.archive().join(sha256.get(..2)?))
    }

    /// Files being received, and files checked and waiting for their commit.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Files held for approval, with their notes.
    pub fn pending(&self) -> PathBuf {
        self.root.join("pending")
    }

    /// Record files being read: a folder per file of Parquet files of its pseudonymised rows,
    /// until it is committed (moved to the archive), held (moved to `pending`) or refused.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// The workbench's saved queries and histories.
    pub fn workbench(&self) -> PathBuf {
        self.root.join("sql")
    }

    /// The accounts file.
    pub fn accounts(&self) -> PathBuf {
        self.root.join("accounts.json")
    }

    /// The key of the pseudonyms of personal identifiers (see [`crate::pseudonym`]), in a
    /// folder of its own readable by the server's user only.
    pub fn pseudonym_key(&self) -> PathBuf {
        self.root.join("secret").join("pseudonym.key")
    }

    /// A lock file (`commit.lock`, `approvals.lock`).
    pub fn lock(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}
