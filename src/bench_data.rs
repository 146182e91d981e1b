//! The "orders" benchmark dataset, ported from `shared/bench/gen_orders.py`:
//! CPython's Mersenne Twister and its `randint`/`randrange`/`choice` are
//! reproduced exactly, so seed 42 yields byte-for-byte the documents the
//! CouchDB figures in `shared/bench/README.md` were measured on.
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
///
/// ```
/// use settee::bench_data::OrdersGenerator;
/// use settee::{BulkOptions, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("orders")).unwrap();
/// db.bulk_docs(OrdersGenerator::new(42).take(100).collect(), BulkOptions::default()).unwrap();
/// assert_eq!(db.info().unwrap().doc_count, 100);
/// ```
#[derive(Debug, Clone)]
pub struct OrdersGenerator {
    rng: PythonRandom,
    next_index: u64,
}

impl OrdersGenerator {
    /// A generator seeded with `seed`; seed 42 gives exactly the documents of
    /// `python3 gen_orders.py`.
    ///
    /// ```
    /// use settee::bench_data::OrdersGenerator;
    /// let a: Vec<_> = OrdersGenerator::new(7).take(5).collect();
    /// let b: Vec<_> = OrdersGenerator::new(7).take(5).collect();
    /// assert_eq!(a, b); // deterministic
    /// assert_ne!(a, OrdersGenerator::new(8).take(5).collect::<Vec<_>>());
    /// ```
    pub fn new(seed: u32) -> Self {
        OrdersGenerator {
            rng: PythonRandom::new(seed),
            next_index: 0,
        }
    }

    /// Python's `randint(lo, hi)`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.rng.below(hi - lo + 1)
    }

    /// Python's `choice(items)`.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.below(items.len() as u64) as usize]
    }

    /// The next document.
    ///
    /// ```
    /// let mut orders = settee::bench_data::OrdersGenerator::new(42);
    /// let first = orders.next_doc();
    /// assert_eq!(first["_id"], "doc00000000");
    /// assert_eq!(first["ts"], 1_700_000_000);
    /// assert_eq!(orders.next_doc()["_id"], "doc00000001");
    /// let total = first["total"].as_u64().unwrap();
    /// assert!((1..=1000).contains(&total));
    /// ```
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

/// CPython's `random.Random` (MT19937) for an integer seed below 2^32, with
/// the parts of its API the generator uses.
#[derive(Debug, Clone)]
struct PythonRandom {
    state: Box<[u32; 624]>,
    index: usize,
}

impl PythonRandom {
    /// `random.Random(seed)`: `init_by_array` over the seed's one 32-bit word.
    fn new(seed: u32) -> Self {
        let mut mt = Box::new([0u32; 624]);
        mt[0] = 19_650_218;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let key = [seed];
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        PythonRandom {
            state: mt,
            index: 624,
        }
    }

    fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        if self.index >= 624 {
            let mt = &mut self.state;
            for k in 0..624 {
                let y = (mt[k] & UPPER) | (mt[(k + 1) % 624] & LOWER);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                mt[k] = mt[(k + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `_randbelow(n)` for `1 <= n < 2^32`: rejection sampling over
    /// `getrandbits(n.bit_length())`.
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!((1..1 << 32).contains(&n));
        let bits = 64 - n.leading_zeros();
        loop {
            let r = u64::from(self.next_u32() >> (32 - bits));
            if r < n {
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `python3 -c 'import random; r = random.Random(42); print([r.getrandbits(32) for _ in range(3)], r.randrange(1000), r.randint(1, 5))'`
    #[test]
    fn matches_cpython_random() {
        let mut rng = PythonRandom::new(42);
        let words: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
        assert_eq!(words, [2_746_317_213, 478_163_327, 107_420_369]);
        assert_eq!(rng.below(1000), 759);
        assert_eq!(1 + rng.below(5), 3);
    }
}
