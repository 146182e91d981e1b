//! Built-in reducers against `shared/vectors/builtin_reduce.json`.
//!
//! The range and grouping cases run over a small in-memory index
//! (`golden_support::index`), as the view engine will run them over LMDB.

use serde_json::{json, Value};
use settee::view::reduce::BuiltinReducer;
use std::collections::{HashMap, HashSet};

mod golden_support;
use golden_support::index::{Index, Row};
use golden_support::{golden_steps, load_json, query_params, view_of};

fn vectors() -> Value {
    load_json("vectors/builtin_reduce.json")
}

fn reducer(name: &str) -> BuiltinReducer {
    BuiltinReducer::parse(name)
        .expect("a built-in name")
        .expect("a valid built-in")
}

/// Reduces bare values (keys null, ids by position).
fn reduce_values(name: &str, values: &[Value]) -> settee::Result<Value> {
    let ids: Vec<String> = (0..values.len()).map(|i| format!("{i:04}")).collect();
    let key = Value::Null;
    reducer(name).reduce(
        values
            .iter()
            .zip(&ids)
            .map(|(v, id)| (&key, id.as_str(), v)),
    )
}

#[test]
fn sum_vectors() {
    let v = vectors();
    for case in v["sum"].as_array().expect("sum cases") {
        if let Some(groups) = case["grouped_example"].as_object() {
            for (group, values) in groups {
                let values = values.as_array().expect("values");
                assert_eq!(
                    reduce_values("_sum", values).expect("sum"),
                    case["expected"][group],
                    "group {group}"
                );
            }
            continue;
        }
        let values = case["values"].as_array().expect("values");
        let expected = case.get("expected").unwrap_or(&case["expected_value"]);
        assert_eq!(
            &reduce_values("_sum", values).expect("sum"),
            expected,
            "{case}"
        );
    }
}

#[test]
fn sum_error_propagates_through_rereduce() {
    let error = reduce_values("_sum", &[json!(1), json!("baz")]).expect("error value");
    let mut acc = reducer("_sum").accumulator();
    acc.add_row(&json!(null), "a", &json!(5));
    let mut failed = reducer("_sum").accumulator();
    failed.add_row(&json!(null), "b", &json!("baz"));
    acc.merge(failed).expect("same reducer");
    let mut later = reducer("_sum").accumulator();
    later.add_row(&json!(null), "c", &json!(7));
    acc.merge(later).expect("same reducer");
    let merged = acc.finalize().expect("error value");
    assert_eq!(merged["error"], "builtin_reduce_error");
    assert_eq!(merged["caused_by"], "baz");
    assert_eq!(merged, error.clone());
}

#[test]
fn sum_order_dependent_corner_cases() {
    let object = json!({"a": 1});
    let err = reduce_values("_sum", &[object.clone(), json!(1)]).expect("error value");
    assert_eq!(err["caused_by"], json!(1));
    assert_eq!(
        reduce_values("_sum", &[json!(0), object.clone()]).expect("sum"),
        object
    );
    let crash = reduce_values("_sum", &[json!(1), object]).expect_err("case_clause");
    assert_eq!((crash.status(), crash.name()), (500, "case_clause"));
}

#[test]
fn sum_keeps_big_integers_exact_and_mixes_floats() {
    let big = json!(9007199254740993u64);
    assert_eq!(
        reduce_values("_sum", &[big.clone(), json!(1)]).expect("sum"),
        json!(9007199254740994u64)
    );
    assert_eq!(
        reduce_values("_sum", &[json!(1), json!(0.5)]).expect("sum"),
        json!(1.5)
    );
    assert_eq!(
        reduce_values("_sum", &[json!(i64::MAX), json!(i64::MAX)]).expect("sum"),
        json!(18446744073709551614u64)
    );
}

#[test]
fn sum_overflow_becomes_the_reduce_limit_error() {
    // One row emitting 2,000 numbers: the output (~10 KB) does not shrink.
    let big: Value = (0..2000)
        .map(|i| json!(i * 1000))
        .collect::<Vec<_>>()
        .into();
    let out = reduce_values("_sum", &[big]).expect("error value");
    assert_eq!(out["error"], "builtin_reduce_error");
    let reason = out["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("Reduce output must shrink more rapidly: input size: "),
        "{reason}"
    );
    // Many rows summing into a small output are fine.
    let rows: Vec<Value> = (0..3000).map(Value::from).collect();
    assert_eq!(reduce_values("_sum", &rows).expect("sum"), json!(4498500));
}

#[test]
fn count_vector() {
    let v = vectors();
    for case in v["count"].as_array().expect("count cases") {
        let values = case["values"].as_array().expect("values");
        assert_eq!(
            reduce_values("_count", values).expect("count"),
            case["expected"]
        );
    }
}

