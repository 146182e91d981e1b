//! Database-level endpoints: `/{db}` and `/{db}/_*` (except documents and `_changes`).

use axum::http::Method;
use serde_json::{json, Map, Value};

use super::reply::{to_value, Reply};
use super::request::Request;
use super::root::require_server_admin;
use super::seq::rewrite_seqs;
use super::{changes, docs, method_not_allowed};
use crate::server::{Settee, USERS_DB};
use crate::store::LOCAL_PREFIX;
use crate::view::ViewQuery;
use crate::Access;
use crate::{
    AllDocsQuery, BulkOptions, BulkResult, Database, Error, OpenRev, OpenRevs, Result, Rev,
};

/// An open database as one request sees it: handle (writing as the
/// request's user), name and the user's access level.
pub(super) struct DbCtx {
    pub db: Database,
    pub name: String,
    pub access: Access,
}

/// Routes `/{db}...`.
pub(super) fn route(settee: &Settee, req: &Request) -> Result<Reply> {
    let name = req.segments[0].as_str();
    if req.segments.len() == 1 {
        return database(settee, req, name);
    }
    let db = settee.db(name)?;
    let access = match users_doc_id(req) {
        Some(id) if name == USERS_DB => {
            settee.check_users_doc(&req.user, id, req.method != Method::GET)?
        }
        _ => settee.check_member(name, &db, &req.user)?,
    };
    let ctx = DbCtx {
        db: db.as_authorized_user(req.user.clone()),
        name: name.to_owned(),
        access,
    };
    let second = req.segments[1].as_str();
    match second {
        "_temp_view" => Err(Error::couch(
            410,
            "gone",
            "Temporary views are not supported in CouchDB",
        )),
        "_all_docs" => all_docs(&ctx, req, AllDocsScope::All),
        "_design_docs" => all_docs(&ctx, req, AllDocsScope::Design),
        "_local_docs" => local_docs(&ctx, req),
        "_bulk_docs" => bulk_docs(settee, &ctx, req),
        "_bulk_get" => bulk_get(&ctx, req),
        "_changes" => changes::normal(settee, &ctx, req),
        "_security" => security(settee, &ctx, req),
        "_revs_diff" => revs_diff(&ctx, req, false),
        "_missing_revs" => revs_diff(&ctx, req, true),
        "_revs_limit" => revs_limit(&ctx, req),
        "_compact" => admin_post(&ctx, req, |db| db.compact()),
        "_view_cleanup" => admin_post(&ctx, req, |db| settee.views(db).cleanup().map(drop)),
        "_ensure_full_commit" => admin_post(&ctx, req, |_| Ok(())).map(|mut r| {
            // Every commit is durable already; CouchDB answers 201.
            r.status = 201;
            r.body["instance_start_time"] = json!("0");
            r
        }),
        _ => docs::route(settee, &ctx, req),
    }
}

/// The document id of `/_users/{docid}` requests (no sub-resources).
fn users_doc_id(req: &Request) -> Option<&str> {
    match req.segments.as_slice() {
        [_, id] if !id.starts_with('_') => Some(id.as_str()),
        _ => None,
    }
}

