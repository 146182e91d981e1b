//! Design document sub-resources: `/{db}/_design/{d}/_view/{v}`,
//! `.../_view/{v}/queries` and `.../_info`.

use serde_json::Value;

use super::db::DbCtx;
use super::reply::Reply;
use super::request::Request;
use crate::{Error, ReadOptions, Result};

/// Routes `/{db}/_design/{d}/...`.
pub(super) fn route(ctx: &DbCtx, req: &Request, ddoc_id: &str, rest: &[String]) -> Result<Reply> {
    let ddoc = ctx.db.get(ddoc_id, &ReadOptions::default())?;
    match rest.first().map(String::as_str) {
        Some("_view") if rest.len() >= 2 => {
            let name = &rest[1];
            if ddoc
                .get("views")
                .and_then(|v| v.get(name.as_str()))
                .is_none()
            {
                return Err(Error::not_found("missing_named_view"));
            }
            let _ = (req, Value::Null);
            Err(Error::couch(
                501,
                "not_implemented",
                "the view engine is not available in this build",
            ))
        }
        _ => Err(Error::not_found("missing")),
    }
}
