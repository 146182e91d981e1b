//! Document semantics, checked against the behaviour recorded from CouchDB 3.5
//! (golden families F and H).

use serde_json::{json, Value};
use settee::{BulkOptions, BulkResult, Database, Error, OpenRev, OpenRevs, ReadOptions, Rev};

fn db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("db")).unwrap();
    (dir, db)
}

fn rev(s: &str) -> Rev {
    Rev::parse(s).unwrap()
}

fn err_of(e: Error) -> (u16, String, String) {
    (e.status(), e.name().to_owned(), e.reason())
}

fn conflict() -> (u16, String, String) {
    (409, "conflict".into(), "Document update conflict.".into())
}

fn get(db: &Database, id: &str) -> Value {
    db.get(id, &ReadOptions::default()).unwrap()
}

fn get_err(db: &Database, id: &str, o: &ReadOptions) -> (u16, String, String) {
    err_of(db.get(id, o).unwrap_err())
}

#[test]
fn crud_follows_couchdb() {
    let (_d, db) = db();
    let body = json!({"_id": "a", "title": "the", "nested": {"x": [1, 2, {"y": null}]}, "num": 63});
    let r1 = db.put(body.clone()).unwrap();
    assert!(r1.ok);
    assert_eq!(r1.id, "a");
    assert!(r1.rev.starts_with("1-") && r1.rev.len() == 34);
    let doc = get(&db, "a");
    assert_eq!(
        serde_json::to_string(&doc).unwrap(),
        format!(
            r#"{{"_id":"a","_rev":"{}","title":"the","nested":{{"x":[1,2,{{"y":null}}]}},"num":63}}"#,
            r1.rev
        )
    );
    // Update without a rev, and with a stale rev: 409.
    assert_eq!(
        err_of(db.put(json!({"_id": "a", "num": 64})).unwrap_err()),
        conflict()
    );
    let r2 = db
        .put(json!({"_id": "a", "num": 65, "_rev": r1.rev}))
        .unwrap();
    assert!(r2.rev.starts_with("2-"));
    assert_eq!(
        err_of(
            db.put(json!({"_id": "a", "num": 66, "_rev": r1.rev}))
                .unwrap_err()
        ),
        conflict()
    );
    let r3 = db
        .put(json!({"_id": "a", "num": 67, "_rev": r2.rev}))
        .unwrap();
    let r4 = db
        .put(json!({"_id": "a", "num": 69, "_rev": r3.rev}))
        .unwrap();

    let revs = db.get("a", &ReadOptions::default().revs(true)).unwrap();
    let ids: Vec<String> = [&r4.rev, &r3.rev, &r2.rev, &r1.rev]
        .iter()
        .map(|r| r[2..].to_owned())
        .collect();
    assert_eq!(revs["_revisions"], json!({"start": 4, "ids": ids}));
    let info = db
        .get("a", &ReadOptions::default().revs_info(true))
        .unwrap();
    assert_eq!(
        info["_revs_info"][0],
        json!({"rev": r4.rev, "status": "available"})
    );
    assert_eq!(info["_revs_info"].as_array().unwrap().len(), 4);
    // meta = revs_info + conflicts + deleted_conflicts; no conflicts here.
    let meta = db.get("a", &ReadOptions::default().meta(true)).unwrap();
    assert!(meta.get("_revs_info").is_some() && meta.get("_conflicts").is_none());
    // Old revisions stay readable until compaction.
    let old = db
        .get("a", &ReadOptions::default().rev(rev(&r1.rev)))
        .unwrap();
    assert_eq!(old["num"], 63);
    let old = db
        .get("a", &ReadOptions::default().rev(rev(&r2.rev)).revs(true))
        .unwrap();
    assert_eq!(old["_revisions"]["start"], 2);
    let latest = db
        .get("a", &ReadOptions::default().rev(rev(&r2.rev)).latest(true))
        .unwrap();
    assert_eq!(latest["_rev"], r4.rev);
    assert_eq!(
        get_err(
            &db,
            "a",
            &ReadOptions::default().rev(rev("1-00000000000000000000000000000000"))
        ),
        (404, "not_found".into(), "missing".into())
    );
    assert_eq!(
        get_err(&db, "nope", &ReadOptions::default()),
        (404, "not_found".into(), "missing".into())
    );

    // Delete: stale rev 409, then a tombstone.
    assert_eq!(
        err_of(db.delete("a", &rev(&r2.rev)).unwrap_err()),
        conflict()
    );
    let r5 = db.delete("a", &rev(&r4.rev)).unwrap();
    assert!(r5.rev.starts_with("5-"));
    assert_eq!(
        get_err(&db, "a", &ReadOptions::default()),
        (404, "not_found".into(), "deleted".into())
    );
    let tomb = db
        .get("a", &ReadOptions::default().rev(rev(&r5.rev)))
        .unwrap();
    assert_eq!(tomb, json!({"_id": "a", "_rev": r5.rev, "_deleted": true}));
    assert_eq!(
        db.open_revs("a", &OpenRevs::All, false, false).unwrap(),
        vec![OpenRev::Ok(tomb.clone())]
    );
    // Deleting a deleted doc: not_found deleted; missing docs: not_found missing.
    assert_eq!(
        err_of(db.delete("a", &rev(&r5.rev)).unwrap_err()).2,
        "deleted"
    );
    assert_eq!(
        err_of(db.delete("nothere", &rev("1-0")).unwrap_err()).2,
        "missing"
    );
    // Re-creating with the tombstone's rev is a conflict; without a rev it
    // continues the tombstone's branch.
    assert_eq!(
        err_of(
            db.put(json!({"_id": "a", "num": 99, "_rev": r5.rev}))
                .unwrap_err()
        ),
        conflict()
    );
    let r6 = db.put(json!({"_id": "a", "num": 100})).unwrap();
    assert!(r6.rev.starts_with("6-"));
    let revs = db.get("a", &ReadOptions::default().revs(true)).unwrap();
    assert_eq!(revs["_revisions"]["ids"][1], r5.rev[2..]);
}

