//! The bulk path of a group's first build: rows are collected into an external
//! sorter (sorted in parallel with rayon, spilled as sorted runs to temporary
//! files past a memory budget), then k-way merged and appended in key order
//! (LMDB `APPEND`) into the empty index, as Meilisearch's milli does for its
//! bulk loads.
//!
//! ## When
//! Only when the group's checkpoint is 0 (never built, or emptied because its
//! identity changed). Every later pass takes the incremental path
//! ([`crate::view::index::IndexStore::apply`]).
//!
//! ## What it writes
//! Exactly what applying the same changes incrementally would store: the same
//! rows (LMDB key `tree ‖ sort key`, same value bytes), the same back-index
//! entries (same key, same value bytes: a doc's rows in [`DocRows`] order),
//! the same row counts and the same checkpoint. The only difference is in the
//! ranks of long keys (module docs of `index`): the bulk path numbers each
//! bucket `FIRST_RANK + i · RANK_STEP` in sort-key order, which is what the
//! incremental path assigns when keys arrive in order; ranks only encode order,
//! so every range, count and later incremental update behaves the same.
//!
//! Every document appears at most once in the bulk input: the pass reads the
//! changes feed only up to the sequence the database had when the pass began,
//! and an edit made meanwhile moves the document to a later sequence, past
//! that bound. The rest of the feed is then applied incrementally.
//!
//! ## Crash safety (invariant)
//! **Nothing of a bulk build is visible until its final LMDB commit, which
//! writes the row counts and the checkpoint and removes the `bulk_building`
//! mark together.** The rows, overflow entries and back-index are appended
//! in transactions of about 32 MiB (`IndexStore::bulk_load`), each carrying
//! the mark: while it is there, queries see an empty index, and opening the
//! index discards a marked one (a crash or an error at any point), so the
//! next pass bulk-builds again from scratch; the run files of a killed
//! build (in `bulk.tmp/` inside the index directory) are deleted when the
//! next build starts, and by a finished or failed one. The load clears the
//! tables first, so it never depends on them being empty.
//!
//! A `ControlFlow::Break` from the progress callback ends the input at the
//! last batch read; what was gathered so far (complete documents, up to that
//! batch's sequence) is merged and committed with that checkpoint, so the
//! next pass resumes incrementally from there.
//!
//! ## Memory
//! Encoded rows and back-index entries are held in two flat buffers; when
//! the records in them pass the budget both are sorted (rayon
//! `par_sort_unstable`) and written as runs to one file each, and the
//! buffers (keeping their allocation) start over. The merge reads every run
//! through a small buffer of its own, and the load commits every 32 MiB, so
//! a build needs about the budget plus one LMDB transaction's dirty pages,
//! whatever the number of documents.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;

use crate::error::{Error, Result};
use crate::view::index::{back_key, encode_back, DocRows, IndexStore};

/// Settings of the bulk path of a group's first build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkBuildConfig {
    /// Whether a group's first build takes the bulk path (otherwise it is
    /// built batch by batch like any update).
    pub enabled: bool,
    /// Bytes of encoded rows held in memory before they are sorted and
    /// spilled to a temporary file as a sorted run (approximate: buffers
    /// grow in steps of an eighth of it).
    pub memory_budget: usize,
}

impl Default for BulkBuildConfig {
    fn default() -> Self {
        BulkBuildConfig {
            enabled: true,
            memory_budget: 256 << 20,
        }
    }
}

/// Bytes read at a time from one run during the merge.
const READ_CHUNK: usize = 64 << 10;

/// Where a build's run files live, inside the index directory.
const RUN_DIR: &str = "bulk.tmp";

/// One record of the in-memory buffer: `data[offset..]` holds key then value.
#[derive(Clone, Copy)]
struct Entry {
    offset: usize,
    key_len: u32,
    value_len: u32,
}

impl Entry {
    fn key<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.offset..self.offset + self.key_len as usize]
    }

    fn value<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let start = self.offset + self.key_len as usize;
        &data[start..start + self.value_len as usize]
    }
}

