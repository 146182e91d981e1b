//! What a JavaScript function threw, and what CouchDB makes of it.

use std::borrow::Cow;

use boa_engine::builtins::error::Error as ErrorData;
use boa_engine::{js_string, Context, JsError, JsValue};
use serde_json::Value;

use super::convert::{to_json, OutputLimits};
use crate::Error;

/// A failed JavaScript call, taken apart.
#[derive(Debug, Clone, PartialEq)]
pub enum Thrown {
    /// An engine limit (loop iterations, recursion, stack) was hit. JavaScript
    /// cannot catch these; CouchDB's equivalent is a killed or timed-out
    /// query-server process.
    Limit(String),
    /// An `Error` object (thrown by the engine or by user code).
    Error {
        /// `name`, e.g. `TypeError`.
        name: String,
        /// `message`.
        message: String,
    },
    /// Any other thrown value, as JSON (`None` if it has no JSON form).
    Value(Option<Value>),
}

impl Thrown {
    /// Takes a boa error apart. Needs the context to read thrown objects.
    pub fn from_js(err: JsError, ctx: &mut Context) -> Thrown {
        if let Some(engine) = err.as_engine() {
            return Thrown::Limit(engine.to_string());
        }
        if let Some(native) = err.as_native() {
            return Thrown::Error {
                name: native.kind().to_string(),
                message: native.message().to_string(),
            };
        }
        let value = err.as_opaque().cloned().unwrap_or_default();
        Thrown::from_value(&value, ctx)
    }

    fn from_value(value: &JsValue, ctx: &mut Context) -> Thrown {
        if let Some(object) = value.as_object().filter(|o| o.is::<ErrorData>()) {
            let mut read = |key| {
                object
                    .get(key, ctx)
                    .and_then(|v| v.to_string(ctx))
                    .map(|s| s.to_std_string_escaped())
                    .unwrap_or_default()
            };
            let name = read(js_string!("name"));
            let message = read(js_string!("message"));
            return Thrown::Error { name, message };
        }
        match to_json(value, OutputLimits::default(), ctx) {
            Ok(json) => Thrown::Value(json),
            Err(_) => Thrown::Value(
                value
                    .to_string(ctx)
                    .ok()
                    .map(|s| Value::String(s.to_std_string_escaped())),
            ),
        }
    }

    /// Roughly what SpiderMonkey's `toSource()` prints, as used in CouchDB's
    /// messages: `(new TypeError("msg", "<unknown>", 1))` for errors, JSON
    /// for other values.
    pub fn describe(&self) -> String {
        match self {
            Thrown::Limit(message) => format!("(new InternalError({message:?}))"),
            Thrown::Error { name, message } => {
                let message = Value::String(message.clone());
                format!("(new {name}({message}, \"<unknown>\", 1))")
            }
            Thrown::Value(Some(v)) => v.to_string(),
            Thrown::Value(None) => "undefined".into(),
        }
    }

    /// CouchDB's `handleViewError`: the throws that abort a whole map or
    /// reduce call instead of only dropping one result. `Some` for
    /// `"fatal_error"`, `["fatal", name, reason]`, `["error", name, reason]`
    /// (the query server's own error form) and engine limits.
    pub fn abort_error(&self) -> Option<Error> {
        match self {
            Thrown::Limit(message) => Some(Error::JavaScript {
                name: Cow::Borrowed("os_process_error"),
                reason: format!("InternalError: {message}"),
            }),
            Thrown::Value(Some(Value::String(s))) if s == "fatal_error" => {
                Some(Error::JavaScript {
                    name: Cow::Borrowed("map_runtime_error"),
                    reason: "function raised 'fatal_error'".into(),
                })
            }
            Thrown::Value(Some(Value::Array(items)))
                if items.first().is_some_and(|f| f == "fatal") =>
            {
                Some(Self::error_triple(items))
            }
            _ => None,
        }
    }

    /// Whether the worker's context must be rebuilt after this throw
    /// (CouchDB kills the couchjs process on `["fatal", ..]`).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Thrown::Value(Some(Value::Array(items))) if items.first().is_some_and(|f| f == "fatal"))
    }

    /// `["error", name, reason]` thrown by the runtime (e.g. by `require`).
    pub fn as_query_server_error(&self) -> Option<Error> {
        match self {
            Thrown::Value(Some(Value::Array(items))) if items.len() == 3 && items[0] == "error" => {
                Some(Self::error_triple(items))
            }
            _ => None,
        }
    }

    /// What CouchDB's query server makes of a throw that escapes a filter
    /// function (`handleError` in `loop.js`), which CouchDB answers with a
    /// 500 carrying that name and reason: `["error"|"fatal", name, reason]`
    /// as is; an object with `error` and `reason`; an object with a `name`
    /// (an `Error`) as that name with the object itself as the reason,
    /// printed as an Erlang term (an `Error` has no enumerable members, so
    /// `new Error("boom")` gives `{"error":"Error","reason":"{[]}"}`); any
    /// other value as `unnamed_error`. Engine limits stay `os_process_error`.
    pub fn into_query_server_error(self) -> Error {
        if let Some(e) = self.abort_error().or_else(|| self.as_query_server_error()) {
            return e;
        }
        let (name, reason) = match &self {
            Thrown::Error { name, .. } => (name.clone(), "{[]}".to_owned()),
            Thrown::Value(Some(Value::Object(m)))
                if m.get("error").is_some_and(truthy) && m.get("reason").is_some_and(truthy) =>
            {
                (erlang_text(&m["error"]), erlang_text(&m["reason"]))
            }
            Thrown::Value(Some(obj @ Value::Object(m))) if m.get("name").is_some_and(truthy) => {
                (erlang_text(&m["name"]), erlang_term(obj))
            }
            other => ("unnamed_error".to_owned(), other.describe()),
        };
        Error::JavaScript {
            name: Cow::Owned(name),
            reason,
        }
    }

    fn error_triple(items: &[Value]) -> Error {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Error::JavaScript {
            name: Cow::Owned(text(items.get(1))),
            reason: text(items.get(2)),
        }
    }

    /// The error a call answers with when this throw is not otherwise
    /// handled (filters, compile-time evaluation).
    pub fn into_error(self) -> Error {
        if let Some(e) = self.abort_error().or_else(|| self.as_query_server_error()) {
            return e;
        }
        match self {
            Thrown::Error { name, message } => Error::JavaScript {
                name: Cow::Owned(name),
                reason: message,
            },
            other => Error::JavaScript {
                name: Cow::Borrowed("unknown_error"),
                reason: other.describe(),
            },
        }
    }
}

/// JavaScript truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// `couch_util:to_binary/1` of a decoded JSON value: strings as they are,
/// anything else as its Erlang term.
fn erlang_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => erlang_term(other),
    }
}

/// A decoded JSON value (jiffy's EJSON) as Erlang's `~p` prints it.
fn erlang_term(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("<<{}>>", Value::String(s.clone())),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(erlang_term).collect::<Vec<_>>().join(",")
        ),
        Value::Object(m) => format!(
            "{{[{}]}}",
            m.iter()
                .map(|(k, v)| format!(
                    "{{{},{}}}",
                    erlang_term(&Value::String(k.clone())),
                    erlang_term(v)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
