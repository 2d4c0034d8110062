//! Answers about one entry: a lookup's hit, miss or failure, and a publish's answer
//! (`StatusBody` in the OpenAPI document).

use recall_key::Digest;
use recall_store::{Manifest, Miss, NondeterminismRecord};
use serde::{Deserialize, Serialize};

use crate::{CacheStatus, ManifestView, RecordView};

/// A hit (200, `CACHE_HIT`): the entry's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitAnswer {
    /// Whether recalld's memory tier answered (no store request).
    pub from_hot_tier: bool,
    /// The entry's key.
    pub key: Digest,
    /// The entry.
    pub manifest: ManifestView,
    /// `CACHE_HIT`.
    pub status: CacheStatus,
}

/// Why a lookup did not return an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissReason {
    /// No entry under the key.
    NotFound,
    /// The entry is past its expiry (`created_at_ms` says when it was published).
    Expired,
    /// The manifest did not decode (`detail` says why).
    Undecodable,
    /// An output's blob is missing or does not verify (`output`, `detail`).
    Broken,
    /// The lookup was skipped: the caller asked to overwrite (`CACHE_SKIPPED`).
    OverwriteRequested,
    /// A reason this version does not know; read as not found.
    #[serde(other)]
    Unknown,
}

/// A miss (404, `CACHE_MISS`) or a skipped lookup (404, `CACHE_SKIPPED`): run the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissAnswer {
    /// `expired`: when the entry was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
    /// `undecodable` and `broken`: what is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The key looked up.
    pub key: Digest,
    /// `broken`: the output that is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why there is no entry.
    pub reason: MissReason,
    /// `CACHE_MISS` or `CACHE_SKIPPED`.
    pub status: CacheStatus,
}

impl MissAnswer {
    /// The answer to a lookup of `key` that missed for `miss`.
    pub fn new(key: Digest, miss: &Miss) -> Self {
        let mut answer = MissAnswer {
            created_at_ms: None,
            detail: None,
            key,
            output: None,
            reason: MissReason::NotFound,
            status: CacheStatus::CacheMiss,
        };
        match miss {
            Miss::NotFound => {}
            Miss::Expired { created_at_ms } => {
                answer.reason = MissReason::Expired;
                answer.created_at_ms = Some(*created_at_ms);
            }
            Miss::Undecodable { reason } => {
                answer.reason = MissReason::Undecodable;
                answer.detail = Some(reason.clone());
            }
            Miss::Broken { output, reason } => {
                answer.reason = MissReason::Broken;
                answer.output = Some(output.clone());
                answer.detail = Some(reason.clone());
            }
        }
        answer
    }

    /// The answer to a lookup skipped because the caller will overwrite (Flyte's
    /// overwrite_cache).
    pub fn skipped(key: Digest) -> Self {
        MissAnswer {
            created_at_ms: None,
            detail: None,
            key,
            output: None,
            reason: MissReason::OverwriteRequested,
            status: CacheStatus::CacheSkipped,
        }
    }

    /// The miss as the store would have reported it (a skipped lookup or an unknown reason
    /// is not found; missing details are empty).
    pub fn miss(&self) -> Miss {
        let detail = || self.detail.clone().unwrap_or_default();
        match self.reason {
            MissReason::Expired => Miss::Expired {
                created_at_ms: self.created_at_ms.unwrap_or(0),
            },
            MissReason::Undecodable => Miss::Undecodable { reason: detail() },
            MissReason::Broken => Miss::Broken {
                output: self.output.clone().unwrap_or_default(),
                reason: detail(),
            },
            MissReason::NotFound | MissReason::OverwriteRequested | MissReason::Unknown => {
                Miss::NotFound
            }
        }
    }
}

/// The cache could not be asked or written (503, `CACHE_LOOKUP_FAILURE` or
/// `CACHE_PUT_FAILURE`); the task runs (and its result stands) anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAnswer {
    /// What went wrong.
    pub cause: String,
    /// The entry's key.
    pub key: Digest,
    /// `CACHE_LOOKUP_FAILURE` or `CACHE_PUT_FAILURE`.
    pub status: CacheStatus,
}

/// The answer to a publish: 201 `CACHE_POPULATED` with the new entry, or 200 `CACHE_HIT`
/// with `already_existed` and the entry that was kept (when it could be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishAnswer {
    /// `true` when an entry already existed and was kept; absent on a populated answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already_existed: Option<bool>,
    /// The entry's key.
    pub key: Digest,
    /// The entry as it now stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestView>,
    /// What this publish observed when its outputs differ from the entry it met, or `null`.
    #[serde(default)]
    pub nondeterminism: Option<RecordView>,
    /// `CACHE_POPULATED` or `CACHE_HIT`.
    pub status: CacheStatus,
}

impl PublishAnswer {
    /// The answer to a publish that stored `manifest`.
    pub fn populated(
        key: Digest,
        manifest: &Manifest,
        observed: Option<&NondeterminismRecord>,
    ) -> Self {
        PublishAnswer {
            already_existed: None,
            key,
            manifest: Some(manifest.into()),
            nondeterminism: observed.map(RecordView::from),
            status: CacheStatus::CachePopulated,
        }
    }

    /// The answer to a publish that met an existing entry (`existing`, when it could be
    /// read) and kept it.
    pub fn existed(
        key: Digest,
        existing: Option<&Manifest>,
        observed: Option<&NondeterminismRecord>,
    ) -> Self {
        PublishAnswer {
            already_existed: Some(true),
            key,
            manifest: existing.map(ManifestView::from),
            nondeterminism: observed.map(RecordView::from),
            status: CacheStatus::CacheHit,
        }
    }
}
