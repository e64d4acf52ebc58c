//! Backups of a warehouse (`khoso backup`, `khoso restore`, `khoso verify`).
//!
//! A backup is a copy of the warehouse's layout (see [`crate::place::layout`]) in another folder or
//! bucket, at one set of table versions read under the commit lock, with a manifest
//! (`manifest.json`) naming every file, its size and its SHA-256. It holds each table's log up
//! to that version and every data file those versions read (so time travel and slice histories
//! work in a restored warehouse as in the original), the archive of accepted files, accounts,
//! saved queries, files held for approval, the pseudonym key (a backup must be kept as safe as
//! the warehouse itself) and the metrics in force. Files staged for their sender's commit are not
//! kept: they expire anyway.
//!
//! Backups into the same place are incremental: the log's commits, data files and archived
//! files never change once written, so a file the last backup's manifest lists with the size it
//! has there is not copied again; the few files that do change (accounts, saved queries, held
//! files) are copied when their SHA-256 changed. Each backup's manifest is also kept as
//! `manifests/TIME.json`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::place::storage::{Part, Storage};
use crate::store::Warehouse;
use crate::{Error, Result};

/// The manifest's name at a backup's root.
pub const MANIFEST: &str = "manifest.json";

/// Where the metrics in force are kept in a backup.
pub const METRICS: &str = "metrics.toml";

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// When it was made.
    pub made_at: DateTime<Utc>,
    /// The khoso that made it.
    pub made_by: String,
    /// Each Delta table's version in the backup.
    pub versions: BTreeMap<String, u64>,
    /// Every file, by its path in the warehouse's layout.
    pub files: Vec<Part>,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupDone {
    /// The manifest written.
    pub manifest: Manifest,
    /// Files copied, and their bytes.
    pub copied: (usize, u64),
    /// Files the last backup had already copied.
    pub kept: usize,
}

/// Something `verify` found wrong: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file or table concerned.
    pub place: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.problem)
    }
}

impl Warehouse {
    /// Backs the warehouse up into `target`, with `metrics` (the metrics file's text in force).
    pub async fn backup(&self, target: &Storage, metrics: &str) -> Result<BackupDone> {
        let versions = {
            // Between commits: every table's version is one a reader could have seen.
            let _lock = self.lock().await?;
            let mut versions = BTreeMap::new();
            for entry in crate::tables::catalogue::delta_tables() {
                if let Some(version) = self.latest_version(entry.name).await? {
                    versions.insert(entry.name.to_string(), version);
                }
            }
            versions
        };
        let source = self.storage();
        // What the target holds, listed once (not asked file by file).
        let held: HashMap<String, u64> = target.sizes("").await?.into_iter().collect();
        let earlier: HashMap<String, Part> = read_manifest(target)
            .await?
            .map(|m| m.files.into_iter().map(|p| (p.path.clone(), p)).collect())
            .unwrap_or_default();

        // What never changes once written, and what may.
        let mut fixed: Vec<(String, u64)> = Vec::new();
        for (table, &version) in &versions {
            fixed.extend(table_files(source, table, version).await?);
        }
        fixed.extend(written(source.sizes("archive").await?));
        let mut changing: Vec<(String, u64)> = Vec::new();
        for folder in [self.layout().workbench(), self.layout().pending()] {
            changing.extend(written(source.sizes(folder).await?));
        }
        for file in [self.layout().accounts(), self.layout().pseudonym_key()] {
            changing.push((file.to_string(), 0));
        }

        let mut done = BackupDone {
            manifest: Manifest {
                made_at: Utc::now(),
                made_by: format!("khoso {}", env!("CARGO_PKG_VERSION")),
                versions,
                files: Vec::new(),
            },
            copied: (0, 0),
            kept: 0,
        };
        for (path, bytes) in fixed {
            match earlier.get(&path) {
                Some(part) if part.bytes == bytes && held.get(&path) == Some(&bytes) => {
                    done.manifest.files.push(part.clone());
                    done.kept += 1;
                }
                _ => {
                    let part = source.copy_into(&path, target).await?;
                    done.copied.0 += 1;
                    done.copied.1 += part.bytes;
                    done.manifest.files.push(part);
                }
            }
        }
        for (path, _) in changing {
            let Some(bytes) = source.read(&path).await? else {
                continue;
            };
            let part = Part {
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
                path,
            };
            if earlier.get(&part.path) == Some(&part) && held.get(&part.path) == Some(&part.bytes) {
                done.kept += 1;
            } else {
                target.write(&part.path, bytes).await?;
                done.copied.0 += 1;
                done.copied.1 += part.bytes;
            }
            done.manifest.files.push(part);
        }
        let metrics = metrics.as_bytes().to_vec();
        done.manifest.files.push(Part {
            path: METRICS.to_string(),
            bytes: metrics.len() as u64,
            sha256: sha256_hex(&metrics),
        });
        target.write(METRICS, metrics).await?;
        keep_key_private(target)?;

        let text = serde_json::to_vec_pretty(&done.manifest)?;
        let stamp = done.manifest.made_at.format("%Y%m%dT%H%M%S%.6fZ");
        target.write(&format!("manifests/{stamp}.json"), text.clone()).await?;
        target.write(MANIFEST, text).await?;

        let mut event = crate::tables::rows::AuditEvent::now("backup", "ok");
        event.detail = Some(format!(
            "{} files ({} copied, {} MB; {} kept from the last backup), versions {}",
            done.manifest.files.len(),
            done.copied.0,
            done.copied.1 / (1024 * 1024),
            done.kept,
            versions_text(&done.manifest.versions),
        ));
        self.record_audit(&[event]).await?;
        Ok(done)
    }

