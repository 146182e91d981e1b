//! The `settee` binary: JSON on stdout, errors on stderr with a non-zero exit.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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
}
