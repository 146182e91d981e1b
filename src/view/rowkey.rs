//! Byte layout of view rows, and of the bounds queries seek to.
//!
//! A row's *sort key* is
//!
//! ```text
//! collate::encode(key) ‖ escape(doc_id) ‖ 0x00 0x00 ‖ counter (u32, big-endian)
//! ```
//!
//! so that `memcmp` orders rows as CouchDB does: by key collation, then by the
//! raw bytes of the doc id, then (for several emits of one key by one doc) by
//! the counter, which the indexer assigns in Erlang term order of the values.
//! The doc id is escaped (`0x00` → `0x00 0x01`) and terminated by `0x00 0x00`,
//! so an id that is a prefix of another sorts first and the key encoding,
//! which is prefix-free, is never confused with the id. Sort keys are
//! themselves prefix-free: no row's sort key is a proper prefix of another's.
//!
//! Query bounds are byte strings in the same space: a lower bound `L` selects
//! rows `>= L`, an upper bound `U` rows `< U`. UTF-8 never contains `0xFF`, so
//! `encode(key) ‖ 0xFF` sits above every row with that key (CouchDB's `<<255>>`
//! doc id sentinel), and `encode(key)` alone below all of them (`<<>>`).

/// Terminator after the escaped doc id.
const ID_END: [u8; 2] = [0x00, 0x00];

/// Appends the escaped, terminated doc id.
fn push_doc_id(out: &mut Vec<u8>, doc_id: &str) {
    for &b in doc_id.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
    out.extend_from_slice(&ID_END);
}

/// The sort key of one row.
pub(crate) fn row_sort_key(encoded_key: &[u8], doc_id: &str, counter: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_key.len() + doc_id.len() + 6);
    out.extend_from_slice(encoded_key);
    push_doc_id(&mut out, doc_id);
    out.extend_from_slice(&counter.to_be_bytes());
    out
}

/// A doc id bound inside a key: CouchDB's `<<>>` and `<<255>>` defaults, or an
/// explicit `startkey_docid` / `endkey_docid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DocIdBound<'a> {
    /// Below every doc id.
    Lowest,
    /// Above every doc id.
    Highest,
    /// This doc id.
    Id(&'a str),
}

/// The lowest position at `(key, doc id)`: rows `>=` it have a greater key, or
/// the same key and a doc id `>=` the bound.
pub(crate) fn position_before(encoded_key: &[u8], doc_id: &DocIdBound<'_>) -> Vec<u8> {
    let mut out = encoded_key.to_vec();
    match doc_id {
        DocIdBound::Lowest => {}
        DocIdBound::Highest => out.push(0xFF),
        DocIdBound::Id(id) => push_doc_id(&mut out, id),
    }
    out
}

/// The position just after every row at `(key, doc id)`: rows `<` it have a
/// smaller key, or the same key and a doc id `<=` the bound.
pub(crate) fn position_after(encoded_key: &[u8], doc_id: &DocIdBound<'_>) -> Vec<u8> {
    let mut out = position_before(encoded_key, doc_id);
    if let DocIdBound::Id(_) = doc_id {
        // Above every counter of that (key, id).
        out.extend_from_slice(&[0xFF; 5]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_bytewise_with_prefixes_first() {
        let key = b"\x40abc\x00";
        let a = row_sort_key(key, "a", 0);
        let ab = row_sort_key(key, "ab", 0);
        let a_nul = row_sort_key(key, "a\0", 0);
        let b = row_sort_key(key, "b", 0);
        assert!(a < a_nul && a_nul < ab && ab < b);
        assert!(row_sort_key(key, "a", 1) < ab);
        assert!(row_sort_key(key, "a", 0) < row_sort_key(key, "a", 1));
    }

    #[test]
    fn bounds_bracket_rows() {
        let key = b"\x40k\x00";
        let row = row_sort_key(key, "doc", 7);
        assert!(position_before(key, &DocIdBound::Lowest) <= row);
        assert!(row < position_after(key, &DocIdBound::Highest));
        assert!(position_before(key, &DocIdBound::Id("doc")) <= row);
        assert!(row < position_after(key, &DocIdBound::Id("doc")));
        assert!(position_after(key, &DocIdBound::Id("dob")) <= row);
        assert!(row < position_before(key, &DocIdBound::Id("doca")));
        // A longer key that extends the encoding is not inside these bounds
        // (encodings are prefix-free, so it differs before the id).
        let other = row_sort_key(b"\x40k\x01\x00", "doc", 0);
        assert!(other > position_after(key, &DocIdBound::Highest));
    }
}
