//! Crash safety of view builds under `kill -9`: a child process builds (or
//! catches up) a view index and is SIGKILLed at varying moments; after every
//! kill the parent reopens the index and checks that its checkpoint is
//! consistent (never ahead of the database, rows for exactly the documents
//! changed up to it, as they were at it), and the next child resumes from that
//! checkpoint. Between rounds that complete a build, the parent edits,
//! deletes and adds documents, so incremental passes are killed too. At the
//! end the index is finished and every answer is compared with a clean
//! rebuild.
//!
//! The child is this test binary re-run with `--ignored --exact child_builder`
//! (the harness of `tests/kill.rs`).

mod child_process;

use child_process::XorShift;
mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use settee::bench_data::OrdersGenerator;
use settee::view::{UpdateMode, ViewEngine, ViewQuery};
use settee::{BulkOptions, ChangesQuery, Database, ReadOptions};

const DIR_ENV: &str = "SETTEE_VIEW_KILL_DIR";
const DDOC: &str = "_design/orders";
const DOCS: usize = 20_000;
const ROUNDS: usize = 12;

fn design_doc() -> Value {
    json!({"_id": DDOC, "views": {
        "by_region": {
            "map": "function(doc) { if (doc.region) emit([doc.region, doc.status, doc.customer], doc.total); }",
            "reduce": "_sum"
        },
        "items": {
            "map": "function(doc) { (doc.items || []).forEach(function(it) { emit([it.sku, doc._id], it.qty); }); }",
            "reduce": "_stats"
        }
    }})
}

/// What `by_region` emits for a document body.
fn region_key(doc: &Value) -> Value {
    json!([doc["region"], doc["status"], doc["customer"]])
}

/// One version of a document as the views see it: `None` when deleted.
#[derive(Clone)]
struct Version {
    seq: u64,
    /// `by_region` key and the number of `items` rows.
    rows: Option<(Value, usize)>,
}

/// Every version of every document, to know what the index must hold at any
/// checkpoint.
#[derive(Default)]
struct Model {
    versions: HashMap<String, Vec<Version>>,
}

impl Model {
    /// Records the latest change of every document changed after `since`.
    fn record_changes(&mut self, db: &Database, since: u64) {
        let changes = db
            .changes(
                &ChangesQuery::new()
                    .since(settee::Since::Seq(since))
                    .include_docs(true),
            )
            .unwrap();
        for change in changes.results {
            let doc = change.doc.clone().unwrap_or(Value::Null);
            let rows = if change.deleted || change.id.starts_with("_design/") {
                None
            } else {
                Some((region_key(&doc), doc["items"].as_array().unwrap().len()))
            };
            self.versions.entry(change.id).or_default().push(Version {
                seq: change.seq,
                rows,
            });
        }
    }

    /// `by_region`'s rows `(id, key)` and the number of `items` rows at `seq`.
    fn expected_at(&self, seq: u64) -> (Vec<(String, String)>, usize) {
        let mut rows = Vec::new();
        let mut items = 0;
        for (id, versions) in &self.versions {
            let at = versions.iter().rev().find(|v| v.seq <= seq);
            if let Some(Version {
                rows: Some((key, n)),
                ..
            }) = at
            {
                rows.push((id.clone(), key.to_string()));
                items += n;
            }
        }
        rows.sort();
        (rows, items)
    }
}

fn engine(db: &Database) -> ViewEngine {
    ViewEngine::new(db.clone(), common::pool())
}

fn query(views: &ViewEngine, view: &str, q: ViewQuery) -> Value {
    serde_json::to_value(views.query(DDOC, view, &q).unwrap()).unwrap()
}

/// The index's checkpoint, read without updating.
fn checkpoint(views: &ViewEngine) -> u64 {
    views.info(DDOC).unwrap().view_index.update_seq
}

