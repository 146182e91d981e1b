//! `_changes`: the normal feed, and longpoll and continuous feeds that wait
//! for new commits through [`Database::subscribe`](crate::Database::subscribe).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::db::DbCtx;
use super::reply::{json_text, to_value, Reply};
use super::request::{parse_json, Request};
use super::seq::{format_seq, parse_since, rewrite_seqs};
use super::{blocking, method_not_allowed, selector};
use crate::js::MapGroup;
use crate::server::Settee;
use crate::store::DESIGN_PREFIX;
use crate::{ChangesFilter, ChangesQuery, ChangesStyle, Database, Error, Result, Since};

/// CouchDB's `changes_timeout` (60 s): the default and the largest
/// `timeout` of a waiting feed, and the interval of `heartbeat=true`.
pub const CHANGES_TIMEOUT: Duration = Duration::from_millis(60_000);

/// How long a waiting feed waits, as `couch_changes:get_changes_timeout/2`
/// and `fabric_view_changes:keep_sending_changes/8` decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    /// Interval of the newline heartbeats; with one, the feed does not end
    /// on `timeout` (it runs until the client leaves or `limit` is reached).
    heartbeat: Option<Duration>,
    /// When a feed without heartbeat ends.
    timeout: Duration,
}

/// Reads `heartbeat` and `timeout` the way `chttpd_db:parse_changes_query/1`
/// does, in query order: a heartbeat that is not an integer, or not
/// positive, is a 400; a `timeout` that is not an integer crashes
/// `list_to_integer/1`, which CouchDB answers with 500 `unknown_error`
/// `badarg`. Both are capped at `cap` (`changes_timeout`).
fn timing(req: &Request, cap: Duration) -> Result<Timing> {
    let mut heartbeat = None;
    let mut timeout = None;
    for (key, value) in &req.query {
        match key.to_ascii_lowercase().as_str() {
            "heartbeat" if value == "true" => heartbeat = Some(cap),
            "heartbeat" => match erlang_integer(value) {
                Some(ms) if ms > 0 => heartbeat = Some(Duration::from_millis(ms as u64)),
                Some(_) => {
                    return Err(Error::bad_request(
                        "The heartbeat value should be a positive integer (in milliseconds).",
                    ))
                }
                None => {
                    return Err(Error::bad_request(
                        "Invalid heartbeat value. Expecting a positive integer value (in milliseconds).",
                    ))
                }
            },
            "timeout" => {
                let ms = erlang_integer(value)
                    .ok_or_else(|| Error::couch(500, "unknown_error", "badarg"))?;
                // A negative timeout ends the wait at once.
                timeout = Some(Duration::from_millis(ms.max(0) as u64));
            }
            _ => {}
        }
    }
    Ok(Timing {
        heartbeat: heartbeat.map(|h: Duration| h.min(cap)),
        timeout: timeout.map_or(cap, |t| t.min(cap)),
    })
}

/// `list_to_integer/1`: an optional sign and at least one decimal digit
/// (saturated to the `i64` range).
fn erlang_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i64>().unwrap_or(if text.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// Which kind of feed a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Normal,
    Longpoll,
    Continuous,
}

fn feed_of(req: &Request) -> Result<Feed> {
    match req.param("feed") {
        None | Some("normal") => Ok(Feed::Normal),
        Some("longpoll") => Ok(Feed::Longpoll),
        Some("continuous" | "live" | "eventsource") => Ok(Feed::Continuous),
        Some(_) => Err(Error::bad_request(
            "Supported `feed` types: normal, continuous, live, longpoll, eventsource",
        )),
    }
}

/// Whether the request is a waiting `_changes` feed (served asynchronously).
pub(super) fn is_streaming(req: &Request) -> bool {
    req.segments.len() == 2
        && req.segments[1] == "_changes"
        && matches!(feed_of(req), Ok(Feed::Longpoll | Feed::Continuous))
}

/// The first error of a JavaScript filter during a read. The store's
/// predicates answer only pass or fail, so a throwing filter parks its
/// error here and the read is answered with it (CouchDB answers a filter
/// that throws with a 500 carrying the query server's error).
#[derive(Clone, Default)]
struct FilterFailure(Arc<Mutex<Option<Error>>>);

