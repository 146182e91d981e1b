//! Compaction: drop the bodies of non-leaf revisions, then write a compacted
//! LMDB copy as a new generation and swap it in, while the database stays
//! readable and writable.
//!
//! Steps: (1) non-leaf bodies are deleted in small write transactions;
//! (2) `mdb_env_copy2(MDB_CP_COMPACT)` copies a snapshot into a new
//! generation directory without holding the write lock; (3) changes committed
//! since the snapshot are replayed from the changes index (idempotently);
//! (4) under the write lock, the last changes, the local documents and the
//! metadata are copied, `CURRENT` is atomically switched and the handle swapped.
//! A crash before the switch leaves the old generation in force; the partial
//! new one is removed at the next open.

use std::ops::Bound;
use std::sync::Arc;

use super::meta::Counters;
use super::record::{body_key, DocRecord};
use super::storage::{self, Generation, TxnResult};
use super::Shared;
use crate::Result;

/// Documents per transaction while dropping bodies or replaying changes.
const BATCH: usize = 1000;

pub(crate) fn compact(shared: &Shared) -> Result<()> {
    let _one_at_a_time = shared
        .compact_lock
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    shared
        .compact_running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let result = run(shared);
    shared
        .compact_running
        .store(false, std::sync::atomic::Ordering::SeqCst);
    result
}

fn run(shared: &Shared) -> Result<()> {
    drop_non_leaf_bodies(shared)?;
    let old = shared.current();
    let current_name = storage::read_current(&shared.path)?
        .ok_or_else(|| crate::Error::Corrupt("CURRENT file vanished".into()))?;
    let new_name = storage::next_generation(&current_name);
    let new_dir = shared.path.join(&new_name);
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir)?;
    }
    std::fs::create_dir_all(&new_dir)?;
    // Every change after this seq is replayed; the copy may already hold some.
    let mut since = old.read(|txn, t| Ok(Counters::load(txn, t)?.update_seq))?;
    old.copy_compacted(&new_dir.join("data.mdb"))?;
    let new = Generation::open(&new_dir, shared.options.initial_map_size)?;
    // Catch up without blocking writers while there is much to replay.
    loop {
        let (next, replayed) = replay(&old, &new, since)?;
        since = next;
        if replayed < BATCH {
            break;
        }
    }
    let _writers = shared.write_lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let (next, replayed) = replay(&old, &new, since)?;
        since = next;
        if replayed == 0 {
            break;
        }
    }
    copy_local_and_meta(&old, &new)?;
    // The switch. Crash windows: before the rename inside `write_current`,
    // `CURRENT` names the old generation, which every acknowledged write
    // reached (writers are held from here on); after it, the new one, which
    // holds all of them (replayed and committed above) and is durable.
    // Whatever is left over (the other generation, `CURRENT.tmp`) is removed
    // at the next open.
    storage::sync_generation_dir(&shared.path, &new_name)?;
    storage::write_current(&shared.path, &new_name)?;
    *shared.generation.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
    drop(old);
    // Readers still holding the old generation keep their mapping; the files go now.
    storage::remove_stale_generations(&shared.path, &new_name)?;
    Ok(())
}

/// Deletes the stored bodies of revisions that are no longer leaves.
fn drop_non_leaf_bodies(shared: &Shared) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let _writers = shared.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let gen = shared.current();
        let next = gen.write(|txn, t| {
            let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut batch = Vec::new();
            let mut last = None;
            for entry in t.docs.range(txn, &(lower, Bound::Unbounded))?.take(BATCH) {
                let (id, bytes) = entry?;
                last = Some(id.to_vec());
                let rec = DocRecord::decode(bytes)?;
                let stale: Vec<usize> = (0..rec.tree.nodes().len())
                    .filter(|&i| rec.tree.node(i).has_body && !rec.tree.is_leaf(i))
                    .collect();
                if !stale.is_empty() {
                    batch.push((id.to_vec(), rec, stale));
                }
            }
            let mut buf = Vec::new();
            for (id, mut rec, stale) in batch {
                for i in stale {
                    t.bodies
                        .delete(txn, &body_key(rec.doc_num, &rec.tree.node(i).rev))?;
                    rec.tree.set_has_body(i, false);
                }
                rec.encode(&mut buf);
                t.docs.put(txn, &id, &buf)?;
            }
            Ok(last)
        })?;
        match next {
            Some(id) => after = Some(id),
            None => return Ok(()),
        }
    }
}

/// Copies up to [`BATCH`] documents changed after `since` from `old` to `new`.
/// Returns the new `since` and how many changes were replayed.
fn replay(old: &Generation, new: &Generation, since: u64) -> Result<(u64, usize)> {
    type Change = (u64, Vec<u8>, Option<(DocRecord, Vec<(Vec<u8>, Vec<u8>)>)>);
    let changes: Vec<Change> = old.read(|txn, t| {
        let mut out = Vec::new();
        for entry in t
            .by_seq
            .range(txn, &(Bound::Excluded(since), Bound::Unbounded))?
            .take(BATCH)
        {
            let (seq, id) = entry?;
            let doc = match t.docs.get(txn, id)? {
                Some(bytes) => {
                    let rec = DocRecord::decode(bytes)?;
                    let mut bodies = Vec::new();
                    for n in rec.tree.nodes().iter().filter(|n| n.has_body) {
                        let key = body_key(rec.doc_num, &n.rev);
                        if let Some(b) = t.bodies.get(txn, &key)? {
                            bodies.push((key, b.to_vec()));
                        }
                    }
                    Some((rec, bodies))
                }
                None => None,
            };
            out.push((seq, id.to_vec(), doc));
        }
        Ok(out)
    })?;
    let Some(last) = changes.last().map(|c| c.0) else {
        return Ok((since, 0));
    };
    new.write(|txn, t| -> TxnResult<()> {
        let mut buf = Vec::new();
        for (seq, id, doc) in &changes {
            let Some((rec, bodies)) = doc else { continue };
            if let Some(prev) = t.docs.get(txn, id)? {
                let prev = DocRecord::decode(prev)?;
                t.by_seq.delete(txn, &prev.seq)?;
                let prefix = prev.doc_num.to_be_bytes();
                t.bodies.delete_range(
                    txn,
                    &(
                        Bound::Included(&prefix[..]),
                        Bound::Excluded(&(prev.doc_num + 1).to_be_bytes()[..]),
                    ),
                )?;
            }
            for (key, body) in bodies {
                t.bodies.put(txn, key, body)?;
            }
            rec.encode(&mut buf);
            t.docs.put(txn, id, &buf)?;
            t.by_seq.put(txn, seq, id)?;
        }
        Ok(())
    })?;
    Ok((last, changes.len()))
}

/// Copies every local document and metadata entry (counters included).
fn copy_local_and_meta(old: &Generation, new: &Generation) -> Result<()> {
    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
    let (local, meta): (Pairs, Vec<(String, Vec<u8>)>) = old.read(|txn, t| {
        let mut local = Vec::new();
        for entry in t.local.iter(txn)? {
            let (k, v) = entry?;
            local.push((k.to_vec(), v.to_vec()));
        }
        let mut meta = Vec::new();
        for entry in t.meta.iter(txn)? {
            let (k, v) = entry?;
            meta.push((k.to_owned(), v.to_vec()));
        }
        Ok((local, meta))
    })?;
    new.write(|txn, t| {
        t.local.clear(txn)?;
        for (k, v) in &local {
            t.local.put(txn, k, v)?;
        }
        t.meta.clear(txn)?;
        for (k, v) in &meta {
            t.meta.put(txn, k, v)?;
        }
        Ok(())
    })
}
