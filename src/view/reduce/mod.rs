//! CouchDB's built-in reduce functions, in Rust (no JavaScript).
//!
//! A view's `reduce` source that starts with `_` names a built-in, matched by
//! **prefix** as CouchDB does (`"_sum\n"`, `"_statsorama"`, `"_first_thing"`,
//! `"_count "` all work): see [`BuiltinReducer::parse`].
//!
//! Reductions are computed with an accumulator, [`Reduction`]: rows go in with
//! [`Reduction::add_row`] (reduce), partial reductions combine with
//! [`Reduction::merge`] (rereduce; the view engine can keep partials per index
//! chunk and merge them later), and [`Reduction::finalize`] gives the JSON
//! value CouchDB returns. The semantics follow `couch_query_servers.erl`
//! (CouchDB 3.5):
//!
//! - `_count`: the number of rows.
//! - `_sum`: numbers (integers stay exact, a float makes the sum a float),
//!   arrays element-wise padded with zeros, objects merged key-wise; invalid
//!   input makes the *value* `{"error":"builtin_reduce_error",...,"caused_by":..}`
//!   (HTTP 200), and the `reduce_limit` overflow check replaces an output that
//!   is over 4906 bytes and more than half the input (Erlang external term
//!   sizes) by CouchDB's error value. CouchDB checks each B-tree node's
//!   reduction; settee checks the group's whole input once.
//! - `_stats`: `{"sum","count","min","max","sumsqr"}` over numbers,
//!   pre-aggregated objects, or arrays of them; invalid input is an `Err`
//!   (HTTP 500 in CouchDB, where it breaks indexing).
//! - `_approx_count_distinct`: HyperLogLog (precision 11) over
//!   `term_to_binary(Key)`, exactly as CouchDB's for up to ~1,800 distinct keys.
//! - `_first` / `_last`: the value of the smallest / largest `(key, doc id)` row.
//! - `_top_N` / `_bottom_N` (1 ≤ N ≤ 100): the N largest / smallest *distinct*
//!   values by collation, best first.
//!
//! Keys and values compare with CouchDB's default collation
//! ([`crate::collate::compare`]) in every reducer, also for raw-collation views,
//! as CouchDB's `couch_ejson_compare:less/2` does.
//!
//! Order-dependent corner cases are reproduced: `_sum` of `[{..}, 1]` is an
//! error value, `[0, {..}]` is the object, and `[1, {..}]` is an Erlang
//! `case_clause` crash in CouchDB, an `Err` (500) here.
//!
//! ```
//! use serde_json::json;
//! use settee::view::reduce::BuiltinReducer;
//!
//! let sum = BuiltinReducer::parse("_sum\n").unwrap().unwrap();
//! let (k, v1, v2) = (json!("k"), json!([1, 2]), json!(3));
//! let mut acc = sum.accumulator();
//! acc.add_row(&k, "doc1", &v1);
//! acc.add_row(&k, "doc2", &v2);
//! assert_eq!(acc.finalize().unwrap(), json!([4, 2]));
//!
//! let err = BuiltinReducer::parse("_nosuch").unwrap().unwrap_err();
//! assert_eq!(err.reason(), "`_nosuch` is not a supported reduce function.");
//! assert!(BuiltinReducer::parse("function(k, v) { return sum(v); }").is_none());
//! ```

mod group;
mod hll;
mod number;
mod rank;
mod stats;
mod sum;
mod term;

pub use group::{group_key, same_group, GroupLevel, ReduceGroups};
pub use sum::ReduceLimit;

use crate::{Error, Result};
use hll::Hll;
use rank::{EdgeAcc, RankAcc};
use serde_json::Value;
use stats::StatsAcc;
use sum::SumAcc;

/// A built-in reduce function.
///
/// ```
/// use serde_json::json;
/// use settee::view::reduce::BuiltinReducer;
///
/// let top2 = BuiltinReducer::parse("_top_2").unwrap().unwrap();
/// assert_eq!(top2, BuiltinReducer::Top(2));
/// let rows = [(json!("a"), "d1", json!(5)), (json!("b"), "d2", json!(9)), (json!("c"), "d3", json!(7))];
/// let best = top2.reduce(rows.iter().map(|(k, id, v)| (k, *id, v))).unwrap();
/// assert_eq!(best, json!([9, 7]));
/// let first = BuiltinReducer::First.reduce(rows.iter().map(|(k, id, v)| (k, *id, v))).unwrap();
/// assert_eq!(first, json!(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinReducer {
    /// `_sum`.
    Sum,
    /// `_count`.
    Count,
    /// `_stats`.
    Stats,
    /// `_approx_count_distinct`.
    ApproxCountDistinct,
    /// `_first` (CouchDB 3.5+).
    First,
    /// `_last` (CouchDB 3.5+).
    Last,
    /// `_top_N`, 1 ≤ N ≤ 100 (CouchDB 3.5+).
    Top(u8),
    /// `_bottom_N`, 1 ≤ N ≤ 100 (CouchDB 3.5+).
    Bottom(u8),
}

