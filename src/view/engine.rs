//! The view engine of one database: opens each design document's index,
//! keeps it up to date from the changes feed, and answers queries.
//!
//! Threads: the caller's thread reads changes and runs map functions on the
//! JavaScript pool (which spreads a batch over its workers); collation
//! encoding runs on rayon; one writer thread applies each batch to LMDB in a
//! single transaction together with the checkpoint. One update pass runs per
//! group at a time: a query that needs a fresher index waits for the running
//! pass and then finds its sequence covered, instead of starting another.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::collate::{collator_version, Collation};
use crate::error::{Error, Result};
use crate::js::{reduce_overflow_reason, JsPool, MapGroup};
use crate::store::{AllDocsRow, Database, IndexChange, ReadOptions, Rev};
use crate::view::bulk::{BulkBuildConfig, BulkBuilder};
use crate::view::design::{DesignDoc, Reducer, ViewGroup, ViewRef};
use crate::view::index::{DocRows, IndexIdentity, IndexStore, StoredRow};
use crate::view::query::{ResolvedQuery, UpdateMode, ViewQuery, DEFAULT_QUERY_LIMIT};
use crate::view::read::{MapRow, ReduceRow, Reduction, TreeReader};
use crate::view::rows::{prepare_doc_rows, TreeOutput};

/// Documents read and mapped per batch; one LMDB transaction each.
const BATCH_DOCS: usize = 2_000;

/// Rows per JavaScript reduce call before partial results are rereduced.
const JS_REDUCE_CHUNK: usize = 500;

/// A view query's response, serialising to CouchDB's JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ViewResponse {
    /// `{"total_rows", "offset", ["update_seq",] "rows"}`.
    Map {
        /// Rows in the whole view.
        total_rows: u64,
        /// Rows before the first returned one, in walking order.
        offset: u64,
        /// With `update_seq=true`: the sequence the index reflects.
        #[serde(skip_serializing_if = "Option::is_none")]
        update_seq: Option<u64>,
        /// The rows.
        rows: Vec<MapRow>,
    },
    /// `{["update_seq",] "rows"}`.
    Reduce {
        /// With `update_seq=true`: the sequence the index reflects.
        #[serde(skip_serializing_if = "Option::is_none")]
        update_seq: Option<u64>,
        /// The groups.
        rows: Vec<ReduceRow>,
    },
}

/// `GET /db/_design/d/_info`: a design document's index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignInfo {
    /// The design document name (without `_design/`).
    pub name: String,
    /// The index.
    pub view_index: IndexInfo,
}

/// The state of one view group's index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    /// The group's signature.
    pub signature: String,
    /// The design document's language.
    pub language: String,
    /// Sizes in bytes: `file` on disk, `active` and `external` (estimates).
    pub sizes: IndexSizes,
    /// The sequence the index reflects.
    pub update_seq: u64,
    /// Purges are not supported: always 0.
    pub purge_seq: u64,
    /// Whether an update pass is running.
    pub updater_running: bool,
    /// Index compaction is not separate from LMDB's own page reuse.
    pub compact_running: bool,
    /// Queries waiting for the updater.
    pub waiting_clients: u64,
    /// Whether a commit is pending (never: every batch commits).
    pub waiting_commit: bool,
}

/// Index sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexSizes {
    /// Bytes of the index files.
    pub file: u64,
    /// Bytes in use.
    pub active: u64,
    /// Bytes of the indexed data.
    pub external: u64,
}

/// How far an update pass has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProgress {
    /// Documents indexed in this pass.
    pub docs_done: u64,
    /// Changes the pass set out to index (an estimate from sequences).
    pub docs_total: u64,
    /// The checkpoint reached.
    pub seq: u64,
}

/// The view engine of one database.
///
/// ```
/// use serde_json::json;
/// use settee::js::{JsConfig, JsPool};
/// use settee::view::{ViewEngine, ViewQuery};
/// use settee::Database;
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::open_or_create(dir.path().join("shop"))?;
/// db.put(json!({"_id": "_design/app", "views": {
///     "by_type": {"map": "function(doc){ emit(doc.type, 1); }", "reduce": "_count"}}}))?;
/// db.put(json!({"_id": "a", "type": "order"}))?;
/// let views = ViewEngine::new(db, JsPool::new(JsConfig::default())?);
/// let response = views.query("_design/app", "by_type", &ViewQuery::new().group(true))?;
/// assert_eq!(serde_json::to_string(&response)?, r#"{"rows":[{"key":"order","value":1}]}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ViewEngine {
    db: Database,
    pool: JsPool,
    bulk: BulkBuildConfig,
    query_limit: u64,
}

