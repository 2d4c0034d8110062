//! `recall put`: publish existing outputs under the key of their material.

use std::path::Path;

use recall_store::StoreConfig;
use serde_json::json;

use super::{open_client, reporter};
use crate::cli::{GlobalArgs, PutArgs};
use crate::error::CliError;
use crate::outputs;
use crate::print::{print_json, warn_nondeterminism};
use crate::publish::publish_outputs;

/// `recall put`: publish outputs that already exist, without running anything.
pub async fn put(global: &GlobalArgs, args: PutArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let outputs = resolved.output_paths()?;
    for output in &outputs {
        outputs::check_produced(output).map_err(CliError::Usage)?;
    }
    let key = resolved.material.derive()?;
    let client = open_client(global, StoreConfig::default()).await?;
    let report = reporter(global);
    let short = key.key.to_hex();
    let (outcome, _) =
        publish_outputs(client.as_ref(), &key, &outputs, args.overwrite, report).await?;
    if outcome.is_published() {
        report.status(format!("CACHE_POPULATED {short}"));
        if let Some(capabilities) = client.capabilities().await {
            crate::capabilities::warn_publish(report, &client.describe(), &short, &capabilities);
        }
    } else {
        report.status(format!(
            "CACHE_EXISTS {short}: an entry already exists and was kept (--overwrite replaces it)"
        ));
    }
    let mut nondeterministic = Vec::new();
    if let Some(record) = outcome.observed() {
        warn_nondeterminism(report, &short, record);
        nondeterministic.extend(record.outputs.keys().cloned());
    }
    if args.json {
        print_json(&json!({
            "key": short,
            "outcome": if outcome.is_published() { "published" } else { "already_exists" },
            "nondeterministic_outputs": nondeterministic,
        }))?;
    }
    Ok(0)
}
