//! The store: publish, lookup and fetch of cache entries (docs/LAYOUT.md sections 3 to 5).

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use recall_key::{DerivedKey, Digest, SPEC_VERSION, validate_name};

use crate::backend::{Backend, open_url};
use crate::blob::{self, Downloaded, Sink, Source, UploadTuning};
use crate::clock::{Clock, SystemClock, duration_ms};
use crate::error::StoreError;
use crate::layout::{DESCRIPTOR, INLINE_MAX_BYTES, KEY_SPEC_VERSION, LAYOUT_VERSION, Tenant};
use crate::manifest::{
    Manifest, ManifestError, NondeterminismOutcome, NondeterminismRecord, OutputRecord,
    push_nondeterminism,
};

/// Settings of one opened store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Written into every manifest this store publishes (host, process, execution id, ...).
    pub producer: String,
    /// Entries older than this are misses, whatever their task.
    pub max_age: Option<Duration>,
    /// Per-task maximum ages, by task name; these take precedence over `max_age`.
    pub max_age_per_task: BTreeMap<String, Duration>,
    /// The time source (a [`crate::ManualClock`] in tests).
    pub clock: Arc<dyn Clock>,
    /// How uploads are cut into parts.
    pub upload: UploadTuning,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            producer: default_producer(),
            max_age: None,
            max_age_per_task: BTreeMap::new(),
            clock: Arc::new(SystemClock),
            upload: UploadTuning::default(),
        }
    }
}

/// `<hostname>/<pid>`, the default producer id.
fn default_producer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{host}/{}", std::process::id())
}

/// The entry one lookup addresses: a tenant and a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryRef {
    /// The project/domain the entry belongs to.
    pub tenant: Tenant,
    /// The cache key.
    pub key: Digest,
}

impl EntryRef {
    /// Validates `project` and `domain` (before any I/O) and addresses `key` under them.
    pub fn new(project: &str, domain: &str, key: Digest) -> Result<Self, StoreError> {
        Ok(EntryRef {
            tenant: Tenant::new(project, domain)?,
            key,
        })
    }

    /// The entry a derived key addresses.
    pub fn of(key: &DerivedKey) -> Result<Self, StoreError> {
        Self::new(&key.project, &key.domain, key.key)
    }
}

/// One output to publish: its name (as declared in the key) and its bytes.
#[derive(Debug, Clone)]
pub struct Output {
    /// The output name.
    pub name: String,
    /// Where its bytes are.
    pub data: OutputData,
}

/// Where an output's bytes are.
#[derive(Debug, Clone)]
pub enum OutputData {
    /// In memory (a serialised scalar, a small file already read).
    Bytes(Bytes),
    /// In a local file, streamed from disk: any size, bounded memory.
    File(PathBuf),
    /// In a local file whose digest and size the caller computed from the bytes as it wrote
    /// them (recalld hashes uploads as they arrive). The store names the blob by this digest
    /// instead of hashing the file, and fails with [`StoreError::OutputChanged`] when the
    /// bytes it reads back do not match it.
    Received {
        /// The file.
        path: PathBuf,
        /// The digest of the bytes written to it.
        digest: Digest,
        /// How many bytes were written to it.
        size: u64,
    },
}

impl Output {
    /// An output held in memory.
    pub fn bytes(name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Output {
            name: name.into(),
            data: OutputData::Bytes(bytes.into()),
        }
    }

    /// An output in a local file.
    pub fn file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Output {
            name: name.into(),
            data: OutputData::File(path.into()),
        }
    }
}

/// What publish does when the entry already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishMode {
    /// Create-if-absent: an existing live entry wins and is left alone.
    #[default]
    CreateIfAbsent,
    /// Replace the manifest deliberately (Flyte's overwrite_cache).
    Overwrite,
}

/// Options of one publish.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Create-if-absent or overwrite.
    pub mode: PublishMode,
    /// The entry expires this long after publication (recorded in the manifest).
    pub ttl: Option<Duration>,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// This call's manifest is now the entry.
    Published {
        /// The manifest written (with the records carried over from the entry it replaced).
        manifest: Box<Manifest>,
        /// When it replaced an entry whose output digests differ: the record of that, also
        /// the last of `manifest.nondeterminism`.
        observed: Option<NondeterminismRecord>,
    },
    /// A live entry already existed (or another publisher won the race); its outputs were
    /// kept. Only its `nondeterminism` records may have changed.
    AlreadyExists {
        /// The entry kept, as it stands after this call; `None` when it could not be read
        /// back (evicted in between, unreadable).
        existing: Option<Box<Manifest>>,
        /// When this call's outputs differ from the kept entry's: the record of that. It is
        /// in `existing.nondeterminism` unless recording it failed (which is only logged).
        observed: Option<NondeterminismRecord>,
    },
}

impl PublishOutcome {
    /// Whether this call's manifest became the entry.
    pub fn is_published(&self) -> bool {
        matches!(self, PublishOutcome::Published { .. })
    }

