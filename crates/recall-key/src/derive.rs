//! Key material and key derivation (docs/KEY-SPEC.md section 7).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::cbor::{self, Item};
use crate::digest::Digest;
use crate::error::KeyError;
use crate::name::{normalize_cache_version, validate_name, validate_salt};
use crate::types::ValueType;
use crate::value::Value;

/// The key-spec version this crate implements.
pub const SPEC_VERSION: u32 = 1;

/// A BLAKE3 hasher already keyed for one derive_key context, cloned for each use.
pub(crate) struct Context(LazyLock<blake3::Hasher>);

macro_rules! context {
    ($name:ident, $text:literal) => {
        pub(crate) static $name: Context =
            Context(LazyLock::new(|| blake3::Hasher::new_derive_key($text)));
    };
}

context!(CONTEXT_VALUE, "recall key-spec v1 value");
context!(CONTEXT_DIRECTORY, "recall key-spec v1 directory");
context!(CONTEXT_SIGNATURE, "recall key-spec v1 signature");
context!(CONTEXT_INPUTS, "recall key-spec v1 inputs");
context!(CONTEXT_KEY, "recall key-spec v1 key");

/// `DK(context, bytes)` of the spec.
pub(crate) fn derive_digest(context: &Context, bytes: &[u8]) -> Digest {
    let mut hasher = (*context.0).clone();
    hasher.update(bytes);
    hasher.finalize().into()
}

/// `DK(context, CBOR(item))`. Names are unique by construction; a map value built by a
/// library caller with a repeated key is reported rather than encoded ambiguously.
fn derive_item(context: &Context, item: &Item) -> Result<Digest, KeyError> {
    let encoded = cbor::encode(item).map_err(|e| KeyError::DuplicateMapKey { key: e.key })?;
    Ok(derive_digest(context, &encoded))
}

/// Where an input's digest comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSource {
    /// Hashed from this value.
    Value(Value),
    /// A caller-supplied digest (Flyte's HashMethod); the value is not read.
    Supplied(Digest),
    /// Left out of the input digests (Flyte's cache_ignore_input_vars).
    Ignored,
}

/// One declared input.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The input's name.
    pub name: String,
    /// Its declared type.
    pub ty: ValueType,
    /// How its digest is obtained.
    pub source: InputSource,
}

/// Everything a cache key is derived from. Construct with [`KeyMaterial::new`] and the
/// `add_*` methods, which validate as they go.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyMaterial {
    project: String,
    domain: String,
    task: String,
    cache_version: String,
    inputs: Vec<Input>,
    outputs: Vec<(String, ValueType)>,
    salt: Option<String>,
}

impl KeyMaterial {
    /// Starts key material for one task; checks the names and trims the cache_version.
    pub fn new(
        project: &str,
        domain: &str,
        task: &str,
        cache_version: &str,
    ) -> Result<Self, KeyError> {
        validate_name("project", project)?;
        validate_name("domain", domain)?;
        validate_name("task", task)?;
        let cache_version = normalize_cache_version(cache_version)?;
        Ok(KeyMaterial {
            project: project.to_string(),
            domain: domain.to_string(),
            task: task.to_string(),
            cache_version,
            inputs: Vec::new(),
            outputs: Vec::new(),
            salt: None,
        })
    }

    /// Declares an input.
    pub fn add_input(
        &mut self,
        name: &str,
        ty: ValueType,
        source: InputSource,
    ) -> Result<&mut Self, KeyError> {
        validate_name("input name", name)?;
        if self.inputs.iter().any(|i| i.name == name) {
            return Err(KeyError::Duplicate {
                field: "input",
                name: name.to_string(),
            });
        }
        self.inputs.push(Input {
            name: name.to_string(),
            ty,
            source,
        });
        Ok(self)
    }

    /// Declares an output.
    pub fn add_output(&mut self, name: &str, ty: ValueType) -> Result<&mut Self, KeyError> {
        validate_name("output name", name)?;
        if self.outputs.iter().any(|(n, _)| n == name) {
            return Err(KeyError::Duplicate {
                field: "output",
                name: name.to_string(),
            });
        }
        self.outputs.push((name.to_string(), ty));
        Ok(self)
    }

    /// Marks a declared input as ignored.
    pub fn ignore_input(&mut self, name: &str) -> Result<&mut Self, KeyError> {
        let input = self.input_mut("ignored input", name)?;
        if matches!(input.source, InputSource::Supplied(_)) {
            return Err(KeyError::IgnoredAndHashed {
                name: name.to_string(),
            });
        }
        input.source = InputSource::Ignored;
        Ok(self)
    }

    /// Gives a declared input a caller-supplied digest.
    pub fn supply_hash(&mut self, name: &str, digest: Digest) -> Result<&mut Self, KeyError> {
        let input = self.input_mut("input hash", name)?;
        if matches!(input.source, InputSource::Ignored) {
            return Err(KeyError::IgnoredAndHashed {
                name: name.to_string(),
            });
        }
        input.source = InputSource::Supplied(digest);
        Ok(self)
    }

