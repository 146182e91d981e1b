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
fn continuous_feed_streams_lines_heartbeats_and_ends_on_timeout() {
    let s = setup();
    let res = s.admin(
        "GET",
        "/db/_changes?feed=continuous&timeout=600&heartbeat=100",
        None,
    );
    assert_eq!(res.status, 200);
    let lines: Vec<&str> = res.text.split('\n').collect();
    let rows: Vec<Value> = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["id"], "_design/d");
    assert!(rows[3]["last_seq"].is_string());
    assert!(
        lines.iter().filter(|l| l.is_empty()).count() >= 3,
        "heartbeats: {:?}",
        res.text
    );
    let limited = s.admin("GET", "/db/_changes?feed=continuous&limit=1", None);
    assert_eq!(limited.text.lines().count(), 2);
}