impl FilterFailure {
    fn record(&self, e: Error) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    /// `Err` with the recorded error, if any (and forgets it).
    fn check(&self) -> Result<()> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Parses the feed options shared by every feed kind.
fn parse_query(
    settee: &Settee,
    db: &Database,
    req: &Request,
) -> Result<(ChangesQuery, FilterFailure)> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(method_not_allowed("GET,POST,HEAD"));
    }
    timing(req, CHANGES_TIMEOUT)?;
    feed_of(req)?;
    let body = if req.method == Method::POST && !req.body.is_empty() {
        parse_json(&req.body)?
    } else {
        json!({})
    };
    let mut q = ChangesQuery::new();
    if let Some(since) = req
        .param("since")
        .map(|s| json!(s))
        .or_else(|| body.get("since").cloned())
    {
        q = q.since(parse_since(&since)?);
    }
    if let Some(limit) = req.param("limit") {
        let n: i64 = limit
            .parse()
            .map_err(|_| Error::query_parse(format!("Invalid value for integer: \"{limit}\"")))?;
        if n >= 0 {
            q = q.limit(n as usize);
        }
    }
    q = q
        .descending(req.flag("descending"))
        .include_docs(req.flag("include_docs"))
        .conflicts(req.flag("conflicts"));
    if req.param("style") == Some("all_docs") {
        q = q.style(ChangesStyle::AllDocs);
    }
    let failure = FilterFailure::default();
    if let Some(filter) = req.param("filter") {
        q = q.filter(parse_filter(settee, db, req, &body, filter, &failure)?);
    }
    Ok((q, failure))
}

fn parse_filter(
    settee: &Settee,
    db: &Database,
    req: &Request,
    body: &Value,
    filter: &str,
    failure: &FilterFailure,
) -> Result<ChangesFilter> {
    match filter {
        "_doc_ids" => {
            let ids = match req.param("doc_ids") {
                Some(text) => parse_json(text.as_bytes())?,
                None => body.get("doc_ids").cloned().unwrap_or(Value::Null),
            };
            let not_list =
                || Error::bad_request("`doc_ids` filter parameter is not a list of doc ids.");
            let Value::Array(ids) = ids else {
                return Err(not_list());
            };
            let ids = ids
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(not_list()),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ChangesFilter::DocIds(ids))
        }
        "_design" => Ok(ChangesFilter::Design),
        "_selector" => {
            let sel = body.get("selector").cloned().unwrap_or(Value::Null);
            let matcher = selector::Selector::parse(&sel)?;
            Ok(ChangesFilter::Predicate(Arc::new(move |doc: &Value| {
                matcher.matches(doc)
            })))
        }
        "_view" => {
            let view = req
                .param("view")
                .ok_or_else(|| Error::bad_request("`view` filter parameter is not provided."))?;
            let (ddoc_name, name) = split_ddoc_name(view, "view")?;
            let (ddoc, member) = design_member(db, ddoc_name, "views", name)?;
            let source = member
                .get("map")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let group = Arc::new(MapGroup {
                id: format!(
                    "_changes view {}/{name} {}",
                    ddoc_name,
                    ddoc.get("_rev").unwrap_or(&Value::Null)
                ),
                ddoc_id: format!("_design/{ddoc_name}"),
                lib: ddoc.get("views").and_then(|v| v.get("lib")).cloned(),
                maps: vec![source.to_owned()],
            });
            let pool = settee.js().clone();
            Ok(ChangesFilter::Predicate(Arc::new(move |doc: &Value| {
                // A document passes when the view's map emits at least one row for it.
                pool.map(&group, vec![doc.clone()]).is_ok_and(|out| {
                    out.first()
                        .and_then(|d| d.first())
                        .is_some_and(|rows| rows.as_ref().is_ok_and(|r| !r.is_empty()))
                })
            })))
        }
        other => {
            let (ddoc_name, name) = split_ddoc_name(other, "filter")?;
            let (ddoc, _) = design_member(db, ddoc_name, "filters", name)?;
            let ddoc_id = format!("{DESIGN_PREFIX}{ddoc_name}");
            let ddoc = Arc::new(ddoc);
            let js_req = filter_request(db, req, body);
            let pool = settee.js().clone();
            let name = name.to_owned();
            let failure = failure.clone();
            Ok(ChangesFilter::Predicate(Arc::new(
                move |doc: &Value| match pool.filter(
                    &ddoc_id,
                    ddoc.clone(),
                    &name,
                    vec![doc.clone()],
                    js_req.clone(),
                ) {
                    Ok(passed) => passed.first() == Some(&true),
                    Err(e) => {
                        failure.record(e);
                        false
                    }
                },
            )))
        }
    }
}

