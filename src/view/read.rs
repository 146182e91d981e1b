//! Running a resolved query over one tree of an index: key ranges, `keys`,
//! `skip`/`limit`, `total_rows`/`offset`, and grouping for reduce queries.
//!
//! Loading documents and running reduce functions are left to the caller (the
//! engine), through closures, so this module only knows rows and ranges.

use heed::{RoTxn, WithoutTls};
use serde::Serialize;
use serde_json::Value;

use crate::collate::{position_after, position_before, Collation, ExactIntegers};
use crate::error::{Error, Result};
use crate::view::index::{IndexStore, StoredRow};
use crate::view::query::{ResolvedQuery, ViewQuery};
use crate::view::reduce::{group_key, same_group, GroupLevel};

/// One row of a map query (`{"id", "key", "value"[, "doc"]}`).
///
/// ```
/// use serde_json::json;
/// use settee::view::MapRow;
/// let row = MapRow { id: "a".into(), key: json!([1, 2]), value: json!(null), doc: None };
/// assert_eq!(serde_json::to_value(&row).unwrap(), json!({"id": "a", "key": [1, 2], "value": null}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapRow {
    /// The emitting document.
    pub id: String,
    /// The key as emitted.
    pub key: Value,
    /// The value as emitted.
    pub value: Value,
    /// With `include_docs`: the (possibly linked) document, `null` if missing or deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<Value>,
}

/// One row of a reduce query: `{"key", "value"}`, or CouchDB's error row when
/// a JavaScript reduce overflowed (`reduce_limit`).
///
/// ```
/// use serde_json::json;
/// use settee::view::ReduceRow;
/// let row = ReduceRow::Value { key: json!("ann"), value: json!(35) };
/// assert_eq!(serde_json::to_value(&row).unwrap(), json!({"key": "ann", "value": 35}));
/// let overflow = ReduceRow::Error {
///     key: json!(null),
///     error: "reduce_overflow_error".into(),
///     reason: "Reduce output must shrink more rapidly".into(),
/// };
/// assert_eq!(serde_json::to_value(&overflow).unwrap()["error"], "reduce_overflow_error");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReduceRow {
    /// A reduced group.
    Value {
        /// The group key (`null` for `group_level=0`).
        key: Value,
        /// The reduction.
        value: Value,
    },
    /// `{"key": null, "error": "reduce_overflow_error", "reason": ...}`.
    Error {
        /// Always `null`, as CouchDB reports it.
        key: Value,
        /// The error name.
        error: String,
        /// What went wrong.
        reason: String,
    },
}

/// The result of reducing one group.
pub(crate) enum Reduction {
    /// A value.
    Value(Value),
    /// An error row (reduce overflow).
    Error {
        /// Error name.
        error: String,
        /// Reason.
        reason: String,
    },
}

/// A map query's rows plus CouchDB's `total_rows` and `offset`.
pub(crate) struct MapRows {
    pub total_rows: u64,
    pub offset: u64,
    pub rows: Vec<MapRow>,
}

/// Rows a map query makes room for before it reads any.
const ROWS_RESERVED: u64 = 128;

/// One tree of an index, read through one snapshot.
pub(crate) struct TreeReader<'a> {
    pub store: &'a IndexStore,
    pub txn: &'a RoTxn<'a, WithoutTls>,
    pub tree: u16,
    pub collation: Collation,
}

/// A key range in sort-key space: rows `>= lower` and `< upper`.
struct Range {
    lower: Option<Vec<u8>>,
    upper: Option<Vec<u8>>,
}