    /// Checks the warehouse: every fact row's submission exists, every submission's file is in
    /// the archive with its SHA-256 (a record file's pseudonymised copy: that it is there), and
    /// every data file of each table's latest version is there with its size.
    pub async fn verify(&self) -> Result<Vec<Finding>> {
        let mut findings = Vec::new();
        let storage = self.storage();
        for entry in crate::tables::catalogue::delta_tables() {
            let Some(version) = self.latest_version(entry.name).await? else {
                continue;
            };
            let table = self.table(entry.name, Some(version)).await?;
            let root = format!("tables/{}", entry.name);
            let present: HashMap<String, u64> = storage.sizes(&root).await?.into_iter().collect();
            for file in table.snapshot()?.log_data().iter() {
                let path = format!("{root}/{}", file.object_store_path());
                let size = u64::try_from(file.size()).unwrap_or_default();
                match present.get(&path) {
                    None => findings.push(Finding {
                        place: path,
                        problem: format!("missing (version {version} of {} reads it)", entry.name),
                    }),
                    Some(&bytes) if bytes != size => findings.push(Finding {
                        place: path,
                        problem: format!("{bytes} bytes where the log says {size}"),
                    }),
                    Some(_) => {}
                }
            }
        }

        let submissions = self.submissions().await?;
        let known: HashSet<&str> = submissions.iter().map(|s| s.submission_id.as_str()).collect();
        for kind in ingest::ReportKind::ALL {
            let table = crate::tables::schemas::fact_table(kind);
            let sql = format!("SELECT DISTINCT submission_id FROM {table}");
            for batch in self.query(&sql, &crate::TableVersions::new()).await? {
                let ids = batch.column(0);
                let ids = datafusion::arrow::compute::cast(ids, &datafusion::arrow::datatypes::DataType::Utf8)?;
                let ids = datafusion::arrow::array::AsArray::as_string::<i32>(&ids);
                for id in ids.iter().flatten() {
                    if !known.contains(id) {
                        findings.push(Finding {
                            place: format!("table {table}"),
                            problem: format!("rows of submission {id}, which the submissions table does not have"),
                        });
                    }
                }
            }
        }

        let archived: HashMap<String, u64> = storage.sizes("archive").await?.into_iter().collect();
        for submission in &submissions {
            let Some(folder) = self.layout().archive_folder(&submission.sha256) else {
                findings.push(Finding {
                    place: format!("submission {}", submission.submission_id),
                    problem: format!("{:?} is not a SHA-256", submission.sha256),
                });
                continue;
            };
            let prefix = format!("{folder}/{}.", submission.sha256);
            let mut copies = archived.keys().filter(|p| p.starts_with(&prefix)).peekable();
            if copies.peek().is_none() {
                findings.push(Finding {
                    place: format!("submission {}", submission.submission_id),
                    problem: format!("its file {} is not in the archive", submission.file_name),
                });
            }
            // A record file's copy is its pseudonymised rows (a folder), not the bytes sent.
            for path in copies.filter(|p| !p[prefix.len()..].contains('/')) {
                let sha256 = storage.sha256_of(path).await?.map(|(_, sha256)| sha256);
                if sha256.as_deref() != Some(submission.sha256.as_str()) {
                    findings.push(Finding {
                        place: path.clone(),
                        problem: format!(
                            "its SHA-256 is not that of submission {} ({}): the archived file changed",
                            submission.submission_id, submission.file_name
                        ),
                    });
                }
            }
        }
        Ok(findings)
    }
}

/// Checks a backup against its manifest: every file there, with its size and SHA-256.
pub async fn verify_backup(backup: &Storage) -> Result<(Manifest, Vec<Finding>)> {
    let manifest = read_manifest(backup).await?.ok_or_else(|| {
        Error::Refused(format!(
            "{} holds no backup (no {MANIFEST}): back up with `khoso backup --to`",
            backup.url()
        ))
    })?;
    let mut findings = Vec::new();
    for part in &manifest.files {
        match backup.sha256_of(&part.path).await? {
            None => findings.push(Finding {
                place: part.path.clone(),
                problem: "missing".to_string(),
            }),
            Some((bytes, sha256)) if bytes != part.bytes || sha256 != part.sha256 => findings.push(Finding {
                place: part.path.clone(),
                problem: format!(
                    "{bytes} bytes, SHA-256 {sha256}; the manifest says {} bytes, {}",
                    part.bytes, part.sha256
                ),
            }),
            Some(_) => {}
        }
    }
    Ok((manifest, findings))
}

