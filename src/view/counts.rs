//! Row-count summaries of a view index, so that `offset` (rows before a key)
//! costs a binary search and a walk of one small bucket instead of a walk of
//! every row before the key.
//!
//! CouchDB keeps row counts in the inner nodes of its B-trees; LMDB exposes
//! no inner pages, so settee keeps a summary beside them: for each tree, the
//! rows cut into *buckets* of consecutive LMDB keys, with cumulative counts.
//!
//! ## Structure ([`TreeCounts`])
//! - `bound(i)` is an LMDB key (tree prefix included); bucket `i` holds the rows
//!   whose key is in `[bound(i), bound(i + 1))`, the last one up to the end of
//!   the tree. `bound(0)` is the bare tree prefix, the lowest key of the tree.
//! - `before[i]` is the number of rows in buckets `0..i`; `before[len]` is the
//!   tree's total.
//! - The rows below a key `K` are `before[i] + |rows in [bound(i), K)|`, with `i`
//!   the last bucket whose bound is `<= K`: a binary search and a walk of less
//!   than one bucket.
//!
//! ## Invariants
//! 1. Bounds are strictly ascending, `bound(0)` is the tree prefix, and
//!    `before` is the running sum of the buckets' true row counts.
//! 2. A bound never falls strictly inside a group of truncated long keys that
//!    share a prefix (`view::index` module docs): a bound taken from such a key
//!    is cut to `tree ‖ prefix ‖ 0xFF`, which is below every key of the group
//!    and above every other key below the group (sort keys are prefix-free, so
//!    no key that fits starts with a truncation prefix). Renumbering ranks
//!    moves rows only inside their group, so it never moves a row across a
//!    bound and never changes a count.
//! 3. Sizes: a bucket over `2 · target` rows is split into `target`-row pieces
//!    (except inside one long-key group, which cannot be cut); neighbours
//!    whose sum is at most `target` are merged. So a lookup walks fewer than
//!    `2 · target` rows and the summary has at most `2 · rows / target + 1`
//!    buckets.
//!
//! ## Versions
//! A [`CountSummary`] is tagged with the LMDB transaction id of the snapshot
//! it counts, and is only used by a reader of exactly that snapshot (others
//! walk, or rebuild it): `view::index` publishes a summary only after the
//! transaction it describes committed, and every write transaction of the
//! index writes its `meta` table, so each commit advances the id and no two
//! different snapshots share one. A summary is immutable once published
//! (readers share it through an `Arc`); the writer derives the next one from a
//! copy, which costs `O(buckets)` per batch: plain cumulative counts then
//! answer in `O(1)` after the search, where a Fenwick tree would only pay off
//! for in-place updates.
//!
//! The summary lives in memory, not in LMDB: it adds no write to a row insert
//! or delete, and needs no recovery after a crash. A reopened index (or one
//! whose summary fell behind, see `IndexStore::summary_for`) rebuilds it at the
//! first query that needs an offset, with one walk over the keys.

use std::sync::Arc;

use crate::error::{Error, Result};

/// Rows per bucket aimed at (invariant 3). A lookup walks at most twice this;
/// on average about half of it.
pub(crate) const BUCKET_TARGET: usize = 32;

/// Lists the LMDB keys in `[lo, hi)` (`hi = None`: to the end of the tree).
pub(crate) type RowsIn<'a> = dyn FnMut(&[u8], Option<&[u8]>) -> Result<Vec<Vec<u8>>> + 'a;

/// The counts of every tree of an index, as of one committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CountSummary {
    /// The LMDB transaction id of the snapshot counted.
    pub txn_id: usize,
    /// One per tree, in tree order (shared: a write copies only the trees it
    /// changed).
    pub trees: Vec<Arc<TreeCounts>>,
}

/// The buckets of one tree (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeCounts {
    /// The bounds, concatenated (one allocation, so a copy is two `memcpy`s).
    keys: Vec<u8>,
    /// `ends[i]`: where `bound(i)` ends in `keys`.
    ends: Vec<usize>,
    /// `before[i]`: rows in buckets `0..i`; one longer than `ends`.
    before: Vec<u64>,
}

impl TreeCounts {
    /// Number of buckets.
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The lowest key of bucket `i`.
    pub fn bound(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.keys[start..self.ends[i]]
    }

    /// The key where bucket `i` ends (exclusive), `None` for the last bucket.
    pub fn end_of(&self, i: usize) -> Option<&[u8]> {
        (i + 1 < self.len()).then(|| self.bound(i + 1))
    }

    /// Rows in the tree.
    pub fn total(&self) -> u64 {
        *self.before.last().expect("before has len + 1 entries")
    }

    /// Rows in buckets before `i`.
    pub fn before(&self, i: usize) -> u64 {
        self.before[i]
    }

    /// Rows in bucket `i`.
    fn count(&self, i: usize) -> u64 {
        self.before[i + 1] - self.before[i]
    }

