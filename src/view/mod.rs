//! The view engine: design documents, queries and reduce.

mod design;
mod index;
mod query;
pub mod reduce;
mod rowkey;

pub use design::{
    DesignDoc, FunctionRole, MapIndex, ReduceView, Reducer, ViewCollation, ViewGroup, ViewRef,
};
pub use query::{GroupLevel, ResolvedQuery, UpdateMode, ViewQuery};
