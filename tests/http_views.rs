//! Design documents over real HTTP: `_view` (GET/POST, map and reduce),
//! `_view/{v}/queries`, `_info`, `_view_cleanup`, and design doc GET/DELETE.

mod http_common;

use http_common::Server;
use serde_json::{json, Value};

fn setup() -> Server {
    let s = Server::start();
    assert_eq!(s.admin("PUT", "/db", None).status, 201);
    let docs: Vec<Value> = (1..=5)
        .map(|n| json!({"_id": format!("d{n}"), "n": n, "type": if n % 2 == 0 { "even" } else { "odd" }}))
        .collect();
    assert_eq!(
        s.admin("POST", "/db/_bulk_docs", Some(json!({ "docs": docs })))
            .status,
        201
    );
    let ddoc = json!({
        "_id": "_design/d",
        "views": {
            "by_n": {"map": "function(doc) { if (doc.n) emit(doc.n, doc.type); }"},
            "by_type": {"map": "function(doc) { if (doc.type) emit(doc.type, doc.n); }", "reduce": "_sum"},
            "count": {"map": "function(doc) { emit(doc.type, 1); }", "reduce": "_count"}
        }
    });
    assert_eq!(s.admin("PUT", "/db/_design/d", Some(ddoc)).status, 201);
    s
}

fn keys(body: &Value) -> Vec<Value> {
    body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {body}"))
        .iter()
        .map(|r| r["key"].clone())
        .collect()
}

