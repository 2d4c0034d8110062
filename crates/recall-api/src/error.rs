//! What can be wrong in a body that parsed as JSON.

/// A body that has the right shape but content that cannot become the store's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An output name that is not a valid name (it would become a file name).
    #[error("output name: {0}")]
    OutputName(String),
    /// `inline_base64` that is not standard base64.
    #[error("output {output:?}: inline_base64 is not base64: {reason}")]
    InlineBytes {
        /// The output.
        output: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// A nondeterminism record whose `outcome` is neither `replaced` nor `discarded`.
    #[error("nondeterminism record with outcome {0:?}")]
    Outcome(String),
    /// A listed tenant or task name that is not a valid name.
    #[error("{0}")]
    Name(String),
}
