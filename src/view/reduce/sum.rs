//! `_sum`: CouchDB's `builtin_sum_rows` / `sum_values` (couch_query_servers.erl).
//!
//! The accumulator starts at the integer 0. Numbers add (integers exactly), a
//! number meeting an array counts as a one-element array, arrays add element
//! by element with the shorter padded by zeros, and objects merge key-wise
//! (the first object meeting 0 is taken as is; merged objects have their keys
//! sorted bytewise). Anything else turns the whole reduction into a
//! `builtin_reduce_error` *value*; an error value met later propagates as is.

use super::number::Num;
use super::term;
use crate::{Error, Result};
use serde_json::{Map, Value};

/// CouchDB's `?SUMERROR` text.
const SUM_ERROR: &str = "The _sum function requires that map values be numbers, arrays of numbers, or objects. Objects cannot be mixed with other data structures. Objects can be arbitrarily nested, provided that the values for all fields are themselves numbers, arrays of numbers, or objects.";

/// The `reduce_limit` settings of CouchDB's `_sum` overflow check
/// (`[query_server_config]`; CouchDB 3.5.0 defaults).
///
/// ```
/// use serde_json::json;
/// use settee::view::reduce::{BuiltinReducer, ReduceLimit};
///
/// // A `_sum` over one big object: the output does not shrink.
/// let value = json!((0..1000).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>());
/// let sum = |limit: &ReduceLimit| {
///     let mut acc = BuiltinReducer::Sum.accumulator();
///     acc.add_row(&json!(null), "doc", &value);
///     acc.finalize_with(limit).unwrap()
/// };
/// assert_eq!(sum(&ReduceLimit::default())["error"], "builtin_reduce_error");
/// assert_eq!(sum(&ReduceLimit { enabled: false, ..ReduceLimit::default() }), value);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReduceLimit {
    /// `reduce_limit = true` (the check is on). `log`/`false` turn it off here.
    pub enabled: bool,
    /// `reduce_limit_threshold`: output bytes below which nothing is checked (4906).
    pub threshold: usize,
    /// `reduce_limit_ratio`: the output may not exceed input / ratio (2.0).
    pub ratio: f64,
}

impl Default for ReduceLimit {
    fn default() -> Self {
        ReduceLimit {
            enabled: true,
            threshold: 4906,
            ratio: 2.0,
        }
    }
}

/// The running sum, as the Erlang term CouchDB accumulates.
#[derive(Clone, Debug, PartialEq)]
enum Term {
    Num(Num),
    List(Vec<Term>),
    /// An object: member order as given until merged, then sorted by key bytes.
    Object(Vec<(String, Term)>),
    /// Anything else, kept only inside an object taken as is.
    Other(Value),
}

/// Why summing stopped.
enum Stop {
    /// `throw_sum_error(Else)`: the reduction becomes the error value.
    Invalid(Term),
    /// An error value from an earlier reduction: it becomes the reduction.
    Propagate(Value),
    /// An Erlang crash (`case_clause`) that fails the request in CouchDB.
    Crash(String),
}

/// `_sum` accumulator: either a running sum or the error value it ended with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SumAcc {
    state: Result<Term, Value>,
    crash: Option<String>,
    /// Number and external term size of the input rows (for the overflow check).
    input_rows: usize,
    input_size: usize,
}

impl SumAcc {
    pub(crate) fn new() -> SumAcc {
        SumAcc {
            state: Ok(Term::Num(Num::Int(0))),
            crash: None,
            input_rows: 0,
            input_size: 0,
        }
    }

    /// Adds one map row's value.
    pub(crate) fn add_row(&mut self, key: &Value, doc_id: &str, value: &Value) {
        // One `[[Key, DocId], Value]` element of the reduce input list.
        let row = term::list_size(
            [
                term::list_size(
                    [term::value_size(key), term::binary_size(doc_id.len())].into_iter(),
                ),
                term::value_size(value),
            ]
            .into_iter(),
        );
        self.input_rows += 1;
        self.input_size += row;
        self.add_value(value);
    }

    /// Adds a value: a map value on reduce, an earlier reduction on rereduce.
    fn add_value(&mut self, value: &Value) {
        if self.crash.is_some() {
            return;
        }
        // Once failed, CouchDB's fold has stopped: the error value stays.
        let current = match &mut self.state {
            Ok(acc) => std::mem::replace(acc, Term::Num(Num::Int(0))),
            Err(_) => return,
        };
        self.state = match sum_values(value, current) {
            Ok(sum) => Ok(sum),
            Err(Stop::Invalid(cause)) => Err(sum_error(cause.into_value())),
            Err(Stop::Propagate(error)) => Err(error),
            Err(Stop::Crash(reason)) => {
                self.crash = Some(reason);
                Ok(Term::Num(Num::Int(0)))
            }
        };
    }

    /// Rereduce: folds another partial sum in, as CouchDB sums reductions.
    pub(crate) fn merge(&mut self, other: SumAcc) {
        self.input_rows += other.input_rows;
        self.input_size += other.input_size;
        if self.crash.is_none() {
            self.crash = other.crash;
        }
        let value = match other.state {
            Ok(term) => term.into_value(),
            Err(error) => error,
        };
        self.add_value(&value);
    }