/// Collects `(key, value)` records and yields them sorted by key, spilling
/// sorted runs to one file. Keys are expected to be unique.
struct ExternalSorter {
    data: Vec<u8>,
    entries: Vec<Entry>,
    /// Upper bound on one growth step of `data`.
    grow_step: usize,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    written: u64,
    /// `(start, end)` byte ranges of the runs in the file.
    runs: Vec<(u64, u64)>,
}

impl ExternalSorter {
    fn new(path: PathBuf, budget: usize) -> ExternalSorter {
        ExternalSorter {
            data: Vec::new(),
            entries: Vec::new(),
            grow_step: (budget / 8).max(64 << 10),
            path,
            file: None,
            written: 0,
            runs: Vec::new(),
        }
    }

    /// Bytes of records in the buffer. Not its capacity: a spill empties the
    /// buffer but keeps its allocation for the next run, and measuring the
    /// allocation would make every later document spill a run of its own.
    fn bytes(&self) -> usize {
        self.data.len() + self.entries.len() * std::mem::size_of::<Entry>()
    }

    /// Adds a record whose key and value are the concatenations of the parts.
    fn push(&mut self, key: &[&[u8]], value: &[&[u8]]) {
        let key_len: usize = key.iter().map(|p| p.len()).sum();
        let value_len: usize = value.iter().map(|p| p.len()).sum();
        let needed = key_len + value_len;
        if self.data.len() + needed > self.data.capacity() {
            let step = self.data.capacity().clamp(64 << 10, self.grow_step);
            self.data.reserve_exact(step.max(needed));
        }
        let offset = self.data.len();
        for part in key.iter().chain(value) {
            self.data.extend_from_slice(part);
        }
        self.entries.push(Entry {
            offset,
            key_len: key_len as u32,
            value_len: value_len as u32,
        });
    }

    fn sort(&mut self) {
        let data = &self.data;
        self.entries
            .par_sort_unstable_by(|a, b| a.key(data).cmp(b.key(data)));
    }

    /// Sorts the buffer and appends it to the run file as one run.
    fn spill(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.sort();
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)?;
            self.file = Some(BufWriter::with_capacity(1 << 20, file));
        }
        let out = self.file.as_mut().expect("opened above");
        let start = self.written;
        for entry in &self.entries {
            out.write_all(&entry.key_len.to_be_bytes())?;
            out.write_all(&entry.value_len.to_be_bytes())?;
            out.write_all(entry.key(&self.data))?;
            out.write_all(entry.value(&self.data))?;
            self.written += 8 + u64::from(entry.key_len) + u64::from(entry.value_len);
        }
        self.runs.push((start, self.written));
        self.data.clear();
        self.entries.clear();
        Ok(())
    }

    /// Every record, sorted: the runs on file merged with the sorted buffer.
    fn into_merge(mut self) -> Result<MergeIter> {
        self.sort();
        let file = match self.file.take() {
            Some(writer) => {
                let file = writer.into_inner().map_err(|e| Error::Io(e.into_error()))?;
                Some(file)
            }
            None => None,
        };
        let readers: Vec<RunReader> = self
            .runs
            .iter()
            .map(|&(start, end)| RunReader {
                pos: start,
                end,
                buf: Vec::new(),
                start: 0,
            })
            .collect();
        let mut merge = MergeIter {
            memory_data: std::mem::take(&mut self.data),
            memory: std::mem::take(&mut self.entries),
            memory_pos: 0,
            file,
            readers,
            heap: BinaryHeap::new(),
            values: Vec::new(),
        };
        let sources = merge.readers.len() + 1;
        merge.values = vec![Vec::new(); sources];
        for source in 0..sources {
            if let Some((key, value)) = merge.read(source)? {
                merge.values[source] = value;
                merge.heap.push(Reverse((key, source)));
            }
        }
        Ok(merge)
    }
}

/// Sequential reader of one run, through its own buffer (`pread`, so runs
/// share one file descriptor).
struct RunReader {
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    start: usize,
}

