//! The `settee` command line.

// mimalloc measured faster than the system allocator for the JavaScript
// workers (boa allocates heavily): see benches/js.rs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("settee: no commands yet");
    std::process::exit(2);
}
