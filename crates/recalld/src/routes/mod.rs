//! The HTTP API. Every route is listed in [`ROUTES`], which `openapi.json` must match.

mod admin;
mod blobs;
mod entries;
mod leases;
mod ops;
mod view;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::json;
use tower::{Layer, Service};

use recall_store::Tenant;

use crate::config::Access;
use crate::error::ApiError;
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
    ("post", "/v1/leases/{project}/{domain}/{key}"),
    ("delete", "/v1/leases/{project}/{domain}/{key}"),
    ("post", "/v1/evict"),
    ("post", "/v1/gc"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tasks/{project}/{domain}"),
    ("get", "/v1/tasks/{project}/{domain}/{task}"),
];

/// The whole HTTP application over `state`: [`router`] behind the lookup fast path, with
/// every error answered as JSON.
pub type App = JsonErrors<HotLookups>;

/// Builds the [`App`].
pub fn app(state: Shared) -> App {
    JsonErrorsLayer.layer(HotLookups {
        router: router(state.clone()),
        state,
    })
}

/// Sends `GET /v1/entries/{project}/{domain}/{key}` straight to its handler and everything
/// else to the router. A hot hit is most of recalld's traffic, and the router's generic work
/// (matching, decoding and storing path parameters, boxing the handler) cost about as much
/// CPU as the hit itself. Paths that need percent-decoding, and HEAD, still go through the
/// router, which answers them the same way.
#[derive(Clone)]
pub struct HotLookups {
    router: Router,
    state: Shared,
}

impl Service<Request> for HotLookups {
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::Either<
        <Router as Service<Request>>::Future,
        Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() != Method::GET
            || entries::entry_lookup_path(request.uri().path()).is_none()
        {
            return futures::future::Either::Left(self.router.call(request));
        }
        let state = self.state.clone();
        futures::future::Either::Right(Box::pin(async move {
            let (parts, _) = request.into_parts();
            let response = match entries::entry_lookup_path(parts.uri.path()) {
                Some((project, domain, key)) => {
                    entries::lookup_with(&state, project, domain, key, &parts).await
                }
                None => error(StatusCode::NOT_FOUND, "no such route"),
            };
            Ok(response)
        }))
    }
}

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
        .route(
            "/v1/leases/{project}/{domain}/{key}",
            post(leases::acquire).delete(leases::release),
        )
        .route("/v1/evict", post(admin::evict))
        .route("/v1/gc", post(admin::gc))
        .route("/v1/tenants", get(admin::list_tenants))
        .route("/v1/tasks/{project}/{domain}", get(admin::list_tasks))
        .route("/v1/tasks/{project}/{domain}/{task}", get(admin::list_task))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(json_limit))
        .with_state(state)
}

