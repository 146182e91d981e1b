//! From a document's map output to the rows the index stores.
//!
//! Pure and CPU-bound (collation encoding dominates), so the updater runs it on
//! rayon's pool while the single writer applies the previous batch.

use serde_json::Value;

use crate::collate::{compare_emitted_values, row_key, Collation};
use crate::view::index::{DocRows, PreparedRow};

/// What one map function (tree) emitted for one document.
pub(crate) struct TreeOutput {
    /// The tree number.
    pub tree: u16,
    /// The tree's key order.
    pub collation: Collation,
    /// `(key, value)` pairs in emit order.
    pub emits: Vec<(Value, Value)>,
}

/// Encodes a document's rows. Several emits of one key (collation-equal) by one
/// document are numbered in Erlang term order of their values, which is the
/// order CouchDB returns them in.
pub(crate) fn prepare_doc_rows(doc_id: &str, outputs: Vec<TreeOutput>) -> DocRows {
    let mut rows = Vec::new();
    for output in outputs {
        let mut encoded: Vec<(Vec<u8>, Value, Value)> = output
            .emits
            .into_iter()
            .map(|(key, value)| {
                let mut enc = Vec::new();
                output.collation.encode(&key, &mut enc);
                (enc, key, value)
            })
            .collect();
        encoded.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| compare_emitted_values(&a.2, &b.2))
        });
        let mut counter = 0u32;
        for i in 0..encoded.len() {
            counter = if i > 0 && encoded[i - 1].0 == encoded[i].0 {
                counter + 1
            } else {
                0
            };
            let (enc, key, value) = &encoded[i];
            let mut sort_key = enc.clone();
            row_key(&mut sort_key, doc_id, counter);
            rows.push(PreparedRow {
                tree: output.tree,
                sort_key,
                key_value: serde_json::to_vec(&(key, value)).expect("JSON serialises"),
            });
        }
    }
    DocRows {
        doc_id: doc_id.to_string(),
        rows,
    }
}

/// Reads back a row's `key_value` ([`PreparedRow::key_value`]: the JSON
/// array `[key, value]` as serde_json wrote it). Values of the common
/// shapes (strings without escapes, integers, `null`, booleans, and arrays
/// of those) are read directly, several times faster than serde_json's
/// generic path, which reads the rest; both give the same values.
pub(crate) fn decode_key_value(json: &[u8]) -> serde_json::Result<(Value, Value)> {
    let direct = || {
        let rest = json.strip_prefix(b"[")?;
        let (key, rest) = plain_value(rest)?;
        let (value, rest) = plain_value(rest.strip_prefix(b",")?)?;
        (rest == b"]").then_some((key, value))
    };
    direct().map_or_else(|| serde_json::from_slice(json), Ok)
}

/// The value `json` starts with and the bytes after it, if it is a plain
/// scalar or an array of them. `None` leaves the decision (and any error) to
/// serde_json.
fn plain_value(json: &[u8]) -> Option<(Value, &[u8])> {
    let Some(mut rest) = json.strip_prefix(b"[") else {
        return plain_scalar(json);
    };
    let mut items = Vec::new();
    if let Some(after) = rest.strip_prefix(b"]") {
        return Some((Value::Array(items), after));
    }
    loop {
        let (item, after) = plain_scalar(rest)?;
        items.push(item);
        match after.split_first()? {
            (b',', next) => rest = next,
            (b']', next) => return Some((Value::Array(items), next)),
            _ => return None,
        }
    }
}

