//! Operations endpoints: liveness, readiness, metrics, the API description.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use crate::cache::Readiness;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = recall_api::OPENAPI_JSON;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "alive": true }))).into_response()
}

/// `GET /readyz`: the store check got through and a write → read → delete round trip under
/// `probe/` succeeds ([`crate::cache::Cache::readiness`]). Shows the capabilities. A store
/// without conditional writes is ready (lookups and publishes work), with a warning.
pub async fn readyz(State(state): State<Shared>) -> Response {
    match state.cache.readiness().await {
        Readiness::Ready {
            capabilities,
            warning,
        } => {
            let mut body =
                json!({ "ready": true, "capabilities": capabilities_json(&capabilities) });
            if let Some(warning) = warning {
                body["warning"] = json!(warning);
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Readiness::NotReady {
            cause,
            capabilities,
        } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "cause": cause,
                "capabilities": capabilities.as_ref().map(capabilities_json),
            })),
        )
            .into_response(),
    }
}

/// `{"create_if_absent": {"supported": true, "detail": "..."}, ...}`.
fn capabilities_json(capabilities: &recall_store::Capabilities) -> serde_json::Value {
    serde_json::to_value(capabilities).unwrap_or_default()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Shared>) -> Response {
    state.cache.refresh_gauges().await;
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