/// Checks the committed index against the model at its checkpoint; returns it.
fn verify(db: &Database, views: &ViewEngine, model: &Model) -> Result<u64, String> {
    let seq = checkpoint(views);
    let db_seq = db.update_seq().unwrap();
    if seq > db_seq {
        return Err(format!(
            "index checkpoint {seq} is ahead of the db ({db_seq})"
        ));
    }
    let stale = || ViewQuery::new().reduce(false).update(UpdateMode::False);
    let listing = query(views, "by_region", stale());
    let mut rows: Vec<(String, String)> = listing["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["key"].to_string()))
        .collect();
    rows.sort();
    let (expected, items) = model.expected_at(seq);
    if rows != expected {
        let have: HashSet<_> = rows.iter().collect();
        let want: HashSet<_> = expected.iter().collect();
        let missing = want.difference(&have).count();
        let extra = have.difference(&want).count();
        return Err(format!(
            "checkpoint {seq}: by_region has {} rows, {} expected ({missing} missing, {extra} unexpected)",
            rows.len(),
            expected.len()
        ));
    }
    if listing["total_rows"] != json!(expected.len()) {
        return Err(format!(
            "checkpoint {seq}: total_rows {} for {} rows",
            listing["total_rows"],
            expected.len()
        ));
    }
    let item_rows = query(views, "items", stale().limit(0));
    if item_rows["total_rows"] != json!(items) {
        return Err(format!(
            "checkpoint {seq}: items has {} rows, {items} expected",
            item_rows["total_rows"]
        ));
    }
    Ok(seq)
}

/// Every answer the comparison with a clean rebuild covers.
fn answers(views: &ViewEngine) -> Vec<Value> {
    let q = || ViewQuery::new().update(UpdateMode::False);
    let mut out = Vec::new();
    for view in ["by_region", "items"] {
        out.push(query(views, view, q().reduce(false)));
        out.push(query(
            views,
            view,
            q().reduce(false).descending(true).limit(500),
        ));
        out.push(query(views, view, q()));
        out.push(query(views, view, q().group(true)));
        for level in 1..=2 {
            out.push(query(views, view, q().group_level(level)));
        }
    }
    out.push(query(
        views,
        "by_region",
        q().start_key(json!(["east"]))
            .end_key(json!(["north", {}]))
            .group_level(2),
    ));
    out
}

#[test]
#[ignore = "child process of view_builds_survive_sigkill"]
fn child_builder() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        panic!("run by view_builds_survive_sigkill only");
    };
    let db = Database::open(&dir).unwrap();
    let views = engine(&db);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", checkpoint(&views)).unwrap();
    out.flush().unwrap();
    let seq = views
        .update(DDOC, &mut |p| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "BATCH {}", p.seq).unwrap();
            out.flush().unwrap();
            ControlFlow::Continue(())
        })
        .unwrap();
    writeln!(out, "DONE {seq}").unwrap();
    out.flush().unwrap();
}

