//! Database names: CouchDB's rule, and their mapping to directory names.

use crate::{Error, Result};

/// The users database.
pub const USERS_DB: &str = "_users";

/// System databases allowed despite starting with `_`.
const SYSTEM_DBS: [&str; 3] = ["_users", "_replicator", "_global_changes"];

/// Checks a database name against CouchDB's rule
/// `^[a-z][a-z0-9_$()+/-]*$` (system databases excepted).
///
/// ```
/// assert!(settee::server::validate_db_name("a/b$c").is_ok());
/// let e = settee::server::validate_db_name("1g").unwrap_err();
/// assert_eq!(e.status(), 400);
/// ```
pub fn validate_db_name(name: &str) -> Result<()> {
    if SYSTEM_DBS.contains(&name) {
        return Ok(());
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_$()+-/".contains(c));
    if first_ok && rest_ok && name.len() <= 238 {
        return Ok(());
    }
    Err(Error::couch(
        400,
        "illegal_database_name",
        format!(
            "Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of the \
             characters _, $, (, ), +, -, and / are allowed. Must begin with a letter."
        ),
    ))
}

/// The directory holding database `name`: characters other than
/// `[a-z0-9_-]` are escaped as `%XX`, so every valid name maps to one plain
/// file name.
pub(crate) fn encode_dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The database name of a directory made by [`encode_dir_name`].
pub(crate) fn decode_dir_name(dir: &str) -> Option<String> {
    let bytes = dir.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    validate_db_name(&name).ok().map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        for name in ["a", "a/b", "x$()+-_9", "_users"] {
            assert_eq!(
                decode_dir_name(&encode_dir_name(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(decode_dir_name("%zz"), None);
    }

    #[test]
    fn couchdb_name_rule() {
        for bad in ["G_BAD", "1g", "g space", "g.dot", "_underscore", ""] {
            assert_eq!(
                validate_db_name(bad).unwrap_err().name(),
                "illegal_database_name"
            );
        }
    }
}
