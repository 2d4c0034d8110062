//! Flyte's datacatalog on recall entries (docs/LAYOUT.md section 12): a dataset, an artifact
//! and a tag are each one ordinary cache entry of the dataset's project and domain, with task
//! = dataset name and cache_version = dataset version, so lookup, verification, expiry,
//! eviction, GC and leases cover them as they cover every entry. This module owns the key
//! material of those entries and the records stored as their one output.
//!
//! Flyte 2's CacheService keys (docs/LAYOUT.md section 13) are ordinary entries too: task
//! [`CACHE_TASK`], cache_version [`CACHE_VERSION`], the client's key as one string input, and a
//! [`CachedOutputRecord`] as the one output.

use std::collections::BTreeMap;

use ciborium::Value as Cbor;
use recall_key::cbor::{Item, encode};
use recall_key::{DerivedKey, InputSource, KeyMaterial, Value, ValueType};

use crate::error::StoreError;

/// Output of a dataset entry: its [`DatasetRecord`].
pub const DATASET_OUTPUT: &str = "flyte_dataset";
/// Output of an artifact or tag entry: its [`ArtifactRecord`].
pub const ARTIFACT_OUTPUT: &str = "flyte_artifact";
/// Input of an artifact entry (a `string`): the artifact id.
pub const ARTIFACT_ID_INPUT: &str = "flyte_artifact_id";
/// Input of a tag entry (a `string`): the tag name.
pub const TAG_INPUT: &str = "flyte_tag";

/// Task of a CacheService entry.
pub const CACHE_TASK: &str = "flyte_cacheservice";
/// Cache version of a CacheService entry.
pub const CACHE_VERSION: &str = "1";
/// Input of a CacheService entry (a `string`): the client's key.
pub const CACHE_KEY_INPUT: &str = "flyte_cache_key";
/// Output of a CacheService entry: its [`CachedOutputRecord`].
pub const CACHED_OUTPUT: &str = "flyte_cached_output";

/// The key of the CacheService entry for the client's `key` in `project`/`domain`.
pub fn cache_entry_key(project: &str, domain: &str, key: &str) -> Result<DerivedKey, StoreError> {
    let mut material = KeyMaterial::new(project, domain, CACHE_TASK, CACHE_VERSION)?;
    material
        .add_input(
            CACHE_KEY_INPUT,
            ValueType::String,
            InputSource::Value(Value::String(key.to_string())),
        )?
        .add_output(CACHED_OUTPUT, ValueType::File)?;
    Ok(material.derive()?)
}

/// A CacheService output: the literals themselves or the URI of the object holding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedValue {
    /// An encoded `flyteidl2.core.LiteralMap`, as the client sent it.
    Literals(Vec<u8>),
    /// The URI of an object the client wrote (recall stores the URI, not the object).
    Uri(String),
}

/// What a CacheService entry stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedOutputRecord {
    /// The client's key (the entry's key holds only its digest).
    pub key: String,
    /// The output.
    pub value: CachedValue,
    /// The encoded `flyteidl2.core.Identifier` of the task that produced it, if sent.
    pub source_identifier: Option<Vec<u8>>,
    /// Free metadata.
    pub key_map: BTreeMap<String, String>,
    /// When the key was first stored, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When this output was stored, milliseconds since the Unix epoch.
    pub last_updated_at_ms: i64,
}

