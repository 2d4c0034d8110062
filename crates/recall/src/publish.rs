//! Publishing outputs: `dir` outputs are archived (see [`crate::archive`]), every output is
//! hashed, and the files go to the cache in one publish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use recall_key::{DerivedKey, Digest};
use recall_store::PublishOutcome;

use crate::archive;
use crate::client::{CacheClient, OutputFile};
use crate::error::CliError;
use crate::outputs::{OutputKind, OutputPath};
use crate::progress::{Reporter, human_bytes};

/// Archives dir outputs and publishes; also returns the digest of each output's bytes.
pub async fn publish_outputs(
    client: &dyn CacheClient,
    key: &DerivedKey,
    outputs: &[OutputPath],
    overwrite: bool,
    report: Reporter,
) -> Result<(PublishOutcome, BTreeMap<String, Digest>), CliError> {
    let scratch = tempfile::Builder::new()
        .prefix("recall-publish-")
        .tempdir()
        .map_err(|e| CliError::local(&std::env::temp_dir(), e))?;
    let mut files = Vec::new();
    let mut digests = BTreeMap::new();
    let mut total = 0u64;
    for output in outputs {
        let path: PathBuf = match output.kind {
            OutputKind::File => output.path.clone(),
            OutputKind::Dir => {
                let archive = scratch.path().join(&output.name);
                let (dir, archive_path) = (output.path.clone(), archive.clone());
                tokio::task::spawn_blocking(move || archive::pack_dir(&dir, &archive_path))
                    .await
                    .map_err(|e| CliError::local(&output.path, e))??;
                archive
            }
        };
        let (size, digest) = hash(&path).await?;
        total += size;
        digests.insert(output.name.clone(), digest);
        files.push(OutputFile {
            name: output.name.clone(),
            path,
        });
    }
    let outcome = report
        .transfer(
            format!(
                "publishing {} output(s), {}",
                files.len(),
                human_bytes(total)
            ),
            client.publish(key, &files, overwrite),
        )
        .await?;
    Ok((outcome, digests))
}

async fn hash(path: &Path) -> Result<(u64, Digest), CliError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || recall_key::files::hash_file(&owned))
        .await
        .map_err(|e| CliError::local(path, e))?
        .map_err(|e| CliError::local(&e.path, e.reason))
}