    /// The bucket holding `key`: the last one whose bound is `<= key`. Keys
    /// of this tree are never below `bound(0)`, the tree prefix.
    pub fn bucket_of(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.bound(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.saturating_sub(1)
    }

    /// The bucket holding the row at `position` (0-based, below `total`):
    /// the last one with fewer rows before it than `position + 1`.
    pub fn bucket_at(&self, position: u64) -> usize {
        self.before[..self.len()]
            .partition_point(|&before| before <= position)
            .saturating_sub(1)
    }

    /// The summary after a write transaction: `deltas` are the rows it
    /// inserted (+1) and removed (-1), by LMDB key; `rows_in(lo, hi)` lists
    /// the LMDB keys in `[lo, hi)` (`hi = None`: to the end of the tree) as
    /// the transaction leaves them, for the buckets that must be split.
    /// Fails with `Corrupt` if the deltas or the listed keys contradict the
    /// counts (a broken invariant, never expected).
    pub fn updated(
        &self,
        deltas: &[(&[u8], i64)],
        target: usize,
        truncate_at: usize,
        rows_in: &mut RowsIn<'_>,
    ) -> Result<TreeCounts> {
        let mut counts: Vec<i64> = (0..self.len()).map(|i| self.count(i) as i64).collect();
        for (key, delta) in deltas {
            counts[self.bucket_of(key)] += delta;
        }
        let mut out = BucketsBuilder::default();
        for (i, &count) in counts.iter().enumerate() {
            let count = u64::try_from(count)
                .map_err(|_| Error::Corrupt("view row counts went negative".into()))?;
            if count > 2 * target as u64 {
                // Split: recount the bucket's keys into target-sized pieces.
                let keys = rows_in(self.bound(i), self.end_of(i))?;
                if keys.len() as u64 != count {
                    return Err(Error::Corrupt(format!(
                        "view row counts: bucket of {count} rows holds {}",
                        keys.len()
                    )));
                }
                let mut split = TreeCountsBuilder::starting_at(self.bound(i), target, truncate_at);
                for key in &keys {
                    split.push(key);
                }
                for (j, (bound, n)) in split.buckets.iter().enumerate() {
                    if j == 0 {
                        out.push_or_merge(bound, n, target);
                    } else {
                        out.push(bound, n);
                    }
                }
            } else if i == 0 {
                out.push(self.bound(0), count);
            } else {
                out.push_or_merge(self.bound(i), count, target);
            }
        }
        Ok(out.finish())
    }
}

/// Buckets being collected in key order.
#[derive(Debug, Default)]
struct BucketsBuilder {
    keys: Vec<u8>,
    ends: Vec<usize>,
    counts: Vec<u64>,
}

impl BucketsBuilder {
    /// Starts a bucket at `bound` (above every bound so far) with `n` rows.
    fn push(&mut self, bound: &[u8], n: u64) {
        self.keys.extend_from_slice(bound);
        self.ends.push(self.keys.len());
        self.counts.push(n);
    }

    /// Like `push`, but adds the rows to the last bucket instead when the two
    /// together hold at most `target` rows (invariant 3).
    fn push_or_merge(&mut self, bound: &[u8], n: u64, target: usize) {
        match self.counts.last_mut() {
            Some(last) if *last + n <= target as u64 => *last += n,
            _ => self.push(bound, n),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.ends
            .iter()
            .zip(&self.counts)
            .enumerate()
            .map(|(i, (&end, &n))| {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                (&self.keys[start..end], n)
            })
    }

    fn finish(self) -> TreeCounts {
        let mut before = Vec::with_capacity(self.counts.len() + 1);
        let mut sum = 0;
        before.push(0);
        for n in &self.counts {
            sum += n;
            before.push(sum);
        }
        TreeCounts {
            keys: self.keys,
            ends: self.ends,
            before,
        }
    }
}

/// Cuts a run of ascending LMDB keys into buckets of `target` rows (fewer
/// only where a long-key group cannot be cut, invariant 2). Used for whole
/// trees (a bulk load, a rebuild) and for splitting one bucket.
#[derive(Debug)]
pub(crate) struct TreeCountsBuilder {
    buckets: BucketsBuilder,
    target: usize,
    truncate_at: usize,
    /// The last key pushed (a new bound must be above it).
    last: Vec<u8>,
}

impl TreeCountsBuilder {
    /// A builder for a whole tree: the first bucket starts at the tree prefix.
    pub fn for_tree(tree: u16, target: usize, truncate_at: usize) -> TreeCountsBuilder {
        Self::starting_at(&tree.to_be_bytes(), target, truncate_at)
    }

    fn starting_at(first_bound: &[u8], target: usize, truncate_at: usize) -> TreeCountsBuilder {
        let mut buckets = BucketsBuilder::default();
        buckets.push(first_bound, 0);
        TreeCountsBuilder {
            buckets,
            target: target.max(1),
            truncate_at,
            last: Vec::new(),
        }
    }

