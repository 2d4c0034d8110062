//! JSON views of store types.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use recall_hot::HotManifest;
use recall_key::{DerivedKey, Digest};
use recall_store::{Manifest, Miss, NondeterminismRecord};
use serde::Serialize;
use serde_json::{Value as JsonValue, json};

use crate::status::CacheStatus;

/// The answer to a hit: `{"from_hot_tier", "key", "manifest", "status": "CACHE_HIT"}` and
/// `X-Recall-Cache-Status`. The manifest's JSON is serialized straight from the manifest
/// ([`ManifestView`], no intermediate tree) once per manifest held in memory and then
/// reused, so a hot hit costs no JSON work beyond copying bytes.
pub fn hit_response(key: &Digest, from_hot_tier: bool, manifest: &HotManifest) -> Response {
    let rendered = manifest.rendered(|m| {
        // Serializing borrowed strings and numbers into memory cannot fail.
        Bytes::from(serde_json::to_vec(&ManifestView::of(m)).unwrap_or_default())
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

/// A manifest as [`manifest_json`] shows it, borrowing from the manifest.
#[derive(Serialize)]
pub struct ManifestView<'a> {
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
    key: &'a DerivedKey,
    layout_version: u64,
    nondeterminism: Vec<RecordView<'a>>,
    outputs: BTreeMap<&'a str, OutputView<'a>>,
    producer: &'a str,
}

/// One nondeterminism record as [`nondeterminism_json`] shows it.
#[derive(Serialize)]
pub struct RecordView<'a> {
    observed_at_ms: i64,
    outcome: &'static str,
    outputs: BTreeMap<&'a str, ChangeView<'a>>,
    producer: &'a str,
}

#[derive(Serialize)]
struct ChangeView<'a> {
    current: &'a Digest,
    previous: &'a Digest,
}

impl<'a> RecordView<'a> {
    /// Borrows `record` for serialization.
    pub fn of(record: &'a NondeterminismRecord) -> Self {
        RecordView {
            observed_at_ms: record.observed_at_ms,
            outcome: record.outcome.as_str(),
            outputs: record
                .outputs
                .iter()
                .map(|(name, change)| {
                    (
                        name.as_str(),
                        ChangeView {
                            current: &change.current,
                            previous: &change.previous,
                        },
                    )
                })
                .collect(),
            producer: &record.producer,
        }
    }
}

#[derive(Serialize)]
struct OutputView<'a> {
    digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_base64: Option<String>,
    size: u64,
    #[serde(rename = "type")]
    ty: &'a str,
}

impl<'a> ManifestView<'a> {
    /// Borrows `manifest` for serialization.
    pub fn of(manifest: &'a Manifest) -> Self {
        ManifestView {
            created_at_ms: manifest.created_at_ms,
            expires_at_ms: manifest.expires_at_ms,
            key: &manifest.key,
            layout_version: manifest.layout_version,
            nondeterminism: manifest.nondeterminism.iter().map(RecordView::of).collect(),
            outputs: manifest
                .outputs
                .iter()
                .map(|(name, record)| {
                    (
                        name.as_str(),
                        OutputView {
                            digest: &record.digest,
                            inline_base64: record
                                .inline
                                .as_ref()
                                .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
                            size: record.size,
                            ty: &record.ty,
                        },
                    )
                })
                .collect(),
            producer: &manifest.producer,
        }
    }
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
        "nondeterminism": manifest
            .nondeterminism
            .iter()
            .map(NondeterminismRecord::to_json)
            .collect::<Vec<_>>(),
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
    use super::*;
    use recall_key::{InputSource, KeyMaterial, Value, ValueType};
    use recall_store::OutputRecord;

    #[test]
    fn the_direct_view_is_the_same_json_as_the_tree() {
        let mut m = KeyMaterial::new("p", "d", "wf.t", "1").unwrap();
        m.add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))
            .unwrap();
        m.add_output("small", ValueType::Int).unwrap();
        m.add_output("big", ValueType::File).unwrap();
        let key = m.derive().unwrap();
        let record = |inline: Option<&[u8]>, size| OutputRecord {
            ty: "int".into(),
            size,
            digest: Digest::of_content(b"x"),
            inline: inline.map(bytes::Bytes::copy_from_slice),
        };
        let manifest = Manifest {
            layout_version: 1,
            outputs: [
                ("small".to_string(), record(Some(b"\x09"), 1)),
                ("big".to_string(), record(None, 9000)),
            ]
            .into_iter()
            .collect(),
            key,
            created_at_ms: 1,
            expires_at_ms: Some(2),
            producer: "host/1".into(),
            nondeterminism: vec![NondeterminismRecord {
                observed_at_ms: 3,
                producer: "host/2".into(),
                outcome: recall_store::NondeterminismOutcome::Discarded,
                outputs: [(
                    "big".to_string(),
                    recall_store::DigestChange {
                        previous: Digest::of_content(b"x"),
                        current: Digest::of_content(b"y"),
                    },
                )]
                .into_iter()
                .collect(),
            }],
        };
        let direct: JsonValue = serde_json::to_value(ManifestView::of(&manifest)).unwrap();
        assert_eq!(direct, manifest_json(&manifest));
    }

    #[tokio::test]
    async fn a_hit_answer_is_the_generic_json_and_is_rendered_once() {
        let mut m = KeyMaterial::new("p", "d", "wf.t", "1").unwrap();
        m.add_output("o", ValueType::String).unwrap();
        let key = m.derive().unwrap();
        let inline = bytes::Bytes::from_static(b"\"quoted\" \\ text");
        let manifest = Manifest {
            layout_version: 1,
            outputs: [(
                "o".to_string(),
                OutputRecord {
                    ty: "string".into(),
                    size: inline.len() as u64,
                    digest: Digest::of_content(&inline),
                    inline: Some(inline),
                },
            )]
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
                "manifest": manifest_json(&manifest),
                "status": "CACHE_HIT",
            });
            assert_eq!(parsed, expected);
        }
        // The rendering is memoized: a second call does not render again.
        let again = hot.rendered(|_| panic!("rendered twice"));
        assert!(!again.is_empty());
    }
}
