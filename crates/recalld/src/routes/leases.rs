//! Leases for Flyte's cache_serialize: one execution computes while the others wait.
//! The coordination lives in the store (docs/LAYOUT.md section 9), so any number of daemons
//! sharing a bucket agree on who holds a lease.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use recall_api::{LeaseAnswer, LeaseRequest, ReleaseAnswer};
use recall_store::LeaseStatus;
use serde::Deserialize;

use super::entries::authorized_entry;
use super::{Shared, ok_json, parse_json, parsed_query};
use crate::config::Access;
use crate::error::ApiError;

/// Query of `DELETE /v1/leases/{project}/{domain}/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// The owner releasing its lease.
    owner: String,
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
        LeaseStatus::Acquired(record) => ok_json(&LeaseAnswer::new(true, &record)),
        LeaseStatus::HeldBy(record) => ok_json(&LeaseAnswer::new(false, &record)),
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
    Ok(ok_json(&ReleaseAnswer { released }))
}