impl CachedOutputRecord {
    /// The deterministic CBOR stored as the entry's output.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, value) = match &self.value {
            CachedValue::Literals(bytes) => ("literals", Item::bytes(bytes.clone())),
            CachedValue::Uri(uri) => ("uri", Item::text(uri)),
        };
        let item = Item::Map(vec![
            ("key".into(), Item::text(&self.key)),
            (kind.into(), value),
            (
                "source_identifier".into(),
                self.source_identifier
                    .as_ref()
                    .map_or(Item::Null, |b| Item::bytes(b.clone())),
            ),
            ("key_map".into(), string_map(&self.key_map)),
            ("created_at_ms".into(), Item::Int(self.created_at_ms.into())),
            (
                "last_updated_at_ms".into(),
                Item::Int(self.last_updated_at_ms.into()),
            ),
        ]);
        encode(&item).unwrap_or_default()
    }

    /// Reads a stored record.
    pub fn decode(bytes: &[u8]) -> Result<CachedOutputRecord, RecordError> {
        let value: Cbor = ciborium::from_reader(bytes).map_err(|_| RecordError("not CBOR"))?;
        let output = match (field(&value, "literals"), field(&value, "uri")) {
            (Some(Cbor::Bytes(b)), None) => CachedValue::Literals(b.clone()),
            (None, Some(Cbor::Text(uri))) => CachedValue::Uri(uri.clone()),
            _ => return Err(RecordError("literals or uri")),
        };
        let ms = |name: &'static str| {
            field(&value, name)
                .and_then(Cbor::as_integer)
                .and_then(|i| i64::try_from(i).ok())
                .ok_or(RecordError(name))
        };
        Ok(CachedOutputRecord {
            key: text(&value, "key").ok_or(RecordError("key"))?,
            value: output,
            source_identifier: match field(&value, "source_identifier") {
                None | Some(Cbor::Null) => None,
                Some(Cbor::Bytes(b)) => Some(b.clone()),
                Some(_) => return Err(RecordError("source_identifier")),
            },
            key_map: decode_string_map(field(&value, "key_map")).ok_or(RecordError("key_map"))?,
            created_at_ms: ms("created_at_ms")?,
            last_updated_at_ms: ms("last_updated_at_ms")?,
        })
    }
}

/// A dataset's identity: Flyte's `DatasetID` without its informative UUID and org.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetId {
    /// Project: the entry's project.
    pub project: String,
    /// Domain: the entry's domain.
    pub domain: String,
    /// Name (propeller: `flyte_task-<task name>`): the entry's task.
    pub name: String,
    /// Version (propeller: `<cache_version>-<hash>-<hash>`): the entry's cache_version.
    pub version: String,
}

/// Which catalog entry of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogItem<'a> {
    /// The dataset itself.
    Dataset,
    /// The artifact with this id.
    Artifact(&'a str),
    /// The tag with this name.
    Tag(&'a str),
}

impl DatasetId {
    /// The key of one of the dataset's entries. A name or version outside recall's name rules
    /// (KEY-SPEC section 3) is an error naming it.
    pub fn key(&self, item: CatalogItem<'_>) -> Result<DerivedKey, StoreError> {
        let mut material =
            KeyMaterial::new(&self.project, &self.domain, &self.name, &self.version)?;
        let string = |s: &str| InputSource::Value(Value::String(s.to_string()));
        match item {
            CatalogItem::Dataset => material.add_output(DATASET_OUTPUT, ValueType::File)?,
            CatalogItem::Artifact(id) => material
                .add_input(ARTIFACT_ID_INPUT, ValueType::String, string(id))?
                .add_output(ARTIFACT_OUTPUT, ValueType::File)?,
            CatalogItem::Tag(tag) => material
                .add_input(TAG_INPUT, ValueType::String, string(tag))?
                .add_output(ARTIFACT_OUTPUT, ValueType::File)?,
        };
        Ok(material.derive()?)
    }

    fn item(&self) -> Item {
        Item::Map(vec![
            ("project".into(), Item::text(&self.project)),
            ("domain".into(), Item::text(&self.domain)),
            ("name".into(), Item::text(&self.name)),
            ("version".into(), Item::text(&self.version)),
        ])
    }

    fn from_cbor(value: &Cbor) -> Option<DatasetId> {
        Some(DatasetId {
            project: text(value, "project")?,
            domain: text(value, "domain")?,
            name: text(value, "name")?,
            version: text(value, "version")?,
        })
    }
}

/// What a dataset entry stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRecord {
    /// The dataset.
    pub id: DatasetId,
    /// The UUID its creator gave (informative; may be empty).
    pub uuid: String,
    /// Free metadata.
    pub metadata: BTreeMap<String, String>,
    /// Partition keys as given (recall stores them but does not partition).
    pub partition_keys: Vec<String>,
}

