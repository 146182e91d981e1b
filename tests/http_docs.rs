//! Server, database, document, bulk and error endpoints over real HTTP.

mod http_common;

use http_common::Server;
use serde_json::{json, Value};

#[test]
fn server_endpoints() {
    let s = Server::start();
    let welcome = s.as_user(None, "GET", "/", None).json();
    assert_eq!(welcome["couchdb"], "Welcome");
    assert_eq!(s.as_user(None, "GET", "/_up", None).json()["status"], "ok");
    assert_eq!(
        s.as_user(None, "GET", "/_uuids?count=3", None).json()["uuids"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    s.as_user(None, "GET", "/_all_dbs", None).assert_error(
        401,
        "unauthorized",
        "You are not a server admin.",
    );
    assert_eq!(s.admin("GET", "/_all_dbs", None).json(), json!(["_users"]));
    s.admin("POST", "/_up", None)
        .assert_error(405, "method_not_allowed", "Only GET,HEAD allowed");
}

#[test]
fn databases() {
    let s = Server::start();
    assert_eq!(s.admin("PUT", "/shop?q=1&n=1", None).status, 201);
    s.admin("PUT", "/shop", None).assert_error(
        412,
        "file_exists",
        "The database could not be created, the file already exists.",
    );
    s.admin("PUT", "/Shop", None).assert_error(
        400,
        "illegal_database_name",
        "Name: 'Shop'. Only lowercase characters (a-z), digits (0-9), and any of the characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.",
    );
    s.admin("PUT", "/x?q=0", None).assert_error(
        400,
        "bad_request",
        "The `q` value should be a positive integer.",
    );
    s.admin("PUT", "/a%2Fb", None);
    assert_eq!(
        s.admin("GET", "/_all_dbs", None).json(),
        json!(["_users", "a/b", "shop"])
    );
    let info = s.admin("GET", "/shop", None).json();
    assert_eq!(
        (info["db_name"].clone(), info["doc_count"].clone()),
        (json!("shop"), json!(0))
    );
    assert!(info["update_seq"].is_string());
    assert_eq!(s.admin("DELETE", "/shop", None).status, 200);
    s.admin("GET", "/shop", None)
        .assert_error(404, "not_found", "Database does not exist.");
    s.admin("DELETE", "/shop", None)
        .assert_error(404, "not_found", "Database does not exist.");
}

#[test]
fn document_lifecycle() {
    let s = Server::start();
    s.admin("PUT", "/db", None);
    let created = s.admin("PUT", "/db/a", Some(json!({"v": 1})));
    assert_eq!(created.status, 201);
    let rev1 = created.json()["rev"].as_str().unwrap().to_owned();
    s.admin("PUT", "/db/a", Some(json!({"v": 2}))).assert_error(
        409,
        "conflict",
        "Document update conflict.",
    );
    s.admin(
        "PUT",
        &format!("/db/a?rev={rev1}"),
        Some(json!({"_rev": "1-x", "v": 2})),
    )
    .assert_error(
        400,
        "bad_request",
        "Document rev from request body and query string have different values",
    );
    let rev2 = s
        .admin("PUT", &format!("/db/a?rev={rev1}"), Some(json!({"v": 2})))
        .json()["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = s.admin("GET", "/db/a?revs=true", None).json();
    assert_eq!(doc["v"], 2);
    assert_eq!(doc["_revisions"]["start"], 2);
    assert_eq!(
        s.admin("GET", &format!("/db/a?rev={rev1}"), None).json()["v"],
        1
    );
    let all = s.admin("GET", "/db/a?open_revs=all", None).json();
    assert_eq!(all[0]["ok"]["_rev"], rev2.as_str());
    s.admin("DELETE", "/db/a", None)
        .assert_error(409, "conflict", "Document update conflict.");
    assert_eq!(
        s.admin("DELETE", &format!("/db/a?rev={rev2}"), None).status,
        200
    );
    s.admin("GET", "/db/a", None)
        .assert_error(404, "not_found", "deleted");
    s.admin("GET", "/db/nope", None)
        .assert_error(404, "not_found", "missing");
    // POST, batch mode, special ids, local docs.
    let posted = s.admin("POST", "/db", Some(json!({"x": 1}))).json();
    assert_eq!(posted["id"].as_str().unwrap().len(), 32);
    assert_eq!(
        s.admin("POST", "/db?batch=ok", Some(json!({"_id": "b"})))
            .status,
        202
    );
    assert_eq!(
        s.admin("PUT", "/db/a%2Fb%20c", Some(json!({}))).json()["id"],
        "a/b c"
    );
    assert_eq!(s.admin("GET", "/db/a%2Fb%20c", None).json()["_id"], "a/b c");
    assert_eq!(
        s.admin("PUT", "/db/_local/l", Some(json!({"a": 1}))).json()["rev"],
        "0-1"
    );
    assert_eq!(
        s.admin("DELETE", "/db/_local/l?rev=0-9", None).json()["rev"],
        "0-0"
    );
    assert_eq!(
        s.admin("PUT", "/db/born", Some(json!({"_deleted": true})))
            .status,
        200
    );
}

#[test]
fn bulk_and_listing_endpoints() {
    let s = Server::start();
    s.admin("PUT", "/db", None);
    let res = s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"docs": [{"_id": "b"}, {"_id": "a"}, {"_id": "_design/d", "views": {}}, {"_id": "c", "_rev": "1-x"}]})),
    );
    assert_eq!(res.status, 201);
    let rows = res.json();
    assert_eq!(rows[0]["id"], "b");
    assert_eq!(rows[3]["error"], "conflict");
    let all = s
        .admin("GET", "/db/_all_docs?include_docs=true", None)
        .json();
    assert_eq!(all["total_rows"], 3);
    assert_eq!(all["rows"][0]["id"], "_design/d");
    let keys = s
        .admin("POST", "/db/_all_docs", Some(json!({"keys": ["a", "zz"]})))
        .json();
    assert_eq!(keys["rows"][1], json!({"key": "zz", "error": "not_found"}));
    let ddocs = s.admin("GET", "/db/_design_docs", None).json();
    assert_eq!(ddocs["rows"].as_array().unwrap().len(), 1);
    let got = s
        .admin(
            "POST",
            "/db/_bulk_get",
            Some(json!({"docs": [{"id": "a"}, {"id": "zz"}]})),
        )
        .json();
    assert_eq!(got["results"][0]["docs"][0]["ok"]["_id"], "a");
    assert_eq!(got["results"][1]["docs"][0]["error"]["rev"], "undefined");
    let diff = s
        .admin("POST", "/db/_revs_diff", Some(json!({"a": ["9-zz"]})))
        .json();
    assert_eq!(diff["a"]["missing"], json!(["9-zz"]));
    assert_eq!(diff["a"]["possible_ancestors"].as_array().unwrap().len(), 1);
    let replicated = s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"new_edits": false, "docs": [{"_id": "r", "_rev": "3-abc", "_revisions": {"start": 3, "ids": ["abc", "def", "ghi"]}}]})),
    );
    assert_eq!(replicated.json(), json!([]));
    assert_eq!(s.admin("GET", "/db/r", None).json()["_rev"], "3-abc");
    let aon = s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"all_or_nothing": true, "docs": [{"_id": "q"}]})),
    );
    assert_eq!(aon.status, 417);
    assert_eq!(s.admin("GET", "/db/_revs_limit", None).json(), json!(1000));
    assert_eq!(s.admin("POST", "/db/_compact", Some(json!({}))).status, 202);
    assert_eq!(
        s.admin("POST", "/db/_ensure_full_commit", Some(json!({})))
            .status,
        201
    );
    assert_eq!(
        s.admin("GET", "/db/_local_docs", None).json()["rows"],
        json!([])
    );
}

