//! The hit answer, spliced from a manifest's memoized JSON (recall-api's view of it).

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use recall_api::{CacheStatus, ManifestView};
use recall_hot::HotManifest;
use recall_key::Digest;

/// The answer to a hit: `{"from_hot_tier", "key", "manifest", "status": "CACHE_HIT"}` and
/// `X-Recall-Cache-Status`. The manifest's JSON is serialized straight from the manifest
/// (recall-api's [`ManifestView`]) once per manifest held in memory and then reused, so a
/// hot hit costs no JSON work beyond copying bytes.
pub fn hit_response(key: &Digest, from_hot_tier: bool, manifest: &HotManifest) -> Response {
    let rendered = manifest.rendered(|m| {
        // Serializing borrowed strings and numbers into memory cannot fail.
        Bytes::from(serde_json::to_vec(&ManifestView::from(m)).unwrap_or_default())
    });
    let status = CacheStatus::CacheHit.as_str();
    let key = key.hex_bytes();
    let mut body = Vec::with_capacity(rendered.len() + key.len() + 96);
    body.extend_from_slice(b"{\"from_hot_tier\":");
    body.extend_from_slice(if from_hot_tier { b"true" } else { b"false" });
    body.extend_from_slice(b",\"key\":\"");
    body.extend_from_slice(&key);
    body.extend_from_slice(b"\",\"manifest\":");
    body.extend_from_slice(&rendered);
    body.extend_from_slice(b",\"status\":\"");
    body.extend_from_slice(status.as_bytes());
    body.extend_from_slice(b"\"}");
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-recall-cache-status", HeaderValue::from_static(status));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use recall_key::{KeyMaterial, ValueType};
    use recall_store::{Manifest, OutputRecord};
    use serde_json::{Value as JsonValue, json};

    #[tokio::test]
    async fn a_hit_answer_is_the_generic_json_and_is_rendered_once() {
        let mut m = KeyMaterial::new("p", "d", "wf.t", "1").unwrap();
        m.add_output("o", ValueType::String).unwrap();
        let key = m.derive().unwrap();
        let inline = bytes::Bytes::from_static(b"\"quoted\" \\ text");
        let manifest = Manifest {
            layout_version: 1,
            outputs: [("o".to_string(), OutputRecord::inline("string", inline))]
                .into_iter()
                .collect(),
            key: key.clone(),
            created_at_ms: 1,
            expires_at_ms: None,
            producer: "host/\u{1F600}".into(),
            nondeterminism: Vec::new(),
        };
        let hot = HotManifest::new(manifest.clone());
        for from_hot_tier in [false, true] {
            let response = hit_response(&key.key, from_hot_tier, &hot);
            assert_eq!(response.headers()["x-recall-cache-status"], "CACHE_HIT");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let parsed: JsonValue = serde_json::from_slice(&body).unwrap();
            let expected = json!({
                "from_hot_tier": from_hot_tier,
                "key": key.key.to_hex(),
                "manifest": serde_json::to_value(ManifestView::from(&manifest)).unwrap(),
                "status": "CACHE_HIT",
            });
            assert_eq!(parsed, expected);
        }
        // The rendering is memoized: a second call does not render again.
        let again = hot.rendered(|_| panic!("rendered twice"));
        assert!(!again.is_empty());
    }
}
