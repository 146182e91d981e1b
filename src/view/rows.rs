//! From a document's map output to the rows the index stores.
//!
//! Pure and CPU-bound (collation encoding dominates), so the updater runs it on
//! rayon's pool while the single writer applies the previous batch.

use serde_json::Value;

use crate::collate::{compare_emitted_values, row_key, Collation};
use crate::view::index::{DocRows, PreparedRow};

/// What one map function (tree) emitted for one document.
pub(crate) struct TreeOutput {
    /// The tree number.
    pub tree: u16,
    /// The tree's key order.
    pub collation: Collation,
    /// `(key, value)` pairs in emit order.
    pub emits: Vec<(Value, Value)>,
}

/// Encodes a document's rows. Several emits of one key (collation-equal) by one
/// document are numbered in Erlang term order of their values, which is the
/// order CouchDB returns them in.
pub(crate) fn prepare_doc_rows(doc_id: &str, outputs: Vec<TreeOutput>) -> DocRows {
    let mut rows = Vec::new();
    for output in outputs {
        let mut encoded: Vec<(Vec<u8>, Value, Value)> = output
            .emits
            .into_iter()
            .map(|(key, value)| {
                let mut enc = Vec::new();
                output.collation.encode(&key, &mut enc);
                (enc, key, value)
            })
            .collect();
        encoded.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| compare_emitted_values(&a.2, &b.2))
        });
        let mut counter = 0u32;
        for i in 0..encoded.len() {
            counter = if i > 0 && encoded[i - 1].0 == encoded[i].0 {
                counter + 1
            } else {
                0
            };
            let (enc, key, value) = &encoded[i];
            let mut sort_key = enc.clone();
            row_key(&mut sort_key, doc_id, counter);
            rows.push(PreparedRow {
                tree: output.tree,
                sort_key,
                key_value: serde_json::to_vec(&(key, value)).expect("JSON serialises"),
            });
        }
    }
    DocRows {
        doc_id: doc_id.to_string(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_are_numbered_by_value_order() {
        let doc = prepare_doc_rows(
            "d",
            vec![TreeOutput {
                tree: 0,
                collation: Collation::Unicode,
                emits: vec![
                    (json!("k"), json!("s")),
                    (json!("k"), json!(null)),
                    (json!("j"), json!(1)),
                    (json!("k"), json!(2)),
                ],
            }],
        );
        let values: Vec<Value> = doc
            .rows
            .iter()
            .map(|r| {
                serde_json::from_slice::<(Value, Value)>(&r.key_value)
                    .unwrap()
                    .1
            })
            .collect();
        // "j" first; then "k" with values in Erlang order: numbers < atoms < binaries.
        assert_eq!(values, vec![json!(1), json!(2), json!(null), json!("s")]);
        let mut sorted = doc.rows.clone();
        sorted.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        assert_eq!(sorted, doc.rows);
    }
}
