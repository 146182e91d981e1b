//! The orders generator reproduces `shared/bench/gen_orders.py` byte for byte,
//! so settee's benchmark runs on the documents CouchDB was measured on.

use std::path::PathBuf;
use std::process::Command;

use settee::bench_data::OrdersGenerator;

#[test]
fn orders_equal_the_python_generator() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_orders.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("2000")
        .output()
        .expect("python3 runs gen_orders.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap();
    let ours: String = OrdersGenerator::new(42)
        .take(2000)
        .map(|doc| serde_json::to_string(&doc).unwrap() + "\n")
        .collect();
    for (i, (p, o)) in python.lines().zip(ours.lines()).enumerate() {
        assert_eq!(o, p, "document {i}");
    }
    assert_eq!(ours.len(), python.len());
}
