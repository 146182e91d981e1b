//! Document endpoints: `/{db}/{docid}`, `/{db}/_design/{d}`, `/{db}/_local/{id}`,
//! and `POST /{db}`.

use axum::http::Method;
use serde_json::{json, Value};

use super::db::{is_local, DbCtx};
use super::reply::{to_value, Reply};
use super::request::{parse_json, Request};
use super::root::new_uuid;
use super::{method_not_allowed, views};
use crate::server::Settee;
use crate::store::{validate_doc_id, DESIGN_PREFIX};
use crate::view::DesignDoc;
use crate::Access;
use crate::{BulkOptions, BulkResult, Error, OpenRevs, ReadOptions, Result, Rev};

/// Routes `/{db}/{docid}[/...]`.
pub(super) fn route(settee: &Settee, ctx: &DbCtx, req: &Request) -> Result<Reply> {
    let segs = &req.segments[1..];
    let (id, rest) = match segs[0].as_str() {
        "_design" | "_local" if segs.len() >= 2 => (format!("{}/{}", segs[0], segs[1]), &segs[2..]),
        _ => (segs[0].clone(), &segs[1..]),
    };
    let reserved = segs[0].starts_with('_') && !matches!(segs[0].as_str(), "_design" | "_local");
    if reserved && !rest.is_empty() {
        if req.method == Method::GET {
            return Err(Error::not_found("missing"));
        }
        validate_doc_id(&segs[0])?;
    }
    if !rest.is_empty() {
        if id.starts_with(DESIGN_PREFIX) {
            return views::route(settee, ctx, req, &id, rest);
        }
        return attachment(ctx, req, &id);
    }
    match req.method {
        Method::GET => get(ctx, req, &id),
        Method::PUT => put(settee, ctx, req, &id),
        Method::DELETE => delete(settee, ctx, req, &id),
        Method::POST => Err(Error::bad_request("Referer header required.")),
        _ => Err(method_not_allowed("DELETE,GET,HEAD,POST,PUT")),
    }
}

/// `GET /{db}/{docid}` with CouchDB's read options.
fn get(ctx: &DbCtx, req: &Request, id: &str) -> Result<Reply> {
    if let Some(open_revs) = req.param("open_revs") {
        let which = if open_revs == "all" {
            OpenRevs::All
        } else {
            match parse_json(open_revs.as_bytes())? {
                Value::Array(revs) => {
                    OpenRevs::Revs(revs.iter().map(Rev::from_json).collect::<Result<_>>()?)
                }
                _ => return Err(Error::bad_request("Invalid rev format")),
            }
        };
        let found = ctx
            .db
            .open_revs(id, &which, req.flag("revs"), req.flag("latest"))?;
        return Reply::ok(&found);
    }
    let mut opts = ReadOptions::default()
        .revs(req.flag("revs"))
        .revs_info(req.flag("revs_info"))
        .conflicts(req.flag("conflicts"))
        .deleted_conflicts(req.flag("deleted_conflicts"))
        .latest(req.flag("latest"))
        .local_seq(req.flag("local_seq"))
        .meta(req.flag("meta"));
    if let Some(rev) = req.param("rev") {
        opts = opts.rev(Rev::parse(rev)?);
    }
    Reply::ok(&ctx.db.get(id, &opts)?)
}

/// Checks and prepares one document write: design documents need db admin
/// rights and a valid structure; `_users` documents get hashed passwords.
pub(super) fn check_write(settee: &Settee, ctx: &DbCtx, doc: &mut Value) -> Result<()> {
    let id = match doc.get("_id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Ok(()),
    };
    if ctx.name == crate::server::USERS_DB {
        settee.prepare_user_doc(&ctx.db.user().clone(), &id, doc)?;
    }
    if id.starts_with(DESIGN_PREFIX) {
        if ctx.access != Access::Admin {
            return Err(Error::Forbidden("You are not a db or server admin.".into()));
        }
        if doc.get("_deleted") != Some(&Value::Bool(true)) {
            let js = settee.js();
            DesignDoc::parse(doc)?.compile_check(|kind, source| js.compile_check(kind, source))?;
        }
    }
    Ok(())
}

