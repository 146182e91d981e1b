//! Durability under `kill -9`: a child process writes bulk batches and
//! reports each acknowledged one; the parent SIGKILLs it at random moments,
//! and every restart checks that all acknowledged batches are present, no
//! batch is partial, seqs are intact and the store is writable.
//!
//! The child is this test binary re-run with `--ignored --exact child_writer`
//! and the database directory in an environment variable.

mod child_process;

use child_process::XorShift;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use settee::{BulkOptions, ChangesQuery, Database, ReadOptions};

const DIR_ENV: &str = "SETTEE_KILL_TEST_DIR";
const ACKED_ENV: &str = "SETTEE_KILL_TEST_ACKED";
/// New documents per batch; each batch also updates the `counter` document.
const BATCH: u64 = 25;
const KILLS: usize = 60;

/// Checks the invariants; returns the number of committed batches.
fn verify(db: &Database, acked: u64) -> Result<u64, String> {
    let info = db.info().map_err(|e| e.to_string())?;
    let docs = info.doc_count.saturating_sub(1); // minus the counter document
    if info.doc_count > 0 && docs % BATCH != 0 {
        return Err(format!("partial batch: {} documents", info.doc_count));
    }
    let batches = docs / BATCH;
    if batches < acked {
        return Err(format!("{acked} batches acknowledged, {batches} present"));
    }
    if batches > 0 {
        let counter = db
            .get("counter", &ReadOptions::default())
            .map_err(|e| e.to_string())?;
        if counter["n"] != json!(batches) {
            return Err(format!(
                "counter says {} for {batches} batches",
                counter["n"]
            ));
        }
        for i in 0..BATCH {
            let id = format!("b{:05}-{i:02}", batches - 1);
            db.get(&id, &ReadOptions::default())
                .map_err(|e| format!("{id}: {e}"))?;
        }
    }
    // One change per document, seqs increasing, ending at update_seq = 26 per batch.
    if info.update_seq != batches * (BATCH + 1) {
        return Err(format!(
            "update_seq {} for {batches} batches",
            info.update_seq
        ));
    }
    let changes = db
        .changes(&ChangesQuery::new())
        .map_err(|e| e.to_string())?;
    if changes.results.len() as u64 != info.doc_count
        || !changes.results.windows(2).all(|w| w[0].seq < w[1].seq)
        || changes.last_seq != info.update_seq
    {
        return Err("changes feed does not match the documents".into());
    }
    Ok(batches)
}

#[test]
#[ignore = "child process of acknowledged_batches_survive_sigkill"]
fn child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        panic!("run by acknowledged_batches_survive_sigkill only");
    };
    let acked: u64 = std::env::var(ACKED_ENV).unwrap().parse().unwrap();
    let db = Database::open_or_create(&dir).unwrap();
    let mut out = std::io::stdout().lock();
    let mut batch = match verify(&db, acked) {
        Ok(b) => b,
        Err(e) => {
            writeln!(out, "VERIFY-FAIL {e}").unwrap();
            out.flush().unwrap();
            std::process::exit(3);
        }
    };
    writeln!(out, "READY {batch}").unwrap();
    out.flush().unwrap();
    loop {
        let mut docs: Vec<_> = (0..BATCH)
            .map(|i| json!({"_id": format!("b{batch:05}-{i:02}"), "batch": batch, "pad": "p".repeat(200)}))
            .collect();
        let mut counter = json!({"_id": "counter", "n": batch + 1});
        if batch > 0 {
            counter["_rev"] = db.get("counter", &ReadOptions::default()).unwrap()["_rev"].clone();
        }
        docs.push(counter);
        let results = db.bulk_docs(docs, BulkOptions::default()).unwrap();
        assert!(results.iter().all(|r| !r.is_error()));
        batch += 1;
        writeln!(out, "ACK {batch}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut acked = 0u64;
    let mut rng = XorShift::from_clock();
    let started = Instant::now();
    for round in 0..KILLS {
        let child = child_process::spawn(
            "child_writer",
            &[
                (DIR_ENV, path.display().to_string()),
                (ACKED_ENV, acked.to_string()),
            ],
        );
        // Kill a random few milliseconds after the child started writing.
        let delay = Duration::from_micros(rng.below(40_000));
        child.kill_after_ready(delay, Duration::from_secs(20), round, |line| {
            if let Some(n) = line.strip_prefix("ACK ") {
                acked = acked.max(n.parse().unwrap());
            }
        });
    }
    assert!(acked > 0, "no batch was acknowledged in {KILLS} rounds");
    // Final check in this process, and the store is still writable.
    let db = Database::open(&path).unwrap();
    let batches = verify(&db, acked).unwrap();
    assert!(batches >= acked);
    db.put(json!({"_id": "after-the-storm"})).unwrap();
    eprintln!(
        "{KILLS} kills, {acked} acknowledged batches, {:?}",
        started.elapsed()
    );
}
