//! A Mango selector subset for `_changes?filter=_selector`: field conditions
//! (implicit `$eq`, dotted paths), `$eq $ne $lt $lte $gt $gte $exists $in
//! $nin $type`, and `$and $or $nor $not`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::{Error, Result};

/// A parsed selector.
#[derive(Debug, Clone)]
pub(super) struct Selector {
    root: Map<String, Value>,
}

fn selector_error(reason: &str) -> Error {
    Error::bad_request(format!("Selector error: {reason}"))
}

impl Selector {
    /// Checks the shape of `sel` ("Selector error: expected a JSON object").
    pub(super) fn parse(sel: &Value) -> Result<Selector> {
        match sel {
            Value::Object(m) => Ok(Selector { root: m.clone() }),
            _ => Err(selector_error("expected a JSON object")),
        }
    }

    /// Whether `doc` matches.
    pub(super) fn matches(&self, doc: &Value) -> bool {
        match_object(&self.root, doc)
    }
}

fn match_object(sel: &Map<String, Value>, doc: &Value) -> bool {
    sel.iter().all(|(k, v)| match k.as_str() {
        "$and" => v
            .as_array()
            .is_some_and(|a| a.iter().all(|s| match_value(s, doc))),
        "$or" => v
            .as_array()
            .is_some_and(|a| a.iter().any(|s| match_value(s, doc))),
        "$nor" => v
            .as_array()
            .is_some_and(|a| !a.iter().any(|s| match_value(s, doc))),
        "$not" => !match_value(v, doc),
        field => match_field(lookup(doc, field), v),
    })
}

fn match_value(sel: &Value, doc: &Value) -> bool {
    sel.as_object().is_some_and(|m| match_object(m, doc))
}

fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

/// A condition on one field: an operator object, or a value for `$eq`.
fn match_field(value: Option<&Value>, cond: &Value) -> bool {
    match cond {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
            ops.iter().all(|(op, arg)| match_op(value, op, arg))
        }
        Value::Object(sub) => value.is_some_and(|v| match_object(sub, v)),
        other => value == Some(other),
    }
}

fn match_op(value: Option<&Value>, op: &str, arg: &Value) -> bool {
    let cmp = |want: &[Ordering]| value.is_some_and(|v| want.contains(&compare(v, arg)));
    match op {
        "$eq" => value == Some(arg),
        "$ne" => value != Some(arg),
        "$lt" => cmp(&[Ordering::Less]),
        "$lte" => cmp(&[Ordering::Less, Ordering::Equal]),
        "$gt" => cmp(&[Ordering::Greater]),
        "$gte" => cmp(&[Ordering::Greater, Ordering::Equal]),
        "$exists" => value.is_some() == (arg == &Value::Bool(true)),
        "$in" => arg
            .as_array()
            .is_some_and(|a| value.is_some_and(|v| a.contains(v))),
        "$nin" => arg
            .as_array()
            .is_some_and(|a| value.is_none_or(|v| !a.contains(v))),
        "$not" => !match_field(value, arg),
        "$type" => value.is_some_and(|v| Some(type_name(v)) == arg.as_str()),
        _ => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Orders values by type (CouchDB's type order), then naturally within a type.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(a, b)| compare(a, b))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators() {
        let s = Selector::parse(&json!({"$or": [{"type": "a"}, {"n": {"$lt": 3}}]})).unwrap();
        assert!(s.matches(&json!({"type": "a", "n": 9})));
        assert!(s.matches(&json!({"type": "b", "n": 2})));
        assert!(!s.matches(&json!({"type": "b", "n": 3})));
        let d = Selector::parse(&json!({"_deleted": true})).unwrap();
        assert!(d.matches(&json!({"_id": "x", "_deleted": true})));
        assert!(Selector::parse(&json!("x")).is_err());
    }
}
