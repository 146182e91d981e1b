//! Reading documents: the winner, a given revision, the `revs`, `revs_info`,
//! `conflicts`, `deleted_conflicts`, `local_seq` and `meta` options, and
//! `open_revs`.

use heed::{RoTxn, WithoutTls};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use super::doc;
use super::record::{body_key, DocRecord};
use super::revs::{Rev, RevTree};
use super::storage::{Tables, TxnResult};
use crate::Error;

/// Options of [`Database::get`](crate::Database::get), as CouchDB's
/// `GET /{db}/{docid}` query parameters.
///
/// ```
/// use serde_json::json;
/// use settee::{BulkOptions, Database, ReadOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let (a, b) = (format!("1-{}", "a".repeat(32)), format!("1-{}", "b".repeat(32)));
/// let docs = vec![json!({"_id": "x", "_rev": a}), json!({"_id": "x", "_rev": b})];
/// db.bulk_docs(docs, BulkOptions::replicated()).unwrap();
///
/// let doc = db.get("x", &ReadOptions::default().conflicts(true).local_seq(true)).unwrap();
/// assert_eq!(doc["_rev"], b); // the higher revision id wins
/// assert_eq!(doc["_conflicts"], json!([a]));
/// assert_eq!(doc["_local_seq"], 2);
/// let meta = db.get("x", &ReadOptions::default().meta(true)).unwrap();
/// assert_eq!(meta["_revs_info"][0]["status"], "available");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// `rev=`: read this revision instead of the winner.
    pub rev: Option<Rev>,
    /// `revs=true`: add `_revisions`.
    pub revs: bool,
    /// `revs_info=true`: add `_revs_info` (winner only).
    pub revs_info: bool,
    /// `conflicts=true`: add `_conflicts` (winner only, when any).
    pub conflicts: bool,
    /// `deleted_conflicts=true`: add `_deleted_conflicts` (winner only, when any).
    pub deleted_conflicts: bool,
    /// `latest=true`: with `rev`, read the current winner instead.
    pub latest: bool,
    /// `local_seq=true`: add `_local_seq` (winner only).
    pub local_seq: bool,
    /// `meta=true`: `revs_info`, `conflicts` and `deleted_conflicts` together.
    pub meta: bool,
}

impl ReadOptions {
    /// Sets `rev`.
    pub fn rev(mut self, rev: Rev) -> Self {
        self.rev = Some(rev);
        self
    }
    /// Sets `revs`.
    pub fn revs(mut self, on: bool) -> Self {
        self.revs = on;
        self
    }
    /// Sets `revs_info`.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, ReadOptions};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let one = db.put(json!({"_id": "a"})).unwrap();
    /// let two = db.put(json!({"_id": "a", "_rev": one.rev})).unwrap();
    /// let doc = db.get("a", &ReadOptions::default().revs_info(true)).unwrap();
    /// assert_eq!(
    ///     doc["_revs_info"],
    ///     json!([{"rev": two.rev, "status": "available"}, {"rev": one.rev, "status": "available"}])
    /// );
    /// ```
    pub fn revs_info(mut self, on: bool) -> Self {
        self.revs_info = on;
        self
    }
    /// Sets `conflicts`.
    pub fn conflicts(mut self, on: bool) -> Self {
        self.conflicts = on;
        self
    }
    /// Sets `deleted_conflicts`.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{BulkOptions, Database, ReadOptions, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let (a, b) = (format!("1-{}", "a".repeat(32)), format!("1-{}", "b".repeat(32)));
    /// let docs = vec![json!({"_id": "x", "_rev": a}), json!({"_id": "x", "_rev": b})];
    /// db.bulk_docs(docs, BulkOptions::replicated()).unwrap();
    /// // Resolve the conflict by deleting the losing branch.
    /// let gone = db.delete("x", &Rev::parse(&a).unwrap()).unwrap();
    /// let opts = ReadOptions::default().conflicts(true).deleted_conflicts(true);
    /// let doc = db.get("x", &opts).unwrap();
    /// assert!(doc.get("_conflicts").is_none());
    /// assert_eq!(doc["_deleted_conflicts"], json!([gone.rev]));
    /// ```
    pub fn deleted_conflicts(mut self, on: bool) -> Self {
        self.deleted_conflicts = on;
        self
    }
    /// Sets `latest`: with `rev`, read the current winner instead (as CouchDB 3.5).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, ReadOptions, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let one = db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// db.put(json!({"_id": "a", "_rev": one.rev, "n": 2})).unwrap();
    /// let old = ReadOptions::default().rev(Rev::parse(&one.rev).unwrap());
    /// assert_eq!(db.get("a", &old).unwrap()["n"], 1);
    /// assert_eq!(db.get("a", &old.latest(true)).unwrap()["n"], 2);
    /// ```
    pub fn latest(mut self, on: bool) -> Self {
        self.latest = on;
        self
    }
    /// Sets `local_seq`.
    pub fn local_seq(mut self, on: bool) -> Self {
        self.local_seq = on;
        self
    }
    /// Sets `meta`.
    pub fn meta(mut self, on: bool) -> Self {
        self.meta = on;
        self
    }
}

