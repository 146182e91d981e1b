//! `_all_docs`: live documents in raw (bytewise) id order.

use std::ops::Bound;

use heed::{RoTxn, WithoutTls};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::doc;
use super::meta::Counters;
use super::read::{self, Extras};
use super::record::DocRecord;
use super::storage::{KvIter, Tables, TxnResult};
use crate::Error;

/// An `_all_docs` request, as CouchDB's query parameters.
///
/// ```
/// use serde_json::json;
/// use settee::{AllDocsQuery, BulkOptions, Database};
///
/// let q = AllDocsQuery::new().start_key("a").end_key("m").limit(10).include_docs(true);
/// assert!(q.inclusive_end);
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let docs = ["a", "b", "c", "d"].iter().map(|id| json!({ "_id": id })).collect();
/// db.bulk_docs(docs, BulkOptions::default()).unwrap();
/// let ids = |q: AllDocsQuery| -> Vec<String> {
///     let page = serde_json::to_value(db.all_docs(&q).unwrap().rows).unwrap();
///     page.as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap().to_owned()).collect()
/// };
/// assert_eq!(ids(AllDocsQuery::new().descending(true).skip(1).limit(2)), ["c", "b"]);
/// assert_eq!(ids(AllDocsQuery::new().start_key("b").end_key("d").inclusive_end(false)), ["b", "c"]);
/// assert_eq!(ids(AllDocsQuery::new().key("c")), ["c"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AllDocsQuery {
    /// `startkey`: the first id (in the query's direction).
    pub start_key: Option<String>,
    /// `endkey`: the last id (in the query's direction).
    pub end_key: Option<String>,
    /// `key`: only this id.
    pub key: Option<String>,
    /// `keys`: these keys, in this order, with an error row for unknown ones.
    pub keys: Option<Vec<Value>>,
    /// Largest id first.
    pub descending: bool,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Skip this many rows first.
    pub skip: usize,
    /// Whether `end_key` itself is included (default `true`).
    pub inclusive_end: bool,
    /// Add each document as `doc`.
    pub include_docs: bool,
    /// With `include_docs`, add `_conflicts` to the documents.
    pub conflicts: bool,
    /// Add the database's `update_seq` to the response.
    pub update_seq: bool,
    /// `_design_docs`: only design documents. The range is clamped to the
    /// `_design/` ids, `total_rows` counts design documents and `offset` is
    /// at most that count (CouchDB counts the offset in the whole by-id
    /// tree and its coordinator caps it at `total_rows`).
    pub design_only: bool,
}

impl Default for AllDocsQuery {
    fn default() -> Self {
        AllDocsQuery {
            start_key: None,
            end_key: None,
            key: None,
            keys: None,
            descending: false,
            limit: None,
            skip: 0,
            inclusive_end: true,
            include_docs: false,
            conflicts: false,
            update_seq: false,
            design_only: false,
        }
    }
}

impl AllDocsQuery {
    /// Every live document.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `startkey`.
    pub fn start_key(mut self, k: impl Into<String>) -> Self {
        self.start_key = Some(k.into());
        self
    }
    /// Sets `endkey`.
    pub fn end_key(mut self, k: impl Into<String>) -> Self {
        self.end_key = Some(k.into());
        self
    }
    /// Sets `key`.
    pub fn key(mut self, k: impl Into<String>) -> Self {
        self.key = Some(k.into());
        self
    }
    /// Sets `keys`: rows for these ids in this order, deleted documents
    /// included (with `"deleted": true`), `not_found` rows for unknown ones.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{AllDocsQuery, Database, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// db.put(json!({"_id": "a"})).unwrap();
    /// let b = db.put(json!({"_id": "b"})).unwrap();
    /// let del = db.delete("b", &Rev::parse(&b.rev).unwrap()).unwrap();
    /// let page = db.all_docs(&AllDocsQuery::new().keys(vec![json!("b"), json!("a")])).unwrap();
    /// let rows = serde_json::to_value(&page.rows).unwrap();
    /// assert_eq!(rows[0]["value"], json!({"rev": del.rev, "deleted": true}));
    /// assert_eq!(rows[1]["id"], "a");
    /// assert_eq!(page.offset, None);
    /// ```
    pub fn keys(mut self, keys: Vec<Value>) -> Self {
        self.keys = Some(keys);
        self
    }
    /// Sets `descending`.
    pub fn descending(mut self, on: bool) -> Self {
        self.descending = on;
        self
    }
    /// Sets `limit`.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
    /// Sets `skip`.
    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }
    /// Sets `inclusive_end`.
    pub fn inclusive_end(mut self, on: bool) -> Self {
        self.inclusive_end = on;
        self
    }
    /// Sets `include_docs`.
    pub fn include_docs(mut self, on: bool) -> Self {
        self.include_docs = on;
        self
    }
    /// Sets `conflicts`.
    pub fn conflicts(mut self, on: bool) -> Self {
        self.conflicts = on;
        self
    }
    /// Sets `update_seq`.
    pub fn update_seq(mut self, on: bool) -> Self {
        self.update_seq = on;
        self
    }
    /// Restricts the query to design documents (`_design_docs`).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{AllDocsQuery, BulkOptions, Database};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let docs = vec![json!({"_id": "a"}), json!({"_id": "_design/x"}), json!({"_id": "z"})];
    /// db.bulk_docs(docs, BulkOptions::default()).unwrap();
    /// let page = db.all_docs(&AllDocsQuery::new().design_only(true)).unwrap();
    /// assert_eq!(page.total_rows, 1);
    /// assert_eq!(serde_json::to_value(&page.rows).unwrap()[0]["id"], "_design/x");
    /// ```
    pub fn design_only(mut self, on: bool) -> Self {
        self.design_only = on;
        self
    }
}