/// `PUT/GET/DELETE/POST /{db}`.
fn database(settee: &Settee, req: &Request, name: &str) -> Result<Reply> {
    match req.method {
        Method::PUT => {
            require_server_admin(req)?;
            for p in ["q", "n"] {
                if let Some(v) = req.param(p) {
                    if !v.parse::<u32>().is_ok_and(|n| n > 0) {
                        return Err(Error::bad_request(format!(
                            "The `{p}` value should be a positive integer."
                        )));
                    }
                }
            }
            settee.create_db(name)?;
            Ok(Reply::json(201, json!({"ok": true})))
        }
        Method::DELETE => {
            require_server_admin(req)?;
            settee.delete_db(name)?;
            Ok(Reply::json(200, json!({"ok": true})))
        }
        Method::GET => {
            let db = settee.db(name)?;
            settee.check_member(name, &db, &req.user)?;
            let mut info = to_value(&db.info()?)?;
            info["db_name"] = json!(name);
            info["purge_seq"] = json!("0-s");
            info["cluster"] = json!({"q": 1, "n": 1, "w": 1, "r": 1});
            rewrite_seqs(&mut info);
            Ok(Reply::json(200, info))
        }
        Method::POST => {
            let db = settee.db(name)?;
            let access = settee.check_member(name, &db, &req.user)?;
            let ctx = DbCtx {
                db: db.as_authorized_user(req.user.clone()),
                name: name.to_owned(),
                access,
            };
            docs::post(settee, &ctx, req)
        }
        _ => Err(method_not_allowed("DELETE,GET,HEAD,POST,PUT")),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum AllDocsScope {
    All,
    Design,
}

/// `_all_docs` and `_design_docs`, GET or POST with `keys`.
fn all_docs(ctx: &DbCtx, req: &Request, scope: AllDocsScope) -> Result<Reply> {
    let q = match req.method {
        Method::GET => {
            ViewQuery::from_query_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?
        }
        Method::POST => {
            let body = req.json()?;
            let Value::Object(map) = &body else {
                return Err(Error::bad_request("Request body must be a JSON object"));
            };
            if map.get("keys").is_some_and(|k| !k.is_array()) {
                return Err(Error::bad_request("`keys` body member must be an array."));
            }
            let mut q = ViewQuery::from_query_pairs(
                req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            q.apply_body(&body)?;
            q
        }
        _ => return Err(method_not_allowed("GET,HEAD,POST")),
    };
    q.resolve(false)?;
    let query = to_all_docs_query(&q)?.design_only(scope == AllDocsScope::Design);
    let mut res = to_value(&ctx.db.all_docs(&query)?)?;
    rewrite_seqs(&mut res);
    Ok(Reply::json(200, res))
}

fn key_text(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Ok(other.to_string()),
    }
}

fn to_all_docs_query(q: &ViewQuery) -> Result<AllDocsQuery> {
    let mut out = AllDocsQuery::new()
        .descending(q.descending)
        .skip(usize::try_from(q.skip).unwrap_or(usize::MAX))
        .inclusive_end(q.inclusive_end.unwrap_or(true))
        .include_docs(q.include_docs)
        .conflicts(q.conflicts.unwrap_or(false))
        .update_seq(q.update_seq);
    if let Some(limit) = q.limit {
        out = out.limit(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    if let Some(keys) = &q.keys {
        out = out.keys(keys.clone());
    }
    if let Some(k) = &q.start_key {
        out = out.start_key(key_text(k)?);
    }
    if let Some(k) = &q.end_key {
        out = out.end_key(key_text(k)?);
    }
    Ok(out)
}

/// `GET /{db}/_local_docs`.
fn local_docs(ctx: &DbCtx, req: &Request) -> Result<Reply> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(method_not_allowed("GET,HEAD,POST"));
    }
    let q = ViewQuery::from_query_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let mut rows = ctx.db.local_docs(q.descending, q.include_docs)?;
    let skip = usize::try_from(q.skip).unwrap_or(usize::MAX);
    rows = rows.into_iter().skip(skip).collect();
    if let Some(limit) = q.limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(Reply::json(
        200,
        json!({"total_rows": null, "offset": null, "rows": rows}),
    ))
}

/// `POST /{db}/_bulk_docs`.
fn bulk_docs(settee: &Settee, ctx: &DbCtx, req: &Request) -> Result<Reply> {
    if req.method != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    req.require_json()?;
    let body = req.json_object("Request body must be a JSON object")?;
    let docs = match body.get("docs") {
        None => {
            return Err(Error::bad_request(
                "POST body must include `docs` parameter.",
            ))
        }
        Some(Value::Array(docs)) => docs.clone(),
        Some(_) => return Err(Error::bad_request("`docs` parameter must be an array.")),
    };
    let new_edits = match body.get("new_edits") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Error::bad_request(
                "`new_edits` parameter must be a boolean.",
            ))
        }
    };
    if body.get("all_or_nothing") == Some(&Value::Bool(true)) {
        let rows: Vec<Value> = docs
            .iter()
            .map(|d| {
                json!({"id": d.get("_id").cloned().unwrap_or(Value::Null), "rev": "0-",
                       "error": "not_implemented", "reason": "all_or_nothing is not supported"})
            })
            .collect();
        return Ok(Reply::json(417, Value::Array(rows)));
    }
    let mut docs = docs;
    for doc in &mut docs {
        if !doc.is_object() {
            return Err(Error::bad_request("Document must be a JSON object"));
        }
    }
    // Design documents need db admin rights; refused ones get a per-doc error.
    let mut refused: Vec<Option<Error>> = Vec::with_capacity(docs.len());
    for doc in &mut docs {
        let refusal = match docs::check_write(settee, ctx, doc) {
            Ok(()) if new_edits && edits_missing_doc(&ctx.db, doc)? => Some(Error::Conflict),
            Ok(()) => None,
            Err(e) => Some(e),
        };
        refused.push(refusal);
    }
    let allowed: Vec<Value> = docs
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(d, _)| d.clone())
        .collect();
    let opts = if new_edits {
        BulkOptions::default()
    } else {
        BulkOptions::replicated()
    };
    let written = ctx.db.bulk_docs(allowed, opts)?;
    let rows: Vec<BulkResult> = if new_edits {
        // One result per document, in request order.
        let mut written = written.into_iter();
        docs.iter()
            .zip(refused)
            .filter_map(|(doc, refusal)| match refusal {
                Some(error) => Some(BulkResult::refusal(doc, error, opts)),
                None => written.next(),
            })
            .collect()
    } else {
        // Only the refusals, in document id order like the store's own
        // (for a repeated id, the ones refused here come first).
        let mut rows: Vec<BulkResult> = docs
            .iter()
            .zip(refused)
            .filter_map(|(doc, refusal)| Some(BulkResult::refusal(doc, refusal?, opts)))
            .chain(written)
            .collect();
        rows.sort_by(|a, b| a.id().cmp(b.id()));
        rows
    };
    Ok(Reply::json(201, to_value(&rows)?))
}