    /// The nondeterminism this call observed, if any.
    pub fn observed(&self) -> Option<&NondeterminismRecord> {
        match self {
            PublishOutcome::Published { observed, .. }
            | PublishOutcome::AlreadyExists { observed, .. } => observed.as_ref(),
        }
    }
}

/// What is at an entry's manifest path, for a publish.
enum Current {
    /// No manifest.
    Absent,
    /// Expired, undecodable or describing another entry.
    Unusable,
    /// A live entry, with the version a replace-if-version-matches needs.
    Live {
        manifest: Box<Manifest>,
        version: UpdateVersion,
    },
}

/// Read-modify-write rounds of a manifest update before giving up.
const MANIFEST_CAS_ROUNDS: usize = 8;

/// The result of a lookup: a hit, or a miss with its reason. Never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The entry exists, is live and (for fetches) every output verified.
    Hit(T),
    /// There is no usable entry.
    Miss(Miss),
}

impl<T> Lookup<T> {
    /// The hit, if it is one.
    pub fn hit(self) -> Option<T> {
        match self {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss(_) => None,
        }
    }

    /// Whether it is a miss.
    pub fn is_miss(&self) -> bool {
        matches!(self, Lookup::Miss(_))
    }
}

/// Why a lookup missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No manifest at the entry's path.
    NotFound,
    /// The entry is older than its max age or past its expiry.
    Expired {
        /// When it was published, milliseconds since the Unix epoch.
        created_at_ms: i64,
    },
    /// The manifest did not decode, or describes another entry (logged as an error).
    Undecodable {
        /// Why.
        reason: String,
    },
    /// An output's blob is missing or its bytes do not match the manifest; the entry was
    /// removed so the next run repopulates it.
    Broken {
        /// The output concerned.
        output: String,
        /// What was wrong.
        reason: String,
    },
}

/// Where fetched outputs go.
#[derive(Debug, Clone)]
pub enum FetchTo {
    /// Every output into memory.
    Memory,
    /// Every output into the file `<dir>/<output name>`; a file appears only once verified.
    Dir(PathBuf),
}

/// A fetched output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Its bytes, verified.
    Bytes(Bytes),
    /// The verified file it was written to.
    File(PathBuf),
}

/// A hit with its outputs fetched and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The manifest.
    pub manifest: Manifest,
    /// Each output, by name.
    pub outputs: BTreeMap<String, Fetched>,
}

/// A content-addressed cache on one object store.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) root: String,
    pub(crate) config: StoreConfig,
    /// Whether the root's descriptor is known to exist (and name a layout this version
    /// reads). Until it does, lookups are misses and the first write creates it.
    has_descriptor: Arc<AtomicBool>,
}

