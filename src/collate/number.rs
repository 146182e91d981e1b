//! Exact numeric comparison and an order-preserving byte encoding of JSON numbers.
//!
//! CouchDB compares numbers with Erlang's arithmetic term order: integers are
//! arbitrary precision, floats are IEEE doubles, and an integer and a float
//! compare by their exact mathematical values (`1 == 1.0`,
//! `9007199254740993 > 9007199254740992.0`). `serde_json` gives us `i64`, `u64`
//! or `f64`; every one of them is a dyadic rational, so both the comparison and
//! the encoding here are exact, with no rounding through `f64`.

use serde_json::Number;
use std::cmp::Ordering;

/// A JSON number widened to a type that holds every `i64` and `u64` exactly.
#[derive(Clone, Copy, Debug)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            // serde_json never holds NaN or infinities, so this is a finite float.
            Num::Float(n.as_f64().unwrap_or(0.0))
        }
    }
}

/// Compares two JSON numbers by exact value (`1` equals `1.0`, `-0.0` equals `0`).
pub(crate) fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (Num::of(a), Num::of(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Int(x), Num::Float(y)) => compare_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => compare_int_float(y, x).reverse(),
    }
}

/// Compares an integer with a finite float exactly.
fn compare_int_float(i: i128, f: f64) -> Ordering {
    // 2^127 is exactly representable; floats at or beyond it exceed every i128.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // `whole` is an integer-valued float inside the i128 range: the cast is exact.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// Sign class of an encoded number; the caller turns it into a tag byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sign {
    Negative,
    Zero,
    Positive,
}

/// Offset that makes every binary exponent (-1074 ..= 1023) a positive `u16`.
const EXPONENT_BIAS: i32 = 1100;

/// Length of the body written by [`write_number_body`] for a non-zero number.
pub(crate) const NUMBER_BODY_LEN: usize = 10;

/// Splits a number into its sign and a 10-byte body whose bytewise order is the
/// numeric order within that sign (zero has an empty body).
///
/// A non-zero value is `2^p * (1 + m / 2^64)` with `m < 2^64`: the body is
/// `u16_be(p + 1100) ‖ u64_be(m)`, bitwise inverted for negative numbers so that
/// larger magnitudes sort first. Every `i64`, `u64` and `f64` has at most 64
/// significant bits after the leading one, so the body is exact, and equal values
/// (`3`, `3.0`) get identical bodies whatever their representation.
pub(crate) fn write_number_body(n: &Number, out: &mut Vec<u8>) -> Sign {
    write_num_body(Num::of(n), out)
}

/// [`write_number_body`] for an integer `serde_json` cannot hold (beyond the
/// `i64`/`u64` range): exact below 2^65 in magnitude, and ordered correctly
/// against every float and other integer up to 2^127.
pub(crate) fn write_int_body(i: i128, out: &mut Vec<u8>) -> Sign {
    write_num_body(Num::Int(i), out)
}

fn write_num_body(num: Num, out: &mut Vec<u8>) -> Sign {
    let (negative, exponent, mantissa) = match num {
        Num::Int(0) => return Sign::Zero,
        Num::Int(i) => {
            let (p, m) = split_magnitude(i.unsigned_abs());
            (i < 0, p, m)
        }
        Num::Float(f) => {
            // Also catches -0.0, which equals 0.
            if f == 0.0 {
                return Sign::Zero;
            }
            let (p, m) = split_float(f.abs());
            (f < 0.0, p, m)
        }
    };
    let biased = (exponent + EXPONENT_BIAS) as u16;
    let mut body = [0u8; NUMBER_BODY_LEN];
    body[..2].copy_from_slice(&biased.to_be_bytes());
    body[2..].copy_from_slice(&mantissa.to_be_bytes());
    if negative {
        for b in &mut body {
            *b = !*b;
        }
    }
    out.extend_from_slice(&body);
    if negative {
        Sign::Negative
    } else {
        Sign::Positive
    }
}

/// `n = 2^p * (1 + m / 2^64)` for a non-zero magnitude below 2^128.
fn split_magnitude(n: u128) -> (i32, u64) {
    let top = 127 - n.leading_zeros() as i32;
    // Left-align, drop the leading one, keep the next 64 bits (all of them for n < 2^65).
    let aligned = n << n.leading_zeros();
    (top, ((aligned << 1) >> 64) as u64)
}

/// [`split_magnitude`] for a positive finite float.
fn split_float(f: f64) -> (i32, u64) {
    let bits = f.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    if biased_exponent == 0 {
        // Subnormal: f = fraction * 2^-1074.
        let (p, m) = split_magnitude(u128::from(fraction));
        (p - 1074, m)
    } else {
        (biased_exponent - 1023, fraction << 12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(v: serde_json::Value) -> Number {
        match v {
            serde_json::Value::Number(n) => n,
            _ => unreachable!("test helper takes numbers"),
        }
    }

    fn body(v: serde_json::Value) -> (Sign, Vec<u8>) {
        let mut out = Vec::new();
        let sign = write_number_body(&num(v), &mut out);
        (sign, out)
    }

    #[test]
    fn integers_and_floats_compare_exactly() {
        let big = num(json!(9007199254740993u64));
        let f = num(json!(9007199254740992.0));
        assert_eq!(compare_numbers(&big, &f), Ordering::Greater);
        assert_eq!(
            compare_numbers(&num(json!(1)), &num(json!(1.0))),
            Ordering::Equal
        );
        assert_eq!(
            compare_numbers(&num(json!(0)), &num(json!(-0.0))),
            Ordering::Equal
        );
        assert_eq!(
            compare_numbers(&num(json!(u64::MAX)), &num(json!(1e300))),
            Ordering::Less
        );
        assert_eq!(
            compare_numbers(&num(json!(i64::MIN)), &num(json!(-1e300))),
            Ordering::Greater
        );
        assert_eq!(
            compare_numbers(&num(json!(2)), &num(json!(2.5))),
            Ordering::Less
        );
        assert_eq!(
            compare_numbers(&num(json!(-2)), &num(json!(-2.5))),
            Ordering::Greater
        );
    }

    #[test]
    fn equal_values_encode_equal() {
        assert_eq!(body(json!(3)), body(json!(3.0)));
        assert_eq!(body(json!(-7)), body(json!(-7.0)));
        assert_eq!(body(json!(1u64 << 63)), body(json!(9223372036854775808.0)));
        assert_eq!(body(json!(0)).0, Sign::Zero);
        assert_eq!(body(json!(-0.0)).0, Sign::Zero);
    }

    #[test]
    fn encoding_follows_numeric_order() {
        let ascending = [
            json!(-1e308),
            json!(i64::MIN),
            json!(-2.5),
            json!(-2),
            json!(-5e-324),
            json!(5e-324),
            json!(1e-300),
            json!(1),
            json!(1.5),
            json!(9007199254740992.0),
            json!(9007199254740993u64),
            json!(u64::MAX),
            json!(1e21),
            json!(1e308),
        ];
        for pair in ascending.windows(2) {
            let (a, b) = (body(pair[0].clone()), body(pair[1].clone()));
            assert!(
                (a.0 as u8, &a.1) < (b.0 as u8, &b.1),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
    }
}
