//! Erlang-style arithmetic for reducers: exact integers, IEEE floats, and mixing.

use serde_json::{Number, Value};
use std::cmp::Ordering;

/// A number as Erlang holds it: an exact integer or a double.
///
/// Integers are `i128` here (Erlang has bignums); a sum that leaves the `i128`
/// range continues as a float, the only deviation, reached only past 1.7e38.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub(crate) fn from_number(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(0.0))
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// `a + b`: exact for two integers, a float as soon as one side is.
    pub(crate) fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a
                .checked_add(b)
                .map_or(Num::Float(a as f64 + b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// `a * b`, with the same rules as [`Num::add`].
    pub(crate) fn mul(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a
                .checked_mul(b)
                .map_or(Num::Float(a as f64 * b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() * b.as_f64()),
        }
    }

    /// Numeric comparison (`1 == 1.0`).
    pub(crate) fn compare(self, other: Num) -> Ordering {
        crate::collate::compare(&self.to_value(), &other.to_value())
    }

    /// The JSON number; integers beyond `u64`/`i64` become floats.
    pub(crate) fn to_value(self) -> Value {
        match self {
            Num::Int(i) => {
                if let Ok(v) = i64::try_from(i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(i) {
                    Value::from(v)
                } else {
                    Value::from(i as f64)
                }
            }
            // Finite sums of finite JSON numbers can still overflow to infinity;
            // JSON has no infinity, so CouchDB's encoder would fail too: emit null.
            Num::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        }
    }
}
