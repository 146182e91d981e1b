//! `settee deploy`, `query` and `reindex`: design documents from files,
//! CouchDB's query parameters and responses, and a re-index job that can be
//! interrupted and resumed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use settee::bench_data::OrdersGenerator;
use settee::{BulkOptions, Database};

fn settee(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_settee"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A database of `n` generated orders.
fn orders_db(path: &Path, n: usize) {
    let db = Database::create(path).unwrap();
    let docs: Vec<Value> = OrdersGenerator::new(42).take(n).collect();
    for chunk in docs.chunks(5_000) {
        db.bulk_docs(chunk.to_vec(), BulkOptions::default())
            .unwrap();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A couchapp folder: `_id`, a view with `map.js`/`reduce.js`, a library and a VDU.
fn couchapp(dir: &Path) {
    write(&dir.join("_id"), "_design/sales\n");
    write(
        &dir.join("views/by_customer/map.js"),
        "function(doc) {\n  if (doc.type === 'order') emit(doc.customer, require('views/lib/money').cents(doc.total));\n}\n",
    );
    write(&dir.join("views/by_customer/reduce.js"), "_sum\n");
    write(
        &dir.join("views/lib/money.js"),
        "exports.cents = function(x) { return x * 100; };\n",
    );
    write(
        &dir.join("validate_doc_update.js"),
        "function(newDoc) { if (newDoc.type === 'order' && typeof newDoc.total !== 'number') throw({forbidden: 'total must be a number'}); }\n",
    );
}

#[test]
fn deploy_checks_everything_then_reports_new_changed_and_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    orders_db(&db_path, 50);
    let db = db_path.to_str().unwrap();
    let app = dir.path().join("app");
    couchapp(&app);
    let json_file = dir.path().join("heavy.json");
    write(
        &json_file,
        r#"[{"_id": "_design/heavy", "views": {"v": {"map": "function(doc) { emit([doc.region, doc.status], 1); }", "reduce": "_count"}}},
            {"_id": "_design/twin", "views": {"v": {"map": "function(doc) { emit([doc.region, doc.status], 1); }", "reduce": "_count"}}}]"#,
    );

    let out = settee(&["deploy", db, app.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json_out(&out);
    let sales = &report["design_docs"][0];
    assert_eq!(sales["id"], "_design/sales");
    assert_eq!(sales["status"], "new");
    assert_eq!(sales["rebuilds"], json!(["by_customer"]));
    assert!(sales["rev"].as_str().unwrap().starts_with("1-"));

    // The couchapp became the document CouchDB tools build from it, and works.
    let doc = json_out(&settee(&["get", db, "_design/sales"]));
    assert_eq!(doc["views"]["by_customer"]["reduce"], "_sum");
    assert_eq!(
        doc["views"]["lib"]["money"],
        "exports.cents = function(x) { return x * 100; };"
    );
    let total = json_out(&settee(&["query", db, "sales/by_customer"]));
    let expected: u64 = OrdersGenerator::new(42)
        .take(50)
        .filter(|d| d["type"] == "order")
        .map(|d| d["total"].as_u64().unwrap() * 100)
        .sum();
    assert_eq!(total["rows"][0]["value"], json!(expected));

    // The same files again: unchanged, nothing saved. Two documents with
    // identical views share one index: the second rebuilds nothing.
    let again = json_out(&settee(&["deploy", db, app.to_str().unwrap()]));
    assert_eq!(again["design_docs"][0]["status"], "unchanged");
    assert!(again["design_docs"][0].get("rev").is_none());
    let both = json_out(&settee(&["deploy", db, json_file.to_str().unwrap()]));
    assert_eq!(both["design_docs"][0]["rebuilds"], json!(["v"]));
    assert_eq!(both["design_docs"][1]["status"], "new");

    // A change to the VDU only: changed, but no index rebuilds.
    write(
        &app.join("validate_doc_update.js"),
        "function(newDoc) { if (!newDoc.type) throw({forbidden: 'type required'}); }",
    );
    let changed = json_out(&settee(&["deploy", db, app.to_str().unwrap()]));
    assert_eq!(changed["design_docs"][0]["status"], "changed");
    assert_eq!(changed["design_docs"][0]["rebuilds"], json!([]));
    assert!(changed["design_docs"][0]["rev"]
        .as_str()
        .unwrap()
        .starts_with("2-"));
}

#[test]
fn deploy_saves_nothing_when_any_document_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    orders_db(&db_path, 5);
    let db = db_path.to_str().unwrap();
    let folder = dir.path().join("ddocs");
    write(
        &folder.join("a.json"),
        r#"{"_id": "_design/a", "views": {"v": {"map": "function(doc) { emit(doc._id, 1); }"}}}"#,
    );
    write(
        &folder.join("b.json"),
        r#"{"_id": "_design/b", "views": {"v": {"map": "function(doc) { emit(doc._id, 1) "}}}"#,
    );
    let out = settee(&["deploy", db, folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("_design/b is invalid"), "{err}");
    assert!(err.contains("compilation_error"), "{err}");
    assert_eq!(settee(&["get", db, "_design/a"]).status.code(), Some(1));

    write(
        &folder.join("b.json"),
        r#"{"_id": "_design/b", "views": {"v": {"map": "function(doc) { emit(doc._id, 1); }", "reduce": "_nope"}}}"#,
    );
    let out = settee(&["deploy", db, folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid_design_doc"),
        "{}",
        stderr(&out)
    );

    write(&folder.join("b.json"), r#"{"_id": "b", "views": {}}"#);
    let out = settee(&["deploy", db, folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("_design/"), "{}", stderr(&out));

    write(&folder.join("b.json"), "{not json");
    let out = settee(&["deploy", db, folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid JSON"), "{}", stderr(&out));
    assert_eq!(settee(&["get", db, "_design/a"]).status.code(), Some(1));
}

#[test]
fn query_takes_couchdb_parameters_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    orders_db(&db_path, 200);
    let db = db_path.to_str().unwrap();
    let ddoc = dir.path().join("regions.json");
    write(
        &ddoc,
        r#"{"_id": "_design/regions", "views": {"by": {"map": "function(doc) { emit([doc.region, doc.status], doc.total); }", "reduce": "_sum"}}}"#,
    );
    assert!(settee(&["deploy", db, ddoc.to_str().unwrap()])
        .status
        .success());

    let level1 = json_out(&settee(&["query", db, "regions/by", "--group-level", "1"]));
    let rows = level1["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{level1}");
    assert_eq!(rows[0]["key"], json!(["apac"]));
    let sum: u64 = rows.iter().map(|r| r["value"].as_u64().unwrap()).sum();
    let expected: u64 = OrdersGenerator::new(42)
        .take(200)
        .map(|d| d["total"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, expected);

    let page = json_out(&settee(&[
        "query",
        db,
        "_design/regions/by",
        "--reduce",
        "false",
        "--startkey",
        r#"["east"]"#,
        "--limit",
        "2",
        "--descending",
    ]));
    assert_eq!(page["total_rows"], 200);
    assert_eq!(page["rows"].as_array().unwrap().len(), 2);
    assert!(page["rows"][0]["key"][0].as_str().unwrap() < "east");

    // --params is a POST body; flags override it.
    let keys = json_out(&settee(&[
        "query",
        db,
        "regions/by",
        "--params",
        r#"{"keys": [["north", "paid"], ["west", "new"]], "group": true, "limit": 1}"#,
        "--limit",
        "2",
    ]));
    assert_eq!(keys["rows"].as_array().unwrap().len(), 2);
    assert_eq!(keys["rows"][0]["key"], json!(["north", "paid"]));

    for (args, message) in [
        (vec!["--limit", "-1"], "Invalid value for positive integer"),
        (vec!["--reduce", "yes"], "Invalid boolean parameter"),
        (vec!["--key", "{bad"], "bad_request"),
        (
            vec!["--params", "[1]"],
            "Request body must be a JSON object",
        ),
        (
            vec!["--reduce", "false", "--group"],
            "Invalid use of grouping on a map view.",
        ),
    ] {
        let mut all = vec!["query", db, "regions/by"];
        all.extend(args);
        let out = settee(&all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        assert!(stderr(&out).contains(message), "{all:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = settee(&["query", db, "regions/nope"]);
    assert!(
        stderr(&out).contains("missing_named_view"),
        "{}",
        stderr(&out)
    );
    let out = settee(&["query", db, "regions"]);
    assert!(stderr(&out).contains("DDOC/VIEW"), "{}", stderr(&out));
}

#[test]
fn reindex_builds_every_group_and_rebuilds_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    orders_db(&db_path, 300);
    let db = db_path.to_str().unwrap();
    let ddocs = dir.path().join("ddocs.json");
    write(
        &ddocs,
        r#"[{"_id": "_design/simple", "views": {"v": {"map": "function(doc){ if(doc.type==='order') emit(doc.customer, doc.total); }", "reduce": "_sum"}}},
            {"_id": "_design/heavy", "views": {"v": {"map": "function(doc){ var n = doc.items ? doc.items.length : 0; emit([doc.type, doc.customer, doc.ts], doc.total); emit([doc.region, doc.status, doc.type], 1); emit([doc.customer, n], n); }", "reduce": "_sum"}}}]"#,
    );
    assert!(settee(&["deploy", db, ddocs.to_str().unwrap()])
        .status
        .success());
    let out = settee(&["reindex", db, "--workers", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = json_out(&out);
    let indexes = summary["indexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 2);
    let heavy = &indexes[0];
    assert_eq!(heavy["design_doc"], "_design/heavy");
    assert_eq!(heavy["rows"], 900);
    assert_eq!(heavy["docs"], 300);
    assert_eq!(heavy["complete"], true);
    assert!(heavy["index_bytes"].as_u64().unwrap() > 0);
    let orders = OrdersGenerator::new(42)
        .take(300)
        .filter(|d| d["type"] == "order")
        .count();
    assert_eq!(indexes[1]["rows"], json!(orders));

    // Up to date: nothing to do. From scratch: the whole database again.
    let again = json_out(&settee(&["reindex", db, "--ddoc", "simple"]));
    assert_eq!(again["indexes"][0]["docs"], 0);
    let scratch = json_out(&settee(&[
        "reindex",
        db,
        "--ddoc",
        "simple",
        "--from-scratch",
    ]));
    assert_eq!(scratch["indexes"][0]["docs"], 300);
    assert_eq!(scratch["indexes"][0]["rows"], json!(orders));
}

/// SIGINT stops the job after a committed batch; the next run resumes from
/// that checkpoint, and the index ends up equal to a clean build's.
#[test]
fn reindex_interrupted_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let docs = 30_000;
    orders_db(&db_path, docs);
    let db = db_path.to_str().unwrap();
    let ddoc = dir.path().join("heavy.json");
    write(
        &ddoc,
        r#"{"_id": "_design/heavy", "views": {"v": {"map": "function(doc){ var n = doc.items ? doc.items.length : 0; emit([doc.type, doc.customer, doc.ts], doc.total); emit([doc.region, doc.status, doc.type], 1); emit([doc.customer, n], n); }", "reduce": "_sum"}}}"#,
    );
    assert!(settee(&["deploy", db, ddoc.to_str().unwrap()])
        .status
        .success());

    // Batch by batch: this test watches the index grow to know that batches
    // have committed, and a bulk first build commits once, at its end (its
    // interruption is tested in tests/views_bulk.rs).
    let child = Command::new(env!("CARGO_BIN_EXE_settee"))
        .args(["reindex", db, "--workers", "1"])
        .env("SETTEE_BULK_MEMORY", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first batches have committed (the index directory
    // exists and has grown), or after a while on a slow machine.
    let views = db_path.join("views");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let grown = std::fs::read_dir(&views)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| dir_size(&e.path()))
            .unwrap_or(0);
        if grown > 2_000_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let first = child.wait_with_output().unwrap();
    let first_summary = json_out(&first);
    let first_docs = first_summary["indexes"][0]["docs"].as_u64().unwrap();
    if first.status.code() == Some(130) {
        assert_eq!(first_summary["indexes"][0]["complete"], false);
        assert!(first_docs < docs as u64, "{first_summary}");
        assert!(stderr(&first).contains("interrupted"), "{}", stderr(&first));
    } else {
        // The build finished before the signal arrived: nothing to resume.
        assert!(first.status.success(), "{}", stderr(&first));
    }

    let second = json_out(&settee(&["reindex", db]));
    let second_docs = second["indexes"][0]["docs"].as_u64().unwrap();
    assert_eq!(
        first_docs + second_docs,
        docs as u64,
        "{first_summary} then {second}"
    );
    assert_eq!(second["indexes"][0]["rows"], json!(docs * 3));

    let resumed = json_out(&settee(&["query", db, "heavy/v", "--group-level", "1"]));
    let scratch = json_out(&settee(&["reindex", db, "--from-scratch"]));
    assert_eq!(scratch["indexes"][0]["docs"], json!(docs));
    let clean = json_out(&settee(&["query", db, "heavy/v", "--group-level", "1"]));
    assert_eq!(resumed, clean);
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn bench_reports_builds_queries_and_checks_results() {
    let out = settee(&["bench", "--docs", "400", "--runs", "3", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.iter().filter(|&&b| b == b'\n').count(), 1);
    let report = json_out(&out);
    assert_eq!(report["docs"], 400);
    assert!(report["bulk_insert"]["docs_per_sec"].as_f64().unwrap() > 0.0);
    let orders: Vec<Value> = OrdersGenerator::new(42)
        .take(400)
        .filter(|d| d["type"] == "order")
        .collect();
    let simple = &report["views"][0];
    assert_eq!(simple["design_doc"], "_design/simple");
    assert_eq!(simple["rows"], json!(orders.len()));
    let sum: u64 = orders.iter().map(|d| d["total"].as_u64().unwrap()).sum();
    assert_eq!(simple["reduce_sum"], json!(sum));
    let heavy = &report["views"][1];
    assert_eq!(heavy["rows"], 1200);
    for view in [simple, heavy] {
        assert!(view["build_seconds"].as_f64().unwrap() > 0.0, "{view}");
        assert!(view["index_bytes"].as_u64().unwrap() > 0, "{view}");
        for q in [
            "single_key",
            "page_100_rows",
            "reduce_whole_view",
            "group_level_1",
            "update_visible",
        ] {
            let latency = &view["latency_ms"][q];
            assert!(
                latency["median"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap(),
                "{q}: {latency}"
            );
        }
    }
}
