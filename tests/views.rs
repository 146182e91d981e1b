//! The view engine end to end: design documents in a real database, indexes
//! built by the updater on the JavaScript pool, queries through `ViewEngine`,
//! checked against CouchDB's vectors and behaviour.

mod common;

use common::pool;
use serde_json::{json, Value};
use settee::view::{ViewEngine, ViewQuery};
use settee::{BulkOptions, Database, Error, ReadOptions};
use std::path::PathBuf;

fn shared(path: &str) -> PathBuf {
    let base = std::env::var_os("SETTEE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")));
    base.join(path)
}

fn vectors(name: &str) -> Value {
    let text = std::fs::read_to_string(shared(&format!("vectors/{name}"))).expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: Database,
    views: ViewEngine,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("db")).unwrap();
    let views = ViewEngine::new(db.clone(), pool());
    Fixture {
        _dir: dir,
        db,
        views,
    }
}

impl Fixture {
    fn put_all(&self, docs: Vec<Value>) {
        for result in self.db.bulk_docs(docs, BulkOptions::default()).unwrap() {
            let result = serde_json::to_value(result).unwrap();
            assert_eq!(result["ok"], json!(true), "{result}");
        }
    }

    fn query(&self, view: &str, query: ViewQuery) -> Value {
        serde_json::to_value(self.views.query("_design/t", view, &query).unwrap()).unwrap()
    }

    fn query_params(&self, view: &str, params: &Value) -> Value {
        let query = ViewQuery::from_body(params).unwrap();
        self.query(view, query)
    }

    fn query_err(&self, view: &str, query: ViewQuery) -> Error {
        self.views.query("_design/t", view, &query).unwrap_err()
    }
}

fn keys(response: &Value) -> Vec<Value> {
    response["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].clone())
        .collect()
}

fn ids(response: &Value) -> Vec<String> {
    response["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn collation_acceptance_list_orders_rows() {
    let f = fixture();
    let vector = vectors("view_collation_keys.json");
    let ascending = vector["ascending"].as_array().unwrap();
    let docs: Vec<Value> = ascending
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"_id": (i + 1).to_string(), "k": k}))
        .collect();
    f.put_all(docs);
    f.put_all(vec![json!({"_id": "_design/t", "views": {
        "v": {"map": "function(doc) { emit(doc.k, null); }"},
        "raw": {"map": "function(doc) { emit(doc.k, null); }", "options": {"collation": "raw"}}
    }})]);

    let all = f.query("v", ViewQuery::new());
    let expected: Vec<Value> = ascending
        .iter()
        .map(|k| {
            if k == &json!(3.0) {
                json!(3)
            } else {
                k.clone()
            }
        })
        .collect();
    assert_eq!(keys(&all), expected);
    assert_eq!(all["total_rows"], json!(26));
    let desc = f.query("v", ViewQuery::new().descending(true));
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(keys(&desc), reversed);
    for k in &expected {
        let one = f.query("v", ViewQuery::new().key(k.clone()));
        assert_eq!(keys(&one), vec![k.clone()], "key={k}");
    }

    for case in vector["inclusive_end_cases"].as_array().unwrap() {
        let response = f.query_params("v", &case["query"]);
        let last = response["rows"].as_array().unwrap().last().unwrap()["key"].clone();
        assert_eq!(last, case["last_row_key"], "{}", case["query"]);
    }

    // Raw collation: numbers < false < null < true < objects < arrays < strings.
    let raw = keys(&f.query("raw", ViewQuery::new()));
    let kinds: Vec<&str> = raw
        .iter()
        .map(|k| match k {
            Value::Number(_) => "n",
            Value::Bool(false) => "f",
            Value::Null => "z",
            Value::Bool(true) => "t",
            Value::Object(_) => "o",
            Value::Array(_) => "a",
            Value::String(_) => "s",
        })
        .collect();
    let mut sorted_kinds = kinds.clone();
    let rank = |k: &&str| "nfztoas".find(*k).unwrap();
    sorted_kinds.sort_by_key(rank);
    assert_eq!(kinds, sorted_kinds);
    let strings: Vec<&str> = raw.iter().filter_map(Value::as_str).collect();
    let mut bytewise = strings.clone();
    bytewise.sort();
    assert_eq!(strings, bytewise);
}

#[test]
fn icu_equal_keys_group_and_match_together() {
    let f = fixture();
    let extra = &vectors("view_collation_keys.json")["eunit_extra"];
    let docs: Vec<Value> = extra["icu_equal_group"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"_id": format!("d{i}"), "k": k}))
        .collect();
    f.put_all(docs);
    f.put_all(vec![json!({"_id": "deep", "k": extra["deep_key"]})]);
    f.put_all(vec![json!({"_id": "_design/t", "views": {
        "v": {"map": "function(doc) { emit(doc.k, 1); }", "reduce": "_count"}
    }})]);
    let grouped = f.query("v", ViewQuery::new().group(true));
    assert_eq!(
        grouped["rows"],
        json!([{"key": "c", "value": 3}, {"key": extra["deep_key"], "value": 1}])
    );
    let matched = f.query("v", ViewQuery::new().reduce(false).key(json!("c\u{200B}")));
    assert_eq!(ids(&matched), vec!["d0", "d1", "d2"]);
}

#[test]
fn reduce_pagination_vectors() {
    let f = fixture();
    let docs: Vec<Value> = (0..1123)
        .map(|i| json!({"_id": i.to_string(), "int": i}))
        .collect();
    f.put_all(docs);
    f.put_all(vec![json!({"_id": "_design/t", "views": {"v": {
        "map": "function(doc) { emit(doc.int, doc._id); emit(doc.int + 1, doc._id); emit(doc.int + 2, doc._id); }",
        "reduce": "_count"
    }}})]);
    let cases = vectors("builtin_reduce.json")["reduce_pagination"]["cases"].clone();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 32);
    for case in cases {
        let response = f.query_params("v", &case["query"]);
        assert_eq!(response["rows"], case["rows"], "{}", case["query"]);
    }
}

