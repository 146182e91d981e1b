//! Map growth, compaction under load, and reopening.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;
use settee::{
    AllDocsQuery, BulkOptions, ChangesQuery, Database, OpenMode, ReadOptions, Rev, StoreOptions,
};

#[test]
fn map_grows_on_demand_from_one_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default().initial_map_size(1 << 20);
    let db = Database::open_with(dir.path().join("db"), OpenMode::Create, opts).unwrap();
    db.put(json!({"_id": "probe"})).unwrap();
    // Readers keep going while the writer grows the map under them.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.get("probe", &ReadOptions::default()).unwrap();
                db.changes(&ChangesQuery::new().limit(3)).unwrap();
                reads += 1;
            }
            reads
        })
    };
    let filler = "x".repeat(2000);
    // ~12 MB in batches, far beyond the 1 MiB map.
    for batch in 0..30 {
        let docs = (0..200)
            .map(|i| json!({"_id": format!("d{batch:03}-{i:03}"), "fill": filler}))
            .collect();
        let res = db.bulk_docs(docs, BulkOptions::default()).unwrap();
        assert!(res.iter().all(|r| !r.is_error()));
    }
    // A single document larger than the current map also fits after growth.
    db.put(json!({"_id": "big", "fill": "y".repeat(4_000_000)}))
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let info = db.info().unwrap();
    assert_eq!((info.doc_count, info.update_seq), (6002, 6002));
    assert!(info.sizes.file > 12 << 20);
    assert_eq!(
        db.get("d029-199", &ReadOptions::default()).unwrap()["fill"],
        filler
    );
}

/// A reader holding one snapshot for a long time (here a changes feed whose
/// filter blocks on its first document) while a writer writes far more data
/// than the initial map holds: the writer finishes while the reader is
/// still open, and the reader then completes on its own snapshot.
#[test]
fn a_long_reader_never_blocks_a_writer_that_outgrows_the_map() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default().initial_map_size(1 << 20);
    let db = Database::open_with(dir.path().join("db"), OpenMode::Create, opts).unwrap();
    for i in 0..10 {
        db.put(json!({"_id": format!("before{i}")})).unwrap();
    }
    let (opened_tx, opened) = crossbeam_channel::bounded::<()>(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            let first = AtomicBool::new(true);
            let hold = settee::ChangesFilter::Predicate(Arc::new(move |_doc| {
                // Only the first call blocks, holding the snapshot open.
                if first.swap(false, Ordering::SeqCst) {
                    opened_tx.send(()).unwrap();
                    let _ = released.recv_timeout(Duration::from_secs(120));
                }
                true
            }));
            db.changes(&ChangesQuery::new().filter(hold)).unwrap()
        })
    };
    opened.recv_timeout(Duration::from_secs(30)).unwrap();
    // ~24 MB in 120 transactions while the snapshot stays open: far beyond
    // the 1 MiB initial map, and no page can be reused meanwhile.
    let (done_tx, done) = crossbeam_channel::bounded(1);
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            let filler = "w".repeat(2000);
            for batch in 0..120 {
                let docs = (0..100)
                    .map(|i| json!({"_id": format!("w{batch:03}-{i:03}"), "fill": filler}))
                    .collect();
                let res = db.bulk_docs(docs, BulkOptions::default()).unwrap();
                assert!(res.iter().all(|r| !r.is_error()));
            }
            done_tx.send(()).unwrap();
        })
    };
    let finished = done.recv_timeout(Duration::from_secs(60));
    // Let the reader go in any case, so a failure does not hang the test.
    release.send(()).unwrap();
    assert!(
        finished.is_ok(),
        "the writer was stalled by the open reader"
    );
    writer.join().unwrap();
    let info = db.info().unwrap();
    assert_eq!(info.doc_count, 10 + 12_000);
    assert!(info.sizes.file > 16 << 20, "{:?}", info.sizes);
    // The reader saw its snapshot: the ten documents written before it.
    let feed = reader.join().unwrap();
    let ids: Vec<_> = feed.results.iter().map(|r| r.id.as_str()).collect();
    let before: Vec<_> = (0..10).map(|i| format!("before{i}")).collect();
    assert_eq!(ids, before);
    assert_eq!(feed.last_seq, 10);
}

