//! The key material the speed measurements time (feature `bench-fixture`): recall-key's
//! `derive` benchmark and recall-py's `rust_baseline` example, which `python/bench/compare.py`
//! compares with the same material built from Python.

use crate::{InputSource, KeyError, KeyMaterial, Value, ValueType};

/// Task `wf.example.train` of `flytesnacks/development` with ten scalar inputs (ints, floats,
/// a bool, strings, a duration and a datetime) and one `file` output.
pub fn ten_scalar_inputs() -> Result<KeyMaterial, KeyError> {
    let mut m = KeyMaterial::new("flytesnacks", "development", "wf.example.train", "1.0")?;
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
        m.add_input(name, ty, InputSource::Value(value))?;
    }
    m.add_output("model", ValueType::File)?;
    Ok(m)
}
