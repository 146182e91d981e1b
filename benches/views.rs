//! Warm view queries over the `simple` and `heavy` indexes of the
//! index-build benchmark (shared/bench/README.md), built once over the 100,000
//! orders: a single-key lookup, a 100-row page, a whole-view reduce and
//! `group_level=1`.
//!
//! `cargo bench --bench views`. `settee bench` measures the same queries
//! (median and p99) on the full dataset, together with the builds.

// As in src/main.rs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use settee::bench_data::OrdersGenerator;
use settee::js::{JsConfig, JsPool};
use settee::view::{UpdateMode, ViewEngine, ViewQuery};
use settee::{BulkOptions, Database};

const DOCS: usize = 100_000;

fn engine(dir: &std::path::Path) -> ViewEngine {
    let db = Database::create(dir.join("db")).unwrap();
    let docs: Vec<_> = OrdersGenerator::new(42).take(DOCS).collect();
    for chunk in docs.chunks(5_000) {
        db.bulk_docs(chunk.to_vec(), BulkOptions::default())
            .unwrap();
    }
    db.put(json!({"_id": "_design/simple", "views": {"v": {
        "map": "function(doc){ if(doc.type==='order') emit(doc.customer, doc.total); }",
        "reduce": "_sum"}}}))
        .unwrap();
    db.put(json!({"_id": "_design/heavy", "views": {"v": {
        "map": "function(doc){\n  var n = doc.items ? doc.items.length : 0;\n  emit([doc.type, doc.customer, doc.ts], doc.total);\n  emit([doc.region, doc.status, doc.type], 1);\n  emit([doc.customer, n], n);\n}",
        "reduce": "_sum"}}}))
        .unwrap();
    let views = ViewEngine::new(db, JsPool::new(JsConfig::default()).unwrap());
    for ddoc in ["_design/simple", "_design/heavy"] {
        views
            .update(ddoc, &mut |_| std::ops::ControlFlow::Continue(()))
            .unwrap();
    }
    views
}

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let views = engine(dir.path());
    let stale = ViewQuery::new().update(UpdateMode::False);
    for (ddoc, key) in [
        ("_design/simple", json!("cust0042")),
        ("_design/heavy", json!(["order", "cust0042", 1_700_000_037])),
    ] {
        let name = ddoc.trim_start_matches("_design/");
        let mut group = c.benchmark_group(format!("query_{name}"));
        let cases = [
            ("single_key", stale.clone().reduce(false).key(key)),
            ("page_100_rows", stale.clone().reduce(false).limit(100)),
            ("reduce_whole_view", stale.clone()),
            ("group_level_1", stale.clone().group_level(1)),
        ];
        for (case, query) in cases {
            group.bench_function(case, |b| {
                b.iter(|| views.query(ddoc, "v", &query).unwrap());
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = queries
}
criterion_main!(benches);
