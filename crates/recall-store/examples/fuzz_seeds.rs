//! Writes the seed corpus under `fuzz/corpus/`: key material JSON from the frozen vectors,
//! manifests and lease objects as recall writes them. Run from the repository root:
//!
//!     cargo run -p recall-store --example fuzz_seeds
//!
//! The fuzz targets (`fuzz/`) and the corpus replay test (`tests/fuzz_corpus.rs`) read it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use recall_key::{Digest, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{LeaseRecord, Manifest, OutputRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("fuzz/corpus");
    for dir in ["key_material", "manifest", "lease"] {
        fs::create_dir_all(root.join(dir))?;
    }

    let vectors: serde_json::Value =
        serde_json::from_str(&fs::read_to_string("tests/vectors/key-v1.json")?)?;
    let mut written = 0;
    for vector in vectors["vectors"].as_array().into_iter().flatten() {
        let (Some(name), Some(material)) = (vector["name"].as_str(), vector.get("material")) else {
            continue;
        };
        let text = match material {
            serde_json::Value::String(raw) => raw.clone(),
            other => serde_json::to_string_pretty(other)?,
        };
        fs::write(root.join("key_material").join(format!("{name}.json")), text)?;
        written += 1;
    }

    let mut material = KeyMaterial::new("flytesnacks", "development", "wf.train", "1.0")?;
    material.add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))?;
    material.add_input("seed", ValueType::Int, InputSource::Ignored)?;
    material.add_output("model", ValueType::File)?;
    material.add_output("score", ValueType::Float)?;
    let key = material.derive()?;
    let score = Bytes::from_static(b"0.93");
    let mut outputs = BTreeMap::new();
    outputs.insert(
        "model".to_owned(),
        OutputRecord {
            ty: "file".into(),
            size: 10 << 20,
            digest: Digest::of_content(b"model bytes"),
            inline: None,
        },
    );
    outputs.insert("score".to_owned(), OutputRecord::inline("float", score));
    let manifest = Manifest {
        layout_version: recall_store::LAYOUT_VERSION,
        key,
        outputs,
        created_at_ms: 1_764_000_000_000,
        expires_at_ms: Some(1_764_086_400_000),
        producer: "fuzz-seed".into(),
        nondeterminism: Vec::new(),
    };
    fs::write(root.join("manifest/two-outputs.cbor"), manifest.encode())?;
    let bare = Manifest {
        outputs: BTreeMap::new(),
        expires_at_ms: None,
        ..manifest
    };
    fs::write(root.join("manifest/no-outputs.cbor"), bare.encode())?;

    for (name, released) in [("held", false), ("released", true)] {
        let lease = LeaseRecord {
            owner: format!("worker-{name}"),
            released,
            acquired_at_ms: 1_764_000_000_000,
            renewed_at_ms: 1_764_000_010_000,
            heartbeat_ms: 10_000,
            expires_at_ms: 1_764_000_040_000,
        };
        fs::write(root.join(format!("lease/{name}.cbor")), lease.encode())?;
    }
    println!(
        "wrote {written} key materials, 2 manifests, 2 leases under {}",
        root.display()
    );
    Ok(())
}