/// Which revisions [`Database::open_revs`](crate::Database::open_revs) reads.
///
/// ```
/// use serde_json::json;
/// use settee::{BulkOptions, Database, OpenRev, OpenRevs};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let (a, b) = (format!("1-{}", "a".repeat(32)), format!("1-{}", "b".repeat(32)));
/// let docs = vec![json!({"_id": "x", "_rev": b}), json!({"_id": "x", "_rev": a})];
/// db.bulk_docs(docs, BulkOptions::replicated()).unwrap();
/// let revs: Vec<_> = db
///     .open_revs("x", &OpenRevs::All, false, false)
///     .unwrap()
///     .into_iter()
///     .map(|r| match r {
///         OpenRev::Ok(doc) => doc["_rev"].as_str().unwrap().to_owned(),
///         OpenRev::Missing(rev) => rev,
///     })
///     .collect();
/// assert_eq!(revs, [a, b]); // revision order
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenRevs {
    /// `open_revs=all`: every leaf, in revision order (generation, then id).
    All,
    /// Every leaf in CouchDB's key-tree order (`couch_key_tree:get_all_leafs/1`):
    /// what `_bulk_get` answers for a document asked without `rev`.
    Leaves,
    /// `open_revs=[...]`: these revisions (with `latest`, their leaves).
    Revs(Vec<Rev>),
}

/// One item of an `open_revs` answer: `{"ok": doc}` or `{"missing": rev}`.
///
/// ```
/// use serde_json::json;
/// use settee::OpenRev;
///
/// let found = OpenRev::Ok(json!({"_id": "a", "_rev": "1-x"}));
/// assert_eq!(serde_json::to_value(&found).unwrap(), json!({"ok": {"_id": "a", "_rev": "1-x"}}));
/// let missing = OpenRev::Missing("2-y".into());
/// assert_eq!(serde_json::to_value(&missing).unwrap(), json!({"missing": "2-y"}));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OpenRev {
    /// The revision's document.
    Ok(Value),
    /// A revision the database does not have.
    Missing(String),
}

impl Serialize for OpenRev {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            OpenRev::Ok(doc) => m.serialize_entry("ok", doc)?,
            OpenRev::Missing(rev) => m.serialize_entry("missing", rev)?,
        }
        m.end()
    }
}

/// Loads a document's record.
pub(crate) fn record(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
) -> TxnResult<Option<DocRecord>> {
    match t.docs.get(txn, id.as_bytes())? {
        Some(bytes) => Ok(Some(DocRecord::decode(bytes)?)),
        None => Ok(None),
    }
}

