//! The changes feed: every document once, at the seq of its latest change.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use heed::types::DecodeIgnore;
use heed::{RoTxn, WithoutTls};
use serde::Serialize;
use serde_json::Value;

use super::doc::{self, DESIGN_PREFIX};
use super::meta::Counters;
use super::read::{self, Extras};
use super::record::DocRecord;
use super::storage::{Tables, TxnResult};

/// Where a changes feed starts (exclusive).
///
/// ```
/// use settee::{ChangesQuery, Database, Since};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// db.put(serde_json::json!({"_id": "a"})).unwrap();
/// db.put(serde_json::json!({"_id": "b"})).unwrap();
/// let after_1 = db.changes(&ChangesQuery::new().since(Since::Seq(1))).unwrap();
/// assert_eq!(after_1.results[0].id, "b");
/// let now = db.changes(&ChangesQuery::new().since(Since::Now)).unwrap();
/// assert!(now.results.is_empty());
/// assert_eq!(now.last_seq, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// After this seq (0: from the beginning).
    Seq(u64),
    /// After the current update seq.
    Now,
}

impl Default for Since {
    fn default() -> Self {
        Since::Seq(0)
    }
}

/// `style=`: which revisions a row lists.
///
/// ```
/// use serde_json::json;
/// use settee::{BulkOptions, ChangesQuery, ChangesStyle, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// // Two conflicting branches, written as a replicator would.
/// let (a, b) = (format!("1-{}", "a".repeat(32)), format!("1-{}", "b".repeat(32)));
/// let docs = vec![json!({"_id": "x", "_rev": a}), json!({"_id": "x", "_rev": b})];
/// db.bulk_docs(docs, BulkOptions::replicated()).unwrap();
/// let main = db.changes(&ChangesQuery::new()).unwrap();
/// assert_eq!(main.results[0].changes.len(), 1);
/// let all = db.changes(&ChangesQuery::new().style(ChangesStyle::AllDocs)).unwrap();
/// assert_eq!(all.results[0].changes.len(), 2);
/// assert_eq!(all.results[0].changes[0].rev, b); // the winner first
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChangesStyle {
    /// The winning revision only.
    #[default]
    MainOnly,
    /// Every leaf revision, winner first.
    AllDocs,
}

/// A predicate over the winning document (tombstones carry `_deleted: true`).
/// See [`ChangesFilter::Predicate`].
pub type DocPredicate = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// Which documents a changes feed reports.
///
/// ```
/// use std::sync::Arc;
/// use serde_json::json;
/// use settee::{BulkOptions, ChangesFilter, ChangesQuery, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let docs = vec![
///     json!({"_id": "a", "type": "order"}),
///     json!({"_id": "b", "type": "user"}),
///     json!({"_id": "_design/app"}),
/// ];
/// db.bulk_docs(docs, BulkOptions::default()).unwrap();
/// let ids = |filter| -> Vec<String> {
///     let feed = db.changes(&ChangesQuery::new().filter(filter)).unwrap();
///     feed.results.into_iter().map(|r| r.id).collect()
/// };
/// assert_eq!(ids(ChangesFilter::DocIds(vec!["b".into()])), ["b"]);
/// assert_eq!(ids(ChangesFilter::Design), ["_design/app"]);
/// let orders = ChangesFilter::Predicate(Arc::new(|doc| doc["type"] == "order"));
/// assert_eq!(ids(orders), ["a"]);
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum ChangesFilter {
    /// Every document.
    #[default]
    All,
    /// `filter=_doc_ids`: only these ids.
    DocIds(Vec<String>),
    /// `filter=_design`: only design documents.
    Design,
    /// A custom predicate over the winning document, e.g. a compiled JS
    /// `filters` function or a Mango selector.
    Predicate(DocPredicate),
}

impl fmt::Debug for ChangesFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangesFilter::All => f.write_str("All"),
            ChangesFilter::DocIds(ids) => f.debug_tuple("DocIds").field(ids).finish(),
            ChangesFilter::Design => f.write_str("Design"),
            ChangesFilter::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// A changes feed request, as CouchDB's `_changes` parameters.
