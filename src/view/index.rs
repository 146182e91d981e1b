//! On-disk storage of one view group's index: one LMDB environment per group,
//! in a directory named by the group's signature.
//!
//! Tables:
//! - `meta`: the header (signature, collator version, format, checkpoint seq,
//!   row count per tree), written in the same transaction as the rows it
//!   describes, so a crash never leaves rows and checkpoint out of step.
//! - `rows`: every tree's rows, keyed by `tree (u16 BE) ‖ LMDB key` and valued
//!   by `doc id length (u32 BE) ‖ doc id ‖ JSON [key, value]`.
//! - `back`: the back-index, doc id → the sort keys of the rows it emitted, so
//!   an update removes exactly the doc's previous rows.
//! - `overflow`: sort keys too long for an LMDB key (see below).
//!
//! Beside the tables, in memory: a row-count summary per tree
//! (`view::counts`), so [`IndexStore::count`] (`offset`) walks at most one
//! small bucket of keys. It is derived data, tagged with the LMDB snapshot it
//! counts; nothing on disk depends on it.
//!
//! ## Long keys
//! A row's LMDB key is its sort key ([`crate::collate::row_key`]) when that fits in
//! [`TRUNCATE_AT`] bytes. A longer sort key `S` is stored as
//! `S[..TRUNCATE_AT] ‖ 0xFF ‖ rank (u64 BE)`, and the table `overflow` maps
//! `tree ‖ S[..TRUNCATE_AT] ‖ rank → S`. Ranks order the long keys sharing a
//! prefix, so LMDB order still equals sort-key order:
//! - a sort key that fits differs from a truncated prefix within its own length,
//!   because sort keys are prefix-free;
//! - long keys with different prefixes differ within the prefix;
//! - long keys with the same prefix compare by rank, and ranks are assigned in
//!   sort-key order (midpoints between neighbours; a bucket is renumbered in the
//!   rare case that a gap is exhausted).
//!
//! Query bounds map to LMDB keys the same way ([`IndexStore::seek_key`]), so
//! every range scan is a plain LMDB range.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use heed::types::{Bytes, DecodeIgnore};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, PutFlags, RoTxn, RwTxn, WithoutTls};
use md5::{Digest, Md5};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::view::counts::{CountSummary, TreeCounts, TreeCountsBuilder, BUCKET_TARGET};
use crate::view::rows::decode_key_value;

/// Sort keys longer than this are stored truncated, with a rank (module docs).
/// LMDB with `longer-keys` accepts 1982-byte keys on 4 KiB pages; the full LMDB
/// key is `tree (2) ‖ prefix ‖ 0xFF ‖ rank (8)`.
pub(crate) const TRUNCATE_AT: usize = 1024;

/// Doc ids longer than this are keyed in the back-index by a prefix and a hash.
const BACK_KEY_MAX: usize = 480;

/// Bumped when the on-disk layout changes; an index in another format is rebuilt.
const FORMAT_VERSION: u64 = 1;

/// Virtual address space reserved for one index (the file grows only with data).
const MAP_SIZE: usize = 1 << 40;

const OVERFLOW_MARK: u8 = 0xFF;
/// Meta key present while a bulk load is in progress (between its first and
/// its final commit): the index then reads as empty, and opening it
/// discards it (the build starts over).
const BUILDING_KEY: &[u8] = b"bulk_building";
/// Bytes of rows a bulk load appends per transaction. LMDB keeps a write
/// transaction's dirty pages in memory until it commits, so one transaction
/// for a whole build would need memory in proportion to the index.
const BULK_COMMIT_BYTES: usize = 32 << 20;
const FIRST_RANK: u64 = 1 << 63;
const RANK_STEP: u64 = 1 << 32;

/// What identifies the contents of an index; any difference means a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexIdentity {
    /// The view group's signature.
    pub signature: String,
    /// The collator's version (ICU data); keys sort differently under another.
    pub collator_version: String,
    /// Number of trees (distinct map functions).
    pub trees: u16,
}

/// One row ready to store: its sort key and its stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreparedRow {
    /// The tree (distinct map function) it belongs to.
    pub tree: u16,
    /// `collate::encode(key)` extended by [`crate::collate::row_key`].
    pub sort_key: Vec<u8>,
    /// The JSON text `[key, value]` as emitted.
    pub key_value: Vec<u8>,
}

/// The new rows of one changed document (empty when it was deleted or emits nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocRows {
    /// The document id.
    pub doc_id: String,
    /// All its rows, in any order.
    pub rows: Vec<PreparedRow>,
}

/// A row as read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRow {
    /// The emitting document.
    pub doc_id: String,
    /// The key as emitted.
    pub key: Value,
    /// The value as emitted.
    pub value: Value,
}

/// The index of one view group.
pub(crate) struct IndexStore {
    env: Env<WithoutTls>,
    meta: Database<'static, Bytes, Bytes>,
    rows: Database<'static, Bytes, Bytes>,
    back: Database<'static, Bytes, Bytes>,
    overflow: Database<'static, Bytes, Bytes>,
    trees: u16,
    truncate_at: usize,
    path: PathBuf,
    /// The latest count summary published (`view::counts`): it counts the
    /// snapshot of its `txn_id` exactly and is never changed, only replaced
    /// by one of a later snapshot.
    summary: Mutex<Option<Arc<CountSummary>>>,
    /// Held by whoever produces a summary: a reader rebuilding one, or a
    /// writer from just before its commit until it published the summary of
    /// the new snapshot (so a reader of that snapshot waits for it instead of
    /// rebuilding it).
    summary_producer: Mutex<()>,
    /// Rows per summary bucket aimed at ([`BUCKET_TARGET`]; smaller in tests).
    bucket_target: usize,
    /// Bytes a bulk load appends per transaction ([`BULK_COMMIT_BYTES`];
    /// smaller in tests).
    bulk_commit_bytes: usize,
}

impl IndexStore {
    /// Opens the index in `dir`, creating it if needed. An index whose identity
    /// (signature, collator version, format, tree count) differs is emptied,
    /// so it is rebuilt from sequence 0.
    pub fn open(dir: &Path, identity: &IndexIdentity) -> Result<IndexStore> {
        Self::open_with_truncation(dir, identity, TRUNCATE_AT)
    }