#[test]
fn builtin_reducers_over_500_docs() {
    let f = fixture();
    let docs: Vec<Value> = (1..=500)
        .map(|i| json!({"_id": i.to_string(), "integer": i}))
        .collect();
    f.put_all(docs);
    let map = "function(doc){ emit(doc.integer, doc.integer); emit(doc.integer, doc.integer); }";
    let reducers = [
        "_sum",
        "_count",
        "_stats",
        "_top_3",
        "_bottom_3",
        "_first",
        "_last",
    ];
    let mut views = serde_json::Map::new();
    for r in reducers {
        views.insert(r.to_string(), json!({"map": map, "reduce": r}));
    }
    views.insert(
        "_approx_count_distinct".into(),
        json!({"map": map, "reduce": "_approx_count_distinct"}),
    );
    f.put_all(vec![json!({"_id": "_design/t", "views": views})]);

    let expected = &vectors("builtin_reduce.json")["builtin_500_docs"];
    for r in reducers {
        let full = f.query(r, ViewQuery::new());
        assert_eq!(
            full["rows"],
            json!([{"key": null, "value": expected["full"][r]}]),
            "{r}"
        );
        for (range, params) in [
            ("startkey=4&endkey=4", json!({"startkey": 4, "endkey": 4})),
            ("startkey=4&endkey=5", json!({"startkey": 4, "endkey": 5})),
            ("startkey=4&endkey=6", json!({"startkey": 4, "endkey": 6})),
        ] {
            if let Some(want) = expected[range].get(r) {
                let got = f.query_params(r, &params);
                assert_eq!(got["rows"][0]["value"], *want, "{r} {range}");
            }
        }
        if let Some(want) = expected["group=true&limit=3"].get(r) {
            let got = f.query(r, ViewQuery::new().group(true).limit(3));
            let values: Vec<Value> = got["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["value"].clone())
                .collect();
            assert_eq!(Value::Array(values), *want, "{r} group=true&limit=3");
        }
    }
    let distinct = f.query("_approx_count_distinct", ViewQuery::new());
    let n = distinct["rows"][0]["value"].as_f64().unwrap();
    assert!((n - 500.0).abs() < 500.0 * 1.04 / 32.0, "{n}");
}

#[test]
fn group_levels_over_array_keys() {
    let f = fixture();
    let vector = &vectors("builtin_reduce.json")["group_level_array_keys"];
    let base = [
        json!(["a"]),
        json!(["a"]),
        json!(["a", "b"]),
        json!(["a", "b"]),
        json!(["a", "b", "c"]),
        json!(["a", "b", "d"]),
        json!(["a", "c", "d"]),
        json!(["d"]),
        json!(["d", "a"]),
        json!(["d", "b"]),
        json!(["d", "c"]),
    ];
    let mut docs = Vec::new();
    for copy in 0..10 {
        for (i, k) in base.iter().enumerate() {
            docs.push(json!({"_id": format!("{copy}-{i}"), "keys": k}));
        }
    }
    f.put_all(docs);
    f.put_all(vec![json!({"_id": "_design/t", "views": {
        "sum": {"map": "function(doc) { emit(doc.keys, 1); }", "reduce": "_sum"},
        "js": {"map": "function(doc) { emit(doc.keys, 1); }", "reduce": "function(k, v) { return sum(v); }"}
    }})]);
    for (name, want) in vector.as_object().unwrap() {
        if !name.contains('=') {
            continue;
        }
        let mut params = serde_json::Map::new();
        for part in name.split('&') {
            let (k, v) = part.split_once('=').unwrap();
            params.insert(k.to_string(), serde_json::from_str(v).unwrap_or(json!(v)));
        }
        let want: Vec<Value> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| json!({"key": pair[0], "value": pair[1]}))
            .collect();
        for view in ["sum", "js"] {
            let got = f.query_params(view, &Value::Object(params.clone()));
            assert_eq!(got["rows"], Value::Array(want.clone()), "{view} {name}");
        }
    }
}

#[test]
fn incremental_updates_deletes_and_recreation() {
    let f = fixture();
    f.put_all(vec![
        json!({"_id": "_design/t", "views": {
            "by_type": {"map": "function(doc) { if (doc.type) emit(doc.type, doc.n); }", "reduce": "_sum"}
        }}),
        json!({"_id": "a", "type": "x", "n": 1}),
        json!({"_id": "b", "type": "y", "n": 2}),
    ]);
    let grouped = |f: &Fixture| f.query("by_type", ViewQuery::new().group(true))["rows"].clone();
    assert_eq!(
        grouped(&f),
        json!([{"key": "x", "value": 1}, {"key": "y", "value": 2}])
    );

    let a = f.db.get("a", &ReadOptions::default()).unwrap();
    f.put_all(vec![
        json!({"_id": "a", "_rev": a["_rev"], "type": "y", "n": 5}),
    ]);
    assert_eq!(grouped(&f), json!([{"key": "y", "value": 7}]));

    let b = f.db.get("b", &ReadOptions::default()).unwrap();
    f.put_all(vec![
        json!({"_id": "b", "_rev": b["_rev"], "_deleted": true}),
    ]);
    assert_eq!(grouped(&f), json!([{"key": "y", "value": 5}]));
    let map = f.query("by_type", ViewQuery::new().reduce(false));
    assert_eq!(map["total_rows"], json!(1));
    assert_eq!(ids(&map), vec!["a"]);

    // Re-created without a rev: indexed again.
    f.put_all(vec![json!({"_id": "b", "type": "z", "n": 3})]);
    assert_eq!(
        grouped(&f),
        json!([{"key": "y", "value": 5}, {"key": "z", "value": 3}])
    );

    // update=false reads the committed index without catching up.
    f.put_all(vec![json!({"_id": "c", "type": "z", "n": 10})]);
    let stale = f.query(
        "by_type",
        ViewQuery::new()
            .group(true)
            .update(settee::view::UpdateMode::False),
    );
    assert_eq!(
        stale["rows"],
        json!([{"key": "y", "value": 5}, {"key": "z", "value": 3}])
    );
    let fresh = f.query("by_type", ViewQuery::new().group(true).update_seq(true));
    assert_eq!(
        fresh["rows"],
        json!([{"key": "y", "value": 5}, {"key": "z", "value": 13}])
    );
    assert_eq!(fresh["update_seq"], json!(f.db.update_seq().unwrap()));
}

