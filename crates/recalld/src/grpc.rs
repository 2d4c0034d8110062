//! Plumbing shared by recalld's gRPC front doors (Flyte's datacatalog, Flyte 2's
//! CacheService): each is a tonic service on its own listener, with gRPC health checking and
//! server reflection beside it, served by recalld's own connection handling
//! ([`crate::server`]: worker threads, connection limits, timeouts); each checks the same
//! bearer tokens as HTTP, taken from the `authorization` metadata, before a message is read.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::service::Routes;
use tonic::{Code, Status};

use crate::auth::{Auth, Denied};
use crate::config::Access;
use crate::error::ApiError;
use crate::metrics::{FlyteRefusalLabels, Metrics};

/// Binds a gRPC front door's listener (`what` names its setting in the error).
pub async fn bind(what: &str, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("{what} {address}: {e}"))
}

/// `routes` as one router with the gRPC health service (every name in `services` reported
/// SERVING, and the server as a whole, `""`) and server reflection over `descriptor_sets`
/// (encoded `FileDescriptorSet`s) beside them. recalld's connection handling
/// ([`crate::server`], HTTP/1.1 and HTTP/2) serves it.
pub async fn router(
    routes: Routes,
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
    Ok(routes
        .add_service(health)
        .add_service(reflection)
        .into_axum_router())
}

/// A tonic interceptor that refuses a call without a known bearer token before its message
/// is read or decoded, so that a client without a token cannot make recalld read a request
/// body. Which project and domain the token may touch is checked later, by each method,
/// once the message names them.
#[derive(Clone)]
pub struct RequireToken {
    auth: Auth,
    refusals: TokenRefusals,
}

impl RequireToken {
    /// The check against `auth`'s tokens (it lets everything through when none is set),
    /// each refusal logged and counted by `refusals`.
    pub fn new(auth: Auth, refusals: TokenRefusals) -> Self {
        RequireToken { auth, refusals }
    }
}

/// Logs and counts the calls one Flyte listener refuses for their token before reading them
/// (`recall_flyte_token_refusals_total`), so that a client sending no token, or the wrong
/// one, shows on recalld's side too.
#[derive(Clone)]
pub struct TokenRefusals {
    door: &'static str,
    metrics: Arc<Metrics>,
}

impl TokenRefusals {
    /// Refusals of the listener named `door` (`datacatalog`, `cacheservice`).
    pub fn new(door: &'static str, metrics: Arc<Metrics>) -> Self {
        TokenRefusals { door, metrics }
    }

    /// Records `status`, a refusal (`Unauthenticated` or `PermissionDenied`).
    pub fn record(&self, status: &Status) {
        let code = match status.code() {
            Code::Unauthenticated => "Unauthenticated",
            _ => "PermissionDenied",
        };
        tracing::info!(door = self.door, code, reason = %status.message(),
            "Flyte call refused before its message was read");
        self.metrics
            .flyte_token_refusals
            .get_or_create(&FlyteRefusalLabels {
                door: self.door,
                code,
            })
            .inc();
    }
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        authorize_level(&self.auth, request.metadata(), Access::Read)
            .inspect_err(|status| self.refusals.record(status))?;
        Ok(request)
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
pub fn code_name(code: Code) -> String {
    format!("{code:?}")
}