#[test]
fn accepted_oddities() {
    let (_d, db) = db();
    // `_deleted: true` on a new document creates a tombstone.
    let r = db
        .put(json!({"_id": "born_deleted", "_deleted": true, "x": 1}))
        .unwrap();
    assert!(r.rev.starts_with("1-"));
    assert_eq!(
        get_err(&db, "born_deleted", &ReadOptions::default()).2,
        "deleted"
    );
    // A parent rev the database never saw: generation 2 with that parent.
    let r = db
        .put(json!({"_id": "fake_parent", "_rev": "1-5899e41f84902d84ea86edfdf405684b", "x": 2}))
        .unwrap();
    assert!(r.rev.starts_with("2-"));
    let d = db
        .get(
            "fake_parent",
            &ReadOptions::default().revs(true).revs_info(true),
        )
        .unwrap();
    assert_eq!(
        d["_revisions"]["ids"][1],
        "5899e41f84902d84ea86edfdf405684b"
    );
    assert_eq!(d["_revs_info"][1]["status"], "missing");
    let r = db
        .put(json!({"_id": "fake_revisions", "_revisions": {"start": 4, "ids": ["5e0df12cf8990ce1b7088151d5f6bbfa"]}, "x": 3}))
        .unwrap();
    assert!(r.rev.starts_with("5-"));
    // Read-only members are dropped silently.
    db.put(json!({"_id": "c", "_conflicts": ["1-x"], "_local_seq": 1, "_revs_info": [], "x": 4}))
        .unwrap();
    assert_eq!(get(&db, "c")["x"], 4);
    assert!(get(&db, "c").get("_conflicts").is_none());
    // Revisions are content-addressed: same body, same rev, any id.
    let a = db.put(json!({"_id": "s1", "v": 1})).unwrap();
    let b = db.put(json!({"_id": "s2", "v": 1})).unwrap();
    assert_eq!(a.rev, b.rev);
    // Without an id one is generated.
    let g = db.put(json!({"v": 2})).unwrap();
    assert_eq!(g.id.len(), 32);
}

