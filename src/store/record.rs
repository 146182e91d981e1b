//! The stored form of a document's metadata (`docs` table values) and the
//! keys of the other tables.
//!
//! Layout of a record: `[flags u8][doc_num varint][seq varint][winner body
//! size varint][node count varint]` then per node `[pos varint][id len
//! varint][id bytes][parent+1 varint][node flags u8]`. The first byte's bit 0
//! is "deleted", so scans that only need that (all_docs offsets) read one byte.

use super::revs::{Rev, RevNode, RevTree};
use crate::{Error, Result};

const DELETED: u8 = 1;
const NODE_DELETED: u8 = 1;
const NODE_HAS_BODY: u8 = 2;

/// Everything the store keeps about one document besides its bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocRecord {
    /// Internal number naming the document in the `bodies` table.
    pub doc_num: u64,
    /// The update seq of the document's latest change.
    pub seq: u64,
    /// Size in bytes of the winning revision's body (for `sizes.external`).
    pub winner_size: u64,
    /// The revision tree.
    pub tree: RevTree,
}

impl DocRecord {
    /// Serialises into `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(if self.tree.is_deleted() { DELETED } else { 0 });
        put_varint(out, self.doc_num);
        put_varint(out, self.seq);
        put_varint(out, self.winner_size);
        put_varint(out, self.tree.nodes().len() as u64);
        for n in self.tree.nodes() {
            put_varint(out, n.rev.pos);
            put_varint(out, n.rev.id.len() as u64);
            out.extend_from_slice(n.rev.id.as_bytes());
            put_varint(out, n.parent.map_or(0, |p| u64::from(p) + 1));
            let mut flags = 0;
            if n.deleted {
                flags |= NODE_DELETED;
            }
            if n.has_body {
                flags |= NODE_HAS_BODY;
            }
            out.push(flags);
        }
    }

    /// Parses a stored record.
    pub fn decode(bytes: &[u8]) -> Result<DocRecord> {
        let mut r = Reader { bytes, pos: 1 };
        if bytes.is_empty() {
            return Err(corrupt());
        }
        let doc_num = r.varint()?;
        let seq = r.varint()?;
        let winner_size = r.varint()?;
        let count = r.varint()? as usize;
        let mut nodes = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let pos = r.varint()?;
            let len = r.varint()? as usize;
            let id = std::str::from_utf8(r.take(len)?)
                .map_err(|_| corrupt())?
                .to_owned();
            let parent = match r.varint()? {
                0 => None,
                p if p as usize <= count => Some((p - 1) as u32),
                _ => return Err(corrupt()),
            };
            let flags = r.take(1)?[0];
            nodes.push(RevNode {
                rev: Rev { pos, id },
                parent,
                deleted: flags & NODE_DELETED != 0,
                has_body: flags & NODE_HAS_BODY != 0,
            });
        }
        if nodes.is_empty() {
            return Err(corrupt());
        }
        Ok(DocRecord {
            doc_num,
            seq,
            winner_size,
            tree: RevTree::from_nodes(nodes),
        })
    }

    /// Whether a stored record describes a deleted document, from its first byte.
    pub fn is_deleted_raw(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|b| b & DELETED != 0)
    }
}

/// Key of a revision body in the `bodies` table: doc number, generation, rev id.
/// The doc number prefix groups a document's bodies together.
pub(crate) fn body_key(doc_num: u64, rev: &Rev) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + rev.id.len());
    k.extend_from_slice(&doc_num.to_be_bytes());
    k.extend_from_slice(&rev.pos.to_be_bytes());
    k.extend_from_slice(rev.id.as_bytes());
    k
}

fn corrupt() -> Error {
    Error::Corrupt("damaged document record".into())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(corrupt)?;
        let s = self.bytes.get(self.pos..end).ok_or_else(corrupt)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let mut tree = RevTree::default();
        let root = tree.push(None, Rev::parse("1-a").unwrap(), false, false);
        tree.push(Some(root), Rev::parse("2-bé").unwrap(), true, true);
        tree.push(Some(root), Rev::parse("2-c").unwrap(), false, true);
        let rec = DocRecord {
            doc_num: 300,
            seq: 1 << 40,
            winner_size: 17,
            tree,
        };
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(DocRecord::decode(&buf).unwrap(), rec);
        assert!(!DocRecord::is_deleted_raw(&buf));
        assert!(DocRecord::decode(&buf[..buf.len() - 1]).is_err());
        assert!(DocRecord::decode(&[]).is_err());
    }
}
