//! The errors key derivation reports. Each names the field and the offending value.

use std::path::PathBuf;

/// Why key material was rejected. The `Display` text is one line naming field and value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A project, domain, task, input or output name breaks the name rules.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName {
        /// Which field: "project", "domain", "task", "input name", "output name".
        field: &'static str,
        /// The rejected name.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The cache_version is invalid (empty after trimming, or bad characters).
    #[error("invalid cache_version {value:?}: {reason}")]
    InvalidCacheVersion {
        /// The cache_version as given.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The salt is empty or too long.
    #[error("invalid salt {value:?}: {reason}")]
    InvalidSalt {
        /// The salt as given (shortened when very long).
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A type string does not follow the type grammar.
    #[error("invalid type {value:?} for {field}: {reason}")]
    InvalidType {
        /// Which input or output declared it.
        field: String,
        /// The rejected type text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value does not fit its declared type.
    #[error("input {input:?} of type {ty}: bad value {value}: {reason}")]
    InvalidValue {
        /// The input name.
        input: String,
        /// The declared type's canonical text.
        ty: String,
        /// The offending value (shortened when long).
        value: String,
        /// Why it does not fit.
        reason: String,
    },
    /// The same input or output name is declared twice.
    #[error("duplicate {field} {name:?}")]
    Duplicate {
        /// "input" or "output".
        field: &'static str,
        /// The repeated name.
        name: String,
    },
    /// An ignored or hashed input is not among the declared inputs.
    #[error("{field} names {name:?}, which is not a declared input")]
    UnknownInput {
        /// "ignored input" or "input hash".
        field: &'static str,
        /// The unknown name.
        name: String,
    },
    /// An input is both ignored and given a hash.
    #[error("input {name:?} is both ignored and given a hash; choose one")]
    IgnoredAndHashed {
        /// The input name.
        name: String,
    },
    /// An input that must be hashed from its value has no value.
    #[error("input {name:?} has no value (give a value, a hash, or ignore it)")]
    MissingValue {
        /// The input name.
        name: String,
    },
    /// A supplied input hash is not a digest.
    #[error("input hash for {name:?}: {value:?} is not 64 hexadecimal characters")]
    InvalidHash {
        /// The input name.
        name: String,
        /// The rejected text.
        value: String,
    },
    /// A file or directory input could not be hashed.
    #[error("input {input:?}: {path}: {reason}")]
    Path {
        /// The input name.
        input: String,
        /// The path concerned (the input's path, or one found inside a directory).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A map value has the same key twice, so it has no deterministic encoding.
    #[error("a map value has the key {key:?} twice")]
    DuplicateMapKey {
        /// The repeated key.
        key: String,
    },
    /// A field of key material JSON is missing, unknown, or not of the JSON kind it must be.
    #[error("key material JSON: {field}: {reason}")]
    Field {
        /// The field's path from the top, e.g. `salt` or `inputs[0].hash`.
        field: String,
        /// What is wrong, with the offending value.
        reason: String,
    },
    /// Key material given as JSON (`--spec`) does not parse.
    #[error("key material JSON: {0}")]
    Json(String),
}

/// Shortens a value for an error message so one bad 10 MB string does not flood a log.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
