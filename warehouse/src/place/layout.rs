//! Where everything lives in a warehouse. Every path the warehouse, the server and the CLI use is
//! made here; the warehouse itself is a folder or a prefix of an object store
//! ([`crate::place::storage::Storage`]), and the layout is the same in both.
//!
//! ```text
//! DATA/
//!   tables/NAME/                  a Delta table per catalogue entry (see crate::tables::catalogue)
//!   archive/ab/abcdef….csv        every accepted file as it came, named by its SHA-256 (a
//!                                 record file: abcdef….parquet/, the Parquet files of its
//!                                 pseudonymised rows)
//!   uploads/ID.csv                files checked and waiting for the sender's commit
//!   pending/ID.csv, ID.json       files held for the ministry's approval, and their notes
//!   sql/saved.json                the workbench's saved queries
//!   sql/history-ACCOUNT.json      each account's recent queries
//!   accounts.json                 accounts, with their tokens' Argon2 hashes
//!   secret/pseudonym.key          the key of personal identifiers' pseudonyms (mode 600 on disk)
//! ```
//!
//! One process's work stays on its own machine ([`Storage::work`]: the warehouse's folder
//! when it is local): `receiving/` (files arriving), `staging/` (record rows being written
//! before their commit) and lock files.

use std::path::PathBuf;

use url::Url;

use crate::Result;
use crate::place::storage::Storage;

/// The places of one warehouse.
#[derive(Debug, Clone)]
pub struct Layout {
    storage: Storage,
}

impl Layout {
    /// The layout of a warehouse kept in `storage`.
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// Where the warehouse is kept.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// A Delta table's URL.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        self.storage.url_of(&format!("tables/{name}/"))
    }

    /// A Delta table's commit log.
    pub fn table_log(&self, name: &str) -> String {
        format!("tables/{name}/_delta_log")
    }

    /// The archive's folder for a file of this SHA-256 (by its first two hex digits).
    pub fn archive_folder(&self, sha256: &str) -> Option<String> {
        let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| format!("archive/{}", &sha256[..2]))
    }

    /// Files checked and waiting for their sender's commit.
    pub fn uploads(&self) -> &'static str {
        "uploads"
    }

    /// Files held for approval, with their notes.
    pub fn pending(&self) -> &'static str {
        "pending"
    }

    /// The workbench's saved queries and histories.
    pub fn workbench(&self) -> &'static str {
        "sql"
    }

    /// The accounts file.
    pub fn accounts(&self) -> &'static str {
        "accounts.json"
    }

    /// The key of the pseudonyms of personal identifiers (see [`crate::intake::pseudonym`]), in a
    /// folder of its own.
    pub fn pseudonym_key(&self) -> &'static str {
        "secret/pseudonym.key"
    }

    /// Files arriving at this process (on this machine).
    pub fn receiving(&self) -> PathBuf {
        self.storage.work().join("receiving")
    }

    /// Record files being read by this process (on this machine): a folder per file of Parquet
    /// files of its pseudonymised rows, until it is committed, held or refused.
    pub fn staging(&self) -> PathBuf {
        self.storage.work().join("staging")
    }
}
