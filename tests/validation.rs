//! `validate_doc_update` and design-document checks on every write path.

mod common;

use common::pool;
use serde_json::{json, Value};
use settee::validation::DocValidator;
use settee::{BulkOptions, Database, ReadOptions, Security, UserCtx};

fn db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("vdu")).unwrap();
    DocValidator::install(&db, pool());
    // Open to every user (the default is CouchDB's admin-only object).
    secure(&db, json!({}));
    (dir, db)
}

fn secure(db: &Database, security: Value) {
    Security::from_json(&security).unwrap().store(db).unwrap();
}

fn user(name: &str, roles: &[&str]) -> UserCtx {
    UserCtx {
        name: Some(name.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

/// A VDU that reports what it sees through a `forbidden` message when asked.
const PROBE: &str = r#"function(newDoc, oldDoc, userCtx, secObj) {
    if (newDoc.probe) throw({forbidden: JSON.stringify({newDoc: newDoc, oldDoc: oldDoc, userCtx: userCtx, secObj: secObj, self: this._id})});
    if (newDoc.deny) throw({forbidden: 'denied: ' + newDoc.deny});
    if (newDoc.auth) throw({unauthorized: 'login please'});
    if (newDoc.str) throw('plain string');
    if (newDoc.other) throw({other: newDoc.other});
    if (newDoc._deleted && oldDoc && oldDoc.keep) throw({forbidden: 'keep me'});
}"#;

fn probe(db: &Database, doc: Value) -> Value {
    let err = db.put(doc).unwrap_err();
    assert_eq!(err.status(), 403, "{err}");
    serde_json::from_str(&err.reason()).unwrap()
}

#[test]
fn vdu_outcomes_and_arguments() {
    let (_d, db) = db();
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();

    let seen = probe(&db, json!({"_id": "p", "probe": true}));
    assert_eq!(seen["oldDoc"], Value::Null);
    assert_eq!(seen["self"], json!("_design/probe"));
    assert_eq!(
        seen["userCtx"],
        json!({"db": "vdu", "name": null, "roles": ["_admin"]})
    );
    assert_eq!(seen["secObj"], json!({}), "the stored security object");
    assert!(seen["newDoc"].get("_rev").is_none());

    let created = db.put(json!({"_id": "p", "v": 1, "keep": true})).unwrap();
    let seen = probe(
        &db.as_user(user("bob", &["staff"])),
        json!({"_id": "p", "_rev": created.rev, "probe": true}),
    );
    assert_eq!(seen["newDoc"]["_rev"], json!(created.rev));
    assert_eq!(seen["newDoc"]["_revisions"]["start"], json!(1));
    assert_eq!(seen["oldDoc"]["v"], json!(1));
    assert_eq!(
        seen["userCtx"],
        json!({"db": "vdu", "name": "bob", "roles": ["staff"]})
    );

    let err = db.put(json!({"_id": "x", "deny": "no"})).unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.reason()),
        (403, "forbidden", "denied: no".to_string())
    );
    let err = db.put(json!({"_id": "x", "auth": true})).unwrap_err();
    assert_eq!((err.status(), err.name()), (401, "unauthorized"));
    // A thrown string (or any other one-member object) is CouchDB's
    // `unknown_error` with the message as reason, HTTP 500.
    let err = db.put(json!({"_id": "x", "str": true})).unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.reason()),
        (500, "unknown_error", "plain string".to_string())
    );
    let err = db.put(json!({"_id": "x", "other": "why"})).unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.reason()),
        (500, "unknown_error", "why".to_string())
    );
    let results = db
        .bulk_docs(
            vec![json!({"_id": "x", "str": true})],
            BulkOptions::default(),
        )
        .unwrap();
    assert_eq!(
        serde_json::to_value(results).unwrap(),
        json!([{"id": "x", "error": "unknown_error", "reason": "plain string"}])
    );
    assert!(db.get("x", &ReadOptions::default()).is_err());

    // Deletions are validated and see the stored doc.
    let rev = settee::Rev::parse(&created.rev).unwrap();
    let err = db.delete("p", &rev).unwrap_err();
    assert_eq!(err.reason(), "keep me");
    assert_eq!(db.get("p", &ReadOptions::default()).unwrap()["v"], json!(1));
}

