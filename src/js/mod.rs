//! The JavaScript worker pool that runs design-document functions.
//!
//! Map, reduce, `validate_doc_update` and filter functions written for CouchDB
//! run unchanged (the bare `function(doc) {...}` source form) on
//! [boa](https://boajs.dev). Each worker is a dedicated OS thread with a large
//! native stack that owns one boa `Context`; a [`JsPool`] hands batches to
//! the workers over bounded channels and splits big map batches across all of
//! them. This module is the only part of settee that knows about boa.
//!
//! What JavaScript sees (see `js/runtime.js`): `emit`, `log`, `sum`,
//! `isArray`, `toJSON`, `JSON`, and `require` for map functions (CommonJS
//! modules from the design document's `views.lib`). There is no filesystem,
//! network, process or timer access.
//!
//! Containment: loop and recursion limits (which JavaScript cannot catch), a
//! per-call time budget after which a stuck worker is abandoned and replaced,
//! a nesting pre-scan that rejects sources deep enough to overflow the native
//! stack, and a size bound on every value converted back to JSON.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::json;
//! use settee::js::{JsConfig, JsPool, MapGroup};
//!
//! let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
//! let group = Arc::new(MapGroup {
//!     id: "sig-1".into(),
//!     ddoc_id: "_design/app".into(),
//!     lib: None,
//!     maps: vec!["function(doc) { if (doc.n) emit(doc.n, null); }".into()],
//! });
//! let out = pool.map(&group, vec![json!({"_id": "a", "n": 2}), json!({"_id": "b"})])?;
//! assert_eq!(out[0][0].as_ref().unwrap(), &vec![(json!(2), json!(null))]);
//! assert!(out[1][0].as_ref().unwrap().is_empty());
//! # Ok::<(), settee::Error>(())
//! ```

mod compile;
mod convert;
mod limits;
mod memory;
mod pool;
mod reads;
mod reduce;
mod thrown;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use memory::JsMemoryGuard;
pub use pool::{JsPool, JsStats};

/// What `reduce_limit` does when a JavaScript reduce does not shrink its
/// input fast enough (`[query_server_config] reduce_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReduceLimit {
    /// The reduction becomes the overflow marker (CouchDB's default).
    #[default]
    Error,
    /// The overflow is only logged.
    Log,
    /// No check.
    Off,
}

impl ReduceLimit {
    /// Parses `[query_server_config] reduce_limit` as CouchDB does: `"false"`
    /// turns the check off, `"log"` only logs, anything else means `true`.
    ///
    /// ```
    /// use settee::js::ReduceLimit;
    /// assert_eq!(ReduceLimit::from_config("false"), ReduceLimit::Off);
    /// assert_eq!(ReduceLimit::from_config("log"), ReduceLimit::Log);
    /// assert_eq!(ReduceLimit::from_config("yes"), ReduceLimit::Error);
    /// ```
    pub fn from_config(value: &str) -> ReduceLimit {
        match value {
            "false" => ReduceLimit::Off,
            "log" => ReduceLimit::Log,
            _ => ReduceLimit::Error,
        }
    }
}

/// Configuration of a [`JsPool`].
///
/// ```
/// use std::time::Duration;
/// use settee::js::{JsConfig, ReduceLimit};
///
/// let config = JsConfig {
///     workers: 2,
///     timeout: Duration::from_secs(30), // slow map functions
///     reduce_limit: ReduceLimit::Log,
///     ..JsConfig::default()
/// };
/// assert!(config.freeze_docs);
/// assert_eq!(JsConfig::default().timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct JsConfig {
    /// Number of worker threads (default: the available cores).
    pub workers: usize,
    /// Time a call may go without progress before its worker is abandoned and
    /// the call fails with `os_process_error` (CouchDB's `os_process_timeout`,
    /// default 5 s). Progress is counted per document.
    pub timeout: Duration,
    /// Iterations one loop of one call frame may run (boa's limit is per
    /// frame, and JavaScript cannot catch it).
    pub loop_iteration_limit: u64,
    /// Deepest JavaScript call recursion.
    pub recursion_limit: usize,
    /// Native stack of each worker thread, in bytes. It is virtual memory
    /// until used; boa needs about 25–30 KB per nesting level of source.
    pub stack_size: usize,
    /// Deepest source nesting accepted (also capped by `stack_size`).
    pub max_source_nesting: usize,
    /// Largest JSON (in bytes, approximately) one emitted key or value, or one
    /// reduction, may have.
    pub max_value_bytes: usize,
    /// Bytes one call (one document of a map batch, one reduce, one
    /// validation) may allocate and keep, default 1 GiB. Enforced only when
    /// [`JsMemoryGuard`] is the global allocator (the `settee` binary
    /// installs it); a call over it fails with `os_process_error` and its
    /// worker thread is replaced (the old one sleeps for good, keeping what
    /// it allocated).
    pub max_call_memory: usize,
    /// Compiled function groups each worker keeps.
    pub cache_size: usize,
    /// Deep-freeze documents before map functions see them, as CouchDB's
    /// `Couch.recursivelySeal` does (default true): mutations are silently
    /// ignored and one map function cannot change what the next one sees.
    /// Costs about a fifth of map throughput (boa stores frozen array
    /// elements sparsely).
    pub freeze_docs: bool,
    /// `reduce_limit` (default: [`ReduceLimit::Error`]).
    pub reduce_limit: ReduceLimit,
    /// `reduce_limit_threshold` (default 5000).
    pub reduce_limit_threshold: usize,
    /// `reduce_limit_ratio` (default 2.0).
    pub reduce_limit_ratio: f64,
}

