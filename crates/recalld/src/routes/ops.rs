//! Operations endpoints: liveness, readiness, metrics, the API description.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;

use super::Shared;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = recall_api::OPENAPI_JSON;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "alive": true }))).into_response()
}

/// `GET /readyz`: the store check got through (it is repeated here until it does), and a
/// real write → read → delete round trip under `probe/` succeeds (requests that arrive while
/// one runs share it, and a success answers for a second). Shows the capabilities.
/// A store without conditional writes is ready (lookups and publishes work), with a warning.
pub async fn readyz(State(state): State<Shared>) -> Response {
    let capabilities = match state.check_store().await {
        Ok(capabilities) => capabilities,
        Err(cause) => return not_ready(cause.to_string(), None),
    };
    let limit = state.readiness_timeout();
    let shown = capabilities_json(&capabilities);
    let arrived = std::time::Instant::now();
    let trip = {
        let mut memo = state.readiness_memo().lock().await;
        match memo.as_ref() {
            // A trip that ended after this request arrived answers it, whatever it found; a
            // success also answers the requests of the next second. A failure seen before
            // this request arrived is not reused: the store may be back.
            Some((at, result))
                if *at >= arrived || (result.is_ok() && at.elapsed() < READINESS_MEMO) =>
            {
                result.clone()
            }
            _ => {
                let result = match tokio::time::timeout(limit, round_trip(&state)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("store did not answer within {limit:?}")),
                };
                *memo = Some((std::time::Instant::now(), result.clone()));
                result
            }
        }
    };
    match trip {
        Ok(()) => {
            let mut body = json!({ "ready": true, "capabilities": shown });
            if !capabilities.conditional_writes() {
                body["warning"] = json!(format!(
                    "store {} lacks {}: \"exactly one manifest wins\" does not hold and \
                     lease requests are refused (docs/LAYOUT.md section 11)",
                    state.config.store,
                    capabilities.missing().join(", ")
                ));
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(cause) => not_ready(cause, Some(shown)),
    }
}

/// How long one readiness round trip answers `/readyz` requests arriving after it.
const READINESS_MEMO: std::time::Duration = std::time::Duration::from_secs(1);

/// `{"create_if_absent": {"supported": true, "detail": "..."}, ...}`.
fn capabilities_json(capabilities: &recall_store::Capabilities) -> serde_json::Value {
    serde_json::to_value(capabilities).unwrap_or_default()
}

fn not_ready(cause: String, capabilities: Option<serde_json::Value>) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "cause": cause, "capabilities": capabilities })),
    )
        .into_response()
}

async fn round_trip(state: &Shared) -> Result<(), String> {
    let store = state.store();
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let path = store.probe_path("ready");
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
