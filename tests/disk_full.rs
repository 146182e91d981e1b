//! A full disk gives a typed error and leaves the database usable. The disk
//! is made "full" for a child process with `RLIMIT_FSIZE` (writes beyond it
//! fail with `EFBIG` once `SIGXFSZ` is ignored), so no other test is affected.

use std::process::Command;

use serde_json::json;
use settee::{BulkOptions, Database, ReadOptions};

const DIR_ENV: &str = "SETTEE_DISK_FULL_TEST_DIR";

fn set_file_size_limit(bytes: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = bytes.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

#[test]
#[ignore = "child process of full_disk_is_a_typed_error"]
fn disk_full_child() {
    let dir = std::env::var(DIR_ENV).expect("run by full_disk_is_a_typed_error only");
    // SAFETY: ignoring a signal has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let db = Database::create(&dir).unwrap();
    db.put(json!({"_id": "before", "v": 1})).unwrap();
    set_file_size_limit(4 << 20);
    let filler = "f".repeat(4000);
    let mut full = None;
    for batch in 0..100 {
        let docs = (0..100)
            .map(|i| json!({"_id": format!("d{batch:03}-{i:03}"), "fill": filler}))
            .collect();
        if let Err(e) = db.bulk_docs(docs, BulkOptions::default()) {
            full = Some((batch, e));
            break;
        }
    }
    let (batch, e) = full.expect("the 4 MiB limit was never hit");
    assert_eq!((e.status(), e.name()), (507, "insufficient_storage"), "{e}");
    // Nothing of the failed batch is visible; everything before it is.
    let info = db.info().unwrap();
    assert_eq!(info.doc_count, 1 + batch * 100);
    assert!(db
        .get(&format!("d{batch:03}-000"), &ReadOptions::default())
        .is_err());
    assert_eq!(db.get("before", &ReadOptions::default()).unwrap()["v"], 1);
    // Once there is room again, writes succeed.
    set_file_size_limit(libc::RLIM_INFINITY);
    db.put(json!({"_id": "after"})).unwrap();
    println!("CHILD-OK {batch}");
}

#[test]
fn full_disk_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "disk_full_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reopened in another process: intact and writable.
    let db = Database::open(&path).unwrap();
    assert!(db.get("after", &ReadOptions::default()).is_ok());
    db.put(json!({"_id": "parent"})).unwrap();
}
