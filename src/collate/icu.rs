//! String collation with the ICU root collator (ICU4X), as CouchDB's `ucol_open("")`.

use super::han::to_libicu_order;
use super::key_cache::append_cached;
use icu_collator::options::CollatorOptions;
use icu_collator::CollatorBorrowed;
use std::cmp::Ordering;
use std::sync::LazyLock;

/// The root collator at default settings: tertiary strength, non-ignorable
/// punctuation, no numeric ordering, case-first off. These are the attributes
/// CouchDB leaves untouched.
static ROOT: LazyLock<CollatorBorrowed<'static>> = LazyLock::new(|| {
    CollatorBorrowed::try_new(Default::default(), CollatorOptions::default())
        .expect("the root collation data is compiled into icu_collator")
});

/// The ICU4X crate and data versions behind [`compare_strings`] and [`write_sort_key`].
///
/// Sort keys are only comparable when produced by the same collator build, so
/// indexes store this and are rebuilt when it changes. `icu_collator` is pinned
/// to an exact version in `Cargo.toml`, which keeps this string truthful.
pub(crate) const ICU_VERSION: &str =
    "icu4x-collator-2.3.0;cldr-48.2.1;icu-78.1;root;tertiary;han-libicu-72.1";

/// Compares two strings like CouchDB's `ucol_strcollIter` with the root collator.
pub(crate) fn compare_strings(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    ROOT.compare(&to_libicu_order(a), &to_libicu_order(b))
}

/// Appends the ICU sort key of `s`: bytewise order of keys equals [`compare_strings`].
///
/// ICU sort keys never contain a `0x00` byte (level separators are `0x01`).
pub(crate) fn write_sort_key(s: &str, out: &mut Vec<u8>) {
    append_cached(s, out, |s, out| {
        let Ok(()) = ROOT.write_sort_key_to(&to_libicu_order(s), out);
    });
}

#[cfg(test)]
mod tests {
    use super::super::han::icu4x_rank;
    use super::*;

    /// The Han substitution relies on ICU4X's implicit order of ideographs.
    #[test]
    fn icu4x_orders_ideographs_by_implicit_rank() {
        let mut ideographs: Vec<u32> = (0x3400..=0x4DBF)
            .chain(0x4E00..=0x9FFF)
            .chain([
                0xFA0E, 0xFA0F, 0xFA11, 0xFA13, 0xFA14, 0xFA1F, 0xFA21, 0xFA23, 0xFA24,
            ])
            .chain([0xFA27, 0xFA28, 0xFA29])
            .chain(0x20000..=0x2A6DF)
            .chain(0x31350..=0x323AF)
            .collect();
        ideographs.sort_by_key(|&c| icu4x_rank(c));
        let text: Vec<String> = ideographs
            .iter()
            .filter_map(|&c| char::from_u32(c).map(String::from))
            .collect();
        for pair in text.windows(2) {
            assert_eq!(ROOT.compare(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
        }
    }
}
