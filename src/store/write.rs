//! The write path: turning incoming documents into revision-tree updates,
//! CouchDB's update rules, validation, and applying a batch in one transaction.

use std::collections::HashSet;
use std::sync::Arc;

use heed::{PutFlags, RoTxn, RwTxn, WithoutTls};
use rayon::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::doc::{self, IncomingDoc};
use super::local;
use super::meta::{self, Counters};
use super::read;
use super::record::{body_key, DocRecord};
use super::revs::{Rev, RevTree};
use super::security::Security;
use super::storage::{Generation, Tables, TxnResult};
use super::validate::{UpdateValidator, UserCtx, ValidationRequest};
use super::ChangeEvent;
use crate::{Error, Result};

/// Options of [`Database::bulk_docs`](crate::Database::bulk_docs).
///
/// ```
/// use serde_json::json;
/// use settee::{BulkOptions, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let docs = || vec![json!({"_id": "ok"}), json!("not an object")];
/// // By default one malformed document fails the whole call...
/// assert!(db.bulk_docs(docs(), BulkOptions::default()).is_err());
/// assert_eq!(db.update_seq().unwrap(), 0);
/// // ...with `per_doc_errors` it only fails its own result.
/// let res = db.bulk_docs(docs(), BulkOptions::default().per_doc_errors(true)).unwrap();
/// assert!(!res[0].is_error() && res[1].is_error());
/// assert!(BulkOptions::default().new_edits);
/// assert!(!BulkOptions::replicated().new_edits);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkOptions {
    /// `true` (default): interactive edits, new revisions are generated.
    /// `false`: replication, revisions and their `_revisions` ancestry are
    /// inserted as given and may create conflicts.
    pub new_edits: bool,
    /// `false` (default, CouchDB's behaviour): one malformed document fails
    /// the whole call. `true`: it gets an error result of its own and the
    /// others are written (bulk imports).
    pub per_doc_errors: bool,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            new_edits: true,
            per_doc_errors: false,
        }
    }
}

impl BulkOptions {
    /// Options for replicated writes (`new_edits: false`).
    pub fn replicated() -> BulkOptions {
        BulkOptions {
            new_edits: false,
            ..BulkOptions::default()
        }
    }

    /// Sets [`BulkOptions::per_doc_errors`].
    pub fn per_doc_errors(mut self, on: bool) -> BulkOptions {
        self.per_doc_errors = on;
        self
    }
}

/// A successful document write: `{"ok": true, "id": .., "rev": ..}`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = settee::Database::create(dir.path().join("db")).unwrap();
/// let update = db.put(serde_json::json!({"_id": "a"})).unwrap();
/// let body = serde_json::to_value(&update).unwrap();
/// assert_eq!(body, serde_json::json!({"ok": true, "id": "a", "rev": update.rev}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocUpdate {
    /// Always `true`.
    pub ok: bool,
    /// The document id.
    pub id: String,
    /// The new revision.
    pub rev: String,
}

/// The outcome of one document of a bulk write, serialised like CouchDB's
/// `_bulk_docs` response items.
///
/// ```
/// use serde_json::json;
/// use settee::{BulkOptions, BulkResult, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// db.put(json!({"_id": "taken"})).unwrap();
/// let res = db
///     .bulk_docs(vec![json!({"_id": "new"}), json!({"_id": "taken"})], BulkOptions::default())
///     .unwrap();
/// assert!(matches!(&res[0], BulkResult::Ok(u) if u.id == "new"));
/// assert_eq!((res[1].id(), res[1].is_error()), ("taken", true));
/// assert_eq!(
///     serde_json::to_value(&res[1]).unwrap(),
///     json!({"id": "taken", "error": "conflict", "reason": "Document update conflict."})
/// );
/// ```
#[derive(Debug)]
pub enum BulkResult {
    /// Written: `{"ok": true, "id", "rev"}`.
    Ok(DocUpdate),
    /// Refused: `{"id", "rev"?, "error", "reason"}`.
    Error {
        /// The document id.
        id: String,
        /// The revision concerned (replicated writes only).
        rev: Option<String>,
        /// Why.
        error: Error,
    },
}

