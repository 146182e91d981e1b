//! `settee demo`: the main job on an embedded default. Generates the orders
//! dataset, imports it, deploys example design documents, builds their indexes,
//! and shows queries with their latencies, a write refused by
//! `validate_doc_update`, and an update becoming visible in a view.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};
use settee::bench_data::OrdersGenerator;
use settee::js::{JsConfig, JsPool};
use settee::validation::DocValidator;
use settee::view::{ViewEngine, ViewQuery};
use settee::{BulkOptions, BulkResult, ChangesQuery, Database, ReadOptions, Result, Since};

use super::views::build_progress_bar;
use super::{print_json, scratch_dir};

/// Documents per write transaction.
const BATCH: u64 = 10_000;

pub(crate) fn run(dir: Option<PathBuf>, docs: u64) -> Result<i32> {
    let (path, temporary) = match dir {
        Some(d) => (d, false),
        None => (scratch_dir("demo").join("orders"), true),
    };
    let outcome = demo(&path, docs);
    if temporary {
        if let Some(parent) = path.parent() {
            // Best effort: the report is already printed.
            let _ = std::fs::remove_dir_all(parent);
        }
    }
    outcome
}

fn demo(path: &std::path::Path, docs: u64) -> Result<i32> {
    let db = Database::create(path)?;
    let mut generator = OrdersGenerator::new(42);
    let (mut generate_secs, mut import_secs) = (0.0, 0.0);
    let mut remaining = docs;
    while remaining > 0 {
        let n = remaining.min(BATCH);
        let t = Instant::now();
        let batch: Vec<_> = generator.by_ref().take(n as usize).collect();
        generate_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let results = db.bulk_docs(batch, BulkOptions::default())?;
        import_secs += t.elapsed().as_secs_f64();
        if let Some(BulkResult::Error { id, error, .. }) = results.iter().find(|r| r.is_error()) {
            eprintln!("settee: {id}: {}: {}", error.name(), error.reason());
            return Ok(1);
        }
        remaining -= n;
    }
    let sample: Vec<_> = ["doc00000000", "doc00000001", "doc00000002"]
        .iter()
        .take(docs as usize)
        .map(|id| db.get(id, &ReadOptions::default()))
        .collect::<Result<_>>()?;
    let since = db.update_seq()?.saturating_sub(5);
    let changes = db.changes(
        &ChangesQuery::new()
            .since(Since::Seq(since))
            .include_docs(false),
    )?;
    let info = db.info()?;
    let pool = JsPool::new(JsConfig::default())?;
    DocValidator::install(&db, pool.clone());
    let views = ViewEngine::new(db.clone(), pool);
    for ddoc in design_docs() {
        db.put(ddoc)?;
    }
    let mut builds = Vec::new();
    for ddoc in ["_design/sales", "_design/regions", "_design/items"] {
        let t = Instant::now();
        let bar = build_progress_bar(ddoc);
        let seq = views.update(ddoc, &mut |p| {
            if let Some(bar) = &bar {
                bar.set_length(p.docs_total);
                bar.set_position(p.docs_done);
            }
            std::ops::ControlFlow::Continue(())
        })?;
        let secs = t.elapsed().as_secs_f64();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        builds.push(json!({
            "design_doc": ddoc,
            "seconds": secs,
            "docs_per_sec": (docs as f64 / secs.max(1e-9)).round(),
            "indexed_seq": seq,
        }));
    }
    let queries = [
        (
            "_design/sales",
            "by_customer",
            ViewQuery::new().key(json!("cust0042")).group(true),
        ),
        (
            "_design/sales",
            "by_customer",
            ViewQuery::new().reduce(false).limit(3),
        ),
        (
            "_design/regions",
            "by_region_status",
            ViewQuery::new().group_level(1),
        ),
        (
            "_design/regions",
            "by_region_status",
            ViewQuery::new().group_level(2).limit(4),
        ),
        ("_design/regions", "by_region_status", ViewQuery::new()),
        (
            "_design/items",
            "max_items",
            ViewQuery::new().group_level(1).limit(3),
        ),
    ];
    let mut answers = Vec::new();
    for (ddoc, view, query) in queries {
        let t = Instant::now();
        let response = views.query(ddoc, view, &query)?;
        answers.push(json!({
            "query": format!("{ddoc}/_view/{view} {query:?}"),
            "milliseconds": t.elapsed().as_secs_f64() * 1e3,
            "response": response,
        }));
    }
    let refused = match db.put(json!({"_id": "bad-order", "type": "order", "total": -5})) {
        Ok(_) => json!("accepted (unexpected)"),
        Err(e) => e.to_json(),
    };
    let before = views.query(
        "_design/sales",
        "by_customer",
        &ViewQuery::new().key(json!("cust0042")),
    )?;
    db.put(
        json!({"_id": "new-order", "type": "order", "customer": "cust0042", "total": 1000,
        "status": "new", "region": "north", "items": []}),
    )?;
    let t = Instant::now();
    let after = views.query(
        "_design/sales",
        "by_customer",
        &ViewQuery::new().key(json!("cust0042")),
    )?;
    let visible_ms = t.elapsed().as_secs_f64() * 1e3;
    print_json(&json!({
        "database": path,
        "generated": docs,
        "generate_seconds": generate_secs,
        "import_seconds": import_secs,
        "import_docs_per_sec": (docs as f64 / import_secs.max(1e-9)).round(),
        "info": info,
        "sample_docs": sample,
        "last_changes": changes,
        "index_builds": builds,
        "queries": answers,
        "refused_write": refused,
        "update_visible": {"before": before, "after": after, "milliseconds": visible_ms},
    }))?;
    Ok(0)
}

/// The example design documents: a `_sum` by customer (with a
/// `validate_doc_update` refusing orders without a positive total), a compound
/// key queried at several group levels, and a JavaScript reduce.
fn design_docs() -> Vec<Value> {
    vec![
        json!({
            "_id": "_design/sales",
            "views": {"by_customer": {
                "map": "function(doc) { if (doc.type === 'order') emit(doc.customer, doc.total); }",
                "reduce": "_sum"
            }},
            "validate_doc_update": "function(newDoc) { if (newDoc.type === 'order' && !(newDoc.total > 0)) throw({forbidden: 'an order needs a positive total'}); }"
        }),
        json!({
            "_id": "_design/regions",
            "views": {"by_region_status": {
                "map": "function(doc) { if (doc.type === 'order') emit([doc.region, doc.status, doc.customer], 1); }",
                "reduce": "_count"
            }}
        }),
        json!({
            "_id": "_design/items",
            "views": {"max_items": {
                "map": "function(doc) { if (doc.items) emit([doc.region, doc.type], doc.items.length); }",
                "reduce": "function(keys, values, rereduce) { return Math.max.apply(null, values); }"
            }}
        }),
    ]
}
