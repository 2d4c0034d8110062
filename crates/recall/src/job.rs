//! TOML job files (`--job FILE`): the key material and outputs of a run in one file.
//!
//! ```toml
//! project = "flytesnacks"
//! domain = "development"
//! task = "wf.train"
//! cache_version = "1.0"
//! command = ["python3", "train.py"]   # optional; `-- COMMAND` wins
//!
//! [inputs]
//! epochs = { type = "int", value = 10 }
//! data = { type = "file", value = "train.csv" }   # relative to the job file's directory
//! seed = { type = "int", value = 7, ignore = true }
//!
//! [outputs]
//! model = { type = "file", path = "out/model.bin" }  # relative to the job file's directory
//! ```
//!
//! Values take the JSON forms of docs/KEY-SPEC.md section 8, written in TOML: a TOML
//! date-time is a `datetime`, non-finite floats are the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use crate::error::CliError;

/// A parsed job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Project (tenant).
    pub project: Option<String>,
    /// Domain (environment).
    pub domain: Option<String>,
    /// Task name.
    pub task: Option<String>,
    /// cache_version.
    pub cache_version: Option<String>,
    /// Optional salt.
    pub salt: Option<String>,
    /// The command to run when none follows `--`.
    pub command: Option<Vec<String>>,
    /// Inputs by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, JobInput>,
    /// Outputs by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, JobOutput>,
    /// The directory relative paths resolve against (the job file's directory).
    #[serde(skip)]
    pub base: PathBuf,
}

/// One input of a job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    /// The declared type.
    #[serde(rename = "type")]
    pub ty: String,
    /// The value (its JSON form, written in TOML).
    pub value: Option<toml::Value>,
    /// A caller-supplied digest instead of the value.
    pub hash: Option<String>,
    /// Leave the value out of the key.
    #[serde(default)]
    pub ignore: bool,
}

/// One output of a job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOutput {
    /// The declared type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Where the output lives, for `file` and `dir` outputs.
    pub path: Option<PathBuf>,
}

impl JobFile {
    /// Reads and parses a job file.
    pub fn read(path: &Path) -> Result<JobFile, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::local(path, e))?;
        let mut job: JobFile = toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("--job {}: {e}", path.display())))?;
        job.base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(job)
    }

    /// The job's inputs as key material JSON input objects (docs/KEY-SPEC.md section 8).
    pub fn inputs_json(&self) -> Result<Vec<JsonValue>, CliError> {
        let mut inputs = Vec::new();
        for (name, input) in &self.inputs {
            let mut object = serde_json::Map::new();
            object.insert("name".into(), json!(name));
            object.insert("type".into(), json!(input.ty));
            if let Some(value) = &input.value {
                let value = toml_to_json(value).map_err(|reason| {
                    CliError::Usage(format!("job file input {name:?}: {reason}"))
                })?;
                object.insert("value".into(), value);
            }
            if let Some(hash) = &input.hash {
                object.insert("hash".into(), json!(hash));
            }
            if input.ignore {
                object.insert("ignore".into(), json!(true));
            }
            inputs.push(JsonValue::Object(object));
        }
        Ok(inputs)
    }
}

/// A TOML value in its JSON form.
fn toml_to_json(value: &toml::Value) -> Result<JsonValue, String> {
    Ok(match value {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) if f.is_nan() => json!("NaN"),
        toml::Value::Float(f) if f.is_infinite() => {
            json!(if *f > 0.0 { "Infinity" } else { "-Infinity" })
        }
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(JsonValue::Number)
            .ok_or_else(|| format!("float {f} has no JSON form"))?,
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(items) => {
            JsonValue::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => JsonValue::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_to_their_json_forms() {
        let job: JobFile = toml::from_str(
            r#"
            project = "p"
            [inputs]
            n = { type = "int", value = 3 }
            x = { type = "float", value = 0.1 }
            z = { type = "float", value = -0.0 }
            i = { type = "float", value = -inf }
            t = { type = "datetime", value = 2024-01-01T00:00:00Z }
            l = { type = "list<string>", value = ["a", "b"] }
            s = { type = "int", ignore = true }
            "#,
        )
        .unwrap();
        let inputs = JsonValue::Array(job.inputs_json().unwrap()).to_string();
        for needle in [
            r#"{"name":"n","type":"int","value":3}"#,
            r#""value":0.1"#,
            r#""value":-0.0"#,
            r#""value":"-Infinity""#,
            r#""value":"2024-01-01T00:00:00Z""#,
            r#""value":["a","b"]"#,
            r#"{"ignore":true,"name":"s","type":"int"}"#,
        ] {
            assert!(inputs.contains(needle), "{inputs} lacks {needle}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = toml::from_str::<JobFile>("projekt = \"p\"").unwrap_err();
        assert!(err.to_string().contains("projekt"), "{err}");
    }
}
