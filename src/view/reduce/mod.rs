//! Built-in reducers (placeholder for merge: name parsing only).

use crate::error::{Error, Result};

/// A built-in reduce function, run in Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinReducer {
    /// `_sum`.
    Sum,
    /// `_count`.
    Count,
    /// `_stats`.
    Stats,
    /// `_approx_count_distinct`.
    ApproxCountDistinct,
    /// `_first`.
    First,
    /// `_last`.
    Last,
    /// `_top_N`.
    Top(u8),
    /// `_bottom_N`.
    Bottom(u8),
}

impl BuiltinReducer {
    /// Parses a reduce source; `None` when it is JavaScript.
    pub fn parse(source: &str) -> Option<Result<BuiltinReducer>> {
        let prefixed = [
            ("_sum", BuiltinReducer::Sum),
            ("_count", BuiltinReducer::Count),
            ("_stats", BuiltinReducer::Stats),
            (
                "_approx_count_distinct",
                BuiltinReducer::ApproxCountDistinct,
            ),
            ("_first", BuiltinReducer::First),
            ("_last", BuiltinReducer::Last),
        ];
        if !source.starts_with('_') {
            return None;
        }
        for (prefix, reducer) in prefixed {
            if source.starts_with(prefix) {
                return Some(Ok(reducer));
            }
        }
        for (prefix, make) in [
            ("_top_", BuiltinReducer::Top as fn(u8) -> BuiltinReducer),
            ("_bottom_", BuiltinReducer::Bottom),
        ] {
            if let Some(rank) = source.strip_prefix(prefix) {
                return Some(match rank.parse::<i64>() {
                    Ok(n) if (1..=100).contains(&n) => Ok(make(n as u8)),
                    Ok(_) => Err(Error::invalid_design_doc(
                        "rank value must be between 1 and 100",
                    )),
                    Err(_) => Err(Error::invalid_design_doc("invalid rank reducer")),
                });
            }
        }
        Some(Err(Error::invalid_design_doc(format!(
            "`{source}` is not a supported reduce function."
        ))))
    }
}
