//! Key material as JSON (docs/KEY-SPEC.md section 8): `recall key --spec FILE` and the
//! frozen test vectors.

use std::path::Path;

use crate::derive::{InputSource, KeyMaterial};
use crate::digest::Digest;
use crate::error::{KeyError, shorten};
use crate::json::Json;
use crate::types::ValueType;
use crate::value::Value;

/// The fields of the key material object.
const MATERIAL_FIELDS: &[&str] = &[
    "project",
    "domain",
    "task",
    "cache_version",
    "inputs",
    "outputs",
    "salt",
];
/// The fields of an input object.
const INPUT_FIELDS: &[&str] = &["name", "type", "value", "hash", "ignore"];
/// The fields of an output object.
const OUTPUT_FIELDS: &[&str] = &["name", "type"];

/// One JSON object of key material, read field by field; every error names the field by
/// its path from the top (`inputs[0].hash`) and shows the offending value.
struct Fields<'a> {
    /// The object's own path; empty for the top level.
    path: String,
    entries: &'a [(String, Json)],
}

impl<'a> Fields<'a> {
    /// Checks that `json` is an object with no fields but `allowed` (duplicates were already
    /// rejected by the parser).
    fn of(json: &'a Json, path: String, allowed: &[&str]) -> Result<Self, KeyError> {
        let Json::Object(entries) = json else {
            let what = if path.is_empty() {
                "the top level"
            } else {
                path.as_str()
            };
            return Err(field_error(what, "an object", json));
        };
        let fields = Fields { path, entries };
        if let Some((name, _)) = entries.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(KeyError::Field {
                field: fields.path_of(name),
                reason: format!("unknown field (the fields are {})", allowed.join(", ")),
            });
        }
        Ok(fields)
    }

    /// The path of one of this object's fields.
    fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// A field's value, if present (a present `null` is `Some(Json::Null)`).
    fn get(&self, name: &str) -> Option<&'a Json> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A field that must be present and a string.
    fn string(&self, name: &str) -> Result<&'a str, KeyError> {
        match self.get(name) {
            Some(Json::String(s)) => Ok(s),
            Some(other) => Err(field_error(&self.path_of(name), "a string", other)),
            None => Err(KeyError::Field {
                field: self.path_of(name),
                reason: "missing (it is required)".into(),
            }),
        }
    }

    /// A field that may be absent, but when present is a string (`null` is an error).
    fn optional_string(&self, name: &str, want: &str) -> Result<Option<&'a str>, KeyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(field_error(&self.path_of(name), want, other)),
        }
    }

    /// A field that may be absent, but when present is an array.
    fn array(&self, name: &str) -> Result<&'a [Json], KeyError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Json::Array(items)) => Ok(items),
            Some(other) => Err(field_error(&self.path_of(name), "an array", other)),
        }
    }
}

/// "`field`: expected `want`, got <kind>: <value>".
fn field_error(field: &str, want: &str, got: &Json) -> KeyError {
    let got = match got {
        Json::Null => "null".to_string(),
        other => format!("{}: {}", other.kind(), shorten(&other.to_string())),
    };
    KeyError::Field {
        field: field.to_string(),
        reason: format!("expected {want}, got {got}"),
    }
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
        let doc = Json::parse(text).map_err(KeyError::Json)?;
        let top = Fields::of(&doc, String::new(), MATERIAL_FIELDS)?;
        let mut material = KeyMaterial::new(
            top.string("project")?,
            top.string("domain")?,
            top.string("task")?,
            top.string("cache_version")?,
        )?;
        for (i, json) in top.array("inputs")?.iter().enumerate() {
            let input = Fields::of(json, format!("inputs[{i}]"), INPUT_FIELDS)?;
            let name = input.string("name")?;
            let ty = parse_type(&format!("input {name:?}"), input.string("type")?)?;
            let hash = input.optional_string("hash", "a string of 64 hexadecimal characters")?;
            let ignore = match input.get("ignore") {
                None => false,
                Some(Json::Bool(b)) => *b,
                Some(other) => {
                    return Err(field_error(
                        &input.path_of("ignore"),
                        "true or false",
                        other,
                    ));
                }
            };
            let source = if ignore {
                if hash.is_some() {
                    return Err(KeyError::IgnoredAndHashed {
                        name: name.to_string(),
                    });
                }
                InputSource::Ignored
            } else if let Some(hash) = hash {
                InputSource::Supplied(parse_supplied_hash(name, hash)?)
            } else {
                let json = input.get("value").ok_or_else(|| KeyError::MissingValue {
                    name: name.to_string(),
                })?;
                let value =
                    Value::from_json(&ty, json, base).map_err(|reason| KeyError::InvalidValue {
                        input: name.to_string(),
                        ty: ty.to_string(),
                        value: shorten(&json.to_string()),
                        reason,
                    })?;
                InputSource::Value(value)
            };
            material.add_input(name, ty, source)?;
        }
        for (i, json) in top.array("outputs")?.iter().enumerate() {
            let output = Fields::of(json, format!("outputs[{i}]"), OUTPUT_FIELDS)?;
            let name = output.string("name")?;
            let ty = parse_type(&format!("output {name:?}"), output.string("type")?)?;
            material.add_output(name, ty)?;
        }
        // `"salt": null` is the same as no salt (docs/KEY-SPEC.md section 8).
        if !matches!(top.get("salt"), Some(Json::Null))
            && let Some(salt) = top.optional_string("salt", "a string or null")?
        {
            material.set_salt(salt)?;
        }
        Ok(material)
    }
}