impl Store {
    /// Opens the store at `url` with default settings (see [`open_url`] for the schemes).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, StoreConfig::default()).await
    }

    /// Opens the store at `url` with `config`.
    pub async fn open_with(url: &str, config: StoreConfig) -> Result<Store, StoreError> {
        let Backend { objects, root } = open_url(url)?;
        Self::from_object_store(objects, &root, config).await
    }

    /// Opens the store at `url` without reading its descriptor (no I/O): for a daemon that
    /// must start while the store is unreachable. Call [`Store::check_descriptor`] before
    /// trusting it.
    pub fn open_unverified(url: &str, config: StoreConfig) -> Result<Store, StoreError> {
        let Backend { objects, root } = open_url(url)?;
        Ok(Store {
            objects,
            root: root.trim_matches('/').to_string(),
            config,
            has_descriptor: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Uses any object store (a wrapper, a test double) with the store root under `root`.
    /// Reads the descriptor object, refusing a layout this version cannot read. Opening
    /// writes nothing: a root without a descriptor is not a recall store yet (every lookup
    /// misses), and the first publish or lease creates it (docs/LAYOUT.md section 1).
    pub async fn from_object_store(
        objects: Arc<dyn ObjectStore>,
        root: &str,
        config: StoreConfig,
    ) -> Result<Store, StoreError> {
        let store = Store {
            objects,
            root: root.trim_matches('/').to_string(),
            config,
            has_descriptor: Arc::new(AtomicBool::new(false)),
        };
        store.read_descriptor().await?;
        Ok(store)
    }

    /// The underlying object store, for recall-store's own tests (feature `test-access`):
    /// not API. Everything visible in the bucket is a `Store` method (docs/LAYOUT.md).
    #[cfg(feature = "test-access")]
    #[doc(hidden)]
    pub fn raw_object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The full object path of a layout path, for recall-store's own tests (feature
    /// `test-access`): not API.
    #[cfg(feature = "test-access")]
    #[doc(hidden)]
    pub fn raw_path(&self, relative: &str) -> Path {
        self.path(relative)
    }

    /// The bytes of the object at a layout path, `None` when there is none, for
    /// recall-store's own tests (feature `test-access`): not API.
    #[cfg(feature = "test-access")]
    #[doc(hidden)]
    pub async fn raw_get(&self, relative: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(relative);
        match self.objects.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| StoreError::backend("get", &path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::backend("get", &path, e)),
        }
    }

    /// Writes `bytes` at a layout path, replacing what is there, for recall-store's own tests
    /// (feature `test-access`): not API.
    #[cfg(feature = "test-access")]
    #[doc(hidden)]
    pub async fn raw_put(&self, relative: &str, bytes: impl Into<Bytes>) -> Result<(), StoreError> {
        let path = self.path(relative);
        self.objects
            .put(&path, PutPayload::from_bytes(bytes.into()))
            .await
            .map(drop)
            .map_err(|e| StoreError::backend("put", &path, e))
    }

    /// Rewrites the object at a layout path with `edit` applied to its bytes (a damaged blob or
    /// manifest), for recall-store's own tests (feature `test-access`): not API. An absent
    /// object is an error naming the path.
    #[cfg(feature = "test-access")]
    #[doc(hidden)]
    pub async fn raw_edit(
        &self,
        relative: &str,
        edit: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), StoreError> {
        let path = self.path(relative);
        let mut bytes = self
            .objects
            .get(&path)
            .await
            .map_err(|e| StoreError::backend("get", &path, e))?
            .bytes()
            .await
            .map_err(|e| StoreError::backend("get", &path, e))?
            .to_vec();
        edit(&mut bytes);
        self.raw_put(relative, bytes).await
    }

    /// Deletes the object at a layout path, for recall-store's own tests (feature
    /// `test-access`): not API.
    #[cfg(feature = "test-access")]
    #[doc(hidden)]
    pub async fn raw_delete(&self, relative: &str) -> Result<(), StoreError> {
        let path = self.path(relative);
        self.objects
            .delete(&path)
            .await
            .map_err(|e| StoreError::backend("delete", &path, e))
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The full object path of a layout path (relative to the store root).
    pub(crate) fn path(&self, relative: &str) -> Path {
        if self.root.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.root))
        }
    }

    /// Checks that the store answers and that its descriptor, if any, names a layout this
    /// version reads (docs/LAYOUT.md section 1). Writes nothing: a root without a descriptor
    /// passes (its lookups miss until a writer creates it).
    pub async fn check_descriptor(&self) -> Result<(), StoreError> {
        self.read_descriptor().await.map(|_| ())
    }

    /// Reads the descriptor: `false` when there is none, an error when it names a layout
    /// this version cannot read. Once found, it is not read again.
    async fn read_descriptor(&self) -> Result<bool, StoreError> {
        if self.has_descriptor.load(Ordering::Acquire) {
            return Ok(true);
        }
        let path = self.path(DESCRIPTOR);
        let Some(body) = self.get_bytes(&path).await? else {
            return Ok(false);
        };
        let unsupported = |reason: String| StoreError::UnsupportedLayout {
            path: path.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| unsupported(format!("not JSON: {e}")))?;
        match value.get("layout_version").and_then(|v| v.as_u64()) {
            Some(LAYOUT_VERSION) => {
                self.has_descriptor.store(true, Ordering::Release);
                Ok(true)
            }
            Some(other) => Err(unsupported(format!(
                "layout_version {other}, this version of recall reads {LAYOUT_VERSION}"
            ))),
            None => Err(unsupported("no layout_version".into())),
        }
    }

    /// Makes sure the root has a descriptor before a writer's first object: creates it if
    /// absent (create-if-absent), and refuses a root whose descriptor another writer wrote
    /// with a layout this version cannot read.
    pub(crate) async fn ensure_descriptor(&self) -> Result<(), StoreError> {
        if self.read_descriptor().await? {
            return Ok(());
        }
        let path = self.path(DESCRIPTOR);
        let descriptor = serde_json::json!({
            "layout_version": LAYOUT_VERSION,
            "key_spec_version": KEY_SPEC_VERSION,
            "inline_max_bytes": INLINE_MAX_BYTES,
        });
        let text = format!("{descriptor:#}\n");
        match self
            .objects
            .put_opts(&path, PutPayload::from(text), PutMode::Create.into())
            .await
        {
            Ok(_) => {
                self.has_descriptor.store(true, Ordering::Release);
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. }) => match self.read_descriptor().await? {
                true => Ok(()),
                false => Err(StoreError::UnsupportedLayout {
                    path: path.to_string(),
                    reason: "the descriptor exists but could not be read back".into(),
                }),
            },
            Err(e) => Err(StoreError::backend("put", &path, e)),
        }
    }

    /// One GET of the entry's manifest: a hit carries the manifest (outputs not fetched).
    pub async fn lookup(&self, entry: &EntryRef) -> Result<Lookup<Manifest>, StoreError> {
        if !self.read_descriptor().await? {
            // Not a recall store yet (LAYOUT section 1); one GET until a writer creates it.
            return Ok(Lookup::Miss(Miss::NotFound));
        }
        let path = self.path(&entry.tenant.entry(&entry.key));
        let Some(body) = self.get_bytes(&path).await? else {
            return Ok(Lookup::Miss(Miss::NotFound));
        };
        let manifest = match Manifest::decode(&body).and_then(|m| check_identity(m, entry)) {
            Ok(manifest) => manifest,
            Err(err) => {
                tracing::error!(%path, error = %err, "cache manifest is unusable; treating as a miss");
                return Ok(Lookup::Miss(Miss::Undecodable { reason: err.0 }));
            }
        };
        if self.is_expired(&manifest) {
            return Ok(Lookup::Miss(Miss::Expired {
                created_at_ms: manifest.created_at_ms,
            }));
        }
        Ok(Lookup::Hit(manifest))
    }

    /// The manifest at the entry's path, decoded and checked against the path, whatever its
    /// age: for tools that explain a miss or show an expired entry. `None` when there is no
    /// manifest or it is unusable (a lookup would also miss); outputs are not read.
    pub async fn read_entry_manifest(
        &self,
        entry: &EntryRef,
    ) -> Result<Option<Manifest>, StoreError> {
        if !self.read_descriptor().await? {
            return Ok(None);
        }
        let path = self.path(&entry.tenant.entry(&entry.key));
        let Some(body) = self.get_bytes(&path).await? else {
            return Ok(None);
        };
        Ok(Manifest::decode(&body)
            .and_then(|m| check_identity(m, entry))
            .ok())
    }

    /// Whether `manifest` is past its own expiry or older than the max age of its task.
    pub fn is_expired(&self, manifest: &Manifest) -> bool {
        let now = self.config.clock.now_ms();
        if manifest.expires_at_ms.is_some_and(|at| now >= at) {
            return true;
        }
        let max_age = self
            .config
            .max_age_per_task
            .get(&manifest.key.task)
            .or(self.config.max_age.as_ref());
        max_age.is_some_and(|age| now.saturating_sub(manifest.created_at_ms) > duration_ms(*age))
    }

    /// Looks the entry up and fetches every output, verifying each digest while streaming.
    /// A missing or corrupt blob is a miss, and the broken entry is removed.
    pub async fn fetch(&self, entry: &EntryRef, to: FetchTo) -> Result<Lookup<Entry>, StoreError> {
        let manifest = match self.lookup(entry).await? {
            Lookup::Hit(manifest) => manifest,
            Lookup::Miss(miss) => return Ok(Lookup::Miss(miss)),
        };
        if let FetchTo::Dir(dir) = &to {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::io(dir, e))?;
        }
        let mut outputs = BTreeMap::new();
        for (name, record) in &manifest.outputs {
            let dest = match &to {
                FetchTo::Memory => None,
                FetchTo::Dir(dir) => Some(dir.join(name)),
            };
            match self.fetch_output(entry, record, dest.as_deref()).await? {
                Ok(fetched) => {
                    outputs.insert(name.clone(), fetched);
                }
                Err(reason) => {
                    tracing::warn!(key = %entry.key, output = %name, %reason,
                        "cache entry is broken; removing it");
                    for fetched in outputs.values() {
                        if let Fetched::File(path) = fetched {
                            let _ = tokio::fs::remove_file(path).await;
                        }
                    }
                    self.remove_entry(&entry.tenant, &manifest).await?;
                    return Ok(Lookup::Miss(Miss::Broken {
                        output: name.clone(),
                        reason,
                    }));
                }
            }
        }
        Ok(Lookup::Hit(Entry { manifest, outputs }))
    }

    /// Fetches one output; `Ok(Err(reason))` when it is missing or does not verify.
    async fn fetch_output(
        &self,
        entry: &EntryRef,
        record: &OutputRecord,
        dest: Option<&FsPath>,
    ) -> Result<Result<Fetched, String>, StoreError> {
        if let Some(inline) = &record.inline {
            if inline.len() as u64 != record.size || Digest::of_content(inline) != record.digest {
                return Ok(Err("inline bytes do not match their digest".into()));
            }
            return Ok(Ok(match dest {
                None => Fetched::Bytes(inline.clone()),
                Some(path) => {
                    let temp = path.with_file_name(format!(
                        ".recall-fetch-{}",
                        path.file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or("output")
                    ));
                    tokio::fs::write(&temp, inline)
                        .await
                        .map_err(|e| StoreError::io(&temp, e))?;
                    tokio::fs::rename(&temp, path)
                        .await
                        .map_err(|e| StoreError::io(path, e))?;
                    Fetched::File(path.to_path_buf())
                }
            }));
        }
        let location = self.path(&entry.tenant.blob(&record.digest));
        let mut buffer = BytesMut::new();
        let sink = match dest {
            None => Sink::Memory(&mut buffer),
            Some(path) => Sink::File(path),
        };
        match blob::download(&self.objects, &location, &record.digest, record.size, sink).await? {
            Downloaded::Verified => Ok(Ok(match dest {
                None => Fetched::Bytes(buffer.freeze()),
                Some(path) => Fetched::File(path.to_path_buf()),
            })),
            Downloaded::Missing => Ok(Err(format!("blob {location} is missing"))),
            Downloaded::Corrupt { reason, intact } => {
                // A blob whose bytes do not hash to its name is useless to every entry, and a
                // later publish would skip re-uploading it: remove it too. A blob that does
                // hash to its name is fine (other entries may share it): the manifest that
                // states another size for it is the broken thing.
                if !intact {
                    self.delete_quietly(&location).await?;
                }
                Ok(Err(format!("blob {location}: {reason}")))
            }
        }
    }

    /// Deletes an entry's manifest and index marker (its blobs are left to GC).
    pub(crate) async fn remove_entry(
        &self,
        tenant: &Tenant,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        let key = &manifest.key;
        self.delete_quietly(&self.path(&tenant.entry(&key.key)))
            .await?;
        self.delete_quietly(&self.path(&tenant.marker(&key.task, &key.cache_version, &key.key)))
            .await
    }

    /// Deletes one object; an absent object is not an error.
    pub(crate) async fn delete_quietly(&self, path: &Path) -> Result<(), StoreError> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::backend("delete", path, e)),
        }
    }

    /// Publishes `outputs` as the entry of `key`: blobs first (skipped when present), then the
    /// index marker, then the manifest (create-if-absent unless overwriting).
    pub async fn publish(
        &self,
        key: &DerivedKey,
        outputs: &[Output],
        options: &PublishOptions,
    ) -> Result<PublishOutcome, StoreError> {
        let entry = EntryRef::of(key)?;
        validate_name("task", &key.task)?;
        validate_name("cache_version", &key.cache_version)?;
        check_outputs(key, outputs)?;
        if key.spec_version != SPEC_VERSION {
            return Err(StoreError::OutputMismatch {
                name: "spec_version".into(),
                reason: format!("key spec version {} is not supported", key.spec_version),
            });
        }

        self.ensure_descriptor().await?;
        let mut mode = options.mode;
        // A live entry found broken (6.1 step 2): replaced only over the version read.
        let mut broken = None;
        if mode == PublishMode::CreateIfAbsent {
            match self.current_entry(&entry).await? {
                Current::Live { manifest, version } => match self.unsound(key, &manifest).await? {
                    None => {
                        let produced = match output_digests(outputs).await {
                            Ok(digests) => Some(digests),
                            Err(err) => {
                                tracing::warn!(key = %key.key, error = %err,
                                        "could not hash the outputs to compare them with the entry kept");
                                None
                            }
                        };
                        return Ok(self.keep_existing(&entry, produced.as_ref()).await);
                    }
                    Some(reason) => {
                        tracing::warn!(key = %key.key, %reason,
                                "the stored entry is broken; this publish replaces it");
                        broken = Some((version, *manifest));
                    }
                },
                Current::Absent => {}
                // Expired or unusable: the next publish replaces it.
                Current::Unusable => mode = PublishMode::Overwrite,
            }
        }

        let mut records = BTreeMap::new();
        for output in outputs {
            let record = self.store_output(&entry.tenant, key, output).await?;
            records.insert(output.name.clone(), record);
        }
        let produced: BTreeMap<String, Digest> = records
            .iter()
            .map(|(name, record)| (name.clone(), record.digest))
            .collect();

        let marker = self.path(&entry.tenant.marker(&key.task, &key.cache_version, &key.key));
        self.objects
            .put(&marker, PutPayload::default())
            .await
            .map_err(|e| StoreError::backend("put", &marker, e))?;

        let created_at_ms = self.config.clock.now_ms();
        let mut manifest = Manifest {
            layout_version: LAYOUT_VERSION,
            key: key.clone(),
            outputs: records,
            created_at_ms,
            expires_at_ms: options
                .ttl
                .map(|ttl| created_at_ms.saturating_add(duration_ms(ttl))),
            producer: self.config.producer.clone(),
            nondeterminism: Vec::new(),
        };
        let path = self.path(&entry.tenant.entry(&key.key));
        if mode == PublishMode::CreateIfAbsent {
            return self
                .create_or_replace_broken(&entry, key, manifest, broken, &produced)
                .await;
        }

        // Overwrite: carry the replaced entry's records over and add ours, writing only over
        // the version read (or creating) so a concurrent record is not lost; after a few
        // contended rounds, or where conditional writes are missing, a plain overwrite.
        for _ in 0..MANIFEST_CAS_ROUNDS {
            let (previous, put_mode) = match self.read_versioned(&path).await? {
                None => (None, PutMode::Create),
                Some((body, version)) => (
                    Manifest::decode(&body)
                        .and_then(|m| check_identity(m, &entry))
                        .ok(),
                    PutMode::Update(version),
                ),
            };
            let observed = self.carry_over(&mut manifest, previous.as_ref(), &produced);
            match self
                .objects
                .put_opts(&path, PutPayload::from(manifest.encode()), put_mode.into())
                .await
            {
                Ok(_) => {
                    return Ok(PublishOutcome::Published {
                        manifest: Box::new(manifest),
                        observed,
                    });
                }
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. },
                ) => continue,
                Err(object_store::Error::NotImplemented { .. }) => break,
                Err(e) => return Err(StoreError::backend("put", &path, e)),
            }
        }
        let previous = self.read_entry_manifest(&entry).await?;
        let observed = self.carry_over(&mut manifest, previous.as_ref(), &produced);
        self.overwrite_manifest(&path, &manifest).await?;
        Ok(PublishOutcome::Published {
            manifest: Box::new(manifest),
            observed,
        })
    }

    /// Writes `manifest` at `path` unconditionally, replacing whatever is there.
    async fn overwrite_manifest(&self, path: &Path, manifest: &Manifest) -> Result<(), StoreError> {
        self.objects
            .put_opts(
                path,
                PutPayload::from(manifest.encode()),
                PutMode::Overwrite.into(),
            )
            .await
            .map(drop)
            .map_err(|e| StoreError::backend("put", path, e))
    }

    /// The create-if-absent write of the manifest (6.1 step 5). An existing entry that is
    /// live and sound wins; one that is broken (`broken`, or found so after *already
    /// exists*) is replaced with replace-if-version-matches on the version read, so a sound
    /// entry written concurrently is never replaced.
    async fn create_or_replace_broken(
        &self,
        entry: &EntryRef,
        key: &DerivedKey,
        mut manifest: Manifest,
        mut broken: Option<(UpdateVersion, Manifest)>,
        produced: &BTreeMap<String, Digest>,
    ) -> Result<PublishOutcome, StoreError> {
        let path = self.path(&entry.tenant.entry(&key.key));
        for _ in 0..MANIFEST_CAS_ROUNDS {
            // The broken entry's records stay (they are history of the key); nothing new is
            // recorded: a broken entry's digests say nothing about determinism.
            let put_mode = match &broken {
                None => {
                    manifest.nondeterminism.clear();
                    PutMode::Create
                }
                Some((version, old)) => {
                    manifest.nondeterminism = old.nondeterminism.clone();
                    PutMode::Update(version.clone())
                }
            };
            let written = self
                .objects
                .put_opts(&path, PutPayload::from(manifest.encode()), put_mode.into())
                .await;
            match written {
                Ok(_) => {
                    return Ok(PublishOutcome::Published {
                        manifest: Box::new(manifest),
                        observed: None,
                    });
                }
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. },
                ) => {}
                Err(object_store::Error::NotImplemented { .. }) if broken.is_some() => {
                    // No conditional replace on this backend: replace the broken entry
                    // outright (a concurrent sound entry would be replaced by another sound one).
                    self.overwrite_manifest(&path, &manifest).await?;
                    return Ok(PublishOutcome::Published {
                        manifest: Box::new(manifest),
                        observed: None,
                    });
                }
                Err(e) => return Err(StoreError::backend("put", &path, e)),
            }
            // Another writer got there first: look at what it wrote.
            broken = match self.current_entry(entry).await? {
                Current::Absent => None,
                Current::Live {
                    manifest: m,
                    version,
                } => match self.unsound(key, &m).await? {
                    None => break,
                    Some(_) => Some((version, *m)),
                },
                // Expired or undecodable in between: leave it to the next publish.
                Current::Unusable => break,
            };
        }
        Ok(self.keep_existing(entry, Some(produced)).await)
    }

    /// The manifest at the entry's path with its version, classified as a lookup would.
    async fn current_entry(&self, entry: &EntryRef) -> Result<Current, StoreError> {
        let path = self.path(&entry.tenant.entry(&entry.key));
        let Some((body, version)) = self.read_versioned(&path).await? else {
            return Ok(Current::Absent);
        };
        match Manifest::decode(&body).and_then(|m| check_identity(m, entry)) {
            Ok(manifest) if !self.is_expired(&manifest) => Ok(Current::Live {
                manifest: Box::new(manifest),
                version,
            }),
            Ok(_) => Ok(Current::Unusable),
            Err(err) => {
                tracing::error!(%path, error = %err, "cache manifest is unusable; treating as a miss");
                Ok(Current::Unusable)
            }
        }
    }

    /// Why a live manifest cannot be a usable entry of `key`, if it cannot: its outputs are
    /// not exactly the declared ones, an inline output fails its check, or a blob it names is
    /// missing or of another size (one HEAD per blob; the bytes are the reader's to verify).
    async fn unsound(
        &self,
        key: &DerivedKey,
        manifest: &Manifest,
    ) -> Result<Option<String>, StoreError> {
        if let Some(name) = key
            .outputs
            .keys()
            .find(|n| !manifest.outputs.contains_key(n.as_str()))
        {
            return Ok(Some(format!("declared output {name:?} is missing")));
        }
        if let Some(name) = manifest
            .outputs
            .keys()
            .find(|n| !key.outputs.contains_key(n.as_str()))
        {
            return Ok(Some(format!("output {name:?} is not declared")));
        }
        let tenant = Tenant::new(&key.project, &key.domain)?;
        for (name, record) in &manifest.outputs {
            if let Some(inline) = &record.inline {
                if inline.len() as u64 != record.size || Digest::of_content(inline) != record.digest
                {
                    return Ok(Some(format!("inline output {name:?} fails its check")));
                }
                continue;
            }
            let location = self.path(&tenant.blob(&record.digest));
            match self.objects.head(&location).await {
                Ok(meta) if meta.size == record.size => {}
                Ok(meta) => {
                    return Ok(Some(format!(
                        "blob {location} has {} bytes, the manifest says {}",
                        meta.size, record.size
                    )));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    return Ok(Some(format!("blob {location} is missing")));
                }
                Err(e) => return Err(StoreError::backend("head", &location, e)),
            }
        }
        Ok(None)
    }

    /// Sets `manifest.nondeterminism` to the records of the entry it replaces plus, when
    /// their digests differ, a record of this overwrite (returned).
    fn carry_over(
        &self,
        manifest: &mut Manifest,
        previous: Option<&Manifest>,
        produced: &BTreeMap<String, Digest>,
    ) -> Option<NondeterminismRecord> {
        manifest.nondeterminism = previous
            .map(|p| p.nondeterminism.clone())
            .unwrap_or_default();
        let observed = previous.and_then(|p| {
            NondeterminismRecord::compare(
                p,
                produced,
                manifest.created_at_ms,
                &self.config.producer,
                NondeterminismOutcome::Replaced,
            )
        })?;
        push_nondeterminism(&mut manifest.nondeterminism, observed.clone());
        Some(observed)
    }

    /// The create-if-absent publish met a live entry: compare its digests with `produced`
    /// and, when they differ, record that on the kept manifest with a conditional replace.
    /// Never fails: a failure to record is logged and the observation still returned.
    async fn keep_existing(
        &self,
        entry: &EntryRef,
        produced: Option<&BTreeMap<String, Digest>>,
    ) -> PublishOutcome {
        match self.record_on_existing(entry, produced).await {
            Ok((existing, observed)) => PublishOutcome::AlreadyExists {
                existing: existing.map(Box::new),
                observed,
            },
            Err(err) => {
                tracing::warn!(key = %entry.key, error = %err,
                    "could not read back the entry kept to compare its outputs");
                PublishOutcome::AlreadyExists {
                    existing: None,
                    observed: None,
                }
            }
        }
    }

    async fn record_on_existing(
        &self,
        entry: &EntryRef,
        produced: Option<&BTreeMap<String, Digest>>,
    ) -> Result<(Option<Manifest>, Option<NondeterminismRecord>), StoreError> {
        let path = self.path(&entry.tenant.entry(&entry.key));
        let mut last = (None, None);
        for _ in 0..MANIFEST_CAS_ROUNDS {
            let Some((body, version)) = self.read_versioned(&path).await? else {
                return Ok((None, None));
            };
            let Ok(existing) = Manifest::decode(&body).and_then(|m| check_identity(m, entry))
            else {
                return Ok((None, None));
            };
            let Some(observed) = produced.and_then(|produced| {
                NondeterminismRecord::compare(
                    &existing,
                    produced,
                    self.config.clock.now_ms(),
                    &self.config.producer,
                    NondeterminismOutcome::Discarded,
                )
            }) else {
                return Ok((Some(existing), None));
            };
            if existing
                .nondeterminism
                .last()
                .is_some_and(|r| r.outcome == observed.outcome && r.outputs == observed.outputs)
            {
                // The same difference is already the latest record: nothing new to say.
                return Ok((Some(existing), Some(observed)));
            }
            if existing.encode() != body {
                // Not written by this version's encoder (a field it does not know, or another
                // writer): rewriting it would drop what it does not understand.
                tracing::info!(%path, "manifest not rewritten to record nondeterminism: \
                    it has content this version does not re-encode identically");
                return Ok((Some(existing), Some(observed)));
            }
            let mut updated = existing.clone();
            push_nondeterminism(&mut updated.nondeterminism, observed.clone());
            match self
                .objects
                .put_opts(
                    &path,
                    PutPayload::from(updated.encode()),
                    PutMode::Update(version).into(),
                )
                .await
            {
                Ok(_) => return Ok((Some(updated), Some(observed))),
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => last = (Some(existing), Some(observed)),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "could not record nondeterminism");
                    return Ok((Some(existing), Some(observed)));
                }
            }
        }
        tracing::warn!(%path, "could not record nondeterminism: the manifest kept changing");
        Ok(last)
    }

    /// An object's bytes (one GET), or `None` when there is none.
    pub(crate) async fn get_bytes(&self, path: &Path) -> Result<Option<Bytes>, StoreError> {
        Ok(self.read_versioned(path).await?.map(|(body, _)| body))
    }

    /// An object's bytes and the version a replace-if-version-matches needs, or `None` when
    /// there is none (manifests, leases).
    pub(crate) async fn read_versioned(
        &self,
        path: &Path,
    ) -> Result<Option<(Bytes, UpdateVersion)>, StoreError> {
        let result = match self.objects.get(path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::backend("get", path, e)),
        };
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        match result.bytes().await {
            Ok(body) => Ok(Some((body, version))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::backend("get", path, e)),
        }
    }

    /// Hashes one output and, unless it is inlined or its blob is already present, uploads it.
    async fn store_output(
        &self,
        tenant: &Tenant,
        key: &DerivedKey,
        output: &Output,
    ) -> Result<OutputRecord, StoreError> {
        let ty = key
            .outputs
            .get(&output.name)
            .map(ToString::to_string)
            .unwrap_or_default();
        let (digest, size) = match &output.data {
            OutputData::Bytes(bytes) => (Digest::of_content(bytes), bytes.len() as u64),
            OutputData::File(path) => blob::hash_file(path).await?,
            OutputData::Received { digest, size, .. } => (*digest, *size),
        };
        if size <= INLINE_MAX_BYTES {
            let bytes = match &output.data {
                OutputData::Bytes(bytes) => bytes.clone(),
                OutputData::File(path) | OutputData::Received { path, .. } => Bytes::from(
                    tokio::fs::read(path)
                        .await
                        .map_err(|e| StoreError::io(path, e))?,
                ),
            };
            if Digest::of_content(&bytes) != digest {
                return Err(StoreError::OutputChanged {
                    name: output.name.clone(),
                });
            }
            return Ok(OutputRecord {
                ty,
                size,
                digest,
                inline: Some(bytes),
            });
        }
        let location = self.path(&tenant.blob(&digest));
        let present = match self.objects.head(&location).await {
            Ok(meta) => meta.size == size,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(StoreError::backend("head", &location, e)),
        };
        if !present {
            let source = match &output.data {
                OutputData::Bytes(bytes) => Source::Memory(bytes),
                OutputData::File(path) | OutputData::Received { path, .. } => Source::File(path),
            };
            blob::upload(
                &self.objects,
                &location,
                source,
                &digest,
                size,
                &output.name,
                &self.config.upload,
            )
            .await?;
        }
        Ok(OutputRecord {
            ty,
            size,
            digest,
            inline: None,
        })
    }
}

