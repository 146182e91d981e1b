//! Property tests: the encodings agree with the comparisons, which are total preorders.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use settee::collate::{
    compare, compare_raw, encode, encode_raw, index_key_prefix, position_after, position_before,
    row_key, Collation, HIGHEST_KEY,
};
use std::cmp::Ordering;

/// Characters chosen for collation trouble: case, accents (precomposed and
/// combining), ignorables, punctuation, digits, ideographs, astral characters.
const ALPHABET: &[char] = &[
    'a',
    'A',
    'b',
    'B',
    'e',
    'é',
    'É',
    '\u{301}',
    '\u{302}',
    '\u{200B}',
    '\u{AD}',
    '\u{FEFF}',
    '\u{0}',
    ' ',
    '-',
    '_',
    '`',
    '^',
    '%',
    '0',
    '1',
    '9',
    'ı',
    'ß',
    'Ж',
    '中',
    '一',
    '𠀀',
    '\u{F900}',
    '😀',
    '\u{1F3FB}',
    '\u{FFF0}',
    '\u{FFFF}',
    '⼀',
];

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..6)
        .prop_map(|cs| cs.into_iter().collect())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        // The same integers as floats: equal to the integer only when exact.
        any::<i64>().prop_map(|i| json!(i as f64)),
        (9_007_199_254_740_990u64..9_007_199_254_740_996).prop_map(Value::from),
        (9_007_199_254_740_990u64..9_007_199_254_740_996).prop_map(|i| json!(i as f64)),
        prop::sample::select(vec![
            -0.0, 0.0, 1e308, -1e308, 5e-324, -5e-324, 1e21, 0.1, 0.5, -1.5, 3.0
        ])
        .prop_map(|f| json!(f)),
        prop::num::f64::NORMAL.prop_map(|f| json!(f)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((string(), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn enc(collation: Collation, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    collation.encode(v, &mut out);
    out
}

const BOTH: [Collation; 2] = [Collation::Unicode, Collation::Raw];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoding_order_is_compare_order(a in json_value(), b in json_value()) {
        for c in BOTH {
            prop_assert_eq!(enc(c, &a).cmp(&enc(c, &b)), c.compare(&a, &b), "{:?} {} vs {}", c, a, b);
        }
    }

    #[test]
    fn compare_is_antisymmetric_and_reflexive(a in json_value(), b in json_value()) {
        for c in BOTH {
            prop_assert_eq!(c.compare(&a, &b), c.compare(&b, &a).reverse());
            prop_assert_eq!(c.compare(&a, &a.clone()), Ordering::Equal);
        }
    }

    #[test]
    fn compare_is_transitive(a in json_value(), b in json_value(), c in json_value()) {
        for col in BOTH {
            let mut v = [&a, &b, &c];
            v.sort_by(|x, y| col.compare(x, y));
            prop_assert_ne!(col.compare(v[0], v[2]), Ordering::Greater);
            prop_assert_ne!(col.compare(v[0], v[1]), Ordering::Greater);
            prop_assert_ne!(col.compare(v[1], v[2]), Ordering::Greater);
        }
    }

    #[test]
    fn sorting_by_encoding_equals_sorting_by_compare(keys in prop::collection::vec(json_value(), 0..24)) {
        for c in BOTH {
            let mut by_compare = keys.clone();
            by_compare.sort_by(|x, y| c.compare(x, y));
            let mut by_encoding = keys.clone();
            by_encoding.sort_by_cached_key(|k| enc(c, k));
            for (x, y) in by_compare.iter().zip(&by_encoding) {
                prop_assert_eq!(c.compare(x, y), Ordering::Equal, "{} vs {}", x, y);
            }
        }
    }

    #[test]
    fn equal_keys_encode_identically(s in string()) {
        // Appending ignorables or re-composing never changes a key.
        let variants = [format!("{s}\u{200B}"), format!("\u{AD}{s}")];
        for v in variants {
            let (a, b) = (Value::from(s.as_str()), Value::from(v));
            prop_assert_eq!(compare(&a, &b), Ordering::Equal);
            prop_assert_eq!(enc(Collation::Unicode, &a), enc(Collation::Unicode, &b));
        }
    }

    #[test]
    fn rows_and_positions_bracket_the_rows_of_a_key(
        key in json_value(), other in json_value(), id in "[a-zA-Z0-9\u{0}é]{0,6}", id2 in "[a-zA-Z0-9\u{0}é]{0,6}",
    ) {
        let (k, o) = (enc(Collation::Unicode, &key), enc(Collation::Unicode, &other));
        let mut row = k.clone();
        row_key(&mut row, &id, 7);
        prop_assert!(position_before(&k, None) < row);
        prop_assert!(row < position_after(&k, None));
        prop_assert!(row.as_slice() < HIGHEST_KEY);
        prop_assert_eq!(position_before(&k, Some(&id2)) < row, id2.as_bytes() <= id.as_bytes());
        prop_assert_eq!(row < position_after(&k, Some(&id2)), id.as_bytes() <= id2.as_bytes());
        // Rows of other keys are outside the key's positions, on the right side.
        let mut other_row = o.clone();
        row_key(&mut other_row, &id2, 0);
        match k.cmp(&o) {
            Ordering::Less => prop_assert!(position_after(&k, None) < other_row),
            Ordering::Greater => prop_assert!(other_row < position_before(&k, None)),
            Ordering::Equal => {}
        }
    }

    #[test]
    fn index_key_prefix_is_monotone(a in json_value(), b in json_value(), max in 1usize..40) {
        let (ea, eb) = (enc(Collation::Unicode, &a), enc(Collation::Unicode, &b));
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        let cut_a = index_key_prefix(&ea, max, &mut pa);
        let cut_b = index_key_prefix(&eb, max, &mut pb);
        if ea <= eb {
            prop_assert!(pa <= pb);
        } else {
            prop_assert!(pa >= pb);
        }
        if !cut_a && !cut_b {
            prop_assert_eq!(pa.cmp(&pb), ea.cmp(&eb));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn deep_keys_keep_encoding_order(
        wrappers_a in prop::collection::vec(any::<bool>(), 0..800),
        wrappers_b in prop::collection::vec(any::<bool>(), 0..800),
        a in json_value(),
        b in json_value(),
    ) {
        // Wrap in arrays (true) or single-member objects (false), up to 800 deep.
        // (Not with json!, which would re-serialize `inner` at every level.)
        let wrap = |wrappers: &[bool], leaf: Value| {
            wrappers.iter().fold(leaf, |inner, &array| {
                if array {
                    Value::Array(vec![inner])
                } else {
                    Value::Object(Map::from_iter([("k".to_owned(), inner)]))
                }
            })
        };
        let (a, b) = (wrap(&wrappers_a, a), wrap(&wrappers_b, b));
        for c in BOTH {
            prop_assert_eq!(enc(c, &a).cmp(&enc(c, &b)), c.compare(&a, &b));
        }
    }
}

/// Builds `[[[ ... leaf ... ]]]` nested `depth` deep.
fn nested(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, _| Value::Array(vec![inner]))
}

#[test]
fn deep_nesting_compares_and_encodes_without_recursion() {
    // serde_json drops nested values recursively: give that (not settee) a big stack.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let a = nested(100_000, json!(1));
            let b = nested(100_000, json!(2));
            let shallow = nested(99_999, json!(1));
            assert_eq!(compare(&a, &b), Ordering::Less);
            assert_eq!(compare_raw(&a, &b), Ordering::Less);
            assert_eq!(compare(&shallow, &a), Ordering::Less);
            assert_eq!(compare(&a, &a.clone()), Ordering::Equal);
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode(&a, &mut ea);
            encode(&b, &mut eb);
            assert!(ea < eb);
            assert_eq!(ea.len(), 100_000 * 2 + 11);
            let mut raw = Vec::new();
            encode_raw(&a, &mut raw);
            assert_eq!(raw.len(), ea.len());
        })
        .expect("spawn")
        .join()
        .expect("deep nesting test");
}

#[test]
fn long_string_keys_encode_in_order() {
    let long_a = Value::from("é".repeat(5_000));
    let long_b = Value::from(format!("{}f", "é".repeat(5_000)));
    let (ea, eb) = (
        enc(Collation::Unicode, &long_a),
        enc(Collation::Unicode, &long_b),
    );
    assert!(ea.len() > 10_000);
    assert!(ea < eb);
    assert_eq!(compare(&long_a, &long_b), Ordering::Less);
}
