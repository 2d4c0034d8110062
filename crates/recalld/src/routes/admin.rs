//! Eviction, garbage collection and listing tenants, tasks and a task's entries.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};
use recall_api::{
    EvictReport as EvictAnswer, EvictRequest, GcReport as GcAnswer, GcRequest, TaskEntries,
    TaskEntryView, Tasks, TenantView, Tenants,
};
use recall_key::{Digest, validate_name};
use recall_store::{EntryRef, EvictReport, GcOptions, Manifest, Store, StoreError, Tenant};
use serde::Deserialize;

use super::{Shared, authorize, authorized_tenant, error, parse_json, query_error, with_status};
use crate::config::Access;
use crate::status::CacheStatus;

/// Which entries an eviction removes.
#[derive(Debug, Clone)]
enum Selector {
    Key(Digest),
    Task {
        task: String,
        cache_version: Option<String>,
    },
    OlderThan {
        cutoff_ms: i64,
    },
    Tenant,
}

impl Selector {
    fn name(&self) -> &'static str {
        match self {
            Selector::Key(_) => "key",
            Selector::Task { .. } => "task",
            Selector::OlderThan { .. } => "older_than_seconds",
            Selector::Tenant => "tenant",
        }
    }
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn selector_of(request: &EvictRequest, now_ms: i64) -> Result<Selector, Response> {
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
        return Ok(Selector::Key(key));
    }
    if let Some(task) = &request.task {
        validate_name("task", task).map_err(|e| bad(e.to_string()))?;
        if let Some(version) = &request.cache_version {
            validate_name("cache_version", version).map_err(|e| bad(e.to_string()))?;
        }
        return Ok(Selector::Task {
            task: task.clone(),
            cache_version: request.cache_version.clone(),
        });
    }
    if let Some(seconds) = request.older_than_seconds {
        let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        return Ok(Selector::OlderThan {
            cutoff_ms: now_ms.saturating_sub(ms),
        });
    }
    Ok(Selector::Tenant)
}

/// `POST /v1/evict` (admin): removes entries by key, task, age or the whole project/domain,
/// and forgets them in this daemon's memory tier at once (by key; every entry for the broader
/// selectors). Other daemons may serve an evicted entry for up to their `hot.ttl_secs`.
pub async fn evict(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let request: EvictRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let tenant = match Tenant::new(&request.project, &request.domain) {
        Ok(t) => t,
        Err(e) => return bad(e.to_string()),
    };
    if let Err(r) = authorize(
        &state,
        &headers,
        Some(&request.project),
        Some(&request.domain),
        Access::Admin,
    ) {
        return r;
    }
    let store = state.store();
    let selector = match selector_of(&request, store.config().clock.now_ms()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = if request.dry_run {
        count_evictable(store, &tenant, &selector).await
    } else {
        let result = match &selector {
            Selector::Key(key) => {
                store
                    .evict_key(&EntryRef {
                        tenant: tenant.clone(),
                        key: *key,
                    })
                    .await
            }
            Selector::Task {
                task,
                cache_version,
            } => {
                store
                    .evict_task(&tenant, task, cache_version.as_deref())
                    .await
            }
            Selector::OlderThan { cutoff_ms } => {
                store.evict_older_than(Some(&tenant), *cutoff_ms).await
            }
            Selector::Tenant => store.evict_tenant(&tenant).await,
        };
        // Forget even after a partial failure: some manifests may already be gone.
        match &selector {
            Selector::Key(key) => {
                state
                    .hot
                    .invalidate(&EntryRef {
                        tenant: tenant.clone(),
                        key: *key,
                    })
                    .await
            }
            _ => state.hot.invalidate_all(),
        }
        result
    };
    match result {
        Ok(report) => {
            tracing::info!(
                project = %request.project,
                domain = %request.domain,
                selector = selector.name(),
                dry_run = request.dry_run,
                entries = report.entries,
                "evicted"
            );
            with_status(
                StatusCode::OK,
                CacheStatus::CacheEvicted,
                &EvictAnswer::new(
                    &request.project,
                    &request.domain,
                    selector.name(),
                    request.dry_run,
                    &report,
                ),
            )
        }
        Err(err) => store_failure(&state, err),
    }
}

fn store_failure(state: &Shared, err: StoreError) -> Response {
    match err {
        StoreError::InvalidName(_) => bad(err.to_string()),
        other => {
            state.metrics.backend_errors.inc();
            tracing::warn!(error = %other, "store operation failed");
            error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {other}"))
        }
    }
}

async fn list(store: &Store, relative: &str) -> Result<Vec<ObjectMeta>, StoreError> {
    let prefix = store.path(relative);
    store
        .object_store()
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| backend("list", &prefix, source))
}

fn backend(
    operation: &'static str,
    path: &object_store::path::Path,
    source: object_store::Error,
) -> StoreError {
    StoreError::Backend {
        operation,
        path: path.to_string(),
        source,
    }
}

async fn exists(store: &Store, relative: &str) -> Result<bool, StoreError> {
    let path = store.path(relative);
    match store.object_store().head(&path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(backend("head", &path, source)),
    }
}

