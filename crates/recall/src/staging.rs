//! Staged downloads: an entry's outputs are fetched into a temporary directory beside their
//! targets (so the final renames stay on one file system), verified there, and only then
//! renamed into place, all or nothing.

use std::path::Path;

use recall_store::{EntryRef, Lookup, Manifest};
use tempfile::TempDir;

use crate::client::CacheClient;
use crate::error::CliError;
use crate::outputs::{self, OutputKind, OutputPath};
use crate::progress::Reporter;

/// Fetches `entry` into a new staging directory beside the first of `targets` (in the
/// temporary directory when there is none), showing `label` while it transfers. The
/// directory goes when the returned [`TempDir`] is dropped.
pub async fn fetch(
    client: &dyn CacheClient,
    entry: &EntryRef,
    targets: &[OutputPath],
    label: String,
    report: Reporter,
) -> Result<(TempDir, Lookup<Manifest>), CliError> {
    let staging_parent = match targets.first() {
        Some(first) => outputs::parent_dir(&first.path)?,
        None => std::env::temp_dir(),
    };
    let staging = tempfile::Builder::new()
        .prefix(".recall-fetch-")
        .tempdir_in(&staging_parent)
        .map_err(|e| CliError::local(&staging_parent, e))?;
    let fetched = report
        .transfer(label, client.fetch(entry, staging.path()))
        .await?;
    Ok((staging, fetched))
}

/// Stages every one of `targets` from `staging` (where [`fetch`] put it, by output name)
/// beside its target first; only then renames them all into place.
pub fn place(staging: &Path, targets: &[OutputPath]) -> Result<(), CliError> {
    let mut staged = Vec::with_capacity(targets.len());
    for output in targets {
        let fetched = staging.join(&output.name);
        staged.push(match output.kind {
            OutputKind::File => outputs::stage_file(&fetched, &output.path)?,
            OutputKind::Dir => outputs::stage_dir(&fetched, &output.path)?,
        });
    }
    outputs::put_in_place(staged)
}
