//! Comparison of JSON values under a collation, without recursion.
//!
//! Nested arrays and objects are walked with an explicit stack of iterator
//! pairs, so a key nested 100,000 deep costs heap, never native stack.

use super::number::compare_numbers;
use super::rules::Rules;
use serde_json::map::Iter as MemberIter;
use serde_json::Value;
use std::cmp::Ordering;
use std::slice::Iter as ElementIter;

/// A pair of containers being compared position by position.
enum Frame<'a> {
    Arrays(ElementIter<'a, Value>, ElementIter<'a, Value>),
    Objects(MemberIter<'a>, MemberIter<'a>),
}

/// Compares `a` and `b` under the collation `R`.
pub(crate) fn compare_with<R: Rules>(a: &Value, b: &Value) -> Ordering {
    let mut stack = Vec::new();
    if let Some(decided) = compare_step::<R>(a, b, &mut stack) {
        return decided;
    }
    while let Some(frame) = stack.last_mut() {
        let (x, y) = match frame {
            Frame::Arrays(xs, ys) => match (xs.next(), ys.next()) {
                (Some(x), Some(y)) => (x, y),
                (None, None) => {
                    stack.pop();
                    continue;
                }
                // A proper prefix sorts first.
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
            },
            Frame::Objects(xs, ys) => match (xs.next(), ys.next()) {
                (Some((kx, x)), Some((ky, y))) => match R::compare_str(kx, ky) {
                    Ordering::Equal => (x, y),
                    decided => return decided,
                },
                (None, None) => {
                    stack.pop();
                    continue;
                }
                // The object with fewer members sorts first.
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
            },
        };
        if let Some(decided) = compare_step::<R>(x, y, &mut stack) {
            return decided;
        }
    }
    Ordering::Equal
}

/// Compares two values at one position: returns the order if it is decided
/// here, or pushes a frame for two containers and returns `None` (as it does
/// for two equal scalars).
fn compare_step<'a, R: Rules>(
    a: &'a Value,
    b: &'a Value,
    stack: &mut Vec<Frame<'a>>,
) -> Option<Ordering> {
    let decided = match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => R::compare_str(x, y),
        (Value::Array(x), Value::Array(y)) => {
            stack.push(Frame::Arrays(x.iter(), y.iter()));
            return None;
        }
        (Value::Object(x), Value::Object(y)) => {
            stack.push(Frame::Objects(x.iter(), y.iter()));
            return None;
        }
        // Different types, or two equal constants (null, true, false).
        _ => R::rank(a).cmp(&R::rank(b)),
    };
    decided.is_ne().then_some(decided)
}
