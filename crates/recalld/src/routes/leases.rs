//! Leases for Flyte's cache_serialize: one execution computes while the others wait.
//! The coordination lives in the store (docs/LAYOUT.md section 9), so any number of daemons
//! sharing a bucket agree on who holds a lease.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use recall_api::{LeaseAnswer, LeaseRequest, ReleaseAnswer};
use recall_store::{DEFAULT_GRACE, LeaseStatus, StoreError};
use serde::Deserialize;

use super::entries::authorized_entry;
use super::{Shared, error, parse_json, query_error};
use crate::config::Access;

/// Query of `DELETE /v1/leases/{project}/{domain}/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// The owner releasing its lease.
    owner: String,
}

/// Maps a store error of a lease call: bad arguments are the caller's, the rest the store's.
fn lease_failure(state: &Shared, err: StoreError) -> Response {
    match err {
        StoreError::InvalidLease { .. } | StoreError::InvalidName(_) => {
            error(StatusCode::BAD_REQUEST, err.to_string())
        }
        other => {
            state.metrics.backend_errors.inc();
            tracing::warn!(error = %other, "lease request failed at the store");
            error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {other}"))
        }
    }
}

/// 501 on a store without conditional writes (leases would not exclude anyone), 503 while
/// the store has not answered recalld's check yet.
fn refuse_without_conditional_writes(state: &Shared) -> Result<(), Response> {
    state.leases_supported().map_err(|(status, message)| {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        error(status, message)
    })
}

fn lease_timeout(state: &Shared) -> Response {
    state.metrics.backend_errors.inc();
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "store did not answer within {} ms",
            state.config.timeouts.lease_ms
        ),
    )
}

/// `POST /v1/leases/{project}/{domain}/{key}`: GetOrExtend. Grants the lease to `owner` (or
/// extends it), or answers `granted: false` with the current holder and its expiry.
pub async fn acquire(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, key)): Path<(String, String, String)>,
    body: String,
) -> Response {
    let entry = match authorized_entry(&state, &headers, &project, &domain, &key, Access::Write) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let request: LeaseRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(refused) = refuse_without_conditional_writes(&state) {
        return refused;
    }
    // Refused, not clamped: a holder that believes it has a longer heartbeat than it was
    // granted would let its lease lapse between beats.
    let max = state.config.limits.max_heartbeat_secs;
    if !(1..=max).contains(&request.heartbeat_seconds) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "heartbeat_seconds: {} is out of range 1..={max} (limits.max_heartbeat_secs)",
                request.heartbeat_seconds
            ),
        );
    }
    let limit = Duration::from_millis(state.config.timeouts.lease_ms);
    let call = state.store().get_or_extend_lease(
        &entry,
        &request.owner,
        Duration::from_secs(request.heartbeat_seconds),
        DEFAULT_GRACE,
    );
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(LeaseStatus::Acquired(record))) => {
            (StatusCode::OK, Json(LeaseAnswer::new(true, &record))).into_response()
        }
        Ok(Ok(LeaseStatus::HeldBy(record))) => {
            state.metrics.lease_waits.inc();
            (StatusCode::OK, Json(LeaseAnswer::new(false, &record))).into_response()
        }
        Ok(Err(err)) => lease_failure(&state, err),
        Err(_) => lease_timeout(&state),
    }
}

/// `DELETE /v1/leases/{project}/{domain}/{key}?owner=X`: Release. `released: false` when the
/// lease is absent, already released, or held by someone else (it is then left alone).
pub async fn release(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, key)): Path<(String, String, String)>,
    query: Result<Query<ReleaseQuery>, QueryRejection>,
) -> Response {
    let entry = match authorized_entry(&state, &headers, &project, &domain, &key, Access::Write) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Query(query) = match query {
        Ok(q) => q,
        Err(rejection) => return query_error(rejection),
    };
    if let Err(refused) = refuse_without_conditional_writes(&state) {
        return refused;
    }
    let limit = Duration::from_millis(state.config.timeouts.lease_ms);
    match tokio::time::timeout(limit, state.store().release_lease(&entry, &query.owner)).await {
        Ok(Ok(released)) => (StatusCode::OK, Json(ReleaseAnswer { released })).into_response(),
        Ok(Err(err)) => lease_failure(&state, err),
        Err(_) => lease_timeout(&state),
    }
}
