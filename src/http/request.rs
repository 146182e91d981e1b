//! A parsed request: path segments, query parameters, body and user.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method};
use serde_json::Value;

use crate::{Error, Result, UserCtx};

/// What handlers see of a request.
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Percent-decoded path segments (an encoded `/` stays inside its segment).
    pub segments: Vec<String>,
    /// Percent-decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The authenticated user.
    pub user: UserCtx,
}

/// Splits a raw path into percent-decoded segments.
pub fn split_path(path: &str) -> Result<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    trimmed.split('/').map(decode).collect()
}

/// Parses a raw query string (`+` is a space, as in forms).
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(&k.replace('+', " "))?, decode(&v.replace('+', " "))?))
        })
        .collect()
}

fn decode(s: &str) -> Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::bad_request("Invalid URL encoding"))
}

/// Parses JSON the way CouchDB accepts it: any nesting depth, surrounding
/// whitespace; invalid text, numbers out of range and lone surrogates are
/// 400 "invalid UTF-8 JSON".
pub fn parse_json(bytes: &[u8]) -> Result<Value> {
    let invalid = || Error::bad_request("invalid UTF-8 JSON");
    if max_depth(bytes) > MAX_JSON_DEPTH {
        return Err(invalid());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(&mut de).map_err(|_| invalid())?;
    de.end().map_err(|_| invalid())?;
    if has_infinite(&value) {
        return Err(invalid());
    }
    Ok(value)
}

/// Deepest nesting accepted; deeper documents would exhaust the stack.
const MAX_JSON_DEPTH: usize = 4_000;

/// Bracket depth outside strings (an upper bound of the parse depth).
fn max_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn has_infinite(v: &Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    false
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter: `true` is true, anything else false.
    pub fn flag(&self, name: &str) -> bool {
        self.param(name) == Some("true")
    }

    /// The body as JSON (any JSON value).
    pub fn json(&self) -> Result<Value> {
        parse_json(&self.body)
    }

    /// The body as a JSON object; `reason` for other JSON values.
    pub fn json_object(&self, reason: &'static str) -> Result<Value> {
        match self.json()? {
            v @ Value::Object(_) => Ok(v),
            _ => Err(Error::bad_request(reason)),
        }
    }

    /// 415 unless the body is declared as JSON.
    pub fn require_json(&self) -> Result<()> {
        let ctype = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ctype.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("application/json") {
            Ok(())
        } else {
            Err(Error::couch(
                415,
                "bad_content_type",
                "Content-Type must be application/json",
            ))
        }
    }

    /// A header's value as text.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_edge_cases() {
        assert!(parse_json(b"  {\"a\":1}  ").is_ok());
        assert!(parse_json(b"{\"a\":1} x").is_err());
        assert!(parse_json(b"{\"n\":1e400}").is_err());
        assert!(parse_json(b"{\"a\":\"\\ud800\"}").is_err());
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert!(parse_json(deep.as_bytes()).is_ok());
    }

    #[test]
    fn paths_keep_encoded_slashes() {
        assert_eq!(split_path("/db/a%2Fb").unwrap(), vec!["db", "a/b"]);
        assert_eq!(split_path("/").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_query("a=1&b=x%20y&c").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into())
            ]
        );
    }
}