impl RunReader {
    fn next(&mut self, file: &File) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.start == self.buf.len() && self.pos == self.end {
            return Ok(None);
        }
        self.fill(file, 8)?;
        let header = &self.buf[self.start..self.start + 8];
        let key_len = u32::from_be_bytes(header[..4].try_into().expect("4")) as usize;
        let value_len = u32::from_be_bytes(header[4..].try_into().expect("4")) as usize;
        self.start += 8;
        self.fill(file, key_len + value_len)?;
        let key = self.buf[self.start..self.start + key_len].to_vec();
        self.start += key_len;
        let value = self.buf[self.start..self.start + value_len].to_vec();
        self.start += value_len;
        Ok(Some((key, value)))
    }

    /// Makes sure `buf[start..]` holds at least `n` bytes.
    fn fill(&mut self, file: &File, n: usize) -> Result<()> {
        let available = self.buf.len() - self.start;
        if available >= n {
            return Ok(());
        }
        self.buf.drain(..self.start);
        self.start = 0;
        let remaining = self.end - self.pos;
        let want = ((n - available).max(READ_CHUNK) as u64).min(remaining) as usize;
        if want < n - available {
            return Err(Error::Corrupt("truncated bulk-build run file".into()));
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        file.read_exact_at(&mut self.buf[old..], self.pos)?;
        self.pos += want as u64;
        Ok(())
    }
}

/// A k-way merge (min-heap) of sorted sources: the runs on file and the
/// sorted in-memory buffer (the last source).
pub(crate) struct MergeIter {
    memory_data: Vec<u8>,
    memory: Vec<Entry>,
    memory_pos: usize,
    file: Option<File>,
    readers: Vec<RunReader>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    /// The value belonging to each source's key in the heap.
    values: Vec<Vec<u8>>,
}

impl MergeIter {
    fn read(&mut self, source: usize) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if source == self.readers.len() {
            let Some(entry) = self.memory.get(self.memory_pos) else {
                return Ok(None);
            };
            self.memory_pos += 1;
            return Ok(Some((
                entry.key(&self.memory_data).to_vec(),
                entry.value(&self.memory_data).to_vec(),
            )));
        }
        let file = self.file.as_ref().expect("runs have a file");
        self.readers[source].next(file)
    }
}

impl Iterator for MergeIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((key, source)) = self.heap.pop()?;
        let value = std::mem::take(&mut self.values[source]);
        match self.read(source) {
            Ok(Some((next_key, next_value))) => {
                self.values[source] = next_value;
                self.heap.push(Reverse((next_key, source)));
            }
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok((key, value)))
    }
}

