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
    let db = Database::open_or_create(db)?;
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
    // Subscribe before reading, so nothing committed in between is missed.
    let events = db.subscribe();
    let mut printed = 0usize;
    let mut last = since;
    for row in db.changes(&query)?.results {
        last = row.seq;
        print_json_line(&row)?;
        printed += 1;
    }
    for event in events {
        if limit.is_some_and(|l| printed >= l) {
            break;
        }
        if event.seq <= last {
            continue;
        }
        last = event.seq;
        let mut row = json!({"seq": event.seq, "id": event.id, "changes": [{"rev": event.rev}]});
        if event.deleted {
            row["deleted"] = json!(true);
        }
        print_json_line(&row)?;
        printed += 1;
    }
    Ok(0)
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
