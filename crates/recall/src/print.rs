//! What the CLI prints: JSON and lines on stdout, and the texts for misses and
//! nondeterminism that several subcommands (and recall-py) show alike.

use std::io::Write;
use std::path::Path;

use recall_store::{Manifest, Miss, NondeterminismRecord, system_time_ms};
use serde_json::Value as JsonValue;

use crate::error::CliError;
use crate::progress::Reporter;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &JsonValue) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)
        .map_err(|e| CliError::local(Path::new("<stdout>"), e))?;
    writeln!(stdout).map_err(|e| CliError::local(Path::new("<stdout>"), e))?;
    Ok(())
}

/// Prints one line on stdout.
pub fn print_line(line: impl std::fmt::Display) -> Result<(), CliError> {
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| CliError::local(Path::new("<stdout>"), e))
}

/// A time in milliseconds since the Unix epoch as RFC 3339 text.
pub fn time_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

/// Says on stderr which outputs of a re-computation differ from the entry it met (the
/// store records the same in the manifest, where `recall inspect` shows it).
pub fn warn_nondeterminism(report: Reporter, short: &str, record: &NondeterminismRecord) {
    for (name, change) in &record.outputs {
        report.warn(format!(
            "CACHE_NONDETERMINISTIC {short}: output {name:?} was {} and is now {} for the same \
             key: the task is not deterministic",
            change.previous, change.current
        ));
    }
}

/// One line explaining a miss.
pub fn miss_text(miss: &Miss) -> String {
    match miss {
        Miss::NotFound => "no entry".into(),
        Miss::Expired { created_at_ms } => format!(
            "the entry expired (published {} s ago)",
            (system_time_ms(std::time::SystemTime::now()) - created_at_ms) / 1000
        ),
        Miss::Undecodable { reason } => format!("the entry is unusable: {reason}"),
        Miss::Broken { output, reason } => {
            format!(
                "output {output:?} did not verify ({reason}); the next publish replaces the entry"
            )
        }
    }
}

/// The names of a manifest's outputs, `a, b, c`, for messages about an output it lacks.
pub fn output_names(manifest: &Manifest) -> String {
    manifest
        .outputs
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}
