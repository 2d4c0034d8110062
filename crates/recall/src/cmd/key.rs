//! `recall key`: derive and print a cache key.

use std::path::Path;

use crate::cli::KeyArgs;
use crate::error::CliError;
use crate::print::{print_json, print_line};

/// `recall key`: print the cache key (or, with `--json`, every component).
pub fn key(args: KeyArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let derived = resolved.material.derive()?;
    if args.json {
        print_json(&serde_json::to_value(&derived).map_err(|e| CliError::Usage(e.to_string()))?)?;
    } else {
        print_line(derived.key)?;
    }
    Ok(0)
}
