//! `recall get`: fetch an entry's outputs to their paths (or one to stdout).

use std::io::Write;
use std::path::Path;

use recall_store::{Lookup, StoreConfig};
use serde_json::json;

use super::{open_client, protected, reporter};
use crate::cli::{GetArgs, GlobalArgs};
use crate::error::{CliError, EXIT_NOT_FOUND};
use crate::outputs;
use crate::print::{miss_text, output_names, print_json};
use crate::progress::human_bytes;
use crate::staging;

/// `recall get`.
pub async fn get(global: &GlobalArgs, args: GetArgs, cwd: &Path) -> Result<u8, CliError> {
    let (entry, resolved) = args.entry.resolve(cwd)?;
    let client = open_client(global, StoreConfig::default()).await?;
    let report = reporter(global);
    let short = entry.key.to_hex();
    let manifest = match client.lookup(&entry).await? {
        Lookup::Hit(m) => m,
        Lookup::Miss(miss) => {
            report.warn(format!("CACHE_MISS {short}: {}", miss_text(&miss)));
            return Ok(EXIT_NOT_FOUND);
        }
    };
    let protected = protected(global, resolved.as_ref(), &[]);
    let paths = resolved.map(|r| r.paths).unwrap_or_default();
    let mut targets = Vec::new();
    for (name, record) in &manifest.outputs {
        if let Some(wanted) = &args.stdout {
            if wanted == name {
                targets.push((name.clone(), record.ty.clone(), None));
            }
            continue;
        }
        let path = match (paths.get(name), &args.to) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.join(name),
            (None, None) => {
                return Err(CliError::Usage(format!(
                    "output {name:?} has no path: give --output {name}=PATH or --to DIR"
                )));
            }
        };
        targets.push((name.clone(), record.ty.clone(), Some(path)));
    }
    if let Some(wanted) = &args.stdout
        && targets.is_empty()
    {
        return Err(CliError::Usage(format!(
            "--stdout {wanted:?}: the entry has no such output (it has {})",
            output_names(&manifest)
        )));
    }
    // Checked before anything is fetched or replaced; the checked paths are the ones used.
    let declared: Vec<outputs::OutputPath> = targets
        .iter()
        .filter_map(|(name, ty, path)| {
            Some(outputs::OutputPath {
                name: name.clone(),
                kind: if ty == "dir" {
                    outputs::OutputKind::Dir
                } else {
                    outputs::OutputKind::File
                },
                path: path.clone()?,
            })
        })
        .collect();
    let checked = outputs::guard(&declared, &protected)?;
    let total: u64 = manifest.outputs.values().map(|o| o.size).sum();
    let (staging, fetched) = staging::fetch(
        client.as_ref(),
        &entry,
        &checked,
        format!("fetching {}", human_bytes(total)),
        report,
    )
    .await?;
    let manifest = match fetched {
        Lookup::Hit(m) => m,
        Lookup::Miss(miss) => {
            report.warn(format!("CACHE_MISS {short}: {}", miss_text(&miss)));
            return Ok(EXIT_NOT_FOUND);
        }
    };
    staging::place(staging.path(), &checked)?;
    let mut written = Vec::new();
    for (name, ty, path) in targets {
        match path {
            None => {
                let fetched = staging.path().join(&name);
                let mut file =
                    std::fs::File::open(&fetched).map_err(|e| CliError::local(&fetched, e))?;
                let mut stdout = std::io::stdout().lock();
                std::io::copy(&mut file, &mut stdout)
                    .and_then(|_| stdout.flush())
                    .map_err(|e| CliError::local(Path::new("<stdout>"), e))?;
            }
            Some(path) => {
                let (size, digest) = manifest
                    .outputs
                    .get(&name)
                    .map(|r| (r.size, r.digest.to_hex()))
                    .unwrap_or_default();
                written.push(json!({
                    "name": name, "path": path.display().to_string(),
                    "type": ty, "size": size, "digest": digest,
                }));
            }
        }
    }
    report.status(format!("CACHE_HIT {short}"));
    if args.json {
        print_json(&json!({"key": short, "status": "hit", "outputs": written}))?;
    }
    Ok(0)
}
