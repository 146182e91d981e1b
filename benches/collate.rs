//! Encodings and comparisons per second for typical view keys.
//!
//! `cargo bench --bench collate` (target: a typical string key well under 2 µs).
//! `encode/*` repeats one key (served by the per-thread sort-key memo after the
//! first call); `encode_unique/string` never repeats a key.

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

/// Strings that never repeat: every encoding pays for the ICU sort key.
fn bench_encode_unique(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_unique");
    group.throughput(Throughput::Elements(1));
    let keys: Vec<Value> = (0..100_000)
        .map(|i| json!(format!("customer-{i:06} Müller")))
        .collect();
    let mut out = Vec::with_capacity(128);
    let mut next = 0;
    group.bench_function("string", |b| {
        b.iter(|| {
            out.clear();
            encode(black_box(&keys[next % keys.len()]), &mut out);
            next += 1;
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_encode, bench_encode_unique, bench_compare);
criterion_main!(benches);
