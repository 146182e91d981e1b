//! The bulk path of a group's first build (`view::bulk`) against the
//! incremental path: the same random databases (duplicate keys, many emits per
//! doc, keys over 1 KB, long doc ids, deletes, conflicts) built both ways must
//! answer every query identically, before and after later incremental updates;
//! a build stopped by its progress callback, or killed, must end equal too.

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pool;
use serde_json::{json, Value};
use settee::bench_data::OrdersGenerator;
use settee::view::{BulkBuildConfig, UpdateMode, ViewEngine, ViewQuery};
use settee::{BulkOptions, Database, ReadOptions, Rev};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const LONG: usize = 1_100;

fn design_doc() -> Value {
    json!({
        "_id": "_design/t",
        "views": {
            "by_k": {"map": "function(doc){ if (doc.k !== undefined) { emit(doc.k, doc.v); emit(doc.k, doc.v); emit(doc.k, doc.n); } }",
                     "reduce": "_count"},
            "many": {"map": "function(doc){ for (var i = 0; i < doc.n; i++) emit([doc.g, i % 3], i); }",
                     "reduce": "_sum"},
            "stats": {"map": "function(doc){ for (var i = 0; i < doc.n; i++) emit([doc.g, i % 3], i); }",
                      "reduce": "_stats"},
            "long": {"map": "function(doc){ if (doc.long) { emit(doc.long, doc.n); emit([doc.long, doc.g], null); emit(doc.long, doc.n); } }",
                     "reduce": "_count"},
            "raw": {"map": "function(doc){ emit(doc.g, doc.n); }", "reduce": "_sum",
                    "options": {"collation": "raw"}},
            "conflicts": {"map": "function(doc){ if (doc._conflicts) emit(doc._conflicts, doc._id); }"},
            "js": {"map": "function(doc){ emit(doc.g, doc.n); }",
                   "reduce": "function(keys, values, rereduce){ return sum(values); }"}
        }
    })
}

fn random_key(rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.below(5) as i64 - 2),
        3 => json!(["a", "B", "b", "é", "e\u{301}", "z"][rng.below(6) as usize]),
        4 => {
            let tag = ["x", "y"][rng.below(2) as usize];
            json!([rng.below(3), tag])
        }
        5 => json!({"o": rng.below(3)}),
        _ => json!(rng.below(4) as f64 / 2.0),
    }
}

fn long_string(rng: &mut Rng) -> String {
    // A few shared 1 KB+ prefixes, so buckets of long keys share prefixes;
    // a suffix from a small set, so some long keys repeat across docs.
    let mut s = ["L", "M", "l"][rng.below(3) as usize].repeat(LONG);
    s.push_str(&format!("-{}", rng.below(6)));
    if rng.below(3) == 0 {
        s.push_str(&"z".repeat(rng.below(300) as usize));
    }
    s
}

fn random_doc(rng: &mut Rng, id: &str) -> Value {
    let g = ["g0", "g1", "g2", "G", "g10"][rng.below(5) as usize];
    let mut doc = json!({
        "_id": id,
        "g": g,
        "n": rng.below(9),
        "v": random_key(rng),
    });
    if rng.below(5) != 0 {
        doc["k"] = random_key(rng);
    }
    if rng.below(3) == 0 {
        doc["long"] = json!(long_string(rng));
    }
    doc
}

fn doc_id(rng: &mut Rng, i: usize) -> String {
    match rng.below(20) {
        // Longer than the back-index key limit (hashed there).
        0 => format!("{}{i:05}", "long-id-".repeat(70)),
        _ => format!("doc{i:05}"),
    }
}

/// Two databases kept identical: views[0] builds with the bulk path (a budget
/// small enough to spill many runs), views[1] batch by batch.
struct Pair {
    _dir: tempfile::TempDir,
    dbs: [Database; 2],
    views: [ViewEngine; 2],
}

fn pair(budget: usize) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let a = Database::create(dir.path().join("bulk")).unwrap();
    let b = Database::create(dir.path().join("incremental")).unwrap();
    let bulk = ViewEngine::new(a.clone(), pool()).with_bulk_build(BulkBuildConfig {
        enabled: true,
        memory_budget: budget,
    });
    let incremental = ViewEngine::new(b.clone(), pool()).with_bulk_build(BulkBuildConfig {
        enabled: false,
        ..BulkBuildConfig::default()
    });
    Pair {
        _dir: dir,
        dbs: [a, b],
        views: [bulk, incremental],
    }
}