/// Built-ins matched by prefix, in CouchDB's order.
const PREFIXED: [(&str, BuiltinReducer); 6] = [
    (
        "_approx_count_distinct",
        BuiltinReducer::ApproxCountDistinct,
    ),
    ("_stats", BuiltinReducer::Stats),
    ("_sum", BuiltinReducer::Sum),
    ("_count", BuiltinReducer::Count),
    ("_first", BuiltinReducer::First),
    ("_last", BuiltinReducer::Last),
];

impl BuiltinReducer {
    /// Parses a view's `reduce` source.
    ///
    /// `None`: not a built-in (no leading `_`; JavaScript, even `" _count"`).
    /// `Some(Err)`: a `_` name CouchDB rejects with 400 `invalid_design_doc`:
    /// "`` `_x` is not a supported reduce function.``", "invalid rank reducer",
    /// or "rank value must be between 1 and 100".
    ///
    /// ```
    /// use settee::view::reduce::BuiltinReducer;
    /// assert_eq!(BuiltinReducer::parse("_count").unwrap().unwrap(), BuiltinReducer::Count);
    /// assert_eq!(BuiltinReducer::parse("_stats and more").unwrap().unwrap(), BuiltinReducer::Stats);
    /// let err = BuiltinReducer::parse("_top_101").unwrap().unwrap_err();
    /// assert_eq!((err.status(), err.name()), (400, "invalid_design_doc"));
    /// assert!(BuiltinReducer::parse(" _count").is_none()); // JavaScript
    /// ```
    pub fn parse(source: &str) -> Option<Result<BuiltinReducer>> {
        source.starts_with('_').then(|| parse_builtin(source))
    }

    /// A new, empty accumulator for this reducer.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::reduce::BuiltinReducer;
    /// assert_eq!(BuiltinReducer::Count.accumulator().finalize().unwrap(), json!(0));
    /// assert_eq!(BuiltinReducer::Sum.accumulator().finalize().unwrap(), json!(0));
    /// ```
    pub fn accumulator(self) -> Reduction {
        Reduction {
            reducer: self,
            acc: match self {
                BuiltinReducer::Count => Acc::Count(0),
                BuiltinReducer::Sum => Acc::Sum(SumAcc::new()),
                BuiltinReducer::Stats => Acc::Stats(StatsAcc::new()),
                BuiltinReducer::ApproxCountDistinct => Acc::Distinct(Hll::new()),
                BuiltinReducer::First => Acc::Edge(EdgeAcc::new(false)),
                BuiltinReducer::Last => Acc::Edge(EdgeAcc::new(true)),
                BuiltinReducer::Top(n) => Acc::Rank(RankAcc::new(n, true)),
                BuiltinReducer::Bottom(n) => Acc::Rank(RankAcc::new(n, false)),
            },
        }
    }

    /// Reduces `(key, doc id, value)` rows (in index order) to CouchDB's value.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::reduce::BuiltinReducer;
    ///
    /// let rows = [(json!(1), "a", json!(10)), (json!(2), "b", json!(1))];
    /// let stats = BuiltinReducer::Stats.reduce(rows.iter().map(|(k, id, v)| (k, *id, v)));
    /// assert_eq!(
    ///     stats.unwrap(),
    ///     json!({"sum": 11, "count": 2, "min": 1, "max": 10, "sumsqr": 101})
    /// );
    /// ```
    pub fn reduce<'a>(
        self,
        rows: impl IntoIterator<Item = (&'a Value, &'a str, &'a Value)>,
    ) -> Result<Value> {
        let mut acc = self.accumulator();
        for (key, doc_id, value) in rows {
            acc.add_row(key, doc_id, value);
        }
        acc.finalize()
    }

    /// Combines partial reductions of this reducer (rereduce) into the final value.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::reduce::BuiltinReducer;
    ///
    /// let partial = |values: &[i64]| {
    ///     let mut acc = BuiltinReducer::Stats.accumulator();
    ///     for v in values {
    ///         acc.add_row(&json!(null), "doc", &json!(v));
    ///     }
    ///     acc
    /// };
    /// let total = BuiltinReducer::Stats.rereduce([partial(&[1, 2]), partial(&[3])]).unwrap();
    /// assert_eq!(total, json!({"sum": 6, "count": 3, "min": 1, "max": 3, "sumsqr": 14}));
    /// ```
    pub fn rereduce(self, partials: impl IntoIterator<Item = Reduction>) -> Result<Value> {
        let mut acc = self.accumulator();
        for partial in partials {
            acc.merge(partial)?;
        }
        acc.finalize()
    }
}

