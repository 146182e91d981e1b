//! The two collations as data: the rank of each JSON type and how strings compare.
//!
//! Comparison ([`super::order`]) and encoding ([`super::encoding`]) are written once,
//! generic over [`Rules`], so the two collations cannot drift apart.

use super::icu;
use serde_json::Value;
use std::cmp::Ordering;

/// What distinguishes one collation from another.
pub(crate) trait Rules {
    /// The rank [`Rules::rank`] gives strings (object member names are strings too).
    const STRING_RANK: u8;
    /// The position of a value's type in the type order (smaller sorts first).
    fn rank(v: &Value) -> u8;
    /// Compares two strings (also used for object member names).
    fn compare_str(a: &str, b: &str) -> Ordering;
    /// Appends bytes whose bytewise order is [`Rules::compare_str`]'s order.
    /// The bytes may contain `0x00`; the encoder escapes them.
    fn write_str_key(s: &str, out: &mut Vec<u8>);
}

/// CouchDB's default view collation: `null < false < true < numbers < strings <
/// arrays < objects`, strings by the ICU root collator.
pub(crate) struct UnicodeRules;

impl Rules for UnicodeRules {
    const STRING_RANK: u8 = 4;

    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(false) => 1,
            Value::Bool(true) => 2,
            Value::Number(_) => 3,
            Value::String(_) => Self::STRING_RANK,
            Value::Array(_) => 5,
            Value::Object(_) => 6,
        }
    }

    fn compare_str(a: &str, b: &str) -> Ordering {
        icu::compare_strings(a, b)
    }

    fn write_str_key(s: &str, out: &mut Vec<u8>) {
        icu::write_sort_key(s, out);
    }
}

/// Erlang term order (`{"collation": "raw"}`): `numbers < false < null < true <
/// objects < arrays < strings`, strings as raw UTF-8 bytes.
pub(crate) struct RawRules;

impl Rules for RawRules {
    const STRING_RANK: u8 = 6;

    fn rank(v: &Value) -> u8 {
        // Atoms sort alphabetically (false < null < true); jiffy objects are
        // `{Proplist}` tuples, which sort before lists, which sort before binaries.
        match v {
            Value::Number(_) => 0,
            Value::Bool(false) => 1,
            Value::Null => 2,
            Value::Bool(true) => 3,
            Value::Object(_) => 4,
            Value::Array(_) => 5,
            Value::String(_) => Self::STRING_RANK,
        }
    }

    fn compare_str(a: &str, b: &str) -> Ordering {
        a.as_bytes().cmp(b.as_bytes())
    }

    fn write_str_key(s: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(s.as_bytes());
    }
}
