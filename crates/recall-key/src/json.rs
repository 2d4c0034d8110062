//! A JSON tree that keeps each number's token text and rejects duplicate object keys.
//!
//! serde_json's own `Value` turns `-0` into a float and integers above 2^64 into floats, so
//! an `int` could not be told from an integral `float`. The key spec reads numbers from
//! their token text (docs/KEY-SPEC.md section 8), so this tree keeps it, using serde_json's
//! `RawValue` to see each value's text.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_JSON_DEPTH: usize = 64;

/// A parsed JSON value with number tokens kept as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its token text (valid JSON number grammar).
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, in document order, keys unique.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a complete JSON text. An error inside a value names where it is, as a path
    /// from the top (`inputs[0].value.a: duplicate object key "b"`).
    pub fn parse(text: &str) -> Result<Json, String> {
        let raw: Box<RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Json::from_raw(raw.get(), 0).map_err(|e| e.to_string())
    }

    /// Builds the tree for one value's raw text; `depth` counts enclosing containers.
    fn from_raw(text: &str, depth: usize) -> Result<Json, TreeError> {
        let text = text.trim_start();
        let container = matches!(text.as_bytes().first(), Some(b'{' | b'['));
        if container && depth >= MAX_JSON_DEPTH {
            return Err(TreeError::new(format!(
                "JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        let failure = RefCell::new(None);
        let visitor = TreeVisitor {
            depth,
            failure: &failure,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let value = match text.as_bytes().first() {
            Some(b'{') => de.deserialize_map(visitor),
            Some(b'[') => de.deserialize_seq(visitor),
            Some(b'"') => String::deserialize(&mut de).map(Json::String),
            Some(b't' | b'f') => bool::deserialize(&mut de).map(Json::Bool),
            Some(b'n') => <()>::deserialize(&mut de).map(|_| Json::Null),
            _ => return Ok(Json::Number(text.trim_end().to_string())),
        }
        .map_err(|e| {
            failure
                .take()
                .unwrap_or_else(|| TreeError::new(e.to_string()))
        })?;
        de.end().map_err(|e| TreeError::new(e.to_string()))?;
        Ok(value)
    }

    /// A short description of the JSON kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// One step of a path into a JSON value.
#[derive(Debug)]
enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A problem inside a JSON text and where it is.
#[derive(Debug)]
struct TreeError {
    /// From the problem outwards: the innermost step first.
    path: Vec<Step>,
    message: String,
}

impl TreeError {
    fn new(message: String) -> Self {
        TreeError {
            path: Vec::new(),
            message,
        }
    }

    /// The same error, seen from the container one level up.
    fn within(mut self, step: Step) -> Self {
        self.path.push(step);
        self
    }
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.message);
        }
        let steps: Vec<&Step> = self.path.iter().rev().collect();
        write_path(f, &steps)?;
        write!(f, ": {}", self.message)
    }
}

/// Writes a path as `inputs[0].value["a b"]`: plain keys after dots, other keys quoted.
fn write_path(f: &mut fmt::Formatter<'_>, steps: &[&Step]) -> fmt::Result {
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Key(key) if is_plain_key(key) => {
                if i > 0 {
                    f.write_str(".")?;
                }
                f.write_str(key)?;
            }
            Step::Key(key) => write!(f, "[{}]", serde_json::Value::String(key.clone()))?,
            Step::Index(index) => write!(f, "[{index}]")?,
        }
    }
    Ok(())
}

/// Whether a key can be written after a dot in a path (letters, digits, `_`, not first a
/// digit).
fn is_plain_key(key: &str) -> bool {
    key.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Json::from_raw(raw.get(), 0).map_err(de::Error::custom)
    }
}

/// Builds arrays and objects; an error found inside an element is left in `failure` with
/// its path (serde's error type carries only text).
struct TreeVisitor<'a> {
    depth: usize,
    failure: &'a RefCell<Option<TreeError>>,
}

impl TreeVisitor<'_> {
    fn fail<E: de::Error>(&self, error: TreeError) -> E {
        let text = error.to_string();
        *self.failure.borrow_mut() = Some(error);
        E::custom(text)
    }
}

impl<'de> Visitor<'de> for TreeVisitor<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array or object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            match Json::from_raw(raw.get(), self.depth + 1) {
                Ok(item) => items.push(item),
                Err(e) => return Err(self.fail(e.within(Step::Index(items.len())))),
            }
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                let message = format!("duplicate object key {}", serde_json::Value::String(key));
                return Err(self.fail(TreeError::new(message)));
            }
            let raw = map.next_value::<Box<RawValue>>()?;
            match Json::from_raw(raw.get(), self.depth + 1) {
                Ok(value) => entries.push((key, value)),
                Err(e) => return Err(self.fail(e.within(Step::Key(key)))),
            }
        }
        Ok(Json::Object(entries))
    }
}

impl fmt::Display for Json {
    /// Compact JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => f.write_str(n),
            Json::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Object(entries) => {
                f.write_str("{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{value}", serde_json::Value::String(key.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_number_tokens() {
        let json = Json::parse(r#"[-0, 1.0, 1e2, 18446744073709551616, 3]"#).unwrap();
        let Json::Array(items) = json else { panic!() };
        let tokens: Vec<_> = items
            .iter()
            .map(|j| match j {
                Json::Number(t) => t.as_str(),
                _ => "?",
            })
            .collect();
        assert_eq!(tokens, ["-0", "1.0", "1e2", "18446744073709551616", "3"]);
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        assert!(
            Json::parse(r#"{"a":1,"a":2}"#)
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(
            Json::parse(r#"{"x":[{"b":1,"b":1}]}"#)
                .unwrap_err()
                .contains("\"b\"")
        );
    }

    #[test]
    fn rejects_deep_nesting_and_trailing_text() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(Json::parse(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(Json::parse(&ok).is_ok());
        assert!(Json::parse("1 2").is_err());
        assert!(Json::parse("").is_err());
        let very_deep = "[".repeat(100_000);
        assert!(Json::parse(&very_deep).is_err());
    }

    #[test]
    fn display_is_compact_json() {
        let text = r#"{"k":[1,"x\n",null,true,{"z":-0.5}]}"#;
        assert_eq!(Json::parse(text).unwrap().to_string(), text);
    }
}
