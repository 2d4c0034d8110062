//! Connect's unary protocol (connectrpc.com/docs/protocol) in front of recalld's gRPC
//! services, on the same port: a `POST /<package>.<Service>/<Method>` with `Content-Type:
//! application/proto` or `application/json` calls the same method of the same service
//! implementation as gRPC does ([`Unary`]: encoded message in, encoded message out),
//! and its answer becomes Connect's (the message, or Connect's JSON error body with the HTTP
//! status Connect assigns to the code). JSON is transcoded to and from protobuf with
//! prost-reflect over the services' descriptors, so each method is written once, for tonic.
//! Request bodies may be gzip-compressed; answers are not compressed. Streaming calls are not
//! served (Flyte's executor makes unary calls). gRPC requests on the port go to [`GrpcDoor`].
//!
//! No Connect server crate fits: connectrpc's Rust implementations are young and would bring a
//! second protobuf code generator; Connect unary is this small file.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::{Request, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};
use tonic::Code;
use tonic::metadata::MetadataMap;

use crate::auth::Auth;
use crate::config::Access;
use crate::grpc::{GrpcDoor, TokenRefusals, Unary};

/// Largest Connect request body accepted.
const MAX_BODY: usize = 64 << 20;

/// The Connect side of one listener (its gRPC calls handed to the [`GrpcDoor`]). Cheap to
/// clone; it is also the listener's service for [`crate::server`].
#[derive(Clone)]
pub struct Connect(Arc<ConnectParts>);

struct ConnectParts {
    grpc: GrpcDoor,
    unary: Arc<dyn Unary>,
    pool: Arc<DescriptorPool>,
    auth: Auth,
    refusals: TokenRefusals,
}

/// How a request's messages are encoded.
#[derive(Clone, Copy, PartialEq)]
enum Codec {
    Proto,
    Json,
}

impl Codec {
    fn content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }
}

impl Connect {
    /// Connect calls to `unary`, gRPC ones to `grpc` (which answers from the same table);
    /// `descriptor_set` (an encoded `FileDescriptorSet`) describes their
    /// messages; tokens are checked against `auth`'s, refusals recorded by `refusals`.
    pub fn new(
        grpc: GrpcDoor,
        unary: Arc<dyn Unary>,
        descriptor_set: &[u8],
        auth: Auth,
        refusals: TokenRefusals,
    ) -> anyhow::Result<Connect> {
        Ok(Connect(Arc::new(ConnectParts {
            grpc,
            unary,
            pool: Arc::new(DescriptorPool::decode(descriptor_set)?),
            auth,
            refusals,
        })))
    }

    /// Answers one request: gRPC ones (`Content-Type: application/grpc...`) go to the gRPC
    /// door, everything else is treated as Connect.
    pub async fn route(&self, request: Request<Body>) -> Response {
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if grpc {
            return self.0.grpc.clone().route(request).await;
        }
        match self.unary(request).await {
            Ok(response) => response,
            Err((code, message)) => error(code, &message),
        }
    }

