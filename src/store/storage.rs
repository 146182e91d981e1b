//! LMDB plumbing: one environment per database generation, its tables, the
//! process-wide registry of open databases, map growth and error mapping.
//!
//! A database directory holds a pointer file `CURRENT` naming the live
//! generation directory (`store-<n>/`, an LMDB environment). Compaction
//! writes a new generation and atomically replaces `CURRENT`, so a crash at
//! any moment leaves either the old or the new generation in force.
//!
//! # Map growth and readers
//!
//! LMDB maps the data file into memory; a write that needs pages beyond the
//! map size fails with `MDB_MAP_FULL`. Growing the map
//! (`mdb_env_set_mapsize`) unmaps and remaps the file, so it may only run
//! while *no* transaction is open in the process: a reader's pages would
//! dangle. LMDB cannot pin a snapshot across transactions either, so a
//! reader cannot be asked to step aside and resume on the same snapshot.
//! The only way for writers never to wait for readers is therefore to have
//! the map already large enough whenever a reader is open.
//!
//! **Invariant (headroom):** before each write transaction the writer checks
//! the free part of the map; when it is below half of the headroom
//! ([`headroom`]: the larger of [`MIN_HEADROOM`] and the used size), the map
//! is grown to `used + headroom`, but only if no transaction is open at that
//! moment (the gate is *tried*, never waited for). A writer thus waits for
//! readers only when one reader stays open while more than half a headroom
//! (at least 512 MiB of pages, or half the database) is written; then the
//! write hits `MDB_MAP_FULL` and [`Generation::write`] falls back to a
//! growth that waits for the open readers to finish.
//!
//! Why not map a huge size (say 1 TiB) up front, as the view indexes do:
//! the map costs address space for as long as the environment is open, and
//! a process holds one environment per database generation plus one per
//! view index. 47-bit user space (128 TiB) fits about a hundred such maps,
//! less under `RLIMIT_AS` or on 39-bit arm64 kernels. Headroom proportional
//! to the data keeps the reservation at most about twice the data plus
//! 1 GiB, while still making growth rare (O(log size) times past 1 GiB).
//! A remap also checks first that the address space exists, because a
//! failed `mdb_env_set_mapsize` leaves the environment unmapped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use heed::types::{Bytes, Str, U64};
use heed::{
    byteorder::BigEndian, CommitOrAbort, Env, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls,
};

use crate::{Error, Result};

/// Name of the pointer file naming the live generation.
pub(crate) const CURRENT_FILE: &str = "CURRENT";
const GENERATION_PREFIX: &str = "store-";

/// The tables of one environment.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    /// doc id → encoded `DocRecord`.
    pub docs: heed::Database<'static, Bytes, Bytes>,
    /// `body_key` → body JSON bytes.
    pub bodies: heed::Database<'static, Bytes, Bytes>,
    /// update seq → doc id.
    pub by_seq: heed::Database<'static, U64<BigEndian>, Bytes>,
    /// `_local/` doc id → `[rev u64 BE][body JSON]`.
    pub local: heed::Database<'static, Bytes, Bytes>,
    /// metadata name → bytes (counters, revs_limit, user metadata).
    pub meta: heed::Database<'static, Str, Bytes>,
}

impl Tables {
    /// Bytes of the pages holding live data on this snapshot: every table's
    /// branch, leaf and overflow pages plus LMDB's two meta pages (the
    /// catalogue of table names fits in a page and is left out). Free pages
    /// (old page versions awaiting reuse) are not counted: they are the
    /// part of the file that compaction gives back.
    pub fn live_bytes(&self, txn: &RoTxn<'_, WithoutTls>) -> heed::Result<u64> {
        let stats = [
            self.docs.stat(txn)?,
            self.bodies.stat(txn)?,
            self.by_seq.stat(txn)?,
            self.local.stat(txn)?,
            self.meta.stat(txn)?,
        ];
        let pages: usize = stats
            .iter()
            .map(|s| s.branch_pages + s.leaf_pages + s.overflow_pages)
            .sum();
        Ok(((pages + 2) * page_size()) as u64)
    }
}

