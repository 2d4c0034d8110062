//! Operations endpoints: liveness, readiness, metrics, the API description.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;

use super::Shared;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "alive": true }))).into_response()
}

/// `GET /readyz`: a real write → read → delete round trip on the store.
pub async fn readyz(State(state): State<Shared>) -> Response {
    let limit = Duration::from_millis(state.config.timeouts.lookup_ms.max(1000));
    match tokio::time::timeout(limit, round_trip(&state)).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "ready": true }))).into_response(),
        Ok(Err(cause)) => not_ready(cause),
        Err(_) => not_ready(format!("store did not answer within {limit:?}")),
    }
}

fn not_ready(cause: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "cause": cause })),
    )
        .into_response()
}

async fn round_trip(state: &Shared) -> Result<(), String> {
    let store = state.store();
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let path = store.path(&format!(
        "health/{}",
        blake3::hash(nonce.as_bytes()).to_hex()
    ));
    let body = Bytes::from(nonce.into_bytes());
    let objects = store.object_store();
    objects
        .put(&path, PutPayload::from(body.clone()))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let read = objects
        .get(&path)
        .await
        .map_err(|e| format!("read: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("read: {e}"))?;
    let _ = objects.delete(&path).await;
    if read != body {
        return Err("read back different bytes than were written".into());
    }
    Ok(())
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Shared>) -> Response {
    state.refresh_gauges().await;
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
