//! Document store benchmarks: single puts (one durable transaction each),
//! batched puts, a bulk import into a fresh database, gets, and the
//! indexer's feed.
//!
//! `cargo bench --bench store`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use serde_json::json;
use settee::bench_data::OrdersGenerator;
use settee::{BulkOptions, Database, ReadOptions};

// As the `settee` binary: mimalloc, much faster than glibc for many small JSON values.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn loaded_db(docs: usize) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("db")).unwrap();
    let mut generator = OrdersGenerator::new(42);
    for _ in 0..docs.div_ceil(10_000) {
        let batch: Vec<_> = generator.by_ref().take(10_000.min(docs)).collect();
        db.bulk_docs(batch, BulkOptions::default()).unwrap();
    }
    (dir, db)
}

fn put(c: &mut Criterion) {
    let (_dir, db) = loaded_db(0);
    let mut generator = OrdersGenerator::new(7);
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_doc_durable_txn", |b| {
        b.iter_batched(
            || generator.next_doc(),
            |doc| db.put(black_box(doc)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1000));
    let mut n = 0u64;
    g.bench_function("bulk_1000_docs", |b| {
        b.iter_batched(
            || {
                (0..1000)
                    .map(|_| {
                        n += 1;
                        let mut d = generator.next_doc();
                        d["_id"] = json!(format!("bulk{n:09}"));
                        d
                    })
                    .collect::<Vec<_>>()
            },
            |docs| {
                db.bulk_docs(black_box(docs), BulkOptions::default())
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Documents per bulk import, and per transaction (as `settee import`).
const IMPORT_DOCS: usize = 50_000;
const IMPORT_BATCH: usize = 10_000;

/// What `settee import` does after parsing: validate and serialise a batch
/// (`prepare_bulk`, spread over cores), then write it in one transaction,
/// into a fresh database each time.
fn import(c: &mut Criterion) {
    let mut g = c.benchmark_group("import");
    g.throughput(Throughput::Elements(IMPORT_DOCS as u64));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function("bulk_import_50k_orders_fresh_db", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let db = Database::create(dir.path().join("db")).unwrap();
                let docs: Vec<_> = OrdersGenerator::new(42).take(IMPORT_DOCS).collect();
                (dir, db, docs)
            },
            |(dir, db, mut docs)| {
                while !docs.is_empty() {
                    let rest = docs.split_off(IMPORT_BATCH.min(docs.len()));
                    let batch = db
                        .prepare_bulk(black_box(docs), BulkOptions::default())
                        .unwrap();
                    db.write_prepared(batch).unwrap();
                    docs = rest;
                }
                (dir, db)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn get(c: &mut Criterion) {
    let (_dir, db) = loaded_db(100_000);
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("winner_of_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % 100_000;
            db.get(black_box(&format!("doc{i:08}")), &ReadOptions::default())
                .unwrap()
        })
    });
    g.bench_function("winner_with_meta", |b| {
        b.iter(|| {
            db.get(
                black_box("doc00004242"),
                &ReadOptions::default().meta(true).revs(true),
            )
            .unwrap()
        })
    });
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("changes_for_indexing_10k", |b| {
        b.iter(|| db.changes_for_indexing(black_box(50_000), 10_000).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = put, import, get
}
criterion_main!(benches);
