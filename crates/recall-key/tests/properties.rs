//! Property tests for the key spec's promises (docs/KEY-SPEC.md).

use std::path::Path;

use proptest::prelude::*;
use recall_key::cbor::{Item, encode};
use recall_key::{Digest, InputSource, KeyMaterial, Value, ValueType};

fn arb_scalar_type() -> impl Strategy<Value = ValueType> {
    prop_oneof![
        Just(ValueType::Int),
        Just(ValueType::Float),
        Just(ValueType::Bool),
        Just(ValueType::String),
        Just(ValueType::Bytes),
        Just(ValueType::Datetime),
        Just(ValueType::Duration),
    ]
}

fn arb_type() -> impl Strategy<Value = ValueType> {
    arb_scalar_type().prop_recursive(3, 8, 1, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| ValueType::List(Box::new(t))),
            inner.clone().prop_map(|t| ValueType::Map(Box::new(t))),
            inner
                .prop_filter("no nested optional", |t| !matches!(
                    t,
                    ValueType::Optional(_)
                ))
                .prop_map(|t| ValueType::Optional(Box::new(t))),
        ]
    })
}

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (-70000i32..70000).prop_map(|n| n as f64 / 4.0),
    ]
}

fn arb_value(ty: &ValueType) -> BoxedStrategy<Value> {
    match ty {
        ValueType::Int => any::<i64>().prop_map(Value::Int).boxed(),
        ValueType::Float => arb_float().prop_map(Value::Float).boxed(),
        ValueType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ValueType::String => ".{0,12}".prop_map(Value::String).boxed(),
        ValueType::Bytes => proptest::collection::vec(any::<u8>(), 0..12)
            .prop_map(Value::Bytes)
            .boxed(),
        ValueType::Datetime => (any::<i32>(), 0u32..1_000_000_000)
            .prop_map(|(s, nanos)| Value::Datetime {
                seconds: s as i64,
                nanos,
            })
            .boxed(),
        ValueType::Duration => any::<i64>().prop_map(Value::Duration).boxed(),
        ValueType::List(t) => proptest::collection::vec(arb_value(t), 0..4)
            .prop_map(Value::List)
            .boxed(),
        ValueType::Map(t) => proptest::collection::btree_map("[a-z]{0,3}", arb_value(t), 0..4)
            .prop_map(|m| Value::Map(m.into_iter().collect()))
            .boxed(),
        ValueType::Optional(t) => prop_oneof![Just(Value::Null), arb_value(t)].boxed(),
        _ => Just(Value::Null).boxed(),
    }
}

fn arb_typed_value() -> impl Strategy<Value = (ValueType, Value)> {
    arb_type().prop_flat_map(|t| {
        let values = arb_value(&t);
        (Just(t), values)
    })
}

/// Inputs with distinct names.
fn arb_inputs() -> impl Strategy<Value = Vec<(String, ValueType, Value)>> {
    proptest::collection::btree_map("[a-z][a-z0-9_]{0,6}", arb_typed_value(), 0..6)
        .prop_map(|m| m.into_iter().map(|(n, (t, v))| (n, t, v)).collect())
}

fn material(inputs: &[(String, ValueType, Value)]) -> KeyMaterial {
    let mut m = KeyMaterial::new("proj", "dev", "wf.task", "1").unwrap();
    for (name, ty, value) in inputs {
        m.add_input(name, ty.clone(), InputSource::Value(value.clone()))
            .unwrap();
    }
    m
}

fn key(m: &KeyMaterial) -> Digest {
    m.derive().unwrap().key
}

/// Value equality as the spec defines it: all NaNs equal, -0.0 ≠ 0.0, map order irrelevant.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            let mut x: Vec<_> = x.iter().collect();
            let mut y: Vec<_> = y.iter().collect();
            x.sort_by(|a, b| a.0.cmp(&b.0));
            y.sort_by(|a, b| a.0.cmp(&b.0));
            x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|(a, b)| a.0 == b.0 && same_value(&a.1, &b.1))
        }
        _ => a == b,
    }
}

