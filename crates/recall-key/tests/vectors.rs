//! Recomputes every frozen vector in tests/vectors/key-v1.json (docs/KEY-SPEC.md section 10).

use std::collections::BTreeMap;
use std::path::PathBuf;

use recall_key::KeyMaterial;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Doc {
    spec_version: u32,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    material: Option<Box<RawValue>>,
    material_text: Option<String>,
    expected: Option<Expected>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Expected {
    key: String,
    signature_digest: String,
    inputs_digest: String,
    input_digests: BTreeMap<String, Option<String>>,
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn load() -> Doc {
    let text = std::fs::read_to_string(vectors_dir().join("key-v1.json")).expect("read vectors");
    serde_json::from_str(&text).expect("parse vectors")
}

#[test]
fn every_frozen_vector_is_reproduced() {
    let doc = load();
    assert_eq!(doc.spec_version, recall_key::SPEC_VERSION);
    let (mut keys, mut errors) = (0, 0);
    for v in &doc.vectors {
        let text = match (&v.material, &v.material_text) {
            (Some(raw), None) => raw.get().to_string(),
            (None, Some(text)) => text.clone(),
            _ => panic!(
                "vector {}: needs exactly one of material, material_text",
                v.name
            ),
        };
        let result = KeyMaterial::from_json(&text, &vectors_dir()).and_then(|m| m.derive());
        match (&v.expected, &v.error, result) {
            (Some(want), None, Ok(got)) => {
                assert_eq!(got.key.to_hex(), want.key, "vector {}: key", v.name);
                assert_eq!(
                    got.signature_digest.to_hex(),
                    want.signature_digest,
                    "vector {}",
                    v.name
                );
                assert_eq!(
                    got.inputs_digest.to_hex(),
                    want.inputs_digest,
                    "vector {}",
                    v.name
                );
                let digests: BTreeMap<_, _> = got
                    .inputs
                    .iter()
                    .map(|(n, i)| (n.clone(), i.digest.map(|d| d.to_hex())))
                    .collect();
                assert_eq!(
                    digests, want.input_digests,
                    "vector {}: input digests",
                    v.name
                );
                keys += 1;
            }
            (None, Some(_), Err(_)) => errors += 1,
            (_, _, Ok(got)) => panic!("vector {}: unexpected key {}", v.name, got.key),
            (_, _, Err(e)) => panic!("vector {}: unexpected error {e}", v.name),
        }
    }
    assert!(keys >= 30, "only {keys} key vectors");
    assert!(errors >= 10, "only {errors} error vectors");
}

/// The vectors also pin the rules: pairs that must agree, and pairs that must differ.
#[test]
fn vectors_show_the_rules() {
    let doc = load();
    let key = |name: &str| {
        doc.vectors
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.expected.as_ref())
            .map(|e| e.key.clone())
            .unwrap_or_else(|| panic!("no vector {name}"))
    };
    let same = [
        ("datetime-utc", "datetime-offset-same-instant"),
        ("duration-nanos-integer", "duration-short-form"),
        ("duration-short-form", "duration-iso-form"),
        ("ignored-input", "ignored-input-other-value"),
        ("ignored-input", "ignored-input-no-value"),
        ("supplied-hash", "supplied-hash-uppercase"),
        (
            "many-inputs-declared-in-reverse",
            "many-inputs-declared-in-order",
        ),
        ("baseline-n-3", "cache-version-trimmed"),
    ];
    for (a, b) in same {
        assert_eq!(key(a), key(b), "{a} and {b} must give the same key");
    }
    let differ = [
        ("float-zero", "float-negative-zero"),
        ("string-nfc", "string-nfd"),
        ("cache-version-trimmed", "cache-version-other"),
        ("baseline-n-3", "salt"),
        ("baseline-n-3", "cache-version-other"),
        ("baseline-n-3", "other-project"),
        ("baseline-n-3", "other-domain"),
        ("baseline-n-3", "one-int"),
        ("output-retyped", "one-int"),
        ("list-empty", "map-empty"),
        ("optional-null", "optional-present"),
    ];
    for (a, b) in differ {
        assert_ne!(key(a), key(b), "{a} and {b} must give different keys");
    }
}
