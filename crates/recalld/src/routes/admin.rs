//! Eviction, garbage collection and listing tenants, tasks and a task's entries.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use recall_key::{Digest, validate_name};
use recall_store::{EntryRef, EvictSelector, GcOptions, Tenant};
use serde::Deserialize;
use serde_json::json;

use super::{
    Shared, authorize, authorized_tenant, bearer, ok_json, parse_json, parsed_query, with_status,
};
use crate::config::Access;
use crate::error::ApiError;
use crate::status::CacheStatus;

/// Body of `POST /v1/evict`. At most one selector among `key`, `task` (optionally with
/// `cache_version`) and `older_than_seconds`; none evicts the whole project/domain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvictRequest {
    /// The tenant's project.
    project: String,
    /// The tenant's domain.
    domain: String,
    /// One entry, by its 64-hex key.
    key: Option<String>,
    /// Every entry of this task.
    task: Option<String>,
    /// With `task`: only entries of this cache_version.
    cache_version: Option<String>,
    /// Entries published more than this many seconds ago.
    older_than_seconds: Option<u64>,
    /// Count what would be evicted; delete nothing.
    #[serde(default)]
    dry_run: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// The store's selector for `request` in `tenant`; a 400 names the conflicting fields.
fn selector_of(
    request: &EvictRequest,
    tenant: Tenant,
    now_ms: i64,
) -> Result<EvictSelector, ApiError> {
    let given: Vec<&str> = [
        ("key", request.key.is_some()),
        ("task", request.task.is_some()),
        ("older_than_seconds", request.older_than_seconds.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    if given.len() > 1 {
        return Err(bad(format!(
            "give at most one selector among key, task and older_than_seconds; got {}",
            given.join(" and ")
        )));
    }
    if request.cache_version.is_some() && request.task.is_none() {
        return Err(bad("cache_version: only allowed together with task"));
    }
    if let Some(key) = &request.key {
        let key: Digest = key
            .parse()
            .map_err(|e: recall_key::DigestParseError| bad(format!("key: {e}")))?;
        return Ok(EvictSelector::Key(EntryRef { tenant, key }));
    }
    if let Some(task) = &request.task {
        validate_name("task", task).map_err(|e| bad(e.to_string()))?;
        if let Some(version) = &request.cache_version {
            validate_name("cache_version", version).map_err(|e| bad(e.to_string()))?;
        }
        return Ok(EvictSelector::Task {
            tenant,
            task: task.clone(),
            cache_version: request.cache_version.clone(),
        });
    }
    if let Some(seconds) = request.older_than_seconds {
        let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        return Ok(EvictSelector::OlderThan {
            tenant: Some(tenant),
            cutoff_ms: now_ms.saturating_sub(ms),
        });
    }
    Ok(EvictSelector::Tenant(tenant))
}

/// `POST /v1/evict` (admin): removes entries by key, task, age or the whole project/domain
/// (or with `dry_run` counts what that would remove), and forgets them in this daemon's
/// memory tier at once ([`crate::cache::Cache::evict`]).
pub async fn evict(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let request: EvictRequest = parse_json(&body)?;
    let tenant = Tenant::new(&request.project, &request.domain)?;
    authorize(
        &state,
        &headers,
        Some(&request.project),
        Some(&request.domain),
        Access::Admin,
    )?;
    let selector = selector_of(&request, tenant, state.cache.now_ms())?;
    let report = state.cache.evict(&selector, request.dry_run).await?;
    tracing::info!(
        project = %request.project,
        domain = %request.domain,
        selector = selector.name(),
        dry_run = request.dry_run,
        entries = report.entries,
        "evicted"
    );
    Ok(with_status(
        StatusCode::OK,
        CacheStatus::CacheEvicted,
        json!({
            "project": request.project,
            "domain": request.domain,
            "selector": selector.name(),
            "dry_run": request.dry_run,
            "entries": report.entries,
            "markers": report.markers,
            "leases": report.leases,
            "blobs": report.blobs,
        }),
    ))
}

/// Body of `POST /v1/gc`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Unreferenced blobs younger than this are kept (default 3600).
    grace_seconds: Option<u64>,
    /// Count, delete nothing.
    #[serde(default)]
    dry_run: bool,
    /// Only this project (with `domain`); default every tenant.
    project: Option<String>,
    /// Only this domain (with `project`).
    domain: Option<String>,
}

/// `POST /v1/gc` (admin): mark-and-sweep of unreferenced blobs and orphan markers, in every
/// tenant (needs an admin token for all projects and domains) or in one project/domain.
pub async fn gc(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let request: GcRequest = parse_json(&body)?;
    let tenant = match (&request.project, &request.domain) {
        (Some(p), Some(d)) => Some(Tenant::new(p, d)?),
        (None, None) => None,
        _ => return Err(bad("project and domain: give both or neither")),
    };
    authorize(
        &state,
        &headers,
        request.project.as_deref(),
        request.domain.as_deref(),
        Access::Admin,
    )?;
    let defaults = GcOptions::default();
    let options = GcOptions {
        grace: request
            .grace_seconds
            .map_or(defaults.grace, Duration::from_secs),
        dry_run: request.dry_run,
    };
    let r = state.cache.gc(tenant.as_ref(), &options).await?;
    Ok(ok_json(json!({
        "dry_run": options.dry_run,
        "grace_seconds": options.grace.as_secs(),
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
    })))
}

/// Query of `GET /v1/tasks/{project}/{domain}/{task}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// Only entries of this cache_version.
    cache_version: Option<String>,
}

