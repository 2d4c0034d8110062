//! recall's content-addressed cache on object storage, as specified in `docs/LAYOUT.md`.
//!
//! A cache entry is one manifest (deterministic CBOR) at a path computed from the tenant and
//! the key; output bytes are blobs named by their plain BLAKE3 digest, or inlined in the
//! manifest when small. Publishing writes blobs, then an index marker, then the manifest with
//! create-if-absent; reading verifies every byte and treats anything broken as a miss.
//! Leases (Flyte's cache_serialize), eviction and garbage collection use only the object
//! store's conditional writes, so no database or coordinating service is needed.

mod backend;
mod blob;
mod capabilities;
pub mod catalog;
mod clock;
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
