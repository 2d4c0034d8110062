//! Deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding) for the data items the
//! key spec and the store's manifests use. docs/KEY-SPEC.md section 5 is the contract.

/// A CBOR data item, restricted to what recall encodes: no tags, no indefinite lengths.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An integer (major type 0 or 1, chosen by sign).
    Int(i128),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Item>),
    /// A map with text keys; entries are sorted and checked for duplicates when encoded.
    Map(Vec<(String, Item)>),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A float, written in the shortest exact precision.
    Float(f64),
}

/// A map with the same key twice cannot be encoded deterministically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duplicate map key {key:?}")]
pub struct DuplicateKey {
    /// The repeated key.
    pub key: String,
}

impl Item {
    /// Shorthand for a text item.
    pub fn text(s: impl Into<String>) -> Item {
        Item::Text(s.into())
    }

    /// Shorthand for a byte-string item.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Item {
        Item::Bytes(b.into())
    }
}

/// Encodes `item` deterministically.
pub fn encode(item: &Item) -> Result<Vec<u8>, DuplicateKey> {
    let mut out = Vec::with_capacity(64);
    encode_into(item, &mut out)?;
    Ok(out)
}

/// Appends the deterministic encoding of `item` to `out`.
pub fn encode_into(item: &Item, out: &mut Vec<u8>) -> Result<(), DuplicateKey> {
    match item {
        Item::Int(n) => write_int(*n, out),
        Item::Bytes(b) => write_bytes(b, out),
        Item::Text(s) => write_text(s, out),
        Item::Array(items) => {
            write_head(4, items.len() as u64, out);
            for item in items {
                encode_into(item, out)?;
            }
        }
        Item::Map(entries) => {
            // Text keys sort by their encoding: shorter UTF-8 first, then bytewise.
            let mut order: Vec<&(String, Item)> = entries.iter().collect();
            order.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
            if let Some(pair) = order.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(DuplicateKey {
                    key: pair[0].0.clone(),
                });
            }
            write_head(5, order.len() as u64, out);
            for (key, value) in order {
                write_text(key, out);
                encode_into(value, out)?;
            }
        }
        Item::Bool(false) => out.push(0xf4),
        Item::Bool(true) => out.push(0xf5),
        Item::Null => out.push(0xf6),
        Item::Float(f) => write_float(*f, out),
    }
    Ok(())
}

/// The deterministic order of text map keys: the order of their encodings, which is shorter
/// UTF-8 first, then bytewise.
pub fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes()))
}

/// Appends a text string.
pub fn write_text(s: &str, out: &mut Vec<u8>) {
    write_head(3, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a byte string.
pub fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_head(2, b.len() as u64, out);
    out.extend_from_slice(b);
}

/// Appends the head of an array of `len` items.
pub fn write_array_head(len: usize, out: &mut Vec<u8>) {
    write_head(4, len as u64, out);
}

/// Appends the head of a map of `len` entries; the caller writes them in [`key_order`].
pub fn write_map_head(len: usize, out: &mut Vec<u8>) {
    write_head(5, len as u64, out);
}

/// Appends an integer. The CBOR range is -2^64 ..= 2^64-1; recall's integers are 64-bit.
pub fn write_int(n: i128, out: &mut Vec<u8>) {
    if n >= 0 {
        write_head(0, n as u64, out);
    } else {
        write_head(1, (-1 - n) as u64, out);
    }
}

/// Writes a major type and its argument in the shortest form.
fn write_head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Appends a float in the shortest of half, single and double precision that holds it
/// exactly; every NaN becomes the canonical half-precision NaN `f9 7e 00`.
pub fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        out.extend_from_slice(&[0xf9, 0x7e, 0x00]);
        return;
    }
    if let Some(half) = f64_to_f16_exact(f) {
        out.push(0xf9);
        out.extend_from_slice(&half.to_be_bytes());
        return;
    }
    let single = f as f32;
    if single as f64 == f {
        out.push(0xfa);
        out.extend_from_slice(&single.to_bits().to_be_bytes());
        return;
    }
    out.push(0xfb);
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