///
/// ```
/// use settee::{ChangesQuery, Database, Since};
///
/// let q = ChangesQuery::new().since(Since::Seq(10)).limit(5).include_docs(true);
/// assert_eq!(q.limit, Some(5));
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// for id in ["a", "b", "c"] {
///     db.put(serde_json::json!({"_id": id, "n": 1})).unwrap();
/// }
/// let newest = db
///     .changes(&ChangesQuery::new().descending(true).limit(1).include_docs(true))
///     .unwrap();
/// assert_eq!(newest.results[0].id, "c");
/// assert_eq!(newest.results[0].doc.as_ref().unwrap()["n"], 1);
/// assert_eq!(newest.pending, 2);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ChangesQuery {
    /// Start after this seq. With `descending`, rows at or below it are
    /// read from the newest down (`Seq(0)` and `Now` both mean the newest).
    pub since: Since,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Newest first.
    pub descending: bool,
    /// Add each winning document as `doc`.
    pub include_docs: bool,
    /// With `include_docs`, add `_conflicts` to the documents.
    pub conflicts: bool,
    /// Which revisions rows list.
    pub style: ChangesStyle,
    /// Which documents are reported.
    pub filter: ChangesFilter,
}

impl ChangesQuery {
    /// The default query: everything from the start.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `since`.
    pub fn since(mut self, since: Since) -> Self {
        self.since = since;
        self
    }
    /// Sets `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Sets `descending`.
    pub fn descending(mut self, on: bool) -> Self {
        self.descending = on;
        self
    }
    /// Sets `include_docs`.
    pub fn include_docs(mut self, on: bool) -> Self {
        self.include_docs = on;
        self
    }
    /// Sets `conflicts`.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{BulkOptions, ChangesQuery, Database};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let (a, b) = (format!("1-{}", "a".repeat(32)), format!("1-{}", "b".repeat(32)));
    /// let docs = vec![json!({"_id": "x", "_rev": a}), json!({"_id": "x", "_rev": b})];
    /// db.bulk_docs(docs, BulkOptions::replicated()).unwrap();
    /// let feed = db.changes(&ChangesQuery::new().include_docs(true).conflicts(true)).unwrap();
    /// assert_eq!(feed.results[0].doc.as_ref().unwrap()["_conflicts"], json!([a]));
    /// ```
    pub fn conflicts(mut self, on: bool) -> Self {
        self.conflicts = on;
        self
    }
    /// Sets `style`.
    pub fn style(mut self, style: ChangesStyle) -> Self {
        self.style = style;
        self
    }
    /// Sets the filter.
    pub fn filter(mut self, filter: ChangesFilter) -> Self {
        self.filter = filter;
        self
    }
}

/// `{"rev": ..}` in a change row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRev {
    /// A leaf revision.
    pub rev: String,
}

/// One row of a changes feed, serialised as CouchDB's
/// `{"seq", "id", "changes": [{"rev"}], "deleted"?, "doc"?}`.
///
/// ```
/// use serde_json::json;
/// use settee::{ChangesQuery, Database, Rev};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let put = db.put(json!({"_id": "a"})).unwrap();
/// let del = db.delete("a", &Rev::parse(&put.rev).unwrap()).unwrap();
/// let row = &db.changes(&ChangesQuery::new()).unwrap().results[0];
/// assert_eq!(
///     serde_json::to_value(row).unwrap(),
///     json!({"seq": 2, "id": "a", "changes": [{"rev": del.rev}], "deleted": true})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRow {
    /// The seq of the document's latest change.
    pub seq: u64,
    /// The document id.
    pub id: String,
    /// The winning revision, or every leaf with `style=all_docs`.
    pub changes: Vec<ChangeRev>,
    /// Whether the document is deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The winning document, with `include_docs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<Value>,
}

/// A changes feed answer: `{"results", "last_seq", "pending"}`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = settee::Database::create(dir.path().join("db")).unwrap();
/// db.put(serde_json::json!({"_id": "a"})).unwrap();
/// db.put(serde_json::json!({"_id": "b"})).unwrap();
/// let page = db.changes(&settee::ChangesQuery::new().limit(1)).unwrap();
/// assert_eq!((page.results.len(), page.last_seq, page.pending), (1, 1, 1));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangesResponse {
    /// The rows.
    pub results: Vec<ChangeRow>,
    /// Where the next request continues (`since=last_seq`).
    pub last_seq: u64,
    /// How many changes lie beyond `last_seq` in the feed's direction.
    pub pending: u64,
}

