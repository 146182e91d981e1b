//! `settee demo`: generate the orders dataset, import it with timing, and
//! show the database information, a few documents and the latest changes.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use settee::bench_data::OrdersGenerator;
use settee::{BulkOptions, BulkResult, ChangesQuery, Database, ReadOptions, Result, Since};

use super::print_json;

/// Documents per write transaction.
const BATCH: u64 = 10_000;

pub(crate) fn run(dir: Option<PathBuf>, docs: u64) -> Result<i32> {
    let (path, temporary) = match dir {
        Some(d) => (d, false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let base =
                std::env::temp_dir().join(format!("settee-demo-{}-{nanos}", std::process::id()));
            (base.join("orders"), true)
        }
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
    print_json(&json!({
        "database": path,
        "generated": docs,
        "generate_seconds": generate_secs,
        "import_seconds": import_secs,
        "import_docs_per_sec": (docs as f64 / import_secs.max(1e-9)).round(),
        "info": db.info()?,
        "sample_docs": sample,
        "last_changes": changes,
    }))?;
    Ok(0)
}
