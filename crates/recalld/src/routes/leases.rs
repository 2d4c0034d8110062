//! Leases for Flyte's cache_serialize: one execution computes while the others wait.
//! The coordination lives in the store (docs/LAYOUT.md section 9), so any number of daemons
//! sharing a bucket agree on who holds a lease.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use recall_store::{LeaseRecord, LeaseStatus};
use serde::Deserialize;
use serde_json::json;

use super::entries::authorized_entry;
use super::{Shared, ok_json, parse_json, parsed_query};
use crate::config::Access;
use crate::error::ApiError;

/// Body of `POST /v1/leases/{project}/{domain}/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who asks: an execution id or `<hostname>/<pid>`.
    owner: String,
    /// How often the owner will ask again; the lease lapses after three missed heartbeats.
    heartbeat_seconds: u64,
}

/// Query of `DELETE /v1/leases/{project}/{domain}/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// The owner releasing its lease.
    owner: String,
}

fn lease_json(granted: bool, record: &LeaseRecord) -> serde_json::Value {
    json!({
        "granted": granted,
        "owner": record.owner,
        "acquired_at_ms": record.acquired_at_ms,
        "renewed_at_ms": record.renewed_at_ms,
        "heartbeat_ms": record.heartbeat_ms,
        "expires_at_ms": record.expires_at_ms,
    })
}

/// `POST /v1/leases/{project}/{domain}/{key}`: GetOrExtend. Grants the lease to `owner` (or
/// extends it), or answers `granted: false` with the current holder and its expiry.
pub async fn acquire(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, key)): Path<(String, String, String)>,
    body: String,
) -> Result<Response, ApiError> {
    let entry = authorized_entry(&state, &headers, &project, &domain, &key, Access::Write)?;
    let request: LeaseRequest = parse_json(&body)?;
    let status = state
        .cache
        .get_or_extend_lease(
            &entry,
            &request.owner,
            Duration::from_secs(request.heartbeat_seconds),
        )
        .await?;
    Ok(match status {
        LeaseStatus::Acquired(record) => ok_json(lease_json(true, &record)),
        LeaseStatus::HeldBy(record) => ok_json(lease_json(false, &record)),
    })
}

/// `DELETE /v1/leases/{project}/{domain}/{key}?owner=X`: Release. `released: false` when the
/// lease is absent, already released, or held by someone else (it is then left alone).
pub async fn release(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, key)): Path<(String, String, String)>,
    query: Result<Query<ReleaseQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let entry = authorized_entry(&state, &headers, &project, &domain, &key, Access::Write)?;
    let query = parsed_query(query)?;
    let released = state.cache.release_lease(&entry, &query.owner).await?;
    Ok(ok_json(json!({ "released": released })))
}