#[test]
fn map_rows_offsets_skip_limit_and_duplicates() {
    let f = fixture();
    let docs: Vec<Value> = (0..10)
        .map(|i| json!({"_id": format!("d{i}"), "k": i % 5}))
        .collect();
    f.put_all(docs);
    f.put_all(vec![json!({"_id": "dup", "k": 2})]);
    f.put_all(vec![json!({"_id": "_design/t", "views": {
        "v": {"map": "function(doc) { emit(doc.k, doc._id); }"},
        "count": {"map": "function(doc) { emit(doc.k, doc._id); }", "reduce": "_count"},
        "dups": {"map": "function(doc) { if (doc._id === 'dup') { emit('k', 'b'); emit('k', 1); emit('k', null); emit('k', 'a'); } }"}
    }})]);
    let page = f.query("v", ViewQuery::new().start_key(json!(2)).skip(1).limit(2));
    assert_eq!(page["total_rows"], json!(11));
    assert_eq!(page["offset"], json!(5));
    assert_eq!(ids(&page), vec!["d7", "dup"]);
    let desc = f.query(
        "v",
        ViewQuery::new()
            .descending(true)
            .start_key(json!(2))
            .limit(3),
    );
    assert_eq!(ids(&desc), vec!["dup", "d7", "d2"]);
    assert_eq!(desc["offset"], json!(4));
    let none = f.query("v", ViewQuery::new().key(json!(9)));
    assert_eq!(none["rows"], json!([]));
    assert_eq!(none["offset"], json!(11));
    let limit0 = f.query("v", ViewQuery::new().key(json!(1)).limit(0));
    assert_eq!(
        (limit0["offset"].clone(), limit0["rows"].clone()),
        (json!(2), json!([]))
    );
    let multi = f.query("v", ViewQuery::new().keys(vec![json!(4), json!(0)]));
    assert_eq!(ids(&multi), vec!["d4", "d9", "d0", "d5"]);
    // CouchDB takes the offset where its fold meets the first row, before
    // skipping (here in the range of key 3, with 7 rows before it), then adds
    // `skip`, capped at total_rows.
    let skip_across_keys = f.query("v", ViewQuery::new().keys(vec![json!(3), json!(0)]).skip(3));
    assert_eq!(ids(&skip_across_keys), vec!["d5"]);
    assert_eq!(skip_across_keys["offset"], json!(10));
    let skip_past_end = f.query("v", ViewQuery::new().start_key(json!(3)).skip(50));
    assert_eq!(skip_past_end["rows"], json!([]));
    assert_eq!(skip_past_end["offset"], json!(11));
    let skip_empty_range = f.query("v", ViewQuery::new().key(json!(9)).skip(1));
    assert_eq!(skip_empty_range["offset"], json!(11));
    // Descending map queries walk `keys` backwards; reduce queries keep the
    // order given.
    let map_desc = f.query(
        "v",
        ViewQuery::new()
            .keys(vec![json!(3), json!(0)])
            .descending(true),
    );
    assert_eq!(ids(&map_desc), vec!["d5", "d0", "d8", "d3"]);
    let reduce_desc = f.query(
        "count",
        ViewQuery::new()
            .keys(vec![json!(3), json!(0)])
            .descending(true)
            .group(true),
    );
    assert_eq!(keys(&reduce_desc), vec![json!(3), json!(0)]);
    let start_docid = f.query(
        "v",
        ViewQuery::new()
            .start_key(json!(2))
            .start_key_docid("d7")
            .end_key(json!(2)),
    );
    assert_eq!(ids(&start_docid), vec!["d7", "dup"]);

    // One doc's repeated emits of a key come back ordered by value (Erlang term
    // order), in both directions.
    let values = |r: &Value| -> Vec<Value> {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["value"].clone())
            .collect()
    };
    let want = vec![json!(1), json!(null), json!("a"), json!("b")];
    assert_eq!(values(&f.query("dups", ViewQuery::new())), want);
    assert_eq!(
        values(&f.query("dups", ViewQuery::new().descending(true))),
        want
    );
}

#[test]
fn include_docs_follows_links_and_nulls_missing() {
    let f = fixture();
    f.put_all(vec![
        json!({"_id": "target", "v": 1}),
        json!({"_id": "linker", "link": "target"}),
        json!({"_id": "broken", "link": "nowhere"}),
        json!({"_id": "_design/t", "views": {"v": {"map":
            "function(doc) { if (doc.link) emit(doc._id, {_id: doc.link}); else emit(doc._id, null); }"}}}),
    ]);
    let response = f.query("v", ViewQuery::new().include_docs(true));
    let rows = response["rows"].as_array().unwrap();
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == json!(id)).unwrap().clone();
    assert_eq!(by_id("linker")["doc"]["_id"], json!("target"));
    assert_eq!(by_id("broken")["doc"], Value::Null);
    assert_eq!(by_id("target")["doc"]["v"], json!(1));
    // The design doc itself is not mapped (no include_design).
    assert!(rows.iter().all(|r| r["id"] != json!("_design/t")));
}