/// The `req` object a JavaScript filter function sees.
fn filter_request(db: &Database, req: &Request, body: &Value) -> Value {
    let query: serde_json::Map<String, Value> = req
        .query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "info": {"db_name": db.name()},
        "method": req.method.as_str(),
        "path": req.segments,
        "query": query,
        "body": if body.as_object().is_some_and(|m| m.is_empty()) { json!("undefined") } else { body.clone() },
        "userCtx": {"db": db.name(), "name": req.user.name, "roles": req.user.roles},
    })
}

fn split_ddoc_name<'a>(text: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    text.split_once('/')
        .filter(|(d, n)| !d.is_empty() && !n.is_empty())
        .ok_or_else(|| {
            Error::bad_request(format!(
                "`{what}` must be of the form `designname/{what}name`"
            ))
        })
}

/// `ddoc.section.name` of `_design/{ddoc}`: 404 `missing` for the design
/// document, 404 `missing json key: name` for the member.
fn design_member(db: &Database, ddoc: &str, section: &str, name: &str) -> Result<(Value, Value)> {
    let doc = db.get(
        &format!("{DESIGN_PREFIX}{ddoc}"),
        &crate::ReadOptions::default(),
    )?;
    let member = doc
        .get(section)
        .and_then(|s| s.get(name))
        .cloned()
        .ok_or_else(|| Error::not_found(format!("missing json key: {name}")))?;
    Ok((doc, member))
}

/// The normal feed: `GET/POST /{db}/_changes`.
pub(super) fn normal(settee: &Settee, ctx: &DbCtx, req: &Request) -> Result<Reply> {
    let (q, failure) = parse_query(settee, &ctx.db, req)?;
    let res = ctx.db.changes(&q)?;
    failure.check()?;
    let mut res = to_value(&res)?;
    rewrite_seqs(&mut res);
    Ok(Reply::json(200, res))
}

