//! Compaction under `kill -9`: a child process fills a database with
//! heavily edited documents, then compacts it over and over while a second
//! thread keeps updating documents and reports each acknowledged revision.
//! The parent SIGKILLs it at random moments (so in every phase: dropping old
//! bodies, copying, replaying, switching `CURRENT`, removing the old
//! generation); every restart checks that each document is present with its
//! acknowledged revision or a later one, the rev trees and the changes feed
//! are intact, no leftover file remains, and the store is writable.
//!
//! The child is this test binary re-run with `--ignored --exact
//! child_compactor` (see `tests/child_process`).

mod child_process;

use child_process::XorShift;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use settee::{
    AllDocsQuery, AllDocsRow, BulkOptions, BulkResult, ChangesQuery, Database, ReadOptions,
};

const DIR_ENV: &str = "SETTEE_COMPACT_KILL_DIR";
const EXPECTED_ENV: &str = "SETTEE_COMPACT_KILL_EXPECTED";
const DOCS: u64 = 2000;
/// Revisions written per document before the first compaction.
const FILL_EDITS: u64 = 4;
const KILLS: usize = 30;

/// Acknowledged revisions: doc id → (`v`, rev). Documents not listed have
/// at least their fill revisions.
type Acked = HashMap<String, (u64, String)>;

fn doc_id(i: u64) -> String {
    format!("d{i:05}")
}

/// Checks the invariants of a reopened database.
fn verify(db: &Database, path: &Path, acked: &Acked) -> Result<(), String> {
    let e = |e: settee::Error| e.to_string();
    // Nothing but the pointer and the live generation is left.
    let current = std::fs::read_to_string(path.join("CURRENT")).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map_err(|e| e.to_string())?
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names != ["CURRENT", current.trim()] {
        return Err(format!("leftover files: {names:?}"));
    }
    let info = db.info().map_err(e)?;
    if (info.doc_count, info.doc_del_count) != (DOCS, 0) {
        return Err(format!(
            "{} docs, {} deleted",
            info.doc_count, info.doc_del_count
        ));
    }
    let all = db
        .all_docs(&AllDocsQuery::new().include_docs(true))
        .map_err(e)?;
    if all.rows.len() as u64 != DOCS {
        return Err(format!("all_docs has {} rows", all.rows.len()));
    }
    for row in &all.rows {
        let AllDocsRow::Doc { id, rev, doc, .. } = row else {
            return Err(format!("bad row {row:?}"));
        };
        let v = doc
            .as_ref()
            .and_then(|d| d.as_ref())
            .and_then(|d| d["v"].as_u64());
        let Some(v) = v else {
            return Err(format!("{id}: no body"));
        };
        // One revision per edit: `v` counts from 0 at rev 1.
        if !rev.starts_with(&format!("{}-", v + 1)) || v + 1 < FILL_EDITS {
            return Err(format!("{id}: v {v} at rev {rev}"));
        }
        if let Some((acked_v, acked_rev)) = acked.get(id) {
            if v < *acked_v || (v == *acked_v && rev != acked_rev) {
                return Err(format!(
                    "{id}: acknowledged {acked_v} {acked_rev}, found {v} {rev}"
                ));
            }
        }
    }
    // The whole rev tree survived: the full ancestry of a few documents.
    for i in [0, DOCS / 2, DOCS - 1] {
        let doc = db
            .get(&doc_id(i), &ReadOptions::default().revs(true))
            .map_err(e)?;
        let start = doc["_revisions"]["start"].as_u64().unwrap_or(0);
        let ids = doc["_revisions"]["ids"].as_array().map_or(0, Vec::len) as u64;
        if ids != start || start != doc["v"].as_u64().unwrap_or(0) + 1 {
            return Err(format!("{}: ancestry {ids} for rev pos {start}", doc_id(i)));
        }
    }
    // One change per document, seqs increasing.
    let changes = db.changes(&ChangesQuery::new()).map_err(e)?;
    if changes.results.len() as u64 != DOCS
        || !changes.results.windows(2).all(|w| w[0].seq < w[1].seq)
        || changes.last_seq != info.update_seq
    {
        return Err("changes feed does not match the documents".into());
    }
    Ok(())
}

fn read_acked(path: &str) -> Acked {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let (id, v, rev) = (parts.next()?, parts.next()?, parts.next()?);
            Some((id.to_owned(), (v.parse().ok()?, rev.to_owned())))
        })
        .collect()
}

