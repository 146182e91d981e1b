//! The Erlang external term format of a JSON body, as CouchDB hashes it.
//!
//! CouchDB's revision id is
//! `md5(term_to_binary([Deleted, OldPos, OldRevId, Body, Atts], [{minor_version, 1}]))`
//! (`couch_db:new_revid/1`), where `Body` is the document as jiffy decodes
//! it: objects are `{[{Key, Value}]}` in member order, strings and keys are
//! UTF-8 binaries, integers are integers, numbers with a fraction or an
//! exponent are floats, and `true`/`false`/`null` are atoms. Encoding the same
//! terms here gives settee the very revision ids CouchDB computes, so the
//! order of same-generation revisions (winner, `_conflicts`, key-tree order)
//! is CouchDB's too.

use serde_json::{Map, Number, Value};

const VERSION: u8 = 131;
const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const SMALL_TUPLE: u8 = 104;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const ATOM: u8 = 100;
const NEW_FLOAT: u8 = 70;

/// The bytes CouchDB hashes for an edit: `[Deleted, OldPos, OldRevId, Body, []]`.
/// `parent` is the edited revision as `(pos, raw id bytes)`; a new document
/// has none (both encoded as the integer 0).
pub(crate) fn revision_term(
    deleted: bool,
    parent: Option<(u64, &[u8])>,
    body: &Map<String, Value>,
) -> Vec<u8> {
    let mut out = vec![VERSION, LIST];
    out.extend_from_slice(&5u32.to_be_bytes());
    atom(&mut out, if deleted { "true" } else { "false" });
    match parent {
        Some((pos, id)) => {
            unsigned(&mut out, pos);
            binary(&mut out, id);
        }
        None => {
            unsigned(&mut out, 0);
            unsigned(&mut out, 0);
        }
    }
    object(&mut out, body);
    out.push(NIL); // no attachments
    out.push(NIL); // end of the list
    out
}

fn atom(out: &mut Vec<u8>, name: &str) {
    out.push(ATOM);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn binary(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(BINARY);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn unsigned(out: &mut Vec<u8>, n: u64) {
    if let Ok(small) = u8::try_from(n) {
        out.extend_from_slice(&[SMALL_INTEGER, small]);
    } else if let Ok(i) = i32::try_from(n) {
        out.push(INTEGER);
        out.extend_from_slice(&i.to_be_bytes());
    } else {
        big(out, false, n);
    }
}

fn signed(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        unsigned(out, n.unsigned_abs());
    } else if let Ok(i) = i32::try_from(n) {
        out.push(INTEGER);
        out.extend_from_slice(&i.to_be_bytes());
    } else {
        big(out, true, n.unsigned_abs());
    }
}

/// `SMALL_BIG_EXT`: byte count, sign, magnitude little-endian.
fn big(out: &mut Vec<u8>, negative: bool, n: u64) {
    let bytes = n.to_le_bytes();
    let len = 8 - (n.leading_zeros() / 8) as usize;
    out.extend_from_slice(&[SMALL_BIG, len as u8, u8::from(negative)]);
    out.extend_from_slice(&bytes[..len]);
}

fn number(out: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        unsigned(out, u);
    } else if let Some(i) = n.as_i64() {
        signed(out, i);
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f == 0.0 && f.is_sign_negative() {
            // serde_json reads `-0` as -0.0; jiffy reads it as the integer 0.
            unsigned(out, 0);
            return;
        }
        // jiffy flushes subnormal numbers (`5e-324`) to zero.
        let f = if f.is_subnormal() {
            0.0_f64.copysign(f)
        } else {
            f
        };
        out.push(NEW_FLOAT);
        out.extend_from_slice(&f.to_be_bytes());
    }
}

/// Lists of bytes are `STRING_EXT` in the external format.
fn byte_string(items: &[Value]) -> Option<Vec<u8>> {
    if items.len() > usize::from(u16::MAX) {
        return None;
    }
    items
        .iter()
        .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}

