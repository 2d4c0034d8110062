//! Typed input values: parsing from JSON and from command-line literals, and the data item
//! each value encodes to (docs/KEY-SPEC.md sections 4.2, 4.3 and 8).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::cbor::{self, Item};
use crate::files::{self, PathError};
use crate::json::Json;
use crate::timefmt::{parse_datetime, parse_duration};
use crate::types::ValueType;

/// Why a value could not be encoded.
#[derive(Debug)]
pub enum EncodeError {
    /// A file or directory could not be hashed.
    Path(PathError),
    /// A map value has the same key twice.
    DuplicateKey(String),
}

/// Largest integer magnitude a struct number may have when written as an integer token.
const MAX_EXACT_DOUBLE_INT: u128 = 1 << 53;

/// A value checked against its declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `bool`.
    Bool(bool),
    /// A `string`, kept exactly as given (no Unicode normalisation).
    String(String),
    /// A `bytes` value.
    Bytes(Vec<u8>),
    /// A `datetime`: seconds since the epoch rounded down, and the nanoseconds after them.
    Datetime {
        /// Whole seconds since 1970-01-01T00:00:00Z, rounded towards negative infinity.
        seconds: i64,
        /// Nanoseconds after `seconds`, 0 to 999 999 999.
        nanos: u32,
    },
    /// A `duration` in nanoseconds.
    Duration(i64),
    /// A `list<T>`.
    List(Vec<Value>),
    /// A `map<string,T>`, keys unique.
    Map(Vec<(String, Value)>),
    /// The absent value of an `optional<T>`.
    Null,
    /// A `struct`, already in its data-item form.
    Struct(Item),
    /// A `file`, by path; hashed when the key is derived.
    File(PathBuf),
    /// A `dir`, by path; hashed when the key is derived.
    Dir(PathBuf),
}

