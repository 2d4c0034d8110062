//! The Rust side of `python/bench/compare.py`: the same two operations the script times from
//! Python, done straight in Rust. Prints one JSON object: nanoseconds per operation.
//!
//! * `key_ns`: key material with 10 scalar inputs and one output built and derived
//!   (`KeyMaterial::new`, `add_input` x 10, `add_output`, `derive`).
//! * `lookup_ns`: one `CacheClient::lookup` hit on a local-disk store, through
//!   `DirectClient` on a multi-thread runtime, as the Python `Store.lookup` does.
//!
//! * `file_ns` (when FILE is given): a key with FILE as its one `file` input, hashed by content.
//!
//! `cargo run --release -p recall-py --example rust_baseline -- STORE_DIR [FILE]`

use std::time::Instant;

use recall_cli::client::CacheClient;
use recall_cli::direct::DirectClient;
use recall_cli::error::CliError;
use recall_key::{DerivedKey, InputSource, KeyError, KeyMaterial, Value, ValueType};
use recall_store::{EntryRef, Output, PublishOptions, StoreConfig};

/// The benchmark's key material (ten scalar inputs, one output), built and derived.
fn key() -> Result<DerivedKey, KeyError> {
    recall_key::fixture::ten_scalar_inputs()?.derive()
}

/// Best of five rounds of `n` calls, in nanoseconds per call.
fn time<E>(n: u32, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..n {
            f()?;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(n));
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: rust_baseline STORE_DIR [FILE]")?;
    let key_ns = time(20_000, || key().map(|_| ()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let url = format!("file://{}", std::path::absolute(&dir)?.display());
    let client = runtime.block_on(DirectClient::open(&url, StoreConfig::default()))?;
    let derived = key()?;
    runtime.block_on(client.store().publish(
        &derived,
        &[Output::bytes("model", &b"weights"[..])],
        &PublishOptions::default(),
    ))?;
    let entry = EntryRef::of(&derived)?;
    let lookup_ns = time(2_000, || {
        runtime
            .block_on(client.lookup(&entry))
            .and_then(|hit| match hit.is_miss() {
                true => Err(CliError::Usage("the entry just published missed".into())),
                false => Ok(()),
            })
    })?;
    let file_ns = match std::env::args().nth(2) {
        None => 0.0,
        Some(file) => time(1, || {
            let mut m = KeyMaterial::new("p", "d", "t", "1")?;
            let value = Value::File(std::path::PathBuf::from(&file));
            m.add_input("data", ValueType::File, InputSource::Value(value))?;
            m.derive().map(|_| ())
        })?,
    };
    println!(
        "{{\"key_ns\": {key_ns:.0}, \"lookup_ns\": {lookup_ns:.0}, \"file_ns\": {file_ns:.0}}}"
    );
    Ok(())
}
