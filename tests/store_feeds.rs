//! The changes feed, `_all_docs`, subscriptions, the indexer feed and the
//! validation hook (golden families G and E).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use settee::{
    AllDocsQuery, BulkOptions, ChangesFilter, ChangesQuery, ChangesStyle, Database, Error, Rev,
    Since, UpdateValidator, UserCtx, ValidationRequest,
};

fn db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("db")).unwrap();
    (dir, db)
}

fn rev_of(db: &Database, id: &str) -> Rev {
    Rev::parse(
        db.get(id, &Default::default()).unwrap()["_rev"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn seqs(resp: &settee::ChangesResponse) -> Vec<u64> {
    resp.results.iter().map(|r| r.seq).collect()
}

/// g00..g05 written once (seqs 1..6), then g01 updated (7), g02 deleted (8),
/// and a design doc (9).
fn populated() -> (tempfile::TempDir, Database) {
    let (d, db) = db();
    for i in 0..6 {
        db.put(json!({"_id": format!("g{i:02}"), "n": i})).unwrap();
    }
    let r = rev_of(&db, "g01");
    db.put(json!({"_id": "g01", "n": 10, "_rev": r.to_string()}))
        .unwrap();
    db.delete("g02", &rev_of(&db, "g02")).unwrap();
    db.put(json!({"_id": "_design/f", "filters": {}})).unwrap();
    (d, db)
}

#[test]
fn changes_feed_rows_and_paging() {
    let (_d, db) = db();
    let empty = db.changes(&ChangesQuery::new()).unwrap();
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"results": [], "last_seq": 0, "pending": 0})
    );
    let (_d, db) = populated();
    let all = db.changes(&ChangesQuery::new()).unwrap();
    // Each document once, at its latest seq.
    assert_eq!(seqs(&all), [1, 4, 5, 6, 7, 8, 9]);
    assert_eq!((all.last_seq, all.pending), (9, 0));
    let row = serde_json::to_value(&all.results[5]).unwrap();
    assert_eq!(row["id"], "g02");
    assert_eq!(row["deleted"], true);
    assert!(row["changes"][0]["rev"].as_str().unwrap().starts_with("2-"));
    assert!(serde_json::to_value(&all.results[0])
        .unwrap()
        .get("deleted")
        .is_none());

    let page = db
        .changes(&ChangesQuery::new().since(Since::Seq(3)).limit(2))
        .unwrap();
    assert_eq!(seqs(&page), [4, 5]);
    assert_eq!((page.last_seq, page.pending), (5, 4));
    let next = db
        .changes(
            &ChangesQuery::new()
                .since(Since::Seq(page.last_seq))
                .limit(2),
        )
        .unwrap();
    assert_eq!(seqs(&next), [6, 7]);
    let zero = db.changes(&ChangesQuery::new().limit(0)).unwrap();
    assert_eq!((zero.results.len(), zero.last_seq, zero.pending), (0, 0, 7));
    let now = db.changes(&ChangesQuery::new().since(Since::Now)).unwrap();
    assert_eq!((now.results.len(), now.last_seq, now.pending), (0, 9, 0));

    let desc = db.changes(&ChangesQuery::new().descending(true)).unwrap();
    assert_eq!(seqs(&desc), [9, 8, 7, 6, 5, 4, 1]);
    assert_eq!((desc.last_seq, desc.pending), (1, 0));
    let desc = db
        .changes(&ChangesQuery::new().descending(true).limit(3))
        .unwrap();
    assert_eq!((desc.last_seq, desc.pending), (7, 4));

    let docs = db
        .changes(&ChangesQuery::new().include_docs(true).since(Since::Seq(6)))
        .unwrap();
    assert_eq!(docs.results[0].doc.as_ref().unwrap()["n"], 10);
    assert_eq!(
        docs.results[1].doc.as_ref().unwrap(),
        &json!({"_id": "g02", "_rev": docs.results[1].changes[0].rev, "_deleted": true})
    );
}

