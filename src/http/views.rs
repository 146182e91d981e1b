//! Design document sub-resources: `/{db}/_design/{d}/_view/{v}`,
//! `.../_view/{v}/queries` and `.../_info`.

use axum::http::Method;
use serde_json::{json, Value};

use super::db::DbCtx;
use super::method_not_allowed;
use super::reply::{to_value, Reply};
use super::request::Request;
use super::seq::rewrite_seqs;
use crate::server::Settee;
use crate::view::ViewQuery;
use crate::{Error, Result};

/// Routes `/{db}/_design/{d}/...`.
pub(super) fn route(
    settee: &Settee,
    ctx: &DbCtx,
    req: &Request,
    ddoc_id: &str,
    rest: &[String],
) -> Result<Reply> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match rest.as_slice() {
        ["_view", view] => query(settee, ctx, req, ddoc_id, view),
        ["_view", view, "queries"] => queries(settee, ctx, req, ddoc_id, view),
        ["_info"] => info(settee, ctx, req, ddoc_id),
        // Anything else is an attachment path, as in CouchDB's
        // `bad_action_req/3` (`GET` of an existing design doc: 404
        // "Document is missing attachment").
        _ => super::docs::attachment(ctx, req, ddoc_id),
    }
}

fn query_pairs(req: &Request) -> impl Iterator<Item = (&str, &str)> {
    req.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The options of a view request: query string, then a POST body's members.
fn view_query(req: &Request) -> Result<ViewQuery> {
    let mut q = ViewQuery::from_query_pairs(query_pairs(req))?;
    if req.method == Method::POST {
        let body = req.json()?;
        if !body.is_object() {
            return Err(Error::bad_request("Request body must be a JSON object"));
        }
        if body.get("keys").is_some_and(|k| !k.is_array()) {
            return Err(Error::bad_request("`keys` member must be an array."));
        }
        // The text keeps the exact value of integers beyond serde_json's range.
        q.apply_body_text(&body, std::str::from_utf8(&req.body).ok())?;
    }
    Ok(q)
}

/// `GET/POST /{db}/_design/{d}/_view/{v}`.
fn query(settee: &Settee, ctx: &DbCtx, req: &Request, ddoc_id: &str, view: &str) -> Result<Reply> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(method_not_allowed("GET,POST,HEAD"));
    }
    let q = view_query(req)?;
    let mut res = to_value(&settee.views(&ctx.db).query(ddoc_id, view, &q)?)?;
    rewrite_seqs(&mut res);
    Ok(Reply::json(200, res))
}

/// `POST /{db}/_design/{d}/_view/{v}/queries`: several queries, one result each.
fn queries(
    settee: &Settee,
    ctx: &DbCtx,
    req: &Request,
    ddoc_id: &str,
    view: &str,
) -> Result<Reply> {
    if req.method != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    let body = req.json_object("Request body must be a JSON object")?;
    let Some(Value::Array(list)) = body.get("queries") else {
        return Err(Error::bad_request("`queries` member must be an array."));
    };
    let mut queries = Vec::with_capacity(list.len());
    for item in list {
        let mut q = ViewQuery::from_query_pairs(query_pairs(req))?;
        q.apply_body(item)?;
        queries.push(q);
    }
    let mut results = Vec::with_capacity(queries.len());
    for response in settee.views(&ctx.db).query_many(ddoc_id, view, &queries)? {
        let mut res = to_value(&response)?;
        rewrite_seqs(&mut res);
        results.push(res);
    }
    Ok(Reply::json(200, json!({ "results": results })))
}

/// `GET /{db}/_design/{d}/_info`: the fields of CouchDB 3.5's
/// `fabric_group_info` (one shard): the index state, `updates_pending`
/// (documents written since the index's checkpoint) and the collator
/// versions of the index (settee's collator build, not libicu's).
fn info(settee: &Settee, ctx: &DbCtx, req: &Request, ddoc_id: &str) -> Result<Reply> {
    if req.method != Method::GET {
        return Err(method_not_allowed("GET"));
    }
    let info = settee.views(&ctx.db).info(ddoc_id)?;
    let pending = ctx
        .db
        .update_seq()?
        .saturating_sub(info.view_index.update_seq);
    let mut view_index = to_value(&info.view_index)?;
    view_index["updates_pending"] =
        json!({"minimum": pending, "preferred": pending, "total": pending});
    view_index["collator_versions"] = json!([crate::collate::collator_version()]);
    Ok(Reply::json(
        200,
        json!({"name": info.name, "view_index": view_index}),
    ))
}
