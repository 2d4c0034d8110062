//! A protobuf message kept as its encoded bytes.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType, decode_varint, encode_key, encode_varint};
use prost::{DecodeError, Message};

/// A `flyteidl.core.Literal` as its encoded bytes: decoding keeps every field as it arrived
/// (unknown ones included, in their order) and encoding writes them back unchanged. recalld
/// stores these bytes, so a cached literal comes back byte-identical.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawLiteral {
    bytes: Vec<u8>,
}

impl RawLiteral {
    /// Wraps bytes that encode a literal (they are not checked).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        RawLiteral {
            bytes: bytes.into(),
        }
    }

    /// Encodes a typed message (a [`crate::flyteidl::core::Literal`]).
    pub fn encode_message(message: &impl Message) -> Self {
        RawLiteral {
            bytes: message.encode_to_vec(),
        }
    }

    /// Decodes the bytes as a typed message.
    pub fn decode_message<M: Message + Default>(&self) -> Result<M, DecodeError> {
        M::decode(self.bytes.as_slice())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl From<Bytes> for RawLiteral {
    fn from(bytes: Bytes) -> Self {
        RawLiteral::from_bytes(bytes.to_vec())
    }
}

impl Message for RawLiteral {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match wire_type {
            WireType::Varint => {
                let value = decode_varint(buf)?;
                encode_key(tag, wire_type, &mut self.bytes);
                encode_varint(value, &mut self.bytes);
            }
            WireType::SixtyFourBit => {
                let mut value = 0u64;
                encoding::fixed64::merge(wire_type, &mut value, buf, ctx)?;
                encode_key(tag, wire_type, &mut self.bytes);
                self.bytes.put_u64_le(value);
            }
            WireType::ThirtyTwoBit => {
                let mut value = 0u32;
                encoding::fixed32::merge(wire_type, &mut value, buf, ctx)?;
                encode_key(tag, wire_type, &mut self.bytes);
                self.bytes.put_u32_le(value);
            }
            WireType::LengthDelimited => {
                let mut value = Vec::new();
                encoding::bytes::merge(wire_type, &mut value, buf, ctx)?;
                encode_key(tag, wire_type, &mut self.bytes);
                encode_varint(value.len() as u64, &mut self.bytes);
                self.bytes.extend_from_slice(&value);
            }
            // Deprecated groups: flyteidl never uses them; they are checked and dropped.
            WireType::StartGroup | WireType::EndGroup => {
                encoding::skip_field(wire_type, tag, buf, ctx)?;
            }
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flyteidl::core::{
        Literal, LiteralMap, Primitive, Scalar, literal, primitive, scalar,
    };

    fn int(value: i64) -> Literal {
        Literal {
            value: Some(literal::Value::Scalar(Scalar {
                value: Some(scalar::Value::Primitive(Primitive {
                    value: Some(primitive::Value::Integer(value)),
                })),
            })),
            ..Literal::default()
        }
    }

    #[test]
    fn bytes_survive_a_round_trip_unchanged_even_with_unknown_fields() {
        let mut literals = std::collections::HashMap::new();
        literals.insert("a".to_string(), int(3));
        literals.insert("b".to_string(), int(-1));
        let map = Literal {
            value: Some(literal::Value::Map(LiteralMap { literals })),
            hash: "h".into(),
            ..Literal::default()
        };
        let mut bytes = map.encode_to_vec();
        // An unknown field (number 8: offloaded metadata, absent from our literals.proto),
        // a fixed64 and a fixed32 one.
        bytes.extend_from_slice(&[0x42, 0x03, 0x0a, 0x01, 0x78]);
        bytes.extend_from_slice(&[0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x55, 9, 9, 9, 9]);
        let raw = RawLiteral::decode(bytes.as_slice()).unwrap();
        assert_eq!(raw.as_bytes(), bytes.as_slice());
        assert_eq!(raw.encode_to_vec(), bytes);
        let typed: Literal = raw.decode_message().unwrap();
        assert_eq!(typed.hash, "h");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = int(300).encode_to_vec();
        for cut in 0..bytes.len() {
            let _ = RawLiteral::decode(&bytes[..cut]);
        }
        assert!(RawLiteral::decode(&[0x12u8, 0x05, 0x01][..]).is_err());
    }
}