/// The stored body of a node, if kept.
pub(crate) fn body<'t>(
    txn: &'t RoTxn<'_, WithoutTls>,
    t: &Tables,
    rec: &DocRecord,
    idx: usize,
) -> TxnResult<Option<&'t [u8]>> {
    let node = rec.tree.node(idx);
    if !node.has_body {
        return Ok(None);
    }
    Ok(t.bodies.get(txn, &body_key(rec.doc_num, &node.rev))?)
}

/// Revisions of the other leaves, split into live (`_conflicts`) and deleted
/// (`_deleted_conflicts`), in winner order.
pub(crate) fn conflicts(tree: &RevTree) -> (Vec<String>, Vec<String>) {
    let mut live = Vec::new();
    let mut deleted = Vec::new();
    for i in tree.sorted_leaves().into_iter().skip(1) {
        let n = tree.node(i);
        if n.deleted {
            deleted.push(n.rev.to_string());
        } else {
            live.push(n.rev.to_string());
        }
    }
    (live, deleted)
}

/// Extra members of a document's JSON.
#[derive(Default, Clone, Copy)]
pub(crate) struct Extras {
    pub revisions: bool,
    pub revs_info: bool,
    pub conflicts: bool,
    pub deleted_conflicts: bool,
    pub local_seq: bool,
}

/// Appends the JSON of revision `idx` of a document to `out`, with extras in
/// CouchDB's member order. `false` when the body is not stored.
pub(crate) fn write_doc(
    out: &mut Vec<u8>,
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
    rec: &DocRecord,
    idx: usize,
    extras: Extras,
) -> TxnResult<bool> {
    let Some(body) = body(txn, t, rec, idx)? else {
        return Ok(false);
    };
    let node = rec.tree.node(idx);
    doc::open_doc_json(out, id, &node.rev, body, node.deleted);
    if extras.revisions {
        doc::push_member(out, "_revisions", &rec.tree.revisions_json(idx));
    }
    if extras.revs_info {
        doc::push_member(out, "_revs_info", &rec.tree.revs_info_json(idx));
    }
    if extras.conflicts || extras.deleted_conflicts {
        let (live, deleted) = conflicts(&rec.tree);
        if extras.conflicts && !live.is_empty() {
            doc::push_member(out, "_conflicts", &Value::from(live));
        }
        if extras.deleted_conflicts && !deleted.is_empty() {
            doc::push_member(out, "_deleted_conflicts", &Value::from(deleted));
        }
    }
    if extras.local_seq {
        doc::push_member(out, "_local_seq", &Value::from(rec.seq));
    }
    doc::close_doc_json(out);
    Ok(true)
}

fn doc_json(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
    rec: &DocRecord,
    idx: usize,
    extras: Extras,
) -> TxnResult<Option<Value>> {
    let mut out = Vec::new();
    if !write_doc(&mut out, txn, t, id, rec, idx, extras)? {
        return Ok(None);
    }
    Ok(Some(doc::parse_stored(&out)?))
}

/// `GET /{db}/{docid}` semantics.
pub(crate) fn get(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
    o: &ReadOptions,
) -> TxnResult<Value> {
    let missing = || Error::not_found("missing");
    let rec = record(txn, t, id)?.ok_or_else(missing)?;
    let winner = rec.tree.winner();
    if let Some(rev) = &o.rev {
        let idx = rec.tree.find(rev).ok_or_else(missing)?;
        // CouchDB 3.5 answers `rev=X&latest=true` with the current winner.
        let idx = if o.latest { winner } else { idx };
        let extras = Extras {
            revisions: o.revs,
            ..Extras::default()
        };
        return doc_json(txn, t, id, &rec, idx, extras)?.ok_or_else(|| missing().into());
    }
    if rec.tree.node(winner).deleted {
        return Err(Error::not_found("deleted").into());
    }
    let extras = Extras {
        revisions: o.revs,
        revs_info: o.revs_info || o.meta,
        conflicts: o.conflicts || o.meta,
        deleted_conflicts: o.deleted_conflicts || o.meta,
        local_seq: o.local_seq,
    };
    doc_json(txn, t, id, &rec, winner, extras)?.ok_or_else(|| missing().into())
}