/// An error inside a transaction closure: either LMDB's, kept raw so a full
/// map can be told apart and retried, or a settee error.
pub(crate) enum TxnError {
    Heed(heed::Error),
    Store(Error),
}

impl From<heed::Error> for TxnError {
    fn from(e: heed::Error) -> Self {
        TxnError::Heed(e)
    }
}

impl From<Error> for TxnError {
    fn from(e: Error) -> Self {
        TxnError::Store(e)
    }
}

impl From<TxnError> for Error {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Heed(e) => heed_error(e),
            TxnError::Store(e) => e,
        }
    }
}

/// A boxed key/value iterator over a table, forwards or backwards.
pub(crate) type KvIter<'t> = Box<dyn Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>> + 't>;

/// Result of code running inside a transaction.
pub(crate) type TxnResult<T> = std::result::Result<T, TxnError>;

/// Maps an LMDB error to settee's error type.
pub(crate) fn heed_error(e: heed::Error) -> Error {
    match e {
        heed::Error::Mdb(MdbError::MapFull) => Error::StorageFull("the LMDB map is full".into()),
        heed::Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
            Error::StorageFull("no space left on device".into())
        }
        // The file may not grow further (RLIMIT_FSIZE or a file system limit).
        heed::Error::Io(io) if io.raw_os_error() == Some(libc::EFBIG) => {
            Error::StorageFull("the data file may not grow further".into())
        }
        heed::Error::Io(io) => Error::Io(io),
        other => Error::Corrupt(format!("LMDB: {other}")),
    }
}

fn is_map_resized(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(MdbError::MapResized))
}

fn is_map_full(e: &TxnError) -> bool {
    matches!(e, TxnError::Heed(heed::Error::Mdb(MdbError::MapFull)))
}

/// One LMDB environment (a database generation) and its tables.
pub(crate) struct Generation {
    env: Env<WithoutTls>,
    /// The tables.
    pub tables: Tables,
    /// Every transaction (read or write) holds it shared for its lifetime;
    /// changing the map size holds it exclusively, because LMDB may only be
    /// resized while no transaction is open in the process. Only
    /// [`Generation::grow`] (a write that hit `MDB_MAP_FULL`) ever *waits*
    /// for it exclusively; every other resize only tries it, so a long
    /// reader never stalls them (see the module documentation).
    gate: RwLock<()>,
    /// Directory of this generation.
    pub dir: PathBuf,
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

fn round_to_pages(n: usize) -> usize {
    let page = page_size();
    n.div_ceil(page).max(1) * page
}

/// The least free map space the writer keeps ahead of the data.
pub(crate) const MIN_HEADROOM: usize = 1 << 30;

/// Free map space to keep ahead of `used` bytes of data: proportional to
/// the data, so growth past [`MIN_HEADROOM`] happens O(log size) times.
fn headroom(used: usize) -> usize {
    used.max(MIN_HEADROOM)
}

/// The map size to grow to, if a map of `map_size` bytes holding `used`
/// bytes has less than half a headroom free (hysteresis: no growth attempt
/// on every write).
fn headroom_target(used: usize, map_size: usize) -> Option<usize> {
    let room = headroom(used);
    (map_size.saturating_sub(used) < room / 2).then(|| round_to_pages(used.saturating_add(room)))
}

/// Whether `bytes` of address space can be mapped now. `mdb_env_set_mapsize`
/// unmaps the old map before mapping the new one and leaves the environment
/// without a map when that fails, so a remap is only attempted after an
/// equivalent reservation succeeded (while the old map still exists, so the
/// probe is, if anything, stricter than the remap).
fn address_space_available(bytes: usize) -> bool {
    // SAFETY: an anonymous, inaccessible, unreserved mapping touches no
    // memory and is unmapped at once; it aliases nothing.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        libc::munmap(p, bytes);
    }
    true
}