    pub(super) fn open_with_truncation(
        dir: &Path,
        identity: &IndexIdentity,
        truncate_at: usize,
    ) -> Result<IndexStore> {
        std::fs::create_dir_all(dir)?;
        // SAFETY: one environment per directory per process: the view engine
        // keeps a registry of open indexes and never opens a directory twice.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(MAP_SIZE)
                .max_dbs(8)
                .open(dir)
        }
        .map_err(storage_error)?;
        let wtxn = env.write_txn().map_err(storage_error)?;
        let (meta, rows, back, overflow) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
                let rows = opener.create_database::<Bytes, Bytes>(wtxn, Some("rows"))?;
                let back = opener.create_database::<Bytes, Bytes>(wtxn, Some("back"))?;
                let overflow = opener.create_database::<Bytes, Bytes>(wtxn, Some("overflow"))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((meta, rows, back, overflow)))
            })
            .map_err(storage_error)?
            .commit()
            .expect("committed");
        let store = IndexStore {
            env,
            meta,
            rows,
            back,
            overflow,
            trees: identity.trees,
            truncate_at,
            path: dir.to_path_buf(),
            summary: Mutex::new(None),
            summary_producer: Mutex::new(()),
            bucket_target: BUCKET_TARGET,
            bulk_commit_bytes: BULK_COMMIT_BYTES,
        };
        store.check_identity(identity)?;
        Ok(store)
    }

    fn check_identity(&self, identity: &IndexIdentity) -> Result<()> {
        let expected = serde_json::json!({
            "signature": identity.signature,
            "collator_version": identity.collator_version,
            "format": FORMAT_VERSION,
            "trees": identity.trees,
        })
        .to_string();
        {
            let rtxn = self.read_txn()?;
            let current = self.meta.get(&rtxn, b"identity").map_err(storage_error)?;
            if current == Some(expected.as_bytes()) && !self.is_building(&rtxn)? {
                return Ok(());
            }
        }
        let mut wtxn = self.env.write_txn().map_err(storage_error)?;
        let current = self.meta.get(&wtxn, b"identity").map_err(storage_error)?;
        if self.is_building(&wtxn)? {
            tracing::info!(path = %self.path.display(), "discarding an interrupted bulk build");
        } else if current.is_some() {
            tracing::info!(path = %self.path.display(), "index identity changed; rebuilding");
        }
        for db in [self.meta, self.rows, self.back, self.overflow] {
            db.clear(&mut wtxn).map_err(storage_error)?;
        }
        self.meta
            .put(&mut wtxn, b"identity", expected.as_bytes())
            .map_err(storage_error)?;
        wtxn.commit().map_err(storage_error)
    }

    /// A consistent read snapshot.
    pub fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>> {
        self.env.read_txn().map_err(storage_error)
    }

    /// Whether a bulk load is in progress (or was interrupted): its partial
    /// rows are committed but the index must read as empty.
    pub fn is_building(&self, txn: &RoTxn<'_, WithoutTls>) -> Result<bool> {
        Ok(self
            .meta
            .get(txn, BUILDING_KEY)
            .map_err(storage_error)?
            .is_some())
    }

    /// The database sequence the committed index reflects.
    pub fn update_seq(&self, txn: &RoTxn<'_, WithoutTls>) -> Result<u64> {
        Ok(self.meta_u64(txn, b"update_seq")?.unwrap_or(0))
    }

    /// Number of rows in a tree (`total_rows`).
    pub fn row_count(&self, txn: &RoTxn<'_, WithoutTls>, tree: u16) -> Result<u64> {
        Ok(self.meta_u64(txn, &count_key(tree))?.unwrap_or(0))
    }

    /// Bytes used on disk.
    pub fn disk_size(&self) -> Result<u64> {
        self.env.real_disk_size().map_err(storage_error)
    }

    fn meta_u64(&self, txn: &RoTxn<'_, WithoutTls>, key: &[u8]) -> Result<Option<u64>> {
        match self.meta.get(txn, key).map_err(storage_error)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(u64::from_be_bytes(bytes.try_into().map_err(
                |_| Error::Corrupt(format!("bad meta value in {}", self.path.display())),
            )?))),
        }
    }

    /// Replaces the rows of the given documents and advances the checkpoint to
    /// `seq`, in one transaction.
    pub fn apply(&self, docs: &[DocRows], seq: u64) -> Result<()> {
        let mut wtxn = self.env.write_txn().map_err(storage_error)?;
        let mut counts: Vec<i64> = vec![0; usize::from(self.trees)];
        // Every row inserted (+1) or removed (-1), by LMDB key, for the summary.
        let mut deltas: Vec<(u16, Vec<u8>, i64)> = Vec::new();
        for doc in docs {
            let back_key = back_key(&doc.doc_id);
            if let Some(old) = self.back.get(&wtxn, &back_key).map_err(storage_error)? {
                let old = decode_back(old)?;
                for (tree, sort_key) in old {
                    let removed = self.remove_row(&mut wtxn, tree, &sort_key)?;
                    deltas.push((tree, removed, -1));
                    counts[usize::from(tree)] -= 1;
                }
            }
            if doc.rows.is_empty() {
                self.back
                    .delete(&mut wtxn, &back_key)
                    .map_err(storage_error)?;
                continue;
            }
            let mut stored = Vec::new();
            for row in &doc.rows {
                let inserted = self.insert_row(&mut wtxn, row, &doc.doc_id)?;
                deltas.push((row.tree, inserted, 1));
                counts[usize::from(row.tree)] += 1;
                encode_back(&mut stored, row.tree, &row.sort_key);
            }
            self.back
                .put(&mut wtxn, &back_key, &stored)
                .map_err(storage_error)?;
        }
        let mut totals = Vec::new();
        for (tree, delta) in counts.into_iter().enumerate() {
            if delta != 0 {
                let tree = tree as u16;
                let count = self.row_count(&wtxn, tree)? as i64 + delta;
                let count = u64::try_from(count)
                    .map_err(|_| Error::Corrupt("negative row count".into()))?;
                totals.push((tree, count));
            }
        }
        let next = self.next_summary(&wtxn, &deltas)?;
        self.commit_checkpoint(wtxn, &totals, seq, next)
    }

    /// The summary of the snapshot `wtxn` writes: the published one with
    /// `deltas` (tree, LMDB key, ±1) applied, if it counts the snapshot
    /// `wtxn` started from (transaction ids grow by one per commit); `None`
    /// otherwise, and the first reader that needs one rebuilds it.
    fn next_summary(
        &self,
        wtxn: &RwTxn<'_>,
        deltas: &[(u16, Vec<u8>, i64)],
    ) -> Result<Option<CountSummary>> {
        let base = self.summary.lock().expect("summary lock").clone();
        let Some(base) = base.filter(|b| b.txn_id + 1 == wtxn.id()) else {
            return Ok(None);
        };
        let mut trees = Vec::with_capacity(base.trees.len());
        for (tree, counts) in base.trees.iter().enumerate() {
            let tree = tree as u16;
            let changed: Vec<(&[u8], i64)> = deltas
                .iter()
                .filter(|(t, _, _)| *t == tree)
                .map(|(_, key, delta)| (key.as_slice(), *delta))
                .collect();
            if changed.is_empty() {
                trees.push(counts.clone());
                continue;
            }
            let mut rows_in = |lo: &[u8], hi: Option<&[u8]>| self.keys_in(wtxn, tree, lo, hi);
            let updated =
                counts.updated(&changed, self.bucket_target, self.truncate_at, &mut rows_in)?;
            trees.push(Arc::new(updated));
        }
        Ok(Some(CountSummary {
            txn_id: wtxn.id(),
            trees,
        }))
    }

    /// The LMDB keys of `tree` in `[lo, hi)` (`hi = None`: to the tree's end).
    fn keys_in(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        lo: &[u8],
        hi: Option<&[u8]>,
    ) -> Result<Vec<Vec<u8>>> {
        let end = tree_end(tree);
        let hi = match hi {
            Some(hi) => Bound::Excluded(hi),
            None => end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        };
        let keys_only = self.rows.remap_data_type::<DecodeIgnore>();
        let mut out = Vec::new();
        for entry in keys_only
            .range(txn, &(Bound::Included(lo), hi))
            .map_err(storage_error)?
        {
            out.push(entry.map_err(storage_error)?.0.to_vec());
        }
        Ok(out)
    }

    /// The count summary for `txn`'s snapshot: the published one if it counts
    /// exactly that snapshot; a new one built from the snapshot if the
    /// published one is older (or missing: after opening, or when a writer
    /// could not derive one); `None` for a snapshot older than the published
    /// summary (a reader that began before the last commit), which walks.
    fn summary_for(&self, txn: &RoTxn<'_, WithoutTls>) -> Result<Option<Arc<CountSummary>>> {
        let id = txn.id();
        let usable = |summary: &Option<Arc<CountSummary>>| match summary {
            Some(s) if s.txn_id == id => Some(Some(s.clone())),
            Some(s) if s.txn_id > id => Some(None),
            _ => None,
        };
        if let Some(found) = usable(&self.summary.lock().expect("summary lock")) {
            return Ok(found);
        }
        let _producing = self.summary_producer.lock().expect("summary producer lock");
        if let Some(found) = usable(&self.summary.lock().expect("summary lock")) {
            return Ok(found);
        }
        let mut builders = self.summary_builders();
        let keys_only = self.rows.remap_data_type::<DecodeIgnore>();
        for entry in keys_only.iter(txn).map_err(storage_error)? {
            let (key, ()) = entry.map_err(storage_error)?;
            builder_of(&mut builders, key)?.push(key);
        }
        let built = Arc::new(CountSummary {
            txn_id: id,
            trees: builders.into_iter().map(|b| Arc::new(b.finish())).collect(),
        });
        self.publish(built.clone());
        Ok(Some(built))
    }

    /// One summary builder per tree.
    fn summary_builders(&self) -> Vec<TreeCountsBuilder> {
        (0..self.trees)
            .map(|tree| TreeCountsBuilder::for_tree(tree, self.bucket_target, self.truncate_at))
            .collect()
    }

    /// Makes `summary` the published one unless a later snapshot's is.
    fn publish(&self, summary: Arc<CountSummary>) {
        let mut current = self.summary.lock().expect("summary lock");
        if current.as_ref().is_none_or(|c| c.txn_id < summary.txn_id) {
            *current = Some(summary);
        }
    }

    /// Ends an index transaction: the row counts of the trees it changed and
    /// the checkpoint, committed with the rows; then publishes `next`, the
    /// count summary of the new snapshot, if the writer derived one.
    ///
    /// Writing `update_seq` also guarantees that the commit advances the
    /// LMDB transaction id (an empty commit would not), which summaries rely
    /// on to tell snapshots apart (`view::counts`, "Versions").
    fn commit_checkpoint(
        &self,
        mut wtxn: RwTxn<'_>,
        counts: &[(u16, u64)],
        seq: u64,
        next: Option<CountSummary>,
    ) -> Result<()> {
        for (tree, count) in counts {
            self.meta
                .put(&mut wtxn, &count_key(*tree), &count.to_be_bytes())
                .map_err(storage_error)?;
        }
        self.meta
            .put(&mut wtxn, b"update_seq", &seq.to_be_bytes())
            .map_err(storage_error)?;
        let _producing = self.summary_producer.lock().expect("summary producer lock");
        wtxn.commit().map_err(storage_error)?;
        if let Some(next) = next {
            self.publish(Arc::new(next));
        }
        Ok(())
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a whole index (the bulk path of a first build, `view::bulk`):
    /// `rows` yields `tree (u16 BE) ‖ full sort key → row value` and `back`
    /// yields back-index entries, each strictly ascending by key; `counts`
    /// are the rows per tree. The tables are cleared first, then appended to
    /// (LMDB `APPEND`). Long sort keys get ranks `FIRST_RANK + i · RANK_STEP`
    /// in each bucket, in order, so LMDB order is sort-key order as with
    /// [`IndexStore::apply`].
    ///
    /// Memory stays bounded: rows are committed every
    /// [`BULK_COMMIT_BYTES`]. **Invariant:** from the first commit to the
    /// last, the index carries [`BUILDING_KEY`], so readers see an empty
    /// index ([`IndexStore::is_building`]) and an interrupted load is
    /// discarded when the index is next opened; the last commit removes the
    /// mark and writes the counts and the checkpoint together, so a
    /// complete index appears at once.
    pub fn bulk_load(
        &self,
        rows: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
        back: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
        counts: &[u64],
        seq: u64,
    ) -> Result<()> {
        let mut wtxn = self.env.write_txn().map_err(storage_error)?;
        for db in [self.rows, self.back, self.overflow] {
            db.clear(&mut wtxn).map_err(storage_error)?;
        }
        self.meta
            .put(&mut wtxn, BUILDING_KEY, b"")
            .map_err(storage_error)?;
        // Appended bytes since the last commit.
        let mut pending = 0usize;
        let out_of_order = |e: heed::Error| match e {
            heed::Error::Mdb(heed::MdbError::KeyExist) => {
                Error::Corrupt("bulk build: keys out of order or repeated".into())
            }
            other => storage_error(other),
        };
        // The current long-key bucket: `tree ‖ prefix` and its last rank.
        let mut bucket: Option<(Vec<u8>, u64)> = None;
        // The count summary of the new snapshot, fed with every LMDB key.
        let mut summary = self.summary_builders();
        for entry in rows {
            let (key, value) = entry?;
            if key.len() < 2 {
                return Err(Error::Corrupt("bulk build: short row key".into()));
            }
            let sort_key = &key[2..];
            if sort_key.len() <= self.truncate_at {
                self.rows
                    .put_with_flags(&mut wtxn, PutFlags::APPEND, &key, &value)
                    .map_err(out_of_order)?;
                builder_of(&mut summary, &key)?.push(&key);
                wtxn = self.bulk_appended(wtxn, &mut pending, key.len() + value.len())?;
                continue;
            }
            let tree = u16::from_be_bytes([key[0], key[1]]);
            let head = &key[..2 + self.truncate_at];
            let rank = match &mut bucket {
                Some((current, rank)) if current.as_slice() == head => {
                    *rank = rank.checked_add(RANK_STEP).ok_or_else(|| {
                        Error::Corrupt("bulk build: too many long keys share a prefix".into())
                    })?;
                    *rank
                }
                _ => {
                    bucket = Some((head.to_vec(), FIRST_RANK));
                    FIRST_RANK
                }
            };
            let prefix = &sort_key[..self.truncate_at];
            self.overflow
                .put_with_flags(
                    &mut wtxn,
                    PutFlags::APPEND,
                    &overflow_key(tree, prefix, rank),
                    sort_key,
                )
                .map_err(out_of_order)?;
            let row_key = truncated_row_key(tree, prefix, rank);
            self.rows
                .put_with_flags(&mut wtxn, PutFlags::APPEND, &row_key, &value)
                .map_err(out_of_order)?;
            builder_of(&mut summary, &row_key)?.push(&row_key);
            wtxn =
                self.bulk_appended(wtxn, &mut pending, key.len() + row_key.len() + value.len())?;
        }
        for entry in back {
            let (key, value) = entry?;
            self.back
                .put_with_flags(&mut wtxn, PutFlags::APPEND, &key, &value)
                .map_err(out_of_order)?;
            wtxn = self.bulk_appended(wtxn, &mut pending, key.len() + value.len())?;
        }
        self.meta
            .delete(&mut wtxn, BUILDING_KEY)
            .map_err(storage_error)?;
        let totals: Vec<(u16, u64)> = (0..self.trees)
            .map(|tree| (tree, counts.get(usize::from(tree)).copied().unwrap_or(0)))
            .collect();
        let next = CountSummary {
            txn_id: wtxn.id(),
            trees: summary.into_iter().map(|b| Arc::new(b.finish())).collect(),
        };
        self.commit_checkpoint(wtxn, &totals, seq, Some(next))
    }

    /// Counts `bytes` appended by a bulk load; past [`BULK_COMMIT_BYTES`]
    /// since the last commit, commits `wtxn` and returns a new transaction
    /// (LMDB has one writer at a time: the old one ends first).
    fn bulk_appended<'e>(
        &'e self,
        wtxn: RwTxn<'e>,
        pending: &mut usize,
        bytes: usize,
    ) -> Result<RwTxn<'e>> {
        *pending += bytes;
        if *pending < self.bulk_commit_bytes {
            return Ok(wtxn);
        }
        *pending = 0;
        wtxn.commit().map_err(storage_error)?;
        self.env.write_txn().map_err(storage_error)
    }

    /// Every entry of `rows`, `back` and `overflow`, in key order (tests).
    #[cfg(test)]
    pub(super) fn raw_tables(&self) -> Result<[RawTable; 3]> {
        let txn = self.read_txn()?;
        let dump = |db: Database<'static, Bytes, Bytes>| -> Result<RawTable> {
            let mut out = Vec::new();
            for entry in db.iter(&txn).map_err(storage_error)? {
                let (k, v) = entry.map_err(storage_error)?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        };
        Ok([dump(self.rows)?, dump(self.back)?, dump(self.overflow)?])
    }

    /// Stores a row; returns its LMDB key.
    fn insert_row(&self, wtxn: &mut RwTxn<'_>, row: &PreparedRow, doc_id: &str) -> Result<Vec<u8>> {
        let lmdb_key = if row.sort_key.len() <= self.truncate_at {
            tree_key(row.tree, &row.sort_key)
        } else {
            self.allocate_overflow(wtxn, row.tree, &row.sort_key)?
        };
        let mut value = Vec::with_capacity(4 + doc_id.len() + row.key_value.len());
        value.extend_from_slice(&(doc_id.len() as u32).to_be_bytes());
        value.extend_from_slice(doc_id.as_bytes());
        value.extend_from_slice(&row.key_value);
        self.rows
            .put(wtxn, &lmdb_key, &value)
            .map_err(storage_error)?;
        Ok(lmdb_key)
    }

    /// Removes a row; returns the LMDB key it had.
    fn remove_row(&self, wtxn: &mut RwTxn<'_>, tree: u16, sort_key: &[u8]) -> Result<Vec<u8>> {
        let lmdb_key = if sort_key.len() <= self.truncate_at {
            tree_key(tree, sort_key)
        } else {
            let bucket = self.bucket(wtxn, tree, &sort_key[..self.truncate_at])?;
            let Some((rank, _)) = bucket.into_iter().find(|(_, full)| full == sort_key) else {
                return Err(Error::Corrupt("overflow entry missing for a row".into()));
            };
            let key = overflow_key(tree, &sort_key[..self.truncate_at], rank);
            self.overflow.delete(wtxn, &key).map_err(storage_error)?;
            truncated_row_key(tree, &sort_key[..self.truncate_at], rank)
        };
        self.rows.delete(wtxn, &lmdb_key).map_err(storage_error)?;
        Ok(lmdb_key)
    }

    /// The long keys sharing `prefix`, in rank order: (rank, full sort key).
    fn bucket(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        prefix: &[u8],
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let start = overflow_key(tree, prefix, 0);
        let end = overflow_key(tree, prefix, u64::MAX);
        let range = (Bound::Included(&start[..]), Bound::Included(&end[..]));
        let mut out = Vec::new();
        for entry in self.overflow.range(txn, &range).map_err(storage_error)? {
            let (key, full) = entry.map_err(storage_error)?;
            let rank = u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8 bytes"));
            out.push((rank, full.to_vec()));
        }
        Ok(out)
    }

    fn allocate_overflow(
        &self,
        wtxn: &mut RwTxn<'_>,
        tree: u16,
        sort_key: &[u8],
    ) -> Result<Vec<u8>> {
        let prefix = &sort_key[..self.truncate_at];
        let bucket = self.bucket(wtxn, tree, prefix)?;
        let position = bucket.partition_point(|(_, full)| full.as_slice() < sort_key);
        let below = position.checked_sub(1).map(|i| bucket[i].0);
        let above = bucket.get(position).map(|(rank, _)| *rank);
        let rank = match (below, above) {
            (None, None) => Some(FIRST_RANK),
            (Some(lo), None) => lo.checked_add(RANK_STEP),
            (None, Some(hi)) => hi.checked_sub(RANK_STEP),
            (Some(lo), Some(hi)) => (hi - lo > 1).then(|| lo + (hi - lo) / 2),
        };
        let rank = match rank {
            Some(rank) => rank,
            None => self.renumber(wtxn, tree, prefix, bucket, position)?,
        };
        self.overflow
            .put(wtxn, &overflow_key(tree, prefix, rank), sort_key)
            .map_err(storage_error)?;
        Ok(truncated_row_key(tree, prefix, rank))
    }

    /// Spreads a bucket's ranks evenly, leaving a gap at `position` for a new
    /// key, and moves the rows accordingly. Returns the rank of the gap.
    fn renumber(
        &self,
        wtxn: &mut RwTxn<'_>,
        tree: u16,
        prefix: &[u8],
        bucket: Vec<(u64, Vec<u8>)>,
        position: usize,
    ) -> Result<u64> {
        let step = u64::MAX / (bucket.len() as u64 + 2);
        let mut moved = Vec::with_capacity(bucket.len());
        for (rank, full) in &bucket {
            let old_row = truncated_row_key(tree, prefix, *rank);
            let value = self
                .rows
                .get(wtxn, &old_row)
                .map_err(storage_error)?
                .ok_or_else(|| Error::Corrupt("row missing for an overflow entry".into()))?
                .to_vec();
            self.rows.delete(wtxn, &old_row).map_err(storage_error)?;
            self.overflow
                .delete(wtxn, &overflow_key(tree, prefix, *rank))
                .map_err(storage_error)?;
            moved.push((full.clone(), value));
        }
        let rank_at = |i: usize| step * (i as u64 + 1);
        for (i, (full, value)) in moved.into_iter().enumerate() {
            let slot = if i < position { i } else { i + 1 };
            let rank = rank_at(slot);
            self.overflow
                .put(wtxn, &overflow_key(tree, prefix, rank), &full)
                .map_err(storage_error)?;
            self.rows
                .put(wtxn, &truncated_row_key(tree, prefix, rank), &value)
                .map_err(storage_error)?;
        }
        Ok(rank_at(position))
    }

    /// The LMDB key `K` such that a row's sort key is `>= bound` exactly when its
    /// LMDB key is `>= K`.
    pub fn seek_key(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        bound: &[u8],
    ) -> Result<Vec<u8>> {
        if bound.len() <= self.truncate_at {
            return Ok(tree_key(tree, bound));
        }
        let prefix = &bound[..self.truncate_at];
        let bucket = self.bucket(txn, tree, prefix)?;
        let position = bucket.partition_point(|(_, full)| full.as_slice() < bound);
        Ok(match bucket.get(position) {
            Some((rank, _)) => truncated_row_key(tree, prefix, *rank),
            // Past the bucket: above every rank, below the next prefix.
            None => {
                let mut key = tree_key(tree, prefix);
                key.push(OVERFLOW_MARK);
                key.extend_from_slice(&[0xFF; 9]);
                key
            }
        })
    }

    /// Rows of `tree` with sort keys in `[lower, upper)`, ascending or descending.
    pub fn scan<'t>(
        &self,
        txn: &'t RoTxn<'_, WithoutTls>,
        tree: u16,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        descending: bool,
    ) -> Result<RowIter<'t>> {
        let (lower, upper) = self.lmdb_range(txn, tree, lower, upper)?;
        let range = (
            lower.as_ref().map(Vec::as_slice),
            upper.as_ref().map(Vec::as_slice),
        );
        let inner: RawEntries<'t> = if descending {
            Box::new(self.rows.rev_range(txn, &range).map_err(storage_error)?)
        } else {
            Box::new(self.rows.range(txn, &range).map_err(storage_error)?)
        };
        Ok(RowIter { inner })
    }

    /// Number of rows of `tree` with sort keys in `[lower, upper)`: the
    /// difference of the two bounds' ranks in the count summary
    /// (`view::counts`), each a binary search and a walk of part of one
    /// bucket; a reader of a snapshot older than the summary walks the range.
    pub fn count(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
    ) -> Result<u64> {
        let (lower, upper) = self.lmdb_range(txn, tree, lower, upper)?;
        let Some(summary) = self.summary_for(txn)? else {
            return self.walk(txn, &lower, &upper);
        };
        let counts = tree_counts(&summary, tree)?;
        let (start, end) = self.range_ranks(txn, tree, counts, &lower, &upper)?;
        Ok(end - start)
    }

    /// Rows of `tree` with sort keys in `[lower, upper)`, ascending, after the
    /// first `skip` of them; returns how many were skipped (fewer than `skip`
    /// when the range is shorter) and the rest. With the count summary the
    /// skipped rows are never read: the first row kept is found by its
    /// position (a binary search and a walk of part of one bucket). A reader
    /// of a snapshot older than the summary skips nothing here, and its
    /// caller walks.
    pub fn scan_skipping<'t>(
        &self,
        txn: &'t RoTxn<'_, WithoutTls>,
        tree: u16,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        skip: u64,
    ) -> Result<(u64, RowIter<'t>)> {
        let summary = match skip {
            0 => None,
            _ => self.summary_for(txn)?,
        };
        let Some(summary) = summary else {
            return Ok((0, self.scan(txn, tree, lower, upper, false)?));
        };
        let counts = tree_counts(&summary, tree)?;
        let (lower, upper) = self.lmdb_range(txn, tree, lower, upper)?;
        let (start, end) = self.range_ranks(txn, tree, counts, &lower, &upper)?;
        let skipped = skip.min(end - start);
        if skipped == end - start {
            return Ok((skipped, RowIter::empty()));
        }
        let first = self.key_at(txn, counts, start + skipped)?;
        let range = (
            Bound::Included(first.as_slice()),
            upper.as_ref().map(Vec::as_slice),
        );
        let inner: RawEntries<'t> = Box::new(self.rows.range(txn, &range).map_err(storage_error)?);
        Ok((skipped, RowIter { inner }))
    }

    /// The ranks of an LMDB range's bounds (rows of the tree below each):
    /// `start <= end`, as a reversed range is empty (the walk finds it so).
    fn range_ranks(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        counts: &TreeCounts,
        lower: &Bound<Vec<u8>>,
        upper: &Bound<Vec<u8>>,
    ) -> Result<(u64, u64)> {
        let rank = |bound: &Bound<Vec<u8>>| match bound {
            // Keys outside the tree (its end) rank after all its rows.
            Bound::Included(key) | Bound::Excluded(key) if key.starts_with(&tree.to_be_bytes()) => {
                self.rank(txn, counts, key)
            }
            _ => Ok(counts.total()),
        };
        let start = rank(lower)?;
        Ok((start, rank(upper)?.max(start)))
    }

    /// The LMDB key of the row at `position` (0-based, below `counts.total()`).
    fn key_at(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        counts: &TreeCounts,
        position: u64,
    ) -> Result<Vec<u8>> {
        let i = counts.bucket_at(position);
        let lower = Bound::Included(counts.bound(i));
        let upper = counts.end_of(i).map_or(Bound::Unbounded, Bound::Excluded);
        let keys_only = self.rows.remap_data_type::<DecodeIgnore>();
        let mut keys = keys_only
            .range(txn, &(lower, upper))
            .map_err(storage_error)?;
        let offset = usize::try_from(position - counts.before(i))
            .map_err(|_| Error::Corrupt("row position out of range".into()))?;
        match keys.nth(offset) {
            Some(entry) => Ok(entry.map_err(storage_error)?.0.to_vec()),
            None => Err(Error::Corrupt(format!(
                "view row counts: no row at position {position}"
            ))),
        }
    }

    /// Rows whose LMDB key is below `key` (a key of the tree `counts` counts).
    fn rank(&self, txn: &RoTxn<'_, WithoutTls>, counts: &TreeCounts, key: &[u8]) -> Result<u64> {
        let i = counts.bucket_of(key);
        let bound = counts.bound(i);
        if bound == key {
            return Ok(counts.before(i));
        }
        let within = self.walk(
            txn,
            &Bound::Included(bound.to_vec()),
            &Bound::Excluded(key.to_vec()),
        )?;
        Ok(counts.before(i) + within)
    }

    /// Number of rows in an LMDB key range, walking the keys without
    /// decoding rows.
    fn walk(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        lower: &Bound<Vec<u8>>,
        upper: &Bound<Vec<u8>>,
    ) -> Result<u64> {
        let range = (
            lower.as_ref().map(Vec::as_slice),
            upper.as_ref().map(Vec::as_slice),
        );
        let keys_only = self.rows.remap_data_type::<DecodeIgnore>();
        let mut n = 0;
        for entry in keys_only.range(txn, &range).map_err(storage_error)? {
            entry.map_err(storage_error)?;
            n += 1;
        }
        Ok(n)
    }

    /// Leaves the index as an interrupted bulk load would (tests).
    #[cfg(test)]
    pub(super) fn mark_building(&self) -> Result<()> {
        let mut wtxn = self.env.write_txn().map_err(storage_error)?;
        self.meta
            .put(&mut wtxn, BUILDING_KEY, b"")
            .map_err(storage_error)?;
        wtxn.commit().map_err(storage_error)
    }

    /// Sets the bytes a bulk load commits at a time (tests: tiny loads
    /// commit several times).
    #[cfg(test)]
    pub(super) fn set_bulk_commit_bytes(&mut self, bytes: usize) {
        self.bulk_commit_bytes = bytes;
    }

    /// Sets the rows per summary bucket aimed at (tests: tiny buckets
    /// exercise splits and merges).
    #[cfg(test)]
    pub(super) fn set_bucket_target(&mut self, target: usize) {
        self.bucket_target = target;
    }

    /// [`IndexStore::count`] by walking every row of the range (tests).
    #[cfg(test)]
    pub(super) fn count_walking(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
    ) -> Result<u64> {
        let (lower, upper) = self.lmdb_range(txn, tree, lower, upper)?;
        self.walk(txn, &lower, &upper)
    }

    /// The published summary's transaction id and bucket bounds of `tree` (tests).
    #[cfg(test)]
    pub(super) fn summary_bounds(&self, tree: u16) -> Option<(usize, Vec<Vec<u8>>)> {
        let summary = self.summary.lock().unwrap().clone()?;
        Some((summary.txn_id, summary.trees[usize::from(tree)].bounds()))
    }

    /// LMDB bounds of the rows of `tree` in `[lower, upper)`.
    fn lmdb_range(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        tree: u16,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
    ) -> Result<LmdbBounds> {
        let lower = match lower {
            Some(bound) => self.seek_key(txn, tree, bound)?,
            None => tree.to_be_bytes().to_vec(),
        };
        let upper = match upper {
            Some(bound) => Bound::Excluded(self.seek_key(txn, tree, bound)?),
            None => tree_end(tree).map_or(Bound::Unbounded, Bound::Excluded),
        };
        Ok((Bound::Included(lower), upper))
    }

    /// Every doc id with rows in the index (for tests and checks).
    #[cfg(test)]
    fn indexed_doc_ids(&self) -> Result<std::collections::HashSet<Vec<u8>>> {
        let txn = self.read_txn()?;
        let mut out = std::collections::HashSet::new();
        for entry in self.back.iter(&txn).map_err(storage_error)? {
            out.insert(entry.map_err(storage_error)?.0.to_vec());
        }
        Ok(out)
    }
}