#[test]
fn bad_documents_are_typed_errors() {
    let (_d, db) = db();
    let cases = [
        (
            json!([1]),
            400,
            "bad_request",
            "Document must be a JSON object",
        ),
        (
            json!({"_id": 5}),
            400,
            "illegal_docid",
            "Document id must be a string",
        ),
        (
            json!({"_id": ""}),
            400,
            "illegal_docid",
            "Document id must not be empty",
        ),
        (
            json!({"_id": "_foo"}),
            400,
            "illegal_docid",
            "Only reserved document ids may start with underscore.",
        ),
        (
            json!({"_id": "_local/"}),
            400,
            "bad_request",
            "Invalid _local document id.",
        ),
        (
            json!({"_id": "x", "_deleted": "yes"}),
            400,
            "doc_validation",
            "Bad special document member: _deleted",
        ),
        (
            json!({"_id": "x", "_foo": 1}),
            400,
            "doc_validation",
            "Bad special document member: _foo",
        ),
        (
            json!({"_id": "x", "_rev": "abc"}),
            400,
            "bad_request",
            "Invalid rev format",
        ),
        (
            json!({"_id": "x", "_rev": 5}),
            400,
            "bad_request",
            "Invalid rev format",
        ),
    ];
    for (doc, status, name, reason) in cases {
        let e = db.put(doc.clone()).unwrap_err();
        assert_eq!(
            err_of(e),
            (status, name.to_owned(), reason.to_owned()),
            "{doc}"
        );
    }
    db.put(json!({"_id": "exists"})).unwrap();
    for bad_rev in ["1-", "1-xyz-", "01-00000000000000000000000000000000"] {
        assert_eq!(
            err_of(
                db.put(json!({"_id": "exists", "_rev": bad_rev}))
                    .unwrap_err()
            ),
            conflict()
        );
    }
    let huge = json!({"_id": "huge", "data": "x".repeat(8_100_000)});
    assert_eq!(
        err_of(db.put(huge).unwrap_err()),
        (413, "document_too_large".into(), "huge".into())
    );
    let huge = json!({"data": "x".repeat(8_100_000)});
    assert_eq!(
        err_of(db.put(huge).unwrap_err()),
        (413, "document_too_large".into(), String::new())
    );
    // A long id is fine.
    let long = "L".repeat(589);
    db.put(json!({ "_id": long })).unwrap();
    assert_eq!(get(&db, &long)["_id"], long);
    let too_long = db.put(json!({ "_id": "L".repeat(5000) })).unwrap_err();
    assert_eq!((too_long.status(), too_long.name()), (400, "illegal_docid"));
    assert_eq!(db.info().unwrap().doc_count, 2);
}

