//! `settee bench`: the index-build benchmark of `shared/bench/README.md`.
//!
//! Generates the orders dataset (byte-identical to `gen_orders.py`) or reads
//! it from a JSON-lines file, imports it, builds the `simple` and `heavy`
//! view groups one after the other from a cold index, and measures warm query
//! latencies and the time for one update to become visible. Prints one JSON
//! object, so runs can be compared.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use settee::bench_data::OrdersGenerator;
use settee::js::{JsConfig, JsPool};
use settee::validation::DocValidator;
use settee::view::{UpdateMode, ViewEngine, ViewQuery, ViewResponse};
use settee::{BulkOptions, BulkResult, Database, Error, ReadOptions, Result};

use super::views::build_progress_bar;
use super::{print_json, print_json_line, scratch_dir};

/// Documents per import transaction.
const BATCH: usize = 5_000;

/// The two view groups of the benchmark, exactly as `shared/bench/README.md` gives them.
fn design_docs() -> [Value; 2] {
    [
        json!({"_id": "_design/simple",
               "views": {"v": {"map": "function(doc){ if(doc.type==='order') emit(doc.customer, doc.total); }",
                               "reduce": "_sum"}}}),
        json!({"_id": "_design/heavy",
               "views": {"v": {"map": "function(doc){\n  var n = doc.items ? doc.items.length : 0;\n  emit([doc.type, doc.customer, doc.ts], doc.total);\n  emit([doc.region, doc.status, doc.type], 1);\n  emit([doc.customer, n], n);\n}",
                               "reduce": "_sum"}}}),
    ]
}

/// Options of `settee bench`.
pub(crate) struct BenchOptions {
    pub docs: usize,
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub runs: usize,
    pub compact: bool,
}