fn parse_builtin(source: &str) -> Result<BuiltinReducer> {
    if let Some(n) = source.strip_prefix("_top_") {
        return parse_rank(n).map(BuiltinReducer::Top);
    }
    if let Some(n) = source.strip_prefix("_bottom_") {
        return parse_rank(n).map(BuiltinReducer::Bottom);
    }
    PREFIXED
        .iter()
        .find(|(prefix, _)| source.starts_with(prefix))
        .map(|&(_, reducer)| reducer)
        .ok_or_else(|| {
            Error::InvalidDesignDoc(
                format!("`{source}` is not a supported reduce function.").into(),
            )
        })
}

/// N of `_top_N`: an Erlang integer literal (`binary_to_integer`) from 1 to 100.
fn parse_rank(n: &str) -> Result<u8> {
    let digits = n.strip_prefix(['+', '-']).unwrap_or(n);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidDesignDoc("invalid rank reducer".into()));
    }
    // "0", "000" and negative numbers are out of range, as are numbers > 255.
    let value = match n.starts_with('-') {
        true => None,
        false => digits.trim_start_matches('0').parse::<u8>().ok(),
    };
    value
        .filter(|v| (1..=100).contains(v))
        .ok_or_else(|| Error::InvalidDesignDoc("rank value must be between 1 and 100".into()))
}

/// A partial or complete reduction of one built-in reducer.
///
/// ```
/// use serde_json::json;
/// use settee::view::reduce::BuiltinReducer;
///
/// let mut left = BuiltinReducer::Sum.accumulator();
/// left.add_row(&json!("k"), "a", &json!({"x": 1}));
/// let mut right = BuiltinReducer::Sum.accumulator();
/// right.add_row(&json!("k"), "b", &json!({"x": 2, "y": 1}));
/// left.merge(right).unwrap();
/// assert_eq!(left.reducer(), BuiltinReducer::Sum);
/// assert_eq!(left.finalize().unwrap(), json!({"x": 3, "y": 1}));
/// // Partials of different reducers do not mix.
/// let mut count = BuiltinReducer::Count.accumulator();
/// assert!(count.merge(BuiltinReducer::Sum.accumulator()).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Reduction {
    reducer: BuiltinReducer,
    acc: Acc,
}

#[derive(Clone, Debug, PartialEq)]
enum Acc {
    Count(u64),
    Sum(SumAcc),
    Stats(StatsAcc),
    Distinct(Hll),
    Edge(EdgeAcc),
    Rank(RankAcc),
}

impl Reduction {
    /// The reducer this reduction belongs to.
    pub fn reducer(&self) -> BuiltinReducer {
        self.reducer
    }

    /// Adds one map row (reduce). Rows of one group should come in index order
    /// (key, then doc id) so that order-dependent corner cases match CouchDB.
    pub fn add_row(&mut self, key: &Value, doc_id: &str, value: &Value) {
        match &mut self.acc {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => s.add_row(key, doc_id, value),
            Acc::Stats(s) => s.add_value(value),
            Acc::Distinct(h) => h.insert(&term::term_to_binary(key)),
            Acc::Edge(e) => e.add_row(key, doc_id, value),
            Acc::Rank(r) => r.add_value(value),
        }
    }

    /// Folds in a partial reduction of the same reducer (rereduce).
    ///
    /// Fails with [`Error::Corrupt`] if `other` belongs to another reducer.
    pub fn merge(&mut self, other: Reduction) -> Result<()> {
        if self.reducer != other.reducer {
            return Err(Error::Corrupt(format!(
                "cannot merge a {:?} reduction into a {:?} reduction",
                other.reducer, self.reducer
            )));
        }
        match (&mut self.acc, other.acc) {
            (Acc::Count(n), Acc::Count(m)) => *n += m,
            (Acc::Sum(s), Acc::Sum(t)) => s.merge(t),
            (Acc::Stats(s), Acc::Stats(t)) => s.merge(t),
            (Acc::Distinct(h), Acc::Distinct(g)) => h.merge(&g),
            (Acc::Edge(e), Acc::Edge(f)) => e.merge(f),
            (Acc::Rank(r), Acc::Rank(q)) => r.merge(q),
            _ => {
                return Err(Error::Corrupt(
                    "reduction state does not match its reducer".into(),
                ))
            }
        }
        Ok(())
    }

    /// The value CouchDB returns, with the default `reduce_limit` settings.
    pub fn finalize(self) -> Result<Value> {
        self.finalize_with(&ReduceLimit::default())
    }

    /// The value CouchDB returns, with explicit `reduce_limit` settings.
    ///
    /// Errors: `_stats` over invalid input (`invalid_value`, 500) or arrays of
    /// unequal length, and `_sum` inputs that crash CouchDB (`case_clause`, 500).
    pub fn finalize_with(self, limit: &ReduceLimit) -> Result<Value> {
        match self.acc {
            Acc::Count(n) => Ok(Value::from(n)),
            Acc::Sum(s) => s.finalize(limit),
            Acc::Stats(s) => s.finalize(),
            Acc::Distinct(h) => Ok(Value::from(h.estimate())),
            Acc::Edge(e) => Ok(e.finalize()),
            Acc::Rank(r) => Ok(r.finalize()),
        }
    }
}
