//! Views: a design document with a JavaScript map and a built-in reduce, a
//! `validate_doc_update`, incremental index updates and CouchDB's queries.
//!
//! `cargo run --example views`

use serde_json::json;
use settee::js::{JsConfig, JsPool};
use settee::validation::DocValidator;
use settee::view::{ViewEngine, ViewQuery};
use settee::Database;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Database::create(dir.path().join("shop"))?;
    let pool = JsPool::new(JsConfig::default())?;
    // Design documents are checked and compiled on save; VDUs run on every write.
    DocValidator::install(&db, pool.clone());
    db.put(json!({
        "_id": "_design/sales",
        "views": {"by_customer": {
            "map": "function(doc) { if (doc.type === 'order') emit([doc.customer, doc.day], doc.total); }",
            "reduce": "_sum"
        }},
        "validate_doc_update": "function(newDoc) { if (newDoc.type === 'order' && !(newDoc.total > 0)) throw({forbidden: 'an order needs a positive total'}); }"
    }))?;
    db.bulk_docs(
        vec![
            json!({"_id": "o1", "type": "order", "customer": "ann", "day": 1, "total": 12}),
            json!({"_id": "o2", "type": "order", "customer": "ann", "day": 2, "total": 5}),
            json!({"_id": "o3", "type": "order", "customer": "bob", "day": 1, "total": 7}),
        ],
        Default::default(),
    )?;
    let refused = db
        .put(json!({"_id": "o4", "type": "order", "customer": "bob", "total": -1}))
        .unwrap_err();
    println!("refused: {} {}", refused.status(), refused.reason());

    let views = ViewEngine::new(db.clone(), pool);
    // The first query builds the index; later ones only index what changed.
    let per_customer = views.query(
        "_design/sales",
        "by_customer",
        &ViewQuery::new().group_level(1),
    )?;
    println!("{}", serde_json::to_string(&per_customer)?);
    let page = views.query(
        "_design/sales",
        "by_customer",
        &ViewQuery::new()
            .reduce(false)
            .start_key(json!(["ann"]))
            .end_key(json!(["ann", {}]))
            .include_docs(true),
    )?;
    println!("{}", serde_json::to_string(&page)?);

    // HTTP-style parameters parse with CouchDB's rules and error texts.
    let parsed = ViewQuery::from_query_pairs([("group", "true"), ("limit", "1")])?;
    println!(
        "{}",
        serde_json::to_string(&views.query("_design/sales", "by_customer", &parsed)?)?
    );
    let err = ViewQuery::from_query_pairs([("limit", "-1")]).unwrap_err();
    println!("bad parameter: {} {}", err.name(), err.reason());
    Ok(())
}
