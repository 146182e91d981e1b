//! The order-preserving byte encoding of JSON values, without recursion.
//!
//! Layout (see the module docs of [`crate::collate`] for the full scheme):
//!
//! ```text
//! value   = tag(rank) ‖ body
//! tag     = 0x10 * (rank + 1)            (rank from the collation's type order)
//! number  = tag-1 ‖ 10 bytes  (negative) | tag (zero) | tag+1 ‖ 10 bytes (positive)
//! string  = tag ‖ escape(string key) ‖ 0x00 0x01
//! array   = tag ‖ value* ‖ 0x00
//! object  = tag ‖ (string(name) ‖ value)* ‖ 0x00
//! escape  : 0x00 → 0x00 0xFF, other bytes unchanged
//! ```
//!
//! Every encoded value is self-delimiting and no encoding is a proper prefix of
//! another, so concatenations compare element by element; the `0x00` container
//! terminator is below every tag, so a proper prefix sorts first.

use super::number::{write_int_body, write_number_body, Sign};
use super::rules::Rules;
use serde_json::map::Iter as MemberIter;
use serde_json::Value;
use std::slice::Iter as ElementIter;

/// Ends an array or object; below every tag.
const CONTAINER_END: u8 = 0x00;
/// Ends an escaped byte string: below every escaped byte but `0x00 0xFF`.
pub(crate) const STRING_END: [u8; 2] = [0x00, 0x01];
/// Greater than the first byte of every encoded value.
pub(crate) const HIGHEST: u8 = 0xFF;

/// A container whose remaining members are still to be written.
enum Frame<'a> {
    Array(ElementIter<'a, Value>),
    Object(MemberIter<'a>),
}

/// Appends the encoding of `value` under the collation `R`.
pub(crate) fn encode_with<R: Rules>(value: &Value, out: &mut Vec<u8>) {
    encode_exact_with::<R>(value, &[], out)
}

/// [`encode_with`], where the `k`-th number of `value` (in document order)
/// is the integer `exact[k]` when that is `Some`: the exact value of an
/// integer literal `serde_json` had to round to a float.
pub(crate) fn encode_exact_with<R: Rules>(
    value: &Value,
    exact: &[Option<i128>],
    out: &mut Vec<u8>,
) {
    let mut numbers = NumberWriter { exact, seen: 0 };
    let mut stack = Vec::new();
    encode_step::<R>(value, out, &mut stack, &mut numbers);
    while let Some(frame) = stack.last_mut() {
        let next = match frame {
            Frame::Array(items) => items.next(),
            Frame::Object(members) => members.next().map(|(name, v)| {
                write_string::<R>(name, out);
                v
            }),
        };
        match next {
            Some(v) => encode_step::<R>(v, out, &mut stack, &mut numbers),
            None => {
                out.push(CONTAINER_END);
                stack.pop();
            }
        }
    }
}

/// Writes numbers, with the exact integers that replace some of them.
struct NumberWriter<'e> {
    exact: &'e [Option<i128>],
    seen: usize,
}

impl NumberWriter<'_> {
    fn write(&mut self, n: &serde_json::Number, out: &mut Vec<u8>) -> Sign {
        let exact = self.exact.get(self.seen).copied().flatten();
        self.seen += 1;
        match exact {
            Some(i) => write_int_body(i, out),
            None => write_number_body(n, out),
        }
    }
}

/// Writes a scalar completely, or the tag of a container and pushes its frame.
fn encode_step<'a, R: Rules>(
    value: &'a Value,
    out: &mut Vec<u8>,
    stack: &mut Vec<Frame<'a>>,
    numbers: &mut NumberWriter<'_>,
) {
    let tag = tag_of(R::rank(value));
    match value {
        Value::Null | Value::Bool(_) => out.push(tag),
        Value::Number(n) => {
            let at = out.len();
            out.push(tag);
            out[at] = match numbers.write(n, out) {
                Sign::Negative => tag - 1,
                Sign::Zero => tag,
                Sign::Positive => tag + 1,
            };
        }
        Value::String(s) => write_string::<R>(s, out),
        Value::Array(items) => {
            out.push(tag);
            stack.push(Frame::Array(items.iter()));
        }
        Value::Object(members) => {
            out.push(tag);
            stack.push(Frame::Object(members.iter()));
        }
    }
}

/// The tag byte of a type rank; numbers also use the bytes on either side.
const fn tag_of(rank: u8) -> u8 {
    0x10 * (rank + 1)
}

/// Writes a string (a value or an object member name) with its tag.
fn write_string<R: Rules>(s: &str, out: &mut Vec<u8>) {
    out.push(tag_of(R::STRING_RANK));
    let start = out.len();
    R::write_str_key(s, out);
    if out[start..].contains(&0) {
        let unescaped = out.split_off(start);
        write_escaped(&unescaped, out);
    }
    out.extend_from_slice(&STRING_END);
}

/// Appends `bytes` with `0x00` escaped as `0x00 0xFF`: followed by
/// [`STRING_END`], the result sorts like `bytes` and is prefix-free.
pub(crate) fn write_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.split_inclusive(|&b| b == 0) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&0) {
            out.push(0xFF);
        }
    }
}