/// An index opened for a group, shared by every engine in the process (LMDB
/// allows one environment per directory per process) and kept open until
/// cleanup or [`ViewEngine::close_indexes`].
struct OpenGroup {
    group: ViewGroup,
    index: IndexStore,
    map_group: Arc<MapGroup>,
    /// Held for the whole of an update pass.
    updating: Mutex<()>,
}

fn open_groups() -> &'static Mutex<HashMap<PathBuf, Arc<OpenGroup>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<OpenGroup>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl ViewEngine {
    /// The views of `db`, running JavaScript on `pool`.
    pub fn new(db: Database, pool: JsPool) -> ViewEngine {
        ViewEngine {
            db,
            pool,
            bulk: BulkBuildConfig::default(),
            query_limit: DEFAULT_QUERY_LIMIT,
        }
    }

    /// Sets how a group's first build runs (the bulk path, `view::bulk`): on
    /// by default, with a 256 MiB sort budget.
    pub fn with_bulk_build(mut self, config: BulkBuildConfig) -> ViewEngine {
        self.bulk = config;
        self
    }

    /// Sets the most rows one query returns and the largest `limit` it
    /// accepts (CouchDB's `[query_server_config] query_limit`; default
    /// [`DEFAULT_QUERY_LIMIT`](crate::view::DEFAULT_QUERY_LIMIT)).
    ///
    /// ```
    /// # use serde_json::json;
    /// # use settee::{Database, js::{JsConfig, JsPool}, view::{ViewEngine, ViewQuery}};
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Database::create(dir.path().join("db"))?;
    /// # db.put(json!({"_id": "_design/d", "views": {"v": {"map": "function(doc) { emit(doc.n, 1); }"}}}))?;
    /// # db.bulk_docs((0..5).map(|n| json!({"n": n})).collect(), Default::default())?;
    /// let views = ViewEngine::new(db, JsPool::new(JsConfig::default())?).with_query_limit(3);
    /// let all = serde_json::to_value(views.query("_design/d", "v", &ViewQuery::new())?)?;
    /// assert_eq!(all["rows"].as_array().unwrap().len(), 3);
    /// let err = views.query("_design/d", "v", &ViewQuery::new().limit(4)).unwrap_err();
    /// assert_eq!(err.reason(), "Limit is too large, must not exceed 3");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_query_limit(mut self, query_limit: u64) -> ViewEngine {
        self.query_limit = query_limit;
        self
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The JavaScript pool.
    pub fn pool(&self) -> &JsPool {
        &self.pool
    }

    /// Where a group's index lives.
    pub fn index_dir(&self, signature: &str) -> PathBuf {
        self.db.path().join("views").join(signature)
    }

    /// Loads and parses a design document (`_design/...`). The parse is kept
    /// until a design document of the database changes: every query starts
    /// here, and parsing (checks, the md5 signature) costs several times the
    /// rest of a one-row lookup.
    pub fn design_doc(&self, ddoc_id: &str) -> Result<Arc<DesignDoc>> {
        self.db.design_doc_memo(ddoc_id, DesignDoc::parse)
    }

    /// Answers a view query, as `GET /db/_design/d/_view/v` does.
    pub fn query(&self, ddoc_id: &str, view: &str, query: &ViewQuery) -> Result<ViewResponse> {
        let mut responses = self.query_many(ddoc_id, view, std::slice::from_ref(query))?;
        Ok(responses.pop().expect("one response per query"))
    }

    /// Answers several queries of one view, as
    /// `POST /db/_design/d/_view/v/queries` does: every query is checked
    /// before any runs (one invalid query fails the call), the index is
    /// brought up to date once (when any query asks for `update=true`), and
    /// the responses come in query order.
    ///
    /// ```
    /// # use serde_json::json;
    /// # use settee::{Database, js::{JsConfig, JsPool}, view::{ViewEngine, ViewQuery}};
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Database::create(dir.path().join("db"))?;
    /// # db.put(json!({"_id": "_design/d", "views": {"v": {"map": "function(doc) { emit(doc.n, 1); }", "reduce": "_count"}}}))?;
    /// # db.bulk_docs((0..5).map(|n| json!({"n": n})).collect(), Default::default())?;
    /// let views = ViewEngine::new(db, JsPool::new(JsConfig::default())?);
    /// let queries = [ViewQuery::new(), ViewQuery::new().reduce(false).limit(2)];
    /// let responses = views.query_many("_design/d", "v", &queries)?;
    /// assert_eq!(serde_json::to_value(&responses[0])?["rows"][0]["value"], 5);
    /// assert_eq!(serde_json::to_value(&responses[1])?["rows"].as_array().unwrap().len(), 2);
    /// let invalid = [ViewQuery::new(), ViewQuery::new().include_docs(true)];
    /// assert_eq!(views.query_many("_design/d", "v", &invalid).unwrap_err().name(), "query_parse_error");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query_many(
        &self,
        ddoc_id: &str,
        view: &str,
        queries: &[ViewQuery],
    ) -> Result<Vec<ViewResponse>> {
        let ddoc = self.design_doc(ddoc_id)?;
        let Some(view_ref) = ddoc.group.view(view) else {
            return Err(Error::not_found("missing_named_view"));
        };
        let reducer = view_ref
            .reduce
            .map(|i| ddoc.group.maps[view_ref.map].reduces[i].reducer.clone());
        let resolved = queries
            .iter()
            .map(|query| {
                // CouchDB applies the limit before its other checks.
                let limit = query.limit_within(self.query_limit)?;
                let mut resolved = query.resolve(reducer.is_some())?;
                resolved.options.limit = Some(limit);
                Ok(resolved)
            })
            .collect::<Result<Vec<_>>>()?;
        let wants = |mode: UpdateMode| queries.iter().any(|q| q.update == mode);
        let group = self.open_javascript_group(&ddoc)?;
        if wants(UpdateMode::True) {
            self.update_group(&group, &mut |_| ControlFlow::Continue(()))?;
            // A query that waited for an index whose design document changed
            // meanwhile would answer for views that no longer exist.
            if self.design_doc_signature(ddoc_id)? != Some(group.group.signature.clone()) {
                return Err(Error::not_found("Design document was updated or deleted."));
            }
        }
        let responses = resolved
            .iter()
            .map(|r| self.read_view(&group, view_ref, reducer.clone(), r))
            .collect();
        if wants(UpdateMode::Lazy) {
            // After the read: the answer is the index as it was (CouchDB
            // updates "after the response"), and the update runs meanwhile.
            let engine = self.clone();
            std::thread::spawn(move || {
                if let Err(e) = engine.update_group(&group, &mut |_| ControlFlow::Continue(())) {
                    tracing::warn!(error = %e, "background view update failed");
                }
            });
        }
        responses
    }

    /// The view-group signature of a design document as stored now; `None`
    /// once it is deleted.
    fn design_doc_signature(&self, ddoc_id: &str) -> Result<Option<String>> {
        match self.design_doc(ddoc_id) {
            Ok(ddoc) => Ok(Some(ddoc.group.signature.clone())),
            Err(e) if e.status() == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Answers a resolved query from the committed index.
    fn read_view(
        &self,
        group: &OpenGroup,
        view_ref: ViewRef,
        reducer: Option<Reducer>,
        resolved: &ResolvedQuery,
    ) -> Result<ViewResponse> {
        let query = &resolved.options;
        let txn = group.index.read_txn()?;
        let update_seq = if query.update_seq {
            Some(group.index.update_seq(&txn)?)
        } else {
            None
        };
        if group.index.is_building(&txn)? {
            // A bulk build's partial rows: the index is not there yet.
            return Ok(if resolved.reduce {
                ViewResponse::Reduce {
                    update_seq,
                    rows: Vec::new(),
                }
            } else {
                ViewResponse::Map {
                    total_rows: 0,
                    offset: 0,
                    update_seq,
                    rows: Vec::new(),
                }
            });
        }
        let tree = &group.group.maps[view_ref.map];
        let reader = TreeReader {
            store: &group.index,
            txn: &txn,
            tree: view_ref.map as u16,
            collation: tree.collation,
        };
        if resolved.reduce {
            let reducer = reducer.expect("a reduce query has a reducer");
            let rows =
                reader.reduce_rows(resolved, &mut |rows| self.reduce_group(&reducer, rows))?;
            return Ok(ViewResponse::Reduce { update_seq, rows });
        }
        let conflicts = query.conflicts == Some(true);
        let mut load = |id: &str, rev: Option<&str>| self.load_doc(id, rev, conflicts);
        let map = reader.map_rows(resolved, &mut load)?;
        Ok(ViewResponse::Map {
            total_rows: map.total_rows,
            offset: map.offset,
            update_seq,
            rows: map.rows,
        })
    }

    /// Brings a design document's index up to date with the database, calling
    /// `progress` after every batch; `ControlFlow::Break` stops the pass early
    /// (the batches handed to the writer still commit, each with its
    /// checkpoint, so the next update resumes there; a first build, which
    /// takes the bulk path, commits the batches read so far in one
    /// transaction). Returns the sequence indexed.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// # use serde_json::json;
    /// # use settee::{Database, js::{JsConfig, JsPool}, view::ViewEngine};
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Database::create(dir.path().join("db"))?;
    /// # db.put(json!({"_id": "_design/sales", "views": {"v": {"map": "function(doc) { emit(doc.n, 1); }"}}}))?;
    /// # db.bulk_docs((0..10).map(|n| json!({"n": n})).collect(), Default::default())?;
    /// # let views = ViewEngine::new(db.clone(), JsPool::new(JsConfig::default())?);
    /// let mut reports = 0;
    /// let seq = views.update("_design/sales", &mut |p| {
    ///     reports += 1;
    ///     assert!(p.docs_done <= p.docs_total);
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(seq, db.update_seq()?);
    /// assert!(reports >= 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update(
        &self,
        ddoc_id: &str,
        progress: &mut dyn FnMut(BuildProgress) -> ControlFlow<()>,
    ) -> Result<u64> {
        let ddoc = self.design_doc(ddoc_id)?;
        let group = self.open_javascript_group(&ddoc)?;
        self.update_group(&group, progress)
    }

    /// A design document's index state (`GET /db/_design/d/_info`).
    pub fn info(&self, ddoc_id: &str) -> Result<DesignInfo> {
        let ddoc = self.design_doc(ddoc_id)?;
        let group = self.open_group(&ddoc)?;
        let update_seq = {
            let txn = group.index.read_txn()?;
            group.index.update_seq(&txn)?
        };
        let file = group.index.disk_size()?;
        let updater_running = group.updating.try_lock().is_err();
        Ok(DesignInfo {
            name: ddoc_id.trim_start_matches("_design/").to_string(),
            view_index: IndexInfo {
                signature: ddoc.group.signature.clone(),
                language: ddoc.group.language.clone(),
                sizes: IndexSizes {
                    file,
                    active: file,
                    external: file,
                },
                update_seq,
                purge_seq: 0,
                updater_running,
                compact_running: false,
                waiting_clients: 0,
                waiting_commit: false,
            },
        })
    }

    /// Deletes the indexes no design document uses any longer
    /// (`POST /db/_view_cleanup`). Returns the signatures removed.
    ///
    /// Safe to run at any time: the index directories are listed before the
    /// design documents are read, and each candidate is checked against the
    /// design documents again just before it goes, so an index a design
    /// document uses (including one saved meanwhile) is never deleted. A pass
    /// running on a removed index finishes first; queries opening it meanwhile
    /// wait and then start a new one. [`ViewEngine::cleanup_automatically`]
    /// runs this after design document changes.
    pub fn cleanup(&self) -> Result<Vec<String>> {
        let dir = self.db.path().join("views");
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(removed);
        };
        let mut candidates = Vec::new();
        for entry in entries {
            let entry = entry?;
            candidates.push((
                entry.file_name().to_string_lossy().to_string(),
                entry.path(),
            ));
        }
        candidates.sort();
        let mut live = self.live_signatures()?;
        for (name, path) in candidates {
            if live.contains(&name) {
                continue;
            }
            let retired = remove_index_if(&path, || {
                live = self.live_signatures()?;
                Ok(!live.contains(&name))
            })?;
            if retired {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// The signatures of the indexes the design documents use.
    fn live_signatures(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .design_docs()?
            .into_iter()
            .map(|ddoc| ddoc.group.signature)
            .collect())
    }

    /// Deletes a design document's index, so that the next update rebuilds it
    /// from scratch (`settee reindex --from-scratch`). A pass running on it
    /// finishes first.
    ///
    /// ```
    /// # use serde_json::json;
    /// # use settee::{Database, js::{JsConfig, JsPool}, view::ViewEngine};
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Database::create(dir.path().join("db"))?;
    /// # db.put(json!({"_id": "_design/sales", "views": {"v": {"map": "function(doc) { emit(doc.n, 1); }"}}}))?;
    /// # db.bulk_docs((0..10).map(|n| json!({"n": n})).collect(), Default::default())?;
    /// # let views = ViewEngine::new(db, JsPool::new(JsConfig::default())?);
    /// let mut rebuilt = 0;
    /// views.update("_design/sales", &mut |_| std::ops::ControlFlow::Continue(()))?;
    /// views.reset("_design/sales")?;
    /// views.update("_design/sales", &mut |p| {
    ///     rebuilt = p.docs_done; // a full build again
    ///     std::ops::ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(rebuilt, 10);
    /// assert_eq!(views.row_counts("_design/sales")?, vec![10]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&self, ddoc_id: &str) -> Result<()> {
        let ddoc = self.design_doc(ddoc_id)?;
        let dir = self.index_dir(&ddoc.group.signature);
        if dir.exists() {
            remove_index_if(&dir, || Ok(true))?;
        }
        Ok(())
    }

    /// The number of rows of each distinct map function (index tree) of a
    /// design document, as committed, in [`ViewGroup::maps`] order.
    pub fn row_counts(&self, ddoc_id: &str) -> Result<Vec<u64>> {
        let ddoc = self.design_doc(ddoc_id)?;
        let group = self.open_group(&ddoc)?;
        let txn = group.index.read_txn()?;
        (0..ddoc.group.maps.len())
            .map(|tree| group.index.row_count(&txn, tree as u16))
            .collect()
    }

    /// Closes this database's open indexes (before the database is deleted,
    /// for instance). They reopen on the next query.
    pub fn close_indexes(&self) {
        let prefix = self.db.path().join("views");
        let mut open = open_groups().lock().expect("registry lock");
        let paths: Vec<PathBuf> = open
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for path in paths {
            if let Some(group) = open.remove(&path) {
                drop(group.updating.lock());
            }
            wait_for_close(&path);
        }
    }

    /// Every design document of the database that parses, in id order.
    pub fn design_docs(&self) -> Result<Vec<DesignDoc>> {
        let query = crate::store::AllDocsQuery::new()
            .start_key("_design/")
            .end_key("_design0")
            .include_docs(true);
        let response = self.db.all_docs(&query)?;
        Ok(response
            .rows
            .iter()
            .filter_map(|row| match row {
                AllDocsRow::Doc {
                    doc: Some(Some(doc)),
                    ..
                } => DesignDoc::parse(doc).ok(),
                _ => None,
            })
            .collect())
    }

    /// Opens the index of a design document whose views this engine can run
    /// (CouchDB answers 500 `unknown_query_language` for the others).
    fn open_javascript_group(&self, ddoc: &DesignDoc) -> Result<Arc<OpenGroup>> {
        if !ddoc.group.is_javascript() {
            return Err(Error::couch(
                500,
                "unknown_query_language",
                ddoc.group.language.clone(),
            ));
        }
        self.open_group(ddoc)
    }

    /// Opens (or finds open) the index of `ddoc`'s group. Design documents
    /// with identical views share one group; its [`MapGroup::ddoc_id`] (for
    /// logs) is the design document that opened it first, as CouchDB names
    /// an index process after the design document that started it.
    fn open_group(&self, ddoc: &DesignDoc) -> Result<Arc<OpenGroup>> {
        let group = &ddoc.group;
        let dir = self.index_dir(&group.signature);
        let mut open = open_groups().lock().expect("registry lock");
        if let Some(existing) = open.get(&dir) {
            return Ok(existing.clone());
        }
        // An index being removed is reopened (empty) once its files are gone.
        while removal_pending(&dir) {
            drop(open);
            wait_for_removal(&dir);
            open = open_groups().lock().expect("registry lock");
            if let Some(existing) = open.get(&dir) {
                return Ok(existing.clone());
            }
        }
        let identity = IndexIdentity {
            signature: group.signature.clone(),
            collator_version: collator_version(),
            trees: group.maps.len() as u16,
        };
        wait_for_close(&dir);
        let index = IndexStore::open(&dir, &identity)?;
        let opened = Arc::new(OpenGroup {
            map_group: Arc::new(MapGroup {
                id: group.signature.clone(),
                ddoc_id: ddoc.id.clone(),
                lib: group.lib.clone(),
                maps: group
                    .maps
                    .iter()
                    .map(|m| m.map_source().unwrap_or_default().to_string())
                    .collect(),
            }),
            group: group.clone(),
            index,
            updating: Mutex::new(()),
        });
        open.insert(dir, opened.clone());
        Ok(opened)
    }

    /// One update pass: index every change after the group's checkpoint.
    fn update_group(
        &self,
        group: &OpenGroup,
        progress: &mut dyn FnMut(BuildProgress) -> ControlFlow<()>,
    ) -> Result<u64> {
        let target = self.db.update_seq()?;
        let _pass = group.updating.lock().expect("update lock");
        let start = {
            let txn = group.index.read_txn()?;
            group.index.update_seq(&txn)?
        };
        if start >= target {
            return Ok(start);
        }
        let collations: Vec<Collation> = group.group.maps.iter().map(|m| m.collation).collect();
        let mut done = 0;
        let mut seq = start;
        if start == 0 && self.bulk.enabled {
            let stopped =
                self.bulk_build(group, &collations, target, progress, &mut done, &mut seq)?;
            if stopped {
                return Ok(seq);
            }
        }
        std::thread::scope(|scope| -> Result<()> {
            // The writer applies batch N while this thread maps batch N + 1.
            let (to_writer, batches) = crossbeam_channel::bounded::<(Vec<DocRows>, u64)>(1);
            let writer = scope.spawn(move || -> Result<()> {
                for (rows, seq) in batches {
                    group.index.apply(&rows, seq)?;
                }
                Ok(())
            });
            let mapped = (|| -> Result<()> {
                loop {
                    let changes = self.db.changes_for_indexing(seq, BATCH_DOCS)?;
                    let Some(last) = changes.last() else { break };
                    let last_seq = last.seq;
                    let rows = self.map_changes(group, &collations, changes)?;
                    done += rows.len() as u64;
                    seq = last_seq;
                    if to_writer.send((rows, seq)).is_err() {
                        break;
                    }
                    let flow = progress(BuildProgress {
                        docs_done: done,
                        docs_total: target - start,
                        seq,
                    });
                    if flow.is_break() {
                        break;
                    }
                }
                Ok(())
            })();
            drop(to_writer);
            let written = writer.join().expect("index writer panicked");
            mapped.and(written)
        })?;
        Ok(seq)
    }

    /// The first build of a group (checkpoint 0): reads the changes up to
    /// `target` (the database's seq when the pass began, so no document comes
    /// twice), maps them batch by batch into a [`BulkBuilder`] and writes the
    /// whole index, visible at its last commit (`view::bulk` module docs).
    /// Updates `done` and `seq`; returns whether `progress` asked to stop. On
    /// error nothing becomes visible.
    fn bulk_build(
        &self,
        group: &OpenGroup,
        collations: &[Collation],
        target: u64,
        progress: &mut dyn FnMut(BuildProgress) -> ControlFlow<()>,
        done: &mut u64,
        seq: &mut u64,
    ) -> Result<bool> {
        let trees = group.group.maps.len() as u16;
        let builder = BulkBuilder::new(&group.index, trees, self.bulk.memory_budget)?;
        let mut stopped = false;
        let mut read_to = *seq;
        let builder = std::thread::scope(|scope| -> Result<BulkBuilder> {
            // The collector sorts and spills batch N while this thread maps N + 1.
            let (to_collector, batches) = crossbeam_channel::bounded::<Vec<DocRows>>(1);
            let collector = scope.spawn(move || -> Result<BulkBuilder> {
                let mut builder = builder;
                for rows in batches {
                    builder.add(&rows)?;
                }
                Ok(builder)
            });
            let mapped = (|| -> Result<()> {
                loop {
                    let mut changes = self.db.changes_for_indexing(read_to, BATCH_DOCS)?;
                    let full = changes.len() == BATCH_DOCS;
                    changes.retain(|c| c.seq <= target);
                    let Some(last) = changes.last() else { break };
                    let last_seq = last.seq;
                    let reached_target = !full || changes.len() < BATCH_DOCS;
                    let rows = self.map_changes(group, collations, changes)?;
                    *done += rows.len() as u64;
                    read_to = last_seq;
                    if to_collector.send(rows).is_err() {
                        break;
                    }
                    let flow = progress(BuildProgress {
                        docs_done: *done,
                        docs_total: target,
                        seq: read_to,
                    });
                    if flow.is_break() {
                        stopped = true;
                        break;
                    }
                    if reached_target {
                        break;
                    }
                }
                Ok(())
            })();
            drop(to_collector);
            let collected = collector.join().expect("bulk collector panicked");
            mapped.and(collected)
        })?;
        if read_to > *seq {
            builder.finish(&group.index, read_to)?;
            *seq = read_to;
        }
        Ok(stopped)
    }

    /// Maps one batch of changes and encodes the resulting rows.
    fn map_changes(
        &self,
        group: &OpenGroup,
        collations: &[Collation],
        changes: Vec<IndexChange>,
    ) -> Result<Vec<DocRows>> {
        let include_design = group.group.include_design();
        let local_seq = group.group.local_seq();
        let mut ids = Vec::with_capacity(changes.len());
        let mut docs = Vec::with_capacity(changes.len());
        let mut removed = Vec::new();
        for change in changes {
            match change.doc {
                Some(mut doc) if !change.deleted => {
                    if change.id.starts_with("_design/") && !include_design {
                        continue;
                    }
                    if !local_seq {
                        if let Some(members) = doc.as_object_mut() {
                            members.shift_remove("_local_seq");
                        }
                    }
                    ids.push(change.id);
                    docs.push(doc);
                }
                _ => removed.push(DocRows {
                    doc_id: change.id,
                    rows: Vec::new(),
                }),
            }
        }
        let outputs = if docs.is_empty() {
            Vec::new()
        } else {
            self.pool.map(&group.map_group, docs)?
        };
        let mut rows: Vec<DocRows> = ids
            .into_par_iter()
            .zip(outputs.into_par_iter())
            .map(|(id, per_map)| {
                let outputs = per_map
                    .into_iter()
                    .enumerate()
                    .map(|(tree, emits)| TreeOutput {
                        tree: tree as u16,
                        collation: collations[tree],
                        // A map that threw for this doc contributes nothing.
                        emits: emits.unwrap_or_default(),
                    })
                    .collect();
                prepare_doc_rows(&id, outputs)
            })
            .collect();
        rows.extend(removed);
        Ok(rows)
    }

    /// Reduces one group's rows with a view's reducer.
    fn reduce_group(&self, reducer: &Reducer, rows: &[StoredRow]) -> Result<Reduction> {
        match reducer {
            Reducer::Builtin(builtin) => builtin
                .reduce(rows.iter().map(|r| (&r.key, r.doc_id.as_str(), &r.value)))
                .map(Reduction::Value),
            Reducer::JavaScript(source) => {
                let sources = [source.clone()];
                let mut partials = Vec::new();
                for chunk in rows.chunks(JS_REDUCE_CHUNK) {
                    let chunk: Vec<(Value, String, Value)> = chunk
                        .iter()
                        .map(|r| (r.key.clone(), r.doc_id.clone(), r.value.clone()))
                        .collect();
                    let mut reduced = self.pool.reduce(&sources, &chunk)?;
                    partials.push(reduced.remove(0));
                }
                let value = if partials.len() == 1 {
                    partials.remove(0)
                } else {
                    self.pool.rereduce(&sources, vec![partials])?.remove(0)
                };
                Ok(match reduce_overflow_reason(&value) {
                    Some(reason) => Reduction::Error {
                        error: crate::js::REDUCE_OVERFLOW_ERROR.to_string(),
                        reason: reason.to_string(),
                    },
                    None => Reduction::Value(value),
                })
            }
        }
    }

    /// `include_docs`: the document (at `rev` if given), or `null`.
    fn load_doc(&self, id: &str, rev: Option<&str>, conflicts: bool) -> Result<Value> {
        let mut options = ReadOptions::default().conflicts(conflicts);
        if let Some(rev) = rev {
            match Rev::parse(rev) {
                Ok(rev) => options = options.rev(rev),
                Err(_) => return Ok(Value::Null),
            }
        }
        match self.db.get(id, &options) {
            Ok(doc) => Ok(doc),
            Err(Error::NotFound(_)) => Ok(Value::Null),
            Err(e) => Err(e),
        }
    }
}