/// A table's entries, copied (tests).
#[cfg(test)]
pub(super) type RawTable = Vec<(Vec<u8>, Vec<u8>)>;

/// Raw LMDB entries in scan order.
type RawEntries<'t> = Box<dyn Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>> + 't>;

/// LMDB bounds of a key range.
type LmdbBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Rows in scan order.
pub(crate) struct RowIter<'t> {
    inner: RawEntries<'t>,
}

impl RowIter<'_> {
    fn empty() -> Self {
        RowIter {
            inner: Box::new(std::iter::empty()),
        }
    }
}

impl Iterator for RowIter<'_> {
    type Item = Result<StoredRow>;

    fn next(&mut self) -> Option<Self::Item> {
        let (_, value) = match self.inner.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(storage_error(e))),
        };
        Some(decode_row(value))
    }
}

fn decode_row(value: &[u8]) -> Result<StoredRow> {
    let corrupt = || Error::Corrupt("bad view row".into());
    let len = u32::from_be_bytes(value.get(..4).ok_or_else(corrupt)?.try_into().expect("4"));
    let end = 4 + len as usize;
    let doc_id = std::str::from_utf8(value.get(4..end).ok_or_else(corrupt)?)
        .map_err(|_| corrupt())?
        .to_string();
    let (key, value) = decode_key_value(&value[end..]).map_err(|_| corrupt())?;
    Ok(StoredRow { doc_id, key, value })
}

