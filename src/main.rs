//! The `settee` command line.

mod cli;

// Bulk imports allocate and free many small JSON values across threads, and
// boa allocates heavily in the JavaScript workers: mimalloc measured faster
// than the system allocator for both (benches/store.rs, benches/js.rs).
// Wrapped to enforce the JavaScript workers' per-call memory budget.
#[global_allocator]
static GLOBAL: settee::js::JsMemoryGuard<mimalloc::MiMalloc> =
    settee::js::JsMemoryGuard(mimalloc::MiMalloc);

fn main() {
    // Logs go to stderr, filtered by `RUST_LOG` (warnings and errors by
    // default; `RUST_LOG=settee=info` adds JavaScript `log()` output).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    std::process::exit(cli::run());
}