#[test]
fn rejected_writes_change_nothing_and_bulk_results_are_per_doc() {
    let (_d, db) = db();
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();
    let seq = db.update_seq().unwrap();
    let results = db
        .bulk_docs(
            vec![
                json!({"_id": "a"}),
                json!({"_id": "b", "deny": "bulk"}),
                json!({"_id": "c"}),
            ],
            BulkOptions::default(),
        )
        .unwrap();
    let results = serde_json::to_value(results).unwrap();
    assert_eq!(results[0]["ok"], json!(true));
    assert_eq!(
        results[1],
        json!({"id": "b", "error": "forbidden", "reason": "denied: bulk"})
    );
    assert_eq!(results[2]["ok"], json!(true));
    assert_eq!(db.update_seq().unwrap(), seq + 2);
    assert_eq!(
        db.get("b", &ReadOptions::default()).unwrap_err().reason(),
        "missing"
    );

    // Replicated writes are validated too.
    let results = db
        .bulk_docs(
            vec![json!({"_id": "r", "_rev": "1-abc", "deny": "repl"})],
            BulkOptions::replicated(),
        )
        .unwrap();
    let results = serde_json::to_value(results).unwrap();
    assert_eq!(results[0]["error"], json!("forbidden"));
    assert_eq!(results[0]["reason"], json!("denied: repl"));
}

#[test]
fn several_vdus_run_in_id_order_and_edits_apply_at_once() {
    let (_d, db) = db();
    db.put(json!({"_id": "_design/zz", "validate_doc_update": "function(d) { if (d.x) throw({forbidden: 'zz'}); }"})).unwrap();
    db.put(json!({"_id": "_design/aa", "validate_doc_update": "function(d) { if (d.x) throw({forbidden: 'aa'}); }"})).unwrap();
    assert_eq!(
        db.put(json!({"_id": "d", "x": 1})).unwrap_err().reason(),
        "aa"
    );

    // Editing a VDU takes effect on the next write.
    let aa = db.get("_design/aa", &ReadOptions::default()).unwrap();
    db.put(
        json!({"_id": "_design/aa", "_rev": aa["_rev"], "validate_doc_update": "function(d) {}"}),
    )
    .unwrap();
    assert_eq!(
        db.put(json!({"_id": "d", "x": 1})).unwrap_err().reason(),
        "zz"
    );

    // Re-creating a deleted doc: oldDoc is null.
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();
    let r = db.put(json!({"_id": "gone"})).unwrap();
    db.delete("gone", &settee::Rev::parse(&r.rev).unwrap())
        .unwrap();
    let seen = probe(&db, json!({"_id": "gone", "probe": true}));
    assert_eq!(seen["oldDoc"], Value::Null);
}

#[test]
fn design_docs_need_admins_and_valid_content() {
    let (_d, db) = db();
    secure(
        &db,
        json!({"admins": {"names": ["dba"], "roles": ["ops"]}, "members": {"names": ["bob"]}}),
    );
    let ddoc =
        json!({"_id": "_design/v", "views": {"v": {"map": "function(doc) { emit(doc._id, 1); }"}}});
    let err = db.as_user(user("bob", &[])).put(ddoc.clone()).unwrap_err();
    assert_eq!(
        (err.status(), err.reason()),
        (403, "You are not a db or server admin.".to_string())
    );
    db.as_user(user("dba", &[])).put(ddoc.clone()).unwrap();
    let current = db.get("_design/v", &ReadOptions::default()).unwrap();
    let mut update = ddoc.clone();
    update["_rev"] = current["_rev"].clone();
    db.as_user(user("someone", &["ops"])).put(update).unwrap();

    // Structure and compilation are checked when saving, with CouchDB's errors.
    let err = db
        .put(json!({"_id": "_design/bad", "views": {"v": {"reduce": "_sum"}}}))
        .unwrap_err();
    assert_eq!(
        (err.name(), err.reason()),
        (
            "invalid_design_doc",
            "View `v` must contain map function".to_string()
        )
    );
    let err = db
        .put(json!({"_id": "_design/bad", "views": {"v": {"map": "function(doc) { emit("}}}))
        .unwrap_err();
    assert_eq!(err.name(), "compilation_error");
    assert!(
        err.reason()
            .starts_with("Compilation of the map function in the 'v' view failed: "),
        "{}",
        err.reason()
    );
    let err = db
        .put(json!({"_id": "_design/bad", "views": {"v": {"map": "function(doc) {}", "reduce": "_nosuch"}}}))
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "`_nosuch` is not a supported reduce function."
    );
    assert_eq!(
        db.get("_design/bad", &ReadOptions::default())
            .unwrap_err()
            .reason(),
        "missing"
    );

    // Design docs are not passed to VDUs; local docs are not validated at all.
    db.put(json!({"_id": "_design/deny_all", "validate_doc_update": "function() { throw({forbidden: 'no'}); }"})).unwrap();
    db.put(json!({"_id": "_design/other"})).unwrap();
    db.put_local("_local/x", json!({"v": 1})).unwrap();
    assert_eq!(db.put(json!({"_id": "plain"})).unwrap_err().reason(), "no");
}

