//! JSON views of store types.

use std::collections::BTreeMap;

use base64::Engine as _;
use recall_key::{DerivedKey, Digest};
use recall_store::{Manifest, Miss};
use serde::Serialize;
use serde_json::{Value as JsonValue, json};

use crate::status::CacheStatus;

/// The body of a hit, serialized straight from the manifest (no intermediate JSON tree: this
/// is the hot path). Same JSON as [`manifest_json`] inside `{"from_hot_tier", "key",
/// "manifest", "status"}`; fields are declared in alphabetical order like a `Value`'s.
#[derive(Serialize)]
pub struct HitBody<'a> {
    /// Whether memory answered.
    pub from_hot_tier: bool,
    /// The key, 64 hex.
    pub key: &'a Digest,
    /// The manifest.
    pub manifest: ManifestView<'a>,
    /// Always CACHE_HIT.
    pub status: CacheStatus,
}

/// A manifest as [`manifest_json`] shows it, borrowing from the manifest.
#[derive(Serialize)]
pub struct ManifestView<'a> {
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
    key: &'a DerivedKey,
    layout_version: u64,
    outputs: BTreeMap<&'a str, OutputView<'a>>,
    producer: &'a str,
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
        };
        let direct: JsonValue = serde_json::to_value(ManifestView::of(&manifest)).unwrap();
        assert_eq!(direct, manifest_json(&manifest));
    }
}