#[test]
fn stats_vectors() {
    let v = vectors();
    for case in v["stats"].as_array().expect("stats cases") {
        let values = case["values"].as_array().expect("values");
        assert_eq!(
            reduce_values("_stats", values).expect("stats"),
            case["expected"],
            "{case}"
        );
    }
}

#[test]
fn stats_invalid_input_fails() {
    let err = reduce_values("_stats", &[json!(1), json!("x")]).expect_err("invalid");
    assert_eq!((err.status(), err.name()), (500, "invalid_value"));
    assert!(err
        .reason()
        .contains("The _stats function requires that map values be numbers"));
    let err = reduce_values("_stats", &[json!([1, 2]), json!([1])]).expect_err("unequal");
    assert_eq!(err.status(), 500);
    let err = reduce_values("_stats", &[json!({"sum": 1})]).expect_err("missing field");
    assert!(
        err.reason().contains("missing required field count"),
        "{}",
        err.reason()
    );
}

#[test]
fn builtin_name_validation() {
    let v = vectors();
    for case in v["builtin_name_validation"].as_array().expect("cases") {
        let name = case["reduce"].as_str().expect("name");
        let parsed = BuiltinReducer::parse(name).expect("starts with _");
        if case["ok"] == true {
            assert!(parsed.is_ok(), "{name:?}");
        } else {
            let err = parsed.expect_err(name);
            assert_eq!(err.status(), case["status"]);
            assert_eq!(err.name(), case["error"]);
            assert_eq!(err.reason(), case["reason"]);
        }
    }
    // Names from the golden D family.
    assert_eq!(reducer("_first_thing"), BuiltinReducer::First);
    assert_eq!(reducer("_count "), BuiltinReducer::Count);
    assert_eq!(reducer("_statsorama"), BuiltinReducer::Stats);
    assert_eq!(reducer("_top_100"), BuiltinReducer::Top(100));
    assert_eq!(reducer("_bottom_1"), BuiltinReducer::Bottom(1));
    assert!(BuiltinReducer::parse(" _count").is_none());
    for (name, reason) in [
        ("_top_x", "invalid rank reducer"),
        ("_top_", "invalid rank reducer"),
        ("_top_3\n", "invalid rank reducer"),
        ("_top_0", "rank value must be between 1 and 100"),
        ("_bottom_0", "rank value must be between 1 and 100"),
        ("_top_101", "rank value must be between 1 and 100"),
        ("_top_-1", "rank value must be between 1 and 100"),
        ("_nosuch", "`_nosuch` is not a supported reduce function."),
    ] {
        let err = BuiltinReducer::parse(name)
            .expect("builtin")
            .expect_err(name);
        assert_eq!(
            (err.name(), err.reason().as_str()),
            ("invalid_design_doc", reason)
        );
    }
}

fn five_hundred_docs() -> Index {
    let mut emits = Vec::new();
    for i in 1..=500 {
        for _ in 0..2 {
            emits.push((json!(i), i.to_string(), json!(i)));
        }
    }
    Index::new(emits)
}

#[test]
fn five_hundred_docs_full_reductions() {
    let v = vectors();
    let index = five_hundred_docs();
    let expected = &v["builtin_500_docs"]["full"];
    for (name, value) in expected.as_object().expect("full") {
        let rows = index.reduce(reducer(name), &json!({}));
        let got = &rows[0]["value"];
        if name == "_approx_count_distinct" {
            let n = got.as_f64().expect("count");
            assert!((n - 500.0).abs() < 500.0 * 1.04 / 32.0, "{n}");
        } else {
            assert_eq!(got, value, "{name}");
        }
    }
}

#[test]
fn five_hundred_docs_ranges_and_groups() {
    let v = vectors();
    let index = five_hundred_docs();
    for (query, results) in v["builtin_500_docs"].as_object().expect("cases") {
        let q = match query.as_str() {
            "startkey=4&endkey=4" => json!({"startkey": 4, "endkey": 4}),
            "startkey=4&endkey=5" => json!({"startkey": 4, "endkey": 5}),
            "startkey=4&endkey=6" => json!({"startkey": 4, "endkey": 6}),
            "group=true&limit=3" => json!({"group": true, "limit": 3}),
            _ => continue,
        };
        for (name, expected) in results.as_object().expect("reducers") {
            let rows = index.reduce(reducer(name), &q);
            let got: Vec<&Value> = rows.iter().map(|r| &r["value"]).collect();
            if q["group"] == true {
                let expected: Vec<&Value> =
                    expected.as_array().expect("per group").iter().collect();
                assert_eq!(got, expected, "{query} {name}");
            } else {
                assert_eq!(got, vec![expected], "{query} {name}");
            }
        }
    }
}

