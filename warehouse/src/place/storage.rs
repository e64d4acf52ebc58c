//! Where a warehouse lives: a folder of this machine, or a prefix of a bucket behind an S3 API
//! (AWS S3, MinIO, Ceph, …). The Delta tables are opened by URL through deltalake; every other
//! file of the warehouse (the archive, staged and held files, accounts, saved queries, the
//! pseudonym key) goes through the same object store, so that every process of every machine
//! pointed at the same place sees one warehouse.
//!
//! On an object store there is no lock across machines: a table's commit relies on Delta's
//! optimistic concurrency, made safe by conditional writes (`If-None-Match: *`, which AWS S3 has
//! honoured since 2024); the small documents (accounts, saved queries) are rewritten only if
//! nobody changed them since they were read (`If-Match`), and read again otherwise.
//!
//! S3's endpoint and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …) and from storage options
//! (`--storage-option aws_endpoint_url=…`), the options winning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
    object_store_factories,
};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use url::Url;

use crate::{Error, Result};

/// The storage of one warehouse: its root URL, the object store rooted there, and a folder of
/// this machine for the work of one process (files being received, locks).
#[derive(Debug, Clone)]
pub struct Storage {
    url: Url,
    options: HashMap<String, String>,
    store: Arc<dyn ObjectStore>,
    work: PathBuf,
    folder: Option<PathBuf>,
}

