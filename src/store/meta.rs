//! Durable per-database metadata: the counters every write updates, the
//! revision limit, and free-form entries other modules store (security object,
//! view bookkeeping).

use heed::{RoTxn, RwTxn, WithoutTls};

use super::storage::{Tables, TxnResult};
use crate::Error;

const COUNTERS: &str = "counters";
const REVS_LIMIT: &str = "revs_limit";
/// Prefix of metadata entries owned by other modules.
const USER_PREFIX: &str = "user:";

/// CouchDB's default `_revs_limit`.
pub const DEFAULT_REVS_LIMIT: u64 = 1000;

/// Counters kept in one metadata entry, updated by every write transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// The seq of the latest change.
    pub update_seq: u64,
    /// Number of live documents (design documents included, local ones not).
    pub doc_count: u64,
    /// Number of deleted documents (tombstones).
    pub doc_del_count: u64,
    /// Next internal document number.
    pub next_doc_num: u64,
    /// Total size of the winning revisions' bodies.
    pub external_size: u64,
}

impl Counters {
    /// Reads the counters (zero for a new database).
    pub fn load(txn: &RoTxn<'_, WithoutTls>, t: &Tables) -> TxnResult<Counters> {
        let Some(bytes) = t.meta.get(txn, COUNTERS)? else {
            return Ok(Counters::default());
        };
        if bytes.len() != 40 {
            return Err(Error::Corrupt("damaged counters".into()).into());
        }
        let word =
            |i: usize| u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Ok(Counters {
            update_seq: word(0),
            doc_count: word(1),
            doc_del_count: word(2),
            next_doc_num: word(3),
            external_size: word(4),
        })
    }

    /// Writes the counters.
    pub fn store(&self, txn: &mut RwTxn<'_>, t: &Tables) -> TxnResult<()> {
        let mut bytes = [0u8; 40];
        for (i, w) in [
            self.update_seq,
            self.doc_count,
            self.doc_del_count,
            self.next_doc_num,
            self.external_size,
        ]
        .into_iter()
        .enumerate()
        {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_be_bytes());
        }
        t.meta.put(txn, COUNTERS, &bytes)?;
        Ok(())
    }

    /// Accounts for a document going from `before` to `after` deletion state
    /// (`None`: did not exist).
    pub fn count_transition(&mut self, before: Option<bool>, after: bool) {
        match before {
            Some(true) => self.doc_del_count -= 1,
            Some(false) => self.doc_count -= 1,
            None => {}
        }
        if after {
            self.doc_del_count += 1;
        } else {
            self.doc_count += 1;
        }
    }
}

/// Reads the revision limit.
pub(crate) fn revs_limit(txn: &RoTxn<'_, WithoutTls>, t: &Tables) -> TxnResult<u64> {
    Ok(t.meta
        .get(txn, REVS_LIMIT)?
        .and_then(|b| b.try_into().ok())
        .map_or(DEFAULT_REVS_LIMIT, u64::from_be_bytes))
}

/// Writes the revision limit.
pub(crate) fn set_revs_limit(txn: &mut RwTxn<'_>, t: &Tables, limit: u64) -> TxnResult<()> {
    t.meta.put(txn, REVS_LIMIT, &limit.to_be_bytes())?;
    Ok(())
}

/// The table key of a user metadata entry.
pub(crate) fn user_key(name: &str) -> String {
    format!("{USER_PREFIX}{name}")
}
