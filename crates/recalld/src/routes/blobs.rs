//! `GET /v1/blobs/{project}/{domain}/{digest}`: an output's bytes, streamed and verified.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use recall_key::Digest;

use super::{Shared, authorized_tenant, error};
use crate::config::Access;

/// Streams a blob. Bytes are hashed as they go out; if the stored bytes do not match the
/// digest, the stream is cut off with an error before its end, so a client never receives a
/// complete body that is wrong.
pub async fn fetch_blob(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, domain, digest)): Path<(String, String, String)>,
) -> Response {
    let digest: Digest = match digest.parse() {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("digest: {e}")),
    };
    let tenant = match authorized_tenant(&state, &headers, &project, &domain, Access::Read) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let location = state.store().path(&tenant.blob(&digest));
    let got = match state.store().object_store().get(&location).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no blob {digest} in {project}/{domain}"),
            );
        }
        Err(e) => {
            state.metrics.backend_errors.inc();
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"));
        }
    };
    let size = got.meta.size;
    let metrics_state = state.clone();
    let mut hasher = Some(blake3::Hasher::new());
    let stream = got.into_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        metrics_state.metrics.bytes_out.inc_by(chunk.len() as u64);
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
            if h.count() == size {
                let done = hasher.take().map(|h| Digest::from(h.finalize()));
                if done != Some(digest) {
                    tracing::error!(%digest, "stored blob does not match its digest");
                    return Err(std::io::Error::other(
                        "stored blob does not match its digest",
                    ));
                }
            }
        }
        Ok::<_, std::io::Error>(chunk)
    });
    let mut response = Body::from_stream(stream).into_response();
    if let Ok(len) = HeaderValue::from_str(&size.to_string()) {
        response.headers_mut().insert(header::CONTENT_LENGTH, len);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}