impl Storage {
    /// The storage at `location`: a folder (a path, or a `file://` URL) or `s3://bucket/prefix`,
    /// with `options` for the object store (`aws_endpoint_url`, `aws_region`, …; see the crate
    /// `object_store`). A folder is made when `create` is set.
    pub fn new(location: &str, options: &[(String, String)], create: bool) -> Result<Self> {
        let options: HashMap<String, String> = options.iter().cloned().collect();
        match location.split_once("://") {
            None => Self::folder(Path::new(location), create),
            Some(("file", _)) => {
                let url = Url::parse(location).map_err(|e| unusable(location, &e.to_string()))?;
                let path = url
                    .to_file_path()
                    .map_err(|()| unusable(location, "not a path of this machine"))?;
                Self::folder(&path, create)
            }
            Some(("s3" | "s3a", _)) => {
                let mut url = Url::parse(location).map_err(|e| unusable(location, &e.to_string()))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(unusable(location, "it names no bucket"));
                }
                url.set_scheme("s3").map_err(|()| unusable(location, "not an S3 URL"))?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                register_s3();
                let bucket = s3_store(&url, &options)?;
                let prefix = ObjectPath::from_url_path(url.path()).map_err(|e| unusable(location, &e.to_string()))?;
                let store: Arc<dyn ObjectStore> = match prefix.as_ref().is_empty() {
                    true => bucket,
                    false => Arc::new(PrefixStore::new(bucket, prefix)),
                };
                // A folder of this machine for what one process holds while it works, named after
                // the warehouse so that two warehouses never share one.
                let digest = hex::encode(sha2::Sha256::digest(url.as_str().as_bytes()));
                let work = std::env::temp_dir().join("khoso-work").join(&digest[..16]);
                Ok(Self {
                    url,
                    options,
                    store,
                    work,
                    folder: None,
                })
            }
            Some((scheme, _)) => Err(unusable(
                location,
                &format!("khoso keeps a warehouse in a folder or on an S3 API, not on {scheme}://"),
            )),
        }
    }

    fn folder(path: &Path, create: bool) -> Result<Self> {
        let root = std::path::absolute(path)?;
        if create {
            std::fs::create_dir_all(&root)?;
        } else if !root.is_dir() {
            return Err(Error::NotAWarehouse(root.display().to_string()));
        }
        let url =
            Url::from_directory_path(&root).map_err(|()| unusable(&root.display().to_string(), "not absolute"))?;
        let store = Arc::new(LocalFileSystem::new_with_prefix(&root).map_err(object_error)?);
        Ok(Self {
            url,
            options: HashMap::new(),
            store,
            work: root.clone(),
            folder: Some(root),
        })
    }

    /// The warehouse's root URL (ending in `/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The folder of the warehouse, when it is on this machine.
    pub fn folder_of_this_machine(&self) -> Option<&Path> {
        self.folder.as_deref()
    }

    /// A folder of this machine for one process's work: files being received, record rows being
    /// written before they are committed, locks. The warehouse's own folder when it is local.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// The object-store options tables are opened with.
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// Lets DataFusion read the warehouse's files through `runtime`: the bucket's store is
    /// registered there (a folder is read through DataFusion's own store for `file://`).
    pub fn register_in(&self, runtime: &datafusion::execution::runtime_env::RuntimeEnv) -> Result<()> {
        if self.folder.is_some() {
            return Ok(());
        }
        let bucket =
            Url::parse(&self.url[..url::Position::BeforePath]).map_err(|e| Error::failed("the bucket's address", e))?;
        runtime.register_object_store(&bucket, s3_store(&self.url, &self.options)?);
        Ok(())
    }

    /// The URL of `relative` (a folder, ending in `/`) under the root.
    pub fn url_of(&self, relative: &str) -> Result<Url> {
        self.url
            .join(relative)
            .map_err(|e| Error::failed(relative.to_string(), e))
    }

    /// The object store, rooted at the warehouse's root.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The bytes of a file, if it is there.
    pub async fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(&ObjectPath::from(path)).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(object_error)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(e)),
        }
    }

    /// Writes a file whole (readers see the old or the new bytes, never half).
    pub async fn write(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&ObjectPath::from(path), PutPayload::from(bytes))
            .await
            .map_err(object_error)?;
        Ok(())
    }

    /// Writes a file only if there is none yet; false when there was one.
    pub async fn create(&self, path: &str, bytes: Vec<u8>) -> Result<bool> {
        let options = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&ObjectPath::from(path), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(object_error(e)),
        }
    }

    /// Whether a file is there.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.store.head(&ObjectPath::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(object_error(e)),
        }
    }

    /// A tag of the file's current content (none if there is no file): it changes when the file
    /// does.
    pub async fn version_of(&self, path: &str) -> Result<Option<String>> {
        match self.store.head(&ObjectPath::from(path)).await {
            Ok(meta) => Ok(Some(format!(
                "{}:{}:{}",
                meta.last_modified.timestamp_micros(),
                meta.size,
                meta.e_tag.unwrap_or_default()
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(e)),
        }
    }

    /// The files under a folder (relative to the root), in no particular order.
    pub async fn list(&self, folder: &str) -> Result<Vec<String>> {
        let metas = self.metas(folder).await?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// The files under a folder (`""`: all of them) with their sizes in bytes, in no particular
    /// order.
    pub async fn sizes(&self, folder: &str) -> Result<Vec<(String, u64)>> {
        let metas = self.metas(folder).await?;
        Ok(metas.into_iter().map(|m| (m.location.to_string(), m.size)).collect())
    }

    async fn metas(&self, folder: &str) -> Result<Vec<object_store::ObjectMeta>> {
        // The empty folder is the whole store.
        let prefix = (!folder.is_empty()).then(|| ObjectPath::from(folder));
        self.store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(object_error)
    }

    /// Removes a file; a file already gone is no error.
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error(e)),
        }
    }

    /// Removes every file under a folder.
    pub async fn delete_folder(&self, folder: &str) -> Result<()> {
        for path in self.list(folder).await? {
            self.delete(&path).await?;
        }
        if let Some(local) = &self.folder {
            std::fs::remove_dir_all(local.join(folder)).ok();
        }
        Ok(())
    }

    /// Removes the files under a folder last written before `cutoff`.
    pub async fn delete_written_before(&self, folder: &str, cutoff: chrono::DateTime<chrono::Utc>) -> Result<()> {
        for meta in self
            .metas(folder)
            .await?
            .into_iter()
            .filter(|meta| meta.last_modified < cutoff)
        {
            self.delete(meta.location.as_ref()).await?;
        }
        Ok(())
    }

    /// Where `path` is on this machine's disk, its folder made, when the warehouse is there.
    fn local_target(&self, path: &str) -> Result<Option<PathBuf>> {
        let Some(local) = &self.folder else {
            return Ok(None);
        };
        let target = local.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(Some(target))
    }

    /// Copies a file of this machine into the store, in parts (never whole in memory).
    pub async fn upload(&self, file: &Path, path: &str) -> Result<()> {
        use tokio::io::AsyncWriteExt;

        if let Some(target) = self.local_target(path)? {
            // The same disk: a copy, as atomic as the store's own puts.
            let partial = target.with_extension("partial");
            std::fs::copy(file, &partial)?;
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, &target)?;
            return Ok(());
        }
        let mut reader = tokio::fs::File::open(file).await?;
        let mut writer = object_store::buffered::BufWriter::new(Arc::clone(&self.store), ObjectPath::from(path));
        tokio::io::copy(&mut reader, &mut writer).await?;
        writer.shutdown().await?;
        Ok(())
    }

    /// Moves a file of this machine into the store: a rename when the warehouse is on this
    /// disk, an upload (and the local file removed) otherwise.
    pub async fn move_in(&self, file: &Path, path: &str) -> Result<()> {
        if let Some(target) = self.local_target(path)? {
            std::fs::rename(file, &target)?;
            return Ok(());
        }
        self.upload(file, path).await?;
        std::fs::remove_file(file).ok();
        Ok(())
    }

    /// Copies a file of the store to this machine.
    pub async fn download(&self, path: &str, file: &Path) -> Result<()> {
        let got = self.store.get(&ObjectPath::from(path)).await.map_err(object_error)?;
        let mut stream = got.into_stream();
        let mut out = tokio::fs::File::create(file).await?;
        while let Some(chunk) = stream.try_next().await.map_err(object_error)? {
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out).await?;
        Ok(())
    }

    /// Copies a file to the same path in another store, in parts, and returns its size and
    /// SHA-256 as read.
    pub async fn copy_into(&self, path: &str, target: &Storage) -> Result<Part> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;

        let got = self.store.get(&ObjectPath::from(path)).await.map_err(object_error)?;
        let mut stream = got.into_stream();
        let mut writer = object_store::buffered::BufWriter::new(Arc::clone(&target.store), ObjectPath::from(path));
        let (mut hasher, mut bytes) = (sha2::Sha256::new(), 0u64);
        while let Some(chunk) = stream.try_next().await.map_err(object_error)? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            writer.write_all(&chunk).await?;
        }
        writer.shutdown().await?;
        Ok(Part {
            path: path.to_string(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// A file's size and SHA-256, read in parts; none when it is not there.
    pub async fn sha256_of(&self, path: &str) -> Result<Option<(u64, String)>> {
        use sha2::Digest;

        let got = match self.store.get(&ObjectPath::from(path)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(object_error(e)),
        };
        let mut stream = got.into_stream();
        let (mut hasher, mut bytes) = (sha2::Sha256::new(), 0u64);
        while let Some(chunk) = stream.try_next().await.map_err(object_error)? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
        }
        Ok(Some((bytes, hex::encode(hasher.finalize()))))
    }

    /// Copies a file within the store (a hard link on disk, a server-side copy on S3).
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.store
            .copy(&ObjectPath::from(from), &ObjectPath::from(to))
            .await
            .map_err(object_error)
    }

    /// Reads a JSON document, changes it with `change` and writes it back, unless someone
    /// changed it in between — then reads it again and retries. A missing document is
    /// `T::default()`. On a folder, writers of this machine take turns under a lock file
    /// instead (a local disk has no conditional overwrite).
    pub async fn update_json<T, R>(&self, path: &str, mut change: impl FnMut(&mut T) -> Result<R>) -> Result<R>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        if self.folder.is_some() {
            let _lock = self.lock(&format!("{}.lock", path.replace('/', "-"))).await?;
            let mut document = self.read_json::<T>(path).await?.unwrap_or_default();
            let answer = change(&mut document)?;
            self.write(path, to_json(&document)?).await?;
            return Ok(answer);
        }
        let location = ObjectPath::from(path);
        for _ in 0..64 {
            let (mut document, version) = match self.store.get(&location).await {
                Ok(got) => {
                    let version = UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    let bytes = got.bytes().await.map_err(object_error)?;
                    (from_json::<T>(path, &bytes)?, Some(version))
                }
                Err(object_store::Error::NotFound { .. }) => (T::default(), None),
                Err(e) => return Err(object_error(e)),
            };
            let answer = change(&mut document)?;
            let mode = match version {
                Some(version) => PutMode::Update(version),
                None => PutMode::Create,
            };
            match self
                .store
                .put_opts(&location, PutPayload::from(to_json(&document)?), PutOptions::from(mode))
                .await
            {
                Ok(_) => return Ok(answer),
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(object_error(e)),
            }
        }
        Err(Error::Internal(format!("{path} kept changing under this writer")))
    }

    /// A JSON document, if it is there.
    pub async fn read_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.read(path).await? {
            Some(bytes) => Ok(Some(from_json(path, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Holds an exclusive lock of this machine (a file under [`Storage::work`]) until dropped:
    /// writers of one machine take turns; across machines the commits' own conditions decide.
    pub async fn lock(&self, name: &str) -> Result<std::fs::File> {
        let path = self.work.join(name);
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await?
        .map_err(Error::from)
    }

    /// Whether the warehouse is on an object store shared with other machines.
    pub fn is_shared(&self) -> bool {
        self.folder.is_none()
    }

    /// `text` with the warehouse's location written `DATA`: no answer shows where the server
    /// keeps its files.
    /// Query plans name a table's files by their path in the store: without a folder's leading
    /// `/`, or a bucket's prefix without the bucket.
    pub fn hide_location(&self, text: &str) -> String {
        let mut hidden = text.replace(self.url.as_str().trim_end_matches('/'), "DATA");
        let root = match &self.folder {
            Some(folder) => {
                let root = folder.to_string_lossy().into_owned();
                hidden = hidden.replace(&root, "DATA");
                root
            }
            None => {
                let bucket = self.url.host_str().unwrap_or_default();
                hidden = hidden.replace(format!("{bucket}{}", self.url.path()).trim_end_matches('/'), "DATA");
                self.url.path().to_string()
            }
        };
        let relative = root.trim_matches('/');
        if relative.is_empty() {
            return hidden;
        }
        // A root of one component ("data") would be any word: only before the tables' folder.
        match relative.contains('/') {
            true => hidden.replace(relative, "DATA"),
            false => hidden.replace(&format!("{relative}/tables/"), "DATA/tables/"),
        }
    }
}

fn to_json<T: Serialize>(document: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec_pretty(document)?)
}

fn from_json<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::failed(format!("{path} is damaged"), e))
}

