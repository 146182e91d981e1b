//! Small commands: `get`, `put`, `changes`, `info`, `compact`.

use std::path::Path;

use serde_json::{json, Value};
use settee::{BulkOptions, ChangesQuery, Database, Error, ReadOptions, Result, Since};

use super::{print_json, print_json_line, read_input};

pub(crate) fn get(db: &Path, id: &str) -> Result<i32> {
    let db = Database::open(db)?;
    print_json(&db.get(id, &ReadOptions::default())?)?;
    Ok(0)
}

pub(crate) fn put(db: &Path, file: &Path) -> Result<i32> {
    let input = read_input(file)?;
    let doc: Value =
        serde_json::from_slice(&input).map_err(|_| Error::bad_request("invalid UTF-8 JSON"))?;
    let db = super::open_validated(db)?;
    match doc {
        Value::Array(docs) => {
            let results = db.bulk_docs(docs, BulkOptions::default())?;
            print_json(&results)?;
            Ok(if results.iter().any(|r| r.is_error()) {
                1
            } else {
                0
            })
        }
        doc => {
            print_json(&db.put(doc)?)?;
            Ok(0)
        }
    }
}

pub(crate) fn changes(db: &Path, since: u64, limit: Option<usize>, follow: bool) -> Result<i32> {
    let db = Database::open(db)?;
    let mut query = ChangesQuery::new().since(Since::Seq(since));
    query.limit = limit;
    if !follow {
        print_json(&db.changes(&query)?)?;
        return Ok(0);
    }
    // New changes wake us up when written by this process; writes by other
    // processes are picked up by polling.
    let events = db.subscribe();
    let mut printed = 0usize;
    let mut since = since;
    loop {
        let mut page = ChangesQuery::new().since(Since::Seq(since));
        page.limit = limit.map(|l| l - printed);
        let resp = db.changes(&page)?;
        for row in &resp.results {
            print_json_line(row)?;
            printed += 1;
        }
        since = resp.last_seq;
        if limit.is_some_and(|l| printed >= l) {
            return Ok(0);
        }
        let _ = events.recv_timeout(std::time::Duration::from_millis(250));
    }
}

pub(crate) fn info(db: &Path) -> Result<i32> {
    print_json(&Database::open(db)?.info()?)?;
    Ok(0)
}

pub(crate) fn compact(db: &Path) -> Result<i32> {
    let db = Database::open(db)?;
    let before = db.info()?.sizes;
    let started = std::time::Instant::now();
    db.compact()?;
    let after = db.info()?.sizes;
    print_json(&json!({
        "ok": true,
        "seconds": started.elapsed().as_secs_f64(),
        "sizes_before": before,
        "sizes_after": after,
    }))?;
    Ok(0)
}
