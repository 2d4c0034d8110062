//! The manifest: one deterministic-CBOR object per cache entry (docs/LAYOUT.md section 4).

use std::collections::BTreeMap;

use bytes::Bytes;
use ciborium::Value;
use recall_key::cbor::{Item, encode};
use recall_key::{DerivedKey, Digest, DigestSource, validate_name};

use crate::layout::LAYOUT_VERSION;

/// One output as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The output's declared type (canonical key-spec text).
    pub ty: String,
    /// Size of the output's bytes.
    pub size: u64,
    /// Plain BLAKE3 digest of the output's bytes; also its blob name when not inline.
    pub digest: Digest,
    /// The bytes themselves when the output is small enough to be inlined.
    pub inline: Option<Bytes>,
}

/// Everything one cache entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The layout version the manifest was written under.
    pub layout_version: u64,
    /// The key and every component it was derived from (key spec section 7.5).
    pub key: DerivedKey,
    /// The outputs, by name.
    pub outputs: BTreeMap<String, OutputRecord>,
    /// When the entry was published, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When the entry stops being a hit, milliseconds since the Unix epoch, if ever.
    pub expires_at_ms: Option<i64>,
    /// Who published the entry (free text: host, process, execution id).
    pub producer: String,
}

/// Why bytes are not a manifest this version can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable manifest: {0}")]
pub struct ManifestError(pub String);

fn bad(reason: impl Into<String>) -> ManifestError {
    ManifestError(reason.into())
}

impl Manifest {
    /// The deterministic CBOR encoding stored at the entry's path.
    pub fn encode(&self) -> Vec<u8> {
        // Every map here has distinct keys by construction (BTreeMap keys, fixed field names),
        // so the encoder's duplicate-key error cannot occur; an empty vector would fail to
        // decode rather than be silently wrong.
        encode(&self.to_item()).unwrap_or_default()
    }

    /// The manifest as a CBOR data item.
    pub fn to_item(&self) -> Item {
        let outputs = self
            .outputs
            .iter()
            .map(|(name, record)| {
                let mut fields = vec![
                    ("type".to_string(), Item::text(&record.ty)),
                    ("size".to_string(), Item::Int(record.size.into())),
                    ("digest".to_string(), Item::text(record.digest.to_hex())),
                ];
                if let Some(inline) = &record.inline {
                    fields.push(("inline".to_string(), Item::bytes(inline.to_vec())));
                }
                (name.clone(), Item::Map(fields))
            })
            .collect();
        Item::Map(vec![
            (
                "layout_version".into(),
                Item::Int(self.layout_version.into()),
            ),
            ("key".into(), key_item(&self.key)),
            ("outputs".into(), Item::Map(outputs)),
            ("created_at_ms".into(), Item::Int(self.created_at_ms.into())),
            (
                "expires_at_ms".into(),
                self.expires_at_ms
                    .map_or(Item::Null, |t| Item::Int(t.into())),
            ),
            ("producer".into(), Item::text(&self.producer)),
        ])
    }

    /// Decodes and checks a manifest. Unknown map fields are ignored (forward compatibility);
    /// a missing or mistyped field, another layout version, or a name that breaks the name
    /// rules is an error.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: Value =
            ciborium::from_reader(bytes).map_err(|e| bad(format!("not CBOR: {e}")))?;
        let fields = as_map(&value, "manifest")?;
        let layout_version = as_u64(field(fields, "layout_version")?, "layout_version")?;
        if layout_version != LAYOUT_VERSION {
            return Err(bad(format!(
                "layout_version {layout_version}, this reader knows {LAYOUT_VERSION}"
            )));
        }
        let key: DerivedKey = field(fields, "key")?
            .deserialized()
            .map_err(|e| bad(format!("key: {e}")))?;
        for (what, name) in [
            ("project", &key.project),
            ("domain", &key.domain),
            ("task", &key.task),
            ("cache_version", &key.cache_version),
        ] {
            validate_name(what, name).map_err(|e| bad(e.to_string()))?;
        }
        let mut outputs = BTreeMap::new();
        for (name, record) in as_map(field(fields, "outputs")?, "outputs")? {
            let name = name
                .as_text()
                .ok_or_else(|| bad("outputs: a key is not text"))?
                .to_string();
            validate_name("output name", &name).map_err(|e| bad(e.to_string()))?;
            outputs.insert(name.clone(), decode_output(&name, record)?);
        }
        let created_at_ms = as_i64(field(fields, "created_at_ms")?, "created_at_ms")?;
        let expires_at_ms = match field(fields, "expires_at_ms")? {
            Value::Null => None,
            other => Some(as_i64(other, "expires_at_ms")?),
        };
        let producer = field(fields, "producer")?
            .as_text()
            .ok_or_else(|| bad("producer is not text"))?
            .to_string();
        Ok(Manifest {
            layout_version,
            key,
            outputs,
            created_at_ms,
            expires_at_ms,
            producer,
        })
    }
}

fn decode_output(name: &str, record: &Value) -> Result<OutputRecord, ManifestError> {
    let what = |f: &str| format!("outputs.{name}.{f}");
    let fields = as_map(record, &format!("outputs.{name}"))?;
    let get = |f: &str| field(fields, f).map_err(|_| bad(format!("{} is missing", what(f))));
    let ty = get("type")?
        .as_text()
        .ok_or_else(|| bad(format!("{} is not text", what("type"))))?
        .to_string();
    let size = as_u64(get("size")?, &what("size"))?;
    let digest_text = get("digest")?
        .as_text()
        .ok_or_else(|| bad(format!("{} is not text", what("digest"))))?;
    let digest: Digest = digest_text
        .parse()
        .map_err(|e| bad(format!("{}: {e}", what("digest"))))?;
    let inline = match fields.iter().find(|(k, _)| k.as_text() == Some("inline")) {
        None => None,
        Some((_, value)) => {
            Some(Bytes::copy_from_slice(value.as_bytes().ok_or_else(
                || bad(format!("{} is not a byte string", what("inline"))),
            )?))
        }
    };
    Ok(OutputRecord {
        ty,
        size,
        digest,
        inline,
    })
}