    pub(crate) fn finalize(self, limit: &ReduceLimit) -> Result<Value> {
        if let Some(reason) = self.crash {
            return Err(Error::Couch {
                status: 500,
                name: "case_clause".into(),
                reason,
            });
        }
        let sum = match self.state {
            Ok(term) => term.into_value(),
            Err(error) => return Ok(error),
        };
        // check_sum_overflow: sizes of term_to_binary(KVs) and of the sum.
        let input = 1 + if self.input_rows == 0 {
            1
        } else {
            5 + self.input_size + 1
        };
        let output = 1 + term::value_size(&sum);
        if limit.enabled && output > limit.threshold && output as f64 * limit.ratio > input as f64 {
            let mut error = Map::new();
            error.insert("error".into(), "builtin_reduce_error".into());
            error.insert(
                "reason".into(),
                format!(
                    "Reduce output must shrink more rapidly: input size: {input} output size: {output}"
                )
                .into(),
            );
            return Ok(Value::Object(error));
        }
        Ok(sum)
    }
}

fn sum_error(cause: Value) -> Value {
    let mut error = Map::new();
    error.insert("error".into(), "builtin_reduce_error".into());
    error.insert("reason".into(), SUM_ERROR.into());
    error.insert("caused_by".into(), cause);
    Value::Object(error)
}

/// `sum_values(Value, Acc)`.
fn sum_values(value: &Value, acc: Term) -> Result<Term, Stop> {
    match (value, acc) {
        (Value::Number(n), Term::Num(a)) => Ok(Term::Num(a.add(Num::from_number(n)))),
        (Value::Array(items), Term::List(acc)) => sum_arrays(acc, items),
        (Value::Number(_), Term::List(acc)) => sum_arrays(acc, std::slice::from_ref(value)),
        (Value::Array(items), Term::Num(a)) => sum_arrays(vec![Term::Num(a)], items),
        (Value::Object(members), acc) => {
            // lists:keyfind(<<"error">>, ...) in a `case` with no clause for
            // other error values: those crash.
            match members.get("error") {
                Some(Value::String(e)) if e == "builtin_reduce_error" => {
                    return Err(Stop::Propagate(value.clone()))
                }
                Some(other) => return Err(Stop::Crash(format!("{{case_clause,{other}}}"))),
                None => {}
            }
            match acc {
                Term::Num(Num::Int(0)) => Ok(Term::from_value(value)),
                Term::Object(acc) => sum_objects(members, acc).map(Term::Object),
                other => Err(Stop::Crash(format!(
                    "{{case_clause,{}}}",
                    other.into_value()
                ))),
            }
        }
        (other, _) => Err(Stop::Invalid(Term::from_value(other))),
    }
}

/// `sum_arrays(Acc, Values)`: element-wise, the longer tail kept as is.
fn sum_arrays(acc: Vec<Term>, values: &[Value]) -> Result<Term, Stop> {
    let mut out = Vec::with_capacity(acc.len().max(values.len()));
    let mut acc = acc.into_iter();
    let mut values = values.iter();
    loop {
        match (acc.next(), values.next()) {
            (Some(Term::Num(x)), Some(Value::Number(y))) => {
                out.push(Term::Num(x.add(Num::from_number(y))))
            }
            (Some(x), None) => {
                out.push(x);
                out.extend(acc);
                return Ok(Term::List(out));
            }
            (None, Some(y)) => {
                out.push(Term::from_value(y));
                out.extend(values.map(Term::from_value));
                return Ok(Term::List(out));
            }
            (None, None) => return Ok(Term::List(out)),
            // `sum_arrays(Else, _)`: CouchDB reports the rest of the accumulator.
            (Some(x), Some(_)) => {
                let mut rest = vec![x];
                rest.extend(acc);
                return Err(Stop::Invalid(Term::List(rest)));
            }
        }
    }
}

/// `sum_objects(lists:sort(Props), lists:sort(AccProps))`.
fn sum_objects(
    members: &Map<String, Value>,
    acc: Vec<(String, Term)>,
) -> Result<Vec<(String, Term)>, Stop> {
    let mut new: Vec<(&String, &Value)> = members.iter().collect();
    new.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut acc = acc;
    acc.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::with_capacity(new.len() + acc.len());
    let mut new = new.into_iter().peekable();
    let mut acc = acc.into_iter().peekable();
    loop {
        match (new.peek(), acc.peek()) {
            (Some((k1, _)), Some((k2, _))) => match k1.as_bytes().cmp(k2.as_bytes()) {
                std::cmp::Ordering::Equal => {
                    let (k, v) = new.next().expect("peeked");
                    let (_, a) = acc.next().expect("peeked");
                    out.push((k.clone(), sum_values(v, a)?));
                }
                std::cmp::Ordering::Less => {
                    let (k, v) = new.next().expect("peeked");
                    out.push((k.clone(), Term::from_value(v)));
                }
                std::cmp::Ordering::Greater => out.push(acc.next().expect("peeked")),
            },
            (Some(_), None) => {
                out.extend(new.map(|(k, v)| (k.clone(), Term::from_value(v))));
                return Ok(out);
            }
            (None, _) => {
                out.extend(acc);
                return Ok(out);
            }
        }
    }
}

impl Term {
    fn from_value(v: &Value) -> Term {
        match v {
            Value::Number(n) => Term::Num(Num::from_number(n)),
            Value::Array(items) => Term::List(items.iter().map(Term::from_value).collect()),
            Value::Object(members) => Term::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Term::from_value(v)))
                    .collect(),
            ),
            other => Term::Other(other.clone()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Term::Num(n) => n.to_value(),
            Term::List(items) => Value::Array(items.into_iter().map(Term::into_value).collect()),
            Term::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
            Term::Other(v) => v,
        }
    }
}