impl Generation {
    /// Opens (creating if needed) the environment in `dir`.
    pub fn open(dir: &Path, initial_map_size: usize) -> Result<Generation> {
        fs::create_dir_all(dir)?;
        let file_size = fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len() as usize);
        let map_size = round_to_pages(initial_map_size.max(file_size.saturating_mul(2)));
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(map_size).max_dbs(8).max_readers(1022);
        // SAFETY: the registry guarantees one Env per directory in this process,
        // and the files are only modified through LMDB.
        let env = unsafe { options.open(dir) }.map_err(heed_error)?;
        let wtxn = env.write_txn().map_err(heed_error)?;
        let tables = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let docs = dbo.create_database(wtxn, Some("docs"))?;
                let bodies = dbo.create_database(wtxn, Some("bodies"))?;
                let by_seq = dbo.create_database(wtxn, Some("by_seq"))?;
                let local = dbo.create_database(wtxn, Some("local"))?;
                let meta = dbo.create_database(wtxn, Some("meta"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((
                    docs, bodies, by_seq, local, meta,
                )))
            })
            .map_err(heed_error)?
            .unwrap_commit();
        let (docs, bodies, by_seq, local, meta) = tables;
        Ok(Generation {
            env,
            tables: Tables {
                docs,
                bodies,
                by_seq,
                local,
                meta,
            },
            gate: RwLock::new(()),
            dir: dir.to_owned(),
        })
    }

    /// Runs `f` in a read transaction on a consistent snapshot.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithoutTls>, &Tables) -> TxnResult<T>,
    ) -> Result<T> {
        loop {
            let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            match self.env.read_txn() {
                Ok(txn) => return Ok(f(&txn, &self.tables)?),
                Err(e) if is_map_resized(&e) => {}
                Err(e) => return Err(heed_error(e)),
            }
            drop(_gate);
            self.adopt_map_size()?;
        }
    }

    /// Runs `f` in a write transaction and commits it. The map is first
    /// grown ahead of need if no reader is open (the headroom invariant of
    /// the module documentation). When the map is full anyway the
    /// transaction is dropped, the map grown (waiting for open readers) and
    /// `f` run again, so `f` must not have effects outside the transaction.
    /// Callers serialise writers (the store's write lock) before calling.
    pub fn write<T>(
        &self,
        mut f: impl FnMut(&mut RwTxn<'_>, &Tables) -> TxnResult<T>,
    ) -> Result<T> {
        self.keep_headroom();
        loop {
            let attempt = {
                let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
                (|| {
                    let mut txn = self.env.write_txn()?;
                    let out = f(&mut txn, &self.tables)?;
                    txn.commit()?;
                    Ok(out)
                })()
            };
            match attempt {
                Err(e) if is_map_full(&e) => self.grow()?,
                Err(TxnError::Heed(e)) if is_map_resized(&e) => self.adopt_map_size()?,
                Err(TxnError::Heed(heed::Error::Io(io)))
                    if io.raw_os_error() == Some(libc::EIO) && self.storage_exhausted() =>
                {
                    return Err(Error::StorageFull(
                        "no space left for the data file (short write)".into(),
                    ))
                }
                other => return other.map_err(Error::from),
            }
        }
    }

    /// Bytes of the map in use (up to the last allocated page) and the map size.
    fn map_usage(&self) -> (usize, usize) {
        let info = self.env.info();
        ((info.last_page_number + 1) * page_size(), info.map_size)
    }

    /// Grows the map ahead of need when less than half a headroom is free,
    /// but only if no transaction is open right now: it never waits, so a
    /// long reader delays growth without ever stalling the writer.
    fn keep_headroom(&self) {
        let (used, map_size) = self.map_usage();
        let Some(new_size) = headroom_target(used, map_size) else {
            return;
        };
        // A reader is open (possibly in this very thread): try again at the
        // next write; the map still has half a headroom free.
        let Ok(_gate) = self.gate.try_write() else {
            return;
        };
        if !address_space_available(new_size) {
            tracing::warn!(
                new_size,
                "no address space to grow the LMDB map ahead of need"
            );
            return;
        }
        tracing::debug!(used, new_size, dir = %self.dir.display(), "growing the LMDB map ahead of need");
        // SAFETY: no transaction is open: writers are serialised by the
        // caller (whose own transaction is not open yet), and the gate,
        // held exclusively, excludes every reader.
        if let Err(e) = unsafe { self.env.resize(new_size) } {
            tracing::warn!(error = %e, "growing the LMDB map ahead of need failed");
        }
    }

    /// Grows the map after `MDB_MAP_FULL`: to at least twice its size and a
    /// full headroom above the data. This is the one place that waits for
    /// open readers (the headroom ran out while a reader stayed open).
    fn grow(&self) -> Result<()> {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let (used, map_size) = self.map_usage();
        let new_size = round_to_pages(
            map_size
                .saturating_mul(2)
                .max(used.saturating_add(headroom(used))),
        );
        if !address_space_available(new_size) {
            return Err(Error::StorageFull(format!(
                "no address space left to grow the LMDB map to {new_size} bytes"
            )));
        }
        tracing::debug!(new_size, dir = %self.dir.display(), "growing the full LMDB map");
        // SAFETY: no transaction is open: writers are serialised by the caller
        // (which dropped its own), and the gate excludes every reader.
        unsafe { self.env.resize(new_size) }.map_err(heed_error)
    }

    /// Adopts a map size grown by another process (LMDB's `MDB_MAP_RESIZED`).
    /// Polls for exclusive access instead of queueing for it, so a thread
    /// that holds the gate shared (a validator reading inside a write) can
    /// never deadlock against it.
    fn adopt_map_size(&self) -> Result<()> {
        loop {
            if let Ok(_gate) = self.gate.try_write() {
                // SAFETY: the gate is held exclusively: no transaction is open.
                return unsafe { self.env.resize(0) }.map_err(heed_error);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Whether the data file cannot grow: LMDB reports a short write as
    /// `EIO`, so a full disk (or a reached file size limit) is told apart
    /// from a failing one by looking at the free space and the limit.
    fn storage_exhausted(&self) -> bool {
        /// Less free space than this counts as full (one large transaction).
        const LOW_SPACE: u64 = 64 << 20;
        let file_size = fs::metadata(self.dir.join("data.mdb")).map_or(0, |m| m.len());
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into a valid struct.
        let limited = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } == 0
            && lim.rlim_cur != libc::RLIM_INFINITY
            && file_size + LOW_SPACE >= lim.rlim_cur;
        let Ok(path) = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()) else {
            return limited;
        };
        // SAFETY: statvfs reads a NUL-terminated path and writes into a valid struct.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let low_disk = unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0
            && (st.f_bavail as u64).saturating_mul(st.f_frsize as u64) < LOW_SPACE;
        limited || low_disk
    }

    /// Bytes used by the data file on disk.
    pub fn file_size(&self) -> u64 {
        self.env.real_disk_size().unwrap_or(0)
    }

    /// Writes a compacted copy of the environment to `path` (a file).
    pub fn copy_compacted(&self, path: &Path) -> Result<()> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let file = self
            .env
            .copy_to_path(path, heed::CompactionOption::Enabled)
            .map_err(heed_error)?;
        file.sync_all()?;
        Ok(())
    }
}

