//! Update sequences on the wire: opaque strings `"<n>-<token>"` as in
//! CouchDB 3, whose leading integer is settee's seq.

use serde_json::Value;

use crate::{Error, Result, Since};

/// The wire form of seq `n`.
pub fn format_seq(n: u64) -> Value {
    Value::String(format!("{n}-s"))
}

/// Parses a `since` value: `now`, `0`, or a seq string this server issued.
/// Anything else (including bare integers other than 0, as CouchDB) is 400.
pub fn parse_since(v: &Value) -> Result<Since> {
    let malformed = || Error::bad_request("Malformed sequence supplied in 'since' parameter.");
    match v {
        Value::Number(n) if n.as_u64() == Some(0) => Ok(Since::Seq(0)),
        Value::String(s) if s == "now" => Ok(Since::Now),
        Value::String(s) if s == "0" => Ok(Since::Seq(0)),
        Value::String(s) => {
            let (n, _) = s.split_once('-').ok_or_else(malformed)?;
            n.parse().map(Since::Seq).map_err(|_| malformed())
        }
        _ => Err(malformed()),
    }
}

/// Replaces every numeric `update_seq`/`seq`/`last_seq` member of a JSON
/// object (top level and `results` rows) by its wire form.
pub fn rewrite_seqs(v: &mut Value) {
    if let Value::Object(map) = v {
        for key in ["update_seq", "seq", "last_seq"] {
            if let Some(slot) = map.get_mut(key) {
                if let Some(n) = slot.as_u64() {
                    *slot = format_seq(n);
                }
            }
        }
        if let Some(Value::Array(rows)) = map.get_mut("results") {
            rows.iter_mut().for_each(rewrite_seqs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_values() {
        assert_eq!(parse_since(&json!("12-s")).unwrap(), Since::Seq(12));
        assert_eq!(parse_since(&json!("now")).unwrap(), Since::Now);
        assert_eq!(parse_since(&json!(0)).unwrap(), Since::Seq(0));
        assert_eq!(parse_since(&json!("5")).unwrap_err().status(), 400);
        assert_eq!(parse_since(&json!("bogus")).unwrap_err().status(), 400);
    }
}
