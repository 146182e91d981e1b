//! Document validation: `_id` rules, reserved `_` members, and splitting an
//! incoming JSON document into its id, revision information and body.

use serde_json::{Map, Value};

use super::revs::Rev;
use crate::{Error, Result};

/// Prefix of design document ids.
pub const DESIGN_PREFIX: &str = "_design/";
/// Prefix of local (non-replicated) document ids.
pub const LOCAL_PREFIX: &str = "_local/";

/// An incoming document, validated and split.
#[derive(Debug, Clone)]
pub(crate) struct IncomingDoc {
    /// The document id.
    pub id: String,
    /// Revision path given by `_revisions` (or `_rev`), newest first.
    /// With `new_edits=true` its head is the parent of the edit.
    pub revs: Vec<Rev>,
    /// `_deleted: true`.
    pub deleted: bool,
    /// The body: every member that is not special, in the order given.
    pub body: Map<String, Value>,
}

impl IncomingDoc {
    /// Whether the id names a `_local/` document.
    pub fn is_local(&self) -> bool {
        self.id.starts_with(LOCAL_PREFIX)
    }
}

/// Checks a document id the way CouchDB does (`couch_doc:validate_docid/1`).
///
/// ```
/// use settee::store::validate_doc_id;
///
/// assert!(validate_doc_id("order-1").is_ok());
/// assert!(validate_doc_id("_design/app").is_ok());
/// assert_eq!(validate_doc_id("").unwrap_err().status(), 400);
/// assert!(validate_doc_id("_reserved").is_err());
/// ```
pub fn validate_doc_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(illegal_docid("Document id must not be empty"));
    }
    if let Some(rest) = id.strip_prefix(LOCAL_PREFIX) {
        if rest.is_empty() {
            return Err(Error::bad_request("Invalid _local document id."));
        }
        return Ok(());
    }
    if id == "_local" {
        return Err(Error::bad_request("Invalid _local document id."));
    }
    if id.starts_with('_') && id.strip_prefix(DESIGN_PREFIX).is_none_or(str::is_empty) {
        return Err(illegal_docid(
            "Only reserved document ids may start with underscore.",
        ));
    }
    Ok(())
}

fn illegal_docid(reason: &'static str) -> Error {
    Error::couch(400, "illegal_docid", reason)
}

fn bad_special(name: &str) -> Error {
    Error::DocValidation(format!("Bad special document member: {name}").into())
}

/// Splits and validates a document. `new_id` supplies an id when the
/// document has none (CouchDB's server-generated uuid).
pub(crate) fn split(doc: Value, new_id: impl FnOnce() -> String) -> Result<IncomingDoc> {
    let Value::Object(mut body) = doc else {
        return Err(Error::bad_request("Document must be a JSON object"));
    };
    let mut id = None;
    let mut rev: Option<Rev> = None;
    let mut revisions: Option<Vec<Rev>> = None;
    let mut deleted = false;
    // Special members are taken out in place: most documents only have
    // `_id`, and rebuilding the map would rehash every member.
    let specials: Vec<String> = body
        .keys()
        .filter(|k| k.starts_with('_'))
        .cloned()
        .collect();
    for k in specials {
        let v = body.shift_remove(&k).expect("key was just listed");
        match k.as_str() {
            "_id" => match v {
                Value::String(s) => id = Some(s),
                _ => return Err(illegal_docid("Document id must be a string")),
            },
            "_rev" => rev = Some(Rev::from_json(&v)?),
            "_revisions" => revisions = Some(parse_revisions(&v)?),
            "_deleted" => match v {
                Value::Bool(b) => deleted = b,
                _ => return Err(bad_special("_deleted")),
            },
            // Read-only metadata a client may echo back: CouchDB drops it.
            "_conflicts" | "_deleted_conflicts" | "_local_seq" | "_revs_info" => {}
            "_attachments" => {
                return Err(match v {
                    Value::Object(_) => Error::couch(
                        501,
                        "not_implemented",
                        "settee does not support attachments",
                    ),
                    _ => bad_special("_attachments"),
                })
            }
            _ => return Err(bad_special(&k)),
        }
    }
    let id = id.unwrap_or_else(new_id);
    validate_doc_id(&id)?;
    // `_revisions` wins over `_rev` (couch_doc:transfer_fields/3).
    let revs = revisions
        .or_else(|| rev.map(|r| vec![r]))
        .unwrap_or_default();
    Ok(IncomingDoc {
        id,
        revs,
        deleted,
        body,
    })
}

/// The revision a document carries (the first of `_revisions`, else `_rev`),
/// if it carries a well-formed one.
pub(crate) fn leaf_rev(doc: &Value) -> Option<Rev> {
    match doc.get("_revisions") {
        Some(v) => parse_revisions(v).ok()?.into_iter().next(),
        None => Rev::from_json(doc.get("_rev")?).ok(),
    }
}

fn parse_revisions(v: &Value) -> Result<Vec<Rev>> {
    let bad = || bad_special("_revisions");
    let obj = v.as_object().ok_or_else(bad)?;
    let start = obj.get("start").and_then(Value::as_u64).ok_or_else(bad)?;
    let ids = obj.get("ids").and_then(Value::as_array).ok_or_else(bad)?;
    if ids.len() as u64 > start {
        return Err(bad());
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let id = id.as_str().ok_or_else(bad)?;
            Ok(Rev {
                pos: start - i as u64,
                id: id.to_owned(),
            })
        })
        .collect()
}

