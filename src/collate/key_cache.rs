//! A small per-thread memo of recent string sort keys.
//!
//! ICU sort keys cost about a microsecond or two per string, and view keys
//! repeat a lot (customer names, tags, types, dates emitted by many documents).
//! A direct-mapped table of the last strings seen on this thread turns those
//! repeats into a hash, a string comparison and a copy. A miss costs the hash
//! and two small allocations on top of the ICU work.

use std::cell::RefCell;

/// Slots in the table (a power of two).
const SLOTS: usize = 512;
/// Longer strings are not cached: they rarely repeat and would pin memory.
const MAX_CACHED_LEN: usize = 64;

type Slot = Option<(Box<str>, Box<[u8]>)>;

thread_local! {
    static CACHE: RefCell<Vec<Slot>> = RefCell::new(vec![None; SLOTS]);
}

/// Appends `compute(s)`'s bytes to `out`, reusing them if `s` was seen recently.
///
/// `compute` must be a pure function of `s` that appends to the vector it is given.
pub(crate) fn append_cached(s: &str, out: &mut Vec<u8>, compute: impl FnOnce(&str, &mut Vec<u8>)) {
    if s.len() > MAX_CACHED_LEN {
        return compute(s, out);
    }
    CACHE.with(|cache| {
        let Ok(mut slots) = cache.try_borrow_mut() else {
            // Re-entered (cannot happen with a pure `compute`): just compute.
            return compute(s, out);
        };
        let slot = &mut slots[slot_of(s)];
        if let Some((cached, bytes)) = slot {
            if **cached == *s {
                out.extend_from_slice(bytes);
                return;
            }
        }
        let start = out.len();
        compute(s, out);
        *slot = Some((s.into(), out[start..].into()));
    })
}

/// FNV-1a: cheap for short strings and good enough to spread them over the slots.
fn slot_of(s: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s.as_bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash as usize) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_served_from_the_cache() {
        let calls = std::cell::Cell::new(0);
        let compute = |s: &str, out: &mut Vec<u8>| {
            calls.set(calls.get() + 1);
            out.extend_from_slice(s.as_bytes());
            out.push(0xAA);
        };
        let mut out = vec![1];
        append_cached("key", &mut out, compute);
        append_cached("key", &mut out, compute);
        append_cached(&"x".repeat(100), &mut out, compute);
        assert_eq!(calls.get(), 2);
        assert_eq!(
            &out[..9],
            &[1, b'k', b'e', b'y', 0xAA, b'k', b'e', b'y', 0xAA]
        );
    }
}
