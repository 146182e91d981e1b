//! The view engine: design documents, the incremental indexer, index storage,
//! queries and reduce.
//!
//! - [`DesignDoc`]: save-time validation and the [`ViewGroup`] a design
//!   document defines (its signature names the index).
//! - `index`: one LMDB environment per group (rows, back-index, checkpoint).
//! - `rows`: map output to sorted, encoded rows.
//! - `bulk`: a group's first build, sorted externally and appended in key order.
//! - [`ViewEngine`]: the updater and query execution.
//! - [`ViewQuery`]: query options with CouchDB's parsing and errors.
//! - [`reduce`]: the built-in reducers.
//!
//! Indexes are built incrementally: a query (with the default
//! [`UpdateMode::True`]) or [`ViewEngine::update`] indexes only the changes
//! since the last pass.
//!
//! ```
//! use std::ops::ControlFlow;
//! use serde_json::json;
//! use settee::js::{JsConfig, JsPool};
//! use settee::view::{UpdateMode, ViewEngine, ViewQuery};
//! use settee::{Database, ReadOptions, Rev};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::create(dir.path().join("db"))?;
//! db.put(json!({"_id": "_design/d", "views": {
//!     "by_n": {"map": "function(doc) { if (doc.n) emit(doc.n, doc._id); }", "reduce": "_count"}
//! }}))?;
//! db.put(json!({"_id": "a", "n": 2}))?;
//! let views = ViewEngine::new(db.clone(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?);
//! assert_eq!(views.update("_design/d", &mut |_| ControlFlow::Continue(()))?, 2);
//! assert_eq!(views.info("_design/d")?.view_index.update_seq, 2);
//!
//! db.put(json!({"_id": "b", "n": 1}))?;
//! // `update=false` reads the index as it is...
//! let stale = ViewQuery::new().reduce(false).update(UpdateMode::False);
//! let rows = serde_json::to_value(views.query("_design/d", "by_n", &stale)?)?;
//! assert_eq!(rows["total_rows"], 1);
//! // ...the default brings it up to date first (deletions included).
//! let a = db.get("a", &ReadOptions::default())?;
//! db.delete("a", &Rev::from_json(&a["_rev"])?)?;
//! let rows = serde_json::to_value(views.query("_design/d", "by_n", &ViewQuery::new().reduce(false))?)?;
//! assert_eq!(rows["rows"], json!([{"id": "b", "key": 1, "value": "b"}]));
//! let count = serde_json::to_value(views.query("_design/d", "by_n", &ViewQuery::new())?)?;
//! assert_eq!(count["rows"][0]["value"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bulk;
mod cleanup;
mod counts;
mod design;
mod engine;
mod index;
mod query;
mod read;
pub mod reduce;
mod rows;

pub use bulk::BulkBuildConfig;
pub use design::{DesignDoc, MapIndex, ReduceView, Reducer, ViewGroup, ViewRef};
pub use engine::{BuildProgress, DesignInfo, IndexInfo, IndexSizes, ViewEngine, ViewResponse};
pub use query::{ResolvedQuery, UpdateMode, ViewQuery, DEFAULT_QUERY_LIMIT};
pub use read::{MapRow, ReduceRow};
pub use reduce::GroupLevel;