#[test]
fn query_errors_are_couchdb_errors() {
    let f = fixture();
    f.put_all(vec![json!({"_id": "_design/t", "views": {
        "m": {"map": "function(doc) { emit(doc._id, 1); }"},
        "r": {"map": "function(doc) { emit(doc._id, 1); }", "reduce": "_count"}
    }})]);
    let err = f.query_err("nope", ViewQuery::new());
    assert_eq!(
        (err.status(), err.reason()),
        (404, "missing_named_view".to_string())
    );
    let err = f
        .views
        .query("_design/none", "m", &ViewQuery::new())
        .unwrap_err();
    assert_eq!((err.status(), err.reason()), (404, "missing".to_string()));
    let err = f.query_err("m", ViewQuery::new().start_key(json!(2)).end_key(json!(1)));
    assert_eq!(
        err.reason(),
        "No rows can match your key range, reverse your start_key and end_key or set descending=true"
    );
    let err = f.query_err(
        "m",
        ViewQuery::new()
            .descending(true)
            .start_key(json!(1))
            .end_key(json!(2)),
    );
    assert!(err.reason().ends_with("set descending=false"));
    let err = f.query_err("r", ViewQuery::new().include_docs(true));
    assert_eq!(err.reason(), "`include_docs` is invalid for reduce");
    let err = f.query_err("m", ViewQuery::new().group(true));
    assert_eq!(err.reason(), "Invalid use of grouping on a map view.");
}

#[test]
fn failing_maps_drop_only_their_rows() {
    let f = fixture();
    f.put_all(vec![
        json!({"_id": "ok", "n": 1}),
        json!({"_id": "bad", "n": -1}),
        json!({"_id": "_design/t", "views": {
            "throws": {"map": "function(doc) { emit('before', 1); if (doc.n < 0) throw new Error('no'); emit(doc._id, doc.n); }"},
            "fine": {"map": "function(doc) { emit(doc._id, doc.n); }"}
        }}),
    ]);
    let throws = f.query("throws", ViewQuery::new());
    assert_eq!(ids(&throws), vec!["ok", "ok"]);
    assert_eq!(ids(&f.query("fine", ViewQuery::new())), vec!["bad", "ok"]);
}

#[test]
fn shared_index_rebuild_and_cleanup() {
    let f = fixture();
    let view = json!({"v": {"map": "function(doc) { emit(doc._id, null); }"}});
    f.put_all(vec![
        json!({"_id": "a"}),
        json!({"_id": "_design/t", "views": view}),
        json!({"_id": "_design/u", "views": view, "validate_doc_update": "function(){}"}),
    ]);
    let t = f.views.design_doc("_design/t").unwrap();
    let u = f.views.design_doc("_design/u").unwrap();
    assert_eq!(t.group.signature, u.group.signature);
    assert_eq!(ids(&f.query("v", ViewQuery::new())), vec!["a"]);
    let dir = f.views.index_dir(&t.group.signature);
    assert!(dir.exists());

    // Changing the map makes a new index; the old one is removed by cleanup.
    let rev = f.db.get("_design/t", &ReadOptions::default()).unwrap()["_rev"].clone();
    f.put_all(vec![json!({"_id": "_design/t", "_rev": rev,
        "views": {"v": {"map": "function(doc) { emit(1, doc._id); }"}}})]);
    let rev = f.db.get("_design/u", &ReadOptions::default()).unwrap()["_rev"].clone();
    f.put_all(vec![
        json!({"_id": "_design/u", "_rev": rev, "_deleted": true}),
    ]);
    assert_eq!(keys(&f.query("v", ViewQuery::new())), vec![json!(1)]);
    let removed = f.views.cleanup().unwrap();
    assert_eq!(removed, vec![t.group.signature.clone()]);
    assert!(!dir.exists());
}

/// Integer literals beyond `serde_json`'s range keep their exact value in
/// query keys, as CouchDB's bignums do: they match no emitted double, and
/// ranges start and end exactly there (golden A_collation_numbers 31 and 67).
#[test]
fn big_integer_query_keys_are_exact() {
    let f = fixture();
    f.put_all(vec![
        json!({"_id": "a", "k": -12345678901234567890i128 as f64}),
        json!({"_id": "b", "k": -1e19}),
        json!({"_id": "c", "k": 1}),
        json!({"_id": "_design/t", "views": {
            "v": {"map": "function(doc) { emit(doc.k, doc._id); }"},
            "count": {"map": "function(doc) { emit(doc.k, 1); }", "reduce": "_count"}}}),
    ]);
    let pairs = |k: &str, v: &str| ViewQuery::from_query_pairs([(k, v)]).unwrap();
    // The emitted double is -12345678901234567168.
    assert_eq!(
        ids(&f.query("v", pairs("key", "-12345678901234567890"))),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&f.query("v", pairs("key", "-12345678901234567168"))),
        vec!["a"]
    );
    assert_eq!(
        ids(&f.query("v", pairs("key", "-1.2345678901234567e19"))),
        vec!["a"]
    );
    // -12345678901234567890 < -12345678901234567168: a range from it includes "a".
    assert_eq!(
        ids(&f.query("v", pairs("startkey", "-12345678901234567890"))),
        vec!["a", "b", "c"]
    );
    assert_eq!(
        ids(&f.query("v", pairs("startkey", "-12345678901234567000"))),
        vec!["b", "c"]
    );
    assert_eq!(
        ids(&f.query("v", pairs("endkey", "-12345678901234567890"))),
        Vec::<String>::new()
    );
    // POST bodies: the text is needed, per key and inside arrays.
    let text = r#"{"keys": [3, -12345678901234567890, 1], "group": true}"#;
    let mut q = ViewQuery::new();
    q.apply_body_text(&serde_json::from_str(text).unwrap(), Some(text))
        .unwrap();
    assert_eq!(keys(&f.query("count", q)), vec![json!(1)]);
    let text = r#"{"key": -12345678901234567890}"#;
    let mut q = ViewQuery::new();
    q.apply_body_text(&serde_json::from_str(text).unwrap(), Some(text))
        .unwrap();
    assert_eq!(f.query("v", q)["rows"], json!([]));
    // Without the text, the key is the rounded double.
    assert_eq!(
        ids(&f.query(
            "v",
            ViewQuery::from_body(&serde_json::from_str(text).unwrap()).unwrap()
        )),
        vec!["a"]
    );
}

/// Waits (bounded) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn rev_of(f: &Fixture, id: &str) -> Value {
    f.db.get(id, &ReadOptions::default()).unwrap()["_rev"].clone()
}

fn signature(f: &Fixture, ddoc: &str) -> String {
    f.views.design_doc(ddoc).unwrap().group.signature.clone()
}