impl TreeReader<'_> {
    /// A query key's encoding, with the exact integers of its JSON text.
    fn encode(&self, key: &Value, exact: Option<&ExactIntegers>) -> Vec<u8> {
        let mut out = Vec::new();
        self.collation.encode_exact(key, exact, &mut out);
        out
    }

    /// The ranges a query walks, in walking order, after CouchDB's range check.
    fn ranges(&self, query: &ResolvedQuery) -> Result<Vec<Range>> {
        let q = &query.options;
        if let Some(keys) = &q.keys {
            let mut keys: Vec<(usize, &Value)> = keys.iter().enumerate().collect();
            // CouchDB's map coordinator walks the keys backwards when
            // descending; its reduce coordinator keeps the order given.
            if q.descending && !query.reduce {
                keys.reverse();
            }
            return Ok(keys
                .into_iter()
                .map(|(i, k)| {
                    let key = Some(self.encode(k, q.exact_key(i)));
                    self.range(query, key.clone(), key)
                })
                .collect());
        }
        self.check_range(query)?;
        let (start, end) = self.bounds(q);
        Ok(vec![self.range(query, start, end)])
    }

    /// The encoded start and end keys.
    fn bounds(&self, q: &ViewQuery) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        (
            q.start_key
                .as_ref()
                .map(|k| self.encode(k, q.exact_start())),
            q.end_key.as_ref().map(|k| self.encode(k, q.exact_end())),
        )
    }

    fn range(&self, query: &ResolvedQuery, start: Option<Vec<u8>>, end: Option<Vec<u8>>) -> Range {
        let q = &query.options;
        let skd = q.start_key_docid.as_deref();
        let ekd = q.end_key_docid.as_deref();
        let inclusive = query.inclusive_end();
        if q.descending {
            Range {
                upper: start.map(|k| position_after(&k, skd)),
                lower: end.map(|k| {
                    if inclusive {
                        position_before(&k, ekd)
                    } else {
                        position_after(&k, ekd)
                    }
                }),
            }
        } else {
            Range {
                lower: start.map(|k| position_before(&k, skd)),
                upper: end.map(|k| {
                    if inclusive {
                        position_after(&k, ekd)
                    } else {
                        position_before(&k, ekd)
                    }
                }),
            }
        }
    }

    /// CouchDB's `check_range`: a start beyond the end (in walking order) is an
    /// error, unless the two keys are identical.
    fn check_range(&self, query: &ResolvedQuery) -> Result<()> {
        let q = &query.options;
        if q.start_key.is_none() || q.end_key.is_none() || q.start_key == q.end_key {
            return Ok(());
        }
        let (Some(start), Some(end)) = self.bounds(q) else {
            return Ok(());
        };
        // Pairs (key, doc id) with CouchDB's default doc ids: <<>> is below every
        // id, <<255>> above.
        let pair = |key: &[u8], id: Option<&str>, high: bool| match (id, high) {
            (Some(id), _) => position_before(key, Some(id)),
            (None, false) => position_before(key, None),
            (None, true) => position_after(key, None),
        };
        let skd = q.start_key_docid.as_deref();
        let ekd = q.end_key_docid.as_deref();
        if q.descending {
            if pair(&start, skd, true) < pair(&end, ekd, false) {
                return Err(Error::query_parse(
                    "No rows can match your key range, reverse your start_key and end_key or set descending=false",
                ));
            }
        } else if pair(&start, skd, false) >= pair(&end, ekd, true) {
            return Err(Error::query_parse(
                "No rows can match your key range, reverse your start_key and end_key or set descending=true",
            ));
        }
        Ok(())
    }

    /// Rows before `range`'s start in walking order.
    fn rows_before(&self, range: &Range, descending: bool) -> Result<u64> {
        if descending {
            match &range.upper {
                None => Ok(0),
                Some(upper) => self.store.count(self.txn, self.tree, Some(upper), None),
            }
        } else {
            match &range.lower {
                None => Ok(0),
                Some(lower) => self.store.count(self.txn, self.tree, None, Some(lower)),
            }
        }
    }

    /// [`TreeReader::scan`] without the first `skip` rows, if the index can
    /// pass over them unread (ascending only: walking backwards, the rows of
    /// one document's repeated key come out reordered, and a jump could land
    /// inside them). Returns how many rows it skipped.
    fn scan_skipping(
        &self,
        range: &Range,
        descending: bool,
        skip: u64,
    ) -> Result<(u64, DupOrdered<'_>)> {
        if descending {
            return Ok((0, self.scan(range, descending)?));
        }
        let (skipped, rows) = self.store.scan_skipping(
            self.txn,
            self.tree,
            range.lower.as_deref(),
            range.upper.as_deref(),
            skip,
        )?;
        Ok((skipped, DupOrdered::new(rows, descending)))
    }

    fn scan(&self, range: &Range, descending: bool) -> Result<DupOrdered<'_>> {
        let rows = self.store.scan(
            self.txn,
            self.tree,
            range.lower.as_deref(),
            range.upper.as_deref(),
            descending,
        )?;
        Ok(DupOrdered::new(rows, descending))
    }

    /// Runs a map query. `load_doc(id, rev)` returns a document for
    /// `include_docs`, or `null`.
    pub fn map_rows(
        &self,
        query: &ResolvedQuery,
        load_doc: &mut dyn FnMut(&str, Option<&str>) -> Result<Value>,
    ) -> Result<MapRows> {
        let q = &query.options;
        let total_rows = self.store.row_count(self.txn, self.tree)?;
        let ranges = self.ranges(query)?;
        let limit = q.limit.unwrap_or(u64::MAX);
        let mut skip = q.skip;
        // CouchDB takes the offset at the first row its folds meet, before
        // skipping (or where the last fold stopped, if none met a row), and
        // its coordinator then adds `skip`, capped at `total_rows`.
        let mut first_row_at = None;
        let mut last_stop = 0;
        // Room for a typical page up front: growing a vector of rows by
        // doubling costs more than decoding them.
        let mut rows = Vec::with_capacity(limit.min(ROWS_RESERVED) as usize);
        'ranges: for range in &ranges {
            let before = self.rows_before(range, q.descending)?;
            let mut seen = 0u64;
            let (skipped, walked) = self.scan_skipping(range, q.descending, skip)?;
            if skipped > 0 {
                // The skipped rows were met: the range's first row is one.
                first_row_at.get_or_insert(before);
                skip -= skipped;
                seen += skipped;
            }
            for row in walked {
                let row = row?;
                seen += 1;
                if first_row_at.is_none() {
                    first_row_at = Some(before);
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if rows.len() as u64 >= limit {
                    break 'ranges;
                }
                let doc = if q.include_docs {
                    Some(linked_doc(&row, load_doc)?)
                } else {
                    None
                };
                rows.push(MapRow {
                    id: row.doc_id,
                    key: row.key,
                    value: row.value,
                    doc,
                });
            }
            last_stop = before + seen;
        }
        Ok(MapRows {
            total_rows,
            offset: first_row_at
                .unwrap_or(last_stop)
                .saturating_add(q.skip)
                .min(total_rows),
            rows,
        })
    }

    /// Runs a reduce query. `reduce(rows)` reduces one group's rows.
    pub fn reduce_rows(
        &self,
        query: &ResolvedQuery,
        reduce: &mut dyn FnMut(&[StoredRow]) -> Result<Reduction>,
    ) -> Result<Vec<ReduceRow>> {
        let q = &query.options;
        let limit = q.limit.unwrap_or(u64::MAX);
        let mut skip = q.skip;
        let mut out = Vec::new();
        for range in self.ranges(query)? {
            let mut group: Vec<StoredRow> = Vec::new();
            let mut current_key = Value::Null;
            let mut emit =
                |rows: &mut Vec<StoredRow>, key: Value, out: &mut Vec<ReduceRow>| -> Result<bool> {
                    if rows.is_empty() {
                        return Ok(true);
                    }
                    if skip > 0 {
                        skip -= 1;
                    } else if (out.len() as u64) < limit {
                        out.push(match reduce(rows)? {
                            Reduction::Value(value) => ReduceRow::Value { key, value },
                            Reduction::Error { error, reason } => ReduceRow::Error {
                                key: Value::Null,
                                error,
                                reason,
                            },
                        });
                    }
                    rows.clear();
                    Ok((out.len() as u64) < limit)
                };
            for row in self.scan(&range, q.descending)? {
                let row = row?;
                let key = group_key(&row.key, query.group_level);
                if !group.is_empty() && !self.same_group(&current_key, &key, query.group_level) {
                    let done = std::mem::replace(&mut current_key, key);
                    if !emit(&mut group, done, &mut out)? {
                        return Ok(out);
                    }
                } else if group.is_empty() {
                    current_key = key;
                }
                group.push(row);
            }
            let key = std::mem::take(&mut current_key);
            if !emit(&mut group, key, &mut out)? {
                return Ok(out);
            }
        }
        Ok(out)
    }

    fn same_group(&self, a: &Value, b: &Value, level: GroupLevel) -> bool {
        // Byte-equal JSON is the common case; collation decides the rest
        // (ICU-equal strings, 1 and 1.0, ...).
        a == b || same_group(a, b, level, self.collation)
    }
}

