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

    /// Whether a value of this type contains files or directories anywhere.
    pub fn mentions_paths(&self) -> bool {
        match self {
            ValueType::File | ValueType::Dir => true,
            ValueType::List(t) | ValueType::Map(t) | ValueType::Optional(t) => t.mentions_paths(),
            _ => false,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Int => f.write_str("int"),
            ValueType::Float => f.write_str("float"),
            ValueType::Bool => f.write_str("bool"),
            ValueType::String => f.write_str("string"),
            ValueType::Bytes => f.write_str("bytes"),
            ValueType::Datetime => f.write_str("datetime"),
            ValueType::Duration => f.write_str("duration"),
            ValueType::Struct => f.write_str("struct"),
            ValueType::File => f.write_str("file"),
            ValueType::Dir => f.write_str("dir"),
            ValueType::List(t) => write!(f, "list<{t}>"),
            ValueType::Map(t) => write!(f, "map<string,{t}>"),
            ValueType::Optional(t) => write!(f, "optional<{t}>"),
        }
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