fn encoded(v: &Value) -> Vec<u8> {
    encode(&v.to_item().unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn declaration_order_never_changes_the_key(inputs in arb_inputs(), seed in any::<u64>()) {
        let mut shuffled = inputs.clone();
        // A deterministic shuffle driven by the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(key(&material(&inputs)), key(&material(&shuffled)));
    }

    #[test]
    fn every_component_changes_the_key(inputs in arb_inputs(), which in 0usize..5, alt in "[a-z]{1,8}") {
        let base = material(&inputs);
        let (project, domain, task, version) = ("proj", "dev", "wf.task", "1");
        let alt = format!("x{alt}");
        let mut other = match which {
            0 => KeyMaterial::new(&alt, domain, task, version),
            1 => KeyMaterial::new(project, &alt, task, version),
            2 => KeyMaterial::new(project, domain, &alt, version),
            _ => KeyMaterial::new(project, domain, task, &alt),
        }
        .unwrap();
        for (name, ty, value) in &inputs {
            other.add_input(name, ty.clone(), InputSource::Value(value.clone())).unwrap();
        }
        if which == 4 {
            other = base.clone();
            other.set_salt(&alt).unwrap();
        }
        prop_assert_ne!(key(&base), key(&other));
    }

    #[test]
    fn a_different_input_value_changes_the_key(
        (ty, a, b) in arb_type().prop_flat_map(|t| {
            let (va, vb) = (arb_value(&t), arb_value(&t));
            (Just(t), va, vb)
        })
    ) {
        let ka = key(&material(&[("x".into(), ty.clone(), a.clone())]));
        let kb = key(&material(&[("x".into(), ty, b.clone())]));
        if same_value(&a, &b) {
            prop_assert_eq!(ka, kb);
        } else {
            prop_assert_ne!(ka, kb);
        }
    }

    #[test]
    fn encoding_is_injective((ty, a, b) in arb_type().prop_flat_map(|t| {
        let (va, vb) = (arb_value(&t), arb_value(&t));
        (Just(t), va, vb)
    })) {
        let _ = ty;
        prop_assert_eq!(same_value(&a, &b), encoded(&a) == encoded(&b));
    }

    #[test]
    fn a_different_declared_type_changes_the_key(t1 in arb_type(), t2 in arb_type()) {
        prop_assume!(t1 != t2);
        let mut a = KeyMaterial::new("p", "d", "t", "1").unwrap();
        a.add_input("x", t1, InputSource::Ignored).unwrap();
        let mut b = KeyMaterial::new("p", "d", "t", "1").unwrap();
        b.add_input("x", t2.clone(), InputSource::Ignored).unwrap();
        prop_assert_ne!(key(&a), key(&b));
        let mut c = KeyMaterial::new("p", "d", "t", "1").unwrap();
        c.add_output("y", t2).unwrap();
        prop_assert_ne!(key(&a), key(&c), "an input type and an output type are different signatures");
    }

    #[test]
    fn an_ignored_input_value_never_changes_the_key(
        inputs in arb_inputs(),
        (ty, a, b) in arb_typed_value().prop_flat_map(|(t, a)| {
            let vb = arb_value(&t);
            (Just(t), Just(a), vb)
        })
    ) {
        let with = |v: &Value| {
            let mut m = material(&inputs);
            m.add_input("ignored_in", ty.clone(), InputSource::Value(v.clone())).unwrap();
            m.ignore_input("ignored_in").unwrap();
            key(&m)
        };
        prop_assert_eq!(with(&a), with(&b));
    }

    #[test]
    fn floats_and_ints_encode_as_ciborium_does(f in arb_float(), n in any::<i64>()) {
        let mut theirs = Vec::new();
        ciborium::into_writer(&f, &mut theirs).unwrap();
        let ours = encode(&Item::Float(f)).unwrap();
        if f.is_nan() {
            prop_assert_eq!(ours, vec![0xf9, 0x7e, 0x00]);
        } else {
            prop_assert_eq!(ours, theirs);
        }
        let mut theirs = Vec::new();
        ciborium::into_writer(&n, &mut theirs).unwrap();
        prop_assert_eq!(encode(&Item::Int(n as i128)).unwrap(), theirs);
    }

    #[test]
    fn maps_encode_as_ciborium_does_given_sorted_keys(
        m in proptest::collection::btree_map(".{0,6}", any::<i32>(), 0..8)
    ) {
        let mut entries: Vec<(String, i32)> = m.into_iter().collect();
        entries.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
        let theirs_value = ciborium::Value::Map(
            entries
                .iter()
                .map(|(k, v)| (ciborium::Value::Text(k.clone()), ciborium::Value::Integer((*v).into())))
                .collect(),
        );
        let mut theirs = Vec::new();
        ciborium::into_writer(&theirs_value, &mut theirs).unwrap();
        // Ours sorts by itself, whatever order it is given.
        entries.reverse();
        let ours = encode(&Item::Map(
            entries.into_iter().map(|(k, v)| (k, Item::Int(v as i128))).collect(),
        ))
        .unwrap();
        prop_assert_eq!(ours, theirs);
    }

    /// The `--spec` parser never panics, whatever the text.
    #[test]
    fn spec_parser_never_panics_on_text(text in ".{0,200}") {
        let _ = KeyMaterial::from_json(&text, Path::new("/nonexistent"));
    }

    /// ... nor on JSON that is close to valid key material.
    #[test]
    fn spec_parser_never_panics_on_near_material(
        ty in "[a-z<>,]{0,20}",
        value in prop_oneof![
            Just("1".to_string()), Just("-0".to_string()), Just("1e999".to_string()),
            Just("\"x\"".to_string()), Just("null".to_string()), Just("[[[]]]".to_string()),
            Just("{\"a\":{}}".to_string()), Just("99999999999999999999999".to_string()),
            "\"[-PT0-9HMSmsun.:Zz+ ]{0,20}\"",
        ],
        extra in prop_oneof![Just(""), Just(",\"ignore\":true"), Just(",\"hash\":\"00\"")],
    ) {
        let text = format!(
            r#"{{"project":"p","domain":"d","task":"t","cache_version":"1",
               "inputs":[{{"name":"x","type":"{ty}","value":{value}{extra}}}]}}"#
        );
        if let Ok(m) = KeyMaterial::from_json(&text, Path::new("/nonexistent")) {
            let _ = m.derive();
        }
    }

    #[test]
    fn literal_parsers_never_panic(ty in arb_type(), text in ".{0,40}") {
        let _ = Value::from_literal(&ty, &text, Path::new("/nonexistent"));
        let _ = ValueType::parse(&text);
        let _ = recall_key::parse_duration(&text);
        let _ = recall_key::parse_datetime(&text);
    }
}
