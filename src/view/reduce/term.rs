//! Erlang's external term format for JSON values as CouchDB holds them (jiffy terms).
//!
//! CouchDB hashes `term_to_binary(Key)` for `_approx_count_distinct` and compares
//! `erlang:external_size` of reduce input and output for the `_sum` overflow
//! check. jiffy decodes JSON to: binaries (strings), integers, floats, the atoms
//! `null`/`true`/`false`, lists (arrays) and `{Proplist}` (objects).
//!
//! The encoding is CouchDB's `?term_to_bin(T)`, i.e. `term_to_binary(T,
//! [{minor_version, 1}])`: floats as `NEW_FLOAT_EXT`, atoms as `ATOM_EXT`.
//! Sizes are `erlang:external_size/1` with OTP 26+ defaults (minor version 2,
//! atoms as `SMALL_ATOM_UTF8_EXT`, one byte shorter).

use super::number::Num;
use serde_json::Value;

const VERSION: u8 = 131;
const NEW_FLOAT_EXT: u8 = 70;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const SMALL_TUPLE_EXT: u8 = 104;
const NIL_EXT: u8 = 106;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const ATOM_EXT: u8 = 100;

/// `term_to_binary(Value)`.
pub(crate) fn term_to_binary(v: &Value) -> Vec<u8> {
    let mut out = vec![VERSION];
    write_value(v, &mut out);
    out
}

/// `erlang:external_size(Value)` without the version byte.
pub(crate) fn value_size(v: &Value) -> usize {
    match v {
        Value::Null => 2 + 4,
        Value::Bool(true) => 2 + 4,
        Value::Bool(false) => 2 + 5,
        Value::Number(n) => num_size(Num::from_number(n)),
        Value::String(s) => 5 + s.len(),
        Value::Array(items) => list_size(items.iter().map(value_size)),
        Value::Object(members) => {
            2 + list_size(members.iter().map(|(k, v)| 2 + 5 + k.len() + value_size(v)))
        }
    }
}

/// Size of a list whose elements have the given sizes (`[]` is one byte).
pub(crate) fn list_size(elements: impl Iterator<Item = usize>) -> usize {
    let (mut count, mut total) = (0, 0);
    for size in elements {
        count += 1;
        total += size;
    }
    if count == 0 {
        1
    } else {
        5 + total + 1
    }
}

/// Size of a number term.
pub(crate) fn num_size(n: Num) -> usize {
    match n {
        Num::Int(i) if (0..=255).contains(&i) => 2,
        Num::Int(i) if i32::try_from(i).is_ok() => 5,
        Num::Int(i) => 3 + magnitude_bytes(i.unsigned_abs()).len(),
        Num::Float(_) => 9,
    }
}

/// Size of a binary term (a string or doc id).
pub(crate) fn binary_size(len: usize) -> usize {
    5 + len
}

fn magnitude_bytes(mut m: u128) -> Vec<u8> {
    let mut bytes = Vec::new();
    while m > 0 {
        bytes.push(m as u8);
        m >>= 8;
    }
    bytes
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => write_atom("null", out),
        Value::Bool(true) => write_atom("true", out),
        Value::Bool(false) => write_atom("false", out),
        Value::Number(n) => write_num(Num::from_number(n), out),
        Value::String(s) => write_binary(s.as_bytes(), out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push(NIL_EXT);
            } else {
                out.push(LIST_EXT);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for item in items {
                    write_value(item, out);
                }
                out.push(NIL_EXT);
            }
        }
        Value::Object(members) => {
            out.extend_from_slice(&[SMALL_TUPLE_EXT, 1]);
            if members.is_empty() {
                out.push(NIL_EXT);
            } else {
                out.push(LIST_EXT);
                out.extend_from_slice(&(members.len() as u32).to_be_bytes());
                for (k, v) in members {
                    out.extend_from_slice(&[SMALL_TUPLE_EXT, 2]);
                    write_binary(k.as_bytes(), out);
                    write_value(v, out);
                }
                out.push(NIL_EXT);
            }
        }
    }
}

fn write_atom(name: &str, out: &mut Vec<u8>) {
    out.push(ATOM_EXT);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn write_binary(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(BINARY_EXT);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn write_num(n: Num, out: &mut Vec<u8>) {
    match n {
        Num::Int(i) if (0..=255).contains(&i) => {
            out.extend_from_slice(&[SMALL_INTEGER_EXT, i as u8])
        }
        Num::Int(i) if i32::try_from(i).is_ok() => {
            out.push(INTEGER_EXT);
            out.extend_from_slice(&(i as i32).to_be_bytes());
        }
        Num::Int(i) => {
            let magnitude = magnitude_bytes(i.unsigned_abs());
            out.extend_from_slice(&[SMALL_BIG_EXT, magnitude.len() as u8, u8::from(i < 0)]);
            out.extend_from_slice(&magnitude);
        }
        Num::Float(f) => {
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Byte strings printed by `term_to_binary(T, [{minor_version, 1}])`.
    #[test]
    fn encodes_like_term_to_binary() {
        assert_eq!(term_to_binary(&json!(1)), [131, 97, 1]);
        assert_eq!(term_to_binary(&json!(-1)), [131, 98, 255, 255, 255, 255]);
        assert_eq!(
            term_to_binary(&json!(1u64 << 40)),
            [131, 110, 6, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            term_to_binary(&json!("ab")),
            [131, 109, 0, 0, 0, 2, b'a', b'b']
        );
        assert_eq!(
            term_to_binary(&json!(null)),
            [131, 100, 0, 4, b'n', b'u', b'l', b'l']
        );
        assert_eq!(term_to_binary(&json!([])), [131, 106]);
        assert_eq!(
            term_to_binary(&json!([1])),
            [131, 108, 0, 0, 0, 1, 97, 1, 106]
        );
        assert_eq!(term_to_binary(&json!({})), [131, 104, 1, 106]);
        assert_eq!(
            term_to_binary(&json!(1.5)),
            [131, 70, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
    }

    fn atom_count(v: &Value) -> usize {
        match v {
            Value::Null | Value::Bool(_) => 1,
            Value::Array(items) => items.iter().map(atom_count).sum(),
            Value::Object(members) => members.values().map(atom_count).sum(),
            _ => 0,
        }
    }

    /// `external_size` (atoms one byte shorter than in `term_to_bin`).
    #[test]
    fn sizes_match_encodings() {
        for v in [
            json!(null),
            json!(false),
            json!(7),
            json!(-70000),
            json!(u64::MAX),
            json!(2.5),
            json!("héllo"),
            json!([]),
            json!([1, [2, "x"], {"a": [true]}]),
            json!({"b": {}, "a": 1}),
        ] {
            let atoms = atom_count(&v);
            assert_eq!(value_size(&v) + 1 + atoms, term_to_binary(&v).len(), "{v}");
        }
    }
}
