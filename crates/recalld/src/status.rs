//! Flyte-style cache statuses carried by every response that concerns an entry.

use serde::Serialize;

/// What happened to the cache in one request (Flyte's CatalogCacheStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CacheStatus {
    /// The entry exists and was returned.
    CacheHit,
    /// There is no usable entry: run the task.
    CacheMiss,
    /// The outputs were stored.
    CachePopulated,
    /// The cache could not be asked (storage slow or down): run the task.
    CacheLookupFailure,
    /// The outputs could not be stored; the task's result is unaffected.
    CachePutFailure,
    /// The lookup was skipped on purpose (overwrite requested).
    CacheSkipped,
    /// Caching is off for this request.
    CacheDisabled,
    /// The entry was removed.
    CacheEvicted,
}

impl CacheStatus {
    /// The header value, e.g. `CACHE_HIT`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::CacheHit => "CACHE_HIT",
            CacheStatus::CacheMiss => "CACHE_MISS",
            CacheStatus::CachePopulated => "CACHE_POPULATED",
            CacheStatus::CacheLookupFailure => "CACHE_LOOKUP_FAILURE",
            CacheStatus::CachePutFailure => "CACHE_PUT_FAILURE",
            CacheStatus::CacheSkipped => "CACHE_SKIPPED",
            CacheStatus::CacheDisabled => "CACHE_DISABLED",
            CacheStatus::CacheEvicted => "CACHE_EVICTED",
        }
    }
}