/// The summary of `tree`.
fn tree_counts(summary: &CountSummary, tree: u16) -> Result<&TreeCounts> {
    summary
        .trees
        .get(usize::from(tree))
        .map(Arc::as_ref)
        .ok_or_else(|| Error::Corrupt(format!("no row counts for tree {tree}")))
}

/// The lowest LMDB key after every key of `tree` (`None` for the last tree).
fn tree_end(tree: u16) -> Option<Vec<u8>> {
    tree.checked_add(1).map(|next| next.to_be_bytes().to_vec())
}

/// The summary builder of the tree an LMDB row key belongs to.
fn builder_of<'b>(
    builders: &'b mut [TreeCountsBuilder],
    key: &[u8],
) -> Result<&'b mut TreeCountsBuilder> {
    let tree = key
        .get(..2)
        .map(|t| usize::from(u16::from_be_bytes([t[0], t[1]])));
    tree.and_then(|tree| builders.get_mut(tree))
        .ok_or_else(|| Error::Corrupt("view row key outside every tree".into()))
}

fn tree_key(tree: u16, sort_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + sort_key.len());
    key.extend_from_slice(&tree.to_be_bytes());
    key.extend_from_slice(sort_key);
    key
}

fn truncated_row_key(tree: u16, prefix: &[u8], rank: u64) -> Vec<u8> {
    let mut key = tree_key(tree, prefix);
    key.push(OVERFLOW_MARK);
    key.extend_from_slice(&rank.to_be_bytes());
    key
}

