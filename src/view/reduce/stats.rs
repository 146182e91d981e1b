//! `_stats`: CouchDB's `builtin_stats` / `stat_values` (couch_query_servers.erl).
//!
//! Inputs are numbers, pre-aggregated objects (`sum`, `count`, `min`, `max`,
//! `sumsqr` present and numeric, other members ignored), or arrays of those
//! (nested arrays too) of equal length, giving arrays of statistics. Invalid
//! input is an error that fails the query (in CouchDB it is thrown while the
//! index is written, with HTTP 500).

use super::number::Num;
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// `{Sum, Count, Min, Max, SumSqr}`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Agg {
    sum: Num,
    count: Num,
    min: Num,
    max: Num,
    sumsqr: Num,
}

/// Statistics of one value position: a tuple, or a list of them.
#[derive(Clone, Debug, PartialEq)]
enum Stats {
    One(Agg),
    Many(Vec<Stats>),
}

/// `_stats` accumulator.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatsAcc {
    state: Option<Stats>,
    error: Option<(&'static str, String)>,
}

impl StatsAcc {
    pub(crate) fn new() -> StatsAcc {
        StatsAcc {
            state: None,
            error: None,
        }
    }

    pub(crate) fn add_value(&mut self, value: &Value) {
        if self.error.is_some() {
            return;
        }
        let next = match self.state.take() {
            None => initial(value),
            Some(acc) => parse(value).and_then(|v| combine(v, acc)),
        };
        match next {
            Ok(stats) => self.state = Some(stats),
            Err(e) => self.error = Some(e),
        }
    }

    pub(crate) fn merge(&mut self, other: StatsAcc) {
        if self.error.is_some() {
            return;
        }
        if let Some(e) = other.error {
            self.error = Some(e);
            return;
        }
        self.state = match (self.state.take(), other.state) {
            (None, theirs) => theirs,
            (mine, None) => mine,
            (Some(mine), Some(theirs)) => match combine(theirs, mine) {
                Ok(stats) => Some(stats),
                Err(e) => {
                    self.error = Some(e);
                    None
                }
            },
        };
    }

    pub(crate) fn finalize(self) -> Result<Value> {
        if let Some((name, reason)) = self.error {
            return Err(Error::Couch {
                status: 500,
                name: name.into(),
                reason,
            });
        }
        let zero = Num::Int(0);
        Ok(pack(&self.state.unwrap_or(Stats::One(Agg {
            sum: zero,
            count: zero,
            min: zero,
            max: zero,
            sumsqr: zero,
        }))))
    }
}

type StatsError = (&'static str, String);

fn invalid(reason: String) -> StatsError {
    ("invalid_value", reason)
}

fn sample(x: Num) -> Agg {
    Agg {
        sum: x,
        count: Num::Int(1),
        min: x,
        max: x,
        sumsqr: x.mul(x),
    }
}

/// `build_initial_accumulator(First)`.
fn initial(value: &Value) -> Result<Stats, StatsError> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(initial)
            .collect::<Result<_, _>>()
            .map(Stats::Many),
        Value::Number(n) => Ok(Stats::One(sample(Num::from_number(n)))),
        Value::Object(members) => unpack(members).map(Stats::One),
        other => Err(invalid(format!("non-numeric _stats input: {other}"))),
    }
}

/// A later value as `stat_values` sees it: numbers and objects become tuples.
fn parse(value: &Value) -> Result<Stats, StatsError> {
    match value {
        Value::Number(n) => Ok(Stats::One(sample(Num::from_number(n)))),
        Value::Object(members) => unpack(members).map(Stats::One),
        Value::Array(items) => items.iter().map(parse).collect::<Result<_, _>>().map(Stats::Many),
        other => Err(invalid(format!(
            "The _stats function requires that map values be numbers or arrays of numbers, not '{other}'"
        ))),
    }
}

/// `stat_values(Value, Acc)` once both are tuples or lists.
fn combine(value: Stats, acc: Stats) -> Result<Stats, StatsError> {
    match (value, acc) {
        (Stats::One(v), Stats::One(a)) => Ok(Stats::One(Agg {
            sum: v.sum.add(a.sum),
            count: v.count.add(a.count),
            // erlang:min/max return the first argument when equal.
            min: if v.min.compare(a.min) != Ordering::Greater { v.min } else { a.min },
            max: if v.max.compare(a.max) != Ordering::Less { v.max } else { a.max },
            sumsqr: v.sumsqr.add(a.sumsqr),
        })),
        (Stats::Many(vs), Stats::Many(accs)) if vs.len() == accs.len() => vs
            .into_iter()
            .zip(accs)
            .map(|(v, a)| combine(v, a))
            .collect::<Result<_, _>>()
            .map(Stats::Many),
        (Stats::Many(vs), Stats::Many(accs)) => Err((
            "function_clause",
            format!(
                "_stats over arrays of unequal length ({} and {})",
                vs.len(),
                accs.len()
            ),
        )),
        (value, _) => Err(invalid(format!(
            "The _stats function requires that map values be numbers or arrays of numbers, not '{}'",
            pack(&value)
        ))),
    }
}

/// `unpack_stats({Props})`.
fn unpack(members: &Map<String, Value>) -> Result<Agg, StatsError> {
    let field = |name: &str| match members.get(name) {
        Some(Value::Number(n)) => Ok(Num::from_number(n)),
        None => Err(invalid(format!(
            "user _stats input missing required field {name} ({})",
            Value::Object(members.clone())
        ))),
        Some(other) => Err(invalid(format!(
            "non-numeric _stats input received for {name}: {other}"
        ))),
    };
    Ok(Agg {
        sum: field("sum")?,
        count: field("count")?,
        min: field("min")?,
        max: field("max")?,
        sumsqr: field("sumsqr")?,
    })
}

/// `pack_stats`: `{"sum","count","min","max","sumsqr"}` in that order.
fn pack(stats: &Stats) -> Value {
    match stats {
        Stats::One(a) => {
            let mut m = Map::new();
            m.insert("sum".into(), a.sum.to_value());
            m.insert("count".into(), a.count.to_value());
            m.insert("min".into(), a.min.to_value());
            m.insert("max".into(), a.max.to_value());
            m.insert("sumsqr".into(), a.sumsqr.to_value());
            Value::Object(m)
        }
        Stats::Many(items) => Value::Array(items.iter().map(pack).collect()),
    }
}
