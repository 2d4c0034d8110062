//! The wire form of recalld's HTTP API: one serde type per JSON body that recalld sends or
//! receives, shared by recalld (which serializes answers and parses requests) and the
//! `recall` CLI's `HttpClient` (which does the opposite), with conversions from and to
//! recall-store's types.
//!
//! The JSON is the one documented in [`OPENAPI_JSON`] (served at `GET /openapi.json`).
//! Answer fields are declared in alphabetical order so that an answer is byte for byte what
//! the daemon wrote before these types existed (it built `serde_json` maps, which sort
//! keys); request fields keep the order of recalld's former request structs, so its
//! messages about a missing or unknown field are unchanged.
//!
//! The OpenAPI document stays hand-written and lives here, beside the types it describes.
//! Generating it (utoipa, schemars) would change its form (JSON Schema 2020 `type` arrays
//! instead of OpenAPI 3.0 `nullable`, other names and patterns) under schemathesis and
//! every client that reads it. Instead `tests/openapi.rs` serializes sample values of every
//! type and validates them, with the `jsonschema` crate, against the component schemas,
//! made strict (no undeclared property): a field added to a type but not to the document,
//! or renamed in one of the two, fails that test.

mod admin;
mod answers;
mod error;
mod lease;
mod listing;
mod manifest;
mod status;

pub use admin::{EvictReport, EvictRequest, GcReport, GcRequest};
pub use answers::{FailureAnswer, HitAnswer, MissAnswer, MissReason, PublishAnswer};
pub use error::WireError;
pub use lease::{LeaseAnswer, LeaseRequest, ReleaseAnswer};
pub use listing::{TaskEntries, TaskEntryView, Tasks, TenantView, Tenants};
pub use manifest::{ChangeView, ManifestView, OutputView, RecordView};
pub use status::CacheStatus;

/// recalld's OpenAPI 3 document (`GET /openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");
