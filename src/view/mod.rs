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

mod bulk;
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
pub use query::{ResolvedQuery, UpdateMode, ViewQuery};
pub use read::{MapRow, ReduceRow};
pub use reduce::GroupLevel;