/// Rebuilds a warehouse in `target` (which must hold none) from the backup in `backup`: every
/// file of its manifest, each checked against its SHA-256 as it is copied. A damaged backup
/// restores nothing: what was copied is removed again.
pub async fn restore(backup: &Storage, target: &Storage) -> Result<Manifest> {
    if target
        .exists(&format!(
            "tables/{}/_delta_log/{:020}.json",
            crate::tables::schemas::SUBMISSIONS,
            0
        ))
        .await?
    {
        return Err(Error::Refused(format!(
            "{} already holds a warehouse: restore into a new place (--data)",
            target.url()
        )));
    }
    let (manifest, findings) = verify_backup(backup).await?;
    if let Some(first) = findings.first() {
        return Err(Error::Refused(format!(
            "the backup is damaged ({} files differ from its manifest; the first: {first}); nothing was restored",
            findings.len()
        )));
    }
    let mut written = Vec::new();
    for part in manifest.files.iter().filter(|p| p.path != METRICS) {
        let copied = backup.copy_into(&part.path, target).await;
        written.push(part.path.clone());
        let problem = match copied {
            Ok(copy) if copy.sha256 == part.sha256 => continue,
            Ok(copy) => format!("{} changed while it was copied (SHA-256 {})", part.path, copy.sha256),
            Err(e) => format!("{}: {e}", part.path),
        };
        for path in &written {
            target.delete(path).await?;
        }
        return Err(Error::Refused(format!("{problem}; nothing was restored")));
    }
    keep_key_private(target)?;
    Ok(manifest)
}

/// The last manifest written in `storage`, if any.
pub async fn read_manifest(storage: &Storage) -> Result<Option<Manifest>> {
    match storage.read(MANIFEST).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Refused(format!("{MANIFEST} in {} cannot be read: {e}", storage.url()))),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `table=version …`, for messages.
pub fn versions_text(versions: &BTreeMap<String, u64>) -> String {
    versions
        .iter()
        .map(|(table, version)| format!("{table}={version}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table's files up to `version`: its commits and checkpoints, and every data file one of
/// those versions reads (a file removed by upkeep's retention is no longer there, and no
/// version kept needs it).
async fn table_files(storage: &Storage, table: &str, version: u64) -> Result<Vec<(String, u64)>> {
    let root = format!("tables/{table}");
    let present: HashMap<String, u64> = storage.sizes(&root).await?.into_iter().collect();
    let mut files = Vec::new();
    let mut data = HashSet::new();
    for (path, &bytes) in &present {
        let Some(name) = path.strip_prefix(&format!("{root}/_delta_log/")) else {
            continue;
        };
        let Some(at) = name
            .split('.')
            .next()
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if at > version {
            continue;
        }
        files.push((path.clone(), bytes));
        if name.ends_with(".json") {
            let commit = storage.read(path).await?.unwrap_or_default();
            for line in commit.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let action: serde_json::Value =
                    serde_json::from_slice(line).map_err(|e| Error::failed(format!("{path} is damaged"), e))?;
                if let Some(file) = action.pointer("/add/path").and_then(|p| p.as_str()) {
                    let decoded = percent_encoding::percent_decode_str(file).decode_utf8_lossy();
                    data.insert(format!("{root}/{decoded}"));
                }
            }
        }
    }
    files.extend(
        data.into_iter()
            .filter_map(|path| present.get(&path).map(|&bytes| (path, bytes))),
    );
    Ok(files)
}

/// On a disk, the pseudonym key of a backup or a restored warehouse is readable by its owner
/// only, as in the warehouse.
fn keep_key_private(storage: &Storage) -> Result<()> {
    if let Some(folder) = storage.folder_of_this_machine() {
        let key = folder.join(crate::place::layout::Layout::new(storage.clone()).pseudonym_key());
        if let (true, Some(secret)) = (key.exists(), key.parent()) {
            crate::intake::pseudonym::restrict(secret, 0o700)?;
            crate::intake::pseudonym::restrict(&key, 0o600)?;
        }
    }
    Ok(())
}

/// The files of a listing but those being written at that moment (a `.partial` file is renamed
/// to its name once whole; an upload archiving its file during the backup leaves one).
fn written(files: Vec<(String, u64)>) -> Vec<(String, u64)> {
    files
        .into_iter()
        .filter(|(path, _)| !path.ends_with(".partial"))
        .collect()
}