impl Value {
    /// Reads a value of type `ty` from its JSON form; relative paths resolve against `base`.
    pub fn from_json(ty: &ValueType, json: &Json, base: &Path) -> Result<Value, String> {
        let mismatch = |want: &str| format!("expected {want}, got {}", json.kind());
        match ty {
            ValueType::Int => match json {
                Json::Number(token) => parse_int_token(token).map(Value::Int),
                _ => Err(mismatch("an integer")),
            },
            ValueType::Float => match json {
                Json::Number(token) => Ok(Value::Float(parse_float_token(token)?)),
                Json::String(s) => match s.as_str() {
                    "NaN" => Ok(Value::Float(f64::NAN)),
                    "Infinity" => Ok(Value::Float(f64::INFINITY)),
                    "-Infinity" => Ok(Value::Float(f64::NEG_INFINITY)),
                    _ => Err(format!(
                        "expected a number, \"NaN\", \"Infinity\" or \"-Infinity\", got the string {s:?}"
                    )),
                },
                _ => Err(mismatch("a number")),
            },
            ValueType::Bool => match json {
                Json::Bool(b) => Ok(Value::Bool(*b)),
                _ => Err(mismatch("true or false")),
            },
            ValueType::String => match json {
                Json::String(s) => Ok(Value::String(s.clone())),
                _ => Err(mismatch("a string")),
            },
            ValueType::Bytes | ValueType::Datetime | ValueType::File | ValueType::Dir => match json
            {
                Json::String(s) => Value::from_text(ty, s, base),
                _ => Err(mismatch("a string")),
            },
            ValueType::Duration => match json {
                Json::Number(token) => parse_int_token(token).map(Value::Duration),
                Json::String(s) => parse_duration(s).map(Value::Duration),
                _ => Err(mismatch("a duration string or integer nanoseconds")),
            },
            ValueType::List(inner) => match json {
                Json::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        Value::from_json(inner, item, base).map_err(|e| format!("element {i}: {e}"))
                    })
                    .collect::<Result<_, _>>()
                    .map(Value::List),
                _ => Err(mismatch("an array")),
            },
            ValueType::Map(inner) => match json {
                Json::Object(entries) => entries
                    .iter()
                    .map(|(key, item)| {
                        Value::from_json(inner, item, base)
                            .map(|v| (key.clone(), v))
                            .map_err(|e| format!("key {key:?}: {e}"))
                    })
                    .collect::<Result<_, _>>()
                    .map(Value::Map),
                _ => Err(mismatch("an object")),
            },
            ValueType::Optional(inner) => match json {
                Json::Null => Ok(Value::Null),
                other => Value::from_json(inner, other, base),
            },
            ValueType::Struct => match json {
                Json::Object(_) => struct_item(json).map(Value::Struct),
                _ => Err(mismatch("an object")),
            },
        }
    }

    /// Reads a value from a command-line literal: scalars as plain text, list, map,
    /// optional and struct as JSON, file and dir as `@PATH` (relative to `base`).
    pub fn from_literal(ty: &ValueType, text: &str, base: &Path) -> Result<Value, String> {
        match ty {
            ValueType::File | ValueType::Dir => match text.strip_prefix('@') {
                Some(path) if !path.is_empty() => Value::from_text(ty, path, base),
                _ => Err(format!("a {ty} value is written @PATH")),
            },
            ValueType::List(_) | ValueType::Map(_) | ValueType::Optional(_) | ValueType::Struct => {
                let json = Json::parse(text).map_err(|e| format!("not valid JSON: {e}"))?;
                Value::from_json(ty, &json, base)
            }
            _ => Value::from_text(ty, text, base),
        }
    }

    /// Reads a scalar, file or dir value from its plain text form.
    fn from_text(ty: &ValueType, text: &str, base: &Path) -> Result<Value, String> {
        match ty {
            ValueType::Int => {
                if !is_integer_token(text) {
                    return Err("expected an integer like 42 or -7".into());
                }
                parse_int_token(text).map(Value::Int)
            }
            ValueType::Float => {
                let special = match text {
                    "NaN" | "nan" => Some(f64::NAN),
                    "Infinity" | "inf" => Some(f64::INFINITY),
                    "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
                    _ => None,
                };
                match special {
                    Some(f) => Ok(Value::Float(f)),
                    None if is_number_token(text) => parse_float_token(text).map(Value::Float),
                    None => {
                        Err("expected a number like 1.5, -2e-3, NaN, Infinity or -Infinity".into())
                    }
                }
            }
            ValueType::Bool => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err("expected true or false".into()),
            },
            ValueType::String => Ok(Value::String(text.to_string())),
            ValueType::Bytes => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Value::Bytes)
                .map_err(|e| format!("expected standard base64 with padding: {e}")),
            ValueType::Datetime => {
                parse_datetime(text).map(|(seconds, nanos)| Value::Datetime { seconds, nanos })
            }
            ValueType::Duration => parse_duration(text).map(Value::Duration),
            ValueType::File => Ok(Value::File(base.join(text))),
            ValueType::Dir => Ok(Value::Dir(base.join(text))),
            _ => Err(format!("{ty} has no plain text form")),
        }
    }

    /// Appends the deterministic CBOR of the value's data item (`CBOR(enc(value))`); reads
    /// and hashes files and directories. Same bytes as `cbor::encode(&self.to_item()?)`.
    pub fn write_cbor(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Value::Int(n) | Value::Duration(n) => cbor::write_int(*n as i128, out),
            Value::Float(f) => cbor::write_float(*f, out),
            Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Value::String(s) => cbor::write_text(s, out),
            Value::Bytes(b) => cbor::write_bytes(b, out),
            Value::Datetime { seconds, nanos } => {
                cbor::write_array_head(2, out);
                cbor::write_int(*seconds as i128, out);
                cbor::write_int(*nanos as i128, out);
            }
            Value::List(items) => {
                cbor::write_array_head(items.len(), out);
                for item in items {
                    item.write_cbor(out)?;
                }
            }
            Value::Map(entries) => {
                let mut order: Vec<&(String, Value)> = entries.iter().collect();
                order.sort_by(|a, b| cbor::key_order(&a.0, &b.0));
                if let Some(pair) = order.windows(2).find(|w| w[0].0 == w[1].0) {
                    return Err(EncodeError::DuplicateKey(pair[0].0.clone()));
                }
                cbor::write_map_head(order.len(), out);
                for (key, value) in order {
                    cbor::write_text(key, out);
                    value.write_cbor(out)?;
                }
            }
            Value::Null => out.push(0xf6),
            Value::Struct(item) => {
                cbor::encode_into(item, out).map_err(|e| EncodeError::DuplicateKey(e.key))?
            }
            Value::File(_) | Value::Dir(_) => {
                let item = self.to_item().map_err(EncodeError::Path)?;
                cbor::encode_into(&item, out).map_err(|e| EncodeError::DuplicateKey(e.key))?;
            }
        }
        Ok(())
    }

    /// The value's data item; reads and hashes files and directories.
    pub fn to_item(&self) -> Result<Item, PathError> {
        Ok(match self {
            Value::Int(n) => Item::Int(*n as i128),
            Value::Float(f) => Item::Float(*f),
            Value::Bool(b) => Item::Bool(*b),
            Value::String(s) => Item::Text(s.clone()),
            Value::Bytes(b) => Item::Bytes(b.clone()),
            Value::Datetime { seconds, nanos } => {
                Item::Array(vec![Item::Int(*seconds as i128), Item::Int(*nanos as i128)])
            }
            Value::Duration(n) => Item::Int(*n as i128),
            Value::List(items) => {
                Item::Array(items.iter().map(Value::to_item).collect::<Result<_, _>>()?)
            }
            Value::Map(entries) => Item::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.to_item()?)))
                    .collect::<Result<_, PathError>>()?,
            ),
            Value::Null => Item::Null,
            Value::Struct(item) => item.clone(),
            Value::File(path) => {
                let (size, digest) = files::hash_file(path)?;
                Item::Array(vec![Item::Int(size as i128), Item::bytes(digest.0)])
            }
            Value::Dir(path) => Item::bytes(files::hash_dir(path)?.0),
        })
    }
}