/// A committed change, as sent to subscribers ([`Database::subscribe`](crate::Database::subscribe)).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = settee::Database::create(dir.path().join("db")).unwrap();
/// let rx = db.subscribe();
/// let put = db.put(serde_json::json!({"_id": "a"})).unwrap();
/// let event = rx.try_recv().unwrap(); // sent before `put` returns
/// assert_eq!(event, settee::ChangeEvent { seq: 1, id: "a".into(), rev: put.rev, deleted: false });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    /// The change's seq.
    pub seq: u64,
    /// The document id.
    pub id: String,
    /// The document's winning revision after the change.
    pub rev: String,
    /// Whether the document is now deleted.
    pub deleted: bool,
}

/// A document a map function sees, at its latest change
/// ([`Database::changes_for_indexing`](crate::Database::changes_for_indexing)).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = settee::Database::create(dir.path().join("db")).unwrap();
/// let put = db.put(serde_json::json!({"_id": "a", "n": 1})).unwrap();
/// let change = db.changes_for_indexing(0, 1).unwrap().remove(0);
/// let doc = change.doc.unwrap();
/// assert_eq!((doc["_id"].as_str(), doc["_rev"].as_str()), (Some("a"), Some(put.rev.as_str())));
/// assert_eq!(doc["_local_seq"], 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IndexChange {
    /// The seq of the document's latest change.
    pub seq: u64,
    /// The document id.
    pub id: String,
    /// Whether the document is deleted (then `doc` is `None`).
    pub deleted: bool,
    /// The winning revision: `_id`, `_rev`, the body, `_conflicts` and
    /// `_deleted_conflicts` when there are any, and `_local_seq`.
    pub doc: Option<Value>,
}

/// Runs a changes query on a snapshot.
pub(crate) fn changes(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    q: &ChangesQuery,
) -> TxnResult<ChangesResponse> {
    let update_seq = Counters::load(txn, t)?.update_seq;
    let since = match q.since {
        Since::Now => update_seq,
        Since::Seq(s) => s,
    };
    let mut scan = Scan {
        limit: q.limit.unwrap_or(usize::MAX),
        results: Vec::new(),
        last_examined: None,
        hit_limit: q.limit == Some(0),
    };
    if !scan.hit_limit {
        match &q.filter {
            ChangesFilter::DocIds(ids) => {
                let mut found = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
                    if let Some(rec) = read::record(txn, t, id)? {
                        found.push((rec.seq, id.as_str(), rec));
                    }
                }
                found.sort_by_key(|(seq, _, _)| *seq);
                if q.descending {
                    found.reverse();
                }
                for (seq, id, rec) in found {
                    let in_range = if q.descending {
                        since == 0 || seq <= since
                    } else {
                        seq > since
                    };
                    if in_range && !scan.offer(txn, t, q, seq, id, &rec)? {
                        break;
                    }
                }
            }
            _ => {
                let iter: Box<dyn Iterator<Item = heed::Result<(u64, &[u8])>>> = if q.descending {
                    let top = if since == 0 {
                        Bound::Unbounded
                    } else {
                        Bound::Included(since)
                    };
                    Box::new(t.by_seq.rev_range(txn, &(Bound::Unbounded, top))?)
                } else {
                    Box::new(
                        t.by_seq
                            .range(txn, &(Bound::Excluded(since), Bound::Unbounded))?,
                    )
                };
                for entry in iter {
                    let (seq, id) = entry?;
                    let id = std::str::from_utf8(id).map_err(|_| corrupt())?;
                    if matches!(q.filter, ChangesFilter::Design) && !id.starts_with(DESIGN_PREFIX) {
                        scan.last_examined = Some(seq);
                        continue;
                    }
                    let rec = read::record(txn, t, id)?.ok_or_else(corrupt)?;
                    if !scan.offer(txn, t, q, seq, id, &rec)? {
                        break;
                    }
                }
            }
        }
    }
    let Scan {
        results,
        last_examined,
        hit_limit,
        ..
    } = scan;
    let last_seq = if hit_limit {
        results.last().map_or(since, |r| r.seq)
    } else if q.descending {
        last_examined.unwrap_or(since)
    } else {
        update_seq.max(since)
    };
    let pending = if q.descending {
        t.by_seq
            .remap_data_type::<DecodeIgnore>()
            .range(txn, &(Bound::Unbounded, Bound::Excluded(last_seq)))?
            .count() as u64
    } else {
        t.by_seq
            .remap_data_type::<DecodeIgnore>()
            .range(txn, &(Bound::Excluded(last_seq), Bound::Unbounded))?
            .count() as u64
    };
    Ok(ChangesResponse {
        results,
        last_seq,
        pending,
    })
}