#[test]
fn compaction_drops_old_bodies_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::create(&path).unwrap();
    let big = "z".repeat(10_000);
    let mut revs = Vec::new();
    for i in 0..200 {
        let r = db
            .put(json!({"_id": format!("doc{i:03}"), "v": 0, "big": big}))
            .unwrap();
        revs.push(r.rev);
    }
    for (i, rev) in revs.iter_mut().enumerate() {
        let r = db
            .put(json!({"_id": format!("doc{i:03}"), "v": 1, "_rev": rev}))
            .unwrap();
        *rev = r.rev;
    }
    db.delete("doc000", &Rev::parse(&revs[0]).unwrap()).unwrap();
    db.put_local("_local/cp", json!({"seq": 5})).unwrap();
    db.set_revs_limit(50).unwrap();
    let old_rev = db
        .get("doc001", &ReadOptions::default().revs(true))
        .unwrap()["_revisions"]["ids"][1]
        .as_str()
        .unwrap()
        .to_owned();
    let before = db.info().unwrap();
    let changes_before = db.changes(&ChangesQuery::new()).unwrap();

    db.compact().unwrap();

    let after = db.info().unwrap();
    assert!(
        after.sizes.file < before.sizes.file / 2,
        "{after:?} vs {before:?}"
    );
    assert_eq!(
        (
            after.doc_count,
            after.doc_del_count,
            after.update_seq,
            after.sizes.external
        ),
        (
            before.doc_count,
            before.doc_del_count,
            before.update_seq,
            before.sizes.external
        )
    );
    assert!(!after.compact_running);
    assert_eq!(db.changes(&ChangesQuery::new()).unwrap(), changes_before);
    // The non-leaf body is gone; the tree still knows the revision.
    let e = db
        .get(
            "doc001",
            &ReadOptions::default().rev(Rev::parse(&format!("1-{old_rev}")).unwrap()),
        )
        .unwrap_err();
    assert_eq!(e.reason(), "missing");
    let info = db
        .get("doc001", &ReadOptions::default().revs_info(true))
        .unwrap();
    assert_eq!(info["_revs_info"][1]["status"], "missing");
    assert_eq!(db.get("doc001", &ReadOptions::default()).unwrap()["v"], 1);
    assert_eq!(
        db.get("doc000", &ReadOptions::default())
            .unwrap_err()
            .reason(),
        "deleted"
    );
    assert_eq!(db.get_local("_local/cp").unwrap()["seq"], 5);
    assert_eq!(db.revs_limit().unwrap(), 50);
    // Still writable, and the new generation survives a reopen.
    db.put(json!({"_id": "after"})).unwrap();
    drop(db);
    let db = Database::open(&path).unwrap();
    assert_eq!(db.update_seq().unwrap(), before.update_seq + 1);
    assert_eq!(db.all_docs(&AllDocsQuery::new()).unwrap().total_rows, 200);
    let generations = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("store-")
        })
        .count();
    assert_eq!(generations, 1);
}

#[test]
fn compaction_runs_while_reading_and_writing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("db")).unwrap();
    let docs = (0..3000)
        .map(|i| json!({"_id": format!("seed{i:05}"), "pad": "p".repeat(300)}))
        .collect();
    db.bulk_docs(docs, BulkOptions::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 50 {
                db.put(json!({"_id": format!("live{n:06}")})).unwrap();
                n += 1;
            }
            n
        })
    };
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert!(db.get("seed01234", &ReadOptions::default()).is_ok());
                reads += 1;
            }
            reads
        })
    };
    db.compact().unwrap();
    db.compact().unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(reader.join().unwrap() > 0);
    // Every acknowledged write made it into the compacted generation.
    let info = db.info().unwrap();
    assert_eq!(info.doc_count, 3000 + written);
    assert_eq!(info.update_seq, 3000 + written);
    let changes = db
        .changes(&ChangesQuery::new().since(settee::Since::Seq(3000)))
        .unwrap();
    assert_eq!(changes.results.len() as u64, written);
    assert!(changes.results.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn interrupted_compaction_leaves_the_old_generation_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = Database::create(&path).unwrap();
        db.put(json!({"_id": "kept", "v": 1})).unwrap();
    }
    // What a crash between the copy and the switch of CURRENT leaves behind:
    // a half-written next generation.
    std::fs::create_dir_all(path.join("store-1")).unwrap();
    std::fs::write(path.join("store-1").join("data.mdb"), b"partial copy").unwrap();
    std::fs::write(path.join("CURRENT.tmp"), b"store-1\n").unwrap();
    let db = Database::open(&path).unwrap();
    assert_eq!(db.get("kept", &ReadOptions::default()).unwrap()["v"], 1);
    assert!(!path.join("store-1").exists());
    assert!(!path.join("CURRENT.tmp").exists());
    db.put(json!({"_id": "more"})).unwrap();
    db.compact().unwrap();
    assert_eq!(db.info().unwrap().doc_count, 2);
    assert_eq!(
        std::fs::read_to_string(path.join("CURRENT"))
            .unwrap()
            .trim(),
        "store-1"
    );
}

/// `sizes.active` counts the pages of live data: positive, never above the
/// file, growing with the data, and back down once compaction has dropped
/// the bodies of a heavily edited database's old revisions.
#[test]
fn active_size_follows_the_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("db")).unwrap();
    let sizes = |db: &Database| {
        let s = db.info().unwrap().sizes;
        assert!(s.active > 0 && s.active <= s.file, "{s:?}");
        s
    };
    let empty = sizes(&db);
    let body = "b".repeat(3000);
    let mut revs: Vec<String> = (0..100)
        .map(|i| {
            db.put(json!({"_id": format!("e{i:03}"), "v": 0, "body": body}))
                .unwrap()
                .rev
        })
        .collect();
    let loaded = sizes(&db);
    assert!(loaded.active >= empty.active + 100 * 3000, "{loaded:?}");
    // Ten more full-size revisions of every document: old bodies stay
    // until compaction.
    for v in 1..=10 {
        for (i, rev) in revs.iter_mut().enumerate() {
            let doc = json!({"_id": format!("e{i:03}"), "_rev": rev, "v": v, "body": body});
            *rev = db.put(doc).unwrap().rev;
        }
    }
    let edited = sizes(&db);
    assert!(
        edited.active > 5 * loaded.active,
        "{edited:?} vs {loaded:?}"
    );
    db.compact().unwrap();
    let compacted = sizes(&db);
    assert!(
        compacted.active < edited.active / 4,
        "{compacted:?} vs {edited:?}"
    );
    assert!(
        compacted.file < edited.file / 2,
        "{compacted:?} vs {edited:?}"
    );
    assert!(compacted.active >= 100 * 3000, "{compacted:?}");
}
