//! `_changes` feeds over real HTTP: normal, filters, longpoll and continuous.

mod http_common;

use std::time::{Duration, Instant};

use http_common::Server;
use serde_json::{json, Value};

fn setup() -> Server {
    let s = Server::start();
    s.admin("PUT", "/db", None);
    s.admin(
        "POST",
        "/db/_bulk_docs",
        Some(json!({"docs": [{"_id": "b", "type": "x"}, {"_id": "a", "type": "y", "n": 1}, {"_id": "_design/d"}]})),
    );
    s
}

fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn normal_feed_and_filters() {
    let s = setup();
    let all = s.admin("GET", "/db/_changes", None).json();
    assert_eq!(ids(&all), ["_design/d", "a", "b"]);
    let last = all["last_seq"].as_str().unwrap().to_owned();
    s.admin("PUT", "/db/c", Some(json!({})));
    let since = s
        .admin("GET", &format!("/db/_changes?since={last}"), None)
        .json();
    assert_eq!(ids(&since), ["c"]);
    let desc = s
        .admin("GET", "/db/_changes?descending=true&limit=1", None)
        .json();
    assert_eq!(ids(&desc), ["c"]);
    let by_ids = s
        .admin(
            "POST",
            "/db/_changes?filter=_doc_ids",
            Some(json!({"doc_ids": ["b", "zz"]})),
        )
        .json();
    assert_eq!(ids(&by_ids), ["b"]);
    let design = s.admin("GET", "/db/_changes?filter=_design", None).json();
    assert_eq!(ids(&design), ["_design/d"]);
    let sel = s
        .admin(
            "POST",
            "/db/_changes?filter=_selector",
            Some(json!({"selector": {"n": {"$lt": 3}}})),
        )
        .json();
    assert_eq!(ids(&sel), ["a"]);
    let docs = s
        .admin("GET", "/db/_changes?include_docs=true&limit=1", None)
        .json();
    assert_eq!(docs["results"][0]["doc"]["_id"], "_design/d");
    s.admin("GET", "/db/_changes?since=5", None).assert_error(
        400,
        "bad_request",
        "Malformed sequence supplied in 'since' parameter.",
    );
    s.admin("GET", "/db/_changes?feed=bogus", None)
        .assert_error(
            400,
            "bad_request",
            "Supported `feed` types: normal, continuous, live, longpoll, eventsource",
        );
    s.admin("GET", "/db/_changes?filter=nosuch/f", None)
        .assert_error(404, "not_found", "missing");
    s.admin("PUT", "/db/_changes", Some(json!({})))
        .assert_error(405, "method_not_allowed", "Only GET,POST,HEAD allowed");
}

#[test]
fn longpoll_waits_for_the_next_change() {
    let s = setup();
    let client = *s;
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        client.admin("PUT", "/db/late", Some(json!({})));
    });
    let started = Instant::now();
    let res = s
        .admin(
            "GET",
            "/db/_changes?feed=longpoll&since=now&timeout=5000",
            None,
        )
        .json();
    assert_eq!(ids(&res), ["late"]);
    assert!(started.elapsed() < Duration::from_secs(4));
    writer.join().unwrap();
    let empty = s
        .admin(
            "GET",
            "/db/_changes?feed=longpoll&since=now&timeout=200",
            None,
        )
        .json();
    assert_eq!(ids(&empty), Vec::<String>::new());
    assert!(empty["last_seq"].is_string());
}

#[test]
fn continuous_feed_streams_lines_and_ends_on_timeout() {
    let s = setup();
    let res = s.admin("GET", "/db/_changes?feed=continuous&timeout=300", None);
    assert_eq!(res.status, 200);
    let rows: Vec<Value> = res
        .text
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["id"], "_design/d");
    assert!(rows[3]["last_seq"].is_string());
    let limited = s.admin("GET", "/db/_changes?feed=continuous&limit=1", None);
    assert_eq!(limited.text.lines().count(), 2);
}

