//! The errors of the `recall` command and the exit status each one maps to.

use recall_key::KeyError;
use recall_store::StoreError;

use crate::key_args::FlagError;

/// Exit status for bad usage or bad input.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for a storage (or daemon) error.
pub const EXIT_STORAGE: u8 = 3;
/// Exit status of `get`, `inspect` when there is no such entry.
pub const EXIT_NOT_FOUND: u8 = 1;

/// Why a `recall` subcommand failed. The `Display` text is one line naming the field and value.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag does not have the form it should.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// The key material is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Bad usage or input not covered by the cases above.
    #[error("{0}")]
    Usage(String),
    /// A local file (job file, output path) could not be read or written.
    #[error("{path}: {reason}")]
    Local {
        /// The path concerned.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The store reported an error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The daemon or another storage service failed (unreachable, error status, bad reply).
    #[error("{0}")]
    Storage(String),
    /// A storage operation took longer than allowed.
    #[error("storage did not answer within {seconds} s ({operation})")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The time allowed.
        seconds: f64,
    },
}

impl CliError {
    /// The process exit status this error maps to: 2 for usage and input, 3 for storage.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Flag(_) | CliError::Key(_) | CliError::Usage(_) | CliError::Local { .. } => {
                EXIT_USAGE
            }
            CliError::Store(err) => match err {
                StoreError::InvalidName(_)
                | StoreError::InvalidUrl { .. }
                | StoreError::OutputMismatch { .. }
                | StoreError::Io { .. }
                | StoreError::OutputChanged { .. }
                | StoreError::InvalidLease { .. } => EXIT_USAGE,
                _ => EXIT_STORAGE,
            },
            CliError::Storage(_) | CliError::Timeout { .. } => EXIT_STORAGE,
        }
    }

    /// Whether the error means storage could not be used (as opposed to bad input).
    pub fn is_storage(&self) -> bool {
        self.exit_code() == EXIT_STORAGE
    }

    /// A local-file error for `path`.
    pub fn local(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        CliError::Local {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