/// One `_all_docs` row.
///
/// ```
/// use serde_json::json;
/// use settee::{AllDocsQuery, AllDocsRow, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let put = db.put(json!({"_id": "a"})).unwrap();
/// let page = db.all_docs(&AllDocsQuery::new().keys(vec![json!("a"), json!("zz")])).unwrap();
/// assert!(matches!(&page.rows[0], AllDocsRow::Doc { id, .. } if id == "a"));
/// assert_eq!(
///     serde_json::to_value(&page.rows).unwrap(),
///     json!([
///         {"id": "a", "key": "a", "value": {"rev": put.rev}},
///         {"key": "zz", "error": "not_found"}
///     ])
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum AllDocsRow {
    /// `{"id", "key", "value": {"rev", "deleted"?}, "doc"?}`.
    Doc {
        /// The document id (also the key).
        id: String,
        /// The winning revision.
        rev: String,
        /// Deleted (only in `keys` lookups).
        deleted: bool,
        /// With `include_docs`: the document, `None` (JSON `null`) when deleted.
        doc: Option<Option<Value>>,
    },
    /// `{"key", "error": "not_found"}` for an unknown key in a `keys` lookup.
    NotFound {
        /// The key asked for.
        key: Value,
    },
}

impl Serialize for AllDocsRow {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            AllDocsRow::Doc {
                id,
                rev,
                deleted,
                doc,
            } => {
                m.serialize_entry("id", id)?;
                m.serialize_entry("key", id)?;
                if *deleted {
                    m.serialize_entry("value", &serde_json::json!({"rev": rev, "deleted": true}))?;
                } else {
                    m.serialize_entry("value", &serde_json::json!({ "rev": rev }))?;
                }
                if let Some(doc) = doc {
                    m.serialize_entry("doc", doc)?;
                }
            }
            AllDocsRow::NotFound { key } => {
                m.serialize_entry("key", key)?;
                m.serialize_entry("error", "not_found")?;
            }
        }
        m.end()
    }
}

/// An `_all_docs` answer: `{"total_rows", "offset", "update_seq"?, "rows"}`.
///
/// ```
/// use serde_json::json;
/// use settee::{AllDocsQuery, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let put = db.put(json!({"_id": "a", "n": 1})).unwrap();
/// let page = db.all_docs(&AllDocsQuery::new().include_docs(true).update_seq(true)).unwrap();
/// assert_eq!(
///     serde_json::to_value(&page).unwrap(),
///     json!({"total_rows": 1, "offset": 0, "update_seq": 1, "rows": [
///         {"id": "a", "key": "a", "value": {"rev": put.rev},
///          "doc": {"_id": "a", "_rev": put.rev, "n": 1}}
///     ]})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AllDocsResponse {
    /// Number of live documents.
    pub total_rows: u64,
    /// Rows before the first returned one (`null` for `keys` lookups).
    pub offset: Option<u64>,
    /// The update seq, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_seq: Option<u64>,
    /// The rows.
    pub rows: Vec<AllDocsRow>,
}

/// Runs an `_all_docs` query on a snapshot.
pub(crate) fn all_docs(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    q: &AllDocsQuery,
) -> TxnResult<AllDocsResponse> {
    let counters = Counters::load(txn, t)?;
    let design_range;
    let (q, total_rows) = if q.design_only {
        design_range = design_range_of(q);
        let all = (
            Bound::Included(DESIGN_START.as_bytes()),
            Bound::Excluded(DESIGN_END.as_bytes()),
        );
        (&design_range, count_live(t.docs.range(txn, &all)?)?)
    } else {
        (q, counters.doc_count)
    };
    let limit = q.limit.unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    let offset = if let Some(keys) = &q.keys {
        let ordered: Box<dyn Iterator<Item = &Value>> = if q.descending {
            Box::new(keys.iter().rev())
        } else {
            Box::new(keys.iter())
        };
        for key in ordered.skip(q.skip).take(limit) {
            rows.push(key_row(txn, t, q, key)?);
        }
        None
    } else {
        // CouchDB's coordinator caps the offset at `total_rows`.
        Some(scan(txn, t, q, limit, &mut rows)?.min(total_rows))
    };
    Ok(AllDocsResponse {
        total_rows,
        offset,
        update_seq: q.update_seq.then_some(counters.update_seq),
        rows,
    })
}

/// First id of the design range, and the first id after it.
const DESIGN_START: &str = doc::DESIGN_PREFIX;
const DESIGN_END: &str = "_design0";

