//! `_top_N`, `_bottom_N`, `_first` and `_last` (CouchDB 3.5).

use crate::collate::compare;
use serde_json::Value;
use std::cmp::Ordering;

/// `_top_N` / `_bottom_N` accumulator: the best N distinct values, best first.
///
/// CouchDB folds values with `lists:umerge`, which keeps one of several
/// collation-equal values (the one seen first) and keeps the list sorted;
/// truncating to N on the fly gives the same result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RankAcc {
    n: usize,
    largest_first: bool,
    values: Vec<Value>,
}

impl RankAcc {
    pub(crate) fn new(n: u8, largest_first: bool) -> RankAcc {
        RankAcc {
            n: usize::from(n),
            largest_first,
            values: Vec::new(),
        }
    }

    /// Orders values best first.
    fn rank(&self, a: &Value, b: &Value) -> Ordering {
        let o = compare(a, b);
        if self.largest_first {
            o.reverse()
        } else {
            o
        }
    }

    pub(crate) fn add_value(&mut self, value: &Value) {
        match self
            .values
            .binary_search_by(|probe| self.rank(probe, value))
        {
            // A collation-equal value is already there: umerge keeps the earlier one.
            Ok(_) => {}
            Err(at) if at < self.n => {
                self.values.insert(at, value.clone());
                self.values.truncate(self.n);
            }
            Err(_) => {}
        }
    }

    pub(crate) fn merge(&mut self, other: RankAcc) {
        for v in &other.values {
            self.add_value(v);
        }
    }

    pub(crate) fn finalize(self) -> Value {
        Value::Array(self.values)
    }
}

/// A `{Key, DocId, Value}` row kept by `_first` / `_last`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EdgeRow {
    key: Value,
    doc_id: String,
    value: Value,
}

/// `_first` / `_last` accumulator: the value of the smallest / largest
/// `(key, doc id)` row, keys by collation and ids by bytes (`less_json_ids`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EdgeAcc {
    last: bool,
    row: Option<EdgeRow>,
}

impl EdgeAcc {
    pub(crate) fn new(last: bool) -> EdgeAcc {
        EdgeAcc { last, row: None }
    }

    pub(crate) fn add_row(&mut self, key: &Value, doc_id: &str, value: &Value) {
        self.offer(EdgeRow {
            key: key.clone(),
            doc_id: doc_id.to_owned(),
            value: value.clone(),
        });
    }

    fn offer(&mut self, candidate: EdgeRow) {
        let replace = match &self.row {
            None => true,
            Some(current) => {
                let order = compare(&candidate.key, &current.key)
                    .then_with(|| candidate.doc_id.as_bytes().cmp(current.doc_id.as_bytes()));
                // _first replaces on strictly less; _last on "not less" (ties: later wins).
                if self.last {
                    order != Ordering::Less
                } else {
                    order == Ordering::Less
                }
            }
        };
        if replace {
            self.row = Some(candidate);
        }
    }

    pub(crate) fn merge(&mut self, other: EdgeAcc) {
        if let Some(row) = other.row {
            self.offer(row);
        }
    }

    /// The row's value; `[]` for no rows (CouchDB's empty reduction).
    pub(crate) fn finalize(self) -> Value {
        self.row.map_or(Value::Array(Vec::new()), |r| r.value)
    }
}
