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
    Reply::json(e.status(), e.to_json())
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
