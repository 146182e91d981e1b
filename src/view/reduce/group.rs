//! Grouping of reduce rows: `group=false`, `group=true` and `group_level=N`.

use super::BuiltinReducer;
use crate::collate::Collation;
use crate::Result;
use serde_json::Value;
use std::cmp::Ordering;
use std::iter::Peekable;

/// How rows are grouped for reduce output.
///
/// ```
/// use settee::view::GroupLevel;
/// assert_eq!(GroupLevel::from_options(false, None), GroupLevel::All);
/// assert_eq!(GroupLevel::from_options(true, None), GroupLevel::Exact);
/// assert_eq!(GroupLevel::from_options(true, Some(2)), GroupLevel::Level(2));
/// assert_eq!(GroupLevel::from_options(true, Some(0)), GroupLevel::All);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupLevel {
    /// `group=false` or `group_level=0`: one group, reported with key `null`.
    All,
    /// `group=true`: rows whose keys collate equal.
    Exact,
    /// `group_level=N` (N ≥ 1): array keys by their first N elements,
    /// other keys as with [`GroupLevel::Exact`].
    Level(usize),
}

impl GroupLevel {
    /// The level CouchDB's query options select (`group_level` wins over `group`).
    pub fn from_options(group: bool, group_level: Option<usize>) -> GroupLevel {
        match group_level {
            Some(0) => GroupLevel::All,
            Some(n) => GroupLevel::Level(n),
            None if group => GroupLevel::Exact,
            None => GroupLevel::All,
        }
    }
}

/// The key a group is reported under, for a row key.
///
/// `null` for [`GroupLevel::All`]; for a level, `lists:sublist(Key, N)` of an
/// array key (shorter arrays whole, `[]` stays `[]`); the key itself otherwise.
///
/// ```
/// use serde_json::json;
/// use settee::view::reduce::{group_key, GroupLevel};
///
/// assert_eq!(group_key(&json!(["a", "b", "c"]), GroupLevel::Level(2)), json!(["a", "b"]));
/// assert_eq!(group_key(&json!("x"), GroupLevel::Level(2)), json!("x"));
/// assert_eq!(group_key(&json!("x"), GroupLevel::All), json!(null));
/// ```
pub fn group_key(key: &Value, level: GroupLevel) -> Value {
    match (level, key) {
        (GroupLevel::All, _) => Value::Null,
        (GroupLevel::Level(n), Value::Array(items)) if items.len() > n => {
            Value::Array(items[..n].to_vec())
        }
        _ => key.clone(),
    }
}

/// Whether two adjacent row keys fall into the same group (CouchDB's group fun):
/// collation equality of the keys, or of their first N elements when both are
/// non-empty arrays and a level is given.
///
/// ```
/// use serde_json::json;
/// use settee::collate::Collation;
/// use settee::view::reduce::{same_group, GroupLevel};
///
/// let (a, b) = (json!(["2024", 1]), json!(["2024", 2]));
/// assert!(same_group(&a, &b, GroupLevel::Level(1), Collation::Unicode));
/// assert!(!same_group(&a, &b, GroupLevel::Exact, Collation::Unicode));
/// assert!(same_group(&json!(1), &json!(1.0), GroupLevel::Exact, Collation::Unicode));
/// ```
pub fn same_group(a: &Value, b: &Value, level: GroupLevel, collation: Collation) -> bool {
    match (level, a, b) {
        (GroupLevel::All, _, _) => true,
        (GroupLevel::Level(n), Value::Array(x), Value::Array(y))
            if !x.is_empty() && !y.is_empty() =>
        {
            let (x, y) = (&x[..n.min(x.len())], &y[..n.min(y.len())]);
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| collation.compare(p, q) == Ordering::Equal)
        }
        _ => collation.compare(a, b) == Ordering::Equal,
    }
}

/// Reduces map rows, given in traversal order, group by group: yields
/// `(group key, reduced value)` lazily, so `skip`/`limit` on groups can stop
/// early. The group key is [`group_key`] of the group's first row.
///
/// ```
/// use serde_json::json;
/// use settee::collate::Collation;
/// use settee::view::reduce::{BuiltinReducer, GroupLevel, ReduceGroups};
///
/// let rows = [(json!(["a", 1]), json!(1)), (json!(["a", 2]), json!(2)), (json!(["b"]), json!(5))];
/// let groups: Vec<_> = ReduceGroups::new(
///     BuiltinReducer::Sum,
///     GroupLevel::Level(1),
///     Collation::Unicode,
///     rows.iter().map(|(k, v)| (k, "doc", v)),
/// )
/// .collect::<Result<_, _>>()
/// .unwrap();
/// assert_eq!(groups, vec![(json!(["a"]), json!(3)), (json!(["b"]), json!(5))]);
/// ```
pub struct ReduceGroups<'a, I: Iterator<Item = (&'a Value, &'a str, &'a Value)>> {
    reducer: BuiltinReducer,
    level: GroupLevel,
    collation: Collation,
    rows: Peekable<I>,
}

impl<'a, I: Iterator<Item = (&'a Value, &'a str, &'a Value)>> ReduceGroups<'a, I> {
    /// Groups `rows` (key, doc id, value) at `level` under `collation`.
    pub fn new(
        reducer: BuiltinReducer,
        level: GroupLevel,
        collation: Collation,
        rows: impl IntoIterator<IntoIter = I>,
    ) -> Self {
        ReduceGroups {
            reducer,
            level,
            collation,
            rows: rows.into_iter().peekable(),
        }
    }
}

impl<'a, I: Iterator<Item = (&'a Value, &'a str, &'a Value)>> Iterator for ReduceGroups<'a, I> {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        let (first_key, doc_id, value) = self.rows.next()?;
        let mut acc = self.reducer.accumulator();
        acc.add_row(first_key, doc_id, value);
        while let Some((key, doc_id, value)) = self
            .rows
            .next_if(|(key, _, _)| same_group(first_key, key, self.level, self.collation))
        {
            acc.add_row(key, doc_id, value);
        }
        Some(
            acc.finalize()
                .map(|v| (group_key(first_key, self.level), v)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_select_the_level() {
        assert_eq!(GroupLevel::from_options(false, None), GroupLevel::All);
        assert_eq!(GroupLevel::from_options(true, None), GroupLevel::Exact);
        assert_eq!(GroupLevel::from_options(true, Some(0)), GroupLevel::All);
        assert_eq!(
            GroupLevel::from_options(false, Some(2)),
            GroupLevel::Level(2)
        );
    }

    #[test]
    fn levels_group_array_prefixes_by_collation() {
        let u = Collation::Unicode;
        let level = GroupLevel::Level(1);
        assert!(same_group(&json!(["a", 1]), &json!(["a", 2]), level, u));
        assert!(same_group(&json!([1, "x"]), &json!([1.0]), level, u));
        assert!(!same_group(&json!(["a"]), &json!(["b"]), level, u));
        // Non-arrays and empty arrays compare whole.
        assert!(!same_group(&json!([]), &json!(["a"]), level, u));
        assert!(same_group(&json!("c"), &json!("c\u{200B}"), level, u));
        assert!(!same_group(
            &json!("c"),
            &json!("c\u{200B}"),
            level,
            Collation::Raw
        ));
        assert!(same_group(&json!(1), &json!("z"), GroupLevel::All, u));
        assert_eq!(group_key(&json!([]), level), json!([]));
        assert_eq!(group_key(&json!(["a"]), GroupLevel::Level(3)), json!(["a"]));
        assert_eq!(
            group_key(&json!(["a", "b"]), GroupLevel::Exact),
            json!(["a", "b"])
        );
    }
}