impl Pair {
    fn both(&self, f: impl Fn(&Database)) {
        for db in &self.dbs {
            f(db);
        }
    }

    fn query(&self, side: usize, view: &str, query: &ViewQuery) -> Value {
        serde_json::to_value(self.views[side].query("_design/t", view, query).unwrap()).unwrap()
    }

    /// Asks both sides every query and compares the answers.
    fn compare(&self) {
        self.compare_views(&["by_k", "many", "stats", "long", "raw", "conflicts", "js"]);
    }

    fn compare_views(&self, views: &[&str]) {
        for &view in views {
            let reduces = view != "conflicts";
            let base = ViewQuery::new().reduce(false);
            let all = self.query(1, view, &base);
            let rows = all["rows"].as_array().unwrap().clone();
            let mut queries = vec![
                base.clone(),
                base.clone().descending(true),
                base.clone().skip(3).limit(7),
                base.clone().descending(true).skip(2).limit(5),
            ];
            for pick in [
                0,
                rows.len() / 3,
                rows.len() / 2,
                rows.len().saturating_sub(1),
            ] {
                let Some(row) = rows.get(pick) else { continue };
                let key = row["key"].clone();
                let id = row["id"].as_str().unwrap().to_string();
                queries.push(base.clone().key(key.clone()));
                queries.push(base.clone().start_key(key.clone()));
                queries.push(base.clone().end_key(key.clone()).inclusive_end(false));
                queries.push(
                    base.clone()
                        .start_key(key.clone())
                        .start_key_docid(id.clone())
                        .limit(4),
                );
                queries.push(
                    base.clone()
                        .descending(true)
                        .start_key(key.clone())
                        .start_key_docid(id)
                        .skip(1),
                );
                queries.push(
                    base.clone()
                        .keys(vec![key.clone(), json!("absent"), key.clone()]),
                );
                if reduces {
                    queries.push(ViewQuery::new().end_key(key.clone()));
                    queries.push(ViewQuery::new().group(true).start_key(key));
                }
            }
            if reduces {
                queries.push(ViewQuery::new());
                queries.push(ViewQuery::new().group(true));
                queries.push(ViewQuery::new().group_level(1));
                queries.push(ViewQuery::new().group(true).descending(true).limit(3));
            }
            for query in &queries {
                let a = self.query(0, view, query);
                let b = self.query(1, view, query);
                assert_eq!(a, b, "view {view}, query {query:?}");
            }
        }
        assert_eq!(
            self.views[0].row_counts("_design/t").unwrap(),
            self.views[1].row_counts("_design/t").unwrap()
        );
    }
}

/// Random documents, then deletions and conflicting branches, written to both.
fn fill(pair: &Pair, rng: &mut Rng, docs: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for i in 0..docs {
        let id = doc_id(rng, i);
        batch.push(random_doc(rng, &id));
        ids.push(id);
    }
    pair.both(|db| {
        db.put(design_doc()).unwrap();
        for chunk in batch.chunks(500) {
            db.bulk_docs(chunk.to_vec(), BulkOptions::default())
                .unwrap();
        }
    });
    let deletes: Vec<String> = ids.iter().filter(|_| rng.below(8) == 0).cloned().collect();
    let mut conflicts: Vec<Value> = Vec::new();
    for id in &ids {
        if rng.below(10) == 0 && !deletes.contains(id) {
            let mut doc = random_doc(rng, id);
            doc["_rev"] = json!(format!("1-{:016x}{:016x}", rng.next(), rng.next()));
            conflicts.push(doc);
        }
    }
    pair.both(|db| {
        for id in &deletes {
            let doc = db.get(id, &ReadOptions::default()).unwrap();
            db.delete(id, &Rev::parse(doc["_rev"].as_str().unwrap()).unwrap())
                .unwrap();
        }
        db.bulk_docs(conflicts.clone(), BulkOptions::replicated())
            .unwrap();
    });
    ids
}