/// The scalar `json` starts with and the bytes after it, if it has one of
/// the shapes [`decode_key_value`] reads directly.
fn plain_scalar(json: &[u8]) -> Option<(Value, &[u8])> {
    match *json.first()? {
        b'"' => {
            let len = memchr::memchr2(b'"', b'\\', &json[1..])?;
            if json[1 + len] != b'"' {
                return None;
            }
            let text = std::str::from_utf8(&json[1..1 + len]).ok()?;
            Some((Value::String(text.to_owned()), &json[len + 2..]))
        }
        b'-' | b'0'..=b'9' => {
            let len = 1 + json[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if matches!(json.get(len), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            let text = std::str::from_utf8(&json[..len]).ok()?;
            // serde_json reads `-0` as a float, and integers beyond 64 bits
            // as floats: those fail here and go to it.
            let number = match text.strip_prefix('-') {
                Some(_) => Value::from(text.parse::<i64>().ok().filter(|&n| n < 0)?),
                None => Value::from(text.parse::<u64>().ok()?),
            };
            Some((number, &json[len..]))
        }
        b'n' => Some((Value::Null, json.strip_prefix(b"null")?)),
        b't' => Some((Value::Bool(true), json.strip_prefix(b"true")?)),
        b'f' => Some((Value::Bool(false), json.strip_prefix(b"false")?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_values_read_back_as_serde_json_reads_them() {
        let scalars = [
            json!("cust0042"),
            json!(""),
            json!("é\u{1F600}"),
            json!("quote \" and \\ backslash"),
            json!("\u{0}\n"),
            json!(0),
            json!(7),
            json!(-7),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.0),
            json!(1e300),
            json!(null),
            json!(true),
            json!(false),
            json!([1, "a", null]),
            json!([]),
            json!(["order", "cust0042", 1_700_000_037]),
            json!([[1], 2]),
            json!([1.5, "a"]),
            json!({"_id": "x", "n": [2.5]}),
        ];
        for key in &scalars {
            for value in &scalars {
                let stored = serde_json::to_vec(&(key, value)).unwrap();
                let read = decode_key_value(&stored).unwrap();
                let expected: (Value, Value) = serde_json::from_slice(&stored).unwrap();
                assert_eq!(read, expected, "{}", String::from_utf8_lossy(&stored));
                // Same variants too (1 and 1.0 are equal Values only when
                // both are integers or both floats).
                assert_eq!(read.0.is_f64(), expected.0.is_f64());
                assert_eq!(read.1.is_f64(), expected.1.is_f64());
            }
        }
        // Integers serde_json reads as floats: beyond 64 bits, and -0.
        for text in [
            "[18446744073709551616,1]",
            "[-0,1]",
            "[-9223372036854775809,1]",
        ] {
            let read = decode_key_value(text.as_bytes()).unwrap();
            assert_eq!(read, serde_json::from_str::<(Value, Value)>(text).unwrap());
            assert!(read.0.is_f64(), "{text}");
        }
        for bad in [
            "",
            "[",
            "[1]",
            "[1,2",
            "[1,2]x",
            "[\"a,1]",
            "[nul,1]",
            "[1,2,3]",
            "[[1,],2]",
            "[[1,2,3]",
            "[[1 2],3]",
        ] {
            assert!(decode_key_value(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec!["-0", "18446744073709551616", "1e2", "0.5"])
                .prop_map(|text| serde_json::from_str::<Value>(text).unwrap()),
            any::<String>().prop_map(Value::String),
            "[a-z\"\\\\/\u{0}-\u{1f}é😀]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z_]{0,3}", inner), 0..4).prop_map(|members| {
                    Value::Object(members.into_iter().collect::<serde_json::Map<_, _>>())
                }),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever serde_json wrote, the direct reader gives back what
        /// serde_json reads: equal values, written back to the same text
        /// (so integers stay integers and floats floats).
        #[test]
        fn key_values_read_back_exactly(key in json_value(), value in json_value()) {
            let stored = serde_json::to_vec(&(&key, &value)).unwrap();
            let read = decode_key_value(&stored).unwrap();
            let expected: (Value, Value) = serde_json::from_slice(&stored).unwrap();
            proptest::prop_assert_eq!(serde_json::to_vec(&read).unwrap(), serde_json::to_vec(&expected).unwrap());
            proptest::prop_assert_eq!(read, expected);
        }
    }

    #[test]
    fn duplicate_keys_are_numbered_by_value_order() {
        let doc = prepare_doc_rows(
            "d",
            vec![TreeOutput {
                tree: 0,
                collation: Collation::Unicode,
                emits: vec![
                    (json!("k"), json!("s")),
                    (json!("k"), json!(null)),
                    (json!("j"), json!(1)),
                    (json!("k"), json!(2)),
                ],
            }],
        );
        let values: Vec<Value> = doc
            .rows
            .iter()
            .map(|r| {
                serde_json::from_slice::<(Value, Value)>(&r.key_value)
                    .unwrap()
                    .1
            })
            .collect();
        // "j" first; then "k" with values in Erlang order: numbers < atoms < binaries.
        assert_eq!(values, vec![json!(1), json!(2), json!(null), json!("s")]);
        let mut sorted = doc.rows.clone();
        sorted.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        assert_eq!(sorted, doc.rows);
    }
}
