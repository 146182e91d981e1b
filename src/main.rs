//! The `settee` command line.

mod cli;

// Bulk imports allocate and free many small JSON values across threads, and
// boa allocates heavily in the JavaScript workers: mimalloc measured faster
// than the system allocator for both (benches/store.rs, benches/js.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