/// The IEEE 754 binary16 bits of `f` when `f` (not NaN) is exactly representable as one.
fn f64_to_f16_exact(f: f64) -> Option<u16> {
    let bits = f.to_bits();
    let sign = ((bits >> 48) & 0x8000) as u16;
    if f == 0.0 {
        return Some(sign);
    }
    if f.is_infinite() {
        return Some(sign | 0x7c00);
    }
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mantissa = bits & 0x000f_ffff_ffff_ffff;
    if (-14..=15).contains(&exp) {
        // Normal half: 10 mantissa bits; the other 42 must be zero.
        if mantissa & ((1u64 << 42) - 1) != 0 {
            return None;
        }
        let half_exp = (exp + 15) as u16;
        return Some(sign | (half_exp << 10) | (mantissa >> 42) as u16);
    }
    if (-24..-14).contains(&exp) {
        // Subnormal half: value = m × 2^-24 with m < 1024; the full significand
        // (with its implicit 1) shifted right must lose no bits.
        let significand = mantissa | (1u64 << 52);
        let shift = 52 - (exp + 24);
        if significand & ((1u64 << shift) - 1) != 0 {
            return None;
        }
        return Some(sign | (significand >> shift) as u16);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(item: &Item) -> String {
        encode(item)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn integers_use_the_shortest_form() {
        let cases: &[(i128, &str)] = &[
            (0, "00"),
            (23, "17"),
            (24, "1818"),
            (255, "18ff"),
            (256, "190100"),
            (65536, "1a00010000"),
            (4294967296, "1b0000000100000000"),
            (-1, "20"),
            (-24, "37"),
            (-25, "3818"),
            (i64::MIN as i128, "3b7fffffffffffffff"),
            (i64::MAX as i128, "1b7fffffffffffffff"),
        ];
        for (n, want) in cases {
            assert_eq!(hex(&Item::Int(*n)), *want, "int {n}");
        }
    }

    #[test]
    fn floats_match_the_spec_table() {
        let cases: &[(f64, &str)] = &[
            (0.0, "f90000"),
            (-0.0, "f98000"),
            (1.0, "f93c00"),
            (1.5, "f93e00"),
            (100000.0, "fa47c35000"),
            (0.1, "fb3fb999999999999a"),
            (f64::INFINITY, "f97c00"),
            (f64::NEG_INFINITY, "f9fc00"),
            (f64::NAN, "f97e00"),
            (-f64::NAN, "f97e00"),
            (5.960464477539063e-8, "f90001"),
            (65504.0, "f97bff"),
            (65505.0, "fa477fe100"),
            (3.0, "f94200"),
        ];
        for (f, want) in cases {
            assert_eq!(hex(&Item::Float(*f)), *want, "float {f}");
        }
    }

    #[test]
    fn maps_sort_by_encoded_key_and_reject_duplicates() {
        let map = Item::Map(vec![
            ("ab".into(), Item::Int(1)),
            ("b".into(), Item::Int(2)),
            ("aa".into(), Item::Int(3)),
        ]);
        // b, aa, ab
        assert_eq!(hex(&map), "a36162026261610362616201");
        let dup = Item::Map(vec![("x".into(), Item::Null), ("x".into(), Item::Null)]);
        assert_eq!(encode(&dup).unwrap_err().key, "x");
    }

    #[test]
    fn strings_and_arrays() {
        assert_eq!(hex(&Item::text("")), "60");
        assert_eq!(hex(&Item::text("é")), "62c3a9");
        assert_eq!(hex(&Item::bytes(vec![0u8, 255])), "4200ff");
        assert_eq!(
            hex(&Item::Array(vec![Item::Bool(true), Item::Null])),
            "82f5f6"
        );
    }
}
