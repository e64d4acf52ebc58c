//! Keyed pseudonyms of personal identifiers. A learner's or teacher's national identifier
//! (12 digits, Circular 42/2021/TT-BGDĐT) is personal data (Decree 13/2023/NĐ-CP): khoso keeps
//! only HMAC-SHA-256 of it under a secret key made by `khoso init`. The same identifier gets the
//! same pseudonym in every file and year of one warehouse (so a learner can be followed from
//! year to year and school to school), and nobody without the key can go back, or test a guess.
//!
//! The key is 32 random bytes in `DATA/secret/pseudonym.key` ([`crate::place::layout::Layout`]), outside
//! the tables and the archive, readable and writable by the server's user only. Losing it breaks
//! the link between years; copying it with a backup keeps it.

use hmac::{KeyInit, Mac};
use ingest::{ColumnValues, ReportColumn, TextValues, ValidatedReport};
use rand::RngCore;

use crate::place::layout::Layout;
use crate::{Error, Result};

/// The length of the key, in bytes.
const KEY_BYTES: usize = 32;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Turns identifiers into pseudonyms under one warehouse's key.
#[derive(Clone)]
pub struct Pseudonyms {
    /// The HMAC under the warehouse's key, keyed once: each identifier starts from a copy.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.write_str("Pseudonyms { key: … }")
    }
}

impl Pseudonyms {
    /// Makes the warehouse's key if it has none; an existing key is kept. The key is written
    /// only if no other process wrote one first, so that processes starting together agree on
    /// one. On disk its folder is readable by this user only.
    pub async fn create(layout: &Layout) -> Result<()> {
        let path = layout.pseudonym_key();
        let storage = layout.storage();
        if storage.exists(path).await? {
            return Ok(());
        }
        let local = storage.folder_of_this_machine().map(|folder| folder.join(path));
        if let Some(dir) = local.as_ref().and_then(|p| p.parent()) {
            std::fs::create_dir_all(dir)?;
            restrict(dir, 0o700)?;
        }
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        storage.create(path, hex::encode(key).into_bytes()).await?;
        if let Some(file) = &local {
            restrict(file, 0o600)?;
        }
        Ok(())
    }

    /// The warehouse's key.
    pub async fn open(layout: &Layout) -> Result<Self> {
        let path = layout.pseudonym_key();
        let restore = "restore it from the backup of this warehouse";
        let text = layout
            .storage()
            .read(path)
            .await
            .map_err(|e| Error::failed(format!("the pseudonym key {path} cannot be read: {restore}"), e))?
            .ok_or_else(|| Error::Internal(format!("the pseudonym key {path} is missing: {restore}")))?;
        let bytes = hex::decode(String::from_utf8_lossy(&text).trim())
            .map_err(|e| Error::failed(format!("{path} is not a key"), e))?;
        let key = <[u8; KEY_BYTES]>::try_from(bytes.as_slice())
            .map_err(|_| Error::Internal(format!("{path} does not hold a {KEY_BYTES}-byte key")))?;
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("HMAC takes a key of any length");
        Ok(Self { keyed })
    }

    /// Replaces the person identifiers of a validated record file by their pseudonyms (the
    /// blocks of a file are pseudonymised by several threads at once: see
    /// `intake::read_records`). A report of a kind without people is left as it is.
    pub fn apply(&self, report: &mut ValidatedReport) {
        let Some(column) = report.kind.schema().person_id().map(|c| c.name.clone()) else {
            return;
        };
        let Some(ReportColumn {
            values: ColumnValues::Text(ids),
            ..
        }) = report.columns.iter_mut().find(|c| c.name == column)
        else {
            return;
        };
        *ids = self.of_each(ids);
    }

    /// The pseudonyms of identifiers, a missing one staying missing.
    fn of_each(&self, identifiers: &TextValues) -> TextValues {
        let mut pseudonyms = TextValues::with_capacity(identifiers.len(), identifiers.len() * PSEUDONYM_DIGITS);
        let mut digits = [0u8; PSEUDONYM_DIGITS];
        for identifier in identifiers.iter() {
            match identifier {
                Some(identifier) => pseudonyms.push(Some(self.write(identifier, &mut digits))),
                None => pseudonyms.push(None),
            }
        }
        pseudonyms
    }

