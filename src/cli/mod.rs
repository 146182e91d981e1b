//! The `settee` command line: argument parsing and dispatch. Every command
//! prints JSON on stdout; errors go to stderr with a non-zero exit status.

mod bench;
mod demo;
mod docs;
mod import;
mod serve;
mod views;

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
        /// A server admin as NAME:PASSWORD (repeatable; also `$SETTEE_ADMIN`,
        /// several separated by commas). Passwords are stored hashed (PBKDF2)
        /// in the data directory.
        #[arg(long)]
        admin: Vec<String>,
        /// An INI file (CouchDB's local.ini format) whose `[admins]` section
        /// lists `name = password` (or `name = -pbkdf2:sha256-KEY,SALT,ITERATIONS`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Without any admin, treat every request as a server admin's.
        /// Without this flag the server refuses to start with no admin.
        #[arg(long)]
        admin_party: bool,
    },
    /// Check, compile and save design documents from a JSON file, a folder of
    /// JSON files, or a couchapp-style folder (`_id`, `views/<name>/map.js`, ...).
    Deploy {
        /// Database directory.
        db: PathBuf,
        /// A JSON file (a design document or an array), or a folder.
        path: PathBuf,
    },
    /// Query a view and print CouchDB's response JSON.
    Query {
        /// Database directory.
        db: PathBuf,
        /// The view, as DDOC/VIEW (`_design/` may be left out).
        view: String,
        #[command(flatten)]
        params: Box<QueryParams>,
    },
    /// Build or catch up view indexes (all design documents, or one), with
    /// progress. Interrupted runs resume from their last checkpoint.
    Reindex {
        /// Database directory.
        db: PathBuf,
        /// Only this design document (`NAME` or `_design/NAME`).
        #[arg(long)]
        ddoc: Option<String>,
        /// Delete the indexes first and build them anew.
        #[arg(long)]
        from_scratch: bool,
        /// JavaScript worker threads (default: the number of cores).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// The index-build benchmark of `shared/bench/README.md`: bulk insert,
    /// the `simple` and `heavy` view builds, query latencies; one JSON object.
    Bench {
        /// Number of documents (generated as `gen_orders.py` does, or the
        /// first N lines of `--file`).
        #[arg(long, default_value_t = 100_000)]
        docs: usize,
        /// Read the documents from this JSON-lines file instead.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Directory for the database (default: a fresh temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Timed runs per query.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Print the report on one line.
        #[arg(long)]
        json: bool,
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

/// CouchDB's view query parameters, passed through its parser (and its
/// error messages). Values are JSON where CouchDB's are (`--key '"ann"'`).
#[derive(clap::Args, Debug)]
struct QueryParams {
    /// Rows with this key (JSON).
    #[arg(long, allow_hyphen_values = true)]
    key: Option<String>,
    /// Rows with any of these keys (a JSON array).
    #[arg(long, allow_hyphen_values = true)]
    keys: Option<String>,
    /// First key (JSON).
    #[arg(long, allow_hyphen_values = true)]
    startkey: Option<String>,
    /// Last key (JSON).
    #[arg(long, allow_hyphen_values = true)]
    endkey: Option<String>,
    /// Doc id the range starts at, within `startkey`.
    #[arg(long, allow_hyphen_values = true)]
    startkey_docid: Option<String>,
    /// Doc id the range ends at, within `endkey`.
    #[arg(long, allow_hyphen_values = true)]
    endkey_docid: Option<String>,
    /// Whether `endkey` is included (true/false).
    #[arg(long)]
    inclusive_end: Option<String>,
    /// Walk the index backwards.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    descending: Option<String>,
    /// At most this many rows.
    #[arg(long, allow_hyphen_values = true)]
    limit: Option<String>,
    /// Skip this many rows (or groups).
    #[arg(long, allow_hyphen_values = true)]
    skip: Option<String>,
    /// Reduce (true/false).
    #[arg(long)]
    reduce: Option<String>,
    /// Group by the whole key.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    group: Option<String>,
    /// Group by the first N elements of array keys.
    #[arg(long, allow_hyphen_values = true)]
    group_level: Option<String>,
    /// Add each row's document.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    include_docs: Option<String>,
    /// Add `_conflicts` to included documents.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    conflicts: Option<String>,
    /// `true` (default), `false` or `lazy`.
    #[arg(long)]
    update: Option<String>,
    /// `ok` or `update_after`.
    #[arg(long)]
    stale: Option<String>,
    /// Report the sequence the index reflects.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    update_seq: Option<String>,
    /// Any parameters as a JSON object, like a POST body; the flags above override it.
    #[arg(long)]
    params: Option<String>,
}

impl QueryParams {
    /// The flags given, as CouchDB query-string pairs.
    fn pairs(&self) -> Vec<(String, String)> {
        let named = [
            ("key", &self.key),
            ("keys", &self.keys),
            ("startkey", &self.startkey),
            ("endkey", &self.endkey),
            ("startkey_docid", &self.startkey_docid),
            ("endkey_docid", &self.endkey_docid),
            ("inclusive_end", &self.inclusive_end),
            ("descending", &self.descending),
            ("limit", &self.limit),
            ("skip", &self.skip),
            ("reduce", &self.reduce),
            ("group", &self.group),
            ("group_level", &self.group_level),
            ("include_docs", &self.include_docs),
            ("conflicts", &self.conflicts),
            ("update", &self.update),
            ("stale", &self.stale),
            ("update_seq", &self.update_seq),
        ];
        named
            .into_iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| (name.to_string(), v.clone())))
            .collect()
    }
}

/// Parses the arguments, runs the command and returns the exit status.
/// Opens (creating if needed) a database for writing, with design-document
/// checks and `validate_doc_update` functions installed, so the command line
/// writes under the same rules as every other path.
fn open_validated(db: &std::path::Path) -> settee::Result<settee::Database> {
    let db = settee::Database::open_or_create(db)?;
    let pool = settee::js::JsPool::new(settee::js::JsConfig::default())?;
    settee::validation::DocValidator::install(&db, pool);
    Ok(db)
}

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
        Command::Deploy { db, path } => views::deploy(&db, &path),
        Command::Query { db, view, params } => {
            views::query(&db, &view, params.params.as_deref(), &params.pairs())
        }
        Command::Reindex {
            db,
            ddoc,
            from_scratch,
            workers,
        } => views::reindex(
            &db,
            views::ReindexOptions {
                ddoc,
                from_scratch,
                workers,
            },
        ),
        Command::Bench {
            docs,
            file,
            dir,
            runs,
            json,
        } => bench::run(bench::BenchOptions {
            docs,
            file,
            dir,
            runs: runs.max(1),
            compact: json,
        }),
        Command::Demo { dir, docs } => demo::run(dir, docs),
        Command::Serve {
            dir,
            bind,
            port,
            admin,
            config,
            admin_party,
        } => serve::run(serve::ServeOptions {
            dir,
            addr: SocketAddr::new(bind, port),
            admins: admin,
            config,
            admin_party,
        }),
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

/// A fresh directory under the system's temporary directory, named for
/// `what`, this process and the time (not created).
pub(crate) fn scratch_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("settee-{what}-{}-{nanos}", std::process::id()))
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
