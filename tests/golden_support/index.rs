//! An in-memory view index: what the view engine does, minus LMDB.
//!
//! Rows are sorted by the collation row encoding, ranges are cut with the
//! collate position helpers, and reduce groups are formed by `ReduceGroups`.

use serde_json::{json, Value};
use settee::collate::{position_after, position_before, row_key, Collation};
use settee::view::reduce::{BuiltinReducer, GroupLevel, ReduceGroups};

/// Map rows as emitted: `(key, doc id, value)`.
pub type Emits = Vec<(Value, String, Value)>;

/// One map row and its index bytes.
pub struct Row {
    pub bytes: Vec<u8>,
    pub key: Value,
    pub id: String,
    pub value: Value,
}

/// Rows sorted as in the index.
pub struct Index {
    pub collation: Collation,
    pub rows: Vec<Row>,
}

impl Index {
    pub fn new(emits: Emits) -> Index {
        Index::with_collation(Collation::Unicode, emits)
    }

    pub fn with_collation(collation: Collation, emits: Emits) -> Index {
        let mut rows: Vec<Row> = emits
            .into_iter()
            .enumerate()
            .map(|(n, (key, id, value))| {
                let mut bytes = Vec::new();
                collation.encode(&key, &mut bytes);
                row_key(&mut bytes, &id, n as u32);
                Row {
                    bytes,
                    key,
                    id,
                    value,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.bytes.cmp(&b.bytes));
        Index { collation, rows }
    }

    /// CouchDB's range options → the rows in traversal order.
    /// The rows of CouchDB's range options, in traversal order (no skip/limit).
    pub fn range(&self, q: &Value) -> Vec<&Row> {
        let descending = q["descending"] == true;
        let inclusive_end = q["inclusive_end"] != false;
        let enc = |k: &Value| {
            let mut out = Vec::new();
            self.collation.encode(k, &mut out);
            out
        };
        let sid = q["startkey_docid"].as_str();
        let eid = q["endkey_docid"].as_str();
        let (lower, upper) = if !descending {
            let lower = q.get("startkey").map(|k| position_before(&enc(k), sid));
            let upper = q.get("endkey").map(|k| {
                if inclusive_end {
                    position_after(&enc(k), eid)
                } else {
                    position_before(&enc(k), eid)
                }
            });
            (lower, upper)
        } else {
            let upper = q.get("startkey").map(|k| position_after(&enc(k), sid));
            let lower = q.get("endkey").map(|k| {
                if inclusive_end {
                    position_before(&enc(k), eid)
                } else {
                    position_after(&enc(k), eid)
                }
            });
            (lower, upper)
        };
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| lower.as_ref().is_none_or(|l| r.bytes > *l))
            .filter(|r| upper.as_ref().is_none_or(|u| r.bytes < *u))
            .collect();
        if descending {
            rows.reverse();
        }
        rows
    }

    /// A reduce query: `[{key, value}]` rows after skip and limit.
    pub fn reduce(&self, reducer: BuiltinReducer, q: &Value) -> Vec<Value> {
        let level = GroupLevel::from_options(
            q["group"] == true,
            q["group_level"].as_u64().map(|n| n as usize),
        );
        let rows = self.range(q);
        let groups = ReduceGroups::new(
            reducer,
            level,
            self.collation,
            rows.iter().map(|r| (&r.key, r.id.as_str(), &r.value)),
        );
        let out = groups.map(|g| {
            let (key, value) = g.expect("reduce");
            json!({"key": key, "value": value})
        });
        let skip = q["skip"].as_u64().unwrap_or(0) as usize;
        let limit = q["limit"].as_u64().map_or(usize::MAX, |l| l as usize);
        out.skip(skip).take(limit).collect()
    }
}
