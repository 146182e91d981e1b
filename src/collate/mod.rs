//! CouchDB's view key order and an order-preserving byte encoding of it.
//!
//! # Orders
//!
//! [`compare`] is CouchDB's default view collation (`couch_ejson_compare`):
//! `null < false < true < numbers < strings < arrays < objects`.
//!
//! - Numbers compare by exact value across `i64`, `u64` and `f64`: `1 == 1.0`,
//!   `-0.0 == 0`, `9007199254740993 > 9007199254740992.0`.
//! - Strings use the ICU root collator at default attributes (tertiary strength,
//!   non-ignorable punctuation), through ICU4X: `"a" < "A" < "aa" < "b"`,
//!   `"10" < "9"`, `"a b" < "ab"`, NFC equals NFD, and completely ignorable code
//!   points vanish (`"c" == "c\u{200B}"`, `"a\0" == "a"`).
//! - Arrays compare element by element, a proper prefix first. Objects compare
//!   member by member **in stored order** (name by ICU, then value); fewer members
//!   first. Objects are never sorted: `{"b":2} < {"b":2,"a":1} < {"b":2,"c":2}`.
//!
//! [`compare_raw`] is Erlang term order, the view option `{"collation": "raw"}`:
//! `numbers < false < null < true < objects < arrays < strings`, strings as raw
//! UTF-8 bytes. It is also the order in which CouchDB stores the values that one
//! document emits several times under one key, so the view engine sorts such
//! duplicates with [`compare_raw`] too (the name [`compare_emitted_values`] says
//! so at the call site).
//!
//! Both walk nested values with a heap stack, never recursion: a key nested
//! 100,000 deep compares and encodes without touching the native stack.
//!
//! # Agreement with CouchDB's libicu
//!
//! CouchDB 3.5.0 uses the system libicu (ICU 72.1, UCA 15.0); settee uses ICU4X
//! 2.3.0 with CLDR 48.2 root data (ICU4X 2.4 would clash with boa's pinned
//! `icu_normalizer ~2.3`). `tests/collate.rs` re-sorts every
//! ordered view response of the golden corpus (family A: ignorables, NFC/NFD,
//! punctuation, scripts, emoji, `"\u{fff0}"`, long strings, extreme numbers,
//! nesting), answers every recorded range, doc-id, `inclusive_end`, skip/limit
//! and `group=true` query of family A from an in-memory index built with
//! [`row_key`] and the position helpers (all identical to CouchDB's rows), and
//! checks every vector in `shared/vectors`. One systematic difference showed
//! up and is corrected:
//!
//! - **CJK ideographs.** libicu orders them by radical and stroke count,
//!   ICU4X's compiled data by code point (core block first): CouchDB returns
//!   `"𠀀"` (U+20000) before `"中"` (U+4E2D), plain ICU4X the opposite. settee
//!   permutes ideographs into libicu 72.1's order before collating (`han.rs`,
//!   table generated from libicu by `tools/han-order`).
//!
//! Comparing all 1,112,061 single-code-point strings (U+0001..U+10FFFF without
//! surrogates, CR, LF) in libicu 72.1's order against settee leaves 680 of the
//! adjacent pairs out of order (was 4,164 before the ideograph fix), all known
//! and not corrected:
//!
//! - 363 involve characters that *compatibility*-decompose to ideographs and sort
//!   next to them with a tertiary difference: Kangxi and CJK radicals
//!   (U+2E80..U+2FD5, e.g. `"⼀"` U+2F00), parenthesized/circled ideographs
//!   (U+3190.., U+3200.., U+3280.., e.g. `"㊀"` U+3280), squared ideographs
//!   (U+1F210..). They keep ICU4X's position (by the ideograph's code point).
//! - 317 are Unicode-version differences: characters unassigned in Unicode 15
//!   (libicu 72) but assigned by Unicode 18 (e.g. U+1AD0.., U+A7CB.., U+10D40..),
//!   and a few UCA reorderings (e.g. `"\u{5C6}"` vs `"\u{5F3}"` Hebrew
//!   punctuation, `"\u{20A7}"` vs `"\u{20A9}"` currency signs, Bopomofo
//!   `"\u{3112}"` vs `"\u{312C}"`, counting rods U+1D371 vs `"0"`).
//!
//! Numbers: `serde_json` (without `arbitrary_precision`) reads JSON integers
//! beyond the `i64`/`u64` range as floats, while CouchDB keeps them as exact
//! bignums. Keys emitted by JavaScript are doubles anyway, but a query key
//! like `key=-12345678901234567890` must match no row (golden
//! A_collation_numbers steps 31 and 67): [`ExactIntegers`] recovers such
//! integers from the query's JSON text and [`Collation::encode_exact`] encodes
//! them exactly. Documents stored with such integers still hold the rounded
//! float.
//!
//! The ASCII table in CouchDB's `collation.rst` is stale: libicu 72, ICU4X and
//! CouchDB's recorded responses all put `` ` `` and `^` after `%`. Should a
//! later ICU4X release change more, [`collator_version`] changes with the pinned
//! crate version, which makes indexes rebuild.
//!
//! # Encoding
//!
//! [`encode`] (and [`encode_raw`]) append bytes such that
//! `memcmp(encode(a), encode(b))` has the sign of `compare(a, b)` for every pair
//! of JSON values: collation-equal values (`1`/`1.0`, NFC/NFD, `"c"`/`"c\u{200B}"`)
//! encode identically, and prefixes of arrays and objects sort first. Strings
//! become ICU sort keys (recent short strings are memoized per thread), non-zero
//! numbers an exact 11-byte form (sign tag, binary exponent, 64-bit mantissa),
//! containers a tag, their members and a `0x00` terminator. The encoding is lossy (it cannot be decoded), so an index keeps
//! the emitted key in the row value.
//!
//! # View index rows (recommended scheme)
//!
//! LMDB compares keys with `memcmp`, so an index needs no custom comparator:
//!
//! ```text
//! row key = encode(key) ‖ escape(doc id) ‖ 0x00 0x01 ‖ u32_be(counter)      (see row_key)
//! value   = emitted key (JSON) ‖ emitted value (JSON)
//! ```
//!
//! Equal keys then tie-break on the doc id's raw bytes, as CouchDB's
//! `less_json_ids`, and the counter separates repeated emits of one key by one
//! doc (number them in [`compare_emitted_values`] order). Ranges are pairs of
//! positions from [`position_before`] and [`position_after`] (with
//! `startkey_docid`/`endkey_docid`), and [`HIGHEST_KEY`] stands for CouchDB's
//! `?HIGHEST_KEY` (an open upper bound).
//!
//! **Long keys.** This module has no length limit; LMDB's is 511 bytes
//! ([`LMDB_MAX_KEY_LEN`]; 1982 with heed's `longer-keys`). ICU sort keys are
//! about 1.3x the UTF-8 length, so a 10 KB string or a key nested 50 deep
//! exceeds it. The view index (`view::index`, "Long keys") stores a sort key
//! longer than its budget as the cut prefix ([`index_key_prefix`]), a marker
//! byte and a rank, and keeps the full key in an overflow table: every key
//! sharing the prefix sits exactly where its keys sort, and ranks, assigned
//! in sort order, order them within it. Doc ids are unbounded in CouchDB, so
//! very long ids get the same treatment. `tests/views.rs`
//! (`long_keys_end_to_end`) runs 10 KB and 50-deep keys through real indexes.
//!
//! # Versioning
//!
//! [`collator_version`] names the ICU4X build and data. Indexes record it and
//! are rebuilt when it changes, as CouchDB does with `view_info.ucol_vs`.
//!
//! ```
//! use serde_json::json;
//! use settee::collate::{compare, encode, Collation};
//! use std::cmp::Ordering;
//!
//! assert_eq!(compare(&json!("a"), &json!("A")), Ordering::Less);
//! assert_eq!(compare(&json!([1, "b"]), &json!([1.0, "b", null])), Ordering::Less);
//!
//! let (mut a, mut b) = (Vec::new(), Vec::new());
//! encode(&json!({"b": 2}), &mut a);
//! encode(&json!({"b": 2, "a": 1}), &mut b);
//! assert!(a < b);
//! assert_eq!(Collation::Raw.compare(&json!("A"), &json!("a")), Ordering::Less);
//! ```

