//! Shared test helpers: the project's shared data and the golden corpus.

#![allow(dead_code)] // each test binary uses a subset

pub mod index;

use serde_json::{Map, Value};
use std::path::PathBuf;

/// `../shared` next to the crate (the project layout), or `$SETTEE_SHARED_DIR`.
pub fn shared(path: &str) -> PathBuf {
    let base = std::env::var_os("SETTEE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    base.join(path)
}

/// A JSON file under `shared/`.
pub fn load_json(path: &str) -> Value {
    let text = std::fs::read_to_string(shared(path)).expect("shared test data is present");
    serde_json::from_str(&text).expect("shared test data is JSON")
}

/// Every step of the golden corpus whose scenario name starts with `prefix`.
pub fn golden_steps(prefix: &str) -> Vec<Value> {
    golden_lines(prefix)
        .into_iter()
        .map(|(_, step)| step)
        .collect()
}

/// [`golden_steps`] with each step's JSON text.
pub fn golden_lines(prefix: &str) -> Vec<(String, Value)> {
    let text =
        std::fs::read_to_string(shared("golden/public/golden.jsonl")).expect("golden corpus");
    let needle = format!("\"scenario\":\"{prefix}");
    text.lines()
        .filter(|l| l.contains(&needle))
        .map(|l| {
            let step = serde_json::from_str(l).expect("golden line is JSON");
            (l.to_owned(), step)
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii escape");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8 query")
}

/// The view query parameters of a request: its query string (values parsed as
/// JSON where they are JSON) and its JSON body.
pub fn query_params(req: &Value) -> Map<String, Value> {
    let mut params = Map::new();
    let path = req["path"].as_str().expect("path");
    if let Some((_, query)) = path.split_once('?') {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            let parsed = serde_json::from_str(&v).unwrap_or(Value::String(v));
            params.insert(percent_decode(k), parsed);
        }
    }
    if let Some(body) = req["body"].as_object() {
        params.extend(body.clone());
    }
    params
}

/// `(design doc, view)` of a view query path.
pub fn view_of(path: &str) -> Option<(String, String)> {
    let rest = path.split("/_design/").nth(1)?;
    let rest = rest.split('?').next()?;
    let (ddoc, view) = rest.split_once("/_view/")?;
    Some((ddoc.to_owned(), view.to_owned()))
}
