//! JSON views of store types.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use recall_hot::HotManifest;
use recall_store::{Manifest, Miss};
use serde_json::{Value as JsonValue, json};

use crate::status::CacheStatus;

/// The answer to a hit: `{"from_hot_tier", "key", "manifest", "status": "CACHE_HIT"}` (the
/// keys in the order serde_json writes any other body) and `X-Recall-Cache-Status`. The
/// manifest's JSON is rendered once per manifest held in memory and then reused, so a hot
/// hit costs no JSON building.
pub fn hit_response(key: &str, from_hot_tier: bool, manifest: &HotManifest) -> Response {
    let rendered = manifest.rendered(|m| {
        // Rendering a JSON value into memory cannot fail.
        Bytes::from(serde_json::to_vec(&manifest_json(m)).unwrap_or_default())
    });
    let status = CacheStatus::CacheHit.as_str();
    let mut body = Vec::with_capacity(rendered.len() + key.len() + 96);
    body.extend_from_slice(b"{\"from_hot_tier\":");
    body.extend_from_slice(if from_hot_tier { b"true" } else { b"false" });
    body.extend_from_slice(b",\"key\":\"");
    body.extend_from_slice(key.as_bytes());
    body.extend_from_slice(b"\",\"manifest\":");
    body.extend_from_slice(&rendered);
    body.extend_from_slice(b",\"status\":\"");
    body.extend_from_slice(status.as_bytes());
    body.extend_from_slice(b"\"}");
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-recall-cache-status", HeaderValue::from_static(status));
    response
}

/// A manifest as JSON: the key-spec components, and each output's type, size, digest and
/// (when inlined) its bytes in standard base64.
pub fn manifest_json(manifest: &Manifest) -> JsonValue {
    let outputs: serde_json::Map<String, JsonValue> = manifest
        .outputs
        .iter()
        .map(|(name, record)| {
            let mut out = json!({
                "type": record.ty,
                "size": record.size,
                "digest": record.digest.to_hex(),
            });
            if let Some(bytes) = &record.inline {
                out["inline_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            (name.clone(), out)
        })
        .collect();
    json!({
        "layout_version": manifest.layout_version,
        "key": manifest.key,
        "outputs": outputs,
        "created_at_ms": manifest.created_at_ms,
        "expires_at_ms": manifest.expires_at_ms,
        "producer": manifest.producer,
    })
}

/// Why a lookup missed, as JSON.
pub fn miss_json(miss: &Miss) -> JsonValue {
    match miss {
        Miss::NotFound => json!({ "reason": "not_found" }),
        Miss::Expired { created_at_ms } => {
            json!({ "reason": "expired", "created_at_ms": created_at_ms })
        }
        Miss::Undecodable { reason } => json!({ "reason": "undecodable", "detail": reason }),
        Miss::Broken { output, reason } => {
            json!({ "reason": "broken", "output": output, "detail": reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use recall_key::{InputSource, KeyMaterial, Value, ValueType};
    use recall_store::OutputRecord;

    use super::*;

    #[tokio::test]
    async fn a_hit_body_is_the_json_the_generic_path_would_write() {
        let mut material = KeyMaterial::new("p", "d", "wf.t", "1").unwrap();
        material
            .add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))
            .unwrap();
        material.add_output("o", ValueType::String).unwrap();
        let key = material.derive().unwrap();
        let inline = Bytes::from_static(b"\"quoted\" \\ text");
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "o".to_owned(),
            OutputRecord {
                ty: "string".into(),
                size: inline.len() as u64,
                digest: recall_key::Digest::of_content(&inline),
                inline: Some(inline),
            },
        );
        let manifest = Manifest {
            layout_version: 1,
            key: key.clone(),
            outputs,
            created_at_ms: 1,
            expires_at_ms: None,
            producer: "host/\u{1F600}".into(),
        };
        let hot = HotManifest::new(manifest.clone());
        for from_hot_tier in [false, true] {
            let response = hit_response(&key.key.to_hex(), from_hot_tier, &hot);
            assert_eq!(response.headers()["x-recall-cache-status"], "CACHE_HIT");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let expected = json!({
                "from_hot_tier": from_hot_tier,
                "key": key.key.to_hex(),
                "manifest": manifest_json(&manifest),
                "status": "CACHE_HIT",
            });
            assert_eq!(body, serde_json::to_vec(&expected).unwrap());
        }
    }
}