/// Index directories being removed: opening one waits until its files are gone.
fn removals() -> &'static (Mutex<HashSet<PathBuf>>, Condvar) {
    static REMOVING: OnceLock<(Mutex<HashSet<PathBuf>>, Condvar)> = OnceLock::new();
    REMOVING.get_or_init(Default::default)
}

fn removal_pending(path: &Path) -> bool {
    removals().0.lock().expect("removals lock").contains(path)
}

fn wait_for_removal(path: &Path) {
    let (lock, removed) = removals();
    let mut pending = lock.lock().expect("removals lock");
    while pending.contains(path) {
        pending = removed.wait(pending).expect("removals lock");
    }
}

/// Closes an index (after any running pass and every query still holding it)
/// and deletes its files, if `still_wanted` (called under the registry lock,
/// so no query opens the index meanwhile) says so. Returns whether it did.
fn remove_index_if(path: &Path, still_wanted: impl FnOnce() -> Result<bool>) -> Result<bool> {
    let closed = {
        let mut open = open_groups().lock().expect("registry lock");
        if !still_wanted()? {
            return Ok(false);
        }
        let mut pending = removals().0.lock().expect("removals lock");
        if !pending.insert(path.to_path_buf()) {
            // Another thread is removing it already.
            return Ok(false);
        }
        open.remove(path)
    };
    if let Some(group) = closed {
        // Let a running pass finish before the files go.
        drop(group.updating.lock());
        drop(group);
    }
    // heed closes an environment after its last handle drops, which may be a
    // query still reading: wait for that.
    wait_for_close(path);
    let result = match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(true),
    };
    let (lock, removed) = removals();
    lock.lock().expect("removals lock").remove(path);
    removed.notify_all();
    result
}

