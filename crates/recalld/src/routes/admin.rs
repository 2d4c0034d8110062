//! Eviction, garbage collection and listing tenants, tasks and a task's entries.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use recall_api::{
    EvictReport as EvictAnswer, EvictRequest, GcReport as GcAnswer, GcRequest, TaskEntries,
    TaskEntryView, Tasks, TenantView, Tenants,
};
use recall_key::{Digest, validate_name};
use recall_store::{EntryRef, EvictSelector, GcOptions, Tenant};
use serde::Deserialize;

use super::{
    Shared, authorize, authorized_tenant, bearer, ok_json, parse_json, parsed_query, with_status,
};
use crate::config::Access;
use crate::error::ApiError;
use crate::status::CacheStatus;

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
        &EvictAnswer::new(
            &request.project,
            &request.domain,
            selector.name(),
            request.dry_run,
            &report,
        ),
    ))
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
    Ok(ok_json(&GcAnswer::new(&options, &r)))
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
    Ok(ok_json(&TaskEntries {
        domain,
        entries: entries.iter().map(TaskEntryView::from).collect(),
        project,
        task,
    }))
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
    Ok(ok_json(&Tenants {
        tenants: visible.iter().map(|t| TenantView::from(*t)).collect(),
    }))
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
    Ok(ok_json(&Tasks {
        domain,
        project,
        tasks,
    }))
}
