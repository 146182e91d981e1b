//! `settee serve`: CouchDB's HTTP API over the [`Settee`] library.
//!
//! One fallback handler routes every request by its decoded path segments
//! (CouchDB's paths are too irregular for a route table: document ids may
//! contain encoded slashes, and unknown paths and methods need CouchDB's own
//! error bodies). Library calls are blocking (LMDB, JavaScript) and run on
//! tokio's blocking pool; only continuous and longpoll `_changes` feeds wait
//! asynchronously.
//!
//! ```no_run
//! # async fn run() -> settee::Result<()> {
//! use std::sync::Arc;
//! let settee = Arc::new(settee::server::Settee::open("/tmp/data")?);
//! settee.admins().set("admin", "password")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5984").await?;
//! settee::http::serve(listener, settee, settee::http::HttpConfig::default()).await?;
//! # Ok(()) }
//! ```

mod auth;
mod changes;
mod db;
mod docs;
mod reply;
mod request;
mod root;
mod selector;
mod seq;
mod views;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use reply::Reply;
pub use request::Request;

use crate::server::Settee;
use crate::{Error, Result};

/// Default largest request body, 64 MiB (CouchDB's `max_http_request_size`
/// is 4 GiB; documents above `max_document_size` are refused by the store).
pub const MAX_REQUEST_SIZE: usize = 64 << 20;

/// Server options.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Treat every request as a server admin's when no admin is configured.
    pub admin_party: bool,
    /// CouchDB's `[chttpd] changes_timeout`: the default and the largest
    /// `timeout` of longpoll and continuous `_changes` feeds (60 s).
    pub changes_timeout: std::time::Duration,
    /// CouchDB's `[chttpd] max_http_request_size`: a larger body gets 413
    /// `too_large` before anything is parsed or stored.
    pub max_request_size: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            admin_party: false,
            changes_timeout: changes::CHANGES_TIMEOUT,
            max_request_size: MAX_REQUEST_SIZE,
        }
    }
}

#[derive(Clone)]
struct AppState {
    settee: Arc<Settee>,
    config: HttpConfig,
}

/// The axum application serving `settee`.
pub fn router(settee: Arc<Settee>, config: HttpConfig) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(AppState { settee, config })
}

/// Serves HTTP on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settee: Arc<Settee>,
    config: HttpConfig,
) -> Result<()> {
    axum::serve(listener, router(settee, config)).await?;
    Ok(())
}

async fn handle(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    match handle_inner(state, req).await {
        Ok(res) => res,
        Err(e) => reply::error_reply(&e).into_response(),
    }
}

async fn handle_inner(state: AppState, req: axum::extract::Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let segments = request::split_path(parts.uri.path())?;
    let query = request::parse_query(parts.uri.query().unwrap_or(""))?;
    let body = axum::body::to_bytes(body, state.config.max_request_size)
        .await
        .map_err(|_| Error::couch(413, "too_large", "the request entity is too large"))?;
    let settee = state.settee.clone();
    let headers = parts.headers.clone();
    let config = state.config.clone();
    let changes_timeout = config.changes_timeout;
    let user = blocking(move || auth::authenticate(&settee, &headers, &config)).await?;
    let request = Request {
        method: if parts.method == Method::HEAD {
            Method::GET
        } else {
            parts.method.clone()
        },
        segments,
        query,
        headers: parts.headers,
        body,
        user,
    };
    if changes::is_streaming(&request) {
        return changes::stream(state.settee.clone(), request, changes_timeout).await;
    }
    let settee = state.settee.clone();
    let head = parts.method == Method::HEAD;
    let reply = blocking(move || Ok(route(&settee, &request))).await?;
    let mut res = reply.into_response();
    if head {
        *res.body_mut() = Body::empty();
    }
    Ok(res)
}

/// Runs blocking library work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::couch(500, "internal_server_error", e.to_string()))?
}

/// Routes a request to its handler by path shape.
fn route(settee: &Settee, req: &Request) -> Reply {
    let result = match req.segments.first().map(String::as_str) {
        None => root::welcome(req),
        Some(first) if req.segments.len() == 1 && root::is_endpoint(first) => {
            root::route(settee, req, first)
        }
        Some(_) => db::route(settee, req),
    };
    result.unwrap_or_else(|e| reply::error_reply(&e))
}

/// 405 with CouchDB's "Only X allowed" reason.
fn method_not_allowed(allowed: &str) -> Error {
    Error::couch(405, "method_not_allowed", format!("Only {allowed} allowed"))
}
