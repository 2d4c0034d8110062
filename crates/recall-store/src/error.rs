//! The errors the store reports. A miss is not an error: see [`crate::Lookup`].

use recall_key::KeyError;

use crate::backend::BackendProblem;

/// Why a store operation failed. Each `Display` text is one line naming the field or path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A project, domain, task, cache_version or output name breaks the key-spec name rules.
    #[error(transparent)]
    InvalidName(#[from] KeyError),
    /// The store URL cannot be used.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The descriptor object at the store root names a layout this version cannot read.
    #[error("{path}: unsupported store layout: {reason}")]
    UnsupportedLayout {
        /// Where the descriptor was read.
        path: String,
        /// What was found instead.
        reason: String,
    },
    /// The outputs given to publish do not match the outputs the key declares.
    #[error("output {name:?}: {reason}")]
    OutputMismatch {
        /// The output name.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// A local file (an output being published, or a fetch destination) could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The local path concerned.
        path: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The object store failed an operation.
    #[error("object store {operation} {path}: {source}")]
    Backend {
        /// What was being done: "get", "put", "delete", "list", ...
        operation: &'static str,
        /// The object path concerned.
        path: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// An output changed while it was being published (its digest differs between passes).
    #[error("output {name:?} changed while it was being published; nothing was stored for it")]
    OutputChanged {
        /// The output name.
        name: String,
    },
    /// The backend cannot be used at all (the bucket is missing, no credentials): the fix is
    /// in the store's settings, not in any one object.
    #[error(transparent)]
    Unusable(#[from] BackendProblem),
    /// A blob's stored bytes do not match the digest it is named by.
    #[error("stored blob {path} does not match its digest")]
    BlobMismatch {
        /// The blob's object path.
        path: String,
    },
    /// A lease argument is out of range.
    #[error("lease {field} {value}: {reason}")]
    InvalidLease {
        /// Which argument.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl StoreError {
    /// Wraps an object-store error with the operation and path it concerns.
    pub(crate) fn backend(
        operation: &'static str,
        path: &object_store::path::Path,
        source: object_store::Error,
    ) -> Self {
        let source = match source {
            object_store::Error::Generic { store, source } => {
                match source.downcast::<BackendProblem>() {
                    Ok(problem) => return StoreError::Unusable(*problem),
                    Err(source) => object_store::Error::Generic { store, source },
                }
            }
            other => other,
        };
        StoreError::Backend {
            operation,
            path: path.to_string(),
            source,
        }
    }

    /// Wraps a local I/O error with the path it concerns.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