/// Edits after the first build: updates (some dropping or adding long keys),
/// deletes, re-creations, new docs and new conflicts.
fn edit(pair: &Pair, rng: &mut Rng, ids: &[String], round: usize) {
    let picks: Vec<(String, u64)> = (0..60)
        .map(|_| {
            (
                ids[rng.below(ids.len() as u64) as usize].clone(),
                rng.below(4),
            )
        })
        .collect();
    let fresh: Vec<Value> = (0..20)
        .map(|i| {
            let id = format!("new{round}-{i}");
            random_doc(rng, &id)
        })
        .collect();
    let bodies: Vec<Value> = picks.iter().map(|(id, _)| random_doc(rng, id)).collect();
    pair.both(|db| {
        for ((id, action), body) in picks.iter().zip(&bodies) {
            let current = db.get(id, &ReadOptions::default()).ok();
            match (action, current) {
                (0, Some(doc)) => {
                    db.delete(id, &Rev::parse(doc["_rev"].as_str().unwrap()).unwrap())
                        .unwrap();
                }
                (_, Some(doc)) => {
                    let mut body = body.clone();
                    body["_rev"] = doc["_rev"].clone();
                    db.put(body).unwrap();
                }
                (_, None) => {
                    // Deleted: re-create it.
                    db.put(body.clone()).unwrap();
                }
            }
        }
        db.bulk_docs(fresh.clone(), BulkOptions::default()).unwrap();
    });
}

fn round_trip(seed: u64, docs: usize, budget: usize) {
    let pair = pair(budget);
    let mut rng = Rng(seed);
    let ids = fill(&pair, &mut rng, docs);
    pair.compare();
    for round in 0..3 {
        edit(&pair, &mut rng, &ids, round);
        pair.compare();
    }
}

#[test]
fn bulk_build_with_many_spilled_runs_equals_incremental_build() {
    round_trip(0x5EED_0001, 700, 4 << 10);
}

#[test]
fn bulk_build_in_memory_equals_incremental_build() {
    round_trip(0x5EED_0002, 500, 256 << 20);
}

#[test]
fn bulk_build_of_other_random_datasets_equals_incremental_build() {
    for seed in 3..6 {
        round_trip(0x5EED_0000 + seed, 250, 1 << 10);
    }
}