/// Any path no route serves: a JSON 404 that names it.
async fn unknown_route(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {} (the API is described at /openapi.json)",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Error bodies axum writes itself (a body that is not UTF-8, a method a route does not
/// serve, a body over the size limit, ...) are plain text or empty; this layer turns every
/// such 4xx/5xx into `{"error": message}` like the handlers' own, so a client parses one
/// shape. A response that needs no rewriting passes through without any allocation (axum's
/// `from_fn` middleware would box every request's future).
#[derive(Debug, Clone, Copy)]
pub struct JsonErrorsLayer;

impl<S> Layer<S> for JsonErrorsLayer {
    type Service = JsonErrors<S>;

    fn layer(&self, inner: S) -> JsonErrors<S> {
        JsonErrors { inner }
    }
}

/// The service [`JsonErrorsLayer`] wraps around the application.
#[derive(Debug, Clone)]
pub struct JsonErrors<S> {
    inner: S,
}

impl<S> Service<Request> for JsonErrors<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = JsonErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Kept for the error message only; cloning a URI shares the request's bytes.
        let method = request.method().clone();
        let uri = request.uri().clone();
        JsonErrorsFuture::Waiting {
            inner: self.inner.call(request),
            method,
            uri,
        }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way through [`JsonErrors`].
    // pin_project_lite takes no doc comments on variant fields.
    #[allow(missing_docs)]
    #[project = JsonErrorsState]
    pub enum JsonErrorsFuture<F> {
        /// The router is answering.
        Waiting { #[pin] inner: F, method: Method, uri: Uri },
        /// A non-JSON error body is being read and rewritten.
        Rewriting { rewrite: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Future for JsonErrorsFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                JsonErrorsState::Waiting { inner, method, uri } => {
                    let Ok(response) = std::task::ready!(inner.poll(cx));
                    if !needs_json_error(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let rewrite = Box::pin(json_error_from(
                        std::mem::take(method),
                        std::mem::take(uri),
                        response,
                    ));
                    self.set(JsonErrorsFuture::Rewriting { rewrite });
                }
                JsonErrorsState::Rewriting { rewrite } => {
                    return rewrite.as_mut().poll(cx).map(Ok);
                }
            }
        }
    }
}

/// Whether `response` is an error whose body is not already JSON.
fn needs_json_error(response: &Response) -> bool {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    (status.is_client_error() || status.is_server_error()) && !is_json
}

/// `response` rewritten as `{"error": message}`: its text, or the method, path and reason.
async fn json_error_from(method: Method, uri: Uri, response: Response) -> Response {
    let status = response.status();
    let (parts, body) = response.into_parts();
    // axum's own error texts are short; anything longer is cut, not buffered.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        format!(
            "{method} {}: {}",
            uri.path(),
            status.canonical_reason().unwrap_or("error")
        )
    } else {
        text
    };
    let mut rebuilt = error(status, message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().append(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// A JSON error response: `{"error": message}` plus a cache status when it concerns an entry.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// Parses a JSON request body; a 400 names the field and what is wrong with its value.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        ApiError::BadRequest(if path == "." {
            format!("request body: {}", e.inner())
        } else {
            format!("request body field {path}: {}", e.inner())
        })
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?;
    Ok(parsed)
}

/// The query string, or a 400 for one that does not parse.
pub(crate) fn parsed_query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// A JSON response that carries a cache status in its body (recall-api's answer types have
/// a `status` field) and in `X-Recall-Cache-Status`.
pub(crate) fn with_status(
    code: StatusCode,
    status: CacheStatus,
    body: &impl serde::Serialize,
) -> Response {
    let mut response = (code, Json(body)).into_response();
    response.headers_mut().insert(
        "x-recall-cache-status",
        HeaderValue::from_static(status.as_str()),
    );
    response
}

/// A 200 with a JSON body (one of recall-api's answer types).
pub(crate) fn ok_json(body: &impl serde::Serialize) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// The request's `Authorization` header, when it is text.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Checks the request's bearer token for `need` on `project`/`domain`.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    project: Option<&str>,
    domain: Option<&str>,
    need: Access,
) -> Result<(), ApiError> {
    Ok(state.auth.check(bearer(headers), project, domain, need)?)
}

/// Checks, from the headers alone, that the request's token has `need` access somewhere:
/// what a request must pass before its body is read.
pub(crate) fn authorize_level(
    state: &AppState,
    headers: &HeaderMap,
    need: Access,
) -> Result<(), ApiError> {
    Ok(state.auth.check_level(bearer(headers), need)?)
}

