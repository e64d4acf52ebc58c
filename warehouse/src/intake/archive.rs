//! The archive of accepted files: each kept as it came, under its SHA-256.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::store::Warehouse;
use crate::{Error, Result};

impl Warehouse {
    /// Keeps a file as it came in the archive, under its SHA-256; returns its path there.
    pub(crate) async fn archive(&self, file: &Path, sha256: &str) -> Result<String> {
        let extension = file
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| "bin".to_string());
        let folder = self
            .layout
            .archive_folder(sha256)
            .ok_or_else(|| Error::Internal(format!("not a SHA-256: {sha256:?}")))?;
        let target = format!("{folder}/{sha256}.{extension}");
        if !self.layout.storage().exists(&target).await? {
            self.layout.storage().upload(file, &target).await?;
        }
        Ok(target)
    }

    /// Where the archive keeps a record file: the folder of the Parquet files of its
    /// pseudonymised rows, under the SHA-256 of the bytes sent (so a file sent again is still
    /// recognised).
    pub(crate) fn archived_records(&self, sha256: &str) -> Result<String> {
        let folder = self
            .layout
            .archive_folder(sha256)
            .ok_or_else(|| Error::Internal(format!("not a SHA-256: {sha256:?}")))?;
        Ok(format!("{folder}/{sha256}.parquet"))
    }
}

/// The SHA-256 of a file, read in blocks (never held in memory whole).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}
