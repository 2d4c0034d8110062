//! Flyte's datacatalog on recall entries (docs/LAYOUT.md section 12): a dataset, an artifact
//! and a tag are each one ordinary cache entry of the dataset's project and domain, with task
//! = dataset name and cache_version = dataset version, so lookup, verification, expiry,
//! eviction, GC and leases cover them as they cover every entry. This module owns the key
//! material of those entries and the records stored as their one output.

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
