//! Plumbing shared by recalld's gRPC front doors (Flyte's datacatalog, Flyte 2's
//! CacheService): each listener answers unary gRPC calls itself ([`GrpcDoor`]) from a table of
//! methods ([`Unary`], the same table Connect calls), with tonic's gRPC health checking and
//! server reflection beside it, served by recalld's own connection handling
//! ([`crate::server`]: worker threads, connection limits, timeouts); each checks the same
//! bearer tokens as HTTP, taken from the `authorization` metadata, before a message is read.
//!
//! Why not tonic's generated servers: a unary call through tonic's generic stack (its router,
//! codec and streaming body machinery) cost recalld a fifth more CPU per datacatalog hit than
//! the framing below, which is all a unary call needs (36 against 30 µs in an A/B run on the
//! benchmark machine). tonic still serves health and reflection, which stream.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes};
use futures::future::BoxFuture;
use http_body::Frame;
use hyper::{HeaderMap, Request, header};
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::service::Routes;
use tonic::{Code, Extensions, Status};
use tower::ServiceExt;

use crate::auth::{Auth, Denied};
use crate::config::Access;
use crate::error::ApiError;
use crate::metrics::{FlyteRefusalLabels, Metrics};

/// Largest request message a unary gRPC call may send (tonic's default limit).
pub const MAX_MESSAGE: usize = 4 << 20;

/// A service's unary methods, as gRPC and Connect both call them: by path, with the caller's
/// metadata and the encoded request message; the encoded answer.
pub trait Unary: Send + Sync + 'static {
    /// Calls the method at `path` (`/<package>.<Service>/<Method>`), or `None` when there is
    /// no such method.
    fn call(
        &self,
        path: &str,
        metadata: MetadataMap,
        message: Bytes,
    ) -> Option<BoxFuture<'_, Result<Vec<u8>, Status>>>;
}

/// Decodes `message` as the request of `method` (a generated service trait's method, or any
/// function of the same shape), calls it with `metadata`, and encodes its answer.
pub async fn call_unary<Req, Resp, Fut>(
    metadata: MetadataMap,
    message: Bytes,
    method: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Result<Vec<u8>, Status>
where
    Req: prost::Message + Default,
    Resp: prost::Message,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = Req::decode(message)
        .map_err(|e| Status::invalid_argument(format!("request message: {e}")))?;
    let request = tonic::Request::from_parts(metadata, Extensions::default(), request);
    Ok(method(request).await?.into_inner().encode_to_vec())
}

/// One gRPC listener's calls: a unary call to one of `services` is answered from the
/// [`Unary`] table; anything else (health checks, reflection) goes to tonic's routes. Cheap to
/// clone; it is also the listener's service for [`crate::server`].
#[derive(Clone)]
pub struct GrpcDoor(Arc<DoorParts>);

struct DoorParts {
    services: &'static [&'static str],
    unary: Arc<dyn Unary>,
    tonic: axum::Router,
    auth: Auth,
    refusals: TokenRefusals,
}

impl GrpcDoor {
    /// Calls to `services` (`package.Service` names) answered by `unary`, other calls by
    /// `tonic`; tokens checked against `auth`'s, refusals recorded by `refusals`.
    pub fn new(
        services: &'static [&'static str],
        unary: Arc<dyn Unary>,
        tonic: axum::Router,
        auth: Auth,
        refusals: TokenRefusals,
    ) -> Self {
        GrpcDoor(Arc::new(DoorParts {
            services,
            unary,
            tonic,
            auth,
            refusals,
        }))
    }

    /// Answers one request: a gRPC call (`Content-Type: application/grpc...`) to one of our
    /// services from the table, anything else by tonic.
    pub async fn route(self, request: Request<Body>) -> Response {
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        let ours = grpc
            && request.method() == hyper::Method::POST
            && split_path(request.uri().path()).is_some_and(|(s, _)| self.0.services.contains(&s));
        if !ours {
            return match self.0.tonic.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        match self.unary_call(request).await.and_then(answer) {
            Ok(response) => response,
            Err(status) => status.into_http(),
        }
    }

    /// The framed answer of one unary call, or why there is none.
    async fn unary_call(&self, request: Request<Body>) -> Result<Vec<u8>, Status> {
        let (parts, body) = request.into_parts();
        match parts.headers.get("grpc-encoding").map(|v| v.as_bytes()) {
            None | Some(b"identity") => {}
            Some(other) => {
                return Err(Status::unimplemented(format!(
                    "grpc-encoding {:?}: recalld takes uncompressed messages",
                    String::from_utf8_lossy(other)
                )));
            }
        }
        let path = parts.uri.path();
        let metadata = MetadataMap::from_headers(parts.headers);
        // No body is read for a caller without a known token (the project and domain it may
        // touch are checked once the message names them).
        authorize_level(&self.0.auth, &metadata, Access::Read)
            .inspect_err(|status| self.0.refusals.record(status))?;
        let body = axum::body::to_bytes(body, MAX_MESSAGE + 5)
            .await
            .map_err(|e| {
                if is_length_limit(&e) {
                    Status::resource_exhausted(format!(
                        "request message: more than {MAX_MESSAGE} bytes"
                    ))
                } else {
                    Status::cancelled(format!("request body: {e}"))
                }
            })?;
        let message = unframe(body)?;
        let call = self
            .0
            .unary
            .call(path, metadata, message)
            .ok_or_else(|| Status::unimplemented(format!("no method {path:?}")))?;
        call.await
    }
}

