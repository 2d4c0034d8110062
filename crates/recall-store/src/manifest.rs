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

impl OutputRecord {
    /// The record of an output of type `ty` whose `bytes` are stored inline in the manifest:
    /// its size and digest are those of `bytes`.
    pub fn inline(ty: impl Into<String>, bytes: Bytes) -> OutputRecord {
        OutputRecord {
            ty: ty.into(),
            size: bytes.len() as u64,
            digest: Digest::of_content(&bytes),
            inline: Some(bytes),
        }
    }
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
    /// Publishes of this key that produced other output digests than the entry they met,
    /// oldest first, at most [`MAX_NONDETERMINISM_RECORDS`]; empty when none was seen (the
    /// field is then absent from the encoding). Informative only: it never affects hit/miss.
    pub nondeterminism: Vec<NondeterminismRecord>,
}

/// At most this many nondeterminism records are kept in a manifest (the oldest are dropped).
pub const MAX_NONDETERMINISM_RECORDS: usize = 8;

/// Reader limit (docs/LAYOUT.md 4.5): a manifest of more bytes is undecodable, a miss, and
/// is not parsed at all.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// Reader limit (docs/LAYOUT.md 4.5): a manifest with more outputs is undecodable, a miss;
/// none of its outputs is decoded.
pub const MAX_MANIFEST_OUTPUTS: usize = 1024;

/// What became of a publish that produced other output digests than the entry it met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NondeterminismOutcome {
    /// It replaced the entry (overwrite): the manifest holding the record has its outputs.
    Replaced,
    /// The entry was kept (create-if-absent lost the race): its outputs were discarded.
    Discarded,
}

impl NondeterminismOutcome {
    /// The text stored in the manifest: `"replaced"` or `"discarded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NondeterminismOutcome::Replaced => "replaced",
            NondeterminismOutcome::Discarded => "discarded",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "replaced" => Some(NondeterminismOutcome::Replaced),
            "discarded" => Some(NondeterminismOutcome::Discarded),
            _ => None,
        }
    }
}

/// The two digests of one output that differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestChange {
    /// The digest in the entry the publish met.
    pub previous: Digest,
    /// The digest the publish produced.
    pub current: Digest,
}

/// One publish of the key whose outputs differed from those of the entry it met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NondeterminismRecord {
    /// When the publish saw the difference, milliseconds since the Unix epoch.
    pub observed_at_ms: i64,
    /// The producer of that publish (whose outputs are `current`).
    pub producer: String,
    /// Whether that publish replaced the entry or was discarded.
    pub outcome: NondeterminismOutcome,
    /// The outputs that differed, by name (never empty).
    pub outputs: BTreeMap<String, DigestChange>,
}

impl NondeterminismRecord {
    /// The record as JSON, the one form `recall inspect --json` and recalld show:
    /// `observed_at_ms`, `producer`, `outcome` and, per output that differed, its `previous`
    /// and `current` digest.
    pub fn to_json(&self) -> serde_json::Value {
        let outputs: serde_json::Map<String, serde_json::Value> = self
            .outputs
            .iter()
            .map(|(name, change)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "previous": change.previous.to_hex(),
                        "current": change.current.to_hex(),
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "observed_at_ms": self.observed_at_ms,
            "producer": self.producer,
            "outcome": self.outcome.as_str(),
            "outputs": outputs,
        })
    }

    /// The record of a publish that produced `produced` where the entry had `stored`, or
    /// `None` when every output the two share has the same digest.
    pub fn compare(
        stored: &Manifest,
        produced: &BTreeMap<String, Digest>,
        observed_at_ms: i64,
        producer: &str,
        outcome: NondeterminismOutcome,
    ) -> Option<Self> {
        let outputs: BTreeMap<String, DigestChange> = stored
            .outputs
            .iter()
            .filter_map(|(name, record)| {
                let current = *produced.get(name)?;
                (current != record.digest).then(|| {
                    (
                        name.clone(),
                        DigestChange {
                            previous: record.digest,
                            current,
                        },
                    )
                })
            })
            .collect();
        (!outputs.is_empty()).then(|| NondeterminismRecord {
            observed_at_ms,
            producer: producer.to_string(),
            outcome,
            outputs,
        })
    }

    fn to_item(&self) -> Item {
        let outputs = self
            .outputs
            .iter()
            .map(|(name, change)| {
                (
                    name.clone(),
                    Item::Map(vec![
                        ("previous".into(), Item::text(change.previous.to_hex())),
                        ("current".into(), Item::text(change.current.to_hex())),
                    ]),
                )
            })
            .collect();
        Item::Map(vec![
            (
                "observed_at_ms".into(),
                Item::Int(self.observed_at_ms.into()),
            ),
            ("producer".into(), Item::text(&self.producer)),
            ("outcome".into(), Item::text(self.outcome.as_str())),
            ("outputs".into(), Item::Map(outputs)),
        ])
    }

    /// One record from its CBOR map; `None` when it is not a well-formed record.
    fn from_value(value: &Value) -> Option<Self> {
        let fields = value.as_map()?;
        let observed_at_ms = field(fields, "observed_at_ms")
            .ok()?
            .as_integer()
            .and_then(|i| i64::try_from(i).ok())?;
        let producer = field(fields, "producer").ok()?.as_text()?.to_string();
        let outcome = NondeterminismOutcome::parse(field(fields, "outcome").ok()?.as_text()?)?;
        let mut outputs = BTreeMap::new();
        for (name, change) in field(fields, "outputs").ok()?.as_map()? {
            let name = name.as_text()?;
            validate_name("output name", name).ok()?;
            let change = change.as_map()?;
            let digest =
                |f: &str| -> Option<Digest> { field(change, f).ok()?.as_text()?.parse().ok() };
            outputs.insert(
                name.to_string(),
                DigestChange {
                    previous: digest("previous")?,
                    current: digest("current")?,
                },
            );
        }
        (!outputs.is_empty()).then_some(NondeterminismRecord {
            observed_at_ms,
            producer,
            outcome,
            outputs,
        })
    }
}