#[test]
fn replicated_refusals_come_in_doc_id_order() {
    let (_d, db) = db();
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();
    // CouchDB groups a replicated batch by id and reports the refusals in
    // that order, whatever the request order; repeated ids keep theirs.
    let results = db
        .bulk_docs(
            vec![
                json!({"_id": "u1", "_rev": "1-aaa", "auth": true}),
                json!({"_id": "ok", "_rev": "1-bbb"}),
                json!({"_id": "rep1", "_rev": "1-ccc", "deny": "first"}),
                json!({"_id": "rep1", "_rev": "1-ddd", "deny": "second"}),
                json!({"_id": "m", "_revisions": {"start": 3, "ids": ["eee", "fff"]}, "str": true}),
            ],
            BulkOptions::replicated(),
        )
        .unwrap();
    let results = serde_json::to_value(results).unwrap();
    assert_eq!(
        results,
        json!([
            {"id": "m", "rev": "3-eee", "error": "unknown_error", "reason": "plain string"},
            {"id": "rep1", "rev": "1-ccc", "error": "forbidden", "reason": "denied: first"},
            {"id": "rep1", "rev": "1-ddd", "error": "forbidden", "reason": "denied: second"},
            {"id": "u1", "rev": "1-aaa", "error": "unauthorized", "reason": "login please"},
        ])
    );
    assert!(db.get("ok", &ReadOptions::default()).is_ok());

    // Interactive results stay in request order.
    let results = db
        .bulk_docs(
            vec![
                json!({"_id": "z", "auth": true}),
                json!({"_id": "a", "deny": "x"}),
            ],
            BulkOptions::default(),
        )
        .unwrap();
    let results = serde_json::to_value(results).unwrap();
    assert_eq!(results[0]["id"], "z");
    assert_eq!(results[1]["id"], "a");
}