mod encoding;
mod exact;
mod han;
mod icu;
mod index_key;
mod key_cache;
mod number;
mod order;
mod rules;

use rules::{RawRules, UnicodeRules};
use serde_json::Value;
use std::cmp::Ordering;

pub use exact::ExactIntegers;
pub use index_key::{
    index_key_prefix, position_after, position_before, row_key, HIGHEST_KEY, LMDB_MAX_KEY_LEN,
    ROW_SUFFIX_FIXED_LEN,
};

/// A view's key collation, from its `options.collation` (`"raw"` or anything else).
///
/// ```
/// use serde_json::json;
/// use settee::collate::Collation;
/// use std::cmp::Ordering;
///
/// let raw = Collation::from_option(Some(&json!("raw")));
/// assert_eq!(raw, Collation::Raw);
/// assert_eq!(raw.compare(&json!("B"), &json!("a")), Ordering::Less); // bytes
/// assert_eq!(Collation::Unicode.compare(&json!("B"), &json!("a")), Ordering::Greater); // ICU
/// let (mut b, mut a) = (Vec::new(), Vec::new());
/// raw.encode(&json!("B"), &mut b);
/// raw.encode(&json!("a"), &mut a);
/// assert!(b < a);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Collation {
    /// CouchDB's default: ICU root collation for strings ([`compare`]).
    #[default]
    Unicode,
    /// Erlang term order, `{"collation": "raw"}` ([`compare_raw`]).
    Raw,
}

