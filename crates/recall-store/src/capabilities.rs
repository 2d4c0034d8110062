//! What the object store behind a [`Store`] actually honours (docs/LAYOUT.md section 11):
//! create-if-absent, replace-if-version-matches and ranged GETs, found out by trying each one
//! on scratch objects under `probe/<random>/` at the store root and removing them afterwards.
//!
//! Some S3-compatible servers (Garage, s3rver) accept `If-None-Match: *` and a stale
//! `If-Match` with 200 and overwrite; the layout's "exactly one manifest wins" and leases then
//! silently do not hold. The probe is how recall and recalld notice.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::store::Store;

/// The prefix, relative to the store root, under which probes and readiness checks write
/// their scratch objects. Readers, eviction and GC ignore it.
pub const PROBE_PREFIX: &str = "probe";

/// The outcome of one capability check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityCheck {
    /// Whether the store honours it.
    pub supported: bool,
    /// What was observed, in one line (why it is missing, when it is).
    pub detail: String,
}

impl CapabilityCheck {
    fn yes(detail: impl Into<String>) -> Self {
        CapabilityCheck {
            supported: true,
            detail: detail.into(),
        }
    }

    fn no(detail: impl Into<String>) -> Self {
        CapabilityCheck {
            supported: false,
            detail: detail.into(),
        }
    }
}

/// What a store honours, as measured by [`Store::probe_capabilities`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// A create-if-absent PUT (`If-None-Match: *`) on an existing object fails.
    pub create_if_absent: CapabilityCheck,
    /// A replace-if-version-matches PUT (`If-Match`) with a stale version fails, and one with
    /// the current version succeeds.
    pub replace_if_version_matches: CapabilityCheck,
    /// A ranged GET returns exactly the bytes asked for.
    pub ranged_get: CapabilityCheck,
}

impl Capabilities {
    /// Both conditional writes work: "exactly one manifest wins", leases and nondeterminism
    /// records hold (docs/LAYOUT.md sections 4.1, 6.2 and 9).
    pub fn conditional_writes(&self) -> bool {
        self.create_if_absent.supported && self.replace_if_version_matches.supported
    }

    /// Each check by its name, in a fixed order.
    pub fn checks(&self) -> [(&'static str, &CapabilityCheck); 3] {
        [
            ("create_if_absent", &self.create_if_absent),
            (
                "replace_if_version_matches",
                &self.replace_if_version_matches,
            ),
            ("ranged_get", &self.ranged_get),
        ]
    }

    /// The names of the capabilities the store lacks, in the order of [`Self::checks`].
    pub fn missing(&self) -> Vec<&'static str> {
        self.checks()
            .into_iter()
            .filter(|(_, check)| !check.supported)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Why a probe could not tell what the store honours.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// An operation every store must support failed (unreachable, access denied, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The probe did not finish in time.
    #[error("the capability probe did not finish within {0:?}")]
    Timeout(Duration),
    /// A readiness round trip read back other bytes than it wrote.
    #[error("read back different bytes than were written at {0}")]
    ReadBack(String),
}

/// A path segment no other probe (of this or another process) uses.
fn unique_segment() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // RandomState is seeded randomly per process: two machines with the same pid and clock
    // still pick different names.
    let random = std::collections::hash_map::RandomState::new().hash_one(nanos);
    let seed = format!(
        "{random}/{}/{nanos}/{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    blake3::hash(seed.as_bytes()).to_hex()[..32].to_string()
}

impl Store {
    /// A fresh scratch path `probe/<random>/<name>` under the store root, for checks that
    /// write (this probe, recalld's readiness check, `recall doctor`).
    pub(crate) fn probe_path(&self, name: &str) -> Path {
        self.path(&format!("{PROBE_PREFIX}/{}/{name}", unique_segment()))
    }

    /// One readiness round trip: writes a scratch object `probe/<random>/ready`, reads it
    /// back, and deletes it (docs/LAYOUT.md section 2). Succeeds when the bytes read are the
    /// bytes written. Not bounded in time: the caller sets its own limit.
    pub async fn check_round_trip(&self) -> Result<(), ProbeError> {
        let path = self.probe_path("ready");
        let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
        let body = Bytes::from(nonce.into_bytes());
        let objects = &self.objects;
        objects
            .put(&path, PutPayload::from(body.clone()))
            .await
            .map_err(|e| StoreError::backend("put", &path, e))?;
        let read = match objects.get(&path).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        }
        .map_err(|e| StoreError::backend("get", &path, e))?;
        if let Err(err) = objects.delete(&path).await {
            tracing::debug!(%path, error = %err, "could not remove a readiness object");
        }
        if read != body {
            return Err(ProbeError::ReadBack(path.to_string()));
        }
        Ok(())
    }

    /// Finds out what the store honours by trying it on two scratch objects under
    /// `probe/<random>/` (about ten requests), which it deletes again. Bounded by `timeout`.
    /// Errors only when the store could not be used at all (or in time): a conditional
    /// write that is ignored is a result, not an error.
    pub async fn probe_capabilities(&self, timeout: Duration) -> Result<Capabilities, ProbeError> {
        let base = self.path(&format!("{PROBE_PREFIX}/{}", unique_segment()));
        let conditional = Path::from(format!("{base}/conditional"));
        let ranged = Path::from(format!("{base}/ranged"));
        let objects = &self.objects;
        let result = tokio::time::timeout(timeout, async {
            let create_if_absent = check_create(objects.as_ref(), &conditional).await?;
            let replace_if_version_matches = check_replace(objects.as_ref(), &conditional).await?;
            let ranged_get = check_range(objects.as_ref(), &ranged).await?;
            Ok::<_, StoreError>(Capabilities {
                create_if_absent,
                replace_if_version_matches,
                ranged_get,
            })
        })
        .await;
        // Clean up whatever happened; a leftover scratch object is harmless (readers ignore
        // the prefix) but should not pile up.
        for path in [&conditional, &ranged] {
            let delete = tokio::time::timeout(timeout, objects.delete(path)).await;
            if let Ok(Err(err)) = delete
                && !matches!(err, object_store::Error::NotFound { .. })
            {
                tracing::debug!(%path, error = %err, "could not remove a probe object");
            }
        }
        match result {
            Ok(outcome) => Ok(outcome?),
            Err(_) => Err(ProbeError::Timeout(timeout)),
        }
    }
}