#[test]
fn edits_of_deleted_leaves_are_validated_before_the_conflict() {
    let (_d, db) = db();
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();
    let r1 = db.put(json!({"_id": "t", "v": 1})).unwrap();
    let gone = db
        .delete("t", &settee::Rev::parse(&r1.rev).unwrap())
        .unwrap();

    // `_rev` names the tombstone: the VDU runs (and sees it as oldDoc) ...
    let seen = probe(&db, json!({"_id": "t", "_rev": gone.rev, "probe": true}));
    assert_eq!(seen["oldDoc"]["_deleted"], json!(true));
    assert_eq!(seen["oldDoc"]["_rev"], json!(gone.rev));
    let err = db
        .as_user(user("bob", &[]))
        .put(json!({"_id": "t", "_rev": gone.rev, "auth": true}))
        .unwrap_err();
    assert_eq!((err.status(), err.name()), (401, "unauthorized"));
    // ... and an accepted edit of a deleted document is then a conflict.
    let err = db
        .put(json!({"_id": "t", "_rev": gone.rev, "v": 2}))
        .unwrap_err();
    assert_eq!(err.name(), "conflict");
    // So is deleting it again without `_rev` (only a re-creation may omit it).
    let err = db.put(json!({"_id": "t", "_deleted": true})).unwrap_err();
    assert_eq!(err.name(), "conflict");
    // A `_rev` that is not a leaf is a conflict without validation.
    let err = db
        .put(json!({"_id": "t", "_rev": r1.rev, "auth": true}))
        .unwrap_err();
    assert_eq!(err.name(), "conflict");
    assert!(db.get("t", &ReadOptions::default()).is_err());

    // A deleted branch of a live document may be extended.
    db.bulk_docs(
        vec![
            json!({"_id": "b", "_rev": "2-live", "_revisions": {"start": 2, "ids": ["live", "root"]}}),
            json!({"_id": "b", "_rev": "2-dead", "_revisions": {"start": 2, "ids": ["dead", "root"]}, "_deleted": true}),
        ],
        BulkOptions::replicated(),
    )
    .unwrap();
    let revived = db
        .put(json!({"_id": "b", "_rev": "2-dead", "v": "revived"}))
        .unwrap();
    assert!(revived.rev.starts_with("3-"), "{}", revived.rev);
    let doc = db
        .get("b", &ReadOptions::default().conflicts(true))
        .unwrap();
    assert_eq!(doc["_rev"], json!(revived.rev));
    assert_eq!(doc["_conflicts"], json!(["2-live"]));
}

#[test]
fn vdus_see_the_revisions_the_client_sent() {
    let (_d, db) = db();
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();
    let r1 = db.put(json!({"_id": "p", "v": 1})).unwrap();
    let r2 = db.put(json!({"_id": "p", "_rev": r1.rev, "v": 2})).unwrap();
    // `_rev` alone: `_revisions` holds just that revision.
    let seen = probe(&db, json!({"_id": "p", "_rev": r2.rev, "probe": true}));
    assert_eq!(seen["newDoc"]["_rev"], json!(r2.rev));
    assert_eq!(
        seen["newDoc"]["_revisions"],
        json!({"start": 2, "ids": [&r2.rev[2..]]})
    );
    assert_eq!(seen["oldDoc"]["v"], json!(2));

    // Re-creating a deleted document: no `_rev`, no `_revisions`, no oldDoc.
    db.delete("p", &settee::Rev::parse(&r2.rev).unwrap())
        .unwrap();
    let seen = probe(&db, json!({"_id": "p", "probe": true}));
    assert!(seen["newDoc"].get("_rev").is_none(), "{seen}");
    assert!(seen["newDoc"].get("_revisions").is_none(), "{seen}");
    assert_eq!(seen["oldDoc"], Value::Null);

    // Replicated: the given revision and ancestry.
    let results = db
        .bulk_docs(
            vec![json!({"_id": "q", "_revisions": {"start": 3, "ids": ["c", "b"]}, "probe": true})],
            BulkOptions::replicated(),
        )
        .unwrap();
    let results = serde_json::to_value(results).unwrap();
    let seen: Value = serde_json::from_str(results[0]["reason"].as_str().unwrap()).unwrap();
    assert_eq!(seen["newDoc"]["_rev"], json!("3-c"));
    assert_eq!(
        seen["newDoc"]["_revisions"],
        json!({"start": 3, "ids": ["c", "b"]})
    );
}

