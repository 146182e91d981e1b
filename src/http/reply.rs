//! Responses: a status, a JSON body and extra headers, or a streamed feed.

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// A JSON response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// Extra headers (e.g. `Set-Cookie`).
    pub headers: Vec<(HeaderName, String)>,
}

impl Reply {
    /// A reply with `status` and a JSON `body`.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// 200 with a serialisable body.
    pub fn ok<T: Serialize>(body: &T) -> crate::Result<Reply> {
        Ok(Reply::json(200, to_value(body)?))
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// Serialises into a JSON value.
pub fn to_value<T: Serialize>(body: &T) -> crate::Result<Value> {
    serde_json::to_value(body).map_err(|e| Error::Corrupt(e.to_string()))
}

/// The error body and status CouchDB sends for `e`.
pub fn error_reply(e: &Error) -> Reply {
    if matches!(e, Error::Io(_) | Error::Corrupt(_)) {
        tracing::error!("request failed: {e}");
    }
    let mut body = e.to_json();
    if carries_ref(e) {
        // CouchDB adds the CRC32 of an Erlang stack trace to these errors;
        // clients only see an opaque number.
        body["ref"] = serde_json::json!(crc32(e.reason().as_bytes()));
    }
    Reply::json(e.status(), body)
}

/// Errors CouchDB answers with a `ref` member (they come from a crash
/// report in CouchDB rather than from a handler).
fn carries_ref(e: &Error) -> bool {
    e.name() == "unknown_query_language"
        || (e.name() == "unknown_error" && e.reason() == "badarg")
        || (e.name() == "query_parse_error"
            && e.reason().starts_with("No rows can match your key range"))
}

/// CRC-32 (IEEE), bitwise.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// JSON text with a trailing newline, as CouchDB sends it.
pub fn json_text(body: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    text.push(b'\n');
    text
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = Response::new(Body::from(json_text(&self.body)));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("must-revalidate"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.append(name, v);
            }
        }
        res
    }
}