    /// The pseudonym of an identifier: 64 hex digits. Surrounding spaces are not part of it.
    pub fn of(&self, identifier: &str) -> String {
        self.write(identifier, &mut [0u8; PSEUDONYM_DIGITS]).to_string()
    }

    /// Writes the pseudonym of an identifier into `digits`, and returns it.
    fn write<'d>(&self, identifier: &str, digits: &'d mut [u8; PSEUDONYM_DIGITS]) -> &'d str {
        let mut mac = self.keyed.clone();
        mac.update(identifier.trim().as_bytes());
        hex::encode_to_slice(mac.finalize().into_bytes(), digits).expect("32 bytes are 64 hex digits");
        std::str::from_utf8(digits).expect("hex digits are ASCII")
    }
}

/// The length of a pseudonym: the hex digits of an HMAC-SHA-256.
const PSEUDONYM_DIGITS: usize = 64;

/// Whether a stored identifier is a pseudonym (64 hex digits), not a raw identifier.
pub fn is_pseudonym(value: &str) -> bool {
    // Every byte looked at (no early exit), which the compiler turns into wide compares.
    value.len() == PSEUDONYM_DIGITS && value.bytes().fold(true, |hex, b| hex & b.is_ascii_hexdigit())
}

/// Refuses a record report whose identifiers are not all pseudonyms: the last guard before
/// anything of it is written.
pub fn check_pseudonymised(report: &ValidatedReport) -> Result<()> {
    let Some(spec) = report.kind.schema().person_id() else {
        return Ok(());
    };
    match report.column(&spec.name) {
        Some(ColumnValues::Text(ids)) if ids.iter().flatten().all(is_pseudonym) => Ok(()),
        _ => Err(Error::Internal(format!(
            "the {} column of a {} file reached storage without pseudonyms",
            spec.name, report.kind
        ))),
    }
}

/// Sets a file's or folder's permission bits (on Unix; elsewhere the system's defaults stand).
pub(crate) fn restrict(path: &std::path::Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_in(dir: &std::path::Path) -> Layout {
        Layout::new(crate::place::storage::Storage::new(&dir.to_string_lossy(), &[], true).expect("storage"))
    }

    #[tokio::test]
    async fn one_key_one_pseudonym_per_identifier_and_no_way_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = layout_in(dir.path());
        Pseudonyms::create(&layout).await.expect("key");
        let first = Pseudonyms::open(&layout).await.expect("open");
        let learner = "001203004567";
        let pseudonym = first.of(learner);
        assert_eq!(pseudonym.len(), 64);
        assert!(pseudonym.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!pseudonym.contains(learner));
        assert_eq!(
            first.of(&format!(" {learner} ")),
            pseudonym,
            "spaces are not part of it"
        );
        assert_ne!(first.of("001203004568"), pseudonym);
        // Made again, the key is kept: the same learner next year has the same pseudonym.
        Pseudonyms::create(&layout).await.expect("kept");
        assert_eq!(Pseudonyms::open(&layout).await.expect("open").of(learner), pseudonym);
        let key_file = dir.path().join(layout.pseudonym_key());
        let key = std::fs::read_to_string(&key_file).expect("key file");
        assert!(!format!("{first:?}").contains(key.trim()));

        let other = tempfile::tempdir().expect("tempdir");
        let other = layout_in(other.path());
        Pseudonyms::create(&other).await.expect("key");
        assert_ne!(
            Pseudonyms::open(&other).await.expect("open").of(learner),
            pseudonym,
            "another warehouse, another key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &std::path::Path| std::fs::metadata(path).expect("exists").permissions().mode() & 0o777;
            assert_eq!(mode(&key_file), 0o600, "readable by the server's user only");
            assert_eq!(mode(key_file.parent().expect("folder")), 0o700);
        }
    }

    #[test]
    fn the_pseudonym_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