#[test]
fn map_views_over_get_and_post() {
    let s = setup();
    let all = s.admin("GET", "/db/_design/d/_view/by_n", None);
    assert_eq!(all.status, 200, "{}", all.text);
    let all = all.json();
    assert_eq!(
        (all["total_rows"].clone(), all["offset"].clone()),
        (json!(5), json!(0))
    );
    assert_eq!(
        keys(&all),
        [json!(1), json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(
        all["rows"][0],
        json!({"id": "d1", "key": 1, "value": "odd"})
    );
    let page = s
        .admin(
            "GET",
            "/db/_design/d/_view/by_n?startkey=2&endkey=4&descending=false&limit=2&skip=1",
            None,
        )
        .json();
    assert_eq!(keys(&page), [json!(3), json!(4)]);
    assert_eq!(page["offset"], 2);
    let desc = s
        .admin(
            "GET",
            "/db/_design/d/_view/by_n?descending=true&limit=1&include_docs=true",
            None,
        )
        .json();
    assert_eq!(keys(&desc), [json!(5)]);
    assert_eq!(desc["rows"][0]["doc"]["_id"], "d5");
    let posted = s
        .admin(
            "POST",
            "/db/_design/d/_view/by_n",
            Some(json!({"keys": [4, 1, 9]})),
        )
        .json();
    assert_eq!(keys(&posted), [json!(4), json!(1)]);
    let seq = s
        .admin(
            "GET",
            "/db/_design/d/_view/by_n?update_seq=true&limit=0",
            None,
        )
        .json();
    assert!(seq["update_seq"].is_string(), "{seq}");
    assert_eq!(seq["rows"], json!([]));
}

#[test]
fn reduce_views_and_grouping() {
    let s = setup();
    let total = s.admin("GET", "/db/_design/d/_view/by_type", None).json();
    assert_eq!(total, json!({"rows": [{"key": null, "value": 15}]}));
    let grouped = s
        .admin("GET", "/db/_design/d/_view/by_type?group=true", None)
        .json();
    assert_eq!(
        grouped["rows"],
        json!([{"key": "even", "value": 6}, {"key": "odd", "value": 9}])
    );
    let one = s
        .admin(
            "GET",
            "/db/_design/d/_view/count?key=%22odd%22&group=true",
            None,
        )
        .json();
    assert_eq!(one["rows"], json!([{"key": "odd", "value": 3}]));
    let unreduced = s
        .admin(
            "GET",
            "/db/_design/d/_view/by_type?reduce=false&limit=1",
            None,
        )
        .json();
    assert_eq!(
        unreduced["rows"][0],
        json!({"id": "d2", "key": "even", "value": 2})
    );
    assert_eq!(unreduced["total_rows"], 5);
}

#[test]
fn view_query_errors() {
    let s = setup();
    s.admin("GET", "/db/_design/d/_view/by_n?limit=abc", None)
        .assert_error(
            400,
            "query_parse_error",
            "Invalid value for integer: \"abc\"",
        );
    s.admin("GET", "/db/_design/d/_view/by_n?group=true", None)
        .assert_error(
            400,
            "query_parse_error",
            "Invalid use of grouping on a map view.",
        );
    s.admin("GET", "/db/_design/d/_view/by_type?include_docs=true", None)
        .assert_error(
            400,
            "query_parse_error",
            "`include_docs` is invalid for reduce",
        );
    s.admin("GET", "/db/_design/d/_view/nosuch", None)
        .assert_error(404, "not_found", "missing_named_view");
    s.admin("GET", "/db/_design/nope/_view/v", None)
        .assert_error(404, "not_found", "missing");
    s.admin("PUT", "/db/_design/d/_view/by_n", Some(json!({})))
        .assert_error(405, "method_not_allowed", "Only GET,POST,HEAD allowed");
    s.admin("POST", "/db/_design/d/_view/by_n", Some(json!({"keys": 1})))
        .assert_error(400, "bad_request", "`keys` member must be an array.");
    // The other cases of ../shared/vectors/view_query_errors.json that need a server.
    s.admin("GET", "/db/_design/d/_view/by_n?startkey=2&endkey=1", None)
        .assert_error(
            400,
            "query_parse_error",
            "No rows can match your key range, reverse your start_key and end_key or set descending=true",
        );
    let not_json = s.admin("GET", "/db/_design/d/_view/by_n?startkey=foo", None);
    assert_eq!(not_json.status, 400, "{}", not_json.text);
    assert_eq!(not_json.json()["error"], "bad_request");
    s.admin("POST", "/db/_design/d/_view/by_n", Some(json!([])))
        .assert_error(400, "bad_request", "Request body must be a JSON object");
    s.admin(
        "POST",
        "/db/_temp_view",
        Some(json!({"map": "function(doc) {}"})),
    )
    .assert_error(410, "gone", "Temporary views are not supported in CouchDB");
    s.admin("GET", "/db/_design/d/_view/by_n?limit=268435457", None)
        .assert_error(
            400,
            "query_parse_error",
            "Limit is too large, must not exceed 268435456",
        );
}

#[test]
fn query_limit_caps_and_refuses_limits() {
    let s = http_common::Server::start_configured(Default::default(), |settee| {
        settee.set_query_limit(3)
    });
    assert_eq!(s.admin("PUT", "/db", None).status, 201);
    let docs: Vec<Value> = (1..=5).map(|n| json!({"n": n})).collect();
    s.admin("POST", "/db/_bulk_docs", Some(json!({ "docs": docs })));
    let ddoc = json!({"views": {"by_n": {"map": "function(doc) { emit(doc.n, null); }"}}});
    assert_eq!(s.admin("PUT", "/db/_design/d", Some(ddoc)).status, 201);
    let capped = s.admin("GET", "/db/_design/d/_view/by_n", None).json();
    assert_eq!(
        (keys(&capped).len(), capped["total_rows"].clone()),
        (3, json!(5))
    );
    assert_eq!(
        keys(
            &s.admin("GET", "/db/_design/d/_view/by_n?limit=2", None)
                .json()
        )
        .len(),
        2
    );
    s.admin("GET", "/db/_design/d/_view/by_n?limit=4", None)
        .assert_error(
            400,
            "query_parse_error",
            "Limit is too large, must not exceed 3",
        );
}

#[test]
fn multiple_queries() {
    let s = setup();
    let res = s.admin(
        "POST",
        "/db/_design/d/_view/by_n/queries",
        Some(json!({"queries": [{"keys": [2, 3]}, {"startkey": 4}, {"limit": 1, "descending": true}]})),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let results = res.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    assert_eq!(keys(&results[0]), [json!(2), json!(3)]);
    assert_eq!(keys(&results[1]), [json!(4), json!(5)]);
    assert_eq!(keys(&results[2]), [json!(5)]);
    assert_eq!(results[1]["total_rows"], 5);
    let reduced = s
        .admin(
            "POST",
            "/db/_design/d/_view/by_type/queries",
            Some(json!({"queries": [{}, {"group": true, "keys": ["odd"]}]})),
        )
        .json();
    assert_eq!(
        reduced["results"][0]["rows"],
        json!([{"key": null, "value": 15}])
    );
    assert_eq!(
        reduced["results"][1]["rows"],
        json!([{"key": "odd", "value": 9}])
    );
    s.admin(
        "POST",
        "/db/_design/d/_view/by_n/queries",
        Some(json!({"queries": 1})),
    )
    .assert_error(400, "bad_request", "`queries` member must be an array.");
    s.admin("GET", "/db/_design/d/_view/by_n/queries", None)
        .assert_error(405, "method_not_allowed", "Only POST allowed");
}

/// The fields of CouchDB 3.5's `GET /{db}/_design/{d}/_info`
/// (`fabric_group_info`), with the index's own update_seq.
#[test]
fn design_info_has_couchdbs_shape() {
    let s = setup();
    let before = s.admin("GET", "/db/_design/d/_info", None);
    assert_eq!(before.status, 200, "{}", before.text);
    let before = before.json();
    assert_eq!(before["name"], "d");
    let vi = &before["view_index"];
    let mut fields: Vec<&str> = vi.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "collator_versions",
            "compact_running",
            "language",
            "purge_seq",
            "signature",
            "sizes",
            "update_seq",
            "updater_running",
            "updates_pending",
            "waiting_clients",
            "waiting_commit"
        ]
    );
    assert_eq!(vi["language"], "javascript");
    assert_eq!(vi["signature"].as_str().unwrap().len(), 32);
    assert_eq!(vi["update_seq"], 0, "not built yet: {vi}");
    assert_eq!(
        vi["updates_pending"],
        json!({"minimum": 6, "preferred": 6, "total": 6})
    );
    for k in ["file", "active", "external"] {
        assert!(vi["sizes"][k].is_u64(), "{k}: {vi}");
    }
    assert!(vi["collator_versions"]
        .as_array()
        .is_some_and(|v| v.len() == 1));
    assert_eq!(
        s.admin("GET", "/db/_design/d/_view/by_n?limit=0", None)
            .status,
        200
    );
    let after = s.admin("GET", "/db/_design/d/_info", None).json();
    assert_eq!(after["view_index"]["update_seq"], 6, "{after}");
    assert_eq!(after["view_index"]["updates_pending"]["total"], 0);
    assert_eq!(after["view_index"]["signature"], vi["signature"]);
    s.admin("GET", "/db/_design/nope/_info", None)
        .assert_error(404, "not_found", "missing");
    s.admin("POST", "/db/_design/d/_info", Some(json!({})))
        .assert_error(405, "method_not_allowed", "Only GET allowed");
}

#[test]
fn design_doc_get_delete_and_view_cleanup() {
    let s = setup();
    let ddoc = s.admin("GET", "/db/_design/d", None).json();
    assert_eq!(ddoc["_id"], "_design/d");
    assert!(ddoc["views"]["by_n"]["map"].is_string());
    let rev = ddoc["_rev"].as_str().unwrap().to_owned();
    assert_eq!(s.admin("GET", "/db/_design/d/_view/by_n", None).status, 200);
    s.admin("DELETE", "/db/_design/d", None).assert_error(
        409,
        "conflict",
        "Document update conflict.",
    );
    let del = s.admin("DELETE", &format!("/db/_design/d?rev={rev}"), None);
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(del.json()["id"], "_design/d");
    s.admin("GET", "/db/_design/d", None)
        .assert_error(404, "not_found", "deleted");
    s.admin("GET", "/db/_design/d/_view/by_n", None)
        .assert_error(404, "not_found", "deleted");
    // The index built for the deleted design doc is removed by cleanup.
    let cleanup = s.admin("POST", "/db/_view_cleanup", Some(json!({})));
    assert_eq!(cleanup.status, 202, "{}", cleanup.text);
    assert_eq!(cleanup.json(), json!({"ok": true}));
    s.admin("GET", "/db/_view_cleanup", None).assert_error(
        405,
        "method_not_allowed",
        "Only POST allowed",
    );
    // New databases are admin-only (CouchDB 3's `default_security`); on a
    // public one, a member still needs to be a db admin.
    s.as_user(None, "POST", "/db/_view_cleanup", Some(json!({})))
        .assert_error(
            401,
            "unauthorized",
            "You are not authorized to access this db.",
        );
    assert_eq!(s.admin("PUT", "/db/_security", Some(json!({}))).status, 200);
    s.as_user(None, "POST", "/db/_view_cleanup", Some(json!({})))
        .assert_error(401, "unauthorized", "You are not a db or server admin.");
}

/// A long view build runs off the async threads: while one request waits for
/// it, unrelated requests (a document, the database, the server) are answered.
#[test]
fn a_slow_view_build_stalls_no_unrelated_request() {
    let s = Server::start();
    assert_eq!(s.admin("PUT", "/slow", None).status, 201);
    let docs: Vec<Value> = (0..600)
        .map(|n| json!({"_id": format!("d{n:04}"), "n": n}))
        .collect();
    assert_eq!(
        s.admin("POST", "/slow/_bulk_docs", Some(json!({ "docs": docs })))
            .status,
        201
    );
    let ddoc = json!({"_id": "_design/slow", "views": {"v": {
        "map": "function(doc) { var x = 0; for (var i = 0; i < 200000; i++) { x += i % 7; } emit(doc.n, x); }"}}});
    assert_eq!(s.admin("PUT", "/slow/_design/slow", Some(ddoc)).status, 201);

    let client = *s;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let view_done = done.clone();
    let view = std::thread::spawn(move || {
        let res = client.admin("GET", "/slow/_design/slow/_view/v?limit=1", None);
        view_done.store(true, std::sync::atomic::Ordering::SeqCst);
        res
    });
    // Let the build start, then ask for unrelated things while it runs.
    std::thread::sleep(std::time::Duration::from_millis(100));
    for path in [
        "/slow/d0001",
        "/slow",
        "/",
        "/_all_dbs",
        "/slow/_all_docs?limit=2",
    ] {
        let res = s.admin("GET", path, None);
        assert_eq!(res.status, 200, "{path}: {}", res.text);
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "{path} was answered only after the view build finished"
        );
    }
    let res = view.join().unwrap();
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["total_rows"], 600);
}
