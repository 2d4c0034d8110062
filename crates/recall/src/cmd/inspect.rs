//! `recall inspect`: show an entry's manifest.

use std::path::Path;

use recall_api::RecordView;
use recall_store::{Manifest, NondeterminismOutcome, StoreConfig};
use serde_json::{Value as JsonValue, json};

use super::{open_client, reporter};
use crate::cli::{GlobalArgs, InspectArgs};
use crate::error::{CliError, EXIT_NOT_FOUND};
use crate::print::{print_json, print_line, time_text};
use crate::progress::human_bytes;

/// The manifest as JSON (`inspect --json`).
pub fn manifest_json(manifest: &Manifest, expired: bool) -> JsonValue {
    let outputs: serde_json::Map<String, JsonValue> = manifest
        .outputs
        .iter()
        .map(|(name, record)| {
            (
                name.clone(),
                json!({
                    "type": record.ty,
                    "size": record.size,
                    "digest": record.digest.to_hex(),
                    "inline": record.inline.is_some(),
                }),
            )
        })
        .collect();
    json!({
        "status": if expired { "expired" } else { "live" },
        "layout_version": manifest.layout_version,
        "key": manifest.key,
        "outputs": outputs,
        "created_at_ms": manifest.created_at_ms,
        "expires_at_ms": manifest.expires_at_ms,
        "producer": manifest.producer,
        "nondeterminism": manifest
            .nondeterminism
            .iter()
            .map(RecordView::from)
            .collect::<Vec<_>>(),
    })
}

/// `recall inspect`.
pub async fn inspect(global: &GlobalArgs, args: InspectArgs, cwd: &Path) -> Result<u8, CliError> {
    let (entry, _) = args.entry.resolve(cwd)?;
    let client = open_client(global, StoreConfig::default()).await?;
    let Some(stored) = client.stored_entry(&entry).await? else {
        reporter(global).warn(format!(
            "CACHE_MISS {}: no entry in {}/{}",
            entry.key,
            entry.tenant.project(),
            entry.tenant.domain()
        ));
        return Ok(EXIT_NOT_FOUND);
    };
    let m = &stored.manifest;
    if args.json {
        print_json(&manifest_json(m, stored.expired))?;
        return Ok(0);
    }
    let k = &m.key;
    let mut lines = vec![
        format!("key            {}", k.key),
        format!(
            "status         {}",
            if stored.expired { "expired" } else { "live" }
        ),
        format!("project        {}", k.project),
        format!("domain         {}", k.domain),
        format!("task           {}", k.task),
        format!("cache_version  {}", k.cache_version),
        format!("salt           {}", k.salt.as_deref().unwrap_or("-")),
        format!("signature      {}", k.signature_digest),
        format!("inputs digest  {}", k.inputs_digest),
        format!("created        {}", time_text(m.created_at_ms)),
        format!(
            "expires        {}",
            m.expires_at_ms.map_or("never".into(), time_text)
        ),
        format!("producer       {}", m.producer),
        "inputs".into(),
    ];
    for (name, input) in &k.inputs {
        lines.push(format!(
            "  {name}: {} {}",
            input.ty,
            input.digest.map_or("(ignored)".to_string(), |d| d.to_hex())
        ));
    }
    lines.push("outputs".into());
    for (name, record) in &m.outputs {
        lines.push(format!(
            "  {name}: {} {} {}{}",
            record.ty,
            human_bytes(record.size),
            record.digest,
            if record.inline.is_some() {
                " (inline)"
            } else {
                ""
            }
        ));
    }
    if m.nondeterminism.is_empty() {
        lines.push("nondeterminism none observed".into());
    } else {
        lines.push(format!(
            "nondeterminism {} publish(es) produced other outputs for this key",
            m.nondeterminism.len()
        ));
        for record in &m.nondeterminism {
            lines.push(format!(
                "  {} by {} ({})",
                time_text(record.observed_at_ms),
                record.producer,
                match record.outcome {
                    NondeterminismOutcome::Replaced => "replaced the entry",
                    NondeterminismOutcome::Discarded => "discarded, the entry was kept",
                }
            ));
            for (name, change) in &record.outputs {
                lines.push(format!(
                    "    {name}: {} -> {}",
                    change.previous, change.current
                ));
            }
        }
    }
    print_line(lines.join("\n"))?;
    Ok(0)
}