    async fn unary(&self, request: Request<Body>) -> Result<Response, (Code, String)> {
        let (parts, body) = request.into_parts();
        if parts.method != hyper::Method::POST {
            return Err((Code::Unimplemented, "Connect unary calls are POSTs".into()));
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let codec = match content_type.split(';').next().unwrap_or("").trim() {
            "application/proto" => Codec::Proto,
            "application/json" => Codec::Json,
            other => {
                return Err((
                    Code::Unimplemented,
                    format!(
                        "Content-Type {other:?}: recalld answers application/proto, \
                         application/json (Connect unary) and application/grpc"
                    ),
                ));
            }
        };
        let gzip = match parts
            .headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes())
        {
            None | Some(b"identity") => false,
            Some(b"gzip") => true,
            Some(other) => {
                return Err((
                    Code::Unimplemented,
                    format!(
                        "Content-Encoding {:?}: recalld accepts gzip or identity",
                        String::from_utf8_lossy(other)
                    ),
                ));
            }
        };
        let method = self.method(parts.uri.path())?;
        // No body is read for a caller without a known token (the project and domain it may
        // touch are checked once the message names them).
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.0
            .auth
            .check_level(token, Access::Read)
            .map_err(|denied| {
                let status = crate::grpc::denied(denied);
                self.0.refusals.record(&status);
                (status.code(), status.message().to_string())
            })?;
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| (Code::InvalidArgument, format!("request body: {e}")))?;
        let body = if gzip { gunzip(&body)?.into() } else { body };
        let message = match codec {
            Codec::Proto => body,
            Codec::Json => {
                let mut json = serde_json::Deserializer::from_slice(&body);
                let message = DynamicMessage::deserialize(method.input(), &mut json)
                    .map_err(|e| (Code::InvalidArgument, format!("request JSON: {e}")))?;
                prost_reflect::prost::Message::encode_to_vec(&message).into()
            }
        };
        let metadata = MetadataMap::from_headers(parts.headers);
        let answer = self
            .0
            .unary
            .call(parts.uri.path(), metadata, message)
            .ok_or_else(|| {
                (
                    Code::Unimplemented,
                    format!("no method {:?}", parts.uri.path()),
                )
            })?
            .await
            .map_err(|status| (status.code(), status.message().to_string()))?;
        let body = match codec {
            Codec::Proto => answer,
            Codec::Json => {
                let message = DynamicMessage::decode(method.output(), answer.as_slice())
                    .map_err(|e| (Code::Internal, format!("answer: {e}")))?;
                let mut out = serde_json::Serializer::new(Vec::new());
                message
                    .serialize_with_options(&mut out, &SerializeOptions::new())
                    .map_err(|e| (Code::Internal, format!("answer JSON: {e}")))?;
                out.into_inner()
            }
        };
        Ok(([(header::CONTENT_TYPE, codec.content_type())], body).into_response())
    }

    /// The method a path names (`/<package>.<Service>/<Method>`).
    fn method(&self, path: &str) -> Result<MethodDescriptor, (Code, String)> {
        let unknown = || (Code::Unimplemented, format!("no method {path:?}"));
        let (service, method) = crate::grpc::split_path(path).ok_or_else(unknown)?;
        self.0
            .pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .ok_or_else(unknown)
    }
}

impl tower::Service<Request<Body>> for Connect {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let connect = self.clone();
        Box::pin(async move { Ok(connect.route(request).await) })
    }
}

/// The bytes a gzip body holds, at most [`MAX_BODY`] of them.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, (Code, String)> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| (Code::InvalidArgument, format!("gzip request body: {e}")))?;
    if out.len() > MAX_BODY {
        return Err((
            Code::ResourceExhausted,
            format!("request body: more than {MAX_BODY} bytes uncompressed"),
        ));
    }
    Ok(out)
}

/// Connect's error answer: its JSON body and the HTTP status its protocol assigns to `code`.
fn error(code: Code, message: &str) -> Response {
    let (status, name) = match code {
        Code::Cancelled => (499, "canceled"),
        Code::Unknown => (500, "unknown"),
        Code::InvalidArgument => (400, "invalid_argument"),
        Code::DeadlineExceeded => (504, "deadline_exceeded"),
        Code::NotFound => (404, "not_found"),
        Code::AlreadyExists => (409, "already_exists"),
        Code::PermissionDenied => (403, "permission_denied"),
        Code::ResourceExhausted => (429, "resource_exhausted"),
        Code::FailedPrecondition => (400, "failed_precondition"),
        Code::Aborted => (409, "aborted"),
        Code::OutOfRange => (400, "out_of_range"),
        Code::Unimplemented => (501, "unimplemented"),
        Code::Internal => (500, "internal"),
        Code::Unavailable => (503, "unavailable"),
        Code::DataLoss => (500, "data_loss"),
        Code::Unauthenticated => (401, "unauthenticated"),
        Code::Ok => (200, "ok"),
    };
    let body = serde_json::json!({ "code": name, "message": message });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_connects_http_statuses() {
        assert_eq!(error(Code::NotFound, "x").status(), 404);
        assert_eq!(error(Code::AlreadyExists, "x").status(), 409);
        assert_eq!(error(Code::Unauthenticated, "x").status(), 401);
        assert_eq!(error(Code::FailedPrecondition, "x").status(), 400);
    }
}