/// Whether `text` is a JSON integer token: `-?(0|[1-9][0-9]*)`.
fn is_integer_token(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Whether `text` follows the JSON number grammar
/// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`), whatever its magnitude: `1e400` is a
/// number token (whose value is +infinity), as in the JSON form.
fn is_number_token(text: &str) -> bool {
    let b = text.as_bytes();
    let digits_from = |i: usize| {
        i + b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_from(i),
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        let end = digits_from(i + 1);
        if end == i + 1 {
            return false;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits_from(i);
        if end == i {
            return false;
        }
        i = end;
    }
    i == b.len()
}

/// A signed 64-bit integer from a JSON number token: integer tokens only.
fn parse_int_token(token: &str) -> Result<i64, String> {
    if !is_integer_token(token) {
        return Err(format!(
            "expected an integer, got {token} (no fraction or exponent allowed)"
        ));
    }
    token
        .parse::<i64>()
        .map_err(|_| format!("{token} is outside the signed 64-bit range"))
}

/// The correctly rounded binary64 value of a JSON number token.
fn parse_float_token(token: &str) -> Result<f64, String> {
    token
        .parse::<f64>()
        .map_err(|_| format!("{token} is not a number"))
}

/// The data item of a JSON value inside a struct: numbers become doubles.
fn struct_item(json: &Json) -> Result<Item, String> {
    Ok(match json {
        Json::Null => Item::Null,
        Json::Bool(b) => Item::Bool(*b),
        Json::String(s) => Item::Text(s.clone()),
        Json::Number(token) => {
            if is_integer_token(token) {
                let magnitude = token.trim_start_matches('-');
                let too_big = magnitude.len() > 16
                    || magnitude
                        .parse::<u128>()
                        .is_ok_and(|m| m > MAX_EXACT_DOUBLE_INT);
                if too_big {
                    return Err(format!(
                        "struct number {token} is an integer beyond 2^53, which a double cannot \
                         hold exactly; pass it as a string"
                    ));
                }
            }
            Item::Float(parse_float_token(token)?)
        }
        Json::Array(items) => Item::Array(items.iter().map(struct_item).collect::<Result<_, _>>()?),
        Json::Object(entries) => Item::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), struct_item(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(ty: &str, text: &str) -> Result<Value, String> {
        Value::from_literal(&ValueType::parse(ty).unwrap(), text, Path::new("/base"))
    }

    fn json(ty: &str, text: &str) -> Result<Value, String> {
        let json = Json::parse(text).unwrap();
        Value::from_json(&ValueType::parse(ty).unwrap(), &json, Path::new("/base"))
    }

    #[test]
    fn ints_are_exact() {
        assert_eq!(lit("int", "42"), Ok(Value::Int(42)));
        assert_eq!(lit("int", "-9223372036854775808"), Ok(Value::Int(i64::MIN)));
        for bad in [
            "1.5",
            "1.0",
            "1e2",
            "+1",
            "01",
            " 1",
            "x",
            "",
            "9223372036854775808",
        ] {
            assert!(lit("int", bad).is_err(), "{bad:?}");
        }
        assert!(json("int", "\"1\"").is_err());
        assert!(json("int", "1.0").is_err());
        assert_eq!(json("int", "-0"), Ok(Value::Int(0)));
    }

    #[test]
    fn floats_keep_negative_zero_and_specials() {
        let Ok(Value::Float(f)) = json("float", "-0") else {
            panic!()
        };
        assert!(f == 0.0 && f.is_sign_negative());
        assert_eq!(json("float", "3"), Ok(Value::Float(3.0)));
        assert!(matches!(json("float", "\"NaN\""), Ok(Value::Float(f)) if f.is_nan()));
        assert_eq!(lit("float", "-inf"), Ok(Value::Float(f64::NEG_INFINITY)));
        for bad in [
            "1,5", "0x10", "", "-", "01", "1.", ".5", "1e", "1e+", "+1", " 1", "1 ", "1.5.2",
            "--1", "infinity",
        ] {
            assert!(lit("float", bad).is_err(), "{bad:?}");
        }
        for good in [
            "0",
            "-0",
            "1.5",
            "-2e-3",
            "1E+2",
            "0.0e0",
            "123456789012345678901234",
        ] {
            assert_eq!(
                lit("float", good),
                json("float", good),
                "{good:?} should read the same in both forms"
            );
        }
        assert!(json("float", "\"1.5\"").is_err());
    }

    /// Issue 12 item 19: a number token beyond the binary64 range reads the same in the flag
    /// form as in the JSON form (KEY-SPEC section 8: round to nearest, so +-infinity or 0).
    #[test]
    fn out_of_range_floats_agree_between_flag_and_json_forms() {
        for (token, want) in [
            ("1e400", f64::INFINITY),
            ("-1e400", f64::NEG_INFINITY),
            ("1e-400", 0.0),
        ] {
            assert_eq!(lit("float", token), Ok(Value::Float(want)), "{token}");
            assert_eq!(json("float", token), Ok(Value::Float(want)), "{token}");
        }
        let Ok(Value::Float(f)) = lit("float", "-1e-400") else {
            panic!()
        };
        assert!(f == 0.0 && f.is_sign_negative());
        assert_eq!(
            lit("list<float>", "[1e400]"),
            json("list<float>", "[1e400]")
        );
    }

    #[test]
    fn struct_numbers_are_doubles_and_big_integers_are_rejected() {
        let one = json("struct", r#"{"a":1}"#).unwrap();
        assert_eq!(one, json("struct", r#"{"a":1.0}"#).unwrap());
        assert_eq!(one, json("struct", r#"{"a":1e0}"#).unwrap());
        assert!(json("struct", r#"{"a":9007199254740992}"#).is_ok());
        let err = json("struct", r#"{"a":[9007199254740993]}"#).unwrap_err();
        assert!(err.contains("9007199254740993"), "{err}");
        assert!(json("struct", "[1]").is_err());
    }

    #[test]
    fn nested_errors_say_where() {
        let err = json("list<map<string,int>>", r#"[{"a":1},{"b":"x"}]"#).unwrap_err();
        assert!(
            err.contains("element 1") && err.contains("key \"b\""),
            "{err}"
        );
    }

    #[test]
    fn optional_and_paths() {
        assert_eq!(lit("optional<int>", "null"), Ok(Value::Null));
        assert_eq!(lit("optional<int>", "5"), Ok(Value::Int(5)));
        assert_eq!(
            lit("file", "@data/x.csv"),
            Ok(Value::File(PathBuf::from("/base/data/x.csv")))
        );
        assert_eq!(lit("dir", "@/abs"), Ok(Value::Dir(PathBuf::from("/abs"))));
        assert!(lit("file", "data/x.csv").is_err());
        assert!(lit("file", "@").is_err());
    }

    #[test]
    fn bytes_are_canonical_base64() {
        assert_eq!(lit("bytes", "AP8="), Ok(Value::Bytes(vec![0, 255])));
        assert_eq!(lit("bytes", ""), Ok(Value::Bytes(vec![])));
        for bad in ["AP8", "AP9=", "A P8=", "%%%%"] {
            assert!(lit("bytes", bad).is_err(), "{bad:?}");
        }
    }
}
