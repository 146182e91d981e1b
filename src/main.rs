//! The `settee` command line.

mod cli;

// Bulk imports allocate and free many small JSON values across threads,
// where mimalloc is much faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