/// The four-branch document of golden `F_conflicts_1`.
fn branchy(db: &Database) {
    let root = "09dcb820798aa579b289c9de5164a2d1";
    let branch = |name: &str, n: u64, id: &str, deleted: bool| {
        let mut d = json!({"branch": name, "n": n, "_id": "cd0", "_rev": format!("2-{id}"),
            "_revisions": {"start": 2, "ids": [id, root]}});
        if deleted {
            d["_deleted"] = json!(true);
        }
        d
    };
    let a = branch("a", 1, "fbee243c2ce9f70ff484e5f3e487ec76", false);
    let res = db
        .bulk_docs(vec![a.clone()], BulkOptions::replicated())
        .unwrap();
    assert!(res.is_empty(), "replicated writes report only failures");
    db.bulk_docs(
        vec![
            branch("b", 2, "601ca703415c306b7afc37365209abec", false),
            branch("c", 3, "98ebacc4c027b07a1ebec9fdf435bc10", false),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    db.bulk_docs(
        vec![branch("d", 4, "ceecf4fa4db259f8ceeb9f92c2991071", true)],
        BulkOptions::replicated(),
    )
    .unwrap();
    // Idempotent re-send: nothing changes, no new seq.
    let seq = db.update_seq().unwrap();
    db.bulk_docs(vec![a], BulkOptions::replicated()).unwrap();
    assert_eq!(db.update_seq().unwrap(), seq);
}

#[test]
fn conflicts_and_winner() {
    let (_d, db) = db();
    branchy(&db);
    let doc = get(&db, "cd0");
    assert_eq!(
        doc,
        json!({"_id": "cd0", "_rev": "2-fbee243c2ce9f70ff484e5f3e487ec76", "branch": "a", "n": 1})
    );
    let full = db
        .get(
            "cd0",
            &ReadOptions::default()
                .conflicts(true)
                .deleted_conflicts(true),
        )
        .unwrap();
    assert_eq!(
        full["_conflicts"],
        json!([
            "2-98ebacc4c027b07a1ebec9fdf435bc10",
            "2-601ca703415c306b7afc37365209abec"
        ])
    );
    assert_eq!(
        full["_deleted_conflicts"],
        json!(["2-ceecf4fa4db259f8ceeb9f92c2991071"])
    );
    let meta = db.get("cd0", &ReadOptions::default().meta(true)).unwrap();
    let keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "_id",
            "_rev",
            "branch",
            "n",
            "_revs_info",
            "_conflicts",
            "_deleted_conflicts"
        ]
    );
    assert_eq!(
        meta["_revs_info"][1],
        json!({"rev": "1-09dcb820798aa579b289c9de5164a2d1", "status": "missing"})
    );

    // open_revs=all: every leaf in revision order, tombstones included.
    let all =
        serde_json::to_value(db.open_revs("cd0", &OpenRevs::All, false, false).unwrap()).unwrap();
    let revs: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"]["_rev"].as_str().unwrap())
        .collect();
    assert_eq!(
        revs,
        [
            "2-601ca703415c306b7afc37365209abec",
            "2-98ebacc4c027b07a1ebec9fdf435bc10",
            "2-ceecf4fa4db259f8ceeb9f92c2991071",
            "2-fbee243c2ce9f70ff484e5f3e487ec76"
        ]
    );
    assert_eq!(all[2]["ok"]["_deleted"], true);
    // A list: found ones sorted, missing ones after.
    let list = OpenRevs::Revs(vec![
        rev("2-fbee243c2ce9f70ff484e5f3e487ec76"),
        rev("2-98ebacc4c027b07a1ebec9fdf435bc10"),
        rev("1-00000000000000000000000000000000"),
    ]);
    let got = serde_json::to_value(db.open_revs("cd0", &list, true, false).unwrap()).unwrap();
    assert_eq!(got[0]["ok"]["_rev"], "2-98ebacc4c027b07a1ebec9fdf435bc10");
    assert_eq!(got[0]["ok"]["_revisions"]["start"], 2);
    assert_eq!(
        got[2],
        json!({"missing": "1-00000000000000000000000000000000"})
    );

    // Deleting the winner promotes the next live branch.
    let del = db
        .delete("cd0", &rev("2-fbee243c2ce9f70ff484e5f3e487ec76"))
        .unwrap();
    assert!(del.rev.starts_with("3-"));
    let now = db
        .get(
            "cd0",
            &ReadOptions::default()
                .conflicts(true)
                .deleted_conflicts(true),
        )
        .unwrap();
    assert_eq!(now["_rev"], "2-98ebacc4c027b07a1ebec9fdf435bc10");
    assert_eq!(
        now["_conflicts"],
        json!(["2-601ca703415c306b7afc37365209abec"])
    );
    assert_eq!(now["_deleted_conflicts"][0], del.rev);
    // Updating the new winner; then deleting the last live loser.
    let up = db
        .put(json!({"_id": "cd0", "branch": "winner-updated", "_rev": "2-98ebacc4c027b07a1ebec9fdf435bc10"}))
        .unwrap();
    db.delete("cd0", &rev("2-601ca703415c306b7afc37365209abec"))
        .unwrap();
    let fin = db
        .get(
            "cd0",
            &ReadOptions::default()
                .conflicts(true)
                .deleted_conflicts(true),
        )
        .unwrap();
    assert_eq!(fin["_rev"], up.rev);
    assert!(fin.get("_conflicts").is_none());
    assert_eq!(fin["_deleted_conflicts"].as_array().unwrap().len(), 3);
    let info = db.info().unwrap();
    assert_eq!((info.doc_count, info.doc_del_count), (1, 0));
}