/// What an artifact entry and its tag entries store: one task run's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// The artifact id its creator chose (propeller: a UUID).
    pub id: String,
    /// The dataset it belongs to.
    pub dataset: DatasetId,
    /// One value per output, in the order given: name and encoded `flyteidl.core.Literal`.
    pub data: Vec<(String, Vec<u8>)>,
    /// Free metadata (propeller: the execution that produced it).
    pub metadata: BTreeMap<String, String>,
    /// When it was created (or last updated), milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// In a tag's entry, the tag's name (the key holds only its digest); `None` in the
    /// artifact's own entry.
    pub tag: Option<String>,
}

/// A stored record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable catalog record: {0}")]
pub struct RecordError(pub &'static str);

impl DatasetRecord {
    /// The deterministic CBOR stored as the dataset entry's output.
    pub fn encode(&self) -> Vec<u8> {
        let item = Item::Map(vec![
            ("dataset".into(), self.id.item()),
            ("uuid".into(), Item::text(&self.uuid)),
            ("metadata".into(), string_map(&self.metadata)),
            (
                "partition_keys".into(),
                Item::Array(self.partition_keys.iter().map(Item::text).collect()),
            ),
        ]);
        // Fixed, distinct field names, and metadata keys come from a map.
        encode(&item).unwrap_or_default()
    }

    /// Reads a stored dataset record.
    pub fn decode(bytes: &[u8]) -> Result<DatasetRecord, RecordError> {
        let value: Cbor = ciborium::from_reader(bytes).map_err(|_| RecordError("not CBOR"))?;
        let id = field(&value, "dataset")
            .and_then(DatasetId::from_cbor)
            .ok_or(RecordError("dataset"))?;
        Ok(DatasetRecord {
            id,
            uuid: text(&value, "uuid").ok_or(RecordError("uuid"))?,
            metadata: decode_string_map(field(&value, "metadata"))
                .ok_or(RecordError("metadata"))?,
            partition_keys: field(&value, "partition_keys")
                .and_then(Cbor::as_array)
                .and_then(|a| a.iter().map(|v| v.as_text().map(str::to_string)).collect())
                .ok_or(RecordError("partition_keys"))?,
        })
    }
}

impl ArtifactRecord {
    /// The deterministic CBOR stored as the artifact's (and its tags') entry output.
    pub fn encode(&self) -> Vec<u8> {
        let data = self
            .data
            .iter()
            .map(|(name, literal)| {
                Item::Map(vec![
                    ("name".into(), Item::text(name)),
                    ("literal".into(), Item::bytes(literal.clone())),
                ])
            })
            .collect();
        let item = Item::Map(vec![
            ("id".into(), Item::text(&self.id)),
            ("dataset".into(), self.dataset.item()),
            ("data".into(), Item::Array(data)),
            ("metadata".into(), string_map(&self.metadata)),
            ("created_at_ms".into(), Item::Int(self.created_at_ms.into())),
            (
                "tag".into(),
                self.tag.as_ref().map_or(Item::Null, Item::text),
            ),
        ]);
        encode(&item).unwrap_or_default()
    }

    /// Reads a stored artifact record.
    pub fn decode(bytes: &[u8]) -> Result<ArtifactRecord, RecordError> {
        let value: Cbor = ciborium::from_reader(bytes).map_err(|_| RecordError("not CBOR"))?;
        let data = field(&value, "data")
            .and_then(Cbor::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .map(|d| {
                        let literal = field(d, "literal")?.as_bytes()?.clone();
                        Some((text(d, "name")?, literal))
                    })
                    .collect()
            })
            .ok_or(RecordError("data"))?;
        Ok(ArtifactRecord {
            id: text(&value, "id").ok_or(RecordError("id"))?,
            dataset: field(&value, "dataset")
                .and_then(DatasetId::from_cbor)
                .ok_or(RecordError("dataset"))?,
            data,
            metadata: decode_string_map(field(&value, "metadata"))
                .ok_or(RecordError("metadata"))?,
            created_at_ms: field(&value, "created_at_ms")
                .and_then(Cbor::as_integer)
                .and_then(|i| i64::try_from(i).ok())
                .ok_or(RecordError("created_at_ms"))?,
            tag: match field(&value, "tag") {
                None | Some(Cbor::Null) => None,
                Some(tag) => Some(tag.as_text().ok_or(RecordError("tag"))?.to_string()),
            },
        })
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Item {
    Item::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Item::text(v)))
            .collect(),
    )
}

