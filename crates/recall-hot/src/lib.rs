//! The hot tier: a memory cache of manifests in front of the object store.
//!
//! Reads go hot tier → store, and a store hit fills the hot tier. Concurrent cold lookups of
//! one entry coalesce into a single store request. Only hits are cached unless a negative
//! cache is configured, because another daemon may publish a missing entry a moment later;
//! the negative cache is off by default and bounded to [`MAX_NEGATIVE_TTL`].
//!
//! Staleness: an entry evicted or overwritten through another process stays visible here for
//! at most the configured TTL. Evictions and overwrites made through this process invalidate
//! at once ([`HotTier::invalidate`], [`HotTier::insert`]).

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use recall_store::{EntryRef, Lookup, Manifest, Miss, Store, StoreError};

/// Longest a miss may be remembered.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// Where manifests come from when the hot tier does not have them.
pub trait ManifestSource: Send + Sync + 'static {
    /// Looks an entry up in the slower tier.
    fn lookup(
        &self,
        entry: &EntryRef,
    ) -> impl Future<Output = Result<Lookup<Manifest>, StoreError>> + Send;

    /// Whether a manifest found earlier is still a hit now (expiry, maximum ages). Memory
    /// asks this on every hit, so an entry expires on time even while it is cached.
    fn is_live(&self, manifest: &Manifest) -> bool {
        let _ = manifest;
        true
    }
}

impl ManifestSource for Store {
    fn lookup(
        &self,
        entry: &EntryRef,
    ) -> impl Future<Output = Result<Lookup<Manifest>, StoreError>> + Send {
        Store::lookup(self, entry)
    }

    fn is_live(&self, manifest: &Manifest) -> bool {
        !self.is_expired(manifest)
    }
}

/// A manifest held in memory, with room for one rendering of it (for example the JSON a
/// server answers with) that is computed on first use and then shared by every later hit.
/// Dereferences to the [`Manifest`].
#[derive(Debug)]
pub struct HotManifest {
    manifest: Manifest,
    rendered: OnceLock<Bytes>,
}

impl HotManifest {
    /// Wraps a manifest; nothing is rendered yet.
    pub fn new(manifest: Manifest) -> Self {
        HotManifest {
            manifest,
            rendered: OnceLock::new(),
        }
    }

    /// The memoized rendering, made by `render` the first time it is asked for. Every caller
    /// must pass the same rendering function; the first one wins.
    pub fn rendered(&self, render: impl FnOnce(&Manifest) -> Bytes) -> Bytes {
        self.rendered.get_or_init(|| render(&self.manifest)).clone()
    }
}

impl Deref for HotManifest {
    type Target = Manifest;

    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

impl PartialEq for HotManifest {
    fn eq(&self, other: &Self) -> bool {
        self.manifest == other.manifest
    }
}

impl Eq for HotManifest {}

/// Settings of the hot tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotConfig {
    /// Total weight of cached manifests, in bytes (approximate encoded size).
    pub capacity_bytes: u64,
    /// How long a cached hit is served without asking the store again; also the longest
    /// time an entry evicted through another process can still be served from here.
    pub ttl: Duration,
    /// How long a miss is remembered; `None` (the default) remembers none.
    pub negative_ttl: Option<Duration>,
}

impl Default for HotConfig {
    fn default() -> Self {
        HotConfig {
            capacity_bytes: 256 * 1024 * 1024,
            ttl: Duration::from_secs(60),
            negative_ttl: None,
        }
    }
}

/// A configuration the hot tier cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HotConfigError {
    /// The negative TTL is longer than [`MAX_NEGATIVE_TTL`].
    #[error("negative_ttl {value:?} is longer than the maximum {MAX_NEGATIVE_TTL:?}")]
    NegativeTtlTooLong {
        /// The rejected TTL.
        value: Duration,
    },
    /// The TTL is zero.
    #[error("hot-tier ttl must be greater than zero")]
    ZeroTtl,
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The memory tier.
    Hot,
    /// The object store.
    Store,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotLookup {
    /// A live entry.
    Hit {
        /// Its manifest.
        manifest: Arc<HotManifest>,
        /// Which tier answered.
        tier: Tier,
    },
    /// No usable entry.
    Miss {
        /// Why.
        miss: Miss,
        /// Which tier answered (the hot tier only with a negative cache).
        tier: Tier,
    },
}

/// The store failed while filling the hot tier.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LookupFailed(pub Arc<StoreError>);

/// Counters and sizes, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotStats {
    /// Manifests held.
    pub entries: u64,
    /// Their total weight in bytes.
    pub bytes: u64,
    /// Lookups answered from memory.
    pub hot_hits: u64,
    /// Lookups answered by a store hit.
    pub store_hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Lookups that waited for another caller's store request instead of making their own.
    pub coalesced_waits: u64,
    /// Store requests made.
    pub store_requests: u64,
    /// Store requests that failed.
    pub store_errors: u64,
}

