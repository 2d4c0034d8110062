//! Key material and key derivation (docs/KEY-SPEC.md section 7).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::thread::LocalKey;

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::digest::Digest;
use crate::error::KeyError;
use crate::name::{normalize_cache_version, validate_name, validate_salt};
use crate::types::ValueType;
use crate::value::{EncodeError, Value};

/// The key-spec version this crate implements.
pub const SPEC_VERSION: u32 = 1;

/// One derive_key context: a per-thread BLAKE3 hasher already keyed with the context
/// string, reset after each use (cheaper than keying or cloning a hasher per digest).
pub(crate) struct Context {
    text: &'static str,
    hasher: &'static LocalKey<RefCell<blake3::Hasher>>,
}

macro_rules! context {
    ($name:ident, $local:ident, $text:literal) => {
        thread_local! {
            static $local: RefCell<blake3::Hasher> =
                RefCell::new(blake3::Hasher::new_derive_key($text));
        }
        pub(crate) static $name: Context = Context {
            text: $text,
            hasher: &$local,
        };
    };
}

context!(CONTEXT_VALUE, VALUE_HASHER, "recall key-spec v1 value");
context!(
    CONTEXT_DIRECTORY,
    DIRECTORY_HASHER,
    "recall key-spec v1 directory"
);
context!(
    CONTEXT_SIGNATURE,
    SIGNATURE_HASHER,
    "recall key-spec v1 signature"
);
context!(CONTEXT_INPUTS, INPUTS_HASHER, "recall key-spec v1 inputs");
context!(CONTEXT_KEY, KEY_HASHER, "recall key-spec v1 key");

/// `DK(context, bytes)` of the spec.
pub(crate) fn derive_digest(context: &Context, bytes: &[u8]) -> Digest {
    context.hasher.with(|cell| match cell.try_borrow_mut() {
        Ok(mut hasher) => {
            hasher.update(bytes);
            let digest = hasher.finalize().into();
            hasher.reset();
            digest
        }
        // Only if a caller ever nested two digests of one context on one thread.
        Err(_) => blake3::Hasher::new_derive_key(context.text)
            .update(bytes)
            .finalize()
            .into(),
    })
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
        // Encoded straight into one buffer: this runs on every lookup, and building an
        // `Item` tree per call cost more than the hashing (see docs/BENCHMARKS.md).
        let mut buf = Vec::with_capacity(256);
        let input_types: Vec<Cow<'static, str>> =
            self.inputs.iter().map(|i| i.ty.canonical_text()).collect();
        let output_types: Vec<Cow<'static, str>> = self
            .outputs
            .iter()
            .map(|(_, t)| t.canonical_text())
            .collect();
        let mut input_order: Vec<usize> = (0..self.inputs.len()).collect();
        input_order.sort_by(|&a, &b| cbor::key_order(&self.inputs[a].name, &self.inputs[b].name));
        let mut output_order: Vec<usize> = (0..self.outputs.len()).collect();
        output_order.sort_by(|&a, &b| cbor::key_order(&self.outputs[a].0, &self.outputs[b].0));

        // {"task", "inputs", "outputs"}: already in key order.
        cbor::write_map_head(3, &mut buf);
        cbor::write_text("task", &mut buf);
        cbor::write_text(&self.task, &mut buf);
        cbor::write_text("inputs", &mut buf);
        cbor::write_map_head(input_order.len(), &mut buf);
        for &i in &input_order {
            cbor::write_text(&self.inputs[i].name, &mut buf);
            cbor::write_text(&input_types[i], &mut buf);
        }
        cbor::write_text("outputs", &mut buf);
        cbor::write_map_head(output_order.len(), &mut buf);
        for &i in &output_order {
            cbor::write_text(&self.outputs[i].0, &mut buf);
            cbor::write_text(&output_types[i], &mut buf);
        }
        let signature = derive_digest(&CONTEXT_SIGNATURE, &buf);

        let mut digests: Vec<Option<Digest>> = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            digests.push(match &input.source {
                InputSource::Value(value) => {
                    buf.clear();
                    value.write_cbor(&mut buf).map_err(|e| match e {
                        EncodeError::Path(e) => KeyError::Path {
                            input: input.name.clone(),
                            path: e.path,
                            reason: e.reason,
                        },
                        EncodeError::DuplicateKey(key) => KeyError::DuplicateMapKey { key },
                    })?;
                    Some(derive_digest(&CONTEXT_VALUE, &buf))
                }
                InputSource::Supplied(d) => Some(*d),
                InputSource::Ignored => None,
            });
        }

        buf.clear();
        let hashed = input_order.iter().filter(|&&i| digests[i].is_some());
        cbor::write_map_head(hashed.clone().count(), &mut buf);
        for &i in hashed {
            cbor::write_text(&self.inputs[i].name, &mut buf);
            if let Some(d) = &digests[i] {
                cbor::write_bytes(&d.0, &mut buf);
            }
        }
        let inputs_digest = derive_digest(&CONTEXT_INPUTS, &buf);

        // The six keys in key order: salt, domain, inputs, project, signature, cache_version.
        buf.clear();
        cbor::write_map_head(6, &mut buf);
        cbor::write_text("salt", &mut buf);
        match &self.salt {
            Some(salt) => cbor::write_text(salt, &mut buf),
            None => buf.push(0xf6),
        }
        cbor::write_text("domain", &mut buf);
        cbor::write_text(&self.domain, &mut buf);
        cbor::write_text("inputs", &mut buf);
        cbor::write_bytes(&inputs_digest.0, &mut buf);
        cbor::write_text("project", &mut buf);
        cbor::write_text(&self.project, &mut buf);
        cbor::write_text("signature", &mut buf);
        cbor::write_bytes(&signature.0, &mut buf);
        cbor::write_text("cache_version", &mut buf);
        cbor::write_text(&self.cache_version, &mut buf);
        let key = derive_digest(&CONTEXT_KEY, &buf);

        let inputs = self
            .inputs
            .iter()
            .zip(digests)
            .map(|(input, digest)| {
                let source = match input.source {
                    InputSource::Value(_) => DigestSource::Value,
                    InputSource::Supplied(_) => DigestSource::Supplied,
                    InputSource::Ignored => DigestSource::Ignored,
                };
                let ty = input.ty.clone();
                (input.name.clone(), InputDigest { ty, digest, source })
            })
            .collect();
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
            inputs,
            outputs: self
                .outputs
                .iter()
                .map(|(name, ty)| (name.clone(), ty.clone()))
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
    /// The declared type (serialized as its canonical text).
    #[serde(rename = "type")]
    pub ty: ValueType,
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
    pub outputs: BTreeMap<String, ValueType>,
}
