//! Server-level endpoints: `/`, `/_up`, `/_all_dbs`, `/_uuids`, `/_session`.

use axum::http::{header, Method};
use serde_json::{json, Value};

use super::auth::SESSION_COOKIE;
use super::method_not_allowed;
use super::reply::Reply;
use super::request::{parse_query, Request};
use crate::server::Settee;
use crate::{Error, Result};

/// Whether `/{name}` is a server endpoint rather than a database.
pub(super) fn is_endpoint(name: &str) -> bool {
    matches!(name, "_up" | "_all_dbs" | "_uuids" | "_session")
}

/// `GET /`.
pub(super) fn welcome(req: &Request) -> Result<Reply> {
    if req.method != Method::GET {
        return Err(method_not_allowed("GET,HEAD"));
    }
    Ok(Reply::json(
        200,
        json!({
            "couchdb": "Welcome",
            "version": "3.5.0",
            "git_sha": env!("CARGO_PKG_VERSION"),
            "uuid": new_uuid()?,
            "features": ["access-ready"],
            "vendor": {"name": "settee", "version": env!("CARGO_PKG_VERSION")}
        }),
    ))
}

pub(super) fn route(settee: &Settee, req: &Request, name: &str) -> Result<Reply> {
    match (name, &req.method) {
        ("_up", &Method::GET) => Ok(Reply::json(200, json!({"status": "ok", "seeds": {}}))),
        ("_up", _) => Err(method_not_allowed("GET,HEAD")),
        ("_all_dbs", &Method::GET) => {
            require_server_admin(req)?;
            Reply::ok(&settee.all_dbs()?)
        }
        ("_all_dbs", _) => Err(method_not_allowed("GET,HEAD")),
        ("_uuids", &Method::GET) => uuids(req),
        ("_uuids", _) => Err(method_not_allowed("GET")),
        ("_session", _) => session(settee, req),
        _ => Err(Error::not_found("missing")),
    }
}

/// 401 "You are not a server admin." unless the user is one.
pub(super) fn require_server_admin(req: &Request) -> Result<()> {
    if req.user.is_admin() {
        Ok(())
    } else {
        Err(Error::Unauthorized("You are not a server admin.".into()))
    }
}

/// A random 128-bit id in lowercase hex, like CouchDB's default uuids.
pub(super) fn new_uuid() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::couch(500, "error", e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn uuids(req: &Request) -> Result<Reply> {
    let count = match req.param("count") {
        None => 1,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| Error::bad_request("Invalid `count` parameter"))?,
    };
    if count > 1000 {
        return Err(Error::couch(
            400,
            "bad_request",
            "count parameter too large",
        ));
    }
    let uuids = (0..count).map(|_| new_uuid()).collect::<Result<Vec<_>>>()?;
    Ok(Reply::json(200, json!({ "uuids": uuids })))
}

fn session(settee: &Settee, req: &Request) -> Result<Reply> {
    match req.method {
        Method::GET => {
            let mut info = json!({"authentication_handlers": ["cookie", "default"]});
            if req.user.name.is_some() {
                let how = if req.header(header::AUTHORIZATION).is_some() {
                    "default"
                } else {
                    "cookie"
                };
                info["authenticated"] = json!(how);
            }
            Ok(Reply::json(
                200,
                json!({"ok": true, "userCtx": {"name": req.user.name, "roles": req.user.roles}, "info": info}),
            ))
        }
        Method::POST => {
            let (name, password) = login_fields(req)?;
            let user = settee.authenticate(&name, &password)?;
            let cookie = settee.sessions().issue(&name);
            Ok(Reply::json(
                200,
                json!({"ok": true, "name": user.name, "roles": user.roles}),
            )
            .header(
                header::SET_COOKIE,
                format!("{SESSION_COOKIE}={cookie}; Version=1; Path=/; HttpOnly"),
            ))
        }
        Method::DELETE => Ok(Reply::json(200, json!({"ok": true})).header(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Version=1; Path=/; HttpOnly; Max-Age=0"),
        )),
        _ => Err(method_not_allowed("GET,HEAD,POST,DELETE")),
    }
}

/// `name` and `password` from a JSON or form body.
fn login_fields(req: &Request) -> Result<(String, String)> {
    let ctype = req.header(header::CONTENT_TYPE).unwrap_or("");
    let fields: Vec<(String, String)> = if ctype.starts_with("application/x-www-form-urlencoded") {
        parse_query(
            std::str::from_utf8(&req.body).map_err(|_| Error::bad_request("invalid form"))?,
        )?
    } else {
        match req.json()? {
            Value::Object(map) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect(),
            _ => return Err(Error::bad_request("Request body must be a JSON object")),
        }
    };
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    match (get("name"), get("password")) {
        (Some(n), Some(p)) => Ok((n, p)),
        _ => Err(Error::Unauthorized("Name or password is incorrect.".into())),
    }
}
