//! recall's cache-key derivation, as specified in `docs/KEY-SPEC.md`.
//!
//! A cache key is derived from a task's project, domain, cache_version, signature (task
//! name, input and output names and types), input values and an optional salt. Values are
//! type-checked, encoded as deterministic CBOR and hashed with BLAKE3, so every language
//! that follows the spec computes the same key.
//!
//! ```
//! use recall_key::{InputSource, KeyMaterial, Value, ValueType};
//!
//! let mut material = KeyMaterial::new("flytesnacks", "development", "wf.square", "1.0")?;
//! material.add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))?;
//! material.add_output("o0", ValueType::Int)?;
//! let derived = material.derive()?;
//! assert_eq!(derived.key.to_hex().len(), 64);
//! # Ok::<(), recall_key::KeyError>(())
//! ```

pub mod cbor;
mod derive;
mod digest;
mod error;
pub mod files;
#[cfg(feature = "bench-fixture")]
pub mod fixture;
mod json;
mod material_json;
mod name;
mod timefmt;
mod types;
mod value;

pub use derive::{
    DerivedKey, DigestSource, Input, InputDigest, InputSource, KeyMaterial, SPEC_VERSION,
};
pub use digest::{Digest, DigestParseError};
pub use error::KeyError;
pub use json::Json;
pub use material_json::{parse_supplied_hash, parse_type};
pub use name::{MAX_NAME_LEN, normalize_cache_version, validate_name};
pub use timefmt::{parse_datetime, parse_duration};
pub use types::ValueType;
pub use value::{EncodeError, Value};