/// Whether `doc` names a parent `_rev` of a document that does not exist:
/// a conflict in `_bulk_docs` (a single `PUT` grafts it instead).
fn edits_missing_doc(db: &Database, doc: &Value) -> Result<bool> {
    let (Some(Value::String(id)), Some(_)) = (doc.get("_id"), doc.get("_rev")) else {
        return Ok(false);
    };
    if is_local(id) {
        return Ok(false);
    }
    match db.open_revs(id, &OpenRevs::All, false, false) {
        Ok(_) => Ok(false),
        Err(Error::NotFound(_)) => Ok(true),
        Err(e) => Err(e),
    }
}

/// `POST /{db}/_bulk_get`.
fn bulk_get(ctx: &DbCtx, req: &Request) -> Result<Reply> {
    if req.method != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    let body = req.json_object("Request body must be a JSON object")?;
    let Some(Value::Array(items)) = body.get("docs") else {
        return Err(Error::bad_request("Missing JSON list of 'docs'."));
    };
    let revs = req.flag("revs");
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let id = item.get("id").and_then(Value::as_str);
        let rev = item.get("rev");
        let docs = match id {
            None => vec![bulk_get_error(
                &Value::Null,
                &Value::Null,
                &Error::bad_request("document id missed"),
            )],
            Some(id) => bulk_get_one(ctx, id, rev, revs)?,
        };
        results.push(json!({"id": id, "docs": docs}));
    }
    Ok(Reply::json(200, json!({ "results": results })))
}

