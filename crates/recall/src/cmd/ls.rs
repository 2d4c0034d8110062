//! `recall ls`: list tenants, a tenant's tasks, or a task's entries.

use recall_store::{EntryRef, Lookup, Miss, StoreConfig, Tenant};
use serde_json::json;

use super::open_client;
use crate::cli::{GlobalArgs, LsArgs};
use crate::error::CliError;
use crate::print::{print_json, print_line, time_text};

/// `recall ls`.
pub async fn ls(global: &GlobalArgs, args: LsArgs) -> Result<u8, CliError> {
    let client = open_client(global, StoreConfig::default()).await?;
    let (Some(project), Some(domain)) = (&args.project, &args.domain) else {
        let tenants: Vec<String> = client
            .tenants()
            .await?
            .iter()
            .map(|t| format!("{}/{}", t.project(), t.domain()))
            .collect();
        if args.json {
            print_json(&json!({ "tenants": tenants }))?;
        } else if !tenants.is_empty() {
            print_line(tenants.join("\n"))?;
        }
        return Ok(0);
    };
    let tenant = Tenant::new(project, domain)?;
    let Some(task) = &args.task else {
        let tasks = client.tasks(&tenant).await?;
        if args.json {
            print_json(&json!({ "project": project, "domain": domain, "tasks": tasks }))?;
        } else if !tasks.is_empty() {
            print_line(tasks.join("\n"))?;
        }
        return Ok(0);
    };
    let listed = client
        .task_entries(&tenant, task, args.cache_version.as_deref())
        .await?;
    let mut rows = Vec::new();
    for item in listed {
        let entry = EntryRef {
            tenant: tenant.clone(),
            key: item.key,
        };
        let stored = client.stored_entry(&entry).await?;
        let (status, created, size) = match &stored {
            // A daemon serves live entries only; its lookup still says when one has expired
            // (size unknown then), so only a manifest that is really absent shows as gone.
            None => match client.lookup(&entry).await? {
                Lookup::Miss(Miss::Expired { created_at_ms }) => {
                    ("expired", Some(created_at_ms), None)
                }
                _ => ("gone", None, None),
            },
            Some(s) => (
                if s.expired { "expired" } else { "live" },
                Some(s.manifest.created_at_ms),
                Some(s.manifest.outputs.values().map(|o| o.size).sum::<u64>()),
            ),
        };
        rows.push(json!({
            "cache_version": item.cache_version,
            "key": item.key.to_hex(),
            "marked_at_ms": item.marked_at_ms,
            "status": status,
            "created_at_ms": created,
            "size": size,
        }));
    }
    if args.json {
        print_json(&json!({"project": project, "domain": domain, "task": task, "entries": rows}))?;
    } else {
        for row in &rows {
            print_line(format!(
                "{}  {}  {:<7}  {}",
                row["cache_version"].as_str().unwrap_or(""),
                row["key"].as_str().unwrap_or(""),
                row["status"].as_str().unwrap_or(""),
                row["created_at_ms"]
                    .as_i64()
                    .map_or("-".to_string(), time_text)
            ))?;
        }
    }
    Ok(0)
}