/// Appends `record` to `records`, keeping the newest [`MAX_NONDETERMINISM_RECORDS`].
pub fn push_nondeterminism(records: &mut Vec<NondeterminismRecord>, record: NondeterminismRecord) {
    records.push(record);
    if records.len() > MAX_NONDETERMINISM_RECORDS {
        let excess = records.len() - MAX_NONDETERMINISM_RECORDS;
        records.drain(..excess);
    }
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
        let mut fields = vec![
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
        ];
        if !self.nondeterminism.is_empty() {
            fields.push((
                "nondeterminism".into(),
                Item::Array(
                    self.nondeterminism
                        .iter()
                        .map(NondeterminismRecord::to_item)
                        .collect(),
                ),
            ));
        }
        Item::Map(fields)
    }

    /// Decodes and checks a manifest. Unknown map fields are ignored (forward compatibility);
    /// a missing or mistyped field, another layout version, or a name that breaks the name
    /// rules is an error. The optional `nondeterminism` field never makes a manifest
    /// unusable: a record that is not well formed is skipped, and a field that is not an
    /// array reads as no records. A manifest over the reader limits ([`MAX_MANIFEST_BYTES`],
    /// [`MAX_MANIFEST_OUTPUTS`]) is an error before it is decoded any further.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{} bytes, over the reader limit of {MAX_MANIFEST_BYTES}",
                bytes.len()
            )));
        }
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
        let records = as_map(field(fields, "outputs")?, "outputs")?;
        if records.len() > MAX_MANIFEST_OUTPUTS {
            return Err(bad(format!(
                "{} outputs, over the reader limit of {MAX_MANIFEST_OUTPUTS}",
                records.len()
            )));
        }
        for (name, record) in records {
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
        let nondeterminism = fields
            .iter()
            .find(|(k, _)| k.as_text() == Some("nondeterminism"))
            .and_then(|(_, v)| v.as_array())
            .map(|records| {
                records
                    .iter()
                    .filter_map(NondeterminismRecord::from_value)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Manifest {
            layout_version,
            key,
            outputs,
            created_at_ms,
            expires_at_ms,
            producer,
            nondeterminism,
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
        outputs.insert("o0".to_string(), OutputRecord::inline("int", small));
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
            nondeterminism: Vec::new(),
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

    /// `sample()` with `count` small inline outputs of `inline_len` bytes each.
    fn with_outputs(count: usize, inline_len: usize) -> Manifest {
        let mut manifest = sample();
        manifest.outputs.clear();
        for i in 0..count {
            let bytes = Bytes::from(vec![(i % 251) as u8; inline_len]);
            manifest
                .outputs
                .insert(format!("o{i}"), OutputRecord::inline("file", bytes));
        }
        manifest
    }

    #[test]
    fn manifests_over_the_reader_limits_are_undecodable() {
        let at_limit = with_outputs(MAX_MANIFEST_OUTPUTS, 1);
        assert_eq!(Manifest::decode(&at_limit.encode()).unwrap(), at_limit);

        let err =
            Manifest::decode(&with_outputs(MAX_MANIFEST_OUTPUTS + 1, 1).encode()).unwrap_err();
        assert!(
            err.0
                .contains(&format!("{} outputs", MAX_MANIFEST_OUTPUTS + 1))
                && err.0.contains(&MAX_MANIFEST_OUTPUTS.to_string()),
            "{err}"
        );

        // Few outputs, but more bytes than the limit: refused before it is parsed.
        let big = with_outputs(4, MAX_MANIFEST_BYTES / 4 + 1).encode();
        assert!(big.len() > MAX_MANIFEST_BYTES);
        let err = Manifest::decode(&big).unwrap_err();
        assert!(
            err.0.contains(&format!("{} bytes", big.len()))
                && err.0.contains(&MAX_MANIFEST_BYTES.to_string()),
            "{err}"
        );
        // Anything past the limit is not looked at: garbage of that size gives the same error.
        let err = Manifest::decode(&vec![0xff; MAX_MANIFEST_BYTES + 1]).unwrap_err();
        assert!(err.0.contains("reader limit"), "{err}");
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

    fn record(at: i64, outcome: NondeterminismOutcome) -> NondeterminismRecord {
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "model".to_string(),
            DigestChange {
                previous: Digest::of_content(b"one"),
                current: Digest::of_content(b"two"),
            },
        );
        NondeterminismRecord {
            observed_at_ms: at,
            producer: "host-2/7".into(),
            outcome,
            outputs,
        }
    }

    #[test]
    fn nondeterminism_round_trips_and_is_absent_when_empty() {
        let plain = sample();
        let plain_bytes = plain.encode();
        let value: Value = ciborium::from_reader(&plain_bytes[..]).unwrap();
        assert!(
            value
                .as_map()
                .unwrap()
                .iter()
                .all(|(k, _)| k.as_text() != Some("nondeterminism"))
        );
        let mut observed = plain.clone();
        observed.nondeterminism = vec![
            record(5, NondeterminismOutcome::Replaced),
            record(6, NondeterminismOutcome::Discarded),
        ];
        let bytes = observed.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), observed);
        assert_eq!(Manifest::decode(&bytes).unwrap().encode(), bytes);
        // Everything else is encoded exactly as without the field.
        let mut stripped = Manifest::decode(&bytes).unwrap();
        stripped.nondeterminism.clear();
        assert_eq!(stripped.encode(), plain_bytes);
    }

    #[test]
    fn malformed_nondeterminism_never_makes_a_miss() {
        let base = sample().to_item();
        let Item::Map(mut fields) = base else {
            panic!("not a map")
        };
        fields.push((
            "nondeterminism".into(),
            Item::Array(vec![
                Item::text("not a record"),
                record(9, NondeterminismOutcome::Replaced).to_item(),
                Item::Map(vec![("outcome".into(), Item::text("sideways"))]),
            ]),
        ));
        let bytes = encode(&Item::Map(fields.clone())).unwrap();
        let decoded = Manifest::decode(&bytes).unwrap();
        assert_eq!(
            decoded.nondeterminism,
            [record(9, NondeterminismOutcome::Replaced)]
        );
        let last = fields.len() - 1;
        fields[last].1 = Item::Int(3);
        let decoded = Manifest::decode(&encode(&Item::Map(fields)).unwrap()).unwrap();
        assert!(decoded.nondeterminism.is_empty());
    }

    #[test]
    fn records_are_bounded_and_compared_by_shared_outputs() {
        let mut records = Vec::new();
        for at in 0..20 {
            push_nondeterminism(&mut records, record(at, NondeterminismOutcome::Replaced));
        }
        assert_eq!(records.len(), MAX_NONDETERMINISM_RECORDS);
        assert_eq!(records[0].observed_at_ms, 12);
        assert_eq!(records[7].observed_at_ms, 19);

        let stored = sample();
        let same: BTreeMap<String, Digest> = stored
            .outputs
            .iter()
            .map(|(n, r)| (n.clone(), r.digest))
            .collect();
        let none =
            NondeterminismRecord::compare(&stored, &same, 1, "p", NondeterminismOutcome::Discarded);
        assert_eq!(none, None);
        let mut other = same.clone();
        other.insert("model".into(), Digest::of_content(b"other"));
        let found = NondeterminismRecord::compare(
            &stored,
            &other,
            1,
            "p",
            NondeterminismOutcome::Discarded,
        )
        .unwrap();
        assert_eq!(found.outputs.len(), 1);
        assert_eq!(
            found.outputs["model"].previous,
            stored.outputs["model"].digest
        );
        assert_eq!(found.outputs["model"].current, Digest::of_content(b"other"));
    }
}