/// One PUT of the probe: `body` at `path` with `mode`.
async fn put_probe(
    objects: &dyn ObjectStore,
    path: &Path,
    body: &'static [u8],
    mode: PutMode,
) -> object_store::Result<object_store::PutResult> {
    objects
        .put_opts(path, PutPayload::from_static(body), mode.into())
        .await
}

/// The version (ETag and version id) of the object at `path`, from a HEAD.
async fn head_version(objects: &dyn ObjectStore, path: &Path) -> Result<UpdateVersion, StoreError> {
    let meta = objects
        .head(path)
        .await
        .map_err(|e| StoreError::backend("head", path, e))?;
    Ok(UpdateVersion {
        e_tag: meta.e_tag,
        version: meta.version,
    })
}

/// Create-if-absent on a new object must succeed; on the same object again it must fail.
async fn check_create(
    objects: &dyn ObjectStore,
    path: &Path,
) -> Result<CapabilityCheck, StoreError> {
    match put_probe(objects, path, b"first", PutMode::Create).await {
        Ok(_) => {}
        Err(
            object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. },
        ) => {
            return Ok(CapabilityCheck::no(
                "the backend does not implement create-if-absent PUTs",
            ));
        }
        Err(e) => return Err(StoreError::backend("put", path, e)),
    }
    match put_probe(objects, path, b"second", PutMode::Create).await {
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(CapabilityCheck::yes(
            "a create-if-absent PUT on an existing object was refused",
        )),
        Ok(_) => Ok(CapabilityCheck::no(
            "a create-if-absent PUT (If-None-Match: *) on an existing object succeeded \
             and replaced it",
        )),
        Err(e) => Ok(CapabilityCheck::no(format!(
            "a create-if-absent PUT on an existing object failed with another error than \
             \"already exists\": {e}"
        ))),
    }
}

/// Replace-if-version-matches with the current version must succeed, with a stale one fail.
async fn check_replace(
    objects: &dyn ObjectStore,
    path: &Path,
) -> Result<CapabilityCheck, StoreError> {
    let stale = head_version(objects, path).await?;
    objects
        .put(path, PutPayload::from_static(b"third, unconditional"))
        .await
        .map_err(|e| StoreError::backend("put", path, e))?;
    let current = head_version(objects, path).await?;
    if current == stale {
        return Ok(CapabilityCheck::no(
            "the object's version (ETag) did not change when it was replaced",
        ));
    }
    match put_probe(objects, path, b"fourth, stale", PutMode::Update(stale)).await {
        Err(object_store::Error::Precondition { .. }) => {}
        Ok(_) => {
            return Ok(CapabilityCheck::no(
                "a replace-if-version-matches PUT (If-Match) with a stale version succeeded",
            ));
        }
        Err(
            object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. },
        ) => {
            return Ok(CapabilityCheck::no(
                "the backend does not implement replace-if-version-matches PUTs",
            ));
        }
        Err(e) => {
            return Ok(CapabilityCheck::no(format!(
                "a replace-if-version-matches PUT with a stale version failed with another \
                 error than \"precondition failed\": {e}"
            )));
        }
    }
    match put_probe(objects, path, b"fifth, current", PutMode::Update(current)).await {
        Ok(_) => Ok(CapabilityCheck::yes(
            "a stale version was refused and the current one accepted",
        )),
        Err(e) => Ok(CapabilityCheck::no(format!(
            "a replace-if-version-matches PUT with the current version failed: {e}"
        ))),
    }
}

/// A ranged GET of bytes 100..164 of a 256-byte object must return exactly those.
async fn check_range(
    objects: &dyn ObjectStore,
    path: &Path,
) -> Result<CapabilityCheck, StoreError> {
    let content: Vec<u8> = (0..=255u8).collect();
    objects
        .put(path, PutPayload::from(Bytes::from(content.clone())))
        .await
        .map_err(|e| StoreError::backend("put", path, e))?;
    match objects.get_range(path, 100..164).await {
        Ok(bytes) if bytes[..] == content[100..164] => Ok(CapabilityCheck::yes(
            "bytes 100..164 of a 256-byte object came back exactly",
        )),
        Ok(bytes) => Ok(CapabilityCheck::no(format!(
            "asked for bytes 100..164 (64 bytes), got {} other bytes",
            bytes.len()
        ))),
        Err(e) => Ok(CapabilityCheck::no(format!("a ranged GET failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    // The probe against stores that honour or ignore conditional writes is tested in
    // tests/memory.rs (with the conformance suite's FaultyStore).

    #[test]
    fn probe_paths_are_under_the_probe_prefix_and_differ() {
        let store = Store::open_unverified("memory:///r", StoreConfig::default()).unwrap();
        let (a, b) = (store.probe_path("x"), store.probe_path("x"));
        assert!(a.as_ref().starts_with("r/probe/"), "{a}");
        assert_ne!(a, b);
    }
}