/// `include_docs`: the emitting doc, or the doc a value `{"_id"[, "_rev"]}` links to.
fn linked_doc(
    row: &StoredRow,
    load_doc: &mut dyn FnMut(&str, Option<&str>) -> Result<Value>,
) -> Result<Value> {
    match &row.value {
        Value::Object(members) if members.contains_key("_id") => match &members["_id"] {
            Value::String(id) => {
                let rev = members.get("_rev").and_then(Value::as_str);
                load_doc(id, rev)
            }
            _ => Ok(Value::Null),
        },
        _ => load_doc(&row.doc_id, None),
    }
}

/// Rows in walking order, except that several rows of one (key, doc id) keep
/// ascending value order when walking backwards, as CouchDB stores them as one
/// B-tree entry.
struct DupOrdered<'t> {
    inner: crate::view::index::RowIter<'t>,
    descending: bool,
    pending: Vec<StoredRow>,
    lookahead: Option<StoredRow>,
}

impl<'t> DupOrdered<'t> {
    fn new(inner: crate::view::index::RowIter<'t>, descending: bool) -> Self {
        DupOrdered {
            inner,
            descending,
            pending: Vec::new(),
            lookahead: None,
        }
    }
}

impl Iterator for DupOrdered<'_> {
    type Item = Result<StoredRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.descending {
            return self.inner.next();
        }
        if let Some(row) = self.pending.pop() {
            return Some(Ok(row));
        }
        // Collect the run of rows sharing (doc id, key), then yield it reversed.
        let first = match self.lookahead.take() {
            Some(row) => row,
            None => match self.inner.next()? {
                Ok(row) => row,
                Err(e) => return Some(Err(e)),
            },
        };
        let mut run = vec![first];
        loop {
            match self.inner.next() {
                None => break,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(row)) => {
                    if row.doc_id == run[0].doc_id && row.key == run[0].key {
                        run.push(row);
                    } else {
                        self.lookahead = Some(row);
                        break;
                    }
                }
            }
        }
        // `pending` pops from the end: keep the run as walked (descending
        // values), so the smallest value comes out first.
        self.pending = run;
        self.pending.pop().map(Ok)
    }
}
