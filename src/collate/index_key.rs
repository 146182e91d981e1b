//! Byte layout of view index rows and of range positions between them.
//!
//! A row is `encoded key ‖ escape(doc id) ‖ 0x00 0x01 ‖ u32_be(counter)`:
//! collated key first, then the doc id as raw bytes (CouchDB's tie-break), then
//! a counter that keeps repeated emits of one key by one doc apart. Range
//! queries are expressed as *positions*: byte strings that are never rows
//! themselves, so every range is simply "rows between two positions".

use super::encoding::{write_escaped, HIGHEST, STRING_END};

/// LMDB's default maximum key size in bytes (heed without `longer-keys`).
/// See [`index_key_prefix`] for keys longer than the budget.
pub const LMDB_MAX_KEY_LEN: usize = 511;

/// Bytes a row adds after the encoded key, besides the escaped doc id:
/// the doc id terminator and the counter.
pub const ROW_SUFFIX_FIXED_LEN: usize = STRING_END.len() + 4;

/// The encoding of CouchDB's `?HIGHEST_KEY` sentinel: greater than every encoded key
/// (and every row), under both collations.
pub const HIGHEST_KEY: &[u8] = &[HIGHEST];

/// Marks an index key cut by [`index_key_prefix`]; above every byte that can
/// follow a key prefix of the same length.
const BUCKET_MARK: u8 = 0xFF;

/// Appends a row's suffix to an encoded key: the doc id (raw bytes, escaped)
/// and the repeat counter.
///
/// ```
/// use serde_json::json;
/// use settee::collate::{encode, row_key};
///
/// let mut a = Vec::new();
/// encode(&json!("k"), &mut a);
/// let mut b = a.clone();
/// row_key(&mut a, "doc-A", 0);
/// row_key(&mut b, "doc-a", 0);
/// assert!(a < b); // equal keys: doc ids compare as raw bytes
/// ```
pub fn row_key(encoded_key: &mut Vec<u8>, doc_id: &str, counter: u32) {
    write_escaped(doc_id.as_bytes(), encoded_key);
    encoded_key.extend_from_slice(&STRING_END);
    encoded_key.extend_from_slice(&counter.to_be_bytes());
}

/// The position just before the rows of `encoded_key` whose doc id is at least
/// `doc_id` (before all rows of the key when `doc_id` is `None`).
///
/// Use it for `startkey` (+ `startkey_docid`) ascending, and for an inclusive
/// `endkey` (+ `endkey_docid`) descending.
///
/// ```
/// use serde_json::json;
/// use settee::collate::{encode, position_before, row_key};
///
/// let mut key = Vec::new();
/// encode(&json!("k"), &mut key);
/// let row = |id| { let mut r = key.clone(); row_key(&mut r, id, 0); r };
/// assert!(position_before(&key, None) <= row("a"));
/// assert!(position_before(&key, Some("b")) > row("a"));
/// assert!(position_before(&key, Some("b")) < row("b"));
/// ```
pub fn position_before(encoded_key: &[u8], doc_id: Option<&str>) -> Vec<u8> {
    let mut out = encoded_key.to_vec();
    if let Some(id) = doc_id {
        write_escaped(id.as_bytes(), &mut out);
        out.extend_from_slice(&STRING_END);
    }
    out
}

/// The position just after the rows of `encoded_key` whose doc id is at most
/// `doc_id` (after all rows of the key when `doc_id` is `None`).
///
/// Use it for an inclusive `endkey` (+ `endkey_docid`) ascending, and for
/// `startkey` (+ `startkey_docid`) descending. `inclusive_end=false` ascending
/// is [`position_before`] of the end key, descending it is this function.
///
/// ```
/// use serde_json::json;
/// use settee::collate::{encode, position_after, row_key};
///
/// let (mut k, mut next) = (Vec::new(), Vec::new());
/// encode(&json!("k"), &mut k);
/// encode(&json!("l"), &mut next);
/// let row = |key: &Vec<u8>, id| { let mut r = key.clone(); row_key(&mut r, id, 7); r };
/// assert!(position_after(&k, None) > row(&k, "zzz"));
/// assert!(position_after(&k, None) < row(&next, "a"));
/// assert!(position_after(&k, Some("b")) > row(&k, "b"));
/// assert!(position_after(&k, Some("b")) < row(&k, "ba"));
/// ```
pub fn position_after(encoded_key: &[u8], doc_id: Option<&str>) -> Vec<u8> {
    let mut out = encoded_key.to_vec();
    match doc_id {
        Some(id) => {
            write_escaped(id.as_bytes(), &mut out);
            // Above the terminator 0x00 0x01 of this id, below any longer id.
            out.extend_from_slice(&[0x00, 0x02]);
        }
        // Escaped UTF-8 doc ids never start with 0xFF.
        None => out.push(HIGHEST),
    }
    out
}

/// Writes the LMDB key under which rows of a possibly long encoded key are stored.
///
/// An encoding of at most `max_len` bytes is written whole and `false` is
/// returned. A longer one is cut to `max_len` bytes followed by a bucket mark,
/// and `true` is returned: all keys sharing that prefix then share one LMDB
/// key prefix (a *bucket*), and the index must order rows inside a bucket by
/// their full encoding, kept in the row value. Buckets sit exactly where their
/// keys sort, because encodings are prefix-free: a whole key always differs
/// from a bucket's prefix within the first `max_len` bytes, so the mapping is
/// monotone (`a <= b` implies `index_key(a) <= index_key(b)`).
///
/// ```
/// use serde_json::json;
/// use settee::collate::{encode, index_key_prefix};
///
/// let mut key = Vec::new();
/// encode(&json!("x".repeat(1000)), &mut key);
/// let mut stored = Vec::new();
/// assert!(index_key_prefix(&key, 100, &mut stored)); // cut, in a bucket
/// assert_eq!(stored.len(), 101);
/// let mut short = Vec::new();
/// assert!(!index_key_prefix(&key[..50], 100, &mut short)); // kept whole
/// assert_eq!(short, &key[..50]);
/// ```
pub fn index_key_prefix(encoded_key: &[u8], max_len: usize, out: &mut Vec<u8>) -> bool {
    if encoded_key.len() <= max_len {
        out.extend_from_slice(encoded_key);
        false
    } else {
        out.extend_from_slice(&encoded_key[..max_len]);
        out.push(BUCKET_MARK);
        true
    }
}
