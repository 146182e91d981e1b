//! Map functions from the recorded CouchDB 3.5 exchanges (golden families B)
//! give the rows CouchDB answered: the documents of each scenario are mapped
//! with the scenario's design document and compared with a full view listing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use settee::js::{JsConfig, JsPool, MapGroup};

fn golden_lines(scenario: &str) -> Vec<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden/public/golden.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is needed (shared/ beside the repository): {e}",
            path.display()
        )
    });
    let tag = format!("\"scenario\":\"{scenario}\"");
    text.lines()
        .filter(|l| l.contains(&tag))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The documents written before step `until`, shaped as the store hands
/// them to map functions: `_id`, `_rev`, the body, then `_conflicts`. In
/// these scenarios a later replicated (`new_edits=false`) write of an id is a
/// higher-generation branch that wins, and the earlier revision becomes its
/// conflict.
fn documents(lines: &[Value], until: u64) -> Vec<Value> {
    let mut docs: BTreeMap<String, (Value, String, Vec<String>)> = BTreeMap::new();
    for line in lines.iter().filter(|l| l["i"].as_u64().unwrap() < until) {
        let req = &line["req"];
        if req["method"] != "POST" || !req["path"].as_str().unwrap().ends_with("/_bulk_docs") {
            continue;
        }
        let replicated = req["body"]["new_edits"] == false;
        let results = line["res"]["body"].as_array().cloned().unwrap_or_default();
        for doc in req["body"]["docs"].as_array().unwrap() {
            let id = doc["_id"].as_str().unwrap().to_string();
            let rev = match doc.get("_rev") {
                Some(r) => r.as_str().unwrap().to_string(),
                None => match results
                    .iter()
                    .find(|r| r["id"] == id.as_str() && r["rev"].is_string())
                {
                    Some(r) => r["rev"].as_str().unwrap().to_string(),
                    None => continue,
                },
            };
            let mut conflicts = Vec::new();
            if let Some((_, old_rev, _)) = docs.get(&id) {
                if replicated {
                    conflicts.push(old_rev.clone());
                }
            }
            docs.insert(id, (doc.clone(), rev, conflicts));
        }
    }
    docs.into_values()
        .map(|(body, rev, conflicts)| {
            let mut doc = serde_json::Map::new();
            doc.insert("_id".into(), body["_id"].clone());
            doc.insert("_rev".into(), json!(rev));
            for (k, v) in body.as_object().unwrap() {
                if !matches!(k.as_str(), "_id" | "_rev" | "_revisions") {
                    doc.insert(k.clone(), v.clone());
                }
            }
            if !conflicts.is_empty() {
                doc.insert("_conflicts".into(), json!(conflicts));
            }
            Value::Object(doc)
        })
        .collect()
}

fn design_doc(lines: &[Value], id: &str) -> Value {
    let path = format!("/{{db}}/{id}");
    lines
        .iter()
        .find(|l| l["req"]["method"] == "PUT" && l["req"]["path"] == path.as_str())
        .map(|l| l["req"]["body"].clone())
        .unwrap_or_else(|| panic!("no {id}"))
}

fn check_view(pool: &JsPool, scenario: &str, ddoc_id: &str, view: &str, step: u64) {
    let lines = golden_lines(scenario);
    let ddoc = design_doc(&lines, ddoc_id);
    let group = Arc::new(MapGroup {
        id: format!("{scenario}/{ddoc_id}/{view}"),
        ddoc_id: ddoc_id.to_string(),
        lib: ddoc["views"].get("lib").cloned(),
        maps: vec![ddoc["views"][view]["map"].as_str().unwrap().to_string()],
    });
    let docs: Vec<Value> = documents(&lines, step)
        .into_iter()
        .filter(|d| !d["_id"].as_str().unwrap().starts_with("_design/"))
        .collect();
    let out = pool.map(&group, docs.clone()).unwrap();
    let mut ours: Vec<String> = Vec::new();
    for (doc, result) in docs.iter().zip(out) {
        if let Ok(rows) = &result[0] {
            for (k, v) in rows {
                ours.push(json!([doc["_id"], k, v]).to_string());
            }
        }
    }
    let answer = &lines.iter().find(|l| l["i"] == step).unwrap()["res"]["body"];
    let mut theirs: Vec<String> = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["id"], r["key"], r["value"]]).to_string())
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "{scenario} {ddoc_id} {view}");
}

#[test]
fn golden_map_views() {
    let pool = JsPool::new(JsConfig {
        workers: 2,
        ..JsConfig::default()
    })
    .unwrap();
    for (scenario, ddoc, view, step) in [
        ("B_mr_helpers_1", "_design/helpers", "helpers", 61),
        ("B_mr_helpers_2", "_design/helpers", "helpers", 58),
        ("B_mr_helpers_2", "_design/helpers", "uses_lib2", 46),
        ("B_mr_emits_1", "_design/emits", "multi", 11),
        ("B_mr_emits_1", "_design/emits", "novalue", 44),
        ("B_mr_emits_1", "_design/thr", "throws", 93),
        ("B_mr_emits_2", "_design/emits", "multi", 14),
        ("B_mr_emits_2", "_design/thr", "throws", 105),
        ("B_mr_js_1", "_design/js", "js_max", 20),
        ("B_mr_emits_1", "_design/emits", "weird", 80),
        ("B_mr_emits_2", "_design/emits", "weird", 88),
        ("B_mr_emits_2", "_design/emits", "novalue", 51),
    ] {
        check_view(&pool, scenario, ddoc, view, step);
    }
}

/// JavaScript reduces (golden B_mr_js_2): reducing the rows in chunks and
/// rereducing the chunks gives the whole-view reduction CouchDB answered.
#[test]
fn golden_js_reduce_with_rereduce() {
    let pool = JsPool::new(JsConfig {
        workers: 2,
        ..JsConfig::default()
    })
    .unwrap();
    let lines = golden_lines("B_mr_js_2");
    let ddoc = design_doc(&lines, "_design/js");
    for (view, step) in [("js_max", 30), ("js_distinct", 35)] {
        let group = Arc::new(MapGroup {
            id: format!("js2/{view}"),
            ddoc_id: "_design/js".into(),
            lib: None,
            maps: vec![ddoc["views"][view]["map"].as_str().unwrap().to_string()],
        });
        let docs = documents(&lines, step);
        let out = pool.map(&group, docs.clone()).unwrap();
        let mut rows = Vec::new();
        for (doc, result) in docs.iter().zip(out) {
            for (k, v) in result[0].as_ref().unwrap() {
                rows.push((
                    k.clone(),
                    doc["_id"].as_str().unwrap().to_string(),
                    v.clone(),
                ));
            }
        }
        let reduce = vec![ddoc["views"][view]["reduce"].as_str().unwrap().to_string()];
        let mut partials = Vec::new();
        for chunk in rows.chunks(7) {
            partials.extend(pool.reduce(&reduce, chunk).unwrap());
        }
        let total = pool.rereduce(&reduce, vec![partials]).unwrap();
        let answer = &lines.iter().find(|l| l["i"] == step).unwrap()["res"]["body"];
        assert_eq!(total[0], answer["rows"][0]["value"], "{view}");
    }
}