#[test]
fn unused_indexes_are_removed_automatically_after_design_doc_changes() {
    let f = fixture();
    f.views.cleanup_automatically();
    f.views.cleanup_automatically(); // a second call starts nothing more
    let shared = json!({"v": {"map": "function(doc) { emit(doc._id, null); }"}});
    f.put_all(vec![
        json!({"_id": "a"}),
        json!({"_id": "_design/t", "views": shared}),
        json!({"_id": "_design/u", "views": shared}),
        json!({"_id": "_design/w", "views": {"v": {"map": "function(doc) { emit(1, null); }"}}}),
    ]);
    for ddoc in ["_design/t", "_design/u", "_design/w"] {
        f.views.query(ddoc, "v", &ViewQuery::new()).unwrap();
    }
    let shared_dir = f.views.index_dir(&signature(&f, "_design/t"));
    let w_dir = f.views.index_dir(&signature(&f, "_design/w"));
    assert!(shared_dir.exists() && w_dir.exists());

    // t gets new views: its old index is still u's, so it stays. w is
    // deleted: its index goes, after the write, in the background.
    f.put_all(vec![
        json!({"_id": "_design/t", "_rev": rev_of(&f, "_design/t"),
        "views": {"v": {"map": "function(doc) { emit([doc._id], null); }"}}}),
    ]);
    let new_t_dir = f.views.index_dir(&signature(&f, "_design/t"));
    assert_eq!(keys(&f.query("v", ViewQuery::new())), vec![json!(["a"])]);
    f.put_all(vec![
        json!({"_id": "_design/w", "_rev": rev_of(&f, "_design/w"), "_deleted": true}),
    ]);
    eventually("w's index is removed", || !w_dir.exists());
    assert!(shared_dir.exists(), "an index u uses was removed");
    assert!(new_t_dir.exists());
    assert_eq!(
        ids(&f
            .views
            .query("_design/u", "v", &ViewQuery::new())
            .map(|r| serde_json::to_value(r).unwrap())
            .unwrap()),
        vec!["a"]
    );

    // Now nothing uses the shared index.
    f.put_all(vec![
        json!({"_id": "_design/u", "_rev": rev_of(&f, "_design/u"), "_deleted": true}),
    ]);
    eventually("the shared index is removed", || !shared_dir.exists());
    assert!(new_t_dir.exists());
    // Plain document writes trigger nothing, and the callable cleanup finds
    // nothing left to do.
    f.put_all(vec![json!({"_id": "b"})]);
    assert_eq!(f.views.cleanup().unwrap(), Vec::<String>::new());
    assert_eq!(
        keys(&f.query("v", ViewQuery::new())),
        vec![json!(["a"]), json!(["b"])]
    );

    // Re-creating a design document whose index was removed builds it anew.
    f.put_all(vec![json!({"_id": "_design/u2", "views": shared})]);
    assert_eq!(
        ids(
            &serde_json::to_value(f.views.query("_design/u2", "v", &ViewQuery::new()).unwrap())
                .unwrap()
        ),
        vec!["a", "b"]
    );
    assert!(shared_dir.exists());
}

#[test]
fn cleanup_waits_for_a_running_pass_and_blocks_no_other_index() {
    use std::ops::ControlFlow;
    use std::sync::mpsc;
    use std::time::Duration;

    let f = fixture();
    f.put_all(vec![
        json!({"_id": "_design/old", "views": {"v": {"map": "function(doc) { emit(doc.n, 1); }", "reduce": "_count"}}}),
        json!({"_id": "_design/live", "views": {"v": {"map": "function(doc) { emit(doc._id, doc.n); }"}}}),
        json!({"_id": "first", "n": 0}),
    ]);
    // A first build, then enough new documents for a pass of several batches.
    f.views
        .update("_design/old", &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let docs: Vec<Value> = (1..=5_000)
        .map(|n| json!({"_id": format!("d{n:05}"), "n": n}))
        .collect();
    f.put_all(docs);
    let old_dir = f.views.index_dir(&signature(&f, "_design/old"));

    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let views = f.views.clone();
    let pass = std::thread::spawn(move || {
        let mut first = true;
        views.update("_design/old", &mut |_| {
            if first {
                first = false;
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
            }
            ControlFlow::Continue(())
        })
    });
    started
        .recv_timeout(Duration::from_secs(30))
        .expect("the pass reports its first batch");

    // The design document goes while its pass runs: cleanup must wait.
    let covered = f.db.update_seq().unwrap();
    f.put_all(vec![
        json!({"_id": "_design/old", "_rev": rev_of(&f, "_design/old"), "_deleted": true}),
    ]);
    let views = f.views.clone();
    let cleanup = std::thread::spawn(move || views.cleanup());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!cleanup.is_finished(), "cleanup did not wait for the pass");
    assert!(old_dir.exists());
    // Meanwhile other indexes open, build and answer.
    let live = serde_json::to_value(
        f.views
            .query("_design/live", "v", &ViewQuery::new().limit(2))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(live["total_rows"], json!(5_001));

    go.send(()).unwrap();
    let seq = pass.join().unwrap().expect("the pass completes");
    assert!(seq >= covered);
    let removed = cleanup.join().unwrap().unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!old_dir.exists());
    assert!(f.views.index_dir(&signature(&f, "_design/live")).exists());
}

fn nest(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, _| json!([inner]))
}