/// Writes one document and shapes CouchDB's answer (201, 200 for
/// tombstones, 202 for `batch=ok`).
fn write_one(settee: &Settee, ctx: &DbCtx, req: &Request, mut doc: Value) -> Result<Reply> {
    check_write(settee, ctx, &mut doc)?;
    let deleted = doc.get("_deleted") == Some(&Value::Bool(true));
    let id = doc.get("_id").cloned().unwrap_or(Value::Null);
    let opts = if req.param("new_edits") == Some("false") {
        BulkOptions::replicated()
    } else {
        BulkOptions::default()
    };
    let replicated = !opts.new_edits;
    let mut results = ctx.db.bulk_docs(vec![doc], opts)?;
    let update = match results.pop() {
        Some(BulkResult::Error { error, .. }) => return Err(error),
        Some(BulkResult::Ok(update)) => Some(update),
        None => None,
    };
    if req.param("batch") == Some("ok") {
        return Ok(Reply::json(202, json!({"ok": true, "id": id})));
    }
    let status = if deleted { 200 } else { 201 };
    match update {
        Some(update) => Ok(Reply::json(status, to_value(&update)?)),
        // A replicated write reports nothing when it succeeds.
        None if replicated => Ok(Reply::json(201, json!({"ok": true, "id": id}))),
        None => Err(Error::Corrupt("write returned no result".into())),
    }
}

/// `PUT /{db}/{docid}`.
fn put(settee: &Settee, ctx: &DbCtx, req: &Request, id: &str) -> Result<Reply> {
    let mut doc = req.json()?;
    let Value::Object(map) = &mut doc else {
        return Err(Error::bad_request("Document must be a JSON object"));
    };
    map.insert("_id".into(), Value::String(id.to_owned()));
    if let Some(rev) = req.param("rev") {
        match map.get("_rev") {
            Some(Value::String(body_rev)) if body_rev != rev => {
                return Err(Error::bad_request(
                    "Document rev from request body and query string have different values",
                ))
            }
            _ => {
                map.insert("_rev".into(), Value::String(rev.to_owned()));
            }
        }
    }
    if is_local(id) {
        let update = ctx.db.put_local(id, doc)?;
        return Ok(Reply::json(201, to_value(&update)?));
    }
    write_one(settee, ctx, req, doc)
}

/// `POST /{db}`: a new document, with a generated id when it has none.
pub(super) fn post(settee: &Settee, ctx: &DbCtx, req: &Request) -> Result<Reply> {
    req.require_json()?;
    let mut doc = req.json()?;
    let Value::Object(map) = &mut doc else {
        return Err(Error::bad_request("Document must be a JSON object"));
    };
    if !map.contains_key("_id") {
        map.insert("_id".into(), Value::String(new_uuid()?));
    }
    write_one(settee, ctx, req, doc)
}

/// `DELETE /{db}/{docid}?rev=`.
fn delete(settee: &Settee, ctx: &DbCtx, req: &Request, id: &str) -> Result<Reply> {
    if is_local(id) {
        ctx.db.get_local(id)?;
        return Ok(Reply::json(200, to_value(&ctx.db.delete_local(id)?)?));
    }
    let Some(rev) = req.param("rev") else {
        // Without a revision nothing can be deleted: 404 if there is no
        // live document, else a conflict.
        ctx.db.get(id, &ReadOptions::default())?;
        return Err(Error::Conflict);
    };
    let rev = Rev::parse(rev)?;
    ctx.db.get(id, &ReadOptions::default())?;
    let doc = json!({"_id": id, "_rev": rev.to_string(), "_deleted": true});
    write_one(settee, ctx, req, doc)
}

/// `/{db}/{docid}/{attachment}`: settee stores no attachments.
pub(super) fn attachment(ctx: &DbCtx, req: &Request, id: &str) -> Result<Reply> {
    match req.method {
        Method::GET => {
            ctx.db.get(id, &ReadOptions::default())?;
            Err(Error::not_found("Document is missing attachment"))
        }
        _ => Err(Error::couch(
            501,
            "not_implemented",
            "settee does not store attachments",
        )),
    }
}