/// With a heartbeat, CouchDB ignores `timeout`: the feed sends newlines
/// until the client leaves (`fabric_view_changes:keep_sending_changes/8`).
#[test]
fn heartbeat_keeps_the_feed_open_past_its_timeout() {
    let s = setup();
    let mut feed =
        s.open_stream("/db/_changes?feed=continuous&since=now&timeout=200&heartbeat=100");
    let (status, body) = feed.read_for(Duration::from_millis(900));
    assert_eq!(status, 200);
    assert!(!body.contains("last_seq"), "ended: {body:?}");
    assert!(body.matches('\n').count() >= 4, "heartbeats: {body:?}");
    assert!(body.chars().all(|c| c == '\n'), "{body:?}");
    let mut poll = s.open_stream("/db/_changes?feed=longpoll&since=now&timeout=200&heartbeat=100");
    let (_, body) = poll.read_for(Duration::from_millis(700));
    assert!(!body.contains("last_seq"), "longpoll ended: {body:?}");
    assert!(body.matches('\n').count() >= 3, "{body:?}");
}

#[test]
fn continuous_feed_receives_a_live_write() {
    let s = setup();
    let mut feed = s.open_stream("/db/_changes?feed=continuous&since=now&heartbeat=5000");
    let (status, body) = feed.read_for(Duration::from_millis(200));
    assert_eq!((status, body.as_str()), (200, ""));
    s.admin("PUT", "/db/live", Some(json!({"x": 1})));
    let (_, body) = feed.read_until("\n", Duration::from_secs(5));
    let row: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(row["id"], "live");
    assert!(row["changes"][0]["rev"].as_str().unwrap().starts_with("1-"));
    // A second write arrives on the same open feed.
    s.admin("PUT", "/db/live2", Some(json!({})));
    let (_, body) = feed.read_until("live2", Duration::from_secs(5));
    let ids: Vec<String> = body
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["live", "live2"]);
}

