//! The `settee` binary: JSON on stdout, errors on stderr with a non-zero exit.
//! Also `deploy`, `query`, `reindex` (interrupted and resumed) and `bench`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use settee::bench_data::OrdersGenerator;
use settee::{BulkOptions, Database};

fn settee(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_settee"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
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

#[test]
fn import_reports_bad_lines_and_keeps_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let input =
        "{\"_id\":\"a\",\"v\":1}\n{not json\n\n{\"_id\":\"_bad\"}\n{\"_id\":\"b\",\"v\":2}\n[1]\n";
    let out = settee(&["import", db, "-"], Some(input));
    assert_eq!(out.status.code(), Some(1));
    let summary = json_out(&out);
    assert_eq!(
        (summary["imported"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(3))
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2: bad_request: invalid JSON"), "{err}");
    assert!(err.contains("line 4: illegal_docid (_bad)"), "{err}");
    assert!(err.contains("line 6: bad_request"), "{err}");

    let out = settee(&["get", db, "b"], None);
    assert!(out.status.success());
    assert_eq!(json_out(&out)["v"], 2);
    let out = settee(&["get", db, "nope"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().trim(),
        "settee: not_found: missing"
    );
}

#[test]
fn put_changes_info_compact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let out = settee(&["put", db, "-"], Some(r#"{"_id": "x", "n": 1}"#));
    let put = json_out(&out);
    assert_eq!(
        (put["ok"].as_bool(), put["id"].as_str()),
        (Some(true), Some("x"))
    );
    let again = settee(&["put", db, "-"], Some(r#"{"_id": "x", "n": 2}"#));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8(again.stderr)
        .unwrap()
        .contains("conflict"));
    let body = format!(
        r#"[{{"_id": "x", "_rev": "{}", "n": 2}}, {{"_id": "y"}}]"#,
        put["rev"].as_str().unwrap()
    );
    let bulk = json_out(&settee(&["put", db, "-"], Some(&body)));
    assert!(bulk[0]["rev"].as_str().unwrap().starts_with("2-"));

    let changes = json_out(&settee(
        &["changes", db, "--since", "1", "--limit", "1"],
        None,
    ));
    assert_eq!(changes["results"][0]["id"], "x");
    assert_eq!(changes["last_seq"], 2);
    let info = json_out(&settee(&["info", db], None));
    assert_eq!(
        (info["doc_count"].as_u64(), info["update_seq"].as_u64()),
        (Some(2), Some(3))
    );
    let compact = json_out(&settee(&["compact", db], None));
    assert_eq!(compact["ok"], true);
    assert_eq!(json_out(&settee(&["get", db, "x"], None))["n"], 2);

    let missing = settee(&["info", dir.path().join("none").to_str().unwrap()], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8(missing.stderr)
        .unwrap()
        .contains("Database does not exist."));
}

#[test]
fn changes_follow_streams_new_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    settee(&["put", db, "-"], Some(r#"{"_id": "first"}"#));
    let follower = Command::new(env!("CARGO_BIN_EXE_settee"))
        .args(["changes", db, "--follow", "--since", "1", "--limit", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written by other processes while the follower waits.
    std::thread::sleep(std::time::Duration::from_millis(300));
    settee(&["put", db, "-"], Some(r#"{"_id": "second"}"#));
    settee(&["put", db, "-"], Some(r#"{"_id": "third"}"#));
    let out = follower.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["seq"].as_u64(), lines[0]["id"].as_str()),
        (Some(2), Some("second"))
    );
    assert_eq!(lines[1]["id"], "third");
}

#[test]
fn demo_runs_on_a_small_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders");
    let out = settee(
        &["demo", "--docs", "2500", "--dir", db.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_out(&out);
    assert_eq!(report["info"]["doc_count"], 2500);
    assert_eq!(report["sample_docs"][0]["_id"], "doc00000000");
    assert_eq!(
        report["last_changes"]["results"].as_array().unwrap().len(),
        5
    );
    assert_eq!(report["last_changes"]["last_seq"], 2500);
    let builds = report["index_builds"].as_array().unwrap();
    assert_eq!(builds.len(), 3);
    assert!(builds
        .iter()
        .all(|b| b["indexed_seq"].as_u64() >= Some(2500)));
    assert_eq!(report["queries"].as_array().unwrap().len(), 6);
    assert_eq!(report["refused_write"]["error"], "forbidden");
    let before = report["update_visible"]["before"]["rows"][0]["value"].as_i64();
    let after = report["update_visible"]["after"]["rows"][0]["value"].as_i64();
    assert_eq!(after, before.map(|b| b + 1000));
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

    let out = settee(&["deploy", db, app.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json_out(&out);
    let sales = &report["design_docs"][0];
    assert_eq!(sales["id"], "_design/sales");
    assert_eq!(sales["status"], "new");
    assert_eq!(sales["rebuilds"], json!(["by_customer"]));
    assert!(sales["rev"].as_str().unwrap().starts_with("1-"));

    // The couchapp became the document CouchDB tools build from it, and works.
    let doc = json_out(&settee(&["get", db, "_design/sales"], None));
    assert_eq!(doc["views"]["by_customer"]["reduce"], "_sum");
    assert_eq!(
        doc["views"]["lib"]["money"],
        "exports.cents = function(x) { return x * 100; };"
    );
    let total = json_out(&settee(&["query", db, "sales/by_customer"], None));
    let expected: u64 = OrdersGenerator::new(42)
        .take(50)
        .filter(|d| d["type"] == "order")
        .map(|d| d["total"].as_u64().unwrap() * 100)
        .sum();
    assert_eq!(total["rows"][0]["value"], json!(expected));

    // The same files again: unchanged, nothing saved. Two documents with
    // identical views share one index: the second rebuilds nothing.
    let again = json_out(&settee(&["deploy", db, app.to_str().unwrap()], None));
    assert_eq!(again["design_docs"][0]["status"], "unchanged");
    assert!(again["design_docs"][0].get("rev").is_none());
    let both = json_out(&settee(&["deploy", db, json_file.to_str().unwrap()], None));
    assert_eq!(both["design_docs"][0]["rebuilds"], json!(["v"]));
    assert_eq!(both["design_docs"][1]["status"], "new");

    // A change to the VDU only: changed, but no index rebuilds.
    write(
        &app.join("validate_doc_update.js"),
        "function(newDoc) { if (!newDoc.type) throw({forbidden: 'type required'}); }",
    );
    let changed = json_out(&settee(&["deploy", db, app.to_str().unwrap()], None));
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
    let out = settee(&["deploy", db, folder.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("_design/b is invalid"), "{err}");
    assert!(err.contains("compilation_error"), "{err}");
    assert_eq!(
        settee(&["get", db, "_design/a"], None).status.code(),
        Some(1)
    );

    write(
        &folder.join("b.json"),
        r#"{"_id": "_design/b", "views": {"v": {"map": "function(doc) { emit(doc._id, 1); }", "reduce": "_nope"}}}"#,
    );
    let out = settee(&["deploy", db, folder.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid_design_doc"),
        "{}",
        stderr(&out)
    );

    write(&folder.join("b.json"), r#"{"_id": "b", "views": {}}"#);
    let out = settee(&["deploy", db, folder.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("_design/"), "{}", stderr(&out));

    write(&folder.join("b.json"), "{not json");
    let out = settee(&["deploy", db, folder.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid JSON"), "{}", stderr(&out));
    assert_eq!(
        settee(&["get", db, "_design/a"], None).status.code(),
        Some(1)
    );
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
    assert!(settee(&["deploy", db, ddoc.to_str().unwrap()], None)
        .status
        .success());

    let level1 = json_out(&settee(
        &["query", db, "regions/by", "--group-level", "1"],
        None,
    ));
    let rows = level1["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{level1}");
    assert_eq!(rows[0]["key"], json!(["apac"]));
    let sum: u64 = rows.iter().map(|r| r["value"].as_u64().unwrap()).sum();
    let expected: u64 = OrdersGenerator::new(42)
        .take(200)
        .map(|d| d["total"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, expected);

    let page = json_out(&settee(
        &[
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
        ],
        None,
    ));
    assert_eq!(page["total_rows"], 200);
    assert_eq!(page["rows"].as_array().unwrap().len(), 2);
    assert!(page["rows"][0]["key"][0].as_str().unwrap() < "east");

    // --params is a POST body; flags override it.
    let keys = json_out(&settee(
        &[
            "query",
            db,
            "regions/by",
            "--params",
            r#"{"keys": [["north", "paid"], ["west", "new"]], "group": true, "limit": 1}"#,
            "--limit",
            "2",
        ],
        None,
    ));
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
        let out = settee(&all, None);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        assert!(stderr(&out).contains(message), "{all:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = settee(&["query", db, "regions/nope"], None);
    assert!(
        stderr(&out).contains("missing_named_view"),
        "{}",
        stderr(&out)
    );
    let out = settee(&["query", db, "regions"], None);
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
    assert!(settee(&["deploy", db, ddocs.to_str().unwrap()], None)
        .status
        .success());
    let out = settee(&["reindex", db, "--workers", "2"], None);
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
    let again = json_out(&settee(&["reindex", db, "--ddoc", "simple"], None));
    assert_eq!(again["indexes"][0]["docs"], 0);
    let scratch = json_out(&settee(
        &["reindex", db, "--ddoc", "simple", "--from-scratch"],
        None,
    ));
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
    assert!(settee(&["deploy", db, ddoc.to_str().unwrap()], None)
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

    let second = json_out(&settee(&["reindex", db], None));
    let second_docs = second["indexes"][0]["docs"].as_u64().unwrap();
    assert_eq!(
        first_docs + second_docs,
        docs as u64,
        "{first_summary} then {second}"
    );
    assert_eq!(second["indexes"][0]["rows"], json!(docs * 3));

    let resumed = json_out(&settee(
        &["query", db, "heavy/v", "--group-level", "1"],
        None,
    ));
    let scratch = json_out(&settee(&["reindex", db, "--from-scratch"], None));
    assert_eq!(scratch["indexes"][0]["docs"], json!(docs));
    let clean = json_out(&settee(
        &["query", db, "heavy/v", "--group-level", "1"],
        None,
    ));
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
    let out = settee(&["bench", "--docs", "400", "--runs", "3", "--json"], None);
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
            "single_key_first",
            "single_key_middle",
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

#[test]
fn view_commands_refuse_bad_input_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let missing = missing.to_str().unwrap();
    let ddoc = dir.path().join("d.json");
    std::fs::write(
        &ddoc,
        r#"{"_id": "_design/d", "views": {"v": {"map": "function(doc) { emit(1, 1); }"}}}"#,
    )
    .unwrap();
    let ddoc = ddoc.to_str().unwrap();
    for args in [
        vec!["deploy", missing, ddoc],
        vec!["query", missing, "d/v"],
        vec!["reindex", missing],
    ] {
        let out = settee(&args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            stderr(&out).contains("Database does not exist."),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    let db_path = dir.path().join("db");
    orders_db(&db_path, 3);
    let db = db_path.to_str().unwrap();
    // A folder with no design document in it, and a couchapp whose JSON member is broken.
    let empty = dir.path().join("empty");
    write(&empty.join("notes.txt"), "nothing here");
    let out = settee(&["deploy", db, empty.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no design documents"),
        "{}",
        stderr(&out)
    );
    let app = dir.path().join("app");
    write(&app.join("_id"), "_design/app");
    write(&app.join("options.json"), "{broken");
    let out = settee(&["deploy", db, app.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("options.json: invalid JSON"),
        "{}",
        stderr(&out)
    );
    let out = settee(
        &["deploy", db, dir.path().join("nope.json").to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.json"), "{}", stderr(&out));

    assert!(settee(&["deploy", db, ddoc], None).status.success());
    let out = settee(&["query", db, "d/v", "--params", "{not json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--params: invalid JSON"),
        "{}",
        stderr(&out)
    );
    let out = settee(&["reindex", db, "--ddoc", "nope"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    let out = settee(
        &[
            "bench",
            "--file",
            dir.path().join("none.jsonl").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("none.jsonl"), "{}", stderr(&out));
}

#[test]
fn import_and_put_run_validate_doc_update() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let vdu = r#"{"_id": "_design/rules", "validate_doc_update":
        "function(newDoc) { if (newDoc.total < 0) throw({forbidden: 'negative total'}); }"}"#;
    assert!(settee(&["put", db, "-"], Some(vdu)).status.success());
    let input =
        "{\"_id\":\"a\",\"total\":1}\n{\"_id\":\"b\",\"total\":-1}\n{\"_id\":\"c\",\"total\":2}\n";
    let out = settee(&["import", db, "-"], Some(input));
    assert_eq!(out.status.code(), Some(1));
    let summary = json_out(&out);
    assert_eq!(
        (summary["imported"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 2: forbidden (b): negative total"),
        "{err}"
    );
    let out = settee(&["put", db, "-"], Some(r#"{"_id": "d", "total": -5}"#));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("forbidden: negative total"),
        "put is validated too"
    );
    // A design document that does not compile is refused on save.
    let out = settee(
        &["put", db, "-"],
        Some(r#"{"_id": "_design/bad", "views": {"v": {"map": "function(doc) {"}}}"#),
    );
    assert_eq!(out.status.code(), Some(1));
}