#[test]
fn local_edits_get_couchdbs_revs_and_leaf_orders() {
    // Golden F_conflicts_1, cd0: every rev below is the one CouchDB 3.5 returned.
    let (_d, db) = db();
    branchy(&db);
    let opts = ReadOptions::default()
        .conflicts(true)
        .deleted_conflicts(true);
    let del = db
        .delete("cd0", &rev("2-fbee243c2ce9f70ff484e5f3e487ec76"))
        .unwrap();
    assert_eq!(del.rev, "3-81eb694b585b9480efe1ebc013257e54");
    let up = db
        .put(json!({"_id": "cd0", "branch": "winner-updated", "n": 10, "_rev": "2-98ebacc4c027b07a1ebec9fdf435bc10"}))
        .unwrap();
    assert_eq!(up.rev, "3-c042286b6d2e5e2ea4c6fbbbd87c2423");
    let del2 = db
        .delete("cd0", &rev("2-601ca703415c306b7afc37365209abec"))
        .unwrap();
    assert_eq!(del2.rev, "3-d7afa17c703ba91be426395a710c5775");
    // Deleted leaves in winner order: higher generation, then higher id.
    let doc = db.get("cd0", &opts).unwrap();
    assert_eq!(
        doc["_deleted_conflicts"],
        json!([
            "3-d7afa17c703ba91be426395a710c5775",
            "3-81eb694b585b9480efe1ebc013257e54",
            "2-ceecf4fa4db259f8ceeb9f92c2991071"
        ])
    );
    // `_revs_diff`: leaves older than the missing rev, in the same order.
    let diff = db
        .revs_diff(&[(
            "cd0".to_owned(),
            vec![rev("4-11111111111111111111111111111111")],
        )])
        .unwrap();
    assert_eq!(
        diff[0].1.possible_ancestors,
        [
            "3-c042286b6d2e5e2ea4c6fbbbd87c2423",
            "3-d7afa17c703ba91be426395a710c5775",
            "3-81eb694b585b9480efe1ebc013257e54",
            "2-ceecf4fa4db259f8ceeb9f92c2991071"
        ]
    );
    // Re-creating a deleted document extends the winning tombstone.
    let (_d2, db) = self::db();
    let first = db.put(json!({"_id": "x_09b", "v": 18})).unwrap();
    assert_eq!(first.rev, "1-80750789760a4af605e21163df1593c9");
    let gone = db.delete("x_09b", &rev(&first.rev)).unwrap();
    assert_eq!(gone.rev, "2-e552df19974ccdc40a32146347e75003");
}

fn leaf_revs(db: &Database, id: &str, which: &OpenRevs) -> Vec<String> {
    db.open_revs(id, which, false, false)
        .unwrap()
        .into_iter()
        .map(|r| match r {
            OpenRev::Ok(doc) => doc["_rev"].as_str().unwrap().to_owned(),
            OpenRev::Missing(rev) => rev,
        })
        .collect()
}

