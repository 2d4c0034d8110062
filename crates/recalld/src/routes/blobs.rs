//! `GET /v1/blobs/{project}/{domain}/{digest}`: an output's bytes, streamed and verified.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use recall_key::Digest;

use super::{Shared, authorized_tenant};
use crate::config::Access;
use crate::error::ApiError;

/// Streams a blob. Bytes are hashed as they go out; if the stored bytes do not match the
/// digest, the stream is cut off with an error before its end, so a client never receives a
/// complete body that is wrong.
pub async fn fetch_blob(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, digest)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let digest: Digest = digest
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("digest: {e}")))?;
    let tenant = authorized_tenant(&state, &headers, &project, &domain, Access::Read)?;
    let blob = state.cache.blob(&tenant, &digest).await?;
    let mut response = Body::from_stream(blob.chunks).into_response();
    if let Ok(len) = HeaderValue::from_str(&blob.size.to_string()) {
        response.headers_mut().insert(header::CONTENT_LENGTH, len);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}