/// heed closes an environment asynchronously after its last handle drops; a
/// reopen must wait for that, or heed reports it as already open.
fn wait_for_close(dir: &Path) {
    let Ok(canonical) = dir.canonicalize() else {
        return;
    };
    if let Some(event) = heed::env_closing_event(canonical) {
        event.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::js::JsConfig;
    use serde_json::json;

    #[test]
    fn an_index_in_the_middle_of_a_bulk_load_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        db.put(json!({"_id": "_design/d", "views": {
            "v": {"map": "function(doc) { emit(doc.n, 1); }", "reduce": "_count"}}}))
            .unwrap();
        db.bulk_docs(
            (0..5).map(|n| json!({"n": n})).collect(),
            Default::default(),
        )
        .unwrap();
        let views = ViewEngine::new(db, JsPool::new(JsConfig::default()).unwrap());
        let stale = ViewQuery::new().reduce(false).update(UpdateMode::False);
        let built = serde_json::to_value(
            views
                .query("_design/d", "v", &stale.clone().update(UpdateMode::True))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(built["total_rows"], 5);
        // Rows committed by an unfinished bulk load are not an index yet.
        let group = views
            .open_javascript_group(&views.design_doc("_design/d").unwrap())
            .unwrap();
        group.index.mark_building().unwrap();
        let map = serde_json::to_value(views.query("_design/d", "v", &stale).unwrap()).unwrap();
        assert_eq!(map, json!({"total_rows": 0, "offset": 0, "rows": []}));
        let reduce = views
            .query(
                "_design/d",
                "v",
                &ViewQuery::new().update(UpdateMode::False),
            )
            .unwrap();
        assert_eq!(serde_json::to_value(reduce).unwrap(), json!({"rows": []}));
    }
}
