//! The document store: create, update with MVCC, read, conflicts from a
//! replicated write, `_all_docs` and the changes feed.
//!
//! `cargo run --example documents`

use serde_json::json;
use settee::{AllDocsQuery, BulkOptions, ChangesQuery, Database, ReadOptions, Since};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Database::create(dir.path().join("shop"))?;

    // Create, then update with the current revision.
    let created = db.put(json!({"_id": "apple", "price": 3}))?;
    let updated = db.put(json!({"_id": "apple", "_rev": created.rev, "price": 4}))?;
    println!("apple is at {}", updated.rev);

    // A stale revision is a conflict (409), as in CouchDB.
    let stale = db
        .put(json!({"_id": "apple", "_rev": created.rev, "price": 5}))
        .unwrap_err();
    println!("stale write: {} ({})", stale.name(), stale.status());

    // A replicated write (new_edits=false) may branch the revision tree.
    db.bulk_docs(
        vec![
            json!({"_id": "apple", "_rev": "2-0123456789abcdef0123456789abcdef",
                    "price": 6, "_revisions": {"start": 2, "ids": [
                        "0123456789abcdef0123456789abcdef",
                        created.rev.split_once('-').map(|(_, h)| h).unwrap_or_default()]}}),
        ],
        BulkOptions::replicated(),
    )?;
    let doc = db.get("apple", &ReadOptions::default().conflicts(true))?;
    println!("winner and conflicts: {doc}");

    db.bulk_docs(
        vec![
            json!({"_id": "pear", "price": 2}),
            json!({"_id": "plum", "price": 1}),
        ],
        BulkOptions::default(),
    )?;
    let all = db.all_docs(&AllDocsQuery::new().start_key("p").include_docs(true))?;
    println!("{}", serde_json::to_string(&all)?);
    let changes = db.changes(&ChangesQuery::new().since(Since::Seq(0)))?;
    println!("{}", serde_json::to_string(&changes)?);
    Ok(())
}
