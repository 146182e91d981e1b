//! `settee serve`: the CouchDB-compatible HTTP API for a data directory.
//!
//! Server admins come from three sources, applied in this order (a later
//! one replaces an admin of the same name): the `[admins]` section of a
//! `--config` file (CouchDB's `local.ini` format, `name = password` or
//! `name = -pbkdf2:sha256-KEY,SALT,ITERATIONS`), `$SETTEE_ADMIN`
//! (`NAME:PASSWORD`, several separated by commas), and `--admin
//! NAME:PASSWORD` (repeatable). Passwords are hashed (PBKDF2) and persisted
//! in the data directory, so admins of earlier runs stay admins.
//!
//! Like CouchDB 3, which aborts with "No Admin Account Found", the server
//! refuses to start when no admin exists at all, unless `--admin-party` is
//! given (then every request is a server admin's while no admin exists).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use settee::http::HttpConfig;
use settee::server::{PasswordHash, Settee};
use settee::{Error, Result};

/// An admin from one of the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Secret {
    Plain(String),
    Hashed(PasswordHash),
}

/// Options of `settee serve`.
pub(crate) struct ServeOptions {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub admins: Vec<String>,
    pub config: Option<PathBuf>,
    pub admin_party: bool,
}

/// Opens the data directory, registers the admins (hashed, persisted) and
/// serves until the process is stopped.
pub(crate) fn run(opts: ServeOptions) -> Result<i32> {
    let config = match &opts.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let mut admins = config.admins;
    if let Ok(env) = std::env::var("SETTEE_ADMIN") {
        for spec in env.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            admins.push(parse_spec(spec, "$SETTEE_ADMIN")?);
        }
    }
    for spec in &opts.admins {
        admins.push(parse_spec(spec, "--admin")?);
    }
    let mut settee = Settee::open(&opts.dir)?;
    if let Some(limit) = config.query_limit {
        settee.set_query_limit(limit);
    }
    let settee = Arc::new(settee);
    for (name, secret) in admins {
        match secret {
            Secret::Plain(password) => settee.admins().set(&name, &password)?,
            Secret::Hashed(hash) => settee.admins().set_hashed(&name, hash)?,
        }
    }
    if settee.admins().is_empty() && !opts.admin_party {
        eprintln!(
            "settee: no server admin: give --admin NAME:PASSWORD, $SETTEE_ADMIN, an [admins] \
             section in --config FILE, or --admin-party"
        );
        return Ok(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.addr).await?;
        eprintln!("settee: listening on http://{}", listener.local_addr()?);
        settee::http::serve(
            listener,
            settee,
            HttpConfig {
                admin_party: opts.admin_party,
                ..HttpConfig::default()
            },
        )
        .await
    })?;
    Ok(0)
}

/// `NAME:PASSWORD` (the password may contain `:`).
fn parse_spec(spec: &str, source: &str) -> Result<(String, Secret)> {
    let (name, password) = spec
        .split_once(':')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            Error::bad_request(format!("{source}: an admin is given as NAME:PASSWORD"))
        })?;
    Ok((name.to_owned(), Secret::Plain(password.to_owned())))
}

/// What settee reads of a CouchDB `local.ini`-style `--config` file.
#[derive(Debug, Default)]
struct ConfigFile {
    /// `[admins]`: `name = password` (plain or CouchDB's pbkdf2 hash).
    admins: Vec<(String, Secret)>,
    /// `[query_server_config] query_limit`.
    query_limit: Option<u64>,
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_request(format!("cannot read config file {}: {e}", path.display()))
    })?;
    parse_config(&text).map_err(|e| Error::bad_request(format!("{}: {e}", path.display())))
}

/// Parses the INI text: `[section]` headers, `key = value` lines, `;` and
/// `#` comments; sections settee does not use are ignored.
fn parse_config(text: &str) -> std::result::Result<ConfigFile, String> {
    let mut section = String::new();
    let mut config = ConfigFile::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if !matches!(section.as_str(), "admins" | "query_server_config") {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("line {}: expected `name = value`", n + 1))?;
        match (section.as_str(), name) {
            ("admins", _) => {
                let secret = if value.starts_with("-pbkdf2") || value.starts_with("-hashed-") {
                    Secret::Hashed(parse_hash(value).ok_or_else(|| {
                        format!(
                            "line {}: a hashed password is `-pbkdf2:sha256-KEY,SALT,ITERATIONS`",
                            n + 1
                        )
                    })?)
                } else {
                    Secret::Plain(value.to_owned())
                };
                config.admins.push((name.to_owned(), secret));
            }
            (_, "query_limit") => {
                config.query_limit = Some(value.parse().map_err(|_| {
                    format!("line {}: query_limit must be a positive integer", n + 1)
                })?);
            }
            _ => {}
        }
    }
    Ok(config)
}

/// CouchDB's hashed admin form with the SHA-256 PRF (the one settee stores).
fn parse_hash(value: &str) -> Option<PasswordHash> {
    let rest = value.strip_prefix("-pbkdf2:sha256-")?;
    let mut parts = rest.split(',');
    let (key, salt, iterations) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(PasswordHash {
        derived_key: key.to_ascii_lowercase(),
        salt: salt.to_owned(),
        iterations: iterations.parse().ok().filter(|&i| i > 0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_admins_and_query_limit() {
        let text = "; local.ini\n[chttpd]\nport = 1\n[admins]\nann = pw=with=equals\n# c\nbob = -pbkdf2:sha256-\
                    0000000000000000000000000000000000000000000000000000000000000000,abcd,10\n[log]\nx = y\n";
        let config = parse_config(text).unwrap();
        let admins = config.admins;
        assert_eq!(admins.len(), 2);
        assert_eq!(
            admins[0],
            ("ann".into(), Secret::Plain("pw=with=equals".into()))
        );
        assert!(
            matches!(&admins[1].1, Secret::Hashed(h) if h.salt == "abcd" && h.iterations == 10)
        );
        assert_eq!(config.query_limit, None);
        assert!(parse_config("[admins]\nann\n").is_err());
        assert!(parse_config("[admins]\nann = -pbkdf2-ab,cd,1\n").is_err());
        let limited = parse_config("[query_server_config]\nquery_limit = 500\n").unwrap();
        assert_eq!(limited.query_limit, Some(500));
        assert!(parse_config("[query_server_config]\nquery_limit = -1\n").is_err());
        assert!(parse_spec("nopassword", "--admin").is_err());
        assert_eq!(
            parse_spec("a:b:c", "--admin").unwrap(),
            ("a".into(), Secret::Plain("b:c".into()))
        );
    }
}
