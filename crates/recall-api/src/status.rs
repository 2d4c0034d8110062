//! Flyte-style cache statuses carried by every answer that concerns an entry.

use serde::{Deserialize, Serialize};

/// What happened to the cache in one request (Flyte's CatalogCacheStatus); the body's
/// `status` field and the `X-Recall-Cache-Status` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Every status, in the order of the OpenAPI document's enum.
    pub const ALL: [CacheStatus; 8] = [
        CacheStatus::CacheHit,
        CacheStatus::CacheMiss,
        CacheStatus::CachePopulated,
        CacheStatus::CacheLookupFailure,
        CacheStatus::CachePutFailure,
        CacheStatus::CacheSkipped,
        CacheStatus::CacheDisabled,
        CacheStatus::CacheEvicted,
    ];

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

impl std::fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_as_str_agree() {
        for status in CacheStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            let back: CacheStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(back, status);
        }
    }
}
