//! `settee serve`: the CouchDB-compatible HTTP API for a data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use settee::http::HttpConfig;
use settee::server::Settee;
use settee::{Error, Result};

/// Opens the data directory, registers the admins (hashed, persisted) and
/// serves until the process is stopped.
pub(crate) fn run(
    dir: PathBuf,
    addr: SocketAddr,
    mut admins: Vec<String>,
    admin_party: bool,
) -> Result<i32> {
    let settee = Arc::new(Settee::open(&dir)?);
    if let Ok(env) = std::env::var("SETTEE_ADMIN") {
        admins.push(env);
    }
    for spec in &admins {
        let (name, password) = spec
            .split_once(':')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| Error::bad_request("an admin is given as NAME:PASSWORD"))?;
        settee.admins().set(name, password)?;
    }
    if settee.admins().is_empty() && !admin_party {
        eprintln!(
            "settee: no server admin (use --admin NAME:PASSWORD); admin requests will be refused"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("settee: listening on http://{}", listener.local_addr()?);
        settee::http::serve(
            listener,
            settee,
            HttpConfig {
                admin_party,
                ..HttpConfig::default()
            },
        )
        .await
    })?;
    Ok(0)
}