/// Appends the JSON of a document to `out`: `_id`, `_rev`, the stored body
/// members (from their JSON bytes, which must be an object), then `_deleted`.
/// Further members are appended by the caller before [`close_doc_json`].
pub(crate) fn open_doc_json(out: &mut Vec<u8>, id: &str, rev: &Rev, body: &[u8], deleted: bool) {
    out.extend_from_slice(b"{\"_id\":");
    write_json_str(out, id);
    out.extend_from_slice(b",\"_rev\":\"");
    out.extend_from_slice(rev.pos.to_string().as_bytes());
    out.push(b'-');
    // Revision ids from replication may hold any character: escape them.
    let mut rev_id = Vec::new();
    write_json_str(&mut rev_id, &rev.id);
    out.extend_from_slice(&rev_id[1..]);
    let inner = body_members(body);
    if !inner.is_empty() {
        out.push(b',');
        out.extend_from_slice(inner);
    }
    if deleted {
        out.extend_from_slice(b",\"_deleted\":true");
    }
}

/// Appends `,"name":<json>` to an open document.
pub(crate) fn push_member(out: &mut Vec<u8>, name: &str, value: &Value) {
    out.push(b',');
    write_json_str(out, name);
    out.push(b':');
    serde_json::to_writer(&mut *out, value).expect("writing JSON to a Vec cannot fail");
}

/// Closes a document opened with [`open_doc_json`].
pub(crate) fn close_doc_json(out: &mut Vec<u8>) {
    out.push(b'}');
}

/// The members of a serialised JSON object, without the braces.
fn body_members(body: &[u8]) -> &[u8] {
    let trimmed = body.trim_ascii();
    if trimmed.len() < 2 {
        return &[];
    }
    trimmed[1..trimmed.len() - 1].trim_ascii()
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing JSON to a Vec cannot fail");
}

/// Builds a document value from its parts (slow path; hot paths use the byte builders).
pub(crate) fn doc_value(id: &str, rev: &Rev, body: &[u8], deleted: bool) -> Result<Value> {
    let mut buf = Vec::with_capacity(body.len() + id.len() + 64);
    open_doc_json(&mut buf, id, rev, body, deleted);
    close_doc_json(&mut buf);
    parse_stored(&buf)
}

/// Parses stored JSON; failure means damaged data.
pub(crate) fn parse_stored(bytes: &[u8]) -> Result<Value> {
    // Documents are accepted at any nesting depth, so they are read back without a limit.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    serde::Deserialize::deserialize(&mut de)
        .map_err(|e| Error::Corrupt(format!("stored document: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(doc: Value) -> (String, String, u16) {
        let e = split(doc, || "gen".into()).unwrap_err();
        (e.name().to_owned(), e.reason(), e.status())
    }

    #[test]
    fn ids_follow_couchdb_rules() {
        let reserved = "Only reserved document ids may start with underscore.";
        for id in ["_foo", "_design", "_design/", "_DESIGN/x", "_bogus/x"] {
            let r = err(json!({ "_id": id }));
            assert_eq!(r, ("illegal_docid".into(), reserved.into(), 400), "{id}");
        }
        for id in ["_local", "_local/"] {
            let r = err(json!({ "_id": id }));
            assert_eq!(
                r,
                (
                    "bad_request".into(),
                    "Invalid _local document id.".into(),
                    400
                )
            );
        }
        for id in [
            json!(5),
            json!(null),
            json!({"a": 1}),
            json!(["x"]),
            json!(true),
        ] {
            let r = err(json!({ "_id": id }));
            assert_eq!(r.1, "Document id must be a string");
        }
        assert_eq!(err(json!({"_id": ""})).1, "Document id must not be empty");
        for ok in ["_design/x", "_local/x", "with space", "emoji😀", "a/b"] {
            assert_eq!(split(json!({ "_id": ok }), String::new).unwrap().id, ok);
        }
    }

    #[test]
    fn special_members() {
        for (doc, name) in [
            (json!({"_deleted": "yes"}), "_deleted"),
            (json!({"_attachments": 5}), "_attachments"),
            (json!({"_foo": 1}), "_foo"),
            (json!({"_id_": 1}), "_id_"),
            (json!({"_revisions": 5}), "_revisions"),
        ] {
            let r = err(doc);
            assert_eq!(r.0, "doc_validation");
            assert_eq!(r.1, format!("Bad special document member: {name}"));
        }
        let d = split(
            json!({"_conflicts": "x", "_local_seq": 1, "_revs_info": [], "_deleted_conflicts": [], "v": 1}),
            || "g".into(),
        )
        .unwrap();
        assert_eq!(Value::Object(d.body), json!({"v": 1}));
        assert_eq!(err(json!([1])).1, "Document must be a JSON object");
        assert_eq!(err(json!({"_rev": 5})).1, "Invalid rev format");
    }

    #[test]
    fn revisions_win_over_rev() {
        let d = split(
            json!({"_id": "a", "_rev": "2-x", "_revisions": {"start": 3, "ids": ["c", "b"]}}),
            String::new,
        )
        .unwrap();
        assert_eq!(
            d.revs,
            vec![Rev::parse("3-c").unwrap(), Rev::parse("2-b").unwrap()]
        );
    }

    #[test]
    fn doc_json_builder_orders_members() {
        let rev = Rev::parse("1-abc").unwrap();
        let v = doc_value("a\"b", &rev, br#"{"x":1,"y":[2]}"#, true).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"_id":"a\"b","_rev":"1-abc","x":1,"y":[2],"_deleted":true}"#
        );
        let v = doc_value("a", &rev, b"{}", false).unwrap();
        assert_eq!(v, json!({"_id": "a", "_rev": "1-abc"}));
    }
}
