//! The `settee` command line: argument parsing and dispatch. Every command
//! prints JSON on stdout; errors go to stderr with a non-zero exit status.

mod demo;
mod docs;
mod import;
mod serve;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

/// An embedded, CouchDB-compatible document store.
#[derive(Parser, Debug)]
#[command(name = "settee", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Bulk-load a JSON-lines file (one document a line; `-` for stdin).
    Import {
        /// Database directory (created if missing).
        db: PathBuf,
        /// Input file, or `-` for stdin.
        file: PathBuf,
        /// Documents per transaction.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Print a document.
    Get {
        /// Database directory.
        db: PathBuf,
        /// Document id.
        id: String,
    },
    /// Create or update a document (an object), or several (an array), from a file or `-`.
    Put {
        /// Database directory (created if missing).
        db: PathBuf,
        /// JSON file, or `-` for stdin.
        file: PathBuf,
    },
    /// Print the changes feed.
    Changes {
        /// Database directory.
        db: PathBuf,
        /// Start after this seq.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Keep printing new changes as they commit, one JSON line each.
        #[arg(long)]
        follow: bool,
    },
    /// Print database information.
    Info {
        /// Database directory.
        db: PathBuf,
    },
    /// Compact the database.
    Compact {
        /// Database directory.
        db: PathBuf,
    },
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
        /// A server admin as NAME:PASSWORD (repeatable; also `$SETTEE_ADMIN`).
        /// Passwords are stored hashed (PBKDF2) in the data directory.
        #[arg(long)]
        admin: Vec<String>,
        /// Without any admin, treat every request as a server admin's.
        #[arg(long)]
        admin_party: bool,
    },
    /// Generate an orders dataset, import it and show the result.
    Demo {
        /// Directory for the database (default: a fresh temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of documents to generate.
        #[arg(long, default_value_t = 100_000)]
        docs: u64,
    },
}

/// Parses the arguments, runs the command and returns the exit status.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import { db, file, batch } => import::run(&db, &file, batch.max(1)),
        Command::Get { db, id } => docs::get(&db, &id),
        Command::Put { db, file } => docs::put(&db, &file),
        Command::Changes {
            db,
            since,
            limit,
            follow,
        } => docs::changes(&db, since, limit, follow),
        Command::Info { db } => docs::info(&db),
        Command::Compact { db } => docs::compact(&db),
        Command::Demo { dir, docs } => demo::run(dir, docs),
        Command::Serve {
            dir,
            bind,
            port,
            admin,
            admin_party,
        } => serve::run(dir, SocketAddr::new(bind, port), admin, admin_party),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("settee: {}: {}", e.name(), e.reason());
            1
        }
    }
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> settee::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// Prints a value as one JSON line on stdout and flushes (for streams).
pub(crate) fn print_json_line(value: &impl Serialize) -> settee::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Reads a whole file, or stdin for `-`.
pub(crate) fn read_input(path: &std::path::Path) -> settee::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)?;
        Ok(buf)
    } else {
        Ok(std::fs::read(path)?)
    }
}