fn overflow_key(tree: u16, prefix: &[u8], rank: u64) -> Vec<u8> {
    let mut key = tree_key(tree, prefix);
    key.extend_from_slice(&rank.to_be_bytes());
    key
}

fn count_key(tree: u16) -> Vec<u8> {
    let mut key = b"rows/".to_vec();
    key.extend_from_slice(&tree.to_be_bytes());
    key
}

/// Long ids are keyed by a prefix and their md5; UTF-8 never contains 0xFF, so
/// such a key never equals a short id.
pub(super) fn back_key(doc_id: &str) -> Vec<u8> {
    if doc_id.len() <= BACK_KEY_MAX {
        return doc_id.as_bytes().to_vec();
    }
    let mut key = doc_id.as_bytes()[..BACK_KEY_MAX - 17].to_vec();
    key.push(0xFF);
    key.extend_from_slice(&Md5::digest(doc_id.as_bytes()));
    key
}

pub(super) fn encode_back(out: &mut Vec<u8>, tree: u16, sort_key: &[u8]) {
    out.extend_from_slice(&tree.to_be_bytes());
    out.extend_from_slice(&(sort_key.len() as u32).to_be_bytes());
    out.extend_from_slice(sort_key);
}

fn decode_back(mut bytes: &[u8]) -> Result<Vec<(u16, Vec<u8>)>> {
    let corrupt = || Error::Corrupt("bad back-index entry".into());
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let tree = u16::from_be_bytes(bytes.get(..2).ok_or_else(corrupt)?.try_into().expect("2"));
        let len = u32::from_be_bytes(bytes.get(2..6).ok_or_else(corrupt)?.try_into().expect("4"));
        let end = 6 + len as usize;
        out.push((tree, bytes.get(6..end).ok_or_else(corrupt)?.to_vec()));
        bytes = &bytes[end..];
    }
    Ok(out)
}

