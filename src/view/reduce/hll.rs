//! HyperLogLog as CouchDB's `_approx_count_distinct` uses it (the `hyper` library).
//!
//! Precision 11 (2,048 registers). An element is `term_to_binary(Key)`, hashed
//! with SHA-1: the first 11 bits pick the register, the number of leading zeros
//! in the next 53 bits plus one is the register candidate (CouchDB's
//! `couch_hyper` with its "undercounting fix": `RegisterValue:(64 - P)`). The estimate is
//! `hyper:card/1`: linear counting `m·ln(m/V)` while it stays at or below the
//! HLL++ threshold for p=11 (1,800), otherwise the raw HLL estimate. hyper also
//! subtracts an empirical bias (HLL++ tables) from raw estimates up to `5·m`;
//! those tables are not reproduced here, so above ~1,800 distinct keys settee's
//! estimate may differ from CouchDB's by that bias (both stay within the ~2%
//! error of the sketch). Below it, the same hash gives the same registers, so
//! small counts come out exactly as CouchDB's.

use sha1::{Digest, Sha1};

const PRECISION: u32 = 11;
const REGISTERS: usize = 1 << PRECISION;
/// `hyper_const:threshold(11)`.
const LINEAR_COUNTING_THRESHOLD: f64 = 1800.0;

/// A HyperLogLog sketch with CouchDB's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hll {
    registers: Box<[u8; REGISTERS]>,
}

impl Hll {
    pub(crate) fn new() -> Hll {
        Hll {
            registers: Box::new([0; REGISTERS]),
        }
    }

    /// Adds an element (`term_to_binary` of a key).
    pub(crate) fn insert(&mut self, element: &[u8]) {
        let hash = Sha1::digest(element);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        let head = u64::from_be_bytes(first);
        let index = (head >> (64 - PRECISION)) as usize;
        // The next 53 bits, left-aligned, with a stop bit after them: at most 53 zeros.
        let rest = (head << PRECISION) | (1 << (PRECISION - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let register = &mut self.registers[index];
        *register = (*register).max(rank);
    }

    /// Union with another sketch (`hyper:union/1`).
    pub(crate) fn merge(&mut self, other: &Hll) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The cardinality estimate, rounded as CouchDB's `finalize` does.
    pub(crate) fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let linear = if zeros == 0 {
            raw
        } else {
            m * (m / zeros as f64).ln()
        };
        let estimate = if linear <= LINEAR_COUNTING_THRESHOLD {
            linear
        } else {
            raw
        };
        estimate.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_exact_and_duplicates_ignored() {
        let mut h = Hll::new();
        assert_eq!(h.estimate(), 0);
        for i in 0..20u32 {
            h.insert(&i.to_be_bytes());
            h.insert(&i.to_be_bytes());
        }
        assert_eq!(h.estimate(), 20);
    }

    #[test]
    fn large_counts_are_within_the_sketch_error() {
        let (mut a, mut b) = (Hll::new(), Hll::new());
        for i in 0..50_000u32 {
            if i % 2 == 0 { &mut a } else { &mut b }.insert(&i.to_le_bytes());
        }
        a.merge(&b);
        let estimate = a.estimate() as f64;
        assert!((estimate - 50_000.0).abs() < 50_000.0 * 0.05, "{estimate}");
    }
}
