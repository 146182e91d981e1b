//! Exact integers for query keys.
//!
//! `serde_json` (without `arbitrary_precision`) reads an integer literal
//! beyond the `i64`/`u64` range as the nearest float, while CouchDB keeps it
//! as an exact bignum: `key=-12345678901234567890` matches no emitted key in
//! CouchDB (JavaScript emits doubles, and that integer is not one), but would
//! match the emitted `-12345678901234567168.0` after rounding. Query keys come
//! with their JSON text, so the exact values can be recovered from it and used
//! where keys are encoded ([`Collation::encode_exact`](super::Collation::encode_exact)).

use serde_json::Value;

/// The exact values of the integer literals a JSON text held beyond the
/// `i64`/`u64` range: one entry per number of the parsed value, in document
/// order, `Some` for such an integer (up to 2^127 in magnitude).
///
/// ```
/// use serde_json::Value;
/// use settee::collate::{Collation, ExactIntegers};
///
/// let text = "[1, -12345678901234567890]";
/// let exact = ExactIntegers::scan(text).expect("a big integer");
/// let key: Value = serde_json::from_str(text).unwrap();
/// let rounded: Value = serde_json::from_str("[1, -12345678901234567168]").unwrap();
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// Collation::Unicode.encode_exact(&key, Some(&exact), &mut a);
/// Collation::Unicode.encode(&rounded, &mut b);
/// // The nearest double, -12345678901234567168, is above the exact value.
/// assert!(a < b);
/// assert!(ExactIntegers::scan("[1, 2.5, \"-12345678901234567890\"]").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExactIntegers(Vec<Option<i128>>);

impl ExactIntegers {
    /// Scans JSON text for integer literals `serde_json` would round;
    /// `None` when there are none (the common case).
    pub fn scan(text: &str) -> Option<ExactIntegers> {
        let bytes = text.as_bytes();
        let mut numbers = Vec::new();
        let mut any = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => i = skip_string(bytes, i + 1),
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    i += 1;
                    let mut integral = true;
                    while i < bytes.len()
                        && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                    {
                        integral &= bytes[i].is_ascii_digit();
                        i += 1;
                    }
                    let exact = integral.then(|| big_integer(&text[start..i])).flatten();
                    any |= exact.is_some();
                    numbers.push(exact);
                }
                _ => i += 1,
            }
        }
        any.then_some(ExactIntegers(numbers))
    }

    /// The per-number entries, in document order.
    pub fn as_slice(&self) -> &[Option<i128>] {
        &self.0
    }

    /// Splits the entries of a value's parts (an object's member values or an
    /// array's elements, in order): one `ExactIntegers` per part, `None` for
    /// parts without a big integer. `None` if the counts disagree (say, an
    /// object with a repeated member name, which the parse collapsed).
    pub fn split<'v>(
        &self,
        parts: impl IntoIterator<Item = &'v Value>,
    ) -> Option<Vec<Option<ExactIntegers>>> {
        let mut rest = self.0.as_slice();
        let mut out = Vec::new();
        for part in parts {
            let n = count_numbers(part);
            if n > rest.len() {
                return None;
            }
            let (mine, after) = rest.split_at(n);
            out.push(
                mine.iter()
                    .any(Option::is_some)
                    .then(|| ExactIntegers(mine.to_vec())),
            );
            rest = after;
        }
        rest.is_empty().then_some(out)
    }

    /// Whether these entries fit `value` (one per number).
    pub fn fits(&self, value: &Value) -> bool {
        count_numbers(value) == self.0.len()
    }
}

/// The value of an integer literal beyond `i64`/`u64` but within `i128`.
fn big_integer(literal: &str) -> Option<i128> {
    if literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok() {
        return None;
    }
    literal.parse::<i128>().ok()
}

/// The index just past the string whose contents start at `i`.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn count_numbers(value: &Value) -> usize {
    match value {
        Value::Number(_) => 1,
        Value::Array(items) => items.iter().map(count_numbers).sum(),
        Value::Object(members) => members.values().map(count_numbers).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scans_only_rounded_integer_literals() {
        assert_eq!(
            ExactIntegers::scan("[1, 2.5e3, -9223372036854775808]"),
            None
        );
        assert_eq!(ExactIntegers::scan("18446744073709551615"), None);
        assert_eq!(
            ExactIntegers::scan(
                r#"{"a\"1": 18446744073709551616, "b": [1e400, -12345678901234567890]}"#
            ),
            Some(ExactIntegers(vec![
                Some(18_446_744_073_709_551_616),
                None,
                Some(-12_345_678_901_234_567_890)
            ]))
        );
    }

    #[test]
    fn splits_by_parts() {
        let text = r#"{"limit": 2, "keys": [[1, -12345678901234567890], "x", 3]}"#;
        let exact = ExactIntegers::scan(text).unwrap();
        let body: Value = serde_json::from_str(text).unwrap();
        let members = exact.split(body.as_object().unwrap().values()).unwrap();
        assert_eq!(members[0], None);
        let keys = members[1].as_ref().unwrap();
        let per_key = keys.split(body["keys"].as_array().unwrap()).unwrap();
        assert_eq!(
            per_key,
            vec![
                Some(ExactIntegers(vec![None, Some(-12_345_678_901_234_567_890)])),
                None,
                None
            ]
        );
        assert!(exact.split([&json!(1)]).is_none());
    }
}