/// The state of a changes scan.
struct Scan {
    limit: usize,
    results: Vec<ChangeRow>,
    last_examined: Option<u64>,
    hit_limit: bool,
}

impl Scan {
    /// Offers a document to the feed; `false` once the limit is reached.
    fn offer(
        &mut self,
        txn: &RoTxn<'_, WithoutTls>,
        t: &Tables,
        q: &ChangesQuery,
        seq: u64,
        id: &str,
        rec: &DocRecord,
    ) -> TxnResult<bool> {
        self.last_examined = Some(seq);
        if let Some(row) = row(txn, t, q, seq, id, rec)? {
            self.results.push(row);
            if self.results.len() >= self.limit {
                self.hit_limit = true;
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn corrupt() -> crate::Error {
    crate::Error::Corrupt("changes index points at a missing document".into())
}

/// Builds a row, or `None` when the filter rejects the document.
fn row(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    q: &ChangesQuery,
    seq: u64,
    id: &str,
    rec: &DocRecord,
) -> TxnResult<Option<ChangeRow>> {
    let winner = rec.tree.winner();
    let needs_doc = q.include_docs || matches!(q.filter, ChangesFilter::Predicate(_));
    let doc = if needs_doc {
        let extras = Extras {
            conflicts: q.conflicts,
            ..Extras::default()
        };
        let mut buf = Vec::new();
        if read::write_doc(&mut buf, txn, t, id, rec, winner, extras)? {
            Some(doc::parse_stored(&buf)?)
        } else {
            // A body dropped by stemming: show the revision without it.
            let n = rec.tree.node(winner);
            Some(doc::doc_value(id, &n.rev, b"{}", n.deleted)?)
        }
    } else {
        None
    };
    if let (ChangesFilter::Predicate(pred), Some(doc)) = (&q.filter, &doc) {
        if !pred(doc) {
            return Ok(None);
        }
    }
    let changes = match q.style {
        ChangesStyle::MainOnly => vec![ChangeRev {
            rev: rec.tree.node(winner).rev.to_string(),
        }],
        ChangesStyle::AllDocs => rec
            .tree
            .sorted_leaves()
            .into_iter()
            .map(|i| ChangeRev {
                rev: rec.tree.node(i).rev.to_string(),
            })
            .collect(),
    };
    Ok(Some(ChangeRow {
        seq,
        id: id.to_owned(),
        changes,
        deleted: rec.tree.node(winner).deleted,
        doc: if q.include_docs { doc } else { None },
    }))
}

/// Documents changed after `since`, at most `limit`, in seq order, as map
/// functions see them. One read transaction and one reused buffer.
pub(crate) fn for_indexing(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    since: u64,
    limit: usize,
) -> TxnResult<Vec<IndexChange>> {
    let mut out = Vec::with_capacity(limit.min(16 * 1024));
    let mut buf = Vec::with_capacity(4096);
    let extras = Extras {
        conflicts: true,
        deleted_conflicts: true,
        local_seq: true,
        ..Extras::default()
    };
    for entry in t
        .by_seq
        .range(txn, &(Bound::Excluded(since), Bound::Unbounded))?
        .take(limit)
    {
        let (seq, id) = entry?;
        let id = std::str::from_utf8(id).map_err(|_| corrupt())?;
        let rec = read::record(txn, t, id)?.ok_or_else(corrupt)?;
        let winner = rec.tree.winner();
        let deleted = rec.tree.node(winner).deleted;
        let doc = if deleted {
            None
        } else {
            buf.clear();
            if read::write_doc(&mut buf, txn, t, id, &rec, winner, extras)? {
                Some(doc::parse_stored(&buf)?)
            } else {
                return Err(
                    crate::Error::Corrupt(format!("winning revision of {id} has no body")).into(),
                );
            }
        };
        out.push(IndexChange {
            seq,
            id: id.to_owned(),
            deleted,
            doc,
        });
    }
    Ok(out)
}