/// Name of the live generation, if the directory holds a database.
pub(crate) fn read_current(db_dir: &Path) -> Result<Option<String>> {
    match fs::read_to_string(db_dir.join(CURRENT_FILE)) {
        Ok(s) => {
            let name = s.trim().to_owned();
            if !name.starts_with(GENERATION_PREFIX) || name.contains('/') {
                return Err(Error::Corrupt(format!("bad {CURRENT_FILE} file: {name:?}")));
            }
            Ok(Some(name))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Atomically points `CURRENT` at `generation` (write, fsync, rename, fsync dir).
pub(crate) fn write_current(db_dir: &Path, generation: &str) -> Result<()> {
    let tmp = db_dir.join(format!("{CURRENT_FILE}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(generation.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, db_dir.join(CURRENT_FILE))?;
    fs::File::open(db_dir)?.sync_all()?;
    Ok(())
}

/// The generation name following `name` (`store-3` → `store-4`).
pub(crate) fn next_generation(name: &str) -> String {
    let n: u64 = name
        .strip_prefix(GENERATION_PREFIX)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    format!("{GENERATION_PREFIX}{}", n + 1)
}

/// The first generation of a new database.
pub(crate) fn first_generation() -> String {
    format!("{GENERATION_PREFIX}0")
}

/// Whether a directory entry name is a generation (`store-<n>`).
fn is_generation(name: &str) -> bool {
    name.strip_prefix(GENERATION_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes generation directories other than `keep` and a pointer file left
/// half-written (`CURRENT.tmp`): leftovers of a crash during compaction or
/// creation, or of a replaced generation. `CURRENT` alone decides which
/// generation is live, so none of these can hold anything acknowledged.
pub(crate) fn remove_stale_generations(db_dir: &Path, keep: &str) -> Result<()> {
    for entry in fs::read_dir(db_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_generation(name) && name != keep && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    match fs::remove_file(db_dir.join(format!("{CURRENT_FILE}.tmp"))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Makes a new generation directory and its files durable before `CURRENT`
/// may name it: its own entries, and its entry in the database directory.
/// (The LMDB commits and the copy fsync the file contents themselves.)
pub(crate) fn sync_generation_dir(db_dir: &Path, generation: &str) -> Result<()> {
    fs::File::open(db_dir.join(generation))?.sync_all()?;
    fs::File::open(db_dir)?.sync_all()?;
    Ok(())
}

/// Checks that a new database may be created in `dir`: it holds nothing
/// but leftovers of an interrupted creation.
pub(crate) fn check_creatable(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if !is_generation(&name) && name != format!("{CURRENT_FILE}.tmp") {
            return Err(Error::bad_request(format!(
                "{} is not empty and holds no settee database",
                dir.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_and_full_map_are_storage_full() {
        let enospc = heed::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let efbig = heed::Error::Io(std::io::Error::from_raw_os_error(libc::EFBIG));
        for e in [enospc, efbig, heed::Error::Mdb(MdbError::MapFull)] {
            let e = heed_error(e);
            assert_eq!((e.status(), e.name()), (507, "insufficient_storage"));
        }
        let other = heed_error(heed::Error::Io(std::io::Error::from_raw_os_error(
            libc::EIO,
        )));
        assert_eq!(other.status(), 500);
    }

    #[test]
    fn the_map_grows_ahead_of_the_data() {
        let mib = 1 << 20;
        // A fresh 1 MiB map gets a full headroom at the first write.
        assert_eq!(
            headroom_target(8192, mib),
            Some(round_to_pages(8192 + MIN_HEADROOM))
        );
        // Half a headroom still free: no growth attempt.
        assert_eq!(
            headroom_target(100 * mib, 100 * mib + MIN_HEADROOM / 2),
            None
        );
        // Past MIN_HEADROOM the headroom is the size of the data.
        let used = 4 * MIN_HEADROOM;
        assert_eq!(headroom_target(used, used + used / 2), None);
        assert_eq!(headroom_target(used, used + used / 2 - 1), Some(2 * used));
        assert!(address_space_available(MIN_HEADROOM));
    }

    #[test]
    fn generation_names() {
        assert_eq!(first_generation(), "store-0");
        assert_eq!(next_generation("store-0"), "store-1");
        assert_eq!(next_generation("store-41"), "store-42");
    }
}
