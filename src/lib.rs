//! # settee
//!
//! An embedded, CouchDB-compatible document store and incremental map/reduce
//! view engine. Documents live in LMDB (through `heed`); design documents are
//! the same JSON CouchDB uses, with JavaScript run by `boa_engine`.
//!
//! The modules follow the data flow:
//!
//! - `store`: documents, revision trees, the changes feed.
//! - `js`: the JavaScript worker pool running design-document functions.
//! - `view`: design documents, the incremental indexer, index storage, queries, reduce.
//! - `collate`: CouchDB's key order and an order-preserving byte encoding of it.
//!
//! The `http` and `cli` layers sit on top and are the only ones that know about
//! HTTP or terminals.

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
    AllDocsQuery, AllDocsResponse, AllDocsRow, BulkOptions, BulkResult, ChangeEvent, ChangeRev,
    ChangeRow, ChangesFilter, ChangesQuery, ChangesResponse, ChangesStyle, Database, DbInfo,
    DbSizes, DocUpdate, IndexChange, OpenMode, OpenRev, OpenRevs, PreparedBatch, ReadOptions, Rev,
    RevsDiff, Since, StoreOptions, UpdateValidator, UserCtx, ValidationRequest, WeakDatabase,
};
