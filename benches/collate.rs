//! Encodings and comparisons per second for typical view keys.
//!
//! `cargo bench --bench collate` (target: a typical string key well under 2 µs).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use settee::collate::{compare, encode};
use std::hint::black_box;

fn keys() -> Vec<(&'static str, Value, Value)> {
    vec![
        (
            "ascii_string",
            json!("order-2024-000123"),
            json!("order-2024-000124"),
        ),
        (
            "string",
            json!("customer-Zoë Müller"),
            json!("customer-Zoe Muller"),
        ),
        (
            "string_number",
            json!(["2024-06-01", 1234.5]),
            json!(["2024-06-01", 1234]),
        ),
        (
            "small_object",
            json!({"type": "order", "year": 2024, "tags": ["a", "b"]}),
            json!({"type": "order", "year": 2024, "tags": ["a", "c"]}),
        ),
    ]
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (name, key, _) in keys() {
        let mut out = Vec::with_capacity(128);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(&key), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_compare(c: &mut Criterion) {
    let mut group = c.benchmark_group("compare");
    group.throughput(Throughput::Elements(1));
    for (name, a, b) in keys() {
        group.bench_function(name, |bench| {
            bench.iter(|| compare(black_box(&a), black_box(&b)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_compare);
criterion_main!(benches);