#[test]
fn revision_orders_and_design_offset() {
    let s = Server::start();
    s.admin("PUT", "/db", None);
    // x: a local 1-33dd… (CouchDB's rev for {"v":16}) and a replicated branch
    // 3-ceb… whose root 1-b7fd… sorts after it.
    assert_eq!(
        s.admin("PUT", "/db/x", Some(json!({"v": 16}))).json()["rev"],
        "1-33dd8982af5ea493cb201ba7ddfc871e"
    );
    s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(
            json!({"new_edits": false, "docs": [{"_id": "x", "v": "branch",
            "_rev": "3-ceb19aa2198a11384fe8b14d80ad7f2a",
            "_revisions": {"start": 3, "ids": ["ceb19aa2198a11384fe8b14d80ad7f2a",
                "e27c65678fab7829aea8375000986e67", "b7fdf71ae0c0eeff7974c2b0548e9986"]}}]}),
        ),
    );
    let revs_of = |docs: &Value| -> Vec<String> {
        docs.as_array()
            .unwrap()
            .iter()
            .map(|d| d["ok"]["_rev"].as_str().unwrap().to_owned())
            .collect()
    };
    // _bulk_get: key-tree order (last tree first); open_revs=all: rev order.
    let got = s
        .admin(
            "POST",
            "/db/_bulk_get",
            Some(json!({"docs": [{"id": "x"}]})),
        )
        .json();
    assert_eq!(
        revs_of(&got["results"][0]["docs"]),
        [
            "3-ceb19aa2198a11384fe8b14d80ad7f2a",
            "1-33dd8982af5ea493cb201ba7ddfc871e"
        ]
    );
    let all = s.admin("GET", "/db/x?open_revs=all", None).json();
    assert_eq!(
        revs_of(&all),
        [
            "1-33dd8982af5ea493cb201ba7ddfc871e",
            "3-ceb19aa2198a11384fe8b14d80ad7f2a"
        ]
    );
    // _revs_diff: possible ancestors in winner order, not rev order.
    let diff = s
        .admin("POST", "/db/_revs_diff", Some(json!({"x": ["9-zz"]})))
        .json();
    assert_eq!(
        diff["x"]["possible_ancestors"],
        json!([
            "3-ceb19aa2198a11384fe8b14d80ad7f2a",
            "1-33dd8982af5ea493cb201ba7ddfc871e"
        ])
    );
    // An ancestor known only from `_revisions` is not missing.
    let diff = s
        .admin(
            "POST",
            "/db/_missing_revs",
            Some(json!({"x": ["2-e27c65678fab7829aea8375000986e67", "2-nope"]})),
        )
        .json();
    assert_eq!(diff, json!({"missing_revs": {"x": ["2-nope"]}}));
    // _design_docs: total_rows counts design docs and caps the offset.
    s.admin("PUT", "/db/_design/d", Some(json!({"views": {}})));
    s.admin("PUT", "/db/y", Some(json!({})));
    let ddocs = s.admin("GET", "/db/_design_docs", None).json();
    assert_eq!(
        (ddocs["total_rows"].clone(), ddocs["offset"].clone()),
        (json!(1), json!(0))
    );
    let ddocs = s
        .admin("GET", "/db/_design_docs?descending=true", None)
        .json();
    // Two docs (x, y) come after `_design0`: the offset is capped at 1.
    assert_eq!(
        (ddocs["total_rows"].clone(), ddocs["offset"].clone()),
        (json!(1), json!(1))
    );
}

