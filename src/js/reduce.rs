//! The `reduce_limit` rule of CouchDB's `runReduce` (share/server/views.js).
//!
//! A JavaScript reduce must shrink its input: when the JSON of all reductions
//! of one call is longer than `reduce_limit_threshold` and more than
//! `1 / reduce_limit_ratio` of the input line (the query-server command line
//! minus the function sources), the call overflows. Lengths are counted in
//! UTF-16 code units, as JavaScript's `String.length` does.

use std::io;
use std::sync::Arc;

use serde_json::Value;

use super::{JsConfig, ReduceLimit, REDUCE_OVERFLOW_ERROR};

/// One reduce or rereduce call.
pub struct ReduceCall {
    /// Function sources, one reduction each.
    pub sources: Arc<Vec<String>>,
    /// `[key, docid]` per value for reduce; `None` for rereduce.
    pub keys: Option<Vec<(Value, String)>>,
    /// The values (map values, or earlier reductions for rereduce).
    pub values: Vec<Value>,
}

impl ReduceCall {
    /// Length of the command line CouchDB would have sent to couchjs
    /// (`["reduce",[srcs],[[[k,id],v],..]]` or `["rereduce",[srcs],[v,..]]`)
    /// minus the sources' lengths: CouchDB's `input_length`.
    pub fn input_length(&self) -> usize {
        let mut w = Utf16Counter(0);
        let command = if self.keys.is_some() {
            "reduce"
        } else {
            "rereduce"
        };
        // Writing into a counter cannot fail.
        let _ = serde_json::to_writer(&mut w, &(command, &*self.sources));
        match &self.keys {
            Some(keys) => {
                let rows = keys
                    .iter()
                    .zip(&self.values)
                    .map(|((k, id), v)| ((k, id), v));
                let rows: Vec<_> = rows.collect();
                let _ = serde_json::to_writer(&mut w, &rows);
            }
            None => {
                let _ = serde_json::to_writer(&mut w, &self.values);
            }
        }
        // `["reduce",[..]]` and the rows were written as two arrays; the
        // single three-member array is one character (the comma) longer.
        let sources: usize = self.sources.iter().map(|s| s.encode_utf16().count()).sum();
        (w.0 + 1).saturating_sub(sources)
    }
}

/// Counts the UTF-16 length of UTF-8 text written to it.
struct Utf16Counter(usize);

impl io::Write for Utf16Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            // One unit per character start, two for 4-byte sequences.
            if b & 0xC0 != 0x80 {
                self.0 += if b >= 0xF0 { 2 } else { 1 };
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Applies `reduce_limit` to the reductions of one call: on overflow (with
/// `reduce_limit = true`) every reduction becomes
/// `{"reduce_overflow_error": "Reduce output must shrink more rapidly: input size: I output size: O"}`.
pub fn apply_reduce_limit(
    config: &JsConfig,
    call: &ReduceCall,
    reductions: Vec<Value>,
) -> Vec<Value> {
    if config.reduce_limit == ReduceLimit::Off {
        return reductions;
    }
    let mut w = Utf16Counter(0);
    let _ = serde_json::to_writer(&mut w, &reductions);
    let output = w.0;
    if output <= config.reduce_limit_threshold {
        return reductions;
    }
    let input = call.input_length();
    if (output as f64) * config.reduce_limit_ratio <= input as f64 {
        return reductions;
    }
    let message = format!(
        "Reduce output must shrink more rapidly: input size: {input} output size: {output}"
    );
    match config.reduce_limit {
        ReduceLimit::Log => {
            tracing::info!(target: "settee::js", "reduce_overflow_error: {message}");
            reductions
        }
        _ => {
            tracing::error!(target: "settee::js", "{message}");
            let marker = serde_json::json!({ REDUCE_OVERFLOW_ERROR: message });
            vec![marker; reductions.len()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(values: Vec<Value>) -> ReduceCall {
        ReduceCall {
            sources: Arc::new(vec!["function(k,v){}".into()]),
            keys: Some(
                values
                    .iter()
                    .map(|_| (json!("k"), "id".to_string()))
                    .collect(),
            ),
            values,
        }
    }

    #[test]
    fn input_length_matches_the_command_line() {
        let c = call(vec![json!(1), json!("é")]);
        let line = r#"["reduce",["function(k,v){}"],[[["k","id"],1],[["k","id"],"é"]]]"#;
        assert_eq!(
            c.input_length(),
            line.chars().count() - "function(k,v){}".len()
        );
    }

    #[test]
    fn overflow_needs_both_threshold_and_ratio() {
        let config = JsConfig {
            reduce_limit_threshold: 10,
            ..JsConfig::default()
        };
        let c = call(vec![json!(1); 3]);
        let big = vec![json!("x".repeat(200))];
        let out = apply_reduce_limit(&config, &c, big.clone());
        let reason = crate::js::reduce_overflow_reason(&out[0]).unwrap();
        assert!(reason.starts_with("Reduce output must shrink more rapidly: input size: "));
        assert!(reason.ends_with("output size: 204"), "{reason}");
        // Below the threshold: kept.
        assert_eq!(
            apply_reduce_limit(&config, &c, vec![json!(3)]),
            vec![json!(3)]
        );
        // Large input: kept.
        let c = call(vec![json!("y".repeat(1000)); 3]);
        assert_eq!(apply_reduce_limit(&config, &c, big.clone()), big);
        // log / off keep the value.
        for mode in [ReduceLimit::Log, ReduceLimit::Off] {
            let config = JsConfig {
                reduce_limit: mode,
                reduce_limit_threshold: 10,
                ..JsConfig::default()
            };
            assert_eq!(
                apply_reduce_limit(&config, &call(vec![json!(1)]), big.clone()),
                big
            );
        }
    }
}