#[test]
fn bulk_get_leaves_come_in_key_tree_order() {
    // Golden G_all_docs_2, x-c: a local first edit and a replicated branch
    // with another root.
    let (_d, db) = db();
    let local = db.put(json!({"_id": "x-c", "v": 16})).unwrap();
    assert_eq!(local.rev, "1-33dd8982af5ea493cb201ba7ddfc871e");
    db.bulk_docs(
        vec![
            json!({"v": "branch", "_id": "x-c", "_rev": "3-ceb19aa2198a11384fe8b14d80ad7f2a",
            "_revisions": {"start": 3, "ids": ["ceb19aa2198a11384fe8b14d80ad7f2a",
                "e27c65678fab7829aea8375000986e67", "b7fdf71ae0c0eeff7974c2b0548e9986"]}}),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    // Roots 1-33dd < 1-b7fd; CouchDB lists the last tree's leaves first.
    assert_eq!(
        leaf_revs(&db, "x-c", &OpenRevs::Leaves),
        [
            "3-ceb19aa2198a11384fe8b14d80ad7f2a",
            "1-33dd8982af5ea493cb201ba7ddfc871e"
        ]
    );
    // open_revs=all sorts by revision instead.
    assert_eq!(
        leaf_revs(&db, "x-c", &OpenRevs::All),
        [
            "1-33dd8982af5ea493cb201ba7ddfc871e",
            "3-ceb19aa2198a11384fe8b14d80ad7f2a"
        ]
    );
    // Three trees: roots 1-q < 1-r < 2-a (generation, then id), walked last
    // first; inside 1-r depth first, smaller child first.
    let (_d, db) = self::db();
    let path = |revs: &[&str]| {
        let start: u64 = revs[0].split('-').next().unwrap().parse().unwrap();
        let ids: Vec<&str> = revs.iter().map(|r| r.split('-').nth(1).unwrap()).collect();
        json!({"_id": "t", "_rev": revs[0], "_revisions": {"start": start, "ids": ids}})
    };
    db.bulk_docs(
        vec![
            path(&["2-c", "1-r"]),
            path(&["3-x", "2-b", "1-r"]),
            path(&["2-z", "1-q"]),
            path(&["2-a"]),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    assert_eq!(
        leaf_revs(&db, "t", &OpenRevs::Leaves),
        ["2-a", "3-x", "2-c", "2-z"]
    );
    assert_eq!(
        leaf_revs(&db, "t", &OpenRevs::All),
        ["2-a", "2-c", "2-z", "3-x"]
    );
    assert!(matches!(
        db.open_revs("nope", &OpenRevs::Leaves, false, false),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn replicated_write_rules() {
    let (_d, db) = db();
    let e = db
        .bulk_docs(
            vec![json!({"_id": "norev", "x": 1})],
            BulkOptions::replicated(),
        )
        .unwrap_err();
    assert_eq!(
        err_of(e),
        (
            400,
            "bad_request".into(),
            "When `new_edits: false`, the document needs `_rev` or `_revisions` specified".into()
        )
    );
    // `_revisions` wins over a disagreeing `_rev`; any rev id string is kept.
    db.bulk_docs(
        vec![
            json!({"_id": "badrevs", "_rev": "2-b0f5", "_revisions": {"start": 3, "ids": ["e80f"]}}),
            json!({"_id": "shortrev", "_rev": "1-abc", "x": 2}),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    assert_eq!(get(&db, "badrevs")["_rev"], "3-e80f");
    let d = db
        .get("shortrev", &ReadOptions::default().revs(true))
        .unwrap();
    assert_eq!(
        d,
        json!({"_id": "shortrev", "_rev": "1-abc", "x": 2, "_revisions": {"start": 1, "ids": ["abc"]}})
    );
}

#[test]
fn bulk_docs_results_in_request_order() {
    let (_d, db) = db();
    let first = db
        .bulk_docs(
            vec![
                json!({"_id": "x1", "v": 1}),
                json!({"_id": "x2", "v": 2}),
                json!({"_id": "x3", "v": 3}),
            ],
            BulkOptions::default(),
        )
        .unwrap();
    let revs: Vec<String> = first
        .iter()
        .map(|r| match r {
            BulkResult::Ok(u) => u.rev.clone(),
            BulkResult::Error { .. } => panic!("unexpected error"),
        })
        .collect();
    let res = db
        .bulk_docs(
            vec![
                json!({"_id": "x1", "v": "dup-a"}),
                json!({"_id": "x4", "v": 4}),
                json!({"_id": "x4", "v": "dup"}),
                json!({"_id": "x2", "_rev": revs[1], "v": 22}),
                json!({"_id": "x3", "_rev": revs[2], "_deleted": true}),
                json!({"_id": "x5", "_rev": "1-44444444444444444444444444444444", "v": 5}),
                json!({"_id": "_local/x6", "v": 6}),
                json!({"_id": "_design/x7", "views": {}}),
            ],
            BulkOptions::default(),
        )
        .unwrap();
    let json = serde_json::to_value(&res).unwrap();
    assert_eq!(
        json[0],
        json!({"id": "x1", "error": "conflict", "reason": "Document update conflict."})
    );
    assert_eq!(json[1]["ok"], true);
    // The second edit of x4 in one request sees the first: conflict.
    assert_eq!(json[2]["error"], "conflict");
    assert!(json[3]["rev"].as_str().unwrap().starts_with("2-"));
    assert!(json[4]["rev"].as_str().unwrap().starts_with("2-"));
    assert!(json[5]["rev"].as_str().unwrap().starts_with("2-"));
    assert_eq!(
        json[6],
        json!({"ok": true, "id": "_local/x6", "rev": "0-1"})
    );
    assert_eq!(json[7]["id"], "_design/x7");
    // A malformed document fails the whole request and writes nothing.
    let seq = db.update_seq().unwrap();
    let e = db
        .bulk_docs(
            vec![json!({"_id": "fine"}), json!({"_id": "_nope"})],
            BulkOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.name(), "illegal_docid");
    assert_eq!(db.update_seq().unwrap(), seq);
    let r = db
        .bulk_docs(
            vec![json!({"_id": "x3", "v": "recreate"})],
            BulkOptions::default(),
        )
        .unwrap();
    assert!(serde_json::to_value(&r).unwrap()[0]["rev"]
        .as_str()
        .unwrap()
        .starts_with("3-"));
}

#[test]
fn stemming_at_revs_limit() {
    let (_d, db) = db();
    assert_eq!(db.revs_limit().unwrap(), 1000);
    db.set_revs_limit(4).unwrap();
    assert_eq!(db.revs_limit().unwrap(), 4);
    let mut revs = vec![db.put(json!({"_id": "r", "v": 0})).unwrap().rev];
    for v in 1..9 {
        let prev = revs.last().unwrap().clone();
        revs.push(
            db.put(json!({"_id": "r", "v": v, "_rev": prev}))
                .unwrap()
                .rev,
        );
    }
    let d = db
        .get("r", &ReadOptions::default().revs(true).revs_info(true))
        .unwrap();
    assert_eq!(d["_revisions"]["start"], 9);
    assert_eq!(d["_revisions"]["ids"].as_array().unwrap().len(), 4);
    assert!(d["_revs_info"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "available"));
    assert_eq!(
        get_err(&db, "r", &ReadOptions::default().rev(rev(&revs[0]))),
        (404, "not_found".into(), "missing".into())
    );
    assert_eq!(db.set_revs_limit(0).unwrap_err().name(), "bad_request");
}

#[test]
fn local_documents_have_no_mvcc() {
    let (_d, db) = db();
    assert_eq!(
        db.put_local("_local/cfg", json!({"a": 1})).unwrap().rev,
        "0-1"
    );
    assert_eq!(
        db.get_local("_local/cfg").unwrap(),
        json!({"_id": "_local/cfg", "_rev": "0-1", "a": 1})
    );
    assert_eq!(
        db.put_local("_local/cfg", json!({"a": 2})).unwrap().rev,
        "0-1"
    );
    assert_eq!(
        db.put_local("_local/cfg", json!({"a": 3, "_rev": "0-1"}))
            .unwrap()
            .rev,
        "0-2"
    );
    assert_eq!(
        db.put_local("_local/cfg", json!({"a": 4, "_rev": "0-1"}))
            .unwrap()
            .rev,
        "0-2"
    );
    assert_eq!(
        db.put_local("_local/cfg", json!({"a": 5, "_rev": "0-9"}))
            .unwrap()
            .rev,
        "0-10"
    );
    let d = db
        .get("_local/cfg", &ReadOptions::default().revs(true))
        .unwrap();
    assert_eq!(d["_revisions"], json!({"start": 0, "ids": ["10"]}));
    assert_eq!(db.delete("_local/cfg", &rev("0-7")).unwrap().rev, "0-0");
    assert_eq!(
        err_of(db.delete_local("_local/cfg").unwrap_err()).2,
        "missing"
    );
    assert_eq!(err_of(db.get_local("_local/cfg").unwrap_err()).2, "missing");
    db.put_local("_local/cfg", json!({"a": 6})).unwrap();
    db.put_local("_local/other", json!({"b": [1, 2]})).unwrap();
    let rows = db.local_docs(true, true).unwrap();
    assert_eq!(rows[0]["id"], "_local/other");
    assert_eq!(
        rows[1]["doc"],
        json!({"_id": "_local/cfg", "_rev": "0-1", "a": 6})
    );
    // Local docs are not documents: no seq, no count, not in all_docs.
    assert_eq!(db.update_seq().unwrap(), 0);
    assert_eq!(db.info().unwrap().doc_count, 0);
}

#[test]
fn handles_share_one_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    assert_eq!(err_of(Database::open(&path).unwrap_err()).1, "not_found");
    let a = Database::create(&path).unwrap();
    assert_eq!(err_of(Database::create(&path).unwrap_err()).0, 412);
    let b = Database::open(path.join("..").join("db")).unwrap();
    a.put(json!({"_id": "x"})).unwrap();
    assert_eq!(get(&b, "x")["_id"], "x");
    let c = Database::open_or_create(&path).unwrap();
    assert_eq!(c.path(), a.path());
    assert_eq!(c.name(), "db");
    drop((a, b, c));
    // Reopening after every handle is gone works, with the data intact.
    let d = Database::open(&path).unwrap();
    assert_eq!(d.info().unwrap().update_seq, 1);
    // A directory holding other files is not taken over.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("store-old")).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    assert_eq!(
        err_of(Database::create(&other).unwrap_err()).1,
        "bad_request"
    );
    assert!(other.join("store-old").exists());
    // Leftovers of an interrupted creation are cleaned up.
    let crashed = dir.path().join("crashed");
    std::fs::create_dir_all(crashed.join("store-0")).unwrap();
    std::fs::create_dir_all(crashed.join("store-7")).unwrap();
    Database::create(&crashed).unwrap();
    assert!(!crashed.join("store-7").exists());
}

#[test]
fn revs_diff_like_couchdb() {
    let (_d, db) = db();
    branchy(&db);
    let ask = vec![
        (
            "cd0".to_owned(),
            vec![rev("1-00000000000000000000000000000000")],
        ),
        (
            "cd0x".to_owned(),
            vec![rev("1-33333333333333333333333333333333")],
        ),
        (
            "cd0".to_owned(),
            vec![rev("2-fbee243c2ce9f70ff484e5f3e487ec76")],
        ),
        (
            "cd0".to_owned(),
            vec![rev("9-11111111111111111111111111111111")],
        ),
    ];
    let diff = serde_json::to_value(db.revs_diff(&ask).unwrap()).unwrap();
    // The ancestor known only from `_revisions` is not missing; unknown ones are.
    assert_eq!(
        diff[0],
        json!(["cd0", {"missing": ["1-00000000000000000000000000000000"]}])
    );
    assert_eq!(
        diff[1],
        json!(["cd0x", {"missing": ["1-33333333333333333333333333333333"]}])
    );
    // Every leaf older than the missing revision may be an ancestor, in winner order.
    assert_eq!(
        diff[2][1]["possible_ancestors"],
        json!([
            "2-fbee243c2ce9f70ff484e5f3e487ec76",
            "2-98ebacc4c027b07a1ebec9fdf435bc10",
            "2-601ca703415c306b7afc37365209abec",
            "2-ceecf4fa4db259f8ceeb9f92c2991071"
        ])
    );
    assert_eq!(diff.as_array().unwrap().len(), 3);
    // Stemmed revisions count as missing.
    db.set_revs_limit(2).unwrap();
    let mut r = db.put(json!({"_id": "r", "v": 0})).unwrap().rev;
    let first = r.clone();
    for v in 1..4 {
        r = db.put(json!({"_id": "r", "v": v, "_rev": r})).unwrap().rev;
    }
    let diff = db
        .revs_diff(&[("r".to_owned(), vec![rev(&first), rev(&r)])])
        .unwrap();
    assert_eq!(diff[0].1.missing, [first]);
    assert!(diff[0].1.possible_ancestors.is_empty());
}