/// Edits, deletes and adds documents after a completed build.
fn mutate(db: &Database, model: &mut Model, round: usize, generator: &mut OrdersGenerator) {
    let since = db.update_seq().unwrap();
    let mut docs = Vec::new();
    let ids: Vec<String> = {
        let mut ids: Vec<String> = model
            .versions
            .iter()
            .filter(|(id, v)| !id.starts_with("_design/") && v.last().unwrap().rows.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    for (i, id) in ids.iter().enumerate() {
        let pick = (i * 7 + round * 13) % 40;
        if pick >= 3 {
            continue;
        }
        let mut doc = db.get(id, &ReadOptions::default()).unwrap();
        if pick == 0 {
            docs.push(json!({"_id": id, "_rev": doc["_rev"], "_deleted": true}));
        } else {
            doc["status"] = json!(format!("edited-{round}"));
            doc["region"] = json!(["north", "south", "moon"][i % 3]);
            docs.push(doc);
        }
    }
    docs.extend(generator.by_ref().take(1_000).map(|mut d| {
        let id = d["_id"].as_str().unwrap().replace("doc", "new");
        d["_id"] = json!(id);
        d
    }));
    for chunk in docs.chunks(1_000) {
        let results = db
            .bulk_docs(chunk.to_vec(), BulkOptions::default())
            .unwrap();
        assert!(results.iter().all(|r| !r.is_error()));
    }
    model.record_changes(db, since);
}

#[test]
fn view_builds_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::create(&path).unwrap();
    let mut generator = OrdersGenerator::new(42);
    let mut model = Model::default();
    db.put(design_doc()).unwrap();
    let docs: Vec<Value> = generator.by_ref().take(DOCS).collect();
    for chunk in docs.chunks(2_000) {
        let results = db
            .bulk_docs(chunk.to_vec(), BulkOptions::default())
            .unwrap();
        assert!(results.iter().all(|r| !r.is_error()));
    }
    model.record_changes(&db, 0);
    let mut generator = OrdersGenerator::new(7);
    let populated = started.elapsed();

    let mut rng = XorShift::from_clock();
    let mut next = move |bound: u64| rng.below(bound);
    let mut last_checkpoint = 0;
    let (mut kills, mut completed, mut mid_batch_kills) = (0, 0, 0);
    for round in 0..ROUNDS {
        let mut child =
            child_process::spawn("child_builder", &[(DIR_ENV, path.display().to_string())]);
        // Kill after a few committed batches plus a random delay (inside the
        // next batch's mapping or commit), or right after opening, or after a
        // random time if the build reports no batches.
        // Every fourth round runs to the end, so that later rounds kill
        // incremental passes over edited, deleted and new documents.
        let finish = round % 4 == 3;
        let incremental = last_checkpoint > DOCS as u64;
        let kill_after_batches = match (finish, incremental) {
            (true, _) => u64::MAX,
            (false, true) => next(2),
            (false, false) => next(4),
        };
        let kill_delay = Duration::from_millis(next(40));
        let time_cap = if finish {
            Duration::MAX
        } else {
            Duration::from_millis(20 + next(1_500))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ready_at = None;
        let mut batches = 0;
        let mut killed = false;
        let mut done = false;
        loop {
            assert!(Instant::now() < deadline, "round {round}: the child hangs");
            match child.lines.recv_timeout(Duration::from_millis(10)) {
                Ok(line) => {
                    let line = child_process::strip_libtest_prefix(&line).to_string();
                    if let Some(seq) = line.strip_prefix("READY ") {
                        // Reopening resumes from the checkpoint the parent saw.
                        assert_eq!(
                            seq.parse::<u64>().unwrap(),
                            last_checkpoint,
                            "round {round}: the child reopened at another checkpoint"
                        );
                        ready_at = Some(Instant::now());
                    } else if line.starts_with("BATCH ") {
                        batches += 1;
                    } else if line.starts_with("DONE ") {
                        done = true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let Some(ready) = ready_at else { continue };
            if !killed && !done && (batches >= kill_after_batches || ready.elapsed() >= time_cap) {
                std::thread::sleep(kill_delay);
                child.kill();
                killed = true;
                if batches > 0 {
                    mid_batch_kills += 1;
                }
            }
        }
        let status = child.wait();
        if killed && !status.success() {
            kills += 1;
        } else {
            assert!(
                status.success(),
                "round {round}: the child failed: {status}"
            );
        }

        // Reopen in this process: a consistent checkpoint that never goes back.
        let views = engine(&db);
        let seq = verify(&db, &views, &model).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(
            seq >= last_checkpoint,
            "round {round}: checkpoint went back from {last_checkpoint} to {seq}"
        );
        last_checkpoint = seq;
        let complete = seq == db.update_seq().unwrap();
        eprintln!(
            "round {round}: killed {killed} after {batches} batches, checkpoint {seq} of {}",
            db.update_seq().unwrap()
        );
        views.close_indexes();
        if complete {
            completed += 1;
            mutate(&db, &mut model, round, &mut generator);
        }
    }
    assert!(kills > 0, "no child was killed");
    assert!(completed > 0, "no build completed");

    // Finish in this process, check the result, and compare every answer with
    // a clean rebuild.
    let views = engine(&db);
    let target = db.update_seq().unwrap();
    assert_eq!(
        views
            .update(DDOC, &mut |_| ControlFlow::Continue(()))
            .unwrap(),
        target
    );
    assert_eq!(verify(&db, &views, &model).unwrap(), target);
    let resumed = answers(&views);
    views.reset(DDOC).unwrap();
    assert_eq!(checkpoint(&views), 0);
    views
        .update(DDOC, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let rebuilt = answers(&views);
    for (i, (a, b)) in resumed.iter().zip(&rebuilt).enumerate() {
        assert!(a == b, "answer {i} differs from a clean rebuild");
    }
    assert_eq!(resumed.len(), rebuilt.len());
    views.close_indexes();
    eprintln!(
        "{ROUNDS} rounds: {kills} kills ({mid_batch_kills} after a committed batch), \
         {completed} completed builds; populated in {populated:?}, total {:?}",
        started.elapsed()
    );
}