impl Collation {
    /// The collation a view's `options.collation` selects: `"raw"` is raw,
    /// anything else (CouchDB accepts any value) is the default.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::collate::Collation;
    /// assert_eq!(Collation::from_option(Some(&json!("raw"))), Collation::Raw);
    /// assert_eq!(Collation::from_option(Some(&json!("RAW"))), Collation::Unicode);
    /// assert_eq!(Collation::from_option(None), Collation::Unicode);
    /// ```
    pub fn from_option(option: Option<&Value>) -> Collation {
        match option {
            Some(Value::String(s)) if s == "raw" => Collation::Raw,
            _ => Collation::Unicode,
        }
    }

    /// Compares two keys under this collation.
    pub fn compare(self, a: &Value, b: &Value) -> Ordering {
        match self {
            Collation::Unicode => compare(a, b),
            Collation::Raw => compare_raw(a, b),
        }
    }

    /// Appends the order-preserving encoding of `key` under this collation.
    pub fn encode(self, key: &Value, out: &mut Vec<u8>) {
        match self {
            Collation::Unicode => encode(key, out),
            Collation::Raw => encode_raw(key, out),
        }
    }

    /// [`Collation::encode`] for a key parsed from JSON text that held
    /// integers beyond `serde_json`'s range: `exact` (from
    /// [`ExactIntegers::scan`] of that text) restores their values. Ignored
    /// when it does not fit `key`.
    pub fn encode_exact(self, key: &Value, exact: Option<&ExactIntegers>, out: &mut Vec<u8>) {
        let exact = match exact {
            Some(e) if e.fits(key) => e.as_slice(),
            _ => &[],
        };
        match self {
            Collation::Unicode => encoding::encode_exact_with::<UnicodeRules>(key, exact, out),
            Collation::Raw => encoding::encode_exact_with::<RawRules>(key, exact, out),
        }
    }
}

/// Compares two keys with CouchDB's default view collation (ICU root, tertiary).
///
/// ```
/// use serde_json::json;
/// use settee::collate::compare;
/// use std::cmp::Ordering;
///
/// assert_eq!(compare(&json!(true), &json!(0)), Ordering::Less);
/// assert_eq!(compare(&json!("10"), &json!("9")), Ordering::Less);
/// assert_eq!(compare(&json!("c"), &json!("c\u{200B}")), Ordering::Equal);
/// assert_eq!(compare(&json!(3), &json!(3.0)), Ordering::Equal);
/// ```
pub fn compare(a: &Value, b: &Value) -> Ordering {
    order::compare_with::<UnicodeRules>(a, b)
}