impl BulkResult {
    /// Whether the document was refused.
    pub fn is_error(&self) -> bool {
        matches!(self, BulkResult::Error { .. })
    }

    /// The document id.
    pub fn id(&self) -> &str {
        match self {
            BulkResult::Ok(u) => &u.id,
            BulkResult::Error { id, .. } => id,
        }
    }

    /// The error result for a document refused before it reached the store
    /// (e.g. by an access check), labelled as the store labels its own
    /// refusals: with the document's `_id` (empty if it has none) and, for
    /// replicated writes (`opts.new_edits == false`), the revision it
    /// carries (`_revisions` wins over `_rev`).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{BulkOptions, BulkResult, Error};
    ///
    /// let doc = json!({"_id": "a", "_rev": "3-abc"});
    /// let refused = BulkResult::refusal(&doc, Error::Forbidden("no".into()), BulkOptions::replicated());
    /// assert_eq!(
    ///     serde_json::to_value(&refused).unwrap(),
    ///     json!({"id": "a", "rev": "3-abc", "error": "forbidden", "reason": "no"})
    /// );
    /// ```
    pub fn refusal(doc: &Value, error: Error, opts: BulkOptions) -> BulkResult {
        let id = doc
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let rev = (!opts.new_edits)
            .then(|| doc::leaf_rev(doc))
            .flatten()
            .map(|r| r.to_string());
        BulkResult::Error { id, rev, error }
    }
}

impl Serialize for BulkResult {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            BulkResult::Ok(u) => u.serialize(s),
            BulkResult::Error { id, rev, error } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("id", id)?;
                if let Some(rev) = rev {
                    m.serialize_entry("rev", rev)?;
                }
                m.serialize_entry("error", error.name())?;
                m.serialize_entry("reason", &error.reason())?;
                m.end()
            }
        }
    }
}

/// A document ready to be written: validated, body serialised, and its new
/// revision precomputed for the usual parent (work done in parallel).
pub(crate) struct Prepared {
    doc: IncomingDoc,
    body: Vec<u8>,
    /// The revision an interactive edit of `doc.revs.first()` creates.
    guess: Rev,
}

impl Prepared {
    /// Whether this is a design document (what validators see changes).
    pub fn is_design(&self) -> bool {
        self.doc.id.starts_with(doc::DESIGN_PREFIX)
    }
}

/// Batches at least this large are prepared on the rayon pool.
const PARALLEL_PREPARE: usize = 64;

/// Validates and serialises documents, one result per document; a refused
/// document's error result carries its `_id` when it has a string one.
pub(crate) fn prepare(
    docs: Vec<Value>,
    opts: BulkOptions,
    max_doc_size: usize,
) -> Vec<std::result::Result<Prepared, BulkResult>> {
    let one = |doc: Value| -> std::result::Result<Prepared, BulkResult> {
        // Only needed to label a refused document.
        let id = match (opts.per_doc_errors, doc.get("_id")) {
            (true, Some(Value::String(id))) => id.clone(),
            _ => String::new(),
        };
        prepare_one(doc, opts, max_doc_size).map_err(|error| BulkResult::Error {
            id,
            rev: None,
            error,
        })
    };
    if docs.len() >= PARALLEL_PREPARE {
        docs.into_par_iter().map(one).collect()
    } else {
        docs.into_iter().map(one).collect()
    }
}

/// Longest document id in bytes: ids are LMDB keys, limited to 1982 bytes
/// with 4 KiB pages (heed's `longer-keys`); CouchDB has no fixed limit.
pub(crate) const MAX_ID_BYTES: usize = 1900;