fn as_map<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<(Value, Value)>, ManifestError> {
    value
        .as_map()
        .ok_or_else(|| bad(format!("{what} is not a map")))
}

fn field<'a>(fields: &'a [(Value, Value)], name: &str) -> Result<&'a Value, ManifestError> {
    fields
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
        .ok_or_else(|| bad(format!("field {name} is missing")))
}

fn as_u64(value: &Value, what: &str) -> Result<u64, ManifestError> {
    value
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| bad(format!("{what} is not a non-negative integer")))
}

fn as_i64(value: &Value, what: &str) -> Result<i64, ManifestError> {
    value
        .as_integer()
        .and_then(|i| i64::try_from(i).ok())
        .ok_or_else(|| bad(format!("{what} is not a 64-bit integer")))
}

/// The key-spec section 7.5 object as a CBOR map (digests as lowercase hex text).
fn key_item(key: &DerivedKey) -> Item {
    let inputs = key
        .inputs
        .iter()
        .map(|(name, input)| {
            let source = match input.source {
                DigestSource::Value => "value",
                DigestSource::Supplied => "supplied",
                DigestSource::Ignored => "ignored",
            };
            (
                name.clone(),
                Item::Map(vec![
                    ("type".into(), Item::text(input.ty.to_string())),
                    (
                        "digest".into(),
                        input.digest.map_or(Item::Null, |d| Item::text(d.to_hex())),
                    ),
                    ("source".into(), Item::text(source)),
                ]),
            )
        })
        .collect();
    let outputs = key
        .outputs
        .iter()
        .map(|(name, ty)| (name.clone(), Item::text(ty.to_string())))
        .collect();
    Item::Map(vec![
        ("spec_version".into(), Item::Int(key.spec_version.into())),
        ("key".into(), Item::text(key.key.to_hex())),
        ("project".into(), Item::text(&key.project)),
        ("domain".into(), Item::text(&key.domain)),
        ("task".into(), Item::text(&key.task)),
        ("cache_version".into(), Item::text(&key.cache_version)),
        (
            "salt".into(),
            key.salt.as_ref().map_or(Item::Null, Item::text),
        ),
        (
            "signature_digest".into(),
            Item::text(key.signature_digest.to_hex()),
        ),
        (
            "inputs_digest".into(),
            Item::text(key.inputs_digest.to_hex()),
        ),
        ("inputs".into(), Item::Map(inputs)),
        ("outputs".into(), Item::Map(outputs)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use recall_key::{InputSource, KeyMaterial, Value as KeyValue, ValueType};

    fn sample() -> Manifest {
        let mut material = KeyMaterial::new("flytesnacks", "development", "wf.sq", "1.0").unwrap();
        material
            .add_input("n", ValueType::Int, InputSource::Value(KeyValue::Int(3)))
            .unwrap();
        material
            .add_input("seed", ValueType::Int, InputSource::Ignored)
            .unwrap();
        material.add_output("o0", ValueType::Int).unwrap();
        material.add_output("model", ValueType::File).unwrap();
        let key = material.derive().unwrap();
        let small = Bytes::from_static(b"\x03");
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "o0".to_string(),
            OutputRecord {
                ty: "int".into(),
                size: 1,
                digest: Digest::of_content(&small),
                inline: Some(small),
            },
        );
        outputs.insert(
            "model".to_string(),
            OutputRecord {
                ty: "file".into(),
                size: 10_000,
                digest: Digest::of_content(b"big"),
                inline: None,
            },
        );
        Manifest {
            layout_version: LAYOUT_VERSION,
            key,
            outputs,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: None,
            producer: "host-1/42".into(),
        }
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let manifest = sample();
        let bytes = manifest.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), manifest);
        assert_eq!(manifest.clone().encode(), bytes);
        let mut expiring = manifest;
        expiring.expires_at_ms = Some(5);
        assert_eq!(Manifest::decode(&expiring.encode()).unwrap(), expiring);
    }

    #[test]
    fn rejects_garbage_other_versions_and_bad_names() {
        assert!(Manifest::decode(b"").is_err());
        assert!(Manifest::decode(b"\xff\x00garbage").is_err());
        let mut other = sample();
        other.layout_version = 2;
        let err = Manifest::decode(&other.encode()).unwrap_err();
        assert!(err.0.contains("layout_version 2"), "{err}");
        let mut escaping = sample();
        escaping.key.task = "../x".into();
        let err = Manifest::decode(&escaping.encode()).unwrap_err();
        assert!(err.0.contains("invalid task"), "{err}");
    }

    #[test]
    fn decoding_is_checked_by_an_independent_decoder() {
        // ciborium sees a map whose keys are in deterministic order.
        let bytes = sample().encode();
        let value: Value = ciborium::from_reader(&bytes[..]).unwrap();
        let keys: Vec<_> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "key",
                "outputs",
                "producer",
                "created_at_ms",
                "expires_at_ms",
                "layout_version"
            ]
        );
    }
}
