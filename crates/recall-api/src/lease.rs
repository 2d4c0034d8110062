//! Leases for Flyte's cache_serialize (docs/LAYOUT.md section 9).

use recall_store::LeaseRecord;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/leases/{project}/{domain}/{key}`. Requests keep recalld's field order
/// (not alphabetical), so its messages about a missing or unknown field stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who asks: an execution id or `<hostname>/<pid>`.
    pub owner: String,
    /// How often the owner will ask again; the lease lapses after three missed heartbeats.
    pub heartbeat_seconds: u64,
}

/// The answer to a lease request: granted to the caller, or the holder and its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAnswer {
    /// When the holder first took it, milliseconds since the Unix epoch.
    #[serde(default)]
    pub acquired_at_ms: i64,
    /// When the lease lapses unless renewed.
    pub expires_at_ms: i64,
    /// Whether the caller holds the lease now.
    pub granted: bool,
    /// The holder's heartbeat interval in milliseconds.
    #[serde(default)]
    pub heartbeat_ms: i64,
    /// The holder.
    pub owner: String,
    /// The holder's last heartbeat.
    #[serde(default)]
    pub renewed_at_ms: i64,
}

impl LeaseAnswer {
    /// The answer showing `record`, granted to the caller or not.
    pub fn new(granted: bool, record: &LeaseRecord) -> Self {
        LeaseAnswer {
            acquired_at_ms: record.acquired_at_ms,
            expires_at_ms: record.expires_at_ms,
            granted,
            heartbeat_ms: record.heartbeat_ms,
            owner: record.owner.clone(),
            renewed_at_ms: record.renewed_at_ms,
        }
    }
}

/// The answer to `DELETE /v1/leases/{project}/{domain}/{key}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAnswer {
    /// Whether the caller held the lease and released it.
    pub released: bool,
}
