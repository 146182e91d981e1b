//! The `settee` command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use settee::http::HttpConfig;
use settee::server::Settee;

#[derive(Parser)]
#[command(
    name = "settee",
    version,
    about = "A CouchDB-compatible document store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve CouchDB's HTTP API for the databases under a data directory.
    Serve {
        /// The data directory (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Port to listen on.
        #[arg(long, default_value_t = 5984)]
        port: u16,
        /// A server admin as NAME:PASSWORD (repeatable; also from $SETTEE_ADMIN).
        /// Passwords are stored hashed in the data directory.
        #[arg(long)]
        admin: Vec<String>,
        /// Without any admin, treat every request as an admin's.
        #[arg(long)]
        admin_party: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            dir,
            bind,
            port,
            admin,
            admin_party,
        } => serve(dir, SocketAddr::new(bind, port), admin, admin_party),
    };
    if let Err(e) = result {
        eprintln!("settee: {e}");
        std::process::exit(1);
    }
}

fn serve(
    dir: PathBuf,
    addr: SocketAddr,
    mut admins: Vec<String>,
    admin_party: bool,
) -> settee::Result<()> {
    let settee = Arc::new(Settee::open(&dir)?);
    if let Ok(env) = std::env::var("SETTEE_ADMIN") {
        admins.push(env);
    }
    for spec in &admins {
        let (name, password) = spec
            .split_once(':')
            .ok_or_else(|| settee::Error::bad_request("--admin takes NAME:PASSWORD"))?;
        settee.admins().set(name, password)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("settee: listening on http://{}", listener.local_addr()?);
        settee::http::serve(listener, settee, HttpConfig { admin_party }).await
    })
}