#[test]
fn bad_input_is_refused_and_nothing_stored() {
    let s = Server::start();
    s.admin("PUT", "/db", None);
    let admin = Some(http_common::ADMIN);
    for raw in [
        &b"{"[..],
        b"{\"a\":1} x",
        b"",
        b"{'a':1}",
        b"{\"n\":1e400}",
        b"{\"a\":\"\xc3\xff\"}",
    ] {
        s.send("PUT", "/db/x", Some(raw), admin, &[]).assert_error(
            400,
            "bad_request",
            "invalid UTF-8 JSON",
        );
    }
    s.send("PUT", "/db/x", Some(b"[1]"), admin, &[])
        .assert_error(400, "bad_request", "Document must be a JSON object");
    s.admin("GET", "/db/x", None)
        .assert_error(404, "not_found", "missing");
    let text_plain = [("Content-Type", "text/plain")];
    s.send("POST", "/db", Some(b"{}"), admin, &text_plain)
        .assert_error(
            415,
            "bad_content_type",
            "Content-Type must be application/json",
        );
    assert_eq!(
        s.send("PUT", "/db/t", Some(b"{}"), admin, &text_plain)
            .status,
        201
    );
    s.admin("PUT", "/db/_all_docs", Some(json!({})))
        .assert_error(405, "method_not_allowed", "Only GET,HEAD,POST allowed");
    s.admin("POST", "/db/doc", Some(json!({}))).assert_error(
        400,
        "bad_request",
        "Referer header required.",
    );
    s.admin("PUT", "/db/_bogus", Some(json!({}))).assert_error(
        400,
        "illegal_docid",
        "Only reserved document ids may start with underscore.",
    );
    let big = json!({"_id": "big", "fill": "x".repeat(8_100_000)});
    s.admin("PUT", "/db/big", Some(big))
        .assert_error(413, "document_too_large", "big");
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
    assert_eq!(
        s.send("PUT", "/db/deep", Some(deep.as_bytes()), admin, &[])
            .status,
        201
    );
    assert_eq!(s.admin("GET", "/db/deep", None).status, 200);
}