fn bulk_get_one(ctx: &DbCtx, id: &str, rev: Option<&Value>, revs: bool) -> Result<Vec<Value>> {
    let rev_json = rev.cloned().unwrap_or_else(|| json!("undefined"));
    let which = match rev {
        None => OpenRevs::Leaves,
        Some(r) => match Rev::from_json(r) {
            Ok(r) => OpenRevs::Revs(vec![r]),
            Err(e) => return Ok(vec![bulk_get_error(&json!(id), &rev_json, &e)]),
        },
    };
    let found = match ctx.db.open_revs(id, &which, revs, false) {
        Ok(found) => found,
        Err(e @ Error::NotFound(_)) => return Ok(vec![bulk_get_error(&json!(id), &rev_json, &e)]),
        Err(e) => return Err(e),
    };
    if found.is_empty() {
        return Ok(vec![bulk_get_error(
            &json!(id),
            &rev_json,
            &Error::not_found("missing"),
        )]);
    }
    found
        .into_iter()
        .map(|r| match r {
            OpenRev::Ok(doc) => Ok(json!({ "ok": doc })),
            OpenRev::Missing(rev) => Ok(bulk_get_error(
                &json!(id),
                &json!(rev),
                &Error::not_found("missing"),
            )),
        })
        .collect()
}

fn bulk_get_error(id: &Value, rev: &Value, e: &Error) -> Value {
    json!({"error": {"id": id, "rev": rev, "error": e.name(), "reason": e.reason()}})
}

/// `GET/PUT /{db}/_security`.
fn security(settee: &Settee, ctx: &DbCtx, req: &Request) -> Result<Reply> {
    match req.method {
        Method::GET => Ok(Reply::json(
            200,
            settee.security(&ctx.db)?.to_json().clone(),
        )),
        Method::PUT => {
            let body = req.json()?;
            settee.set_security(&ctx.db, &req.user, &body)?;
            Ok(Reply::json(200, json!({"ok": true})))
        }
        _ => Err(method_not_allowed("GET,PUT")),
    }
}

/// `POST /{db}/_revs_diff` and `_missing_revs`.
fn revs_diff(ctx: &DbCtx, req: &Request, missing_revs: bool) -> Result<Reply> {
    if req.method != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    let body = req.json_object("Request body must be a JSON object")?;
    let mut asked = Vec::new();
    for (id, revs) in body.as_object().into_iter().flatten() {
        let Value::Array(revs) = revs else {
            return Err(Error::bad_request("Expected a list of revisions"));
        };
        let revs = revs
            .iter()
            .map(Rev::from_json)
            .collect::<Result<Vec<_>>>()?;
        asked.push((id.clone(), revs));
    }
    let mut out = Map::new();
    for (id, diff) in ctx.db.revs_diff(&asked)? {
        let entry = if missing_revs {
            json!(diff.missing)
        } else {
            to_value(&diff)?
        };
        out.insert(id, entry);
    }
    if missing_revs {
        return Ok(Reply::json(200, json!({"missing_revs": out})));
    }
    Ok(Reply::json(200, Value::Object(out)))
}

/// `GET/PUT /{db}/_revs_limit`.
fn revs_limit(ctx: &DbCtx, req: &Request) -> Result<Reply> {
    match req.method {
        Method::GET => Ok(Reply::json(200, json!(ctx.db.revs_limit()?))),
        Method::PUT => {
            require_db_admin(ctx)?;
            let limit = match req.json()? {
                Value::Number(n) => n.as_u64().filter(|n| *n > 0),
                _ => None,
            }
            .ok_or_else(|| Error::bad_request("revs_limit must be a positive integer"))?;
            ctx.db.set_revs_limit(limit)?;
            Ok(Reply::json(200, json!({"ok": true})))
        }
        _ => Err(method_not_allowed("GET,PUT")),
    }
}

/// 401 unless the user is a db admin.
pub(super) fn require_db_admin(ctx: &DbCtx) -> Result<()> {
    if ctx.access == Access::Admin {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "You are not a db or server admin.".into(),
        ))
    }
}

fn admin_post(
    ctx: &DbCtx,
    req: &Request,
    f: impl FnOnce(&Database) -> Result<()>,
) -> Result<Reply> {
    if req.method != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    require_db_admin(ctx)?;
    req.require_json()?;
    f(&ctx.db)?;
    Ok(Reply::json(202, json!({"ok": true})))
}

/// Whether `id` names a `_local` document.
pub(super) fn is_local(id: &str) -> bool {
    id.starts_with(LOCAL_PREFIX)
}
