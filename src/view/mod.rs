//! Views: design documents, the incremental indexer, index storage, queries and reduce.
//!
//! This module so far holds the built-in reducers ([`reduce`]); the indexer and
//! query code join it.

pub mod reduce;