#[test]
fn rejected_writes_change_no_view_index() {
    use settee::view::{ViewEngine, ViewQuery};
    let (_d, db) = db();
    db.put(json!({"_id": "_design/probe", "validate_doc_update": PROBE}))
        .unwrap();
    db.put(json!({"_id": "_design/v", "views": {
        "by_n": {"map": "function(doc) { if (doc.n) emit(doc.n, doc.n); }", "reduce": "_sum"}
    }}))
    .unwrap();
    let kept = db.put(json!({"_id": "kept", "n": 1})).unwrap();
    let keeper = db
        .put(json!({"_id": "keeper", "n": 4, "keep": true}))
        .unwrap();
    let views = ViewEngine::new(db.clone(), pool());
    let answers = |views: &ViewEngine| -> Vec<Value> {
        [
            ViewQuery::new().reduce(false).update_seq(true),
            ViewQuery::new().group(true),
        ]
        .iter()
        .map(|q| serde_json::to_value(views.query("_design/v", "by_n", q).unwrap()).unwrap())
        .collect()
    };
    let before = answers(&views);
    let seq = db.update_seq().unwrap();
    assert_eq!(before[0]["update_seq"], json!(seq));
    assert_eq!(before[0]["total_rows"], json!(2));

    // A bulk write whose every document is refused (new docs, an edit of an
    // indexed doc, a thrown string), a refused replicated write and a refused
    // deletion: nothing commits and no index changes.
    let results = db
        .bulk_docs(
            vec![
                json!({"_id": "n1", "n": 10, "deny": "x"}),
                json!({"_id": "n2", "n": 20, "str": true}),
                json!({"_id": "kept", "_rev": kept.rev, "n": 5, "deny": "edit"}),
            ],
            BulkOptions::default(),
        )
        .unwrap();
    assert!(results.iter().all(|r| r.is_error()));
    let results = db
        .bulk_docs(
            vec![json!({"_id": "r", "_rev": "1-abc", "n": 7, "deny": "repl"})],
            BulkOptions::replicated(),
        )
        .unwrap();
    assert!(results.iter().all(|r| r.is_error()));
    let rev = settee::Rev::parse(&keeper.rev).unwrap();
    assert_eq!(db.delete("keeper", &rev).unwrap_err().reason(), "keep me");
    assert_eq!(
        db.update_seq().unwrap(),
        seq,
        "a rejected write committed something"
    );
    assert_eq!(answers(&views), before);

    // A mixed batch: only the accepted document reaches the index.
    let results = db
        .bulk_docs(
            vec![
                json!({"_id": "ok", "n": 2}),
                json!({"_id": "no", "n": 100, "deny": "mixed"}),
            ],
            BulkOptions::default(),
        )
        .unwrap();
    assert!(!results[0].is_error() && results[1].is_error());
    let after = answers(&views);
    assert_eq!(
        after[1]["rows"],
        json!([{"key": 1, "value": 1}, {"key": 2, "value": 2}, {"key": 4, "value": 4}])
    );
    assert_eq!(after[0]["update_seq"], json!(seq + 1));
}

