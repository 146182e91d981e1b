//! Fuzz target: for any two JSON values, the byte encodings order exactly as
//! the comparisons do, under both collations, and comparison is antisymmetric.
//!
//! Input: two JSON texts separated by a 0xFF byte; text that is not JSON is
//! used as a JSON string (lossy UTF-8), so arbitrary bytes exercise ICU too.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run collate_consistency -s none -- -max_total_time=30`

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use settee::collate::Collation;

fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fuzz_target!(|data: &[u8]| {
    let (left, right) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => data.split_at(data.len() / 2),
    };
    let (a, b) = (value(left), value(right));
    for collation in [Collation::Unicode, Collation::Raw] {
        let order = collation.compare(&a, &b);
        assert_eq!(order, collation.compare(&b, &a).reverse(), "antisymmetry");
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        collation.encode(&a, &mut ea);
        collation.encode(&b, &mut eb);
        assert_eq!(ea.cmp(&eb), order, "{collation:?}: {a} vs {b}");
    }
});