fn prepare_one(doc: Value, opts: BulkOptions, max_doc_size: usize) -> Result<Prepared> {
    let has_id = doc.get("_id").is_some();
    let doc = doc::split(doc, new_doc_id)?;
    if doc.id.len() > MAX_ID_BYTES {
        return Err(Error::couch(
            400,
            "illegal_docid",
            format!("Document id is longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    let body = serde_json::to_vec(&doc.body).map_err(|e| Error::bad_request(e.to_string()))?;
    if body.len() > max_doc_size {
        // CouchDB names the document, or nothing when it had no `_id`.
        return Err(Error::DocumentTooLarge(if has_id {
            doc.id
        } else {
            String::new()
        }));
    }
    if !opts.new_edits && doc.revs.is_empty() && !doc.is_local() {
        return Err(Error::bad_request(
            "When `new_edits: false`, the document needs `_rev` or `_revisions` specified",
        ));
    }
    let guess = Rev::next(doc.revs.first(), doc.deleted, &doc.body);
    Ok(Prepared { doc, body, guess })
}

/// A fresh document id (CouchDB's server-generated uuid): 32 hex digits,
/// unique within the process and practically unique across processes.
pub(crate) fn new_doc_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    super::revs::hex_digest(seed.as_bytes())
}

/// Everything a write needs besides the documents.
pub(crate) struct WriteContext<'a> {
    pub new_edits: bool,
    pub validator: Option<&'a dyn UpdateValidator>,
    pub user: &'a UserCtx,
    /// Verdicts reached before the write lock ([`validate_early`]), by
    /// document; empty when there are none (or they are out of date).
    pub early: &'a [Option<EarlyVerdict>],
}

/// A validator's verdict on one document reached on a read snapshot before
/// the write lock was taken ([`validate_early`]). It stands while the
/// document's stored parent is the one it was reached against: the
/// validator's other inputs (the new document, the user, the design
/// documents and the security object) are checked by the caller.
pub(crate) struct EarlyVerdict {
    /// The stored parent shown as `oldDoc`: `(doc number, revision)`.
    parent: Option<(u64, Rev)>,
    verdict: Result<()>,
}

/// The stored parent a plan shows validators as `oldDoc`; revision bodies
/// never change, so the pair names the body.
fn parent_of(plan: &Plan) -> Option<(u64, Rev)> {
    match (plan.old_doc, &plan.record) {
        (Some(n), Some(rec)) => Some((rec.doc_num, rec.tree.node(n).rev.clone())),
        _ => None,
    }
}

/// Validates a prepared batch on a read snapshot, before the write lock:
/// the documents of its first round (ids not repeated before them) that are
/// neither local nor design documents. Large imports prepare the next batch
/// while the current one is written, so their validation runs on the
/// JavaScript workers while the writer writes instead of inside its
/// transaction. [`write_batch`] uses a verdict only if the document's
/// parent is still the same. The validator runs after the snapshot is
/// closed: it reads the database itself, and a reader nested in a reader
/// could deadlock against a map resize.
pub(crate) fn validate_early(
    generation: &Generation,
    docs: &[Prepared],
    ctx: &WriteContext<'_>,
) -> Result<Vec<Option<EarlyVerdict>>> {
    let mut out: Vec<Option<EarlyVerdict>> = docs.iter().map(|_| None).collect();
    let Some(validator) = ctx.validator else {
        return Ok(out);
    };
    let Some(first_round) = rounds(docs).into_iter().next() else {
        return Ok(out);
    };
    // Asked before the snapshot is opened: validators read the database.
    if !documents_wanted(ctx, docs.iter())? {
        return Ok(out);
    }
    let (parents, subjects) = generation.read(|txn, t| {
        let mut plans = Vec::with_capacity(first_round.len());
        for &idx in &first_round {
            let p = &docs[idx];
            if p.doc.is_local() || p.doc.id.starts_with(doc::DESIGN_PREFIX) {
                continue;
            }
            if let Ok(plan) = plan(txn, t, idx, p, ctx.new_edits)? {
                if plan.changed {
                    plans.push(plan);
                }
            }
        }
        let parents: Vec<(usize, Option<(u64, Rev)>)> =
            plans.iter().map(|p| (p.idx, parent_of(p))).collect();
        Ok((
            parents,
            validation_subjects(txn, t, docs, &plans, ctx, true)?,
        ))
    })?;
    let verdicts = validate_chunk(validator, ctx.user, subjects)?;
    for ((idx, parent), verdict) in parents.into_iter().zip(verdicts) {
        out[idx] = Some(EarlyVerdict { parent, verdict });
    }
    Ok(out)
}

/// What one document's write will do, computed before validation.
struct Plan {
    idx: usize,
    record: Option<DocRecord>,
    tree: RevTree,
    leaf: usize,
    /// Tree node (in the old tree) whose body validators see as `oldDoc`.
    old_doc: Option<usize>,
    /// Whether anything changes (a replicated revision may already be stored).
    changed: bool,
    /// Validated, then refused as a conflict: CouchDB's updater refuses an
    /// edit of a deleted document only after the VDUs accepted it (an edit
    /// whose `_rev` is one of its tombstones, or a deletion without `_rev`).
    conflict_after_validation: bool,
}

/// Writes prepared documents in the open transaction. Returns one result per
/// document (only refused ones for replicated writes, as CouchDB) and the
/// change events to publish once committed.
pub(crate) fn write_batch(
    txn: &mut RwTxn<'_>,
    t: &Tables,
    docs: &[Prepared],
    ctx: &WriteContext<'_>,
) -> TxnResult<(Vec<BulkResult>, Vec<ChangeEvent>)> {
    let mut counters = Counters::load(txn, t)?;
    let revs_limit = meta::revs_limit(txn, t)?;
    let mut results: Vec<Option<BulkResult>> = (0..docs.len()).map(|_| None).collect();
    let mut events = Vec::with_capacity(docs.len());
    let mut buf = Vec::new();
    for round in rounds(docs) {
        let mut plans = Vec::with_capacity(round.len());
        for idx in round {
            let p = &docs[idx];
            if p.doc.is_local() {
                let r = local::write_in_txn(txn, t, &p.doc, &p.body)?;
                results[idx] = Some(match r {
                    Ok(rev) => BulkResult::Ok(DocUpdate {
                        ok: true,
                        id: p.doc.id.clone(),
                        rev,
                    }),
                    Err(error) => BulkResult::Error {
                        id: p.doc.id.clone(),
                        rev: None,
                        error,
                    },
                });
                continue;
            }
            match plan(txn, t, idx, p, ctx.new_edits)? {
                Ok(plan) => plans.push(plan),
                Err(error) => {
                    results[idx] = Some(refused(p, error, ctx.new_edits));
                }
            }
        }
        // CouchDB's updater applies a batch in document id order, so seqs
        // within one request follow the ids, not the request order.
        plans.sort_by(|a, b| docs[a.idx].doc.id.cmp(&docs[b.idx].doc.id));
        let wanted = documents_wanted(ctx, plans.iter().map(|p| &docs[p.idx]))?;
        let subjects = validation_subjects(txn, t, docs, &plans, ctx, wanted)?;
        let mut plans = plans.into_iter();
        for_each_verdict_chunk(ctx, subjects, |verdicts| {
            for verdict in verdicts {
                let plan = plans.next().expect("one verdict per plan");
                let p = &docs[plan.idx];
                let verdict = match (verdict, plan.conflict_after_validation) {
                    (Ok(()), true) => Err(Error::Conflict),
                    (verdict, _) => verdict,
                };
                if let Err(error) = verdict {
                    results[plan.idx] = Some(refused(p, error, ctx.new_edits));
                    continue;
                }
                let rev = plan.tree.node(plan.leaf).rev.to_string();
                let idx = plan.idx;
                if plan.changed {
                    events.push(apply(txn, t, p, plan, revs_limit, &mut counters, &mut buf)?);
                }
                results[idx] = Some(BulkResult::Ok(DocUpdate {
                    ok: true,
                    id: p.doc.id.clone(),
                    rev,
                }));
            }
            Ok(())
        })?;
    }
    counters.store(txn, t)?;
    // Sized up front: these vectors are large for bulk loads, and growing
    // them by reallocation shows up in profiles.
    let mut out = Vec::with_capacity(if ctx.new_edits { results.len() } else { 0 });
    out.extend(
        results
            .into_iter()
            .map(|r| r.expect("every document has a result"))
            .filter(|r| ctx.new_edits || r.is_error()),
    );
    Ok((out, events))
}

fn refused(p: &Prepared, error: Error, new_edits: bool) -> BulkResult {
    BulkResult::Error {
        id: p.doc.id.clone(),
        rev: (!new_edits)
            .then(|| p.doc.revs.first().map(Rev::to_string))
            .flatten(),
        error,
    }
}

/// Splits a batch into rounds of distinct ids, so the documents of a round
/// can be planned and validated together while a later edit of the same id
/// sees the earlier one applied (CouchDB applies a batch in order).
fn rounds(docs: &[Prepared]) -> Vec<Vec<usize>> {
    let mut rounds = Vec::new();
    let mut current = Vec::new();
    let mut ids = HashSet::new();
    for (i, p) in docs.iter().enumerate() {
        if !ids.insert(p.doc.id.as_str()) {
            rounds.push(std::mem::take(&mut current));
            ids.clear();
            ids.insert(p.doc.id.as_str());
        }
        current.push(i);
    }
    if !current.is_empty() {
        rounds.push(current);
    }
    rounds
}

/// Applies CouchDB's update rules to one document. The outer error aborts
/// the transaction; the inner one refuses this document only.
fn plan(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    idx: usize,
    p: &Prepared,
    new_edits: bool,
) -> TxnResult<Result<Plan>> {
    let record = read::record(txn, t, &p.doc.id)?;
    let mut tree = record.as_ref().map(|r| r.tree.clone()).unwrap_or_default();
    let deleted = p.doc.deleted;
    if !new_edits {
        let path = &p.doc.revs;
        let old_doc = path[1..]
            .iter()
            .find_map(|r| tree.find(r))
            .filter(|&i| tree.node(i).has_body && !tree.node(i).deleted);
        let (leaf, changed) = tree.merge_path(path, deleted);
        return Ok(Ok(Plan {
            idx,
            record,
            tree,
            leaf,
            old_doc,
            changed,
            conflict_after_validation: false,
        }));
    }
    // CouchDB (`couch_db:prep_and_validate_update/5`) validates an edit whose
    // `_rev` is any leaf, live or deleted, with that leaf as `oldDoc`; a
    // `_rev` that is not a leaf is a conflict without validation. The
    // updater (`couch_db_updater:merge_rev_tree/4`) then refuses, as a
    // conflict, any edit of a deleted document other than a re-creation
    // without `_rev`.
    let doc_deleted = record.is_some() && tree.is_deleted();
    let (parent, old_doc) = match (&record, p.doc.revs.first()) {
        (None, None) => (None, None),
        (None, Some(_)) => {
            // A parent revision the database never saw: CouchDB grafts the
            // edit onto it (generation N+1), keeping the given ancestry.
            let mut parent = None;
            for rev in p.doc.revs.iter().rev() {
                parent = Some(tree.push(parent, rev.clone(), false, false));
            }
            (parent, None)
        }
        (Some(_), Some(rev)) => match tree.find(rev) {
            Some(i) if tree.is_leaf(i) => (Some(i), Some(i)),
            _ => return Ok(Err(Error::Conflict)),
        },
        (Some(_), None) if doc_deleted => (Some(tree.winner()), None),
        (Some(_), None) => return Ok(Err(Error::Conflict)),
    };
    let rev = match parent {
        Some(pi) if Some(&tree.node(pi).rev) != p.doc.revs.first() => {
            Rev::next(Some(&tree.node(pi).rev), deleted, &p.doc.body)
        }
        _ => p.guess.clone(),
    };
    if tree.find(&rev).is_some() {
        return Ok(Err(Error::Conflict));
    }
    let leaf = tree.push(parent, rev, deleted, true);
    let recreation = p.doc.revs.is_empty() && !deleted;
    Ok(Ok(Plan {
        idx,
        record,
        tree,
        leaf,
        old_doc,
        changed: true,
        conflict_after_validation: doc_deleted && !recreation,
    }))
}

/// Whether documents other than design documents go to the validator (it
/// may have nothing to run on them; see
/// [`UpdateValidator::validates_documents`]): asked only when some are there.
fn documents_wanted<'d>(
    ctx: &WriteContext<'_>,
    mut docs: impl Iterator<Item = &'d Prepared>,
) -> Result<bool> {
    match ctx.validator {
        Some(validator) if docs.any(|p| !p.is_design() && !p.doc.is_local()) => {
            validator.validates_documents()
        }
        _ => Ok(false),
    }
}

/// What the write path makes of one plan before applying it.
enum Subject<'d> {
    /// Nothing to validate: the plan changes nothing, no validator is
    /// installed, or an early verdict accepted it.
    Accepted,
    /// Refused without running a validator now: a design document from a
    /// user who is not a db admin, or an early verdict.
    Refused(Error),
    /// For the validator: the prepared document and its stored parent's body.
    Validate(&'d Prepared, Option<Value>),
}

/// Reads, inside the write transaction, what each plan needs checked, in
/// plan order. Design documents need a server or db admin whatever the
/// handle (CouchDB checks this before their contents); other documents go
/// to the validator, if one is installed.
fn validation_subjects<'d>(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    docs: &'d [Prepared],
    plans: &[Plan],
    ctx: &WriteContext<'_>,
    documents_wanted: bool,
) -> TxnResult<Vec<Subject<'d>>> {
    let mut db_admin: Option<bool> = None;
    let mut subjects = Vec::with_capacity(plans.len());
    for plan in plans {
        let p = &docs[plan.idx];
        if !plan.changed {
            subjects.push(Subject::Accepted);
            continue;
        }
        if p.doc.id.starts_with(doc::DESIGN_PREFIX) && !ctx.user.is_admin() {
            let admin = match db_admin {
                Some(admin) => admin,
                None => *db_admin.insert(Security::load_in(txn, t)?.is_db_admin(ctx.user)),
            };
            if !admin {
                subjects.push(Subject::Refused(Error::Forbidden(
                    "You are not a db or server admin.".into(),
                )));
                continue;
            }
        }
        if ctx.validator.is_none() || (!documents_wanted && !p.is_design()) {
            subjects.push(Subject::Accepted);
            continue;
        }
        let early = ctx.early.get(plan.idx).and_then(Option::as_ref);
        if let Some(early) = early.filter(|e| e.parent == parent_of(plan)) {
            subjects.push(match &early.verdict {
                Ok(()) => Subject::Accepted,
                Err(e) => Subject::Refused(e.duplicate()),
            });
            continue;
        }
        let old_doc = match (plan.old_doc, &plan.record) {
            (Some(n), Some(rec)) => {
                let node = rec.tree.node(n);
                let body = t
                    .bodies
                    .get(txn, &body_key(rec.doc_num, &node.rev))?
                    .unwrap_or(b"{}");
                Some(doc::doc_value(&p.doc.id, &node.rev, body, node.deleted)?)
            }
            _ => None,
        };
        subjects.push(Subject::Validate(p, old_doc));
    }
    Ok(subjects)
}