#[test]
fn members_only_databases_refuse_everyone_else_on_every_path() {
    use settee::view::{ViewEngine, ViewQuery};
    use settee::{Access, AllDocsQuery, ChangesQuery};

    let (_d, db) = db();
    db.put(json!({"_id": "_design/app", "views": {"all": {"map": "function(doc) { emit(doc._id, 1); }"}}}))
        .unwrap();
    db.put(json!({"_id": "a"})).unwrap();
    secure(
        &db,
        json!({"admins": {"names": ["dba"]}, "members": {"names": ["bob"], "roles": ["staff"]}}),
    );
    let outsider = db.as_user(user("eve", &["guest"]));
    let anonymous = db.as_user(UserCtx::anonymous());
    let expect_refused = |handle: &Database, status: u16| {
        let checks: Vec<(&str, settee::Error)> = vec![
            ("get", handle.get("a", &ReadOptions::default()).unwrap_err()),
            (
                "all_docs",
                handle.all_docs(&AllDocsQuery::new()).unwrap_err(),
            ),
            (
                "changes",
                handle.changes(&ChangesQuery::default()).unwrap_err(),
            ),
            ("info", handle.info().unwrap_err()),
            ("put", handle.put(json!({"_id": "new"})).unwrap_err()),
            (
                "bulk_docs",
                handle
                    .bulk_docs(vec![json!({"_id": "new"})], BulkOptions::replicated())
                    .unwrap_err(),
            ),
            (
                "local",
                handle.put_local("_local/x", json!({})).unwrap_err(),
            ),
            (
                "view",
                ViewEngine::new(handle.clone(), pool())
                    .query("_design/app", "all", &ViewQuery::new())
                    .unwrap_err(),
            ),
        ];
        for (what, err) in checks {
            assert_eq!(err.status(), status, "{what}: {err}");
        }
    };
    expect_refused(&outsider, 403);
    expect_refused(&anonymous, 401);
    assert_eq!(
        outsider
            .get("a", &ReadOptions::default())
            .unwrap_err()
            .reason(),
        "You are not allowed to access this db."
    );
    assert_eq!(db.info().unwrap().doc_count, 2, "nothing was written");

    // Members by name or role read, write and query; only admins compact.
    for member in [user("bob", &[]), user("x", &["staff"])] {
        let member = db.as_user(member);
        assert_eq!(member.access().unwrap(), Access::Member);
        member.get("a", &ReadOptions::default()).unwrap();
        let views = ViewEngine::new(member.clone(), pool());
        let response = views
            .query("_design/app", "all", &ViewQuery::new())
            .unwrap();
        assert_eq!(serde_json::to_value(&response).unwrap()["total_rows"], 1);
        assert_eq!(member.compact().unwrap_err().status(), 401);
        assert_eq!(
            member
                .put(json!({"_id": "_design/x"}))
                .unwrap_err()
                .status(),
            403
        );
    }
    db.as_user(user("bob", &[]))
        .put(json!({"_id": "by-bob"}))
        .unwrap();
    let dba = db.as_user(user("dba", &[]));
    assert_eq!(dba.access().unwrap(), Access::Admin);
    dba.compact().unwrap();
    // `_admin` always passes; a handle whose caller checked access itself
    // (a server with rules of its own) skips the check but not the
    // design-document rule.
    db.as_user(user("root", &["_admin"]))
        .get("a", &ReadOptions::default())
        .unwrap();
    let trusted = db.as_authorized_user(user("eve", &[]));
    trusted.put(json!({"_id": "by-eve"})).unwrap();
    assert_eq!(
        trusted
            .put(json!({"_id": "_design/y"}))
            .unwrap_err()
            .status(),
        403
    );
    // Only db admins change the security object.
    let open = Security::from_json(&json!({})).unwrap();
    assert_eq!(open.store(&outsider).unwrap_err().reason(), "no_majority");
    assert_eq!(
        open.store(&db.as_user(user("bob", &[])))
            .unwrap_err()
            .reason(),
        "no_majority"
    );
    open.store(&dba).unwrap();
    outsider.get("a", &ReadOptions::default()).unwrap();
}

#[test]
fn a_database_without_a_security_object_is_admin_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("fresh")).unwrap();
    db.put(json!({"_id": "a"})).unwrap();
    let bob = db.as_user(user("bob", &[]));
    assert_eq!(
        bob.get("a", &ReadOptions::default()).unwrap_err().status(),
        403
    );
    assert_eq!(
        db.as_user(UserCtx::anonymous())
            .info()
            .unwrap_err()
            .status(),
        401
    );
}

#[test]
fn large_bulk_writes_are_validated_in_chunks_with_the_same_outcome() {
    // Past the pipelining threshold (512 validations): chunks are validated
    // while earlier ones are applied; results, order and seqs must be those
    // of one whole-batch validation.
    let (_d, db) = db();
    db.put(json!({"_id": "_design/sevens", "validate_doc_update":
        "function(newDoc) { if (newDoc.n % 7 === 0) throw({forbidden: 'n=' + newDoc.n}); }"}))
        .unwrap();
    let seq_before = db.update_seq().unwrap();
    // Ids in reverse order of the request, so seq order (id order) differs.
    let docs: Vec<Value> = (0..3000)
        .map(|n| json!({"_id": format!("d{:05}", 3000 - n), "n": n}))
        .collect();
    let results = db.bulk_docs(docs, BulkOptions::default()).unwrap();
    assert_eq!(results.len(), 3000);
    for (n, result) in results.iter().enumerate() {
        let result = serde_json::to_value(result).unwrap();
        assert_eq!(result["id"], format!("d{:05}", 3000 - n));
        if n % 7 == 0 {
            assert_eq!(result["error"], "forbidden", "{n}");
            assert_eq!(result["reason"], format!("n={n}"));
        } else {
            assert_eq!(result["ok"], true, "{n}");
        }
    }
    let accepted = (0..3000).filter(|n| n % 7 != 0).count() as u64;
    assert_eq!(db.update_seq().unwrap(), seq_before + accepted);
    let changes = db
        .changes(&settee::ChangesQuery::default().since(settee::Since::Seq(seq_before)))
        .unwrap();
    let ids: Vec<&str> = changes.results.iter().map(|r| r.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "seqs follow document ids");
    assert_eq!(ids.len() as u64, accepted);
}