/// Maps LMDB failures to typed errors: a full map or disk is `StorageFull`.
pub(crate) fn storage_error(e: heed::Error) -> Error {
    match e {
        heed::Error::Mdb(heed::MdbError::MapFull) => {
            Error::StorageFull("the view index is full".into())
        }
        heed::Error::Io(io) if io.raw_os_error() == Some(28) => {
            Error::StorageFull("no space left on device".into())
        }
        heed::Error::Io(io) => Error::Io(io),
        other => Error::Corrupt(format!("view index: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collate::{position_after, position_before, row_key};

    fn row_sort_key(encoded_key: &[u8], doc_id: &str, counter: u32) -> Vec<u8> {
        let mut key = encoded_key.to_vec();
        row_key(&mut key, doc_id, counter);
        key
    }
    use proptest::prelude::*;

    fn identity(sig: &str) -> IndexIdentity {
        IndexIdentity {
            signature: sig.into(),
            collator_version: "test".into(),
            trees: 2,
        }
    }

    fn row(tree: u16, key: &[u8], doc: &str, ctr: u32, kv: &str) -> PreparedRow {
        PreparedRow {
            tree,
            sort_key: row_sort_key(key, doc, ctr),
            key_value: kv.as_bytes().to_vec(),
        }
    }

    fn scan_ids(
        store: &IndexStore,
        tree: u16,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        desc: bool,
    ) -> Vec<String> {
        let txn = store.read_txn().unwrap();
        store
            .scan(&txn, tree, lo, hi, desc)
            .unwrap()
            .map(|r| r.unwrap().doc_id)
            .collect()
    }

    /// `n` rows of tree 0 for a bulk load, ascending.
    fn bulk_rows(n: usize) -> Vec<Result<(Vec<u8>, Vec<u8>)>> {
        (0..n)
            .map(|i| {
                let key = format!("k{i:06}");
                Ok((
                    tree_key(0, &row_sort_key(key.as_bytes(), &format!("d{i}"), 0)),
                    format!("[\"{key}\",{i}]").into_bytes(),
                ))
            })
            .collect()
    }

    #[test]
    fn bulk_loads_commit_in_steps_and_read_as_empty_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = IndexStore::open(dir.path().join("a").as_path(), &identity("a")).unwrap();
        store.set_bulk_commit_bytes(256);
        let txn_before = store.read_txn().unwrap().id();
        store
            .bulk_load(bulk_rows(300).into_iter(), std::iter::empty(), &[300, 0], 9)
            .unwrap();
        let txn = store.read_txn().unwrap();
        assert!(!store.is_building(&txn).unwrap());
        assert!(txn.id() > txn_before + 10, "committed in steps");
        assert_eq!(
            (
                store.row_count(&txn, 0).unwrap(),
                store.update_seq(&txn).unwrap()
            ),
            (300, 9)
        );
        drop(txn);
        // The same rows in one step give the same tables.
        let whole = IndexStore::open(dir.path().join("b").as_path(), &identity("a")).unwrap();
        whole
            .bulk_load(bulk_rows(300).into_iter(), std::iter::empty(), &[300, 0], 9)
            .unwrap();
        assert_eq!(store.raw_tables().unwrap(), whole.raw_tables().unwrap());

        // A load that fails half way has committed steps, but they read as
        // building, and reopening discards them.
        let mut rows = bulk_rows(300);
        rows[200] = Err(Error::Corrupt("the sort failed".into()));
        store
            .bulk_load(rows.into_iter(), std::iter::empty(), &[300, 0], 12)
            .unwrap_err();
        {
            let txn = store.read_txn().unwrap();
            assert!(store.is_building(&txn).unwrap());
            assert!(
                store.count(&txn, 0, None, None).unwrap() > 0,
                "steps were committed"
            );
        }
        drop(store);
        let reopened = IndexStore::open(dir.path().join("a").as_path(), &identity("a")).unwrap();
        let txn = reopened.read_txn().unwrap();
        assert!(!reopened.is_building(&txn).unwrap());
        assert_eq!(reopened.count(&txn, 0, None, None).unwrap(), 0);
        assert_eq!(reopened.update_seq(&txn).unwrap(), 0);
    }

    #[test]
    fn apply_replaces_rows_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store = IndexStore::open(dir.path(), &identity("a")).unwrap();
        store
            .apply(
                &[
                    DocRows {
                        doc_id: "d1".into(),
                        rows: vec![row(0, b"b", "d1", 0, "[\"b\",1]")],
                    },
                    DocRows {
                        doc_id: "d2".into(),
                        rows: vec![
                            row(0, b"a", "d2", 0, "[\"a\",2]"),
                            row(1, b"z", "d2", 0, "[\"z\",null]"),
                        ],
                    },
                ],
                5,
            )
            .unwrap();
        {
            let txn = store.read_txn().unwrap();
            assert_eq!(store.update_seq(&txn).unwrap(), 5);
            assert_eq!(store.row_count(&txn, 0).unwrap(), 2);
            assert_eq!(store.row_count(&txn, 1).unwrap(), 1);
        }
        assert_eq!(scan_ids(&store, 0, None, None, false), ["d2", "d1"]);
        assert_eq!(scan_ids(&store, 0, None, None, true), ["d1", "d2"]);
        assert_eq!(scan_ids(&store, 1, None, None, false), ["d2"]);

        // d2 now emits nothing into tree 0 and moves in tree 1; d1 is deleted.
        store
            .apply(
                &[
                    DocRows {
                        doc_id: "d1".into(),
                        rows: vec![],
                    },
                    DocRows {
                        doc_id: "d2".into(),
                        rows: vec![row(1, b"y", "d2", 0, "[\"y\",null]")],
                    },
                ],
                9,
            )
            .unwrap();
        let txn = store.read_txn().unwrap();
        assert_eq!(store.update_seq(&txn).unwrap(), 9);
        assert_eq!(store.row_count(&txn, 0).unwrap(), 0);
        assert_eq!(store.row_count(&txn, 1).unwrap(), 1);
        drop(txn);
        assert!(scan_ids(&store, 0, None, None, false).is_empty());
        let txn = store.read_txn().unwrap();
        let rows: Vec<StoredRow> = store
            .scan(&txn, 1, None, None, false)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            vec![StoredRow {
                doc_id: "d2".into(),
                key: "y".into(),
                value: Value::Null
            }]
        );
        assert_eq!(
            store.indexed_doc_ids().unwrap(),
            std::collections::HashSet::from([b"d2".to_vec()])
        );
    }

    #[test]
    fn reopening_keeps_data_and_identity_change_resets() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = IndexStore::open(dir.path(), &identity("a")).unwrap();
            store
                .apply(
                    &[DocRows {
                        doc_id: "d".into(),
                        rows: vec![row(0, b"k", "d", 0, "[1,2]")],
                    }],
                    3,
                )
                .unwrap();
        }
        // heed refuses a second Env on the same path while one is alive; the
        // first was dropped above, but heed closes asynchronously: wait for it.
        if let Some(closing) = heed::env_closing_event(dir.path().canonicalize().unwrap()) {
            closing.wait();
        }
        {
            let store = IndexStore::open(dir.path(), &identity("a")).unwrap();
            let txn = store.read_txn().unwrap();
            assert_eq!(store.update_seq(&txn).unwrap(), 3);
            assert_eq!(store.row_count(&txn, 0).unwrap(), 1);
        }
        if let Some(closing) = heed::env_closing_event(dir.path().canonicalize().unwrap()) {
            closing.wait();
        }
        let store = IndexStore::open(dir.path(), &identity("b")).unwrap();
        let txn = store.read_txn().unwrap();
        assert_eq!(store.update_seq(&txn).unwrap(), 0);
        assert_eq!(store.row_count(&txn, 0).unwrap(), 0);
        drop(txn);
        assert!(scan_ids(&store, 0, None, None, false).is_empty());
    }

    #[test]
    fn bounds_select_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = IndexStore::open(dir.path(), &identity("a")).unwrap();
        let docs: Vec<DocRows> = [("a", b"k1"), ("b", b"k1"), ("c", b"k2"), ("d", b"k3")]
            .iter()
            .map(|(id, key)| DocRows {
                doc_id: id.to_string(),
                rows: vec![row(0, *key, id, 0, "[0,0]")],
            })
            .collect();
        store.apply(&docs, 1).unwrap();
        let k1_low = position_before(b"k1", None);
        let k1_high = position_after(b"k1", None);
        let k2_high = position_after(b"k2", None);
        assert_eq!(
            scan_ids(&store, 0, Some(&k1_low), Some(&k1_high), false),
            ["a", "b"]
        );
        assert_eq!(
            scan_ids(&store, 0, Some(&k1_low), Some(&k2_high), true),
            ["c", "b", "a"]
        );
        let after_a = position_after(b"k1", Some("a"));
        assert_eq!(
            scan_ids(&store, 0, Some(&after_a), None, false),
            ["b", "c", "d"]
        );
        let before_b = position_before(b"k1", Some("b"));
        assert_eq!(scan_ids(&store, 0, None, Some(&before_b), false), ["a"]);
    }

    #[test]
    fn long_doc_ids_have_distinct_back_keys() {
        let a = "x".repeat(2000);
        let mut b = a.clone();
        b.push('y');
        assert_ne!(back_key(&a), back_key(&b));
        assert!(back_key(&a).len() <= BACK_KEY_MAX);
        assert_eq!(back_key("short"), b"short");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// With a tiny truncation length, most keys overflow: LMDB order must
        /// still equal sort-key order, through inserts, deletes and renumbering,
        /// and every bound must select exactly the rows a plain sort would.
        #[test]
        fn overflow_keys_keep_sort_order(
            keys in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..12), 1..60),
            deletes in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
            bound in proptest::collection::vec(0u8..5, 0..14),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = IndexStore::open_with_truncation(dir.path(), &identity("p"), 6).unwrap();
            // Keys as "encodings": terminated so they are prefix-free.
            let enc = |k: &[u8]| { let mut e: Vec<u8> = k.iter().map(|b| b + 1).collect(); e.push(0); e };
            let mut live: Vec<(Vec<u8>, String)> = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let id = format!("d{i}");
                let sort_key = row_sort_key(&enc(key), &id, 0);
                store.apply(&[DocRows { doc_id: id.clone(), rows: vec![PreparedRow { tree: 0, sort_key: sort_key.clone(), key_value: b"[0,0]".to_vec() }] }], i as u64).unwrap();
                live.push((sort_key, id));
            }
            for index in deletes {
                if live.is_empty() { break; }
                let (_, id) = live.remove(index.index(live.len()));
                store.apply(&[DocRows { doc_id: id, rows: vec![] }], 100).unwrap();
            }
            live.sort();
            let expected: Vec<String> = live.iter().map(|(_, id)| id.clone()).collect();
            prop_assert_eq!(scan_ids(&store, 0, None, None, false), expected.clone());
            let bound = enc(&bound);
            let at_or_above: Vec<String> = live.iter().filter(|(k, _)| k.as_slice() >= bound.as_slice()).map(|(_, id)| id.clone()).collect();
            prop_assert_eq!(scan_ids(&store, 0, Some(&bound), None, false), at_or_above);
            let below: Vec<String> = live.iter().filter(|(k, _)| k.as_slice() < bound.as_slice()).map(|(_, id)| id.clone()).collect();
            prop_assert_eq!(scan_ids(&store, 0, None, Some(&bound), false), below);
        }
    }

    /// The published summary counts `txn`'s snapshot, and each of its
    /// buckets exactly the rows between its bounds (`view::counts` invariant 1).
    fn assert_summary_counts_rows(store: &IndexStore, txn: &RoTxn<'_, WithoutTls>, tree: u16) {
        let summary = store.summary.lock().unwrap().clone().unwrap();
        assert_eq!(summary.txn_id, txn.id());
        let counts = &summary.trees[usize::from(tree)];
        let bounds = counts.bounds();
        assert_eq!(bounds[0], tree.to_be_bytes());
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        for (i, bound) in bounds.iter().enumerate() {
            let end = counts
                .end_of(i)
                .map(<[u8]>::to_vec)
                .or_else(|| tree_end(tree));
            let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
            let rows = store
                .walk(txn, &Bound::Included(bound.clone()), &upper)
                .unwrap();
            assert_eq!(rows, counts.before(i + 1) - counts.before(i), "bucket {i}");
        }
        assert_eq!(counts.total(), store.row_count(txn, tree).unwrap());
    }

    /// A random row set for [`offsets_equal_walking_counts`]: per doc, its
    /// rows as (tree, key bytes) or a deletion.
    type Batch = Vec<(u8, Option<Vec<(u16, Vec<u8>)>>)>;

    fn batches() -> impl Strategy<Value = Vec<(Batch, bool)>> {
        let rows =
            proptest::collection::vec((0u16..2, proptest::collection::vec(0u8..4, 0..10)), 0..4);
        let doc = (0u8..40, proptest::option::weighted(0.8, rows));
        // (docs, forget the summary first: as after reopening)
        proptest::collection::vec(
            (
                proptest::collection::vec(doc, 1..12),
                proptest::bool::weighted(0.1),
            ),
            1..20,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Random batches of inserts, updates and deletes (most keys long, so
        /// renumbering happens, and buckets of 2 rows, so they split and merge
        /// all the time): every count equals the model's, for the newest
        /// snapshot (through the summary, whose buckets must count exactly
        /// their rows) and for a snapshot taken before the batch (which must
        /// not use the newer summary).
        #[test]
        fn offsets_equal_walking_counts(
            batches in batches(),
            bounds in proptest::collection::vec(proptest::collection::vec(0u8..5, 0..12), 1..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = IndexStore::open_with_truncation(dir.path(), &identity("c"), 6).unwrap();
            store.set_bucket_target(2);
            let enc = |k: &[u8]| { let mut e: Vec<u8> = k.iter().map(|b| b + 1).collect(); e.push(0); e };
            let mut bounds: Vec<Option<Vec<u8>>> = bounds.iter().map(|b| Some(enc(b))).collect();
            bounds.push(None);
            let mut model: std::collections::BTreeMap<String, Vec<(u16, Vec<u8>)>> = Default::default();
            let model_count = |model: &std::collections::BTreeMap<String, Vec<(u16, Vec<u8>)>>, tree: u16, lo: &Option<Vec<u8>>, hi: &Option<Vec<u8>>| {
                model.values().flatten().filter(|(t, k)| {
                    *t == tree && lo.as_ref().is_none_or(|lo| k >= lo) && hi.as_ref().is_none_or(|hi| k < hi)
                }).count() as u64
            };
            for (seq, (batch, forget)) in batches.iter().enumerate() {
                if *forget {
                    *store.summary.lock().unwrap() = None;
                }
                let before = model.clone();
                let old = store.read_txn().unwrap();
                let mut docs = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for (doc, rows) in batch {
                    let id = format!("d{doc}");
                    if !seen.insert(id.clone()) { continue; }
                    let rows: Vec<PreparedRow> = rows.iter().flatten().enumerate().map(|(ctr, (tree, key))| PreparedRow {
                        tree: *tree,
                        sort_key: row_sort_key(&enc(key), &id, ctr as u32),
                        key_value: b"[0,0]".to_vec(),
                    }).collect();
                    model.remove(&id);
                    if !rows.is_empty() {
                        model.insert(id.clone(), rows.iter().map(|r| (r.tree, r.sort_key.clone())).collect());
                    }
                    docs.push(DocRows { doc_id: id, rows });
                }
                store.apply(&docs, seq as u64 + 1).unwrap();
                let txn = store.read_txn().unwrap();
                for tree in 0..2u16 {
                    for lo in &bounds {
                        for hi in &bounds {
                            let expected = model_count(&model, tree, lo, hi);
                            prop_assert_eq!(store.count(&txn, tree, lo.as_deref(), hi.as_deref()).unwrap(), expected);
                            prop_assert_eq!(store.count_walking(&txn, tree, lo.as_deref(), hi.as_deref()).unwrap(), expected);
                            let expected_old = model_count(&before, tree, lo, hi);
                            prop_assert_eq!(store.count(&old, tree, lo.as_deref(), hi.as_deref()).unwrap(), expected_old);
                            // Skipping by position finds the rows a walk would.
                            for skip in [1, 3, 7] {
                                let mut expected: Vec<(Vec<u8>, String)> = model.iter().flat_map(|(id, rows)| {
                                    rows.iter().filter(|(t, k)| {
                                        *t == tree && lo.as_ref().is_none_or(|lo| k >= lo) && hi.as_ref().is_none_or(|hi| k < hi)
                                    }).map(move |(_, k)| (k.clone(), id.clone()))
                                }).collect();
                                expected.sort();
                                let kept: Vec<String> = expected.iter().skip(skip as usize).map(|(_, id)| id.clone()).collect();
                                let (skipped, rows) = store.scan_skipping(&txn, tree, lo.as_deref(), hi.as_deref(), skip).unwrap();
                                let ids: Vec<String> = rows.map(|r| r.unwrap().doc_id).collect();
                                prop_assert_eq!((skipped, ids), ((skip).min(expected.len() as u64), kept));
                                // An older snapshot skips nothing itself.
                                let (skipped, rows) = store.scan_skipping(&old, tree, lo.as_deref(), hi.as_deref(), skip).unwrap();
                                prop_assert_eq!((skipped, rows.count() as u64), (0, expected_old));
                            }
                        }
                    }
                    // The newest snapshot was answered by its own summary.
                    assert_summary_counts_rows(&store, &txn, tree);
                }
            }
        }
    }

    /// Readers race a writer (tiny buckets, long keys): whichever summary a
    /// reader finds, published, derived, rebuilt or none, its counts and
    /// skips equal a walk of its own snapshot.
    #[test]
    fn readers_racing_a_writer_count_their_own_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = IndexStore::open_with_truncation(dir.path(), &identity("w"), 6).unwrap();
        store.set_bucket_target(3);
        let done = std::sync::atomic::AtomicBool::new(false);
        let bounds: Vec<Vec<u8>> = (0..6u8).map(|b| vec![b, 1, 0]).collect();
        std::thread::scope(|scope| {
            for reader in 0..2 {
                let (store, done, bounds) = (&store, &done, &bounds);
                scope.spawn(move || {
                    let mut checks = 0;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
                        let txn = store.read_txn().unwrap();
                        for bound in bounds {
                            let fast = store.count(&txn, 0, None, Some(bound)).unwrap();
                            let walked = store.count_walking(&txn, 0, None, Some(bound)).unwrap();
                            assert_eq!(fast, walked, "reader {reader}");
                            let (skipped, rows) =
                                store.scan_skipping(&txn, 0, Some(bound), None, 5).unwrap();
                            let all = store.count_walking(&txn, 0, Some(bound), None).unwrap();
                            assert_eq!(skipped + rows.count() as u64, all);
                        }
                        checks += 1;
                        // Now and then, forget the summary (as after reopening).
                        if checks % 17 == 0 {
                            *store.summary.lock().unwrap() = None;
                        }
                    }
                });
            }
            // A small LCG: deterministic docs, keys long and short.
            let mut state = 7u64;
            let mut next = move |n: u64| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) % n
            };
            for seq in 1..=150u64 {
                let docs: Vec<DocRows> = (0..4)
                    .map(|_| {
                        let id = format!("d{}", next(60));
                        let rows = (0..next(4))
                            .map(|ctr| {
                                let key: Vec<u8> =
                                    (0..next(10)).map(|_| next(6) as u8 + 1).collect();
                                let mut encoded = key;
                                encoded.push(0);
                                PreparedRow {
                                    tree: 0,
                                    sort_key: row_sort_key(&encoded, &id, ctr as u32),
                                    key_value: b"[0,0]".to_vec(),
                                }
                            })
                            .collect();
                        DocRows { doc_id: id, rows }
                    })
                    .fold(Vec::<DocRows>::new(), |mut unique, doc| {
                        if !unique.iter().any(|d| d.doc_id == doc.doc_id) {
                            unique.push(doc);
                        }
                        unique
                    });
                store.apply(&docs, seq).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    #[test]
    fn a_reopened_index_rebuilds_its_counts() {
        let dir = tempfile::tempdir().unwrap();
        let docs: Vec<DocRows> = (0..300u32)
            .map(|i| DocRows {
                doc_id: format!("d{i:03}"),
                rows: vec![row(0, &i.to_be_bytes(), &format!("d{i:03}"), 0, "[0,0]")],
            })
            .collect();
        {
            let store = IndexStore::open(dir.path(), &identity("a")).unwrap();
            store.apply(&docs, 1).unwrap();
        }
        if let Some(closing) = heed::env_closing_event(dir.path().canonicalize().unwrap()) {
            closing.wait();
        }
        let store = IndexStore::open(dir.path(), &identity("a")).unwrap();
        assert!(store.summary_bounds(0).is_none());
        let txn = store.read_txn().unwrap();
        let bound = row_sort_key(&200u32.to_be_bytes(), "d200", 0);
        assert_eq!(store.count(&txn, 0, None, Some(&bound)).unwrap(), 200);
        let (id, bounds) = store.summary_bounds(0).unwrap();
        assert_eq!(id, txn.id());
        assert_eq!(bounds.len(), 300_usize.div_ceil(BUCKET_TARGET));
        drop(txn);
        // The next write derives its summary from the rebuilt one.
        store
            .apply(
                &docs[..1]
                    .iter()
                    .map(|d| DocRows {
                        doc_id: d.doc_id.clone(),
                        rows: vec![],
                    })
                    .collect::<Vec<_>>(),
                2,
            )
            .unwrap();
        let txn = store.read_txn().unwrap();
        assert_eq!(store.summary_bounds(0).unwrap().0, txn.id());
        assert_eq!(store.count(&txn, 0, None, Some(&bound)).unwrap(), 199);
    }

    #[test]
    fn exhausted_gaps_renumber_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = IndexStore::open_with_truncation(dir.path(), &identity("r"), 4).unwrap();
        // Tiny buckets: renumbering moves rows, never across a bucket bound.
        store.set_bucket_target(2);
        // After the lowest and highest keys, every key goes between the previous
        // one and the highest: the gap halves each time, so a renumbering must
        // happen within ~32 inserts.
        let order = [0u32, u32::MAX].into_iter().chain(1..50);
        let mut expected = Vec::new();
        for (seq, i) in order.enumerate() {
            let mut key = b"AAAA".to_vec();
            key.extend_from_slice(&i.to_be_bytes());
            key.push(0);
            let id = format!("{i:010}");
            let sort_key = row_sort_key(&key, &id, 0);
            let rows = vec![PreparedRow {
                tree: 0,
                sort_key: sort_key.clone(),
                key_value: b"[0,0]".to_vec(),
            }];
            store
                .apply(
                    &[DocRows {
                        doc_id: id.clone(),
                        rows,
                    }],
                    seq as u64,
                )
                .unwrap();
            let txn = store.read_txn().unwrap();
            store.count(&txn, 0, None, None).unwrap();
            assert_summary_counts_rows(&store, &txn, 0);
            drop(txn);
            expected.push((sort_key, id));
        }
        expected.sort();
        let ids: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        assert_eq!(scan_ids(&store, 0, None, None, false), ids);
    }
}