#[test]
fn long_keys_end_to_end() {
    let f = fixture();
    let x = |n: usize| "x".repeat(n);
    let ten_k = 10 * 1024;
    // Ascending collation order; ids follow it.
    let ordered: Vec<Value> = vec![
        json!("a"),
        json!(x(1_000)),
        json!(x(ten_k - 1)),
        json!(x(ten_k)),
        json!(x(ten_k) + "a"),
        json!(x(ten_k) + "b"),
        json!(x(11_000)),
        json!(x(ten_k - 1) + "y"),
        json!("y"),
        nest(49, json!(1)),
        nest(50, json!(1)),
        nest(50, json!(2)),
        nest(50, json!(x(ten_k))),
        nest(50, json!(x(ten_k) + "a")),
        nest(51, json!(1)),
        json!({"k": x(ten_k)}),
    ];
    let mut docs: Vec<Value> = ordered
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"_id": format!("k{i:02}"), "k": k}))
        .collect();
    // Same long key from another doc, and an ICU-equal one (a trailing
    // zero-width space is ignorable): same key, ordered by doc id.
    let ten_k_at = 3;
    docs.push(json!({"_id": "k03b", "k": x(ten_k)}));
    docs.push(json!({"_id": "k03c", "k": x(ten_k) + "\u{200B}"}));
    f.put_all(docs);
    f.put_all(vec![json!({"_id": "_design/t", "views": {
        "v": {"map": "function(doc) { emit(doc.k, doc._id.length); }", "reduce": "_count"}
    }})]);
    let mut expected_ids: Vec<String> = (0..ordered.len()).map(|i| format!("k{i:02}")).collect();
    expected_ids.splice(ten_k_at + 1..ten_k_at + 1, ["k03b".into(), "k03c".into()]);

    let all = f.query("v", ViewQuery::new().reduce(false));
    assert_eq!(ids(&all), expected_ids);
    assert_eq!(all["total_rows"], json!(expected_ids.len()));
    assert_eq!(
        all["rows"][ten_k_at]["key"], ordered[ten_k_at],
        "keys come back as emitted"
    );
    assert_eq!(
        all["rows"][ten_k_at + 2]["key"],
        json!(x(ten_k) + "\u{200B}")
    );
    let desc = f.query("v", ViewQuery::new().reduce(false).descending(true));
    let mut reversed = expected_ids.clone();
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);

    // key= finds exactly its rows, for every key.
    for (i, k) in ordered.iter().enumerate() {
        let got = ids(&f.query("v", ViewQuery::new().reduce(false).key(k.clone())));
        if i == ten_k_at {
            assert_eq!(got, ["k03", "k03b", "k03c"]);
        } else {
            assert_eq!(got, [format!("k{i:02}")], "key #{i}");
        }
    }
    // keys= in the order given.
    let picked = ids(&f.query(
        "v",
        ViewQuery::new().reduce(false).keys(vec![
            ordered[14].clone(),
            ordered[5].clone(),
            ordered[12].clone(),
        ]),
    ));
    assert_eq!(picked, ["k14", "k05", "k12"]);

    // Ranges between long keys, both directions, inclusive or not, and with
    // doc-id bounds inside a run of equal long keys.
    let range = |q: ViewQuery| ids(&f.query("v", q.reduce(false)));
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(json!(x(ten_k)))
                .end_key(json!(x(11_000)))
        ),
        ["k03", "k03b", "k03c", "k04", "k05", "k06"]
    );
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(json!(x(ten_k) + "a"))
                .end_key(json!(x(11_000)))
                .inclusive_end(false)
        ),
        ["k04", "k05"]
    );
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(json!(x(11_000)))
                .end_key(json!(x(ten_k)))
                .descending(true)
        ),
        ["k06", "k05", "k04", "k03c", "k03b", "k03"]
    );
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(json!(x(ten_k)))
                .start_key_docid("k03b")
                .end_key(json!(x(ten_k)))
                .end_key_docid("k03b")
        ),
        ["k03b"]
    );
    // A bound that is not a key: between its neighbours.
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(json!(x(ten_k) + "aa"))
                .end_key(json!(x(ten_k) + "c"))
        ),
        ["k05"]
    );
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(nest(50, json!(1)))
                .end_key(nest(50, json!(x(ten_k) + "a")))
        ),
        ["k10", "k11", "k12", "k13"]
    );
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(nest(50, json!("")))
                .end_key(nest(50, json!([])))
                .descending(false)
        ),
        ["k12", "k13"]
    );

    // group=true: ICU-equal long keys are one group; keys that differ only
    // after the stored prefix are not.
    let grouped = f.query("v", ViewQuery::new().group(true));
    let rows = grouped["rows"].as_array().unwrap();
    assert_eq!(rows.len(), ordered.len());
    for (row, key) in rows.iter().zip(&ordered) {
        assert_eq!(&row["key"], key);
    }
    assert_eq!(rows[ten_k_at]["value"], json!(3));
    assert_eq!(rows[ten_k_at + 1]["value"], json!(1));
    let desc_groups = f.query("v", ViewQuery::new().group(true).descending(true));
    assert_eq!(
        desc_groups["rows"][ordered.len() - 1 - ten_k_at]["value"],
        json!(3)
    );
    // key= with the ICU-equal form: the same group, reported by its first key.
    let one = f.query(
        "v",
        ViewQuery::new()
            .group(true)
            .key(json!(x(ten_k) + "\u{200B}")),
    );
    assert!(one["rows"] == json!([{"key": x(ten_k), "value": 3}]));
    // group_level=1 over the deep keys: the key's first element, still
    // deep (and long), in order.
    let level1 = f.query(
        "v",
        ViewQuery::new()
            .group_level(1)
            .start_key(nest(49, json!(null)))
            .end_key(json!([{}])),
    );
    let expected: Vec<Value> = ordered[9..15]
        .iter()
        .map(|k| json!({"key": [k[0]], "value": 1}))
        .collect();
    assert!(level1["rows"] == json!(expected));

    // Updates and deletes remove the old long rows.
    let docs = vec![
        json!({"_id": "k05", "_rev": rev_of(&f, "k05"), "k": "short"}),
        json!({"_id": "k03b", "_rev": rev_of(&f, "k03b"), "_deleted": true}),
        json!({"_id": "k12", "_rev": rev_of(&f, "k12"), "k": nest(50, json!(x(ten_k) + "b"))}),
    ];
    f.put_all(docs);
    assert!(range(ViewQuery::new().key(json!(x(ten_k) + "b"))).is_empty());
    assert_eq!(
        range(ViewQuery::new().key(json!(x(ten_k)))),
        ["k03", "k03c"]
    );
    assert_eq!(
        range(
            ViewQuery::new()
                .start_key(nest(50, json!(x(ten_k))))
                .end_key(nest(51, json!(0)))
        ),
        ["k13", "k12"]
    );
    let all = f.query("v", ViewQuery::new().reduce(false));
    assert_eq!(all["total_rows"], json!(expected_ids.len() - 1));
}

