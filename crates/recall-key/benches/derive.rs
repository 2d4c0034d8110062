//! Key derivation speed: the target is ≤ 5 µs for 10 scalar inputs.
// criterion_group! defines a public function without a doc comment.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use recall_key::{InputSource, KeyMaterial, Value, ValueType};

fn ten_scalar_inputs() -> KeyMaterial {
    let mut m = KeyMaterial::new("flytesnacks", "development", "wf.example.train", "1.0").unwrap();
    let inputs: [(&str, ValueType, Value); 10] = [
        ("epochs", ValueType::Int, Value::Int(10)),
        ("lr", ValueType::Float, Value::Float(0.001)),
        ("shuffle", ValueType::Bool, Value::Bool(true)),
        ("name", ValueType::String, Value::String("resnet-50".into())),
        ("seed", ValueType::Int, Value::Int(42)),
        ("momentum", ValueType::Float, Value::Float(0.9)),
        (
            "dataset",
            ValueType::String,
            Value::String("imagenet/train".into()),
        ),
        ("batch", ValueType::Int, Value::Int(256)),
        (
            "timeout",
            ValueType::Duration,
            Value::Duration(3_600_000_000_000),
        ),
        (
            "asof",
            ValueType::Datetime,
            Value::Datetime {
                seconds: 1_700_000_000,
                nanos: 0,
            },
        ),
    ];
    for (name, ty, value) in inputs {
        m.add_input(name, ty, InputSource::Value(value)).unwrap();
    }
    m.add_output("model", ValueType::File).unwrap();
    m
}

fn bench(c: &mut Criterion) {
    let material = ten_scalar_inputs();
    c.bench_function("derive_10_scalar_inputs", |b| {
        b.iter(|| material.derive().unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