#[derive(Default)]
struct Counters {
    hot_hits: AtomicU64,
    store_hits: AtomicU64,
    misses: AtomicU64,
    coalesced_waits: AtomicU64,
    store_requests: AtomicU64,
    store_errors: AtomicU64,
}

/// What a fill that did not produce a manifest ends with.
enum Fill {
    Miss(Miss),
    Failed(Arc<StoreError>),
}

/// The hot tier over a [`ManifestSource`].
pub struct HotTier<S> {
    source: S,
    manifests: Cache<EntryRef, Arc<HotManifest>>,
    misses: Option<Cache<EntryRef, Miss>>,
    counters: Counters,
}

impl<S: ManifestSource> HotTier<S> {
    /// Builds a hot tier in front of `source`.
    pub fn new(source: S, config: &HotConfig) -> Result<Self, HotConfigError> {
        if config.ttl.is_zero() {
            return Err(HotConfigError::ZeroTtl);
        }
        let misses = match config.negative_ttl {
            Some(ttl) if ttl > MAX_NEGATIVE_TTL => {
                return Err(HotConfigError::NegativeTtlTooLong { value: ttl });
            }
            Some(ttl) if !ttl.is_zero() => Some(
                Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build(),
            ),
            _ => None,
        };
        let manifests = Cache::builder()
            .max_capacity(config.capacity_bytes)
            // Twice the manifest's own weight: room for its memoized rendering.
            .weigher(|_key: &EntryRef, manifest: &Arc<HotManifest>| {
                manifest_weight(manifest).saturating_mul(2)
            })
            .time_to_live(config.ttl)
            .build();
        Ok(HotTier {
            source,
            manifests,
            misses,
            counters: Counters::default(),
        })
    }

    /// The tier behind this one.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Looks an entry up: memory first, then the store (one request for all concurrent
    /// callers of the same entry), filling memory on a hit.
    pub async fn lookup(&self, entry: &EntryRef) -> Result<HotLookup, LookupFailed> {
        match self.cached(entry).await {
            Some(answer) => Ok(answer),
            None => self.load(entry).await,
        }
    }

    /// The answer memory holds for an entry, without asking the store: a cached hit, or a
    /// remembered miss when the negative cache is on.
    pub async fn cached(&self, entry: &EntryRef) -> Option<HotLookup> {
        if let Some(manifest) = self.manifests.get(entry).await {
            if !self.source.is_live(&manifest) {
                // Expired while cached: forget it and let the store say why it is a miss.
                self.manifests.invalidate(entry).await;
                return None;
            }
            self.counters.hot_hits.fetch_add(1, Ordering::Relaxed);
            return Some(HotLookup::Hit {
                manifest,
                tier: Tier::Hot,
            });
        }
        if let Some(misses) = &self.misses
            && let Some(miss) = misses.get(entry).await
        {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Some(HotLookup::Miss {
                miss,
                tier: Tier::Hot,
            });
        }
        None
    }

