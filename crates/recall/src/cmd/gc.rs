//! `recall gc`: collect unreferenced blobs, orphan markers and long-expired entries.

use recall_store::{GcOptions, StoreConfig, Tenant};
use serde_json::json;

use super::open_client;
use crate::cli::{GcArgs, GlobalArgs};
use crate::error::CliError;
use crate::print::{print_json, print_line};
use crate::progress::human_bytes;
use crate::timeouts::parse_duration;

/// `recall gc`.
pub async fn gc(global: &GlobalArgs, args: GcArgs) -> Result<u8, CliError> {
    let tenant = match (&args.project, &args.domain) {
        (Some(p), Some(d)) => Some(Tenant::new(p, d)?),
        _ => None,
    };
    let options = GcOptions {
        grace: parse_duration("--grace", &args.grace)?,
        dry_run: args.dry_run,
    };
    let client = open_client(global, StoreConfig::default()).await?;
    let r = client.gc(tenant.as_ref(), &options).await?;
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "manifests": r.manifests,
            "undecodable_manifests": r.undecodable_manifests,
            "blobs": r.blobs,
            "referenced_blobs": r.referenced_blobs,
            "blobs_in_grace": r.blobs_in_grace,
            "collectable_blobs": r.collectable_blobs,
            "collectable_bytes": r.collectable_bytes,
            "deleted_blobs": r.deleted_blobs,
            "orphan_markers": r.orphan_markers,
            "expired_entries": r.expired_entries,
        }))?;
    } else {
        print_line(format!(
            "{} manifests, {} blobs ({} referenced, {} in grace); {} {} unreferenced blobs ({}); \
             {} orphan markers, {} expired entries",
            r.manifests,
            r.blobs,
            r.referenced_blobs,
            r.blobs_in_grace,
            if args.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            r.collectable_blobs,
            human_bytes(r.collectable_bytes),
            r.orphan_markers,
            r.expired_entries
        ))?;
    }
    Ok(0)
}