impl tower::Service<Request<Body>> for GrpcDoor {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let door = self.clone();
        Box::pin(async move { Ok(door.route(request).await) })
    }
}

/// The service (`package.Service`) and method of a gRPC or Connect path
/// (`/package.Service/Method`).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

/// Whether `error` is a body's length limit being reached.
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The one uncompressed message of a unary call's body: a 5-byte prefix (a zero flag byte, the
/// length as a big-endian u32), then exactly that many bytes.
fn unframe(mut body: Bytes) -> Result<Bytes, Status> {
    if body.len() < 5 {
        return Err(Status::internal(
            "request body: no gRPC message (a unary call sends exactly one)",
        ));
    }
    let prefix = body.split_to(5);
    if prefix[0] != 0 {
        return Err(Status::internal(
            "request message: marked compressed without a grpc-encoding",
        ));
    }
    let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if length != body.len() {
        return Err(Status::internal(format!(
            "request body: a message of {length} bytes announced, {} sent \
             (a unary call sends exactly one message)",
            body.len()
        )));
    }
    Ok(body)
}

/// A successful unary answer: `message` framed, then `grpc-status: 0` as the trailer.
fn answer(message: Vec<u8>) -> Result<Response, Status> {
    let length = u32::try_from(message.len()).map_err(|_| {
        Status::resource_exhausted(format!(
            "the answer is {} bytes, more than one gRPC message can hold",
            message.len()
        ))
    })?;
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(length);
    framed.extend_from_slice(&message);
    let mut response = Response::new(Body::new(UnaryBody {
        message: Some(Bytes::from(framed)),
        done: false,
    }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/grpc"),
    );
    Ok(response)
}

/// A unary answer's body: one message, then the OK status as trailers, then the end.
struct UnaryBody {
    message: Option<Bytes>,
    done: bool,
}

impl http_body::Body for UnaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        self.done = true;
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert("grpc-status", header::HeaderValue::from_static("0"));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// Binds a gRPC front door's listener (`what` names its setting in the error).
pub async fn bind(what: &str, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("{what} {address}: {e}"))
}

/// tonic's part of a gRPC listener, as a router: the gRPC health service (every name in
/// `services` reported SERVING, and the server as a whole, `""`) and server reflection over
/// `descriptor_sets` (encoded `FileDescriptorSet`s).
pub async fn health_and_reflection(
    services: &[&str],
    descriptor_sets: &[&[u8]],
) -> anyhow::Result<axum::Router> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in services {
        reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let mut reflection = tonic_reflection::server::Builder::configure();
    for set in descriptor_sets {
        reflection = reflection.register_encoded_file_descriptor_set(set);
    }
    let reflection = reflection.build_v1()?;
    Ok(Routes::new(health)
        .add_service(reflection)
        .into_axum_router())
}

/// Logs and counts the calls one Flyte listener refuses for their token before reading them
/// (`recall_flyte_token_refusals_total`), so that a client sending no token, or the wrong
/// one, shows on recalld's side too. Every refusal is counted; at most one is logged per
/// [`REFUSAL_LOG_INTERVAL`] per listener, with how many went unlogged since the last line, so
/// that a client hammering the listener without a token cannot flood the log.
#[derive(Clone)]
pub struct TokenRefusals {
    door: &'static str,
    metrics: Arc<Metrics>,
    log: Arc<RefusalLog>,
}

/// How often a listener logs a refused call at most.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// When a listener may log its next refusal, and how many it left unlogged.
struct RefusalLog {
    started: Instant,
    /// Milliseconds since `started` before which refusals are only counted.
    quiet_until_ms: AtomicU64,
    unlogged: AtomicU64,
}