    /// Asks the store (one request for all concurrent callers of the same entry) and fills
    /// memory on a hit.
    pub async fn load(&self, entry: &EntryRef) -> Result<HotLookup, LookupFailed> {
        let ran = AtomicBool::new(false);
        let filled = self
            .manifests
            .try_get_with_by_ref(entry, async {
                ran.store(true, Ordering::Relaxed);
                self.counters.store_requests.fetch_add(1, Ordering::Relaxed);
                match self.source.lookup(entry).await {
                    Ok(Lookup::Hit(manifest)) => Ok(Arc::new(HotManifest::new(manifest))),
                    Ok(Lookup::Miss(miss)) => Err(Fill::Miss(miss)),
                    Err(err) => Err(Fill::Failed(Arc::new(err))),
                }
            })
            .await;
        if !ran.load(Ordering::Relaxed) {
            self.counters
                .coalesced_waits
                .fetch_add(1, Ordering::Relaxed);
        }
        match filled {
            Ok(manifest) => {
                self.counters.store_hits.fetch_add(1, Ordering::Relaxed);
                Ok(HotLookup::Hit {
                    manifest,
                    tier: Tier::Store,
                })
            }
            Err(fill) => match &*fill {
                Fill::Miss(miss) => {
                    self.counters.misses.fetch_add(1, Ordering::Relaxed);
                    if let Some(misses) = &self.misses {
                        misses.insert(entry.clone(), miss.clone()).await;
                    }
                    Ok(HotLookup::Miss {
                        miss: miss.clone(),
                        tier: Tier::Store,
                    })
                }
                Fill::Failed(err) => {
                    if ran.load(Ordering::Relaxed) {
                        self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(LookupFailed(err.clone()))
                }
            },
        }
    }

    /// Puts a manifest this process just published into memory (write-through).
    pub async fn insert(&self, entry: EntryRef, manifest: Manifest) {
        if let Some(misses) = &self.misses {
            misses.invalidate(&entry).await;
        }
        self.manifests
            .insert(entry, Arc::new(HotManifest::new(manifest)))
            .await;
    }

    /// Forgets an entry at once (after an eviction or overwrite through this process).
    pub async fn invalidate(&self, entry: &EntryRef) {
        self.manifests.invalidate(entry).await;
        if let Some(misses) = &self.misses {
            misses.invalidate(entry).await;
        }
    }

    /// Forgets every entry (after an eviction by task, tenant or age).
    pub fn invalidate_all(&self) {
        self.manifests.invalidate_all();
        if let Some(misses) = &self.misses {
            misses.invalidate_all();
        }
    }

    /// Current counters and sizes. Sizes are exact after pending maintenance has run.
    pub async fn stats(&self) -> HotStats {
        self.manifests.run_pending_tasks().await;
        let c = &self.counters;
        HotStats {
            entries: self.manifests.entry_count(),
            bytes: self.manifests.weighted_size(),
            hot_hits: c.hot_hits.load(Ordering::Relaxed),
            store_hits: c.store_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            coalesced_waits: c.coalesced_waits.load(Ordering::Relaxed),
            store_requests: c.store_requests.load(Ordering::Relaxed),
            store_errors: c.store_errors.load(Ordering::Relaxed),
        }
    }
}

/// Slots in one node of the standard library's `BTreeMap`: a map allocates whole nodes, so
/// even a one-entry map costs a node of this many key/value slots.
const BTREE_NODE_SLOTS: usize = 11;
/// What the allocator adds to each heap allocation (header and rounding), on average.
const PER_ALLOCATION: usize = 16;
/// moka's own bookkeeping per cached entry (hash, access-order and timer nodes, counters),
/// measured: what RSS grew by per entry beyond the rest of this estimate.
const PER_CACHE_ENTRY: usize = 768;

/// Heap bytes of a `BTreeMap<K, V>` with `len` entries, not counting what K and V point to.
fn btree_bytes<K, V>(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    // Nodes are between half full and full; count two thirds full beyond the first one.
    let nodes = if len <= BTREE_NODE_SLOTS {
        1
    } else {
        len.div_ceil(BTREE_NODE_SLOTS * 2 / 3)
    };
    nodes * (BTREE_NODE_SLOTS * (size_of::<K>() + size_of::<V>()) + 2 * PER_ALLOCATION)
}

/// Heap bytes of a string (or other owned buffer) of `len` bytes.
fn heap(len: usize) -> usize {
    if len == 0 { 0 } else { len + PER_ALLOCATION }
}

/// Memory one cached manifest takes, in bytes, as the hot tier's weigher counts it: the
/// manifest and what it owns (strings, map nodes, inline output bytes), the entry's key, and
/// the cache's per-entry bookkeeping. Calibrated against process RSS: filling a tier from
/// the store grows RSS by about the weighted size. Saturates at `u32::MAX` (moka's weight).
pub fn manifest_weight(manifest: &Manifest) -> u32 {
    let key = &manifest.key;
    let mut bytes = PER_CACHE_ENTRY
        + size_of::<EntryRef>()
        + heap(key.project.len())
        + heap(key.domain.len())
        + heap(size_of::<Manifest>())
        + heap(key.project.len())
        + heap(key.domain.len())
        + heap(key.task.len())
        + heap(key.cache_version.len())
        + key.salt.as_ref().map_or(0, |s| heap(s.len()))
        + heap(manifest.producer.len());
    bytes += btree_bytes::<String, recall_key::InputDigest>(key.inputs.len());
    for (name, input) in &key.inputs {
        // Nested types (list<...>, map<...>) own heap nodes; their text length bounds them.
        bytes += heap(name.len()) + type_heap(input.ty.canonical_text().len());
    }
    bytes += btree_bytes::<String, recall_key::ValueType>(key.outputs.len());
    for (name, ty) in &key.outputs {
        bytes += heap(name.len()) + type_heap(ty.canonical_text().len());
    }
    bytes += btree_bytes::<String, recall_store::OutputRecord>(manifest.outputs.len());
    for (name, output) in &manifest.outputs {
        bytes += heap(name.len())
            + heap(output.ty.len())
            + output.inline.as_ref().map_or(0, |b| heap(b.len()) + 32);
    }
    if !manifest.nondeterminism.is_empty() {
        bytes +=
            heap(manifest.nondeterminism.len() * size_of::<recall_store::NondeterminismRecord>());
    }
    for record in &manifest.nondeterminism {
        bytes += heap(record.producer.len())
            + btree_bytes::<String, recall_store::DigestChange>(record.outputs.len());
        for name in record.outputs.keys() {
            bytes += heap(name.len());
        }
    }
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Heap of a parsed type whose canonical text has `len` bytes: scalar types own none.
fn type_heap(len: usize) -> usize {
    if len <= "duration".len() {
        0
    } else {
        2 * len + PER_ALLOCATION
    }
}