#[test]
fn replicated_bulk_refusals_carry_revs_in_doc_id_order() {
    let s = Server::start();
    assert_eq!(s.admin("PUT", "/db", None).status, 201);
    let vdu = json!({"_id": "_design/v", "validate_doc_update":
        "function(d) { if (d.deny) throw({forbidden: 'no ' + d._id}); }"});
    assert_eq!(s.admin("PUT", "/db/_design/v", Some(vdu)).status, 201);
    // Refused here (an invalid design doc) and by the store's VDU, merged by id.
    let res = s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"new_edits": false, "docs": [
            {"_id": "zz", "_rev": "1-aaa", "deny": true},
            {"_id": "_design/bad", "_rev": "1-bbb", "views": {"v": {"reduce": "_sum"}}},
            {"_id": "fine", "_rev": "1-ccc"},
            {"_id": "B", "_revisions": {"start": 2, "ids": ["ddd", "eee"]}, "deny": true},
        ]})),
    );
    assert_eq!(res.status, 201);
    assert_eq!(
        res.json(),
        json!([
            {"id": "B", "rev": "2-ddd", "error": "forbidden", "reason": "no B"},
            {"id": "_design/bad", "rev": "1-bbb", "error": "invalid_design_doc",
             "reason": "View `v` must contain map function"},
            {"id": "zz", "rev": "1-aaa", "error": "forbidden", "reason": "no zz"},
        ])
    );
    assert_eq!(s.admin("GET", "/db/fine", None).status, 200);
    // Interactive refusals have no rev and keep the request order.
    let res = s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"docs": [
            {"_id": "zz", "deny": true},
            {"_id": "_design/bad", "views": {"v": {"reduce": "_sum"}}},
        ]})),
    );
    assert_eq!(
        res.json(),
        json!([
            {"id": "zz", "error": "forbidden", "reason": "no zz"},
            {"id": "_design/bad", "error": "invalid_design_doc",
             "reason": "View `v` must contain map function"},
        ])
    );
}

#[test]
fn unknown_paths_get_couchdbs_404s() {
    let s = Server::start();
    s.admin("PUT", "/db", None);
    s.admin("PUT", "/db/doc", Some(json!({})));
    s.admin("PUT", "/db/_design/d", Some(json!({"views": {}})));
    s.admin("GET", "/db/_bogus", None)
        .assert_error(404, "not_found", "missing");
    s.admin("GET", "/db/_design/nope/_bogus/v", None)
        .assert_error(404, "not_found", "missing");
    // Unknown design doc sub-resources are attachment paths in CouchDB.
    s.admin("GET", "/db/_design/d/_bogus/v", None).assert_error(
        404,
        "not_found",
        "Document is missing attachment",
    );
    s.admin("GET", "/db/_design/d/file.txt", None).assert_error(
        404,
        "not_found",
        "Document is missing attachment",
    );
    s.admin("GET", "/db/doc/attachment", None).assert_error(
        404,
        "not_found",
        "Document is missing attachment",
    );
    s.admin("GET", "/nodb/doc", None)
        .assert_error(404, "not_found", "Database does not exist.");
    s.admin("GET", "/_nothing_here", None).assert_error(
        404,
        "not_found",
        "Database does not exist.",
    );
    let res = s.admin("GET", "/db/_bogus", None);
    assert_eq!(res.header("content-type"), Some("application/json"));
}

#[test]
fn oversized_requests_and_documents_store_nothing() {
    let s = Server::start_with(settee::http::HttpConfig {
        max_request_size: 10_000,
        ..Default::default()
    });
    s.admin("PUT", "/db", None);
    let body = json!({"fill": "x".repeat(20_000)});
    s.admin("PUT", "/db/big", Some(body.clone())).assert_error(
        413,
        "too_large",
        "the request entity is too large",
    );
    s.admin("POST", "/db/_bulk_docs", Some(json!({"docs": [body]})))
        .assert_error(413, "too_large", "the request entity is too large");
    // Just under the limit is fine.
    let ok = s.admin("PUT", "/db/fits", Some(json!({"fill": "x".repeat(9_000)})));
    assert_eq!(ok.status, 201, "{}", ok.text);
    s.admin("GET", "/db/big", None)
        .assert_error(404, "not_found", "missing");

    // A document over max_document_size (8,000,000 bytes) is refused by
    // every write path, and nothing of it is stored.
    let s = Server::start();
    s.admin("PUT", "/db", None);
    let before = s.admin("GET", "/db", None).json();
    let huge = json!({"_id": "huge", "fill": "x".repeat(8_100_000)});
    s.admin("PUT", "/db/huge", Some(huge.clone()))
        .assert_error(413, "document_too_large", "huge");
    s.admin("POST", "/db", Some(huge.clone()))
        .assert_error(413, "document_too_large", "huge");
    let bulk = s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"docs": [{"_id": "small"}, huge]})),
    );
    assert_eq!(
        bulk.status,
        413,
        "{}",
        &bulk.text[..bulk.text.len().min(300)]
    );
    s.admin("GET", "/db/huge", None)
        .assert_error(404, "not_found", "missing");
    s.admin("GET", "/db/small", None)
        .assert_error(404, "not_found", "missing");
    let after = s.admin("GET", "/db", None).json();
    assert_eq!(after["doc_count"], before["doc_count"]);
    assert_eq!(after["update_seq"], before["update_seq"]);
    assert_eq!(
        s.admin("GET", "/db/_changes", None).json()["results"],
        json!([])
    );
}
