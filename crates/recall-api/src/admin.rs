//! Eviction and garbage collection (`POST /v1/evict`, `POST /v1/gc`).

use recall_store::GcOptions;
use serde::{Deserialize, Serialize};

use crate::CacheStatus;

/// Body of `POST /v1/evict`. At most one selector among `key`, `task` (optionally with
/// `cache_version`) and `older_than_seconds`; none evicts the whole project/domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvictRequest {
    /// The tenant's project.
    pub project: String,
    /// The tenant's domain.
    pub domain: String,
    /// One entry, by its 64-hex key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Every entry of this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// With `task`: only entries of this cache_version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_version: Option<String>,
    /// Entries published more than this many seconds ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_seconds: Option<u64>,
    /// Count what would be evicted; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to `POST /v1/evict` (`CACHE_EVICTED`): what was (or, on a dry run, would be)
/// removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvictReport {
    /// Blobs removed (only eviction of a whole project/domain removes blobs).
    pub blobs: u64,
    /// The tenant's domain.
    pub domain: String,
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Entries (manifests) removed.
    pub entries: u64,
    /// Lease objects removed.
    pub leases: u64,
    /// Index markers removed.
    pub markers: u64,
    /// The tenant's project.
    pub project: String,
    /// Which selector chose the entries: `key`, `task`, `older_than_seconds` or `tenant`.
    pub selector: String,
    /// `CACHE_EVICTED`.
    pub status: CacheStatus,
}

impl EvictReport {
    /// The answer to an eviction in `project`/`domain` by `selector` that did `report`.
    pub fn new(
        project: &str,
        domain: &str,
        selector: &str,
        dry_run: bool,
        report: &recall_store::EvictReport,
    ) -> Self {
        EvictReport {
            blobs: report.blobs,
            domain: domain.to_string(),
            dry_run,
            entries: report.entries,
            leases: report.leases,
            markers: report.markers,
            project: project.to_string(),
            selector: selector.to_string(),
            status: CacheStatus::CacheEvicted,
        }
    }
}

impl From<&EvictReport> for recall_store::EvictReport {
    fn from(report: &EvictReport) -> Self {
        recall_store::EvictReport {
            entries: report.entries,
            markers: report.markers,
            leases: report.leases,
            blobs: report.blobs,
        }
    }
}

/// Body of `POST /v1/gc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Unreferenced blobs younger than this are kept (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u64>,
    /// Count, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Only this project (with `domain`); default every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only this domain (with `project`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// The answer to `POST /v1/gc`: what a garbage collection found and did (the fields of
/// recall-store's `GcReport`, with the options it ran with).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Blobs seen in the sweep phase.
    pub blobs: u64,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub blobs_in_grace: u64,
    /// Unreferenced blobs past the grace period: deleted, or would be on a dry run.
    pub collectable_blobs: u64,
    /// Their total size in bytes.
    pub collectable_bytes: u64,
    /// Blobs actually deleted (0 on a dry run).
    pub deleted_blobs: u64,
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Manifests expired longer than the grace period: deleted with their markers, or
    /// would be on a dry run.
    pub expired_entries: u64,
    /// The grace period, in seconds.
    pub grace_seconds: u64,
    /// Manifests read in the mark phase.
    pub manifests: u64,
    /// Markers without a manifest past the grace period.
    pub orphan_markers: u64,
    /// Blobs some manifest references.
    pub referenced_blobs: u64,
    /// Manifests that did not decode.
    pub undecodable_manifests: u64,
}

impl GcReport {
    /// The answer to a collection run with `options` that found and did `report`.
    pub fn new(options: &GcOptions, report: &recall_store::GcReport) -> Self {
        GcReport {
            blobs: report.blobs,
            blobs_in_grace: report.blobs_in_grace,
            collectable_blobs: report.collectable_blobs,
            collectable_bytes: report.collectable_bytes,
            deleted_blobs: report.deleted_blobs,
            dry_run: options.dry_run,
            expired_entries: report.expired_entries,
            grace_seconds: options.grace.as_secs(),
            manifests: report.manifests,
            orphan_markers: report.orphan_markers,
            referenced_blobs: report.referenced_blobs,
            undecodable_manifests: report.undecodable_manifests,
        }
    }
}

impl From<&GcReport> for recall_store::GcReport {
    fn from(r: &GcReport) -> Self {
        recall_store::GcReport {
            manifests: r.manifests,
            undecodable_manifests: r.undecodable_manifests,
            blobs: r.blobs,
            referenced_blobs: r.referenced_blobs,
            blobs_in_grace: r.blobs_in_grace,
            collectable_blobs: r.collectable_blobs,
            collectable_bytes: r.collectable_bytes,
            deleted_blobs: r.deleted_blobs,
            orphan_markers: r.orphan_markers,
            expired_entries: r.expired_entries,
        }
    }
}