impl Subject<'_> {
    /// The verdict of a subject that needs no validator.
    fn into_verdict(self) -> Result<()> {
        match self {
            Subject::Refused(error) => Err(error),
            Subject::Accepted | Subject::Validate(..) => Ok(()),
        }
    }
}

/// Fewest validations worth validating on a thread of their own while
/// earlier verdicts are applied.
pub(crate) const PIPELINE_MIN: usize = 512;
/// Validations per chunk of a pipelined batch: large enough to keep every
/// JavaScript worker busy, small enough that the first verdicts come soon.
const PIPELINE_CHUNK: usize = 1024;

/// Validates `subjects` and hands their verdicts, in order and in chunks, to
/// `apply`. A large batch is pipelined: a scoped thread validates chunk
/// `k + 1` on the JavaScript workers while this thread (which owns the write
/// transaction) applies chunk `k`, so writing no longer waits for the whole
/// batch's validation. Order, and so seq assignment, is unchanged.
fn for_each_verdict_chunk(
    ctx: &WriteContext<'_>,
    subjects: Vec<Subject<'_>>,
    mut apply: impl FnMut(Vec<Result<()>>) -> TxnResult<()>,
) -> TxnResult<()> {
    let validations = subjects
        .iter()
        .filter(|s| matches!(s, Subject::Validate(..)))
        .count();
    let Some(validator) = ctx.validator.filter(|_| validations > 0) else {
        return apply(subjects.into_iter().map(Subject::into_verdict).collect());
    };
    if validations < PIPELINE_MIN {
        return apply(validate_chunk(validator, ctx.user, subjects)?);
    }
    let mut chunks = Vec::with_capacity(subjects.len().div_ceil(PIPELINE_CHUNK));
    let mut subjects = subjects.into_iter();
    loop {
        let chunk: Vec<Subject<'_>> = subjects.by_ref().take(PIPELINE_CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let user = ctx.user;
    std::thread::scope(|scope| {
        // One chunk validated ahead of the one being applied.
        let (tx, rx) = crossbeam_channel::bounded(1);
        scope.spawn(move || {
            for chunk in chunks {
                // A closed channel means the writer gave up: stop validating.
                if tx.send(validate_chunk(validator, user, chunk)).is_err() {
                    break;
                }
            }
        });
        for verdicts in rx {
            apply(verdicts?)?;
        }
        Ok(())
    })
}

/// Runs the validator over one chunk of subjects; one verdict per subject.
fn validate_chunk(
    validator: &dyn UpdateValidator,
    user: &UserCtx,
    subjects: Vec<Subject<'_>>,
) -> Result<Vec<Result<()>>> {
    // The requests are built in parallel: copying every document into the
    // shape validators see is a good part of a large batch's validation.
    let built: Vec<std::result::Result<ValidationRequest<'_>, Result<()>>> = subjects
        .into_par_iter()
        .map(|subject| match subject {
            Subject::Validate(p, old_doc) => Ok(ValidationRequest {
                id: &p.doc.id,
                new_doc: Arc::new(validation_doc(p)),
                old_doc: old_doc.map(Arc::new),
                user,
            }),
            other => Err(other.into_verdict()),
        })
        .collect();
    let mut verdicts = Vec::with_capacity(built.len());
    let mut reqs = Vec::new();
    let mut which = Vec::new();
    for (i, item) in built.into_iter().enumerate() {
        match item {
            Ok(req) => {
                reqs.push(req);
                which.push(i);
                verdicts.push(Ok(()));
            }
            Err(verdict) => verdicts.push(verdict),
        }
    }
    if reqs.is_empty() {
        return Ok(verdicts);
    }
    let answers = validator.validate_batch(&reqs);
    if answers.len() != reqs.len() {
        return Err(Error::Corrupt(
            "the validator answered the wrong number of results".into(),
        ));
    }
    for (i, answer) in which.into_iter().zip(answers) {
        verdicts[i] = answer;
    }
    Ok(verdicts)
}

/// The new document as a validator sees it (see [`ValidationRequest::new_doc`]):
/// CouchDB validates the document as the client sent it, before any new
/// revision exists, so `_rev` and `_revisions` are the client's revisions
/// (the parent for an interactive edit, the new leaf for a replicated one)
/// and are absent when it sent none, also when a deleted document is re-created.
fn validation_doc(p: &Prepared) -> Value {
    let revs = &p.doc.revs;
    let mut m = Map::with_capacity(p.doc.body.len() + 4);
    m.insert("_id".into(), Value::String(p.doc.id.clone()));
    if let Some(first) = revs.first() {
        m.insert("_rev".into(), Value::String(first.to_string()));
    }
    m.extend(p.doc.body.iter().map(|(k, v)| (k.clone(), v.clone())));
    if p.doc.deleted {
        m.insert("_deleted".into(), Value::Bool(true));
    }
    if let Some(first) = revs.first() {
        let ids: Vec<Value> = revs.iter().map(|r| Value::String(r.id.clone())).collect();
        m.insert(
            "_revisions".into(),
            serde_json::json!({"start": first.pos, "ids": ids}),
        );
    }
    Value::Object(m)
}

/// Writes one planned update: body, stemmed tree, seq index and counters.
fn apply(
    txn: &mut RwTxn<'_>,
    t: &Tables,
    p: &Prepared,
    plan: Plan,
    revs_limit: u64,
    counters: &mut Counters,
    buf: &mut Vec<u8>,
) -> TxnResult<ChangeEvent> {
    let Plan {
        record,
        mut tree,
        leaf,
        ..
    } = plan;
    let doc_num = match &record {
        Some(r) => r.doc_num,
        None => {
            counters.next_doc_num += 1;
            counters.next_doc_num
        }
    };
    let leaf_rev = tree.node(leaf).rev.clone();
    let body_key_new = body_key(doc_num, &leaf_rev);
    if record.is_none() {
        // A new document has the highest doc number: its key sorts last.
        t.bodies
            .put_with_flags(txn, PutFlags::APPEND, &body_key_new, &p.body)?;
    } else {
        t.bodies.put(txn, &body_key_new, &p.body)?;
    }
    for node in tree.stem(usize::try_from(revs_limit).unwrap_or(usize::MAX)) {
        if node.has_body {
            t.bodies.delete(txn, &body_key(doc_num, &node.rev))?;
        }
    }
    let winner = tree.winner();
    let winner_node = tree.node(winner);
    let winner_size = if winner_node.rev == leaf_rev {
        p.body.len() as u64
    } else {
        t.bodies
            .get(txn, &body_key(doc_num, &winner_node.rev))?
            .map_or(0, |b| b.len() as u64)
    };
    let deleted = winner_node.deleted;
    let winner_rev = winner_node.rev.clone();
    if let Some(r) = &record {
        t.by_seq.delete(txn, &r.seq)?;
        if !r.tree.is_deleted() {
            counters.external_size = counters.external_size.saturating_sub(r.winner_size);
        }
    }
    if !deleted {
        counters.external_size += winner_size;
    }
    counters.count_transition(record.as_ref().map(|r| r.tree.is_deleted()), deleted);
    counters.update_seq += 1;
    let seq = counters.update_seq;
    // Seqs only grow, so the seq index is append-only.
    t.by_seq
        .put_with_flags(txn, PutFlags::APPEND, &seq, p.doc.id.as_bytes())?;
    let new_record = DocRecord {
        doc_num,
        seq,
        winner_size,
        tree,
    };
    new_record.encode(buf);
    t.docs.put(txn, p.doc.id.as_bytes(), buf)?;
    Ok(ChangeEvent {
        seq,
        id: p.doc.id.clone(),
        rev: winner_rev.to_string(),
        deleted,
    })
}
