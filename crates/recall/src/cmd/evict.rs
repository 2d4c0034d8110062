//! `recall evict`: remove entries by key, task, age or tenant (`--dry-run` counts only).

use std::time::SystemTime;

use recall_store::{StoreConfig, Tenant, system_time_ms};
use serde_json::json;

use super::open_client;
use crate::cli::{EvictArgs, GlobalArgs};
use crate::client::{EvictRequest, EvictTarget};
use crate::error::CliError;
use crate::print::{print_json, print_line};
use crate::timeouts::parse_duration;

/// `recall evict`.
pub async fn evict(global: &GlobalArgs, args: EvictArgs) -> Result<u8, CliError> {
    let tenant = match (&args.project, &args.domain) {
        (Some(p), Some(d)) => Some(Tenant::new(p, d)?),
        _ => None,
    };
    let target = if let Some(hex) = &args.key {
        EvictTarget::Key(hex.parse().map_err(|_| {
            CliError::Usage(format!("--key {hex:?}: not 64 hexadecimal characters"))
        })?)
    } else if let Some(task) = &args.task {
        EvictTarget::Task {
            task: task.clone(),
            cache_version: args.cache_version.clone(),
        }
    } else if let Some(age) = &args.older_than {
        let age = parse_duration("--older-than", age)?;
        let cutoff = system_time_ms(SystemTime::now())
            .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        EvictTarget::OlderThan(cutoff)
    } else if args.all {
        EvictTarget::Tenant
    } else {
        return Err(CliError::Usage(
            "evict: say what to evict: --key, --task, --older-than or --all".into(),
        ));
    };
    let client = open_client(global, StoreConfig::default()).await?;
    let request = EvictRequest {
        tenant,
        target,
        dry_run: args.dry_run,
    };
    let r = client.evict(&request).await?;
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "entries": r.entries, "markers": r.markers, "leases": r.leases, "blobs": r.blobs,
        }))?;
    } else {
        print_line(format!(
            "{} {} entries ({} markers, {} leases, {} blobs)",
            if args.dry_run {
                "would evict"
            } else {
                "evicted"
            },
            r.entries,
            r.markers,
            r.leases,
            r.blobs
        ))?;
    }
    Ok(0)
}