fn unusable(location: &str, why: &str) -> Error {
    Error::Refused(format!("cannot keep a warehouse at {location}: {why}"))
}

/// An object store's error, as a file error.
pub(crate) fn object_error(error: object_store::Error) -> Error {
    Error::Io(std::io::Error::other(error.to_string()))
}

/// The bucket's store, from the AWS variables and then the options; a plain-HTTP endpoint (a
/// test server, a store inside the ministry's network) is allowed when it is the one named.
fn s3_store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (key, value) in options {
        let key = key
            .to_ascii_lowercase()
            .parse()
            .map_err(|e: object_store::Error| Error::Refused(format!("storage option {key}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    let endpoint = builder.get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint);
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build().map_err(object_error)?))
}

/// Teaches deltalake the `s3://` scheme: the bucket's store from [`s3_store`] and Delta's own
/// log store, whose commits are conditional writes (`If-None-Match: *`), so that two writers
/// never both take one version.
fn register_s3() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        let scheme = Url::parse("s3://").expect("a URL");
        object_store_factories().insert(scheme.clone(), Arc::new(S3Stores));
        logstore_factories().insert(scheme, Arc::new(S3Stores));
    });
}

struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let store = s3_store(url, &config.raw).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        let path = ObjectPath::from_url_path(url.path())?;
        Ok((store, path))
    }
}

impl LogStoreFactory for S3Stores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its path, as in the warehouse.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The SHA-256 of its bytes, hex.
    pub sha256: String,
}