/// The tenant that `project` and `domain` name (400 when either is not a valid name), once
/// the request's token is checked for `need` on it.
pub(crate) fn authorized_tenant(
    state: &AppState,
    headers: &HeaderMap,
    project: &str,
    domain: &str,
    need: Access,
) -> Result<Tenant, ApiError> {
    let tenant = Tenant::new(project, domain)?;
    authorize(state, headers, Some(project), Some(domain), need)?;
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use bytes::Bytes;
    use serde_json::Value as JsonValue;

    use super::*;

    /// One request through `service`: status, headers and body.
    async fn send<S>(service: &mut S, method: &str, path: &str) -> (StatusCode, HeaderMap, Bytes)
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let Ok(response) = service.call(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body)
    }

    async fn through_json_errors(method: &str, path: &str) -> (StatusCode, HeaderMap, String) {
        let router = Router::new()
            .route(
                "/text",
                get(|| async { "fine" }).post(|| async { "posted" }),
            )
            .route(
                "/plain-error",
                get(|| async { (StatusCode::BAD_REQUEST, "bad thing") }),
            )
            .route(
                "/json-error",
                get(|| async { error(StatusCode::CONFLICT, "already json") }),
            );
        let (status, headers, body) = send(&mut JsonErrorsLayer.layer(router), method, path).await;
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn only_plain_lookup_paths_take_the_fast_path() {
        let key = "ab".repeat(32);
        let path = format!("/v1/entries/p/d/{key}");
        assert_eq!(
            entries::entry_lookup_path(&path),
            Some(("p", "d", key.as_str()))
        );
        for other in [
            "/v1/entries/p/d".to_string(),
            format!("/v1/entries/p/d/{key}/"),
            format!("/v1/entries/p//{key}"),
            format!("/v1/entries/%70/d/{key}"),
            format!("/v1/entriesx/p/d/{key}"),
            format!("/v1/blobs/p/d/{key}"),
        ] {
            assert_eq!(entries::entry_lookup_path(&other), None, "{other}");
        }
    }

    /// The fast path and the router give the same answers.
    #[tokio::test]
    async fn lookups_answer_the_same_through_the_fast_path_and_the_router() {
        let config = crate::config::Config {
            store: "memory://".into(),
            ..Default::default()
        };
        let state = Arc::new(AppState::new(config).await.unwrap());
        let mut app = app(state);
        let key = "ab".repeat(32);
        let mut answer = async |method: &str, path: String| {
            let (status, headers, body) = send(&mut app, method, &path).await;
            (status, headers.get("x-recall-cache-status").cloned(), body)
        };
        let fast = answer("GET", format!("/v1/entries/p/d/{key}")).await;
        assert_eq!(fast.0, StatusCode::NOT_FOUND);
        assert_eq!(fast.1.as_ref().unwrap(), "CACHE_MISS");
        // "%70" is "p": only the router decodes it.
        let routed = answer("GET", format!("/v1/entries/%70/d/{key}")).await;
        assert_eq!(fast, routed);
        let bad_key = answer("GET", "/v1/entries/p/d/nothex".into()).await;
        let bad_key_routed = answer("GET", "/v1/entries/p/%64/nothex".into()).await;
        assert_eq!(bad_key.0, StatusCode::BAD_REQUEST);
        assert_eq!(bad_key, bad_key_routed);
        let bad_query = answer("GET", format!("/v1/entries/p/d/{key}?overwrit=1")).await;
        let bad_query_routed = answer("GET", format!("/v1/entries/p/%64/{key}?overwrit=1")).await;
        assert_eq!(bad_query.0, StatusCode::BAD_REQUEST);
        assert_eq!(bad_query, bad_query_routed);
        let skipped = answer("GET", format!("/v1/entries/p/d/{key}?overwrite=true")).await;
        assert_eq!(skipped.1.as_ref().unwrap(), "CACHE_SKIPPED");
        // Other methods on the path still get the router's 405, as JSON.
        let (status, _, body) = answer("DELETE", format!("/v1/entries/p/d/{key}")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(serde_json::from_slice::<JsonValue>(&body).is_ok());
    }

    #[tokio::test]
    async fn errors_axum_writes_itself_become_json_and_others_pass_through() {
        let (status, _, body) = through_json_errors("GET", "/text").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "fine"));

        // axum's own 405 has an empty body: the message names the method and path, and the
        // Allow header survives.
        let (status, headers, body) = through_json_errors("DELETE", "/text").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(headers.contains_key(header::ALLOW), "{headers:?}");
        let parsed: JsonValue = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["error"], "DELETE /text: Method Not Allowed");

        let (status, _, body) = through_json_errors("GET", "/plain-error").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let parsed: JsonValue = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, json!({ "error": "bad thing" }));

        let (status, _, body) = through_json_errors("GET", "/json-error").await;
        assert_eq!(status, StatusCode::CONFLICT);
        let parsed: JsonValue = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, json!({ "error": "already json" }));
    }

    #[test]
    fn openapi_paths_and_methods_equal_routes() {
        let doc: JsonValue = serde_json::from_str(ops::OPENAPI).expect("openapi.json is JSON");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if method != "parameters" {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(ROUTES.len(), routed.len(), "ROUTES lists a route twice");
        assert_eq!(documented, routed);
    }
}