#[test]
fn approx_count_distinct_ignores_values_and_duplicates() {
    let mut emits = Vec::new();
    for i in 0..12 {
        for copy in 0..3 {
            emits.push((json!(["k", i]), format!("d{i}-{copy}"), json!(copy)));
        }
    }
    let index = Index::new(emits);
    let rows = index.reduce(BuiltinReducer::ApproxCountDistinct, &json!({}));
    assert_eq!(rows[0]["value"], json!(12));
    // ICU-equal but byte-distinct keys count as distinct.
    let index = Index::new(vec![
        (json!("c"), "1".into(), json!(null)),
        (json!("c\u{200B}"), "2".into(), json!(null)),
    ]);
    let rows = index.reduce(BuiltinReducer::ApproxCountDistinct, &json!({}));
    assert_eq!(rows[0]["value"], json!(2));
}

#[test]
fn group_level_array_keys() {
    let v = vectors();
    let case = &v["group_level_array_keys"];
    let keys = [
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
    let mut emits = Vec::new();
    for copy in 0..10 {
        for (i, k) in keys.iter().enumerate() {
            emits.push((k.clone(), format!("{copy}-{i}"), json!(1)));
        }
    }
    let index = Index::new(emits);
    let queries = [
        ("group=true", json!({"group": true})),
        ("group_level=1", json!({"group_level": 1})),
        ("group_level=2", json!({"group_level": 2})),
        (
            "group_level=2&endkey=[\"d\"]&inclusive_end=true",
            json!({"group_level": 2, "endkey": ["d"], "inclusive_end": true}),
        ),
        (
            "group_level=2&endkey=[\"d\"]&inclusive_end=false",
            json!({"group_level": 2, "endkey": ["d"], "inclusive_end": false}),
        ),
    ];
    for (name, q) in queries {
        let expected: Vec<Value> = case[name]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| json!({"key": r[0], "value": r[1]}))
            .collect();
        for reducer_name in ["_sum", "_count"] {
            assert_eq!(
                index.reduce(reducer(reducer_name), &q),
                expected,
                "{name} {reducer_name}"
            );
        }
    }
}

