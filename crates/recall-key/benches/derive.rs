//! Key derivation speed: the target is ≤ 5 µs for 10 scalar inputs.
// criterion_group! defines a public function without a doc comment.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let material = recall_key::fixture::ten_scalar_inputs().unwrap();
    c.bench_function("derive_10_scalar_inputs", |b| {
        b.iter(|| material.derive().unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
