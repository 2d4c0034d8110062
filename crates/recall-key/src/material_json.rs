//! Key material as JSON (docs/KEY-SPEC.md section 8): `recall key --spec FILE` and the
//! frozen test vectors.

use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::derive::{InputSource, KeyMaterial};
use crate::digest::Digest;
use crate::error::{KeyError, shorten};
use crate::json::Json;
use crate::types::ValueType;
use crate::value::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaterialDoc {
    project: String,
    domain: String,
    task: String,
    cache_version: String,
    #[serde(default)]
    inputs: Vec<InputDoc>,
    #[serde(default)]
    outputs: Vec<OutputDoc>,
    #[serde(default)]
    salt: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputDoc {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    /// `Some(Json::Null)` when the field is present with null; `None` when absent.
    #[serde(default, deserialize_with = "present")]
    value: Option<Json>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    ignore: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputDoc {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

/// Parses a declared type, naming the input or output that declared it on error.
pub fn parse_type(field: &str, text: &str) -> Result<ValueType, KeyError> {
    ValueType::parse(text).map_err(|reason| KeyError::InvalidType {
        field: field.to_string(),
        value: shorten(text),
        reason,
    })
}

/// Parses a supplied input hash.
pub fn parse_supplied_hash(name: &str, text: &str) -> Result<Digest, KeyError> {
    text.parse().map_err(|_| KeyError::InvalidHash {
        name: name.to_string(),
        value: shorten(text),
    })
}

impl KeyMaterial {
    /// Reads key material from its JSON form. Relative file and dir paths resolve against
    /// `base` (the directory holding the JSON file).
    pub fn from_json(text: &str, base: &Path) -> Result<KeyMaterial, KeyError> {
        let doc: MaterialDoc =
            serde_json::from_str(text).map_err(|e| KeyError::Json(e.to_string()))?;
        let mut material =
            KeyMaterial::new(&doc.project, &doc.domain, &doc.task, &doc.cache_version)?;
        for input in &doc.inputs {
            let field = format!("input {:?}", input.name);
            let ty = parse_type(&field, &input.ty)?;
            let source = if input.ignore {
                if input.hash.is_some() {
                    return Err(KeyError::IgnoredAndHashed {
                        name: input.name.clone(),
                    });
                }
                InputSource::Ignored
            } else if let Some(hash) = &input.hash {
                InputSource::Supplied(parse_supplied_hash(&input.name, hash)?)
            } else {
                let json = input.value.as_ref().ok_or_else(|| KeyError::MissingValue {
                    name: input.name.clone(),
                })?;
                let value =
                    Value::from_json(&ty, json, base).map_err(|reason| KeyError::InvalidValue {
                        input: input.name.clone(),
                        ty: ty.to_string(),
                        value: shorten(&json.to_string()),
                        reason,
                    })?;
                InputSource::Value(value)
            };
            material.add_input(&input.name, ty, source)?;
        }
        for output in &doc.outputs {
            let ty = parse_type(&format!("output {:?}", output.name), &output.ty)?;
            material.add_output(&output.name, ty)?;
        }
        if let Some(salt) = &doc.salt {
            material.set_salt(salt)?;
        }
        Ok(material)
    }
}