/// A build stopped by its progress callback commits a consistent index at
/// the last batch read; the next update completes it incrementally.
#[test]
fn stopped_bulk_build_resumes_incrementally_and_ends_equal() {
    let pair = pair(64 << 10);
    let mut rng = Rng(0x5EED_0100);
    // More than one batch (2,000 docs) of changes.
    let ids = fill(&pair, &mut rng, 2_300);
    let mut calls = 0;
    let seq = pair.views[0]
        .update("_design/t", &mut |p| {
            calls += 1;
            assert!(p.docs_done > 0 && p.seq > 0);
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(calls, 1);
    assert!(seq > 0);
    // The committed part is a consistent index at `seq`.
    let stale = ViewQuery::new().reduce(false).update(UpdateMode::False);
    let partial = pair.query(0, "by_k", &stale);
    let total = partial["total_rows"].as_u64().unwrap();
    assert!(total > 0, "{partial}");
    assert_eq!(total, partial["rows"].as_array().unwrap().len() as u64);
    let info = pair.views[0].info("_design/t").unwrap();
    assert_eq!(info.view_index.update_seq, seq);
    assert!(seq < pair.dbs[0].update_seq().unwrap());
    let views = ["by_k", "long", "conflicts", "many"];
    pair.compare_views(&views);
    edit(&pair, &mut rng, &ids, 0);
    pair.compare_views(&views);
}

/// Edits made while a bulk build runs (here through its progress callback,
/// between batches) move their docs past the pass's target sequence: the
/// bulk part reads no doc twice, and the rest of the pass applies them.
#[test]
fn edits_during_a_bulk_build_are_applied_after_it() {
    let pair = pair(64 << 10);
    let mut rng = Rng(0x5EED_0200);
    let ids = fill(&pair, &mut rng, 2_300);
    let early = ids[10].clone();
    let late = ids[2_250].clone();
    let touch = |db: &Database, id: &str| {
        let mut doc = db.get(id, &ReadOptions::default()).unwrap();
        doc["k"] = json!(format!("touched {id}"));
        doc["long"] = json!("T".repeat(LONG));
        db.put(doc).unwrap();
    };
    let mut calls = 0;
    pair.views[0]
        .update("_design/t", &mut |_| {
            calls += 1;
            if calls == 1 {
                // One doc already read, one not read yet.
                touch(&pair.dbs[0], &early);
                touch(&pair.dbs[0], &late);
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(calls >= 2);
    touch(&pair.dbs[1], &early);
    touch(&pair.dbs[1], &late);
    pair.compare_views(&["by_k", "long", "conflicts", "many"]);
}

/// A first build whose sort budget makes it spill to disk is killed; the
/// index still reads as never built, and the next update builds it equal to
/// a batch-by-batch build, leaving no run files behind.
#[test]
fn killed_bulk_build_restarts_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let docs = 12_000;
    let paths: Vec<PathBuf> = ["killed", "reference"]
        .iter()
        .map(|name| dir.path().join(name))
        .collect();
    let ddoc = json!({"_id": "_design/heavy", "views": {"v": {
        "map": "function(doc){ var n = doc.items ? doc.items.length : 0; emit([doc.type, doc.customer, doc.ts], doc.total); emit([doc.region, doc.status, doc.type], 1); emit([doc.customer, n], n); }",
        "reduce": "_sum"}}});
    for path in &paths {
        let db = Database::create(path).unwrap();
        let orders: Vec<Value> = OrdersGenerator::new(42).take(docs).collect();
        for chunk in orders.chunks(5_000) {
            db.bulk_docs(chunk.to_vec(), BulkOptions::default())
                .unwrap();
        }
        db.put(ddoc.clone()).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_settee"))
        .args(["reindex", paths[0].to_str().unwrap(), "--workers", "1"])
        .env("SETTEE_BULK_MEMORY", "32K")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has spilled runs (or after a while on a slow machine).
    let views_dir = paths[0].join("views");
    let run_file = |views: &Path| -> Option<PathBuf> {
        let index = std::fs::read_dir(views).ok()?.next()?.ok()?.path();
        let run = index.join("bulk.tmp").join("rows.run");
        (std::fs::metadata(&run).ok()?.len() > 200_000).then_some(run)
    };
    let started = Instant::now();
    while run_file(&views_dir).is_none() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let spilled = run_file(&views_dir).is_some();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    eprintln!("spilled: {spilled}; reindex exit: {status}");

    let db = Database::open(&paths[0]).unwrap();
    let views = ViewEngine::new(db, pool());
    let stale = ViewQuery::new()
        .update(UpdateMode::False)
        .reduce(false)
        .limit(1);
    let before = serde_json::to_value(views.query("_design/heavy", "v", &stale).unwrap()).unwrap();
    if status.success() {
        // It finished before the kill: nothing to check about a partial build.
        assert_eq!(before["total_rows"], json!(docs * 3));
    } else {
        assert!(spilled, "no run file appeared");
        assert_eq!(before["total_rows"], json!(0), "{before}");
        assert_eq!(
            views.info("_design/heavy").unwrap().view_index.update_seq,
            0
        );
    }
    views
        .update("_design/heavy", &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let index_dir = std::fs::read_dir(&views_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(!index_dir.join("bulk.tmp").exists());

    let reference = ViewEngine::new(Database::open(&paths[1]).unwrap(), pool()).with_bulk_build(
        BulkBuildConfig {
            enabled: false,
            ..BulkBuildConfig::default()
        },
    );
    for query in [
        ViewQuery::new().reduce(false).skip(1_000).limit(50),
        ViewQuery::new().reduce(false).descending(true).limit(50),
        ViewQuery::new().group_level(1),
        ViewQuery::new().group_level(2),
        ViewQuery::new(),
    ] {
        let a = serde_json::to_value(views.query("_design/heavy", "v", &query).unwrap()).unwrap();
        let b =
            serde_json::to_value(reference.query("_design/heavy", "v", &query).unwrap()).unwrap();
        assert_eq!(a, b, "{query:?}");
    }
    assert_eq!(
        views.row_counts("_design/heavy").unwrap(),
        vec![docs as u64 * 3]
    );
}
