//! The "orders" benchmark dataset, ported from `shared/bench/gen_orders.py`:
//! the same document shape and value distributions, from a small seeded PRNG
//! (so not byte-identical to Python's `random`).
//!
//! ```
//! let docs: Vec<_> = settee::bench_data::OrdersGenerator::new(42).take(3).collect();
//! assert_eq!(docs[0]["_id"], "doc00000000");
//! assert!(docs[2]["items"].as_array().unwrap().len() >= 1);
//! ```

use serde_json::{json, Value};

const TYPES: [&str; 10] = [
    "order", "order", "order", "order", "order", "order", "order", "customer", "customer",
    "product",
];
const STATUSES: [&str; 4] = ["new", "paid", "shipped", "cancelled"];
const REGIONS: [&str; 8] = [
    "north", "south", "east", "west", "central", "apac", "emea", "latam",
];
const WORDS: [&str; 19] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

/// A deterministic generator of order documents (`doc00000000`, `doc00000001`, ...).
#[derive(Debug, Clone)]
pub struct OrdersGenerator {
    state: u64,
    next_index: u64,
}

impl OrdersGenerator {
    /// A generator seeded with `seed` (the Python script uses 42).
    pub fn new(seed: u64) -> Self {
        OrdersGenerator {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            next_index: 0,
        }
    }

    /// splitmix64: small, fast and good enough for test data.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// The next document.
    pub fn next_doc(&mut self) -> Value {
        let i = self.next_index;
        self.next_index += 1;
        let nitems = self.range(1, 5);
        let ty = self.pick(&TYPES);
        let customer = format!("cust{:04}", self.range(0, 999));
        let total = self.range(1, 1000);
        let status = self.pick(&STATUSES);
        let region = self.pick(&REGIONS);
        let items: Vec<Value> = (0..nitems)
            .map(|_| {
                json!({
                    "sku": format!("sku{:05}", self.range(0, 19_999)),
                    "qty": self.range(1, 9),
                    "price": self.range(1, 200),
                })
            })
            .collect();
        let nwords = self.range(3, 10);
        let note: Vec<&str> = (0..nwords).map(|_| self.pick(&WORDS)).collect();
        json!({
            "_id": format!("doc{i:08}"),
            "type": ty,
            "customer": customer,
            "total": total,
            "status": status,
            "region": region,
            "ts": 1_700_000_000 + i * 37,
            "items": items,
            "note": note.join(" "),
        })
    }
}

impl Iterator for OrdersGenerator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        Some(self.next_doc())
    }
}