/// The query with its range kept inside the design documents: the later of
/// the two starts and the earlier of the two ends, in the query's direction.
fn design_range_of(q: &AllDocsQuery) -> AllDocsQuery {
    let mut q = q.clone();
    if q.keys.is_some() {
        return q;
    }
    let (lo, hi) = (DESIGN_START.to_owned(), DESIGN_END.to_owned());
    let (start, end) = if q.descending { (hi, lo) } else { (lo, hi) };
    let pick = |user: Option<String>, bound: String, later: bool| match user {
        Some(u) if (u > bound) == later => u,
        _ => bound,
    };
    q.start_key = Some(pick(q.start_key.take(), start, !q.descending));
    q.end_key = Some(pick(q.end_key.take(), end, q.descending));
    q
}

fn key_row(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    q: &AllDocsQuery,
    key: &Value,
) -> TxnResult<AllDocsRow> {
    let not_found = || AllDocsRow::NotFound { key: key.clone() };
    let Some(id) = key.as_str() else {
        return Ok(not_found());
    };
    let Some(rec) = read::record(txn, t, id)? else {
        return Ok(not_found());
    };
    let winner = rec.tree.winner();
    let deleted = rec.tree.node(winner).deleted;
    let doc = match (q.include_docs, deleted) {
        (false, _) => None,
        (true, true) => Some(None),
        (true, false) => Some(Some(winner_doc(txn, t, q, id, &rec)?)),
    };
    Ok(AllDocsRow::Doc {
        id: id.to_owned(),
        rev: rec.tree.node(winner).rev.to_string(),
        deleted,
        doc,
    })
}

fn winner_doc(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    q: &AllDocsQuery,
    id: &str,
    rec: &DocRecord,
) -> TxnResult<Value> {
    let extras = Extras {
        conflicts: q.conflicts,
        ..Extras::default()
    };
    let mut buf = Vec::new();
    if !read::write_doc(&mut buf, txn, t, id, rec, rec.tree.winner(), extras)? {
        return Err(Error::Corrupt(format!("winning revision of {id} has no body")).into());
    }
    Ok(doc::parse_stored(&buf)?)
}

/// Reads a key range into `rows` and returns the offset (rows before the
/// first returned one, skipped rows included).
fn scan(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    q: &AllDocsQuery,
    limit: usize,
    rows: &mut Vec<AllDocsRow>,
) -> TxnResult<u64> {
    let (start, end, inclusive_end) = match &q.key {
        Some(k) => (Some(k.as_bytes()), Some(k.as_bytes()), true),
        None => (
            q.start_key.as_deref().map(str::as_bytes),
            q.end_key.as_deref().map(str::as_bytes),
            q.inclusive_end,
        ),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if (!q.descending && s > e) || (q.descending && s < e) {
            return Err(Error::query_parse(
                "No rows can match your key range, reverse your start_key and end_key or set descending=true",
            )
            .into());
        }
    }
    let end_bound = match end {
        None => Bound::Unbounded,
        Some(e) if inclusive_end => Bound::Included(e),
        Some(e) => Bound::Excluded(e),
    };
    // Live documents before the start, in the query's direction.
    let before = match (start, q.descending) {
        (None, _) => 0,
        (Some(s), false) => {
            count_live(t.docs.range(txn, &(Bound::Unbounded, Bound::Excluded(s)))?)?
        }
        (Some(s), true) => count_live(t.docs.range(txn, &(Bound::Excluded(s), Bound::Unbounded))?)?,
    };
    let iter: KvIter<'_> = if q.descending {
        let upper = start.map_or(Bound::Unbounded, Bound::Included);
        Box::new(t.docs.rev_range(txn, &(end_bound, upper))?)
    } else {
        let lower = start.map_or(Bound::Unbounded, Bound::Included);
        Box::new(t.docs.range(txn, &(lower, end_bound))?)
    };
    let mut skipped = 0u64;
    for entry in iter {
        if rows.len() >= limit {
            break;
        }
        let (id, bytes) = entry?;
        if DocRecord::is_deleted_raw(bytes) {
            continue;
        }
        if skipped < q.skip as u64 {
            skipped += 1;
            continue;
        }
        let id = std::str::from_utf8(id)
            .map_err(|_| Error::Corrupt("document id is not UTF-8".into()))?;
        let rec = DocRecord::decode(bytes)?;
        let doc = if q.include_docs {
            Some(Some(winner_doc(txn, t, q, id, &rec)?))
        } else {
            None
        };
        rows.push(AllDocsRow::Doc {
            id: id.to_owned(),
            rev: rec.tree.node(rec.tree.winner()).rev.to_string(),
            deleted: false,
            doc,
        });
    }
    if limit == 0 || rows.is_empty() {
        // Nothing returned: the offset still counts the rows that would be skipped.
        skipped = q.skip as u64;
    }
    Ok(before + skipped)
}

fn count_live<'t>(
    iter: impl Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>>,
) -> TxnResult<u64> {
    let mut n = 0;
    for entry in iter {
        let (_, bytes) = entry?;
        if !DocRecord::is_deleted_raw(bytes) {
            n += 1;
        }
    }
    Ok(n)
}
