//! The HTTP API. Every route is listed in [`ROUTES`], which `openapi.json` must match.

mod blobs;
mod entries;
mod ops;
mod view;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as JsonValue, json};

use crate::auth::Denied;
use crate::config::Access;
use crate::state::AppState;
use crate::status::CacheStatus;

/// Shared state as handlers see it.
pub type Shared = Arc<AppState>;

/// (method, path) of every route, as written in `openapi.json`.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/keys"),
    ("post", "/v1/lookup"),
    ("get", "/v1/entries/{project}/{domain}/{key}"),
    ("post", "/v1/entries"),
    ("get", "/v1/blobs/{project}/{domain}/{digest}"),
];

/// The router over `state`.
pub fn router(state: Shared) -> Router {
    let json_limit = usize::try_from(state.config.limits.max_json_bytes).unwrap_or(usize::MAX);
    let publish_limit =
        usize::try_from(state.config.limits.max_publish_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/keys", post(entries::derive_key))
        .route("/v1/lookup", post(entries::lookup_by_material))
        .route(
            "/v1/entries/{project}/{domain}/{key}",
            get(entries::lookup_by_key),
        )
        .route(
            "/v1/entries",
            post(entries::publish).layer(DefaultBodyLimit::max(publish_limit)),
        )
        .route(
            "/v1/blobs/{project}/{domain}/{digest}",
            get(blobs::fetch_blob),
        )
        .layer(DefaultBodyLimit::max(json_limit))
        .with_state(state)
}

/// A JSON error response: `{"error": message}` plus a cache status when it concerns an entry.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// A JSON response that carries a cache status in its body and `X-Recall-Cache-Status`.
pub(crate) fn with_status(code: StatusCode, status: CacheStatus, mut body: JsonValue) -> Response {
    if let Some(map) = body.as_object_mut() {
        map.insert("status".into(), json!(status.as_str()));
    }
    let mut response = (code, Json(body)).into_response();
    response.headers_mut().insert(
        "x-recall-cache-status",
        HeaderValue::from_static(status.as_str()),
    );
    response
}

/// Checks the request's bearer token for `need` on `project`/`domain`.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    project: Option<&str>,
    domain: Option<&str>,
    need: Access,
) -> Result<(), Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state
        .auth
        .check(header, project, domain, need)
        .map_err(|denied| match denied {
            Denied::Unauthenticated => {
                let mut r = error(StatusCode::UNAUTHORIZED, "missing or unknown bearer token");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            Denied::Forbidden { token, reason } => {
                tracing::info!(token = %token, %reason, "request forbidden");
                error(StatusCode::FORBIDDEN, format!("token {token:?}: {reason}"))
            }
        })
}