fn fill(db: &Database) {
    let pad = "p".repeat(1000);
    let mut revs: Vec<Option<String>> = vec![None; DOCS as usize];
    for v in 0..FILL_EDITS {
        for chunk in (0..DOCS).collect::<Vec<_>>().chunks(500) {
            let docs = chunk
                .iter()
                .map(|&i| {
                    let mut d = json!({"_id": doc_id(i), "v": v, "pad": pad});
                    if let Some(rev) = &revs[i as usize] {
                        d["_rev"] = json!(rev);
                    }
                    d
                })
                .collect();
            let res = db.bulk_docs(docs, BulkOptions::default()).unwrap();
            for (&i, r) in chunk.iter().zip(res) {
                let BulkResult::Ok(u) = r else {
                    panic!("fill refused: {r:?}")
                };
                revs[i as usize] = Some(u.rev);
            }
        }
    }
}

#[test]
#[ignore = "child process of compaction_survives_sigkill"]
fn child_compactor() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        panic!("run by compaction_survives_sigkill only");
    };
    let acked = read_acked(&std::env::var(EXPECTED_ENV).unwrap());
    let path = Path::new(&dir);
    let fresh = !path.exists();
    let db = Database::open_or_create(path).unwrap();
    if fresh {
        fill(&db);
    }
    if let Err(e) = verify(&db, path, &acked) {
        println!("VERIFY-FAIL {e}");
        std::process::exit(3);
    }
    println!("READY");
    // Updates ten documents per transaction and reports each new revision.
    let writer = {
        let db = db.clone();
        let mut rng = XorShift::seeded(u64::from(std::process::id()));
        std::thread::spawn(move || loop {
            let docs = (0..10)
                .map(|_| {
                    let mut doc = db
                        .get(&doc_id(rng.below(DOCS)), &ReadOptions::default())
                        .unwrap();
                    doc["v"] = json!(doc["v"].as_u64().unwrap() + 1);
                    doc
                })
                .collect::<Vec<_>>();
            let versions: Vec<_> = docs.iter().map(|d| d["v"].as_u64().unwrap()).collect();
            // The same document twice in a batch: the second is a conflict.
            let res = db.bulk_docs(docs, BulkOptions::default()).unwrap();
            for (r, v) in res.iter().zip(versions) {
                if let BulkResult::Ok(u) = r {
                    println!("ACK {} {v} {}", u.id, u.rev);
                }
            }
        })
    };
    let mut n = 0u64;
    while !writer.is_finished() {
        db.compact().unwrap();
        n += 1;
        println!("COMPACTED {n}");
    }
    writer.join().unwrap();
}

#[test]
fn compaction_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let expected = dir.path().join("acked");
    let mut acked = Acked::new();
    let mut rng = XorShift::from_clock();
    let started = Instant::now();
    let (mut compactions, mut mid_compaction) = (0u64, 0usize);
    for round in 0..KILLS {
        let lines: String = acked
            .iter()
            .map(|(id, (v, rev))| format!("{id} {v} {rev}\n"))
            .collect();
        std::fs::write(&expected, lines).unwrap();
        let child = child_process::spawn(
            "child_compactor",
            &[
                (DIR_ENV, path.display().to_string()),
                (EXPECTED_ENV, expected.display().to_string()),
            ],
        );
        let delay = Duration::from_micros(rng.below(400_000));
        child.kill_after_ready(delay, Duration::from_secs(30), round, |line| {
            if let Some(ack) = line.strip_prefix("ACK ") {
                let mut parts = ack.split(' ');
                let (id, v, rev) = (parts.next(), parts.next(), parts.next());
                let (Some(id), Some(v), Some(rev)) = (id, v, rev) else {
                    panic!("bad line {line}")
                };
                let v: u64 = v.parse().unwrap();
                let slot = acked.entry(id.to_owned()).or_insert((0, String::new()));
                if v >= slot.0 {
                    *slot = (v, rev.to_owned());
                }
            }
            if line.starts_with("COMPACTED") {
                compactions += 1;
            }
        });
        // A second generation on disk: the kill hit a compaction in flight.
        let generations = std::fs::read_dir(&path)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("store-")
            })
            .count();
        mid_compaction += usize::from(generations > 1);
    }
    // Final check in this process; the store is still writable and compactable.
    let db = Database::open(&path).unwrap();
    verify(&db, &path, &acked).unwrap();
    let mut doc = db.get(&doc_id(7), &ReadOptions::default()).unwrap();
    doc["v"] = json!(doc["v"].as_u64().unwrap() + 1);
    db.put(doc).unwrap();
    db.compact().unwrap();
    acked.remove(&doc_id(7));
    verify(&db, &path, &acked).unwrap();
    eprintln!(
        "{KILLS} kills ({mid_compaction} during a compaction), {compactions} compactions \
         completed, {} documents updated, {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(mid_compaction > 0, "no kill hit a compaction in flight");
}