    /// Sets the salt.
    pub fn set_salt(&mut self, salt: &str) -> Result<&mut Self, KeyError> {
        validate_salt(salt)?;
        self.salt = Some(salt.to_string());
        Ok(self)
    }

    fn input_mut(&mut self, field: &'static str, name: &str) -> Result<&mut Input, KeyError> {
        self.inputs
            .iter_mut()
            .find(|i| i.name == name)
            .ok_or_else(|| KeyError::UnknownInput {
                field,
                name: name.to_string(),
            })
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The task name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The cache_version, trimmed.
    pub fn cache_version(&self) -> &str {
        &self.cache_version
    }

    /// The declared inputs, in declaration order.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// The declared outputs, in declaration order.
    pub fn outputs(&self) -> &[(String, ValueType)] {
        &self.outputs
    }

    /// Derives the key and its component digests. Reads the files and directories of inputs
    /// that are hashed from their values.
    pub fn derive(&self) -> Result<DerivedKey, KeyError> {
        let type_map = |pairs: &mut dyn Iterator<Item = (&String, &ValueType)>| {
            Item::Map(
                pairs
                    .map(|(n, t)| (n.clone(), Item::Text(t.to_string())))
                    .collect(),
            )
        };
        let signature = derive_item(
            &CONTEXT_SIGNATURE,
            &Item::Map(vec![
                ("task".into(), Item::text(&self.task)),
                (
                    "inputs".into(),
                    type_map(&mut self.inputs.iter().map(|i| (&i.name, &i.ty))),
                ),
                (
                    "outputs".into(),
                    type_map(&mut self.outputs.iter().map(|(n, t)| (n, t))),
                ),
            ]),
        )?;

        let mut input_digests = BTreeMap::new();
        let mut hashed = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let (digest, source) = match &input.source {
                InputSource::Value(value) => {
                    let item = value.to_item().map_err(|e| KeyError::Path {
                        input: input.name.clone(),
                        path: e.path,
                        reason: e.reason,
                    })?;
                    (
                        Some(derive_item(&CONTEXT_VALUE, &item)?),
                        DigestSource::Value,
                    )
                }
                InputSource::Supplied(d) => (Some(*d), DigestSource::Supplied),
                InputSource::Ignored => (None, DigestSource::Ignored),
            };
            if let Some(d) = digest {
                hashed.push((input.name.clone(), Item::bytes(d.0)));
            }
            input_digests.insert(
                input.name.clone(),
                InputDigest {
                    ty: input.ty.to_string(),
                    digest,
                    source,
                },
            );
        }
        let inputs_digest = derive_item(&CONTEXT_INPUTS, &Item::Map(hashed))?;

        let key = derive_item(
            &CONTEXT_KEY,
            &Item::Map(vec![
                ("project".into(), Item::text(&self.project)),
                ("domain".into(), Item::text(&self.domain)),
                ("cache_version".into(), Item::text(&self.cache_version)),
                ("signature".into(), Item::bytes(signature.0)),
                ("inputs".into(), Item::bytes(inputs_digest.0)),
                (
                    "salt".into(),
                    self.salt.as_ref().map_or(Item::Null, Item::text),
                ),
            ]),
        )?;

        Ok(DerivedKey {
            spec_version: SPEC_VERSION,
            key,
            project: self.project.clone(),
            domain: self.domain.clone(),
            task: self.task.clone(),
            cache_version: self.cache_version.clone(),
            salt: self.salt.clone(),
            signature_digest: signature,
            inputs_digest,
            inputs: input_digests,
            outputs: self
                .outputs
                .iter()
                .map(|(n, t)| (n.clone(), t.to_string()))
                .collect(),
        })
    }
}

/// How an input's digest was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestSource {
    /// Hashed from the value.
    Value,
    /// Supplied by the caller.
    Supplied,
    /// Ignored: no digest.
    Ignored,
}

/// One input's type and digest in a derivation result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDigest {
    /// The declared type's canonical text.
    #[serde(rename = "type")]
    pub ty: String,
    /// The value digest; `None` for an ignored input.
    pub digest: Option<Digest>,
    /// Where the digest came from.
    pub source: DigestSource,
}

/// The result of a derivation: the key and every component it was derived from
/// (docs/KEY-SPEC.md section 7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedKey {
    /// The key-spec version (1).
    pub spec_version: u32,
    /// The cache key.
    pub key: Digest,
    /// The project.
    pub project: String,
    /// The domain.
    pub domain: String,
    /// The task name.
    pub task: String,
    /// The trimmed cache_version.
    pub cache_version: String,
    /// The salt, if any.
    pub salt: Option<String>,
    /// Digest of the task signature.
    pub signature_digest: Digest,
    /// Digest over the value digests of the inputs that are not ignored.
    pub inputs_digest: Digest,
    /// Each input's type and digest, by name.
    pub inputs: BTreeMap<String, InputDigest>,
    /// Each output's type, by name.
    pub outputs: BTreeMap<String, String>,
}