#[test]
fn reduce_pagination_ranges() {
    let v = vectors();
    let mut emits = Vec::new();
    for i in 0..=1122i64 {
        for d in 0..3 {
            emits.push((json!(i + d), i.to_string(), json!(i.to_string())));
        }
    }
    let index = Index::new(emits);
    let cases = v["reduce_pagination"]["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 32);
    for case in cases {
        let rows = index.reduce(BuiltinReducer::Count, &case["query"]);
        assert_eq!(Value::from(rows), case["rows"], "{}", case["query"]);
    }
}

#[test]
fn top_bottom_first_last_over_groups() {
    // Values are ranked by collation and deduplicated.
    let index = Index::new(vec![
        (json!("k"), "a".into(), json!("b")),
        (json!("k"), "b".into(), json!("B")),
        (json!("k"), "c".into(), json!("a")),
        (json!("k"), "d".into(), json!(1.0)),
        (json!("k"), "e".into(), json!(1)),
        (json!("k"), "f".into(), json!(null)),
    ]);
    let q = json!({"group": true});
    assert_eq!(
        index.reduce(reducer("_top_3"), &q)[0]["value"],
        json!(["B", "b", "a"])
    );
    assert_eq!(
        index.reduce(reducer("_bottom_3"), &q)[0]["value"],
        json!([null, 1.0, "a"])
    );
    assert_eq!(index.reduce(reducer("_first"), &q)[0]["value"], json!("b"));
    assert_eq!(index.reduce(reducer("_last"), &q)[0]["value"], json!(null));
}

#[test]
fn rereduce_of_chunks_equals_reduce() {
    let emits: Vec<(Value, String, Value)> = (0..300)
        .map(|i| {
            let value = json!([i % 7, {"n": i}]);
            (json!([i % 5, i]), format!("doc{i:03}"), value)
        })
        .collect();
    let index = Index::new(emits);
    let stat_values: Vec<Value> = (0..300).map(|i| json!([i % 7, i])).collect();
    for name in [
        "_count",
        "_sum",
        "_stats",
        "_approx_count_distinct",
        "_first",
        "_last",
        "_top_5",
        "_bottom_5",
    ] {
        let r = reducer(name);
        // _sum and _stats need numeric values; the others take any.
        let values = |row: &Row| {
            if name == "_stats" || name == "_sum" {
                stat_values[row.id[3..].parse::<usize>().expect("id")].clone()
            } else {
                row.value.clone()
            }
        };
        let mut full = r.accumulator();
        let mut chunks = Vec::new();
        for (i, chunk) in index.rows.chunks(37).enumerate() {
            let mut acc = r.accumulator();
            for row in chunk {
                let v = values(row);
                acc.add_row(&row.key, &row.id, &v);
                full.add_row(&row.key, &row.id, &v);
            }
            chunks.push((i, acc));
        }
        // Merge in a scrambled order: reductions must not depend on it.
        chunks.sort_by_key(|(i, _)| (i * 7) % 11);
        let merged = r
            .rereduce(chunks.into_iter().map(|(_, acc)| acc))
            .expect("rereduce");
        assert_eq!(merged, full.finalize().expect("reduce"), "{name}");
    }
}

// ---------------------------------------------------------------------------
// Golden corpus, family B: CouchDB's reduce responses recomputed from its map rows.

type ViewId = (String, String, String);

/// The map rows seen for one view: `total_rows`, the distinct rows, their fingerprints.
#[derive(Default)]
struct SeenRows {
    total: u64,
    rows: Vec<(Value, String, Value)>,
    fingerprints: HashSet<String>,
}

/// Numbers equal within the golden replay tolerance; everything else exactly.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// CouchDB's parameter aliases, and `key` as a one-key range.
fn normalize_query(params: &serde_json::Map<String, Value>) -> Value {
    let mut q = serde_json::Map::new();
    for (k, v) in params {
        let name = match k.as_str() {
            "start_key" => "startkey",
            "end_key" => "endkey",
            "start_key_doc_id" => "startkey_docid",
            "end_key_doc_id" => "endkey_docid",
            other => other,
        };
        q.insert(name.to_owned(), v.clone());
    }
    if let Some(key) = q.remove("key") {
        q.insert("startkey".into(), key.clone());
        q.insert("endkey".into(), key);
    }
    Value::Object(q)
}

#[test]
fn golden_family_b_builtin_reductions() {
    let mut reducers: HashMap<ViewId, BuiltinReducer> = HashMap::new();
    let mut rows: HashMap<ViewId, SeenRows> = HashMap::new();
    let mut queries: Vec<(ViewId, Value, Value, String)> = Vec::new();
    for step in golden_steps("B_") {
        let (req, res) = (&step["req"], &step["res"]);
        let scenario = step["scenario"].as_str().expect("scenario").to_owned();
        let path = req["path"].as_str().expect("path");
        if req["method"] == "PUT" && path.contains("/_design/") && res["status"] == 201 {
            let ddoc = path.split("/_design/").nth(1).expect("ddoc").to_owned();
            for (view, def) in req["body"]["views"].as_object().into_iter().flatten() {
                let parsed = def["reduce"].as_str().and_then(BuiltinReducer::parse);
                if let Some(Ok(reducer)) = parsed {
                    reducers.insert((scenario.clone(), ddoc.clone(), view.clone()), reducer);
                }
            }
            continue;
        }
        let Some((ddoc, view)) = view_of(path) else {
            continue;
        };
        if res["status"] != 200 {
            continue;
        }
        let id = (scenario, ddoc, view);
        let params = query_params(req);
        if params.get("reduce") == Some(&Value::Bool(false)) {
            let entry = rows.entry(id).or_default();
            entry.total = res["body"]["total_rows"].as_u64().expect("total_rows");
            for row in res["body"]["rows"].as_array().expect("rows") {
                let (key, value) = (row["key"].clone(), row["value"].clone());
                let doc = row["id"].as_str().expect("id").to_owned();
                if entry
                    .fingerprints
                    .insert(format!("{doc}\u{0}{key}\u{0}{value}"))
                {
                    entry.rows.push((key, doc, value));
                }
            }
        } else if !params.contains_key("keys") {
            let label = format!("{} step {} {}", step["scenario"], step["i"], path);
            queries.push((
                id,
                normalize_query(&params),
                res["body"]["rows"].clone(),
                label,
            ));
        }
    }
    let mut indexes: HashMap<ViewId, Index> = HashMap::new();
    let (mut checked, mut reducers_seen) = (0, HashSet::new());
    for (id, q, expected, label) in queries {
        let Some(&reducer) = reducers.get(&id) else {
            continue;
        };
        // Only views whose every map row was seen in some reduce=false response.
        let Some(seen) = rows.get(&id) else {
            continue;
        };
        if seen.rows.len() as u64 != seen.total {
            continue;
        }
        let index = indexes
            .entry(id)
            .or_insert_with(|| Index::new(seen.rows.clone()));
        let got = Value::from(index.reduce(reducer, &q));
        assert!(
            same_json(&got, &expected),
            "{label}\n got {got}\nwant {expected}"
        );
        checked += 1;
        reducers_seen.insert(format!("{reducer:?}"));
    }
    println!("checked {checked} reduce responses: {reducers_seen:?}");
    assert!(checked > 150, "checked {checked} reduce responses");
    assert_eq!(reducers_seen.len(), 8, "{reducers_seen:?}");
}