#[test]
fn an_index_built_under_another_collator_version_is_rebuilt() {
    let f = fixture();
    f.put_all(vec![
        json!({"_id": "a", "k": "b"}),
        json!({"_id": "b", "k": "A"}),
        json!({"_id": "_design/t", "views": {"v": {"map": "function(doc) { emit(doc.k, null); }"}}}),
    ]);
    assert_eq!(ids(&f.query("v", ViewQuery::new())), ["b", "a"]);
    let dir = f.views.index_dir(&signature(&f, "_design/t"));
    let stale = || ViewQuery::new().update(settee::view::UpdateMode::False);

    // Reopening under the same version keeps the index.
    f.views.close_indexes();
    assert_eq!(ids(&f.query("v", stale())), ["b", "a"]);

    // Rewrite the recorded collator version, as an index built by another
    // ICU data version would have it.
    f.views.close_indexes();
    {
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .max_dbs(8)
                .map_size(1 << 30)
                .open(&dir)
                .unwrap()
        };
        let wtxn = env.write_txn().unwrap();
        let meta = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let meta = opener.create_database::<heed::types::Bytes, heed::types::Bytes>(
                    wtxn,
                    Some("meta"),
                )?;
                Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit(meta))
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        let mut identity: Value =
            serde_json::from_slice(meta.get(&wtxn, b"identity").unwrap().unwrap()).unwrap();
        assert_eq!(
            identity["collator_version"],
            json!(settee::collate::collator_version()),
            "the index records the collator version"
        );
        identity["collator_version"] = json!("icu-0.0-another");
        meta.put(&mut wtxn, b"identity", identity.to_string().as_bytes())
            .unwrap();
        wtxn.commit().unwrap();
        let closing = env.prepare_for_closing();
        closing.wait();
    }
    // Emptied on open, so nothing is served from it, and rebuilt from seq 0.
    let emptied = f.query("v", stale().update_seq(true));
    assert_eq!(emptied["rows"], json!([]));
    assert_eq!(emptied["total_rows"], json!(0));
    assert_eq!(emptied["update_seq"], json!(0));
    assert_eq!(f.views.info("_design/t").unwrap().view_index.update_seq, 0);
    assert_eq!(ids(&f.query("v", ViewQuery::new())), ["b", "a"]);
}