/// `Some(decoded manifest or None when undecodable)`, or `None` when absent.
async fn read_manifest(
    store: &Store,
    relative: &str,
) -> Result<Option<Option<Manifest>>, StoreError> {
    let path = store.path(relative);
    match store.object_store().get(&path).await {
        Ok(got) => {
            let body = got
                .bytes()
                .await
                .map_err(|source| backend("get", &path, source))?;
            Ok(Some(Manifest::decode(&body).ok()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(backend("get", &path, source)),
    }
}

/// What an eviction with `selector` would remove, counted the way the store's eviction
/// counts it, without deleting anything.
async fn count_evictable(
    store: &Store,
    tenant: &Tenant,
    selector: &Selector,
) -> Result<EvictReport, StoreError> {
    let mut report = EvictReport::default();
    match selector {
        Selector::Key(key) => count_key(store, tenant, key, &mut report).await?,
        Selector::Task {
            task,
            cache_version,
        } => {
            let entries = store
                .list_task_entries(tenant, task, cache_version.as_deref())
                .await?;
            report.markers = entries.len() as u64;
            for entry in entries {
                if exists(store, &tenant.entry(&entry.key)).await? {
                    report.entries += 1;
                }
            }
        }
        Selector::OlderThan { cutoff_ms } => {
            for meta in list(store, &tenant.entries_prefix()).await? {
                let Some(key) = meta
                    .location
                    .filename()
                    .and_then(|name| name.parse::<Digest>().ok())
                else {
                    continue;
                };
                let old = match read_manifest(store, &tenant.entry(&key)).await? {
                    None => false,
                    Some(Some(m)) => m.created_at_ms < *cutoff_ms,
                    Some(None) => meta.last_modified.timestamp_millis() < *cutoff_ms,
                };
                if old {
                    count_key(store, tenant, &key, &mut report).await?;
                }
            }
        }
        Selector::Tenant => {
            let entries = store.path(&tenant.entries_prefix());
            let tasks = store.path(&tenant.tasks_prefix());
            let leases = store.path(&tenant.leases_prefix());
            let blobs = store.path(&tenant.blobs_prefix());
            for meta in list(store, &tenant.prefix()).await? {
                let at = &meta.location;
                if at.prefix_matches(&entries) {
                    report.entries += 1;
                } else if at.prefix_matches(&tasks) {
                    report.markers += 1;
                } else if at.prefix_matches(&leases) {
                    report.leases += 1;
                } else if at.prefix_matches(&blobs) {
                    report.blobs += 1;
                }
            }
        }
    }
    Ok(report)
}

async fn count_key(
    store: &Store,
    tenant: &Tenant,
    key: &Digest,
    report: &mut EvictReport,
) -> Result<(), StoreError> {
    match read_manifest(store, &tenant.entry(key)).await? {
        None => {}
        Some(manifest) => {
            report.entries += 1;
            if manifest.is_some() {
                report.markers += 1;
            }
        }
    }
    if exists(store, &tenant.lease(key)).await? {
        report.leases += 1;
    }
    Ok(())
}

/// `POST /v1/gc` (admin): mark-and-sweep of unreferenced blobs and orphan markers, in every
/// tenant (needs an admin token for all projects and domains) or in one project/domain.
pub async fn gc(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let request: GcRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let tenant = match (&request.project, &request.domain) {
        (Some(p), Some(d)) => match Tenant::new(p, d) {
            Ok(t) => Some(t),
            Err(e) => return bad(e.to_string()),
        },
        (None, None) => None,
        _ => return bad("project and domain: give both or neither"),
    };
    if let Err(r) = authorize(
        &state,
        &headers,
        request.project.as_deref(),
        request.domain.as_deref(),
        Access::Admin,
    ) {
        return r;
    }
    let defaults = GcOptions::default();
    let options = GcOptions {
        grace: request
            .grace_seconds
            .map_or(defaults.grace, Duration::from_secs),
        dry_run: request.dry_run,
    };
    match state.store().gc(tenant.as_ref(), &options).await {
        Ok(r) => (StatusCode::OK, Json(GcAnswer::new(&options, &r))).into_response(),
        Err(err) => store_failure(&state, err),
    }
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
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(rejection) => return query_error(rejection),
    };
    if let Err(e) = validate_name("task", &task) {
        return bad(e.to_string());
    }
    if let Some(version) = &query.cache_version
        && let Err(e) = validate_name("cache_version", version)
    {
        return bad(e.to_string());
    }
    let tenant = match authorized_tenant(&state, &headers, &project, &domain, Access::Read) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match state
        .store()
        .list_task_entries(&tenant, &task, query.cache_version.as_deref())
        .await
    {
        Ok(entries) => (
            StatusCode::OK,
            Json(TaskEntries {
                domain,
                entries: entries.iter().map(TaskEntryView::from).collect(),
                project,
                task,
            }),
        )
            .into_response(),
        Err(err) => store_failure(&state, err),
    }
}

/// `GET /v1/tenants`: the project/domain pairs in the store that the caller's token may
/// read (two delimited LISTs; tenants outside the token's scope are left out).
pub async fn list_tenants(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Refuse a bad token before touching the store.
    if let Err(denied) = state
        .auth
        .visible(header, &[] as &[Tenant], tenant_scope, Access::Read)
    {
        return super::denied_response(denied);
    }
    let tenants = match state.store().tenants().await {
        Ok(tenants) => tenants,
        Err(err) => return store_failure(&state, err),
    };
    let visible = match state
        .auth
        .visible(header, &tenants, tenant_scope, Access::Read)
    {
        Ok(visible) => visible,
        Err(denied) => return super::denied_response(denied),
    };
    let tenants = Tenants {
        tenants: visible.iter().map(|t| TenantView::from(*t)).collect(),
    };
    (StatusCode::OK, Json(tenants)).into_response()
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
) -> Response {
    let tenant = match authorized_tenant(&state, &headers, &project, &domain, Access::Read) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match state.store().tasks(&tenant).await {
        Ok(tasks) => (
            StatusCode::OK,
            Json(Tasks {
                domain,
                project,
                tasks,
            }),
        )
            .into_response(),
        Err(err) => store_failure(&state, err),
    }
}