    /// Adds the next key (strictly above the previous one).
    pub fn push(&mut self, key: &[u8]) {
        let buckets = &mut self.buckets;
        let full = *buckets.counts.last().expect("one bucket at least") >= self.target as u64;
        if full {
            let bound = bound_for(key, self.truncate_at);
            // Every key pushed so far must stay below the new bound.
            if bound > self.last.as_slice() {
                buckets.push(bound, 0);
            }
        }
        *buckets.counts.last_mut().expect("one bucket at least") += 1;
        self.last.clear();
        self.last.extend_from_slice(key);
    }

    /// The finished buckets.
    pub fn finish(self) -> TreeCounts {
        self.buckets.finish()
    }
}

/// The bound for a bucket starting at `key`: the key itself, or for a
/// truncated long key (`tree ‖ prefix ‖ 0xFF ‖ rank`, longer than any key that
/// fits) the start of its group, `tree ‖ prefix ‖ 0xFF` (invariant 2).
fn bound_for(key: &[u8], truncate_at: usize) -> &[u8] {
    if key.len() > 2 + truncate_at {
        &key[..2 + truncate_at + 1]
    } else {
        key
    }
}

#[cfg(test)]
impl TreeCounts {
    /// Every bound, in order (tests).
    pub fn bounds(&self) -> Vec<Vec<u8>> {
        (0..self.len()).map(|i| self.bound(i).to_vec()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Vec<u8> {
        let mut k = 0u16.to_be_bytes().to_vec();
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    #[test]
    fn builder_cuts_target_sized_buckets() {
        let mut b = TreeCountsBuilder::for_tree(0, 4, 100);
        for n in 0..10 {
            b.push(&key(n));
        }
        let t = b.finish();
        assert_eq!(t.bounds(), vec![vec![0, 0], key(4), key(8)]);
        assert_eq!(t.total(), 10);
        assert_eq!(t.bucket_of(&key(5)), 1);
        assert_eq!(t.bucket_of(&key(4)), 1);
        assert_eq!(t.bucket_of(&[0, 0]), 0);
        assert_eq!(t.before(2), 8);
        assert_eq!([0, 3, 4, 9].map(|p| t.bucket_at(p)), [0, 0, 1, 2]);
    }

    #[test]
    fn long_key_groups_are_never_cut() {
        // truncate_at 2: keys longer than 4 bytes are `tree ‖ p1 p2 ‖ FF ‖ rank`.
        let long = |p: u8, rank: u8| vec![0, 0, p, p, 0xFF, 0, 0, 0, 0, 0, 0, 0, rank];
        let mut b = TreeCountsBuilder::for_tree(0, 2, 2);
        for rank in 1..=5 {
            b.push(&long(1, rank));
        }
        b.push(&long(2, 1));
        let t = b.finish();
        assert_eq!(t.bounds(), vec![vec![0, 0], vec![0, 0, 2, 2, 0xFF]]);
        assert_eq!((t.count(0), t.count(1)), (5, 1));
    }

    #[test]
    fn updates_split_and_merge() {
        let mut b = TreeCountsBuilder::for_tree(0, 4, 100);
        for n in 0..8 {
            b.push(&key(n * 10));
        }
        let t = b.finish();
        // Five inserts into the first bucket: 9 > 2 · 4 rows, so it splits.
        let mut live: Vec<Vec<u8>> = (0..8).map(|n| key(n * 10)).collect();
        let added: Vec<Vec<u8>> = (1..=5).map(key).collect();
        live.extend(added.iter().cloned());
        live.sort();
        let deltas: Vec<(&[u8], i64)> = added.iter().map(|k| (k.as_slice(), 1)).collect();
        let mut rows_in = |lo: &[u8], hi: Option<&[u8]>| -> Result<Vec<Vec<u8>>> {
            Ok(live
                .iter()
                .filter(|k| k.as_slice() >= lo && hi.is_none_or(|hi| k.as_slice() < hi))
                .cloned()
                .collect())
        };
        let t = t.updated(&deltas, 4, 100, &mut rows_in).unwrap();
        assert_eq!(t.bounds(), vec![vec![0, 0], key(4), key(30), key(40)]);
        assert_eq!(
            (t.count(0), t.count(1), t.count(2), t.count(3)),
            (4, 4, 1, 4)
        );
        // Removing most rows merges neighbours.
        let gone: Vec<Vec<u8>> = [4, 5, 10, 20, 30, 40, 50].map(key).to_vec();
        let deltas: Vec<(&[u8], i64)> = gone.iter().map(|k| (k.as_slice(), -1)).collect();
        let t = t.updated(&deltas, 4, 100, &mut rows_in).unwrap();
        assert_eq!(t.bounds(), vec![vec![0, 0], key(40)]);
        assert_eq!(t.total(), 6);
        // A delta the counts cannot hold is corruption, not a panic.
        let deltas: Vec<(&[u8], i64)> = vec![(&[0, 0], -5)];
        assert!(matches!(
            t.updated(&deltas, 4, 100, &mut rows_in),
            Err(Error::Corrupt(_))
        ));
    }
}
