//! The declared types of inputs and outputs (docs/KEY-SPEC.md section 4.1).

use std::fmt;

/// Deepest nesting a type may have (count of `<`).
pub const MAX_TYPE_DEPTH: usize = 16;

/// A declared type. Its `Display` is the canonical text the signature hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Signed 64-bit integer.
    Int,
    /// IEEE 754 binary64.
    Float,
    /// Boolean.
    Bool,
    /// UTF-8 text.
    String,
    /// Byte sequence.
    Bytes,
    /// An instant in UTC, nanosecond precision.
    Datetime,
    /// Signed nanoseconds.
    Duration,
    /// A JSON object.
    Struct,
    /// A file, by content.
    File,
    /// A directory, by the content of its files.
    Dir,
    /// An ordered sequence.
    List(Box<ValueType>),
    /// String keys to values.
    Map(Box<ValueType>),
    /// Absent, or a value.
    Optional(Box<ValueType>),
}

impl ValueType {
    /// Parses the canonical text; `Err` says what is wrong.
    pub fn parse(text: &str) -> Result<ValueType, String> {
        if text.matches('<').count() > MAX_TYPE_DEPTH {
            return Err(format!("nested deeper than {MAX_TYPE_DEPTH} levels"));
        }
        Self::parse_inner(text)
    }

    fn parse_inner(text: &str) -> Result<ValueType, String> {
        let simple = match text {
            "int" => Some(ValueType::Int),
            "float" => Some(ValueType::Float),
            "bool" => Some(ValueType::Bool),
            "string" => Some(ValueType::String),
            "bytes" => Some(ValueType::Bytes),
            "datetime" => Some(ValueType::Datetime),
            "duration" => Some(ValueType::Duration),
            "struct" => Some(ValueType::Struct),
            "file" => Some(ValueType::File),
            "dir" => Some(ValueType::Dir),
            _ => None,
        };
        if let Some(ty) = simple {
            return Ok(ty);
        }
        let generic = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix('>'))
        };
        if let Some(inner) = generic("list<") {
            return Ok(ValueType::List(Box::new(Self::parse_inner(inner)?)));
        }
        if let Some(inner) = generic("map<string,") {
            return Ok(ValueType::Map(Box::new(Self::parse_inner(inner)?)));
        }
        if let Some(inner) = generic("optional<") {
            let inner = Self::parse_inner(inner)?;
            if matches!(inner, ValueType::Optional(_)) {
                return Err("optional<optional<T>> is not allowed".into());
            }
            return Ok(ValueType::Optional(Box::new(inner)));
        }
        if text.starts_with("map<") {
            return Err("map keys are always strings: write map<string,T>".into());
        }
        Err(
            "expected int, float, bool, string, bytes, datetime, duration, struct, file, dir, \
             list<T>, map<string,T> or optional<T> (no spaces)"
                .into(),
        )
    }

    /// The canonical text, borrowed for the simple types.
    pub fn canonical_text(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        match self {
            ValueType::Int => Cow::Borrowed("int"),
            ValueType::Float => Cow::Borrowed("float"),
            ValueType::Bool => Cow::Borrowed("bool"),
            ValueType::String => Cow::Borrowed("string"),
            ValueType::Bytes => Cow::Borrowed("bytes"),
            ValueType::Datetime => Cow::Borrowed("datetime"),
            ValueType::Duration => Cow::Borrowed("duration"),
            ValueType::Struct => Cow::Borrowed("struct"),
            ValueType::File => Cow::Borrowed("file"),
            ValueType::Dir => Cow::Borrowed("dir"),
            ValueType::List(t) => Cow::Owned(format!("list<{t}>")),
            ValueType::Map(t) => Cow::Owned(format!("map<string,{t}>")),
            ValueType::Optional(t) => Cow::Owned(format!("optional<{t}>")),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical_text())
    }
}

impl serde::Serialize for ValueType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical_text())
    }
}

impl<'de> serde::Deserialize<'de> for ValueType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ValueType::parse(&text)
            .map_err(|reason| serde::de::Error::custom(format!("type {text:?}: {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_round_trips() {
        for text in [
            "int",
            "list<map<string,optional<datetime>>>",
            "map<string,list<file>>",
            "optional<struct>",
            "dir",
        ] {
            assert_eq!(ValueType::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_other_spellings() {
        for bad in [
            "",
            "Int",
            "str",
            "list<int",
            "list <int>",
            "map<int>",
            "map<string, int>",
            "optional<optional<int>>",
            "list<>",
            "integer",
        ] {
            assert!(ValueType::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let deep = format!("{}int{}", "list<".repeat(17), ">".repeat(17));
        assert!(ValueType::parse(&deep).unwrap_err().contains("deeper"));
        let ok = format!("{}int{}", "list<".repeat(16), ">".repeat(16));
        assert!(ValueType::parse(&ok).is_ok());
    }
}