/// `timeout` is capped at the server's `changes_timeout`, as CouchDB caps
/// it at `[chttpd] changes_timeout`.
#[test]
fn timeout_is_capped_by_changes_timeout() {
    let s = Server::start_with(settee::http::HttpConfig {
        changes_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    s.admin("PUT", "/db", None);
    let started = Instant::now();
    let res = s
        .admin(
            "GET",
            "/db/_changes?feed=longpoll&since=now&timeout=600000",
            None,
        )
        .json();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res["results"], json!([]));
    let started = Instant::now();
    let res = s.admin("GET", "/db/_changes?feed=continuous&since=now", None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(res.text.contains("last_seq"));
}

/// `chttpd_db:parse_changes_query/1`: a heartbeat must be a positive
/// integer (400); a `timeout` that is not an integer crashes
/// `list_to_integer/1` (500 `unknown_error` `badarg`). Every feed kind
/// parses them, the normal one too.
#[test]
fn invalid_heartbeat_and_timeout_are_refused() {
    let s = setup();
    for feed in ["normal", "longpoll", "continuous"] {
        let not_integer =
            "Invalid heartbeat value. Expecting a positive integer value (in milliseconds).";
        let not_positive = "The heartbeat value should be a positive integer (in milliseconds).";
        for (bad, reason) in [
            ("a1000", not_integer),
            ("false", not_integer),
            ("1.5", not_integer),
            ("", not_integer),
            ("-1000", not_positive),
            ("0", not_positive),
        ] {
            s.admin(
                "GET",
                &format!("/db/_changes?feed={feed}&heartbeat={bad}"),
                None,
            )
            .assert_error(400, "bad_request", reason);
        }
        let res = s.admin(
            "GET",
            &format!("/db/_changes?feed={feed}&timeout=soon"),
            None,
        );
        res.assert_error(500, "unknown_error", "badarg");
        assert!(res.json()["ref"].is_u64(), "{}", res.text);
    }
    // Accepted forms.
    let ok = s.admin("GET", "/db/_changes?heartbeat=true&timeout=%2B10", None);
    assert_eq!(ok.status, 200, "{}", ok.text);
    let ok = s.admin("GET", "/db/_changes?feed=longpoll&timeout=-5", None);
    assert_eq!(ok.status, 200, "{}", ok.text);
    // The database is checked before the parameters.
    s.admin("GET", "/nodb/_changes?heartbeat=x", None)
        .assert_error(404, "not_found", "Database does not exist.");
}

#[test]
fn view_and_javascript_filters() {
    let s = setup();
    let ddoc = json!({
        "_id": "_design/f",
        "views": {"typed_x": {"map": "function(doc) { if (doc.type == 'x') emit(doc._id, null); }"}},
        "filters": {
            "by_query": "function(doc, req) { return doc.type === req.query.type; }",
            "by_user": "function(doc, req) { return req.userCtx.name === 'admin' && req.userCtx.roles.indexOf('_admin') >= 0 && !!doc.n; }",
            "min_n": "function(doc, req) { return doc.n >= Number(req.query.min); }"
        }
    });
    assert_eq!(s.admin("PUT", "/db/_design/f", Some(ddoc)).status, 201);
    s.admin("PUT", "/db/c", Some(json!({"type": "x", "n": 5})));
    let view = s
        .admin("GET", "/db/_changes?filter=_view&view=f/typed_x", None)
        .json();
    assert_eq!(ids(&view), ["b", "c"]);
    let by_query = s
        .admin("GET", "/db/_changes?filter=f/by_query&type=y", None)
        .json();
    assert_eq!(ids(&by_query), ["a"]);
    let by_query = s
        .admin("GET", "/db/_changes?filter=f/by_query&type=x", None)
        .json();
    assert_eq!(ids(&by_query), ["b", "c"]);
    let by_user = s.admin("GET", "/db/_changes?filter=f/by_user", None).json();
    assert_eq!(ids(&by_user), ["a", "c"]);
    let limited = s
        .admin("GET", "/db/_changes?filter=f/min_n&min=2&limit=1", None)
        .json();
    assert_eq!(ids(&limited), ["c"]);
    // A filtered continuous feed only sends the rows that pass.
    let mut feed = s.open_stream(
        "/db/_changes?feed=continuous&since=now&filter=f/by_query&type=z&heartbeat=5000",
    );
    s.admin("PUT", "/db/no", Some(json!({"type": "y"})));
    s.admin("PUT", "/db/yes", Some(json!({"type": "z"})));
    let (_, body) = feed.read_until("\n", Duration::from_secs(5));
    let row: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(row["id"], "yes");
    s.admin("GET", "/db/_changes?filter=f/nosuch", None)
        .assert_error(404, "not_found", "missing json key: nosuch");
    s.admin("GET", "/db/_changes?filter=_view&view=f/nosuch", None)
        .assert_error(404, "not_found", "missing json key: nosuch");
    s.admin("GET", "/db/_changes?filter=_view", None)
        .assert_error(
            400,
            "bad_request",
            "`view` filter parameter is not provided.",
        );
}

/// A JS filter that throws fails the request as CouchDB's query server
/// reports it (`handleError` in `loop.js`): an `Error` is
/// `{"error": name, "reason": "{[]}"}`, an `{error, reason}` object keeps
/// both; the status is 500. It is not a silent "does not pass".
#[test]
fn throwing_javascript_filter_is_an_error() {
    let s = setup();
    let ddoc = json!({
        "_id": "_design/t",
        "filters": {
            "boom": "function(doc, req) { if (doc._id === 'a') throw new Error('filter boom'); return true; }",
            "type_error": "function(doc, req) { return doc.missing.deeper; }",
            "object": "function(doc, req) { if (doc.type) throw({error: 'bad_filter', reason: 'no ' + doc._id}); return false; }",
            "fine": "function(doc, req) { return doc.type === 'x'; }"
        }
    });
    assert_eq!(s.admin("PUT", "/db/_design/t", Some(ddoc)).status, 201);
    s.admin("GET", "/db/_changes?filter=t/boom", None)
        .assert_error(500, "Error", "{[]}");
    s.admin("GET", "/db/_changes?filter=t/type_error", None)
        .assert_error(500, "TypeError", "{[]}");
    s.admin("GET", "/db/_changes?filter=t/object", None)
        .assert_error(500, "bad_filter", "no a");
    s.admin("GET", "/db/_changes?filter=t/boom&feed=longpoll", None)
        .assert_error(500, "Error", "{[]}");
    // A filter that does not throw for the docs it sees still works.
    let since_a = s.admin("GET", "/db/_changes", None).json()["results"][1]["seq"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = s.admin(
        "GET",
        &format!("/db/_changes?filter=t/boom&since={since_a}"),
        None,
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ids(&ok.json()), ["b", "_design/t"]);
    assert_eq!(
        ids(&s.admin("GET", "/db/_changes?filter=t/fine", None).json()),
        ["b"]
    );
    // On a continuous feed the error is the last line.
    let res = s.admin(
        "GET",
        "/db/_changes?feed=continuous&filter=t/boom&timeout=2000",
        None,
    );
    assert_eq!(res.status, 200);
    let last: Value = serde_json::from_str(res.text.lines().last().unwrap()).unwrap();
    assert_eq!(last, json!({"error": "Error", "reason": "{[]}"}));
}
