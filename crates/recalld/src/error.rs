//! [`ApiError`]: why a request to recalld failed, whichever front door it came through.
//! The HTTP routes answer it with [`IntoResponse`]; other front doors map its variants to
//! their own codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use recall_api::FailureAnswer;
use recall_key::Digest;
use recall_store::StoreError;

use crate::auth::Denied;
use crate::routes::{error, with_status};
use crate::status::CacheStatus;

/// Why a request failed. Each variant's text is the message the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong (a field, a name, a value out of range): 400.
    #[error("{0}")]
    BadRequest(String),
    /// No such thing (a blob): 404.
    #[error("{0}")]
    NotFound(String),
    /// A part of the request is over its limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// The store cannot do this (leases without conditional writes): 501.
    #[error("{0}")]
    NotImplemented(String),
    /// The store failed, timed out or is not ready yet: 503.
    #[error("{0}")]
    Unavailable(String),
    /// A publish could not store the outputs: 503 with `CACHE_PUT_FAILURE`; the task's
    /// result is unaffected.
    #[error("{cause}")]
    PutFailure {
        /// The key of the entry that was being published.
        key: Digest,
        /// Why.
        cause: String,
    },
    /// The request's token was refused: 401 or 403.
    #[error("{}", denied_message(.0))]
    Denied(Denied),
}

/// What a refused caller is told.
fn denied_message(denied: &Denied) -> String {
    match denied {
        Denied::Unauthenticated => "missing or unknown bearer token".into(),
        Denied::Forbidden { token, reason } => format!("token {token:?}: {reason}"),
    }
}

impl From<StoreError> for ApiError {
    /// A bad name, lease argument or output set is the caller's error (400); anything else
    /// is the store's (503, `store: ...`).
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidName(_)
            | StoreError::InvalidLease { .. }
            | StoreError::OutputMismatch { .. } => ApiError::BadRequest(err.to_string()),
            other => ApiError::Unavailable(format!("store: {other}")),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        ApiError::Denied(denied)
    }
}

impl ApiError {
    /// Whether the caller's request is at fault (a 4xx), not the store.
    pub fn is_caller_error(&self) -> bool {
        self.status().is_client_error()
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) | ApiError::PutFailure { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Denied(Denied::Unauthenticated) => StatusCode::UNAUTHORIZED,
            ApiError::Denied(Denied::Forbidden { .. }) => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for ApiError {
    /// `{"error": message}`, or for a failed publish `{"key", "cause", "status":
    /// "CACHE_PUT_FAILURE"}` with `X-Recall-Cache-Status`.
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            ApiError::BadRequest(message)
            | ApiError::NotFound(message)
            | ApiError::TooLarge(message)
            | ApiError::NotImplemented(message)
            | ApiError::Unavailable(message) => error(status, message),
            ApiError::PutFailure { key, cause } => with_status(
                status,
                CacheStatus::CachePutFailure,
                &FailureAnswer {
                    cause,
                    key,
                    status: CacheStatus::CachePutFailure,
                },
            ),
            ApiError::Denied(denied) => {
                let mut r = error(status, denied_message(&denied));
                match denied {
                    Denied::Unauthenticated => {
                        r.headers_mut()
                            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    }
                    Denied::Forbidden { token, reason } => {
                        tracing::info!(token = %token, %reason, "request forbidden");
                    }
                }
                r
            }
        }
    }
}
