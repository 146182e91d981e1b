//! `_local/` documents: no revision tree, no changes feed, no replication.
//!
//! Their revision is `0-N`. As in CouchDB 3.5 there is no MVCC: a write
//! without `_rev` overwrites (`0-1`), a write with `_rev: "0-N"` stores
//! `0-(N+1)` whatever is stored, and a delete with any rev succeeds (`0-0`).

use heed::{RoTxn, RwTxn, WithoutTls};

use super::doc::{self, IncomingDoc};
use super::revs::Rev;
use super::storage::{KvIter, Tables, TxnResult};
use crate::{Error, Result};

/// The revision a write with `rev` produces.
fn next_rev(rev: Option<&Rev>) -> Result<u64> {
    match rev {
        None => Ok(1),
        Some(r) if r.pos == 0 => {
            r.id.parse::<u64>()
                .map(|n| n.saturating_add(1))
                .map_err(|_| Error::Conflict)
        }
        Some(_) => Err(Error::Conflict),
    }
}

/// Writes (or deletes, with `_deleted: true`) a local document in `txn`.
/// The inner result is this document's outcome: its new rev string or why not.
pub(crate) fn write_in_txn(
    txn: &mut RwTxn<'_>,
    t: &Tables,
    doc: &IncomingDoc,
    body: &[u8],
) -> TxnResult<Result<String>> {
    if doc.deleted {
        return Ok(if t.local.delete(txn, doc.id.as_bytes())? {
            Ok("0-0".to_owned())
        } else {
            Err(Error::not_found("missing"))
        });
    }
    let n = match next_rev(doc.revs.first()) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    let mut value = Vec::with_capacity(8 + body.len());
    value.extend_from_slice(&n.to_be_bytes());
    value.extend_from_slice(body);
    t.local.put(txn, doc.id.as_bytes(), &value)?;
    Ok(Ok(format!("0-{n}")))
}

/// Reads a local document as `(N, body bytes)`.
pub(crate) fn read<'t>(
    txn: &'t RoTxn<'_, WithoutTls>,
    t: &Tables,
    id: &str,
) -> TxnResult<Option<(u64, &'t [u8])>> {
    match t.local.get(txn, id.as_bytes())? {
        Some(v) if v.len() >= 8 => {
            let n = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            Ok(Some((n, &v[8..])))
        }
        Some(_) => Err(Error::Corrupt("damaged local document".into()).into()),
        None => Ok(None),
    }
}

/// A local document's JSON: `{"_id", "_rev": "0-N", ...body}`.
pub(crate) fn to_json(id: &str, n: u64, body: &[u8], revs: bool) -> Result<serde_json::Value> {
    let rev = Rev {
        pos: 0,
        id: n.to_string(),
    };
    let mut out = Vec::with_capacity(body.len() + 64);
    doc::open_doc_json(&mut out, id, &rev, body, false);
    if revs {
        doc::push_member(
            &mut out,
            "_revisions",
            &serde_json::json!({"start": 0, "ids": [n.to_string()]}),
        );
    }
    doc::close_doc_json(&mut out);
    doc::parse_stored(&out)
}

/// `_local_docs` rows: `{"id", "key", "value": {"rev"}, "doc"?}` by id.
pub(crate) fn list(
    txn: &RoTxn<'_, WithoutTls>,
    t: &Tables,
    descending: bool,
    include_docs: bool,
) -> TxnResult<Vec<serde_json::Value>> {
    let iter: KvIter<'_> = if descending {
        Box::new(t.local.rev_iter(txn)?)
    } else {
        Box::new(t.local.iter(txn)?)
    };
    let mut rows = Vec::new();
    for entry in iter {
        let (id, _) = entry?;
        let id = std::str::from_utf8(id)
            .map_err(|_| Error::Corrupt("local document id is not UTF-8".into()))?;
        let (n, body) =
            read(txn, t, id)?.ok_or_else(|| Error::Corrupt("local document vanished".into()))?;
        let mut row = serde_json::json!({"id": id, "key": id, "value": {"rev": format!("0-{n}")}});
        if include_docs {
            row["doc"] = to_json(id, n, body, false)?;
        }
        rows.push(row);
    }
    Ok(rows)
}