impl Default for JsConfig {
    fn default() -> Self {
        JsConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: Duration::from_secs(5),
            loop_iteration_limit: 50_000_000,
            recursion_limit: 512,
            stack_size: 256 << 20,
            max_source_nesting: 1000,
            max_value_bytes: 64 << 20,
            max_call_memory: 1 << 30,
            cache_size: 64,
            freeze_docs: true,
            reduce_limit: ReduceLimit::Error,
            reduce_limit_threshold: 5000,
            reduce_limit_ratio: 2.0,
        }
    }
}

/// The kind of design-document function a source is compiled as
/// (see [`JsPool::compile_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// `views.*.map`
    Map,
    /// `views.*.reduce` (JavaScript ones; built-ins never reach this module)
    Reduce,
    /// `validate_doc_update`
    Validate,
    /// `filters.*`
    Filter,
}

impl FunctionKind {
    /// The word CouchDB uses in messages ("map", "reduce", ...).
    ///
    /// ```
    /// use settee::js::FunctionKind;
    /// assert_eq!(FunctionKind::Map.as_str(), "map");
    /// assert_eq!(FunctionKind::Validate.as_str(), "validate_doc_update");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Map => "map",
            FunctionKind::Reduce => "reduce",
            FunctionKind::Validate => "validate_doc_update",
            FunctionKind::Filter => "filter",
        }
    }
}

/// The map functions of one view group (one index signature).
///
/// `lib` makes CommonJS modules from the design document's `views.lib`
/// available to `require`:
///
/// ```
/// use std::sync::Arc;
/// use serde_json::json;
/// use settee::js::{JsConfig, JsPool, MapGroup};
///
/// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
/// let group = Arc::new(MapGroup {
///     id: "with-lib".into(),
///     ddoc_id: "_design/app".into(),
///     lib: Some(json!({"util": "exports.twice = function(x) { return 2 * x; };"})),
///     maps: vec!["function(doc) { emit(require('views/lib/util').twice(doc.n), null); }".into()],
/// });
/// let out = pool.map(&group, vec![json!({"_id": "a", "n": 21})])?;
/// assert_eq!(out[0][0], Ok(vec![(json!(42), json!(null))]));
/// # Ok::<(), settee::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MapGroup {
    /// The group's signature: the cache key for compiled functions.
    pub id: String,
    /// The design document the group runs for, named in the log lines of
    /// `log()` and of exceptions. Design documents with identical views
    /// share one group (one signature); it then names the one that opened
    /// the group first, as CouchDB names an index after the design document
    /// that started it.
    pub ddoc_id: String,
    /// The design document's `views.lib`, for `require('views/lib/...')`.
    pub lib: Option<Value>,
    /// Map function sources, in view order.
    pub maps: Vec<String>,
}

/// Rows emitted by one map function for one document, in emit order, or the
/// message of the exception it threw (its rows for that document are dropped,
/// as CouchDB does).
pub type MapResult = Result<Vec<(Value, Value)>, String>;

/// The output of a map group for one document: one [`MapResult`] per map
/// function, in the group's order.
pub type DocMapOutput = Vec<MapResult>;

/// One `validate_doc_update` call; see [`JsPool::validate`] for an example.
#[derive(Debug, Clone)]
pub struct ValidateCall {
    /// The design document's id, for caching and logs.
    pub ddoc_id: String,
    /// The design document (`this` inside the function); its
    /// `validate_doc_update` member is the source.
    pub ddoc: Arc<Value>,
    /// The document being written (with `_revisions`, `_deleted`).
    pub new_doc: Arc<Value>,
    /// The stored document it replaces, if any.
    pub old_doc: Option<Arc<Value>>,
    /// `{"db": .., "name": .., "roles": [..]}`, shared by the calls of a batch.
    pub user_ctx: Arc<Value>,
    /// The database's `_security` object, shared by the calls of a batch.
    pub sec_obj: Arc<Value>,
}

/// The member of CouchDB's reduce overflow marker `{"reduce_overflow_error": reason}`.
pub const REDUCE_OVERFLOW_ERROR: &str = "reduce_overflow_error";

/// If `reduction` is the overflow marker a reduce produced under
/// `reduce_limit`, the reason to report in the view row
/// `{"key": .., "error": "reduce_overflow_error", "reason": reason}`.
///
/// ```
/// use serde_json::json;
/// let marker = json!({"reduce_overflow_error": "Reduce output must shrink more rapidly: ..."});
/// assert!(settee::js::reduce_overflow_reason(&marker).is_some());
/// assert!(settee::js::reduce_overflow_reason(&json!({"sum": 1})).is_none());
/// ```
pub fn reduce_overflow_reason(reduction: &Value) -> Option<&str> {
    match reduction {
        Value::Object(m) if m.len() == 1 => m.get(REDUCE_OVERFLOW_ERROR)?.as_str(),
        _ => None,
    }
}