#[test]
fn changes_filters_and_styles() {
    let (_d, db) = populated();
    let ids = ChangesFilter::DocIds(vec![
        "g05".into(),
        "g00".into(),
        "g02".into(),
        "nope".into(),
    ]);
    let r = db
        .changes(&ChangesQuery::new().filter(ids.clone()))
        .unwrap();
    assert_eq!(seqs(&r), [1, 6, 8]);
    assert_eq!(r.last_seq, 9);
    let r = db
        .changes(
            &ChangesQuery::new()
                .filter(ids)
                .since(Since::Seq(1))
                .limit(1),
        )
        .unwrap();
    assert_eq!((seqs(&r), r.last_seq), (vec![6], 6));
    let r = db
        .changes(&ChangesQuery::new().filter(ChangesFilter::Design))
        .unwrap();
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].id, "_design/f");
    let pred: settee::store::DocPredicate =
        Arc::new(|d: &Value| d["n"].as_u64().is_some_and(|n| n >= 4));
    let r = db
        .changes(&ChangesQuery::new().filter(ChangesFilter::Predicate(pred)))
        .unwrap();
    assert_eq!(
        r.results.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["g04", "g05", "g01"]
    );
    assert!(r.results[0].doc.is_none(), "docs only with include_docs");

    // style=all_docs lists every leaf, winner first; conflicts with include_docs.
    db.bulk_docs(
        vec![json!({"_id": "g03", "_rev": "2-zzz", "_revisions": {"start": 2, "ids": ["zzz", "aaa"]}, "b": 1})],
        BulkOptions::replicated(),
    )
    .unwrap();
    let q = ChangesQuery::new()
        .since(Since::Seq(9))
        .style(ChangesStyle::AllDocs)
        .include_docs(true)
        .conflicts(true);
    let r = db.changes(&q).unwrap();
    let row = serde_json::to_value(&r.results[0]).unwrap();
    assert_eq!(row["changes"][0]["rev"], "2-zzz");
    assert_eq!(row["changes"].as_array().unwrap().len(), 2);
    assert_eq!(row["doc"]["_conflicts"][0], row["changes"][1]["rev"]);
}

#[test]
fn all_docs_ranges_and_rows() {
    let (_d, db) = db();
    for id in [
        "_design/0b1",
        "a0",
        "b0",
        "b99",
        "bc",
        "cc",
        "x-a",
        "x_0",
        "x_b",
        "éc0",
    ] {
        db.put(json!({ "_id": id, "v": id })).unwrap();
    }
    let tomb = db.delete("x_b", &rev_of(&db, "x_b")).unwrap().rev;
    let ids = |r: &settee::AllDocsResponse| -> Vec<String> {
        serde_json::to_value(&r.rows)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = db.all_docs(&AllDocsQuery::new()).unwrap();
    assert_eq!(
        ids(&all),
        [
            "_design/0b1",
            "a0",
            "b0",
            "b99",
            "bc",
            "cc",
            "x-a",
            "x_0",
            "éc0"
        ]
    );
    assert_eq!((all.total_rows, all.offset), (9, Some(0)));
    let row = serde_json::to_value(&all.rows[1]).unwrap();
    assert_eq!(
        row,
        json!({"id": "a0", "key": "a0", "value": {"rev": rev_of(&db, "a0").to_string()}})
    );

    let r = db
        .all_docs(
            &AllDocsQuery::new()
                .start_key("b0")
                .end_key("x_0")
                .inclusive_end(false)
                .limit(2),
        )
        .unwrap();
    assert_eq!(
        (ids(&r), r.offset),
        (vec!["b0".to_owned(), "b99".to_owned()], Some(2))
    );
    let r = db
        .all_docs(&AllDocsQuery::new().start_key("x-a").skip(2))
        .unwrap();
    assert_eq!((ids(&r), r.offset), (vec!["éc0".to_owned()], Some(8)));
    let r = db
        .all_docs(&AllDocsQuery::new().start_key("b0").limit(0))
        .unwrap();
    assert_eq!((r.rows.len(), r.offset), (0, Some(2)));
    let r = db
        .all_docs(
            &AllDocsQuery::new()
                .descending(true)
                .start_key("x_0")
                .end_key("bc")
                .skip(1),
        )
        .unwrap();
    assert_eq!(
        (ids(&r), r.offset),
        (
            vec!["x-a".to_owned(), "cc".to_owned(), "bc".to_owned()],
            Some(2)
        )
    );
    let r = db.all_docs(&AllDocsQuery::new().key("x_b")).unwrap();
    assert_eq!((r.rows.len(), r.offset), (0, Some(8)));
    let e = db
        .all_docs(&AllDocsQuery::new().start_key("z").end_key("a"))
        .unwrap_err();
    assert_eq!((e.status(), e.name()), (400, "query_parse_error"));
    let r = db
        .all_docs(
            &AllDocsQuery::new()
                .limit(1)
                .update_seq(true)
                .include_docs(true),
        )
        .unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["update_seq"], 11);
    assert_eq!(v["rows"][0]["doc"]["v"], "_design/0b1");

    // keys: request order, duplicates, deleted and unknown keys.
    let keys = vec![
        json!("x_b"),
        json!("cc"),
        json!("cc"),
        json!("missing-1"),
        json!(1),
    ];
    let r = db
        .all_docs(&AllDocsQuery::new().keys(keys.clone()).include_docs(true))
        .unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["offset"], Value::Null);
    assert_eq!(
        v["rows"][0],
        json!({"id": "x_b", "key": "x_b", "value": {"rev": tomb, "deleted": true}, "doc": null})
    );
    assert_eq!(v["rows"][1]["doc"]["v"], "cc");
    assert_eq!(v["rows"][2]["key"], "cc");
    assert_eq!(
        v["rows"][3],
        json!({"key": "missing-1", "error": "not_found"})
    );
    assert_eq!(v["rows"][4], json!({"key": 1, "error": "not_found"}));
    let r = db
        .all_docs(&AllDocsQuery::new().keys(keys).descending(true).limit(2))
        .unwrap();
    let v = serde_json::to_value(&r.rows).unwrap();
    assert_eq!(v[0]["key"], 1);
    assert_eq!(v[1]["key"], "missing-1");
}