#[test]
fn early_verdicts_of_prepared_batches_are_redone_when_their_inputs_change() {
    // `prepare_bulk` validates large batches on a snapshot; `write_prepared`
    // must still answer as if validating at write time.
    let (_d, db) = db();
    db.put(json!({"_id": "_design/v", "validate_doc_update":
        "function(newDoc, oldDoc, userCtx, secObj) {
            if (oldDoc && oldDoc.locked) throw({forbidden: 'locked'});
            if (secObj.frozen) throw({forbidden: 'frozen'});
            if (userCtx.name === 'eve') throw({unauthorized: 'not eve'});
            if (newDoc.n < 0) throw({forbidden: 'negative'});
        }"}))
        .unwrap();
    let batch = |first: i64| -> Vec<Value> {
        (0..600)
            .map(|n| json!({"_id": format!("d{n:04}"), "n": if n == 0 { first } else { n }}))
            .collect()
    };
    let errors = |results: Vec<settee::BulkResult>| -> Vec<(String, String)> {
        results
            .iter()
            .filter_map(|r| {
                let r = serde_json::to_value(r).unwrap();
                r.get("error").map(|_| {
                    (
                        r["id"].as_str().unwrap().to_string(),
                        r["reason"].as_str().unwrap().to_string(),
                    )
                })
            })
            .collect()
    };
    // 1. A new design document between prepare and write.
    let prepared = db.prepare_bulk(batch(1), BulkOptions::default()).unwrap();
    db.put(json!({"_id": "_design/w", "validate_doc_update":
        "function(newDoc) { if (newDoc._id === 'd0001') throw({forbidden: 'new rule'}); }"}))
        .unwrap();
    assert_eq!(
        errors(db.write_prepared(prepared).unwrap()),
        vec![("d0001".to_string(), "new rule".to_string())]
    );
    // 2. A stored parent that appears after the snapshot: a replicated
    // edit whose ancestor (locked) is replicated in meanwhile.
    let (a, b) = ("a".repeat(32), "b".repeat(32));
    let replicated: Vec<Value> = (0..600)
        .map(|n| {
            json!({"_id": format!("r{n:04}"), "_rev": format!("2-{b}"), "n": n,
                "_revisions": {"start": 2, "ids": [b, a]}})
        })
        .collect();
    let prepared = db
        .prepare_bulk(replicated, BulkOptions::replicated())
        .unwrap();
    db.bulk_docs(
        vec![json!({"_id": "r0007", "_rev": format!("1-{a}"), "locked": true})],
        BulkOptions::replicated(),
    )
    .unwrap();
    assert_eq!(
        errors(db.write_prepared(prepared).unwrap()),
        vec![("r0007".to_string(), "locked".to_string())]
    );
    // 3. Another user writes what an admin prepared.
    let fresh: Vec<Value> = (0..600)
        .map(|n| json!({"_id": format!("e{n:04}"), "n": n}))
        .collect();
    let prepared = db.prepare_bulk(fresh, BulkOptions::default()).unwrap();
    let eve = db.as_user(user("eve", &[]));
    let refused = errors(eve.write_prepared(prepared).unwrap());
    assert_eq!(refused.len(), 600);
    assert!(refused.iter().all(|(_, reason)| reason == "not eve"));
    // 4. The security object changes between prepare and write.
    let fresh: Vec<Value> = (0..600)
        .map(|n| json!({"_id": format!("f{n:04}"), "n": n}))
        .collect();
    let prepared = db.prepare_bulk(fresh, BulkOptions::default()).unwrap();
    secure(&db, json!({"frozen": true}));
    let refused = errors(db.write_prepared(prepared).unwrap());
    assert_eq!(refused.len(), 600);
    assert!(refused.iter().all(|(_, reason)| reason == "frozen"));
    // And with nothing changed, the early verdicts stand.
    secure(&db, json!({}));
    let prepared = db
        .prepare_bulk(
            batch(-1)
                .into_iter()
                .map(|mut d| {
                    d["_id"] = json!(format!("g{}", d["_id"].as_str().unwrap()));
                    d
                })
                .collect(),
            BulkOptions::default(),
        )
        .unwrap();
    assert_eq!(
        errors(db.write_prepared(prepared).unwrap()),
        vec![("gd0000".to_string(), "negative".to_string())]
    );
}

/// A VDU that reads only members of its documents is given just those
/// (`js::reads`); its verdicts are those of one that sees the whole document.
#[test]
fn member_reading_vdus_decide_as_whole_document_ones() {
    let reads_members = r#"function(newDoc, oldDoc) {
        if (newDoc.type === 'order' && !(newDoc.total > 0)) throw({forbidden: 'total ' + newDoc.total});
        if (oldDoc && oldDoc.owner !== newDoc.owner) throw({forbidden: 'owner ' + oldDoc.owner});
        if (newDoc._deleted && !oldDoc.owner) throw({forbidden: 'deleted ' + newDoc._revisions.start});
        if (newDoc.items && newDoc.items.length > 2) throw({forbidden: 'items ' + newDoc.items[2].sku});
    }"#;
    // The same checks, with a whole-document use that defeats the analysis.
    let whole = reads_members.replace(
        "function(newDoc, oldDoc) {",
        "function(newDoc, oldDoc) { JSON.stringify([newDoc, oldDoc]);",
    );
    let outcomes = |vdu: &str| -> Vec<String> {
        let (_d, db) = db();
        db.put(json!({"_id": "_design/v", "validate_doc_update": vdu}))
            .unwrap();
        let mut seen = Vec::new();
        let mut outcome = |r: settee::Result<settee::DocUpdate>| {
            seen.push(match r {
                Ok(_) => "ok".to_string(),
                Err(e) => e.reason(),
            })
        };
        outcome(db.put(json!({"_id": "a", "type": "order", "total": 0})));
        outcome(db.put(json!({"_id": "a", "type": "order", "total": 5, "owner": "ann"})));
        let rev = db.get("a", &ReadOptions::default()).unwrap()["_rev"].clone();
        outcome(db.put(json!({"_id": "a", "_rev": rev, "owner": "bob"})));
        outcome(db.put(json!({"_id": "a", "_rev": rev, "owner": "ann", "items": [{"sku": 1}, {"sku": 2}, {"sku": 3}]})));
        outcome(db.put(json!({"_id": "b", "items": [{"sku": 1}]})));
        let rev_b = db.get("b", &ReadOptions::default()).unwrap()["_rev"].clone();
        outcome(db.put(json!({"_id": "b", "_rev": rev_b, "_deleted": true})));
        seen
    };
    let expected = vec!["total 0", "ok", "owner ann", "items 3", "ok", "deleted 1"];
    assert_eq!(outcomes(reads_members), expected);
    assert_eq!(outcomes(&whole), expected);
}

/// A member a document lacks is looked up on `Object.prototype`; when an
/// earlier function left an accessor there, the VDU sees it read the whole
/// document, as it would without the member analysis.
#[test]
fn accessors_left_on_object_prototype_see_whole_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("vdu")).unwrap();
    // One worker: both functions run in one JavaScript realm.
    let pool = settee::js::JsPool::new(settee::js::JsConfig {
        workers: 1,
        ..settee::js::JsConfig::default()
    })
    .unwrap();
    DocValidator::install(&db, pool);
    db.put(json!({"_id": "_design/a", "validate_doc_update":
        "function(newDoc) { Object.defineProperty(Object.prototype, 'peek', {configurable: true, get: function() { return this.secret; }}); }"}))
        .unwrap();
    db.put(json!({"_id": "_design/b", "validate_doc_update":
        "function(newDoc) { if (newDoc.peek === 'x') throw({forbidden: 'peeked'}); }"}))
        .unwrap();
    let err = db.put(json!({"_id": "d", "secret": "x"})).unwrap_err();
    assert_eq!(err.reason(), "peeked");
    db.put(json!({"_id": "e", "secret": "y"})).unwrap();
    db.set_validator(None);
}
