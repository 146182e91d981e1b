//! # settee
//!
//! An embedded, CouchDB-compatible document store and incremental map/reduce
//! view engine. Documents live in LMDB (through `heed`); design documents are
//! the same JSON CouchDB uses, with JavaScript run by `boa_engine`.
//!
//! The modules follow the data flow:
//!
//! - [`store`]: documents, revision trees, the changes feed ([`Database`]).
//! - [`js`]: the JavaScript worker pool running design-document functions ([`js::JsPool`]).
//! - [`view`]: design documents, the incremental indexer, index storage,
//!   queries, reduce ([`view::ViewEngine`], [`view::ViewQuery`]).
//! - [`collate`]: CouchDB's key order and an order-preserving byte encoding of it.
//! - [`validation`]: the store's validator for design documents and
//!   `validate_doc_update` functions.
//! - [`server`]: what an HTTP server needs beyond the library (databases of a
//!   data directory, users, sessions, security).
//!
//! The [`http`] and `cli` layers sit on top and are the only ones that know about
//! HTTP or terminals. Every operation returns a [`Result`] whose [`Error`]
//! carries CouchDB's error name, reason and HTTP status.
//!
//! # Example
//!
//! Store documents, define a view in a design document and query it:
//!
//! ```
//! use serde_json::json;
//! use settee::js::{JsConfig, JsPool};
//! use settee::view::{ViewEngine, ViewQuery};
//! use settee::{BulkOptions, Database, ReadOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::create(dir.path().join("shop"))?;
//! let docs = vec![
//!     json!({"_id": "o1", "type": "order", "customer": "ann", "total": 30}),
//!     json!({"_id": "o2", "type": "order", "customer": "bob", "total": 12}),
//!     json!({"_id": "o3", "type": "order", "customer": "ann", "total": 5}),
//!     json!({"_id": "_design/sales", "views": {"by_customer": {
//!         "map": "function (doc) { if (doc.type === 'order') emit(doc.customer, doc.total); }",
//!         "reduce": "_sum"
//!     }}}),
//! ];
//! db.bulk_docs(docs, BulkOptions::default())?;
//! assert_eq!(db.get("o2", &ReadOptions::default())?["total"], 12);
//!
//! let views = ViewEngine::new(db, JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?);
//! // Reduced per key (the index is built on the first query)...
//! let totals = views.query("_design/sales", "by_customer", &ViewQuery::new().group(true))?;
//! assert_eq!(
//!     serde_json::to_value(&totals)?,
//!     json!({"rows": [{"key": "ann", "value": 35}, {"key": "bob", "value": 12}]})
//! );
//! // ...or the map rows themselves.
//! let q = ViewQuery::new().key(json!("ann")).reduce(false);
//! let rows = serde_json::to_value(views.query("_design/sales", "by_customer", &q)?)?;
//! assert_eq!(rows["total_rows"], 3);
//! assert_eq!(rows["rows"][0], json!({"id": "o1", "key": "ann", "value": 30}));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod bench_data;
pub mod collate;
mod error;
pub mod http;
pub mod js;
pub mod server;
pub mod store;
pub mod validation;
pub mod view;

pub use error::{Error, Result};
pub use store::{
    Access, AllDocsQuery, AllDocsResponse, AllDocsRow, BulkOptions, BulkResult, ChangeEvent,
    ChangeRev, ChangeRow, ChangesFilter, ChangesQuery, ChangesResponse, ChangesStyle, Database,
    DbInfo, DbSizes, DocUpdate, IndexChange, OpenMode, OpenRev, OpenRevs, PreparedBatch,
    ReadOptions, Rev, RevsDiff, Security, Since, StoreOptions, UpdateValidator, UserCtx,
    ValidationRequest, WeakDatabase,
};
