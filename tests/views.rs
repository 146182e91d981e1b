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
