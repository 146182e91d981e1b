//! Who is asking: HTTP Basic credentials, an `AuthSession` cookie, or nobody.

use axum::http::{header, HeaderMap};
use base64::Engine;

use super::HttpConfig;
use crate::server::Settee;
use crate::{Result, UserCtx};

/// The cookie carrying a session.
pub(crate) const SESSION_COOKIE: &str = "AuthSession";

/// The user of a request. Wrong Basic credentials are 401; an invalid or
/// expired cookie counts as anonymous.
pub(crate) fn authenticate(
    settee: &Settee,
    headers: &HeaderMap,
    config: &HttpConfig,
) -> Result<UserCtx> {
    if let Some((name, password)) = basic_credentials(headers) {
        return settee.authenticate(&name, &password);
    }
    if let Some(name) = session_cookie(headers).and_then(|c| settee.sessions().verify(&c)) {
        if let Some(user) = settee.user_ctx(&name)? {
            return Ok(user);
        }
    }
    if config.admin_party && settee.admins().is_empty() {
        return Ok(UserCtx::admin());
    }
    Ok(UserCtx::anonymous())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}