/// Compares two keys in Erlang term order (`{"collation": "raw"}`).
///
/// ```
/// use serde_json::json;
/// use settee::collate::compare_raw;
/// use std::cmp::Ordering;
///
/// assert_eq!(compare_raw(&json!(5), &json!(null)), Ordering::Less);
/// assert_eq!(compare_raw(&json!({}), &json!([])), Ordering::Less);
/// assert_eq!(compare_raw(&json!("B"), &json!("a")), Ordering::Less);
/// ```
pub fn compare_raw(a: &Value, b: &Value) -> Ordering {
    order::compare_with::<RawRules>(a, b)
}

/// Orders the values one document emitted several times under one key, as
/// CouchDB stores (and returns) them: Erlang term order, i.e. [`compare_raw`].
///
/// ```
/// use serde_json::json;
/// use settee::collate::compare_emitted_values;
///
/// // emit(k, "b"); emit(k, 2); emit(k, null) come back as 2, null, "b".
/// let mut values = vec![json!("b"), json!(2), json!(null)];
/// values.sort_by(compare_emitted_values);
/// assert_eq!(values, [json!(2), json!(null), json!("b")]);
/// ```
pub fn compare_emitted_values(a: &Value, b: &Value) -> Ordering {
    compare_raw(a, b)
}

/// Appends the encoding of `key` whose bytewise order is [`compare`]'s order.
///
/// ```
/// use serde_json::json;
/// use settee::collate::encode;
///
/// let enc = |v| { let mut out = Vec::new(); encode(&v, &mut out); out };
/// assert!(enc(json!("a")) < enc(json!("A")));
/// assert!(enc(json!(["b"])) < enc(json!(["b", "c"])));
/// assert_eq!(enc(json!(1)), enc(json!(1.0)));
/// assert_eq!(enc(json!("cha\u{EE}ne")), enc(json!("chai\u{302}ne")));
/// ```
pub fn encode(key: &Value, out: &mut Vec<u8>) {
    encoding::encode_with::<UnicodeRules>(key, out)
}

/// Appends the encoding of `key` whose bytewise order is [`compare_raw`]'s order.
///
/// ```
/// use serde_json::json;
/// use settee::collate::encode_raw;
///
/// let enc = |v| { let mut out = Vec::new(); encode_raw(&v, &mut out); out };
/// assert!(enc(json!(99)) < enc(json!(false))); // numbers first in term order
/// assert!(enc(json!("B")) < enc(json!("a")));  // strings as bytes
/// assert!(enc(json!({})) < enc(json!([])));
/// ```
pub fn encode_raw(key: &Value, out: &mut Vec<u8>) {
    encoding::encode_with::<RawRules>(key, out)
}

/// The collator build and data version behind [`compare`] and [`encode`].
///
/// Stored with each view index; an index built under another version is rebuilt.
///
/// ```
/// assert!(settee::collate::collator_version().contains("cldr"));
/// ```
pub fn collator_version() -> String {
    icu::ICU_VERSION.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn view_option_selects_the_collation() {
        assert_eq!(Collation::from_option(Some(&json!("raw"))), Collation::Raw);
        assert_eq!(
            Collation::from_option(Some(&json!("bogus"))),
            Collation::Unicode
        );
        assert_eq!(Collation::from_option(Some(&json!(5))), Collation::Unicode);
        assert_eq!(Collation::from_option(None), Collation::default());
    }

    #[test]
    fn highest_key_is_above_every_encoded_key() {
        for key in [json!({"\u{FFFF}": [{}]}), json!("\u{10FFFF}"), json!({})] {
            for c in [Collation::Unicode, Collation::Raw] {
                let mut out = Vec::new();
                c.encode(&key, &mut out);
                assert!(out.as_slice() < HIGHEST_KEY, "{key}");
            }
        }
    }
}
