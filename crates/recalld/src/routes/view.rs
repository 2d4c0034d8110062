//! JSON views of store types.

use base64::Engine as _;
use recall_store::{Manifest, Miss};
use serde_json::{Value as JsonValue, json};

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