/// `GET /{db}/{docid}?open_revs=...` semantics: found revisions in revision
/// order, then the missing ones in request order.
pub(crate) fn open_revs(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
    which: &OpenRevs,
    revs: bool,
    latest: bool,
) -> TxnResult<Vec<OpenRev>> {
    let rec = record(txn, t, id)?;
    let extras = Extras {
        revisions: revs,
        ..Extras::default()
    };
    let (mut found, requested_missing): (Vec<usize>, Vec<String>) = match (which, &rec) {
        (OpenRevs::All | OpenRevs::Leaves, None) => return Err(Error::not_found("missing").into()),
        (OpenRevs::All, Some(rec)) => (rec.tree.sorted_leaves(), Vec::new()),
        (OpenRevs::Leaves, Some(rec)) => (rec.tree.key_tree_leaves(), Vec::new()),
        (OpenRevs::Revs(list), rec) => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for rev in list {
                match rec.as_ref().and_then(|r| r.tree.find(rev).map(|i| (r, i))) {
                    Some((r, i)) if latest => found.extend(r.tree.leaves_under(i)),
                    Some((_, i)) => found.push(i),
                    None => missing.push(rev.to_string()),
                }
            }
            (found, missing)
        }
    };
    let mut out = Vec::new();
    if let Some(rec) = &rec {
        if !matches!(which, OpenRevs::Leaves) {
            found.sort_by(|&a, &b| rec.tree.node(a).rev.couch_cmp(&rec.tree.node(b).rev));
            found.dedup();
        }
        for idx in found {
            match doc_json(txn, t, id, rec, idx, extras)? {
                Some(doc) => out.push(OpenRev::Ok(doc)),
                None => out.push(OpenRev::Missing(rec.tree.node(idx).rev.to_string())),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.extend(
        requested_missing
            .into_iter()
            .filter(|r| seen.insert(r.clone()))
            .map(OpenRev::Missing),
    );
    Ok(out)
}

/// What `_revs_diff` answers for one document
/// ([`Database::revs_diff`](crate::Database::revs_diff)).
///
/// ```
/// use settee::RevsDiff;
///
/// let diff = RevsDiff { missing: vec!["2-b".into()], possible_ancestors: vec![] };
/// // `possible_ancestors` is left out when empty, as CouchDB does.
/// assert_eq!(serde_json::to_value(&diff).unwrap(), serde_json::json!({"missing": ["2-b"]}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevsDiff {
    /// The asked revisions the database does not have (stemmed ones included).
    pub missing: Vec<String>,
    /// Leaves older than a missing revision, which may be its ancestors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub possible_ancestors: Vec<String>,
}

/// `_revs_diff` for one document: `None` when nothing is missing.
pub(crate) fn revs_diff(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
    revs: &[Rev],
) -> TxnResult<Option<RevsDiff>> {
    let rec = record(txn, t, id)?;
    let mut missing: Vec<&Rev> = Vec::new();
    for rev in revs {
        let known = rec.as_ref().is_some_and(|r| r.tree.find(rev).is_some());
        if !known && !missing.contains(&rev) {
            missing.push(rev);
        }
    }
    let Some(max_missing) = missing.iter().map(|r| r.pos).max() else {
        return Ok(None);
    };
    let possible_ancestors = match &rec {
        Some(rec) => rec
            .tree
            .sorted_leaves()
            .into_iter()
            .map(|i| &rec.tree.node(i).rev)
            .filter(|leaf| leaf.pos < max_missing)
            .map(Rev::to_string)
            .collect(),
        None => Vec::new(),
    };
    Ok(Some(RevsDiff {
        missing: missing.into_iter().map(Rev::to_string).collect(),
        possible_ancestors,
    }))
}