/// The digest of each output's bytes (reading files, uploading nothing).
async fn output_digests(outputs: &[Output]) -> Result<BTreeMap<String, Digest>, StoreError> {
    let mut digests = BTreeMap::new();
    for output in outputs {
        let digest = match &output.data {
            OutputData::Bytes(bytes) => Digest::of_content(bytes),
            OutputData::File(path) => blob::hash_file(path).await?.0,
            OutputData::Received { digest, .. } => *digest,
        };
        digests.insert(output.name.clone(), digest);
    }
    Ok(digests)
}

/// The manifest must describe the entry at whose path it was found.
fn check_identity(manifest: Manifest, entry: &EntryRef) -> Result<Manifest, ManifestError> {
    let key = &manifest.key;
    if key.key != entry.key
        || key.project != entry.tenant.project()
        || key.domain != entry.tenant.domain()
    {
        return Err(ManifestError(format!(
            "manifest describes {}/{}/{}, not the entry at its path",
            key.project, key.domain, key.key
        )));
    }
    Ok(manifest)
}

/// Every output the key declares is given exactly once, and nothing else.
fn check_outputs(key: &DerivedKey, outputs: &[Output]) -> Result<(), StoreError> {
    let mut seen = std::collections::BTreeSet::new();
    for output in outputs {
        validate_name("output name", &output.name)?;
        if !key.outputs.contains_key(&output.name) {
            return Err(StoreError::OutputMismatch {
                name: output.name.clone(),
                reason: format!("not declared by task {:?}", key.task),
            });
        }
        if !seen.insert(output.name.as_str()) {
            return Err(StoreError::OutputMismatch {
                name: output.name.clone(),
                reason: "given twice".into(),
            });
        }
    }
    if let Some(missing) = key.outputs.keys().find(|n| !seen.contains(n.as_str())) {
        return Err(StoreError::OutputMismatch {
            name: missing.clone(),
            reason: format!("declared by task {:?} but not given", key.task),
        });
    }
    Ok(())
}
