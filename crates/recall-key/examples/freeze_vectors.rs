//! Computes the `expected` part of new test vectors. This is how `tests/vectors/key-v1.json`
//! was made from its materials. It refuses to overwrite an existing vector file: frozen
//! vectors change only with a spec version bump.
//!
//! cargo run -p recall-key --example freeze_vectors -- MATERIALS.json OUT.json

use std::collections::BTreeMap;
use std::path::Path;

use recall_key::KeyMaterial;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Doc {
    spec_version: u32,
    description: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize, Serialize)]
struct Vector {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    material: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    material_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<Expected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Expected {
    key: String,
    signature_digest: String,
    inputs_digest: String,
    input_digests: BTreeMap<String, Option<String>>,
}

#[derive(Serialize)]
struct OutDoc {
    spec_version: u32,
    description: String,
    vectors: Vec<Vector>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, materials, out] = args.as_slice() else {
        anyhow::bail!("usage: freeze_vectors MATERIALS.json OUT.json");
    };
    if Path::new(out).exists() {
        anyhow::bail!("{out} exists; frozen vectors are never rewritten");
    }
    let base = Path::new(out).parent().unwrap_or(Path::new("."));
    let doc: Doc = serde_json::from_str(&std::fs::read_to_string(materials)?)?;
    let mut vectors = Vec::new();
    for mut v in doc.vectors {
        let text = match (&v.material, &v.material_text) {
            (Some(raw), None) => raw.get().to_string(),
            (None, Some(text)) => text.clone(),
            _ => anyhow::bail!(
                "vector {}: needs exactly one of material, material_text",
                v.name
            ),
        };
        let result = KeyMaterial::from_json(&text, base).and_then(|m| m.derive());
        match (&v.error, result) {
            (Some(_), Ok(_)) => anyhow::bail!("vector {}: expected an error, got a key", v.name),
            (Some(_), Err(_)) => {}
            (None, Err(e)) => anyhow::bail!("vector {}: {e}", v.name),
            (None, Ok(d)) => {
                v.expected = Some(Expected {
                    key: d.key.to_hex(),
                    signature_digest: d.signature_digest.to_hex(),
                    inputs_digest: d.inputs_digest.to_hex(),
                    input_digests: d
                        .inputs
                        .iter()
                        .map(|(n, i)| (n.clone(), i.digest.map(|d| d.to_hex())))
                        .collect(),
                });
            }
        }
        vectors.push(v);
    }
    let out_doc = OutDoc {
        spec_version: doc.spec_version,
        description: doc.description,
        vectors,
    };
    std::fs::write(out, serde_json::to_string_pretty(&out_doc)? + "\n")?;
    Ok(())
}