/// `GET /v1/tasks/{project}/{domain}/{task}`: the task's entries as its index markers name
/// them (one LIST). A marker may briefly outlive its evicted manifest.
pub async fn list_task(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, task)): Path<(String, String, String)>,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    validate_name("task", &task).map_err(|e| bad(e.to_string()))?;
    if let Some(version) = &query.cache_version {
        validate_name("cache_version", version).map_err(|e| bad(e.to_string()))?;
    }
    let tenant = authorized_tenant(&state, &headers, &project, &domain, Access::Read)?;
    let entries = state
        .cache
        .task_entries(&tenant, &task, query.cache_version.as_deref())
        .await?;
    let entries: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({
                "cache_version": e.cache_version,
                "key": e.key.to_hex(),
                "marked_at_ms": e.marked_at_ms,
            })
        })
        .collect();
    Ok(ok_json(
        json!({ "project": project, "domain": domain, "task": task, "entries": entries }),
    ))
}

/// `GET /v1/tenants`: the project/domain pairs in the store that the caller's token may
/// read (two delimited LISTs; tenants outside the token's scope are left out).
pub async fn list_tenants(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let header = bearer(&headers);
    // Refuse a bad token before touching the store.
    state
        .auth
        .visible(header, &[] as &[Tenant], tenant_scope, Access::Read)?;
    let tenants = state.cache.tenants().await?;
    let visible = state
        .auth
        .visible(header, &tenants, tenant_scope, Access::Read)?;
    let tenants: Vec<_> = visible
        .iter()
        .map(|t| json!({ "project": t.project(), "domain": t.domain() }))
        .collect();
    Ok(ok_json(json!({ "tenants": tenants })))
}

fn tenant_scope(tenant: &Tenant) -> (&str, &str) {
    (tenant.project(), tenant.domain())
}

/// `GET /v1/tasks/{project}/{domain}`: the task names with index markers in the tenant,
/// sorted (one delimited LIST).
pub async fn list_tasks(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = authorized_tenant(&state, &headers, &project, &domain, Access::Read)?;
    let tasks = state.cache.tasks(&tenant).await?;
    Ok(ok_json(
        json!({ "project": project, "domain": domain, "tasks": tasks }),
    ))
}
