//! An in-memory view index: what the view engine does, minus LMDB.
//!
//! Rows are sorted by the collation row encoding, ranges are cut with the
//! collate position helpers, and reduce groups are formed with `same_group`.

use serde_json::{json, Value};
use settee::collate::{position_after, position_before, row_key, Collation};
use settee::view::reduce::{group_key, same_group, BuiltinReducer, GroupLevel, Reduction};

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
        let mut out = Vec::new();
        let mut current: Option<(Value, Reduction, Value)> = None;
        for row in self.range(q) {
            if let Some((first_key, acc, _)) = current.as_mut() {
                if same_group(first_key, &row.key, level, self.collation) {
                    acc.add_row(&row.key, &row.id, &row.value);
                    continue;
                }
                let (_, acc, key) = current.take().expect("current group");
                out.push(json!({"key": key, "value": acc.finalize().expect("reduce")}));
            }
            let mut acc = reducer.accumulator();
            acc.add_row(&row.key, &row.id, &row.value);
            current = Some((row.key.clone(), acc, group_key(&row.key, level)));
        }
        if let Some((_, acc, key)) = current {
            out.push(json!({"key": key, "value": acc.finalize().expect("reduce")}));
        }
        let skip = q["skip"].as_u64().unwrap_or(0) as usize;
        let limit = q["limit"].as_u64().map_or(usize::MAX, |l| l as usize);
        out.into_iter().skip(skip).take(limit).collect()
    }
}