/// Longpoll and continuous feeds; `cap` is the server's `changes_timeout`.
pub(super) async fn stream(settee: Arc<Settee>, req: Request, cap: Duration) -> Result<Response> {
    let feed = feed_of(&req)?;
    let (db, (q, failure), timing) = blocking(move || {
        let name = req.segments[0].as_str();
        let db = settee.db(name)?;
        settee.check_member(name, &db, &req.user)?;
        let q = parse_query(&settee, &db, &req)?;
        Ok((db, q, timing(&req, cap)?))
    })
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(64);
    let worker = Feeder {
        db,
        q,
        tx,
        failure,
        heartbeat: timing.heartbeat,
        timeout: timing.timeout,
    };
    tokio::task::spawn_blocking(move || match feed {
        Feed::Continuous => worker.continuous(),
        _ => worker.longpoll(),
    });
    // A longpoll feed answers once: an error before anything was sent gets
    // its own status, like CouchDB's delayed response.
    let first = match feed {
        Feed::Longpoll => match rx.recv().await {
            Some(Chunk::Failed(e)) => return Err(e),
            other => other,
        },
        _ => None,
    };
    let stream = futures_util::stream::unfold((first, rx), |(first, mut rx)| async move {
        let chunk = match first {
            Some(c) => Some(c),
            None => rx.recv().await,
        };
        chunk.map(|c| (Ok::<_, std::io::Error>(c.into_bytes()), (None, rx)))
    });
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// Runs a waiting feed on a blocking thread, sending chunks to the response.
struct Feeder {
    db: Database,
    q: ChangesQuery,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    failure: FilterFailure,
    heartbeat: Option<Duration>,
    timeout: Duration,
}

/// What a feed sends to its response.
enum Chunk {
    Data(Bytes),
    /// The error that ends the feed.
    Failed(Error),
}

impl Chunk {
    fn into_bytes(self) -> Bytes {
        match self {
            Chunk::Data(b) => b,
            Chunk::Failed(e) => Bytes::from(json_text(&e.to_json())),
        }
    }
}

/// How waiting for the next commit ended.
enum Wait {
    Changed,
    TimedOut,
    Closed,
}

impl Feeder {
    fn send(&self, bytes: Vec<u8>) -> bool {
        self.tx
            .blocking_send(Chunk::Data(Bytes::from(bytes)))
            .is_ok()
    }

    /// When a feed that started now ends without changes: never with a
    /// heartbeat (as CouchDB, whose `changes_duration` is unset by default).
    fn deadline(&self) -> Option<Instant> {
        match self.heartbeat {
            Some(_) => None,
            None => Some(Instant::now() + self.timeout),
        }
    }

    /// Waits for a commit until `deadline`, sending a newline every
    /// heartbeat interval.
    fn wait(
        &self,
        sub: &crossbeam_channel::Receiver<crate::ChangeEvent>,
        deadline: Option<Instant>,
    ) -> Wait {
        loop {
            let step = match (deadline, self.heartbeat) {
                (Some(d), _) => {
                    let now = Instant::now();
                    if now >= d {
                        return Wait::TimedOut;
                    }
                    d - now
                }
                (None, Some(h)) => h,
                (None, None) => CHANGES_TIMEOUT,
            };
            match sub.recv_timeout(step) {
                Ok(_) => {
                    while sub.try_recv().is_ok() {}
                    return Wait::Changed;
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.heartbeat.is_some() && !self.send(b"\n".to_vec()) {
                        return Wait::Closed;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Wait::Closed,
            }
        }
    }

    fn read(&self, since: Since) -> Result<crate::ChangesResponse> {
        let mut q = self.q.clone();
        q.since = since;
        let res = self.db.changes(&q)?;
        self.failure.check()?;
        Ok(res)
    }

    /// Ends the feed with `e`: a line of its JSON body.
    fn error_line(&self, e: Error) {
        let _ = self.tx.blocking_send(Chunk::Failed(e));
    }

    fn longpoll(self) {
        let sub = self.db.subscribe();
        let deadline = self.deadline();
        let mut since = self.q.since;
        loop {
            let res = match self.read(since) {
                Ok(res) => res,
                Err(e) => return self.error_line(e),
            };
            if !res.results.is_empty() || self.q.descending {
                return self.finish(&res);
            }
            since = Since::Seq(res.last_seq);
            match self.wait(&sub, deadline) {
                Wait::Changed => continue,
                Wait::TimedOut => return self.finish(&res),
                Wait::Closed => return,
            }
        }
    }

    fn finish(&self, res: &crate::ChangesResponse) {
        match to_value(res) {
            Ok(mut v) => {
                rewrite_seqs(&mut v);
                self.send(json_text(&v));
            }
            Err(e) => self.error_line(e),
        }
    }

    fn continuous(self) {
        let sub = self.db.subscribe();
        let deadline = self.deadline();
        let mut since = self.q.since;
        let mut left = self.q.limit;
        let last_seq = loop {
            let mut q = self.q.clone();
            q.since = since;
            q.limit = left;
            let res = match self
                .db
                .changes(&q)
                .and_then(|r| self.failure.check().map(|()| r))
            {
                Ok(res) => res,
                Err(e) => return self.error_line(e),
            };
            for row in &res.results {
                let Ok(mut v) = to_value(row) else { continue };
                rewrite_seqs(&mut v);
                if !self.send(json_text(&v)) {
                    return;
                }
            }
            if let Some(n) = left.as_mut() {
                *n = n.saturating_sub(res.results.len());
                if *n == 0 {
                    break res.last_seq;
                }
            }
            since = Since::Seq(res.last_seq);
            match self.wait(&sub, deadline) {
                Wait::Changed => continue,
                Wait::TimedOut => break res.last_seq,
                Wait::Closed => return,
            }
        };
        self.send(json_text(
            &json!({"last_seq": format_seq(last_seq), "pending": 0}),
        ));
    }
}