#[test]
fn design_docs_count_and_offset_like_couchdb() {
    // Golden G_all_docs_2: one design doc after seven other ids.
    let (_d, db) = db();
    for id in [
        "1c0",
        "B1",
        "Ba",
        "Z0ba",
        "Z1",
        "Z990",
        "Za11",
        "_design/b",
        "a900",
        "ab",
    ] {
        db.put(json!({ "_id": id })).unwrap();
    }
    let ids = |r: &settee::AllDocsResponse| -> Vec<String> {
        let v = serde_json::to_value(&r.rows).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|row| row["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let design = AllDocsQuery::new().design_only(true);
    let r = db.all_docs(&design).unwrap();
    // 7 rows come before `_design/` in the by-id tree; CouchDB caps the
    // offset at total_rows, which counts design documents only.
    assert_eq!((r.total_rows, r.offset), (1, Some(1)));
    assert_eq!(ids(&r), ["_design/b"]);
    let r = db.all_docs(&design.clone().descending(true)).unwrap();
    assert_eq!((r.total_rows, r.offset), (1, Some(1)));
    assert_eq!(ids(&r), ["_design/b"]);

    // Golden G_all_docs_1: design docs first.
    let (_d, db) = self::db();
    for id in ["_design/0b1", "_design/b", "a0", "b0", "x_0", "éc0"] {
        db.put(json!({ "_id": id })).unwrap();
    }
    let r = db.all_docs(&design).unwrap();
    assert_eq!((r.total_rows, r.offset), (2, Some(0)));
    assert_eq!(ids(&r), ["_design/0b1", "_design/b"]);
    let r = db.all_docs(&design.clone().descending(true)).unwrap();
    assert_eq!((r.total_rows, r.offset), (2, Some(2)));
    assert_eq!(ids(&r), ["_design/b", "_design/0b1"]);
    // A user range stays inside the design docs; skip counts in the offset.
    let r = db
        .all_docs(&design.clone().start_key("_design/a").skip(0))
        .unwrap();
    assert_eq!(ids(&r), ["_design/b"]);
    assert_eq!(r.offset, Some(1));
    let r = db.all_docs(&design.clone().end_key("zzz")).unwrap();
    assert_eq!(ids(&r).len(), 2);
    // Plain `_all_docs` caps the offset at total_rows too.
    let r = db.all_docs(&AllDocsQuery::new().skip(100)).unwrap();
    assert_eq!((r.total_rows, r.offset, r.rows.len()), (6, Some(6), 0));
}

#[test]
fn all_docs_conflicts_with_include_docs() {
    let (_d, db) = db();
    db.bulk_docs(
        vec![
            json!({"_id": "c", "_rev": "1-a", "x": 1}),
            json!({"_id": "c", "_rev": "1-b", "x": 2}),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    let r = db
        .all_docs(&AllDocsQuery::new().include_docs(true).conflicts(true))
        .unwrap();
    let v = serde_json::to_value(&r.rows).unwrap();
    assert_eq!(
        v[0]["doc"],
        json!({"_id": "c", "_rev": "1-b", "x": 2, "_conflicts": ["1-a"]})
    );
}

#[test]
fn subscription_sees_commits_in_order() {
    let (_d, db) = db();
    let rx = db.subscribe();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                db.put(json!({ "_id": format!("d{i}") })).unwrap();
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 20 {
        got.push(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    writer.join().unwrap();
    assert_eq!(
        got.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(got[3].id, "d3");
    let del = db.delete("d3", &Rev::parse(&got[3].rev).unwrap()).unwrap();
    let e = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((e.seq, e.deleted, e.rev), (21, true, del.rev));
}

#[test]
fn indexing_feed_shows_what_map_functions_see() {
    let (_d, db) = db();
    db.put(json!({"_id": "a", "v": 1})).unwrap();
    db.bulk_docs(
        vec![
            json!({"_id": "b", "_rev": "1-x", "v": 2}),
            json!({"_id": "b", "_rev": "1-y", "v": 3}),
            json!({"_id": "b", "_rev": "2-z", "_revisions": {"start": 2, "ids": ["z", "w"]}, "_deleted": true}),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    db.put(json!({"_id": "c"})).unwrap();
    db.delete("c", &rev_of(&db, "c")).unwrap();
    let feed = db.changes_for_indexing(0, 100).unwrap();
    assert_eq!(feed.len(), 3);
    assert_eq!(
        serde_json::to_string(feed[0].doc.as_ref().unwrap()).unwrap(),
        format!(
            r#"{{"_id":"a","_rev":"{}","v":1,"_local_seq":1}}"#,
            rev_of(&db, "a")
        )
    );
    let b = feed[1].doc.as_ref().unwrap();
    assert_eq!(b["_rev"], "1-y");
    assert_eq!(b["_conflicts"], json!(["1-x"]));
    assert_eq!(b["_deleted_conflicts"], json!(["2-z"]));
    assert_eq!(
        (feed[2].id.as_str(), feed[2].deleted, feed[2].doc.is_none()),
        ("c", true, true)
    );
    assert_eq!(db.changes_for_indexing(feed[1].seq, 100).unwrap().len(), 1);
    assert_eq!(db.changes_for_indexing(0, 1).unwrap().len(), 1);
}

/// Records what it sees and refuses documents with `"bad": true`.
#[derive(Default)]
struct Probe {
    seen: Mutex<Vec<(Value, Option<Value>, UserCtx)>>,
}

impl UpdateValidator for Probe {
    fn validate_batch(&self, reqs: &[ValidationRequest<'_>]) -> Vec<settee::Result<()>> {
        let mut seen = self.seen.lock().unwrap();
        reqs.iter()
            .map(|r| {
                seen.push((
                    (*r.new_doc).clone(),
                    r.old_doc.as_deref().cloned(),
                    r.user.clone(),
                ));
                if r.new_doc.get("bad").is_some() {
                    Err(Error::Forbidden("bad doc".into()))
                } else {
                    Ok(())
                }
            })
            .collect()
    }
}

#[test]
fn validator_sees_new_and_old_docs() {
    let (_d, db) = db();
    let probe = Arc::new(Probe::default());
    db.set_validator(Some(probe.clone()));
    // Open to everyone: bob writes (the default is admin-only).
    settee::Security::from_json(&json!({}))
        .unwrap()
        .store(&db)
        .unwrap();
    let bob = UserCtx {
        name: Some("bob".into()),
        roles: vec!["staff".into()],
    };
    let as_bob = db.as_user(bob.clone());
    let r1 = as_bob.put(json!({"_id": "a", "v": 1})).unwrap();
    let r2 = as_bob
        .put(json!({"_id": "a", "v": 2, "_rev": r1.rev}))
        .unwrap();
    as_bob.delete("a", &Rev::parse(&r2.rev).unwrap()).unwrap();
    as_bob.put(json!({"_id": "a", "v": 3})).unwrap();
    // Design documents are submitted (for their own checks); local ones are not.
    db.put(json!({"_id": "_design/x", "bad": true}))
        .unwrap_err();
    db.put(json!({"_id": "_local/x", "bad": true})).unwrap();
    let seen = probe.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[4].0["_id"], "_design/x");
    assert_eq!(seen[0].0, json!({"_id": "a", "v": 1}));
    assert_eq!(seen[0].1, None);
    assert_eq!(seen[0].2, bob);
    assert_eq!(seen[1].0["_rev"], r1.rev);
    assert_eq!(seen[1].0["_revisions"]["start"], 1);
    assert_eq!(seen[1].1.as_ref().unwrap()["v"], 1);
    assert_eq!(seen[2].0["_deleted"], true);
    assert_eq!(seen[2].1.as_ref().unwrap()["_rev"], r2.rev);
    // Re-creating a deleted doc: oldDoc is null.
    assert_eq!(seen[3].1, None);

    // Rejections are per document and change nothing.
    let seq = db.update_seq().unwrap();
    let res = db
        .bulk_docs(
            vec![json!({"_id": "ok1"}), json!({"_id": "no", "bad": true})],
            BulkOptions::default(),
        )
        .unwrap();
    let v = serde_json::to_value(&res).unwrap();
    assert_eq!(v[0]["ok"], true);
    assert_eq!(
        v[1],
        json!({"id": "no", "error": "forbidden", "reason": "bad doc"})
    );
    assert_eq!(db.update_seq().unwrap(), seq + 1);
    assert_eq!(
        db.get("no", &Default::default()).unwrap_err().reason(),
        "missing"
    );
    let e = db.put(json!({"_id": "no", "bad": 1})).unwrap_err();
    assert_eq!((e.status(), e.name()), (403, "forbidden"));
    // Replicated writes are validated too and report their rev.
    let res = db
        .bulk_docs(
            vec![json!({"_id": "r", "_rev": "1-q", "bad": true})],
            BulkOptions::replicated(),
        )
        .unwrap();
    assert_eq!(
        serde_json::to_value(&res).unwrap(),
        json!([{"id": "r", "rev": "1-q", "error": "forbidden", "reason": "bad doc"}])
    );
    db.set_validator(None);
    db.put(json!({"_id": "no", "bad": true})).unwrap();
}

#[test]
fn metadata_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = Database::create(&path).unwrap();
        assert_eq!(db.get_meta("security").unwrap(), None);
        db.put_meta("security", &json!({"admins": {"names": ["a"]}}))
            .unwrap();
        db.set_revs_limit(7).unwrap();
    }
    let db = Database::open(&path).unwrap();
    assert_eq!(
        db.get_meta("security").unwrap().unwrap()["admins"]["names"][0],
        "a"
    );
    assert_eq!(db.revs_limit().unwrap(), 7);
    db.delete_meta("security").unwrap();
    assert_eq!(db.get_meta("security").unwrap(), None);
    assert_eq!(db.update_seq().unwrap(), 0);
}

/// Whether any row of an `_all_docs` answer is a `_local/` document.
fn has_local_row(resp: &settee::AllDocsResponse) -> bool {
    let rows = serde_json::to_value(&resp.rows).unwrap();
    rows.as_array().unwrap().iter().any(|r| {
        r["id"].as_str().is_some_and(|id| id.starts_with("_local/"))
            || r.get("doc").is_some_and(|d| {
                d["_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("_local/"))
            })
    })
}

/// `_local/` documents are not documents: however they are written (the
/// local API, `put`, `bulk_docs`, deletes), they appear in no `_all_docs`
/// range, no changes feed (`since=0`, every style and filter, descending,
/// the indexer's feed, a live subscription) and move no counter.
#[test]
fn local_docs_stay_out_of_all_docs_changes_and_counters() {
    let (_d, db) = populated();
    let before = db.info().unwrap();
    let rx = db.subscribe();
    // Written every way a local document can be, sorting before, among and
    // after the real ids.
    db.put_local("_local/a", json!({"cp": 1})).unwrap();
    db.put_local("_local/a", json!({"cp": 2, "_rev": "0-1"}))
        .unwrap();
    db.put(json!({"_id": "_local/m", "x": 1})).unwrap();
    let bulk = vec![json!({"_id": "_local/z"}), json!({"_id": "_local/zz"})];
    let res = db.bulk_docs(bulk, BulkOptions::default()).unwrap();
    assert!(res.iter().all(|r| !r.is_error()));
    db.delete_local("_local/zz").unwrap();
    let after = db.info().unwrap();
    assert_eq!(
        (after.doc_count, after.doc_del_count, after.update_seq),
        (before.doc_count, before.doc_del_count, before.update_seq)
    );
    assert!(rx.try_recv().is_err(), "a local write was published");
    assert_eq!(db.local_docs(false, false).unwrap().len(), 3);

    // `_all_docs`: every range form, including ranges around `_local/`.
    let queries = [
        AllDocsQuery::new(),
        AllDocsQuery::new().descending(true),
        AllDocsQuery::new().include_docs(true),
        AllDocsQuery::new().start_key("_").end_key("_z"),
        AllDocsQuery::new().start_key("_local/").end_key("_local0"),
        AllDocsQuery::new()
            .start_key("_local0")
            .end_key("_local/")
            .descending(true),
        AllDocsQuery::new().key("_local/a"),
        AllDocsQuery::new()
            .start_key("_local/a")
            .end_key("_local/m")
            .inclusive_end(false),
        AllDocsQuery::new().skip(1).limit(100),
    ];
    let live = before.doc_count;
    for q in &queries {
        let resp = db.all_docs(q).unwrap();
        assert!(!has_local_row(&resp), "{q:?}: {:?}", resp.rows);
        assert_eq!(resp.total_rows, live, "{q:?}");
    }
    let everything = db.all_docs(&AllDocsQuery::new()).unwrap();
    assert_eq!(everything.rows.len() as u64, live);
    let local_range = db
        .all_docs(&AllDocsQuery::new().start_key("_local/").end_key("_local0"))
        .unwrap();
    assert!(local_range.rows.is_empty());

    // The changes feed in every form.
    let feeds = [
        ChangesQuery::new(),
        ChangesQuery::new().since(Since::Seq(0)),
        ChangesQuery::new().descending(true),
        ChangesQuery::new().include_docs(true),
        ChangesQuery::new().style(ChangesStyle::AllDocs),
        ChangesQuery::new().filter(ChangesFilter::DocIds(vec!["_local/a".into(), "g00".into()])),
        ChangesQuery::new().filter(ChangesFilter::Design),
        ChangesQuery::new().filter(ChangesFilter::Predicate(Arc::new(|_| true))),
    ];
    for q in &feeds {
        let feed = db.changes(q).unwrap();
        assert!(
            feed.results.iter().all(|r| !r.id.starts_with("_local/")),
            "{q:?}: {:?}",
            feed.results
        );
        if !q.descending {
            // (Descending, `last_seq` is the seq of the last row, as in CouchDB.)
            assert_eq!(feed.last_seq, before.update_seq, "{q:?}");
        }
    }
    assert_eq!(db.changes(&ChangesQuery::new()).unwrap().results.len(), 7);
    let doc_ids = ChangesQuery::new().filter(ChangesFilter::DocIds(vec!["_local/a".into()]));
    assert!(db.changes(&doc_ids).unwrap().results.is_empty());
    let indexing = db.changes_for_indexing(0, 100).unwrap();
    assert!(indexing.iter().all(|c| !c.id.starts_with("_local/")));
    assert_eq!(indexing.len(), 7);

    // The live subscription: the next event is the next real write.
    db.put_local("_local/a", json!({"cp": 3, "_rev": "0-2"}))
        .unwrap();
    db.put(json!({"_id": "real"})).unwrap();
    let e = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((e.id.as_str(), e.seq), ("real", before.update_seq + 1));
    assert!(rx.try_recv().is_err());
}