#[test]
fn design_options_include_design_and_local_seq() {
    let f = fixture();
    let map =
        "function(doc) { emit(doc._id, doc._local_seq === undefined ? 'none' : doc._local_seq); }";
    f.put_all(vec![
        json!({"_id": "a"}),
        json!({"_id": "_design/t", "views": {"v": {"map": map}}}),
        json!({"_id": "_design/with", "options": {"include_design": true, "local_seq": true},
            "views": {"v": {"map": map}}}),
        json!({"_id": "b"}),
    ]);
    let seq_of = |id: &str| {
        f.db.changes(&settee::ChangesQuery::new())
            .unwrap()
            .results
            .into_iter()
            .find(|c| c.id == id)
            .unwrap()
            .seq
    };
    // Without options: no design docs, no _local_seq.
    let plain = f.query("v", ViewQuery::new());
    assert_eq!(ids(&plain), ["a", "b"]);
    assert!(plain["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["value"] == "none"));
    // With them: design docs are mapped too, and every doc has its seq.
    let with = serde_json::to_value(
        f.views
            .query("_design/with", "v", &ViewQuery::new())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ids(&with), ["_design/t", "_design/with", "a", "b"]);
    for row in with["rows"].as_array().unwrap() {
        let id = row["id"].as_str().unwrap();
        assert_eq!(row["value"], json!(seq_of(id)), "{id}");
    }
    // An update moves the doc's _local_seq.
    f.put_all(vec![json!({"_id": "a", "_rev": rev_of(&f, "a"), "v": 2})]);
    let with = serde_json::to_value(
        f.views
            .query("_design/with", "v", &ViewQuery::new().key(json!("a")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(with["rows"][0]["value"], json!(f.db.update_seq().unwrap()));
    // Design docs with include_design are indexed and re-indexed like others.
    let plain = f.query("v", ViewQuery::new());
    assert_eq!(ids(&plain), ["a", "b"]);
}

#[test]
fn update_modes_false_lazy_and_stale() {
    use settee::view::UpdateMode;
    let f = fixture();
    f.put_all(vec![
        json!({"_id": "_design/t", "views": {
            "m": {"map": "function(doc) { emit(doc._id, doc.n); }"},
            "r": {"map": "function(doc) { emit(doc._id, doc.n); }", "reduce": "_sum"}
        }}),
        json!({"_id": "a", "n": 1}),
    ]);
    // Never built: update=false answers at once from an empty index, and
    // builds nothing.
    let empty = f.query(
        "m",
        ViewQuery::new().update(UpdateMode::False).update_seq(true),
    );
    assert_eq!(
        empty,
        json!({"total_rows": 0, "offset": 0, "update_seq": 0, "rows": []})
    );
    assert_eq!(
        f.query("r", ViewQuery::new().update(UpdateMode::False))["rows"],
        json!([])
    );
    assert_eq!(f.views.info("_design/t").unwrap().view_index.update_seq, 0);
    // stale=ok is update=false.
    let pairs = |p: &[(&str, &str)]| ViewQuery::from_query_pairs(p.iter().copied()).unwrap();
    assert_eq!(pairs(&[("stale", "ok")]).update, UpdateMode::False);
    assert_eq!(pairs(&[("stale", "update_after")]).update, UpdateMode::Lazy);
    assert_eq!(pairs(&[("update", "lazy")]).update, UpdateMode::Lazy);
    assert_eq!(f.query("m", pairs(&[("stale", "ok")]))["rows"], json!([]));

    // Build, then add documents.
    assert_eq!(ids(&f.query("m", ViewQuery::new())), ["a"]);
    let built = f.db.update_seq().unwrap();
    let docs: Vec<Value> = (0..300)
        .map(|n| json!({"_id": format!("n{n:03}"), "n": 1}))
        .collect();
    f.put_all(docs);
    let target = f.db.update_seq().unwrap();
    assert_eq!(
        f.query("r", pairs(&[("stale", "ok")]))["rows"],
        json!([{"key": null, "value": 1}])
    );

    // update=lazy: the answer is the index as it was, and the index catches
    // up in the background.
    let lazy = f.query(
        "m",
        ViewQuery::new().update(UpdateMode::Lazy).update_seq(true),
    );
    assert_eq!(ids(&lazy), ["a"]);
    assert_eq!(lazy["update_seq"], json!(built));
    eventually("the lazy update catches up", || {
        f.query(
            "m",
            ViewQuery::new().update(UpdateMode::False).update_seq(true),
        )["update_seq"]
            == json!(target)
    });
    assert_eq!(
        f.query("r", ViewQuery::new().update(UpdateMode::False))["rows"],
        json!([{"key": null, "value": 301}])
    );

    // stale=update_after: the same, through its parameter.
    f.put_all(vec![json!({"_id": "z", "n": 1000})]);
    let after = f.query("r", pairs(&[("stale", "update_after")]));
    assert_eq!(after["rows"], json!([{"key": null, "value": 301}]));
    eventually("stale=update_after catches up", || {
        f.query("r", ViewQuery::new().update(UpdateMode::False))["rows"]
            == json!([{"key": null, "value": 1301}])
    });
}

#[test]
fn a_query_waiting_for_an_index_whose_design_doc_changes_is_refused() {
    let f = fixture();
    // Slow enough (~5 ms a document) that the design document changes
    // while the query waits for the build.
    let slow =
        "function(doc) { var t = Date.now(); while (Date.now() - t < 5) {} emit(doc.n, 1); }";
    let first =
        f.db.put(json!({"_id": "_design/t", "views": {"v": {"map": slow}}}))
            .unwrap();
    f.put_all((0..200).map(|n| json!({"n": n})).collect());
    let views = f.views.clone();
    let waiting = std::thread::spawn(move || views.query("_design/t", "v", &ViewQuery::new()));
    std::thread::sleep(std::time::Duration::from_millis(150));
    f.db.put(json!({"_id": "_design/t", "_rev": first.rev,
        "views": {"v": {"map": "function(doc) { emit(doc.n, 2); }"}}}))
        .unwrap();
    let err = waiting.join().unwrap().unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.reason()),
        (
            404,
            "not_found",
            "Design document was updated or deleted.".into()
        )
    );
    // The next query answers for the new views.
    let rows = f.query("v", ViewQuery::new().limit(1));
    assert_eq!(rows["rows"][0]["value"], 2);
    // A change that leaves the views alone (same signature) refuses nothing.
    let current = f.db.get("_design/t", &Default::default()).unwrap();
    let mut same_views = current.clone();
    same_views["validate_doc_update"] = json!("function() {}");
    f.db.put(same_views).unwrap();
    assert_eq!(
        f.query("v", ViewQuery::new().limit(1))["rows"][0]["value"],
        2
    );
}

#[test]
fn query_limit_caps_rows_and_refuses_larger_limits() {
    let f = fixture();
    f.db.put(
        json!({"_id": "_design/t", "views": {"v": {"map": "function(doc) { emit(doc.n, 1); }"}}}),
    )
    .unwrap();
    f.put_all((0..10).map(|n| json!({"n": n})).collect());
    let views = f.views.clone().with_query_limit(4);
    let all =
        serde_json::to_value(views.query("_design/t", "v", &ViewQuery::new()).unwrap()).unwrap();
    assert_eq!(
        (
            all["rows"].as_array().unwrap().len(),
            all["total_rows"].clone()
        ),
        (4, json!(10))
    );
    let err = views
        .query("_design/t", "v", &ViewQuery::new().limit(5))
        .unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.reason()),
        (
            400,
            "query_parse_error",
            "Limit is too large, must not exceed 4".into()
        )
    );
    // CouchDB checks the limit before the other options.
    let err = views
        .query("_design/t", "v", &ViewQuery::new().limit(5).group(true))
        .unwrap_err();
    assert_eq!(err.reason(), "Limit is too large, must not exceed 4");
}

#[test]
fn sum_count_and_stats_vectors_through_views() {
    // Each case's values are emitted by one document each; the whole-view
    // reduce (and, for `grouped_example`, group=true) must give the vector.
    let table = vectors("builtin_reduce.json");
    let mut checked = 0;
    for reducer in ["_sum", "_count", "_stats"] {
        for case in table[&reducer[1..]].as_array().unwrap() {
            let f = fixture();
            let groups: Vec<(Value, Vec<Value>)> = match case["grouped_example"].as_object() {
                Some(groups) => groups
                    .iter()
                    .map(|(k, v)| (json!(k), v.as_array().unwrap().clone()))
                    .collect(),
                None => vec![(Value::Null, case["values"].as_array().unwrap().clone())],
            };
            let mut docs = Vec::new();
            for (key, values) in &groups {
                for value in values {
                    docs.push(json!({"_id": format!("d{:03}", docs.len()), "k": key, "v": value}));
                }
            }
            f.put_all(docs);
            f.put_all(vec![json!({"_id": "_design/t", "views": {"v": {
                "map": "function(doc) { emit(doc.k, doc.v); }",
                "reduce": reducer
            }}})]);
            let expected = case.get("expected").unwrap_or(&case["expected_value"]);
            if case["grouped_example"].is_object() {
                let got = f.query("v", ViewQuery::new().group(true));
                for row in got["rows"].as_array().unwrap() {
                    let key = row["key"].as_str().unwrap();
                    assert_eq!(row["value"], expected[key], "{reducer} {case} {key}");
                }
            } else {
                let got = f.query("v", ViewQuery::new());
                assert_eq!(got["rows"][0]["value"], *expected, "{reducer} {case}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 14);
}