impl RefusalLog {
    /// `Some(refusals left unlogged before this one)` when this refusal is to be logged.
    fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let quiet_until = self.quiet_until_ms.load(Ordering::Relaxed);
        let next = now.saturating_add(REFUSAL_LOG_INTERVAL.as_millis() as u64);
        if now >= quiet_until
            && self
                .quiet_until_ms
                .compare_exchange(quiet_until, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.unlogged.swap(0, Ordering::Relaxed));
        }
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl TokenRefusals {
    /// Refusals of the listener named `door` (`datacatalog`, `cacheservice`).
    pub fn new(door: &'static str, metrics: Arc<Metrics>) -> Self {
        TokenRefusals {
            door,
            metrics,
            log: Arc::new(RefusalLog {
                started: Instant::now(),
                quiet_until_ms: AtomicU64::new(0),
                unlogged: AtomicU64::new(0),
            }),
        }
    }

    /// Records `status`, a refusal (`Unauthenticated` or `PermissionDenied`).
    pub fn record(&self, status: &Status) {
        let code = match status.code() {
            Code::Unauthenticated => "Unauthenticated",
            _ => "PermissionDenied",
        };
        if let Some(unlogged) = self.log.admit() {
            tracing::info!(door = self.door, code, reason = %status.message(),
                unlogged_since_last_line = unlogged,
                "Flyte call refused before its message was read \
                 (at most one such line per listener every 10 s; recall_flyte_token_refusals_total counts all)");
        }
        self.metrics
            .flyte_token_refusals
            .get_or_create(&FlyteRefusalLabels {
                door: self.door,
                code,
            })
            .inc();
    }
}

/// Checks the bearer token in `metadata`'s `authorization` entry for a request on
/// `project`/`domain` that needs `need`: no or an unknown token is `Unauthenticated`, a token
/// without the scope `PermissionDenied`, as HTTP's 401 and 403.
pub fn authorize(
    auth: &Auth,
    metadata: &MetadataMap,
    project: &str,
    domain: &str,
    need: Access,
) -> Result<(), Status> {
    let header = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    auth.check(header, Some(project), Some(domain), need)
        .map_err(denied)
}

/// Checks only that `metadata` presents a token with at least `need` access somewhere (for
/// listings, which then leave out what the token may not read).
pub fn authorize_level(auth: &Auth, metadata: &MetadataMap, need: Access) -> Result<(), Status> {
    let header = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    auth.check_level(header, need).map_err(denied)
}

/// An [`ApiError`] as a gRPC status: the code gRPC has for each HTTP answer.
pub fn status_of(err: ApiError) -> Status {
    match err {
        ApiError::BadRequest(m) => Status::invalid_argument(m),
        ApiError::NotFound(m) => Status::not_found(m),
        ApiError::TooLarge(m) => Status::resource_exhausted(m),
        ApiError::NotImplemented(m) => Status::unimplemented(m),
        ApiError::Unavailable(m) => Status::unavailable(m),
        err @ ApiError::PutFailure { .. } => Status::unavailable(err.to_string()),
        ApiError::Denied(d) => denied(d),
    }
}

/// A refused token as a gRPC status: `Unauthenticated` or `PermissionDenied`.
pub fn denied(denied: Denied) -> Status {
    match denied {
        Denied::Unauthenticated => {
            Status::unauthenticated("missing or unknown bearer token in `authorization`")
        }
        Denied::Forbidden { token, reason } => {
            Status::permission_denied(format!("token {token:?}: {reason}"))
        }
    }
}

/// The name of a status code as metrics label it (`Ok`, `NotFound`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, length: u32, message: &[u8]) -> Bytes {
        let mut body = vec![flag];
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(message);
        Bytes::from(body)
    }

    #[test]
    fn a_unary_body_is_exactly_one_uncompressed_message() {
        assert_eq!(unframe(framed(0, 3, b"abc")).unwrap(), &b"abc"[..]);
        assert_eq!(unframe(framed(0, 0, b"")).unwrap(), &b""[..]);
        for (body, why) in [
            (Bytes::from_static(b""), "no gRPC message"),
            (Bytes::from_static(b"\0\0\0"), "no gRPC message"),
            (framed(1, 3, b"abc"), "marked compressed"),
            (framed(0, 4, b"abc"), "4 bytes announced, 3 sent"),
            (framed(0, 2, b"abc"), "2 bytes announced, 3 sent"),
        ] {
            let status = unframe(body).unwrap_err();
            assert_eq!(status.code(), Code::Internal);
            assert!(status.message().contains(why), "{:?}", status.message());
        }
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_interval_and_the_rest_counted() {
        let log = RefusalLog {
            started: Instant::now(),
            quiet_until_ms: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        };
        assert_eq!(log.admit(), Some(0), "the first refusal is logged");
        for _ in 0..5 {
            assert_eq!(log.admit(), None, "within the interval: counted only");
        }
        // Once the interval has passed, the next line says how many went unlogged.
        log.quiet_until_ms.store(0, Ordering::Relaxed);
        assert_eq!(log.admit(), Some(5));
        assert_eq!(log.admit(), None);
    }

    #[test]
    fn every_code_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> =
            (0..17).map(|n| code_name(Code::from_i32(n))).collect();
        assert_eq!(names.len(), 17);
        assert_eq!(code_name(Code::NotFound), format!("{:?}", Code::NotFound));
    }
}