fn object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.extend_from_slice(&[SMALL_TUPLE, 1]);
    if map.is_empty() {
        out.push(NIL);
        return;
    }
    out.push(LIST);
    out.extend_from_slice(&(map.len() as u32).to_be_bytes());
    for (k, v) in map {
        out.extend_from_slice(&[SMALL_TUPLE, 2]);
        binary(out, k.as_bytes());
        value(out, v);
    }
    out.push(NIL);
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => atom(out, "null"),
        Value::Bool(b) => atom(out, if *b { "true" } else { "false" }),
        Value::Number(n) => number(out, n),
        Value::String(s) => binary(out, s.as_bytes()),
        Value::Array(items) if items.is_empty() => out.push(NIL),
        Value::Array(items) => {
            if let Some(bytes) = byte_string(items) {
                out.push(STRING);
                out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                out.extend_from_slice(&bytes);
                return;
            }
            out.push(LIST);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                value(out, item);
            }
            out.push(NIL);
        }
        Value::Object(map) => object(out, map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn encodes_like_term_to_binary() {
        // term_to_binary([false, 0, 0, {[]}, []], [{minor_version, 1}])
        assert_eq!(
            revision_term(false, None, &Map::new()),
            [
                131, 108, 0, 0, 0, 5, 100, 0, 5, b'f', b'a', b'l', b's', b'e', 97, 0, 97, 0, 104,
                1, 106, 106, 106
            ]
        );
        let mut out = Vec::new();
        value(
            &mut out,
            &json!([[1, 2], -1, 300, 1.5, "é", null, {"a": true}]),
        );
        assert_eq!(
            out,
            [
                108, 0, 0, 0, 7, // list of 7
                107, 0, 2, 1, 2, // [1, 2] is a byte string
                98, 255, 255, 255, 255, // -1
                98, 0, 0, 1, 44, // 300
                70, 63, 248, 0, 0, 0, 0, 0, 0, // 1.5
                109, 0, 0, 0, 2, 0xc3, 0xa9, // <<"é">>
                100, 0, 4, b'n', b'u', b'l', b'l', // null
                104, 1, 108, 0, 0, 0, 1, 104, 2, 109, 0, 0, 0, 1, b'a', 100, 0, 4, b't', b'r',
                b'u', b'e', 106, // {[{<<"a">>, true}]}
                106
            ]
        );
        let mut out = Vec::new();
        value(&mut out, &json!(u64::MAX));
        assert_eq!(out, [110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 255]);
        let mut out = Vec::new();
        value(&mut out, &json!(-(1i64 << 40)));
        assert_eq!(out, [110, 6, 1, 0, 0, 0, 0, 0, 1]);
        // `-0` is the integer 0, subnormals are 0.0.
        let mut out = Vec::new();
        value(
            &mut out,
            &serde_json::from_str::<Value>("[-0, 5e-324]").unwrap(),
        );
        assert_eq!(
            out,
            [108, 0, 0, 0, 2, 97, 0, 70, 0, 0, 0, 0, 0, 0, 0, 0, 106]
        );
    }

    #[test]
    fn hashes_match_recorded_couchdb_revisions() {
        use md5::{Digest, Md5};
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // `_design/c` of the golden F_conflicts scenarios: 1-bee3354f...
        let ddoc = body(json!({"views": {
            "conflicts": {"map": "function(doc) { emit(doc._id, doc._conflicts || null); }"},
            "winner": {"map": "function(doc) { emit([doc.branch || null, doc._id], doc.n); }", "reduce": "_count"}
        }}));
        assert_eq!(
            hex(&Md5::digest(revision_term(false, None, &ddoc))),
            "bee3354f2313b4952ff6f6e95d102a7c"
        );
        // DELETE ?rev=2-fbee243c... gave 3-81eb694b...
        let parent = [
            0xfb, 0xee, 0x24, 0x3c, 0x2c, 0xe9, 0xf7, 0x0f, 0xf4, 0x84, 0xe5, 0xf3, 0xe4, 0x87,
            0xec, 0x76,
        ];
        assert_eq!(
            hex(&Md5::digest(revision_term(
                true,
                Some((2, &parent)),
                &Map::new()
            ))),
            "81eb694b585b9480efe1ebc013257e54"
        );
    }
}
