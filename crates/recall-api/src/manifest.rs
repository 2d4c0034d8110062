//! A manifest as JSON (docs/LAYOUT.md section 4.1; `Manifest` in the OpenAPI document).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use recall_key::{DerivedKey, Digest};
use recall_store::{
    DigestChange, Manifest, NondeterminismOutcome, NondeterminismRecord, OutputRecord,
};
use serde::{Deserialize, Serialize};

use crate::WireError;

/// A manifest as JSON: the key-spec components, and each output's type, size, digest and
/// (when inlined) its bytes in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestView {
    /// When the entry was published, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When the entry stops being a hit, or `null`.
    pub expires_at_ms: Option<i64>,
    /// The key and every component it was derived from.
    pub key: DerivedKey,
    /// The layout version the manifest was written under.
    pub layout_version: u64,
    /// Publishes that met the entry with other output digests, oldest first.
    #[serde(default)]
    pub nondeterminism: Vec<RecordView>,
    /// The outputs, by name.
    pub outputs: BTreeMap<String, OutputView>,
    /// Who published the entry.
    pub producer: String,
}

/// One output of a [`ManifestView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputView {
    /// BLAKE3 digest of the output's bytes.
    pub digest: Digest,
    /// The bytes in standard base64 when the output is inlined; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_base64: Option<String>,
    /// Size of the output's bytes.
    pub size: u64,
    /// The output's declared type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A nondeterminism record as JSON (`NondeterminismRecord` in the OpenAPI document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    /// When the publish saw the difference, milliseconds since the Unix epoch.
    pub observed_at_ms: i64,
    /// `replaced` or `discarded`.
    pub outcome: String,
    /// The outputs that differed, by name.
    pub outputs: BTreeMap<String, ChangeView>,
    /// The producer of that publish.
    pub producer: String,
}

/// The two digests of one output that differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeView {
    /// The digest the publish produced.
    pub current: Digest,
    /// The digest in the entry the publish met.
    pub previous: Digest,
}

impl From<&NondeterminismRecord> for RecordView {
    fn from(record: &NondeterminismRecord) -> Self {
        RecordView {
            observed_at_ms: record.observed_at_ms,
            outcome: record.outcome.as_str().to_string(),
            outputs: record
                .outputs
                .iter()
                .map(|(name, change)| {
                    (
                        name.clone(),
                        ChangeView {
                            current: change.current,
                            previous: change.previous,
                        },
                    )
                })
                .collect(),
            producer: record.producer.clone(),
        }
    }
}

impl TryFrom<RecordView> for NondeterminismRecord {
    type Error = WireError;

    fn try_from(view: RecordView) -> Result<Self, WireError> {
        let outcome =
            NondeterminismOutcome::parse(&view.outcome).ok_or(WireError::Outcome(view.outcome))?;
        Ok(NondeterminismRecord {
            observed_at_ms: view.observed_at_ms,
            producer: view.producer,
            outcome,
            outputs: view
                .outputs
                .into_iter()
                .map(|(name, c)| {
                    (
                        name,
                        DigestChange {
                            previous: c.previous,
                            current: c.current,
                        },
                    )
                })
                .collect(),
        })
    }
}

impl From<&Manifest> for ManifestView {
    fn from(manifest: &Manifest) -> Self {
        ManifestView {
            created_at_ms: manifest.created_at_ms,
            expires_at_ms: manifest.expires_at_ms,
            key: manifest.key.clone(),
            layout_version: manifest.layout_version,
            nondeterminism: manifest
                .nondeterminism
                .iter()
                .map(RecordView::from)
                .collect(),
            outputs: manifest
                .outputs
                .iter()
                .map(|(name, record)| {
                    (
                        name.clone(),
                        OutputView {
                            digest: record.digest,
                            inline_base64: record
                                .inline
                                .as_ref()
                                .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
                            size: record.size,
                            ty: record.ty.clone(),
                        },
                    )
                })
                .collect(),
            producer: manifest.producer.clone(),
        }
    }
}

/// A manifest from its JSON view. Output names become file names where the outputs are
/// fetched, so each must be a valid name; inline bytes must be base64.
impl TryFrom<ManifestView> for Manifest {
    type Error = WireError;

    fn try_from(view: ManifestView) -> Result<Self, WireError> {
        let mut outputs = BTreeMap::new();
        for (name, o) in view.outputs {
            recall_key::validate_name("output name", &name)
                .map_err(|e| WireError::OutputName(e.to_string()))?;
            let inline = match &o.inline_base64 {
                None => None,
                Some(text) => Some(Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| WireError::InlineBytes {
                            output: name.clone(),
                            reason: e.to_string(),
                        })?,
                )),
            };
            outputs.insert(
                name,
                OutputRecord {
                    ty: o.ty,
                    size: o.size,
                    digest: o.digest,
                    inline,
                },
            );
        }
        Ok(Manifest {
            layout_version: view.layout_version,
            key: view.key,
            outputs,
            created_at_ms: view.created_at_ms,
            expires_at_ms: view.expires_at_ms,
            producer: view.producer,
            nondeterminism: view
                .nondeterminism
                .into_iter()
                .map(NondeterminismRecord::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}