/// The run directory of one build; removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    /// Creates it afresh, deleting what a killed build left behind.
    fn create(index_dir: &Path) -> Result<RunDir> {
        let path = index_dir.join(RUN_DIR);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(RunDir(path))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Gathers the rows of a first build and writes them (`IndexStore::bulk_load`).
pub(crate) struct BulkBuilder {
    rows: ExternalSorter,
    back: ExternalSorter,
    counts: Vec<u64>,
    budget: usize,
    spills: usize,
    // Last, so that the run files are closed before the directory goes.
    _dir: RunDir,
}

impl BulkBuilder {
    /// A builder for `index`, with run files in its directory.
    pub fn new(index: &IndexStore, trees: u16, memory_budget: usize) -> Result<BulkBuilder> {
        let dir = RunDir::create(index.path())?;
        Ok(BulkBuilder {
            rows: ExternalSorter::new(dir.0.join("rows.run"), memory_budget),
            back: ExternalSorter::new(dir.0.join("back.run"), memory_budget),
            counts: vec![0; usize::from(trees)],
            budget: memory_budget,
            spills: 0,
            _dir: dir,
        })
    }

    /// Adds one batch of documents' rows. Every document must be new to the
    /// build (see the module docs).
    pub fn add(&mut self, docs: &[DocRows]) -> Result<()> {
        let mut back_value = Vec::new();
        for doc in docs {
            if doc.rows.is_empty() {
                continue;
            }
            back_value.clear();
            let id_len = (doc.doc_id.len() as u32).to_be_bytes();
            for row in &doc.rows {
                self.rows.push(
                    &[&row.tree.to_be_bytes(), &row.sort_key],
                    &[&id_len, doc.doc_id.as_bytes(), &row.key_value],
                );
                self.counts[usize::from(row.tree)] += 1;
                encode_back(&mut back_value, row.tree, &row.sort_key);
            }
            self.back.push(&[&back_key(&doc.doc_id)], &[&back_value]);
            if self.rows.bytes() + self.back.bytes() > self.budget {
                self.rows.spill()?;
                self.back.spill()?;
                self.spills += 1;
            }
        }
        Ok(())
    }

    /// How many times the buffers were spilled to disk.
    #[cfg(test)]
    pub fn spills(&self) -> usize {
        self.spills
    }

    /// Merges everything gathered and writes it, with checkpoint `seq`, in
    /// one transaction.
    pub fn finish(self, index: &IndexStore, seq: u64) -> Result<()> {
        tracing::debug!(
            spills = self.spills,
            rows = self.counts.iter().sum::<u64>(),
            "bulk build: merging"
        );
        let rows = self.rows.into_merge()?;
        let back = self.back.into_merge()?;
        index.bulk_load(rows, back, &self.counts, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::index::PreparedRow;
    use proptest::prelude::*;

    #[test]
    fn sorter_merges_runs_and_memory_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = ExternalSorter::new(dir.path().join("r"), 1);
        let mut expected = Vec::new();
        for i in (0..500u32).rev() {
            let key = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
            let value = vec![i as u8; (i % 7) as usize];
            sorter.push(&[&key[..2], &key[2..]], &[&value]);
            expected.push((key.to_vec(), value));
            if i % 97 == 0 {
                sorter.spill().unwrap();
            }
        }
        assert!(sorter.runs.len() >= 5);
        expected.sort();
        let merged: Vec<(Vec<u8>, Vec<u8>)> =
            sorter.into_merge().unwrap().map(Result::unwrap).collect();
        assert_eq!(merged, expected);
    }

    fn identity() -> crate::view::index::IndexIdentity {
        crate::view::index::IndexIdentity {
            signature: "bulk".into(),
            collator_version: "test".into(),
            trees: 2,
        }
    }

    fn all_entries(store: &IndexStore) -> [crate::view::index::RawTable; 3] {
        store.raw_tables().unwrap()
    }

    #[test]
    fn spills_come_once_per_budget_of_records() {
        // Each spill must empty the budget: a run per budget's worth of
        // records, not (as when capacity was measured) one per document
        // after the first spill.
        let dir = tempfile::tempdir().unwrap();
        let store = IndexStore::open(dir.path(), &identity()).unwrap();
        let budget = 8 << 10;
        let mut builder = BulkBuilder::new(&store, 2, budget).unwrap();
        let docs: Vec<DocRows> = (0..2000)
            .map(|i| {
                let id = format!("d{i:05}");
                let mut sort_key = format!("key{i:05}").into_bytes();
                crate::collate::row_key(&mut sort_key, &id, 0);
                DocRows {
                    doc_id: id,
                    rows: vec![PreparedRow {
                        tree: 0,
                        sort_key,
                        key_value: format!("[\"key{i:05}\",{i}]").into_bytes(),
                    }],
                }
            })
            .collect();
        for chunk in docs.chunks(100) {
            builder.add(chunk).unwrap();
        }
        let record_bytes = builder.rows.bytes() + builder.back.bytes();
        let spills = builder.spills();
        // About 100 bytes of records per document: some 25 runs of 8 KiB.
        assert!(
            (10..=60).contains(&spills),
            "{spills} spills ({record_bytes} bytes left)"
        );
        builder.finish(&store, 20).unwrap();
        let txn = store.read_txn().unwrap();
        assert_eq!(store.row_count(&txn, 0).unwrap(), 2000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// With a tiny truncation length (most keys overflow) and a tiny
        /// budget (many runs), a bulk load stores the same rows, back-index and
        /// counts as applying the docs batch by batch, with long keys in the
        /// same order; later incremental updates behave the same on both.
        #[test]
        fn bulk_load_equals_incremental_apply(
            docs in proptest::collection::vec(
                proptest::collection::vec((0u16..2, proptest::collection::vec(0u8..3, 0..10)), 0..5),
                1..40),
            budget in 1usize..4000,
            updates in proptest::collection::vec(
                (any::<prop::sample::Index>(), proptest::collection::vec(0u8..3, 0..10)), 0..10),
        ) {
            let enc = |k: &[u8]| { let mut e: Vec<u8> = k.iter().map(|b| b + 1).collect(); e.push(0); e };
            let doc_rows = |i: usize, emits: &[(u16, Vec<u8>)]| -> DocRows {
                let id = format!("d{i:03}");
                let mut rows: Vec<PreparedRow> = emits.iter().enumerate().map(|(n, (tree, key))| {
                    let mut sort_key = enc(key);
                    crate::collate::row_key(&mut sort_key, &id, n as u32);
                    PreparedRow { tree: *tree, sort_key, key_value: format!("[{n},{i}]").into_bytes() }
                }).collect();
                rows.sort_by(|a, b| (a.tree, &a.sort_key).cmp(&(b.tree, &b.sort_key)));
                DocRows { doc_id: id, rows }
            };
            let all: Vec<DocRows> = docs.iter().enumerate().map(|(i, e)| doc_rows(i, e)).collect();
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let incremental = IndexStore::open_with_truncation(a.path(), &identity(), 6).unwrap();
            let mut bulk = IndexStore::open_with_truncation(b.path(), &identity(), 6).unwrap();
            // Buckets of 2 rows: the summary the bulk load publishes is cut
            // into many buckets, which later updates split and merge.
            bulk.set_bucket_target(2);
            for (n, chunk) in all.chunks(3).enumerate() {
                incremental.apply(chunk, n as u64 + 1).unwrap();
            }
            let mut builder = BulkBuilder::new(&bulk, 2, budget).unwrap();
            for chunk in all.chunks(3) {
                builder.add(chunk).unwrap();
            }
            let seq = all.chunks(3).count() as u64;
            // A budget of one byte spills after every document with rows.
            prop_assert!(budget > 1 || builder.spills() > 0 || all.iter().all(|d| d.rows.is_empty()));
            builder.finish(&bulk, seq).unwrap();
            prop_assert!(!b.path().join(RUN_DIR).exists());
            // The two indexes hold the same rows, back-index and counts, and
            // the bulk one's count summary answers for its snapshot.
            let same = |incremental: &IndexStore, bulk: &IndexStore| -> Result<(), TestCaseError> {
                let (x, y) = (all_entries(incremental), all_entries(bulk));
                // Rows and back-index: byte-identical when nothing overflows;
                // with overflow, the same values in the same order.
                for table in 0..3 {
                    let xv: Vec<&Vec<u8>> = x[table].iter().map(|(_, v)| v).collect();
                    let yv: Vec<&Vec<u8>> = y[table].iter().map(|(_, v)| v).collect();
                    prop_assert_eq!(xv, yv);
                }
                prop_assert_eq!(&x[1], &y[1]); // back-index keys and values
                for tree in 0..2 {
                    let (tx, ty) = (incremental.read_txn().unwrap(), bulk.read_txn().unwrap());
                    prop_assert_eq!(incremental.row_count(&tx, tree).unwrap(), bulk.row_count(&ty, tree).unwrap());
                    prop_assert_eq!(bulk.summary_bounds(tree).map(|(id, _)| id), Some(ty.id()));
                    for bound in [vec![], vec![1], vec![1, 2], vec![2, 0], vec![3, 3, 3]] {
                        let bound = enc(&bound);
                        prop_assert_eq!(
                            bulk.count(&ty, tree, Some(&bound), None).unwrap(),
                            incremental.count_walking(&tx, tree, Some(&bound), None).unwrap()
                        );
                    }
                }
                Ok(())
            };
            same(&incremental, &bulk)?;
            for store in [&incremental, &bulk] {
                let txn = store.read_txn().unwrap();
                prop_assert_eq!(store.update_seq(&txn).unwrap(), seq);
            }
            // Later incremental updates land the same on both.
            for (n, (index, key)) in updates.iter().enumerate() {
                let i = index.index(all.len());
                let doc = doc_rows(i, &[(0, key.clone()), (1, key.clone())]);
                incremental.apply(std::slice::from_ref(&doc), 100 + n as u64).unwrap();
                bulk.apply(std::slice::from_ref(&doc), 100 + n as u64).unwrap();
            }
            same(&incremental, &bulk)?;
        }
    }
}
