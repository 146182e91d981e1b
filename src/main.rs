//! The `settee` command line.

fn main() {
    eprintln!("settee: no commands yet");
    std::process::exit(2);
}