fn decode_string_map(value: Option<&Cbor>) -> Option<BTreeMap<String, String>> {
    value?
        .as_map()?
        .iter()
        .map(|(k, v)| Some((k.as_text()?.to_string(), v.as_text()?.to_string())))
        .collect()
}

fn field<'a>(value: &'a Cbor, name: &str) -> Option<&'a Cbor> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

fn text(value: &Cbor, name: &str) -> Option<String> {
    field(value, name)?.as_text().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> DatasetId {
        DatasetId {
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "flyte_task-wf.square".into(),
            version: "1.0-abcdefgh-12345678".into(),
        }
    }

    #[test]
    fn records_round_trip() {
        let artifact = ArtifactRecord {
            id: "0b5a-uuid".into(),
            dataset: dataset(),
            data: vec![
                ("o0".into(), vec![0x0a, 0x02, 0x08, 0x03]),
                ("b".into(), vec![]),
            ],
            metadata: [("execution-name".to_string(), "abc".to_string())].into(),
            created_at_ms: 1_700_000_000_000,
            tag: Some("flyte_cached-abc".into()),
        };
        assert_eq!(ArtifactRecord::decode(&artifact.encode()), Ok(artifact));
        let record = DatasetRecord {
            id: dataset(),
            uuid: String::new(),
            metadata: BTreeMap::new(),
            partition_keys: vec!["region".into()],
        };
        assert_eq!(DatasetRecord::decode(&record.encode()), Ok(record));
        assert!(ArtifactRecord::decode(b"\xff\x00").is_err());
    }

    #[test]
    fn cached_output_records_round_trip_and_keys_are_opaque_strings() {
        for value in [
            CachedValue::Literals(vec![0x0a, 0x00]),
            CachedValue::Uri("s3://bucket/outputs.pb".into()),
        ] {
            let record = CachedOutputRecord {
                key: "any key: spaces/slashes é".into(),
                value,
                source_identifier: Some(vec![0x12, 0x01, 0x70]),
                key_map: [("k".to_string(), "v".to_string())].into(),
                created_at_ms: 1,
                last_updated_at_ms: 2,
            };
            assert_eq!(CachedOutputRecord::decode(&record.encode()), Ok(record));
        }
        let a = cache_entry_key("p", "d", "k 1").unwrap().key;
        assert_ne!(a, cache_entry_key("p", "d", "k 2").unwrap().key);
        assert_ne!(a, cache_entry_key("p", "e", "k 1").unwrap().key);
    }

    #[test]
    fn the_three_entries_of_a_dataset_have_distinct_keys() {
        let d = dataset();
        let keys = [
            d.key(CatalogItem::Dataset).unwrap().key,
            d.key(CatalogItem::Artifact("t")).unwrap().key,
            d.key(CatalogItem::Tag("t")).unwrap().key,
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
        let bad = DatasetId {
            version: "has space".into(),
            ..d
        };
        let err = bad.key(CatalogItem::Dataset).unwrap_err().to_string();
        assert!(err.contains("has space"), "{err}");
    }
}
