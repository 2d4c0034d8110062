//! recall's content-addressed cache on object storage, as specified in `docs/LAYOUT.md`.
//!
//! A cache entry is one manifest (deterministic CBOR) at a path computed from the tenant and
//! the key; output bytes are blobs named by their plain BLAKE3 digest, or inlined in the
//! manifest when small. Publishing writes blobs, then an index marker, then the manifest with
//! create-if-absent; reading verifies every byte and treats anything broken as a miss.
//! Leases (Flyte's cache_serialize), eviction and garbage collection use only the object
//! store's conditional writes, so no database or coordinating service is needed.
//!
//! This crate is the only one that reads or writes the bucket; everything else goes through
//! [`Store`] methods. Where they live:
//!
//! - `store.rs`: opening a store, [`Store::lookup`], [`Store::fetch`], [`Store::publish`]
//!   (with nondeterminism records), the descriptor.
//! - `blob.rs`: blob upload and verified download, [`Store::stream_blob`].
//! - `maintenance.rs`: [`Store::evict`] (one [`EvictSelector`], dry run from the same code),
//!   [`Store::gc`], listings ([`Store::tenants`], [`Store::tasks`],
//!   [`Store::list_task_entries`]).
//! - `lease.rs`: leases. `capabilities.rs`: the capability probe and the readiness round
//!   trip under `probe/`. `selfcheck.rs`: single requests for `recall doctor`.
//! - `delete_roots.rs`: [`DeleteRoots`], deleting single objects outside the store under
//!   prefixes an operator allowed (Flyte 2's `delete_blob`).
//! - `layout.rs`: the paths of docs/LAYOUT.md section 2; `manifest.rs`: the manifest's CBOR;
//!   `backend.rs` and `local.rs`: store URLs and the local-disk backend.

mod backend;
mod blob;
mod capabilities;
pub mod catalog;
mod clock;
mod delete_roots;
mod error;
mod layout;
mod lease;
pub mod local;
mod maintenance;
mod manifest;
mod selfcheck;
mod store;

pub use backend::{Backend, BackendProblem, open_url, open_url_with};
pub use blob::{BlobStream, UploadTuning};
pub use capabilities::{Capabilities, CapabilityCheck, PROBE_PREFIX, ProbeError};
pub use clock::{Clock, ManualClock, SystemClock, system_time_ms};
pub use delete_roots::{DeleteRootError, DeleteRoots, DeleteUriError, RootProblem};
pub use error::StoreError;
pub use layout::{DESCRIPTOR, INLINE_MAX_BYTES, KEY_SPEC_VERSION, LAYOUT_VERSION, Tenant};
pub use lease::{DEFAULT_GRACE, LeaseRecord, LeaseStatus};
pub use maintenance::{EvictReport, EvictSelector, GcOptions, GcReport, TaskEntry};
pub use manifest::{
    DigestChange, MAX_MANIFEST_BYTES, MAX_MANIFEST_OUTPUTS, MAX_NONDETERMINISM_RECORDS, Manifest,
    ManifestError, NondeterminismOutcome, NondeterminismRecord, OutputRecord, push_nondeterminism,
};
pub use selfcheck::Scratch;
pub use store::{
    Entry, EntryRef, FetchTo, Fetched, Lookup, Miss, Output, OutputData, PublishMode,
    PublishOptions, PublishOutcome, Store, StoreConfig,
};