pub(crate) fn run(options: BenchOptions) -> Result<i32> {
    let (path, temporary) = match &options.dir {
        Some(d) => (d.clone(), false),
        None => (scratch_dir("bench").join("orders"), true),
    };
    let outcome = bench(&path, &options);
    if temporary {
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
    let report = outcome?;
    if options.compact {
        print_json_line(&report)?;
    } else {
        print_json(&report)?;
    }
    Ok(0)
}

fn bench(path: &Path, options: &BenchOptions) -> Result<Value> {
    let docs = load_docs(options)?;
    let count = docs.len();
    let pool = JsPool::new(JsConfig::default())?;
    let workers = pool.config().workers;
    // The dataset as JSON lines (what `settee import` and CouchDB's
    // `_bulk_docs` start from): parsing is part of a bulk insert.
    let mut lines = Vec::with_capacity(count * 360);
    for doc in &docs {
        serde_json::to_writer(&mut lines, doc).map_err(|e| Error::bad_request(e.to_string()))?;
        lines.push(b'\n');
    }
    // Each import into a fresh database, with one simple validate_doc_update and without.
    let sibling = |suffix: &str| {
        path.with_file_name(format!(
            "{}-{suffix}",
            path.file_name()
                .map_or("db".into(), |n| n.to_string_lossy())
        ))
    };
    let validated = |dir: PathBuf, import: &dyn Fn(&Database) -> Result<f64>| -> Result<f64> {
        let db = Database::create(dir)?;
        DocValidator::install(&db, pool.clone());
        db.put(json!({"_id": "_design/rules", "validate_doc_update": VDU}))?;
        let seconds = import(&db);
        // The validator holds a handle of the database: uninstall it.
        db.set_validator(None);
        seconds
    };
    // Untimed: the first import into a fresh process grows the heap and
    // warms the thread pools, a cost whichever import came first would pay.
    import_lines(&Database::create(sibling("warm-up"))?, &lines)?;
    // Each import twice, alternating with and without the VDU so that
    // neither gains from coming later; the best of each pair counts.
    let (mut vdu_seconds, mut vdu_values_seconds) = (f64::MAX, f64::MAX);
    let (mut import_seconds, mut values_seconds) = (f64::MAX, f64::MAX);
    for round in 0..2 {
        let name = |what: &str| sibling(&format!("{what}-{round}"));
        // The last plain import is the database the views are built on.
        let plain = Database::create(if round == 1 {
            path.to_path_buf()
        } else {
            name("plain")
        })?;
        import_seconds = import_seconds.min(import_lines(&plain, &lines)?);
        vdu_seconds = vdu_seconds.min(validated(name("vdu"), &|db| import_lines(db, &lines))?);
        let plain_values = Database::create(name("values"))?;
        values_seconds = values_seconds.min(import_values(&plain_values, &docs)?);
        vdu_values_seconds = vdu_values_seconds.min(validated(name("vdu-values"), &|db| {
            import_values(db, &docs)
        })?);
    }
    let db = Database::open(path)?;
    drop((docs, lines));
    let views = ViewEngine::new(db.clone(), pool);
    let mut results = Vec::new();
    for ddoc in design_docs() {
        let id = ddoc["_id"].as_str().unwrap_or_default().to_string();
        db.put(ddoc)?;
        results.push(bench_view(&views, &id, count, options.runs)?);
    }
    Ok(json!({
        "docs": count,
        "source": options.file.as_ref().map_or_else(
            || "generated (gen_orders.py, seed 42)".to_string(),
            |f| f.display().to_string()),
        "js_workers": workers,
        "bulk_insert": {
            "from": "JSON lines (parsed, as settee import)",
            "seconds": round(import_seconds),
            "docs_per_sec": (count as f64 / import_seconds.max(1e-9)).round(),
            "batch": BATCH,
        },
        "bulk_insert_with_vdu": {
            "seconds": round(vdu_seconds),
            "docs_per_sec": (count as f64 / vdu_seconds.max(1e-9)).round(),
            "speed_vs_none": round(import_seconds / vdu_seconds.max(1e-9)),
            "validate_doc_update": VDU,
        },
        "bulk_insert_values": {
            "from": "documents already parsed (the store alone)",
            "docs_per_sec": (count as f64 / values_seconds.max(1e-9)).round(),
            "with_vdu_docs_per_sec": (count as f64 / vdu_values_seconds.max(1e-9)).round(),
            "speed_vs_none": round(values_seconds / vdu_values_seconds.max(1e-9)),
        },
        "database_bytes": db.info()?.sizes.file,
        "views": results,
    }))
}

/// The validation function of the `bulk_insert_with_vdu` measurement.
const VDU: &str = "function(newDoc, oldDoc, userCtx) { if (newDoc.type === 'order' && !(newDoc.total > 0)) throw({forbidden: 'an order needs a positive total'}); }";

/// Imports JSON `lines` as `settee import` does; returns the seconds it took.
fn import_lines(db: &Database, lines: &[u8]) -> Result<f64> {
    let input = Box::new(std::io::Cursor::new(lines.to_vec()));
    let summary = super::import::import(db, input, BATCH, None)?;
    if summary.failed > 0 {
        return Err(Error::bad_request(format!(
            "{} documents were refused",
            summary.failed
        )));
    }
    Ok(summary.seconds)
}

/// Imports already parsed `docs` in batches of [`BATCH`]: the next batch is
/// prepared (checked, serialised, hashed, validated) on another thread
/// while the current one is written. Returns the seconds it took.
fn import_values(db: &Database, docs: &[Value]) -> Result<f64> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        scope.spawn(move || {
            for chunk in docs.chunks(BATCH) {
                if tx
                    .send(db.prepare_bulk(chunk.to_vec(), BulkOptions::default()))
                    .is_err()
                {
                    break;
                }
            }
        });
        for prepared in rx {
            let results = db.write_prepared(prepared?)?;
            if let Some(BulkResult::Error { id, error, .. }) = results.iter().find(|r| r.is_error())
            {
                return Err(Error::bad_request(format!(
                    "{id}: {}: {}",
                    error.name(),
                    error.reason()
                )));
            }
        }
        Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

fn load_docs(options: &BenchOptions) -> Result<Vec<Value>> {
    let Some(file) = &options.file else {
        return Ok(OrdersGenerator::new(42).take(options.docs).collect());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::bad_request(format!("{}: {e}", file.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .take(options.docs)
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::bad_request(format!(
                    "{} line {}: invalid JSON: {e}",
                    file.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Keys tried (from the middle of a view on) in search of one with a single row.
const ONE_ROW_KEY_TRIES: u64 = 64;

/// Builds one view group from cold, then measures its queries.
fn bench_view(views: &ViewEngine, ddoc: &str, docs: usize, runs: usize) -> Result<Value> {
    reset_peak_rss();
    let bar = build_progress_bar(ddoc);
    let started = Instant::now();
    views.update(ddoc, &mut |p| {
        if let Some(bar) = &bar {
            bar.set_length(p.docs_total);
            bar.set_position(p.docs_done);
        }
        ControlFlow::Continue(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let peak_rss = peak_rss_bytes();
    let rows: u64 = views.row_counts(ddoc)?.iter().sum();
    let index_bytes = views.info(ddoc)?.view_index.sizes.file;
    let stale = ViewQuery::new().update(UpdateMode::False);
    let total = reduce_value(&views.query(ddoc, "v", &stale)?);
    // Keys that exist: the first row's, and the middle row's (whose
    // `offset` counts half the view: settee counts rows, where CouchDB's
    // B-tree keeps counts per node). A key may have many rows (a customer's
    // orders); a key with exactly one row, where the view has one, times the
    // lookup itself.
    let key_at = |skip: u64| -> Result<Value> {
        let row = views.query(ddoc, "v", &stale.clone().reduce(false).skip(skip).limit(1))?;
        Ok(match &row {
            ViewResponse::Map { rows, .. } => rows.first().map(|r| r.key.clone()),
            ViewResponse::Reduce { .. } => None,
        }
        .unwrap_or(Value::Null))
    };
    let has_one_row = |key: &Value| -> Result<bool> {
        let response = views.query(ddoc, "v", &stale.clone().reduce(false).key(key.clone()))?;
        Ok(rows_in(&response) == 1)
    };
    let mut one_row_key = None;
    let step = (rows / 2 / ONE_ROW_KEY_TRIES).max(1);
    for position in (rows / 2..rows)
        .step_by(step as usize)
        .take(ONE_ROW_KEY_TRIES as usize)
    {
        let key = key_at(position)?;
        if has_one_row(&key)? {
            one_row_key = Some(key);
            break;
        }
    }
    let first = key_at(0)?;
    let middle = key_at(rows / 2)?;
    let mut queries = vec![
        ("single_key_first", stale.clone().key(first).reduce(false)),
        ("single_key_middle", stale.clone().key(middle).reduce(false)),
        ("page_100_rows", stale.clone().reduce(false).limit(100)),
        ("reduce_whole_view", stale.clone()),
        ("group_level_1", stale.clone().group_level(1)),
    ];
    if let Some(key) = one_row_key {
        queries.insert(
            0,
            ("single_key_one_row", stale.clone().key(key).reduce(false)),
        );
    }
    let mut latencies = serde_json::Map::new();
    for (name, query) in queries {
        let mut samples = Vec::with_capacity(runs);
        let mut answer = None;
        for _ in 0..runs {
            let t = Instant::now();
            let response = std::hint::black_box(views.query(ddoc, "v", &query)?);
            samples.push(t.elapsed().as_secs_f64() * 1e3);
            answer = Some(response);
        }
        let mut summary = summary_ms(&mut samples);
        summary["rows"] = json!(answer.as_ref().map_or(0, rows_in));
        latencies.insert(name.into(), summary);
    }
    latencies.insert(
        "update_visible".into(),
        update_visible(views, ddoc, runs.min(50))?,
    );
    Ok(json!({
        "design_doc": ddoc,
        "build_seconds": round(seconds),
        "docs_per_sec": (docs as f64 / seconds.max(1e-9)).round(),
        "rows": rows,
        "rows_per_sec": (rows as f64 / seconds.max(1e-9)).round(),
        "reduce_sum": total,
        "peak_rss_bytes": peak_rss,
        "index_bytes": index_bytes,
        "latency_ms": latencies,
    }))
}

/// The rows of a response.
fn rows_in(response: &ViewResponse) -> usize {
    match response {
        ViewResponse::Map { rows, .. } => rows.len(),
        ViewResponse::Reduce { rows, .. } => rows.len(),
    }
}

fn reduce_value(response: &ViewResponse) -> Value {
    match response {
        ViewResponse::Reduce { rows, .. } => serde_json::to_value(rows.first())
            .ok()
            .and_then(|row| row.get("value").cloned())
            .unwrap_or(Value::Null),
        ViewResponse::Map { .. } => Value::Null,
    }
}

/// Updates one document, then times the `update=true` query that shows it.
fn update_visible(views: &ViewEngine, ddoc: &str, runs: usize) -> Result<Value> {
    let db = views.database();
    let id = "doc00000000";
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let mut doc = db.get(id, &ReadOptions::default())?;
        doc["type"] = json!("order");
        doc["customer"] = json!(format!("bench-visible-{i:04}"));
        db.put(doc)?;
        let query = ViewQuery::new()
            .reduce(false)
            .key(json!(format!("bench-visible-{i:04}")));
        let t = Instant::now();
        let found = views.query(ddoc, "v", &query)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        if ddoc == "_design/simple" {
            let visible = matches!(&found, ViewResponse::Map { rows, .. } if rows.len() == 1);
            if !visible {
                return Err(Error::bad_request("an update did not become visible"));
            }
        }
    }
    Ok(summary_ms(&mut samples))
}

/// Median, p99 and count of millisecond samples.
fn summary_ms(samples: &mut [f64]) -> Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i]
    };
    // To 10 ns: one-row lookups take a few microseconds.
    let ms = |x: f64| (x * 1e5).round() / 1e5;
    json!({"median": ms(at(0.5)), "p99": ms(at(0.99)), "runs": samples.len()})
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Resets the kernel's peak-RSS counter (Linux `clear_refs` 5), so that each
/// build reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size (`VmHWM`), where the platform reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
