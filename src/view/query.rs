//! View query options: a builder for library users, and CouchDB's parameter
//! parsing for the HTTP layer (query strings and POST bodies), with CouchDB's
//! exact error names and reasons.
//!
//! Parsing and validation are separate steps, as in CouchDB: [`ViewQuery`] holds
//! what the caller asked for; [`ViewQuery::resolve`] checks it against the view
//! (map-only or with a reduce) and yields a [`ResolvedQuery`] the engine runs.

use serde_json::{Map, Value};

use crate::collate::ExactIntegers;
use crate::error::{Error, Result};
use crate::view::reduce::GroupLevel;

/// When a query brings the index up to date (`update=`, or `stale=`).
///
/// ```
/// use settee::view::{UpdateMode, ViewQuery};
///
/// assert_eq!(ViewQuery::new().update, UpdateMode::True);
/// let q = ViewQuery::new().update(UpdateMode::False);
/// assert_eq!(q, ViewQuery::from_query_pairs([("update", "false")]).unwrap());
/// let stale = ViewQuery::from_query_pairs([("stale", "update_after")]).unwrap();
/// assert_eq!(stale.update, UpdateMode::Lazy);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateMode {
    /// Update the index to the database's current sequence before reading (default).
    #[default]
    True,
    /// Read whatever is committed, even if stale (empty when never built).
    False,
    /// Read at once, then update in the background.
    Lazy,
}

/// The options of a view query, as CouchDB accepts them.
///
/// Build one with the methods below, or parse one from HTTP parameters with
/// [`ViewQuery::from_query_pairs`] and [`ViewQuery::from_body`].
///
/// ```
/// use serde_json::json;
/// use settee::view::ViewQuery;
///
/// let q = ViewQuery::new()
///     .start_key(json!(["a"]))
///     .end_key(json!(["a", {}]))
///     .group_level(1)
///     .limit(10);
/// assert_eq!(q.limit, Some(10));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ViewQuery {
    /// `keys`: fetch exactly these keys, in this order.
    pub keys: Option<Vec<Value>>,
    /// `startkey` / `start_key` (also set by `key`).
    pub start_key: Option<Value>,
    /// `endkey` / `end_key` (also set by `key`).
    pub end_key: Option<Value>,
    /// `startkey_docid`: only used together with a start key.
    pub start_key_docid: Option<String>,
    /// `endkey_docid`: only used together with an end key.
    pub end_key_docid: Option<String>,
    /// `inclusive_end` (default true).
    pub inclusive_end: Option<bool>,
    /// `descending` (default false).
    pub descending: bool,
    /// `limit`: the most rows (or groups) returned.
    pub limit: Option<u64>,
    /// `skip`: rows (or groups) dropped before the first returned one.
    pub skip: u64,
    /// `reduce`: defaults to true when the view has a reduce function.
    pub reduce: Option<bool>,
    /// `group`.
    pub group: Option<bool>,
    /// `group_level`.
    pub group_level: Option<u64>,
    /// `include_docs`.
    pub include_docs: bool,
    /// `conflicts`: adds `_conflicts` to included docs.
    pub conflicts: Option<bool>,
    /// `update` / `stale`.
    pub update: UpdateMode,
    /// `update_seq`: report the sequence the index reflects.
    pub update_seq: bool,
    /// `stable`: accepted for compatibility; a single node has nothing to pin.
    pub stable: bool,
    /// `sorted`: accepted for compatibility; rows are always sorted here.
    pub sorted: bool,
    /// `attachments`: accepted for compatibility (settee stores no attachments).
    pub attachments: bool,
    /// Exact values of integers in the key parameters that `serde_json`
    /// rounded (kept from the parameters' JSON text).
    exact: ExactKeys,
}

/// [`ExactIntegers`] of the key parameters, when their JSON text had any.
#[derive(Debug, Clone, PartialEq, Default)]
struct ExactKeys {
    start: Option<ExactIntegers>,
    end: Option<ExactIntegers>,
    /// Parallel to `keys` (empty when no key needs it).
    keys: Vec<Option<ExactIntegers>>,
}

impl ViewQuery {
    /// A query with CouchDB's defaults.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::new();
    /// assert_eq!((q.limit, q.skip, q.descending, q.sorted), (None, 0, false, true));
    /// ```
    pub fn new() -> Self {
        ViewQuery {
            sorted: true,
            ..ViewQuery::default()
        }
    }

    /// `key=K`: only rows whose key collates equal to `K`.
    /// The same as setting both ends of the range.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::new().key(json!(["a", 1]));
    /// assert_eq!(q, ViewQuery::new().start_key(json!(["a", 1])).end_key(json!(["a", 1])));
    /// ```
    pub fn key(mut self, key: Value) -> Self {
        self.start_key = Some(key.clone());
        self.end_key = Some(key);
        self.exact.start = None;
        self.exact.end = None;
        self
    }

    /// `keys=[..]`: rows for each of these keys, in the order given.
    /// On a reduce view it needs `group=true` (or `reduce=false`).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::new().keys(vec![json!("b"), json!("a")]);
    /// assert!(q.resolve(false).is_ok());
    /// let err = q.resolve(true).unwrap_err();
    /// assert_eq!(err.reason(), "Multi-key fetches for reduce views must use `group=true`");
    /// assert!(q.clone().group(true).resolve(true).is_ok());
    /// ```
    pub fn keys(mut self, keys: Vec<Value>) -> Self {
        self.keys = Some(keys);
        self.exact.keys.clear();
        self
    }

    /// `startkey`: the first key of the range (in the query's direction).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// // Everything under the key prefix ["2024"]: `{}` sorts after every other value.
    /// let q = ViewQuery::new().start_key(json!(["2024"])).end_key(json!(["2024", {}]));
    /// assert!(q.resolve(false).is_ok());
    /// // A range and `keys` do not mix.
    /// let err = q.keys(vec![json!("x")]).resolve(false).unwrap_err();
    /// assert_eq!(err.name(), "query_parse_error");
    /// ```
    pub fn start_key(mut self, key: Value) -> Self {
        self.start_key = Some(key);
        self.exact.start = None;
        self
    }

    /// `endkey`: the last key of the range (in the query's direction).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::new().descending(true).start_key(json!("m")).end_key(json!("a"));
    /// assert_eq!(q.end_key, Some(json!("a")));
    /// ```
    pub fn end_key(mut self, key: Value) -> Self {
        self.end_key = Some(key);
        self.exact.end = None;
        self
    }

    /// The exact integers of the start key's JSON text (see [`ExactIntegers`]).
    pub(crate) fn exact_start(&self) -> Option<&ExactIntegers> {
        self.exact.start.as_ref()
    }

    /// The exact integers of the end key's JSON text.
    pub(crate) fn exact_end(&self) -> Option<&ExactIntegers> {
        self.exact.end.as_ref()
    }

    /// The exact integers of the `i`-th of `keys`.
    pub(crate) fn exact_key(&self, i: usize) -> Option<&ExactIntegers> {
        self.exact.keys.get(i).and_then(Option::as_ref)
    }

    /// `startkey_docid`: among rows with the start key, start at this doc id.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// // Resume a page after row (key "k", id "doc-7").
    /// let q = ViewQuery::new().start_key(json!("k")).start_key_docid("doc-7").skip(1);
    /// assert_eq!(q.start_key_docid.as_deref(), Some("doc-7"));
    /// ```
    pub fn start_key_docid(mut self, id: impl Into<String>) -> Self {
        self.start_key_docid = Some(id.into());
        self
    }

    /// `endkey_docid`: among rows with the end key, stop at this doc id.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::new().end_key(json!("k")).end_key_docid("doc-3");
    /// assert_eq!(q, ViewQuery::from_query_pairs([("endkey", "\"k\""), ("endkey_docid", "doc-3")]).unwrap());
    /// ```
    pub fn end_key_docid(mut self, id: impl Into<String>) -> Self {
        self.end_key_docid = Some(id.into());
        self
    }

    /// `inclusive_end`: whether rows with the end key are included (default true).
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert!(ViewQuery::new().resolve(false).unwrap().inclusive_end());
    /// let q = ViewQuery::new().inclusive_end(false).resolve(false).unwrap();
    /// assert!(!q.inclusive_end());
    /// ```
    pub fn inclusive_end(mut self, inclusive: bool) -> Self {
        self.inclusive_end = Some(inclusive);
        self
    }

    /// `descending`: walk the index from the largest key down.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert!(ViewQuery::from_query_pairs([("descending", "true")]).unwrap().descending);
    /// assert_eq!(ViewQuery::new().descending(true), ViewQuery::from_query_pairs([("descending", "true")]).unwrap());
    /// ```
    pub fn descending(mut self, descending: bool) -> Self {
        self.descending = descending;
        self
    }

    /// `limit`: the most rows (or groups) returned.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert_eq!(ViewQuery::new().limit(10).limit, Some(10));
    /// ```
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// `skip`: rows (or groups) dropped before the first returned one.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// let page_3 = ViewQuery::new().skip(20).limit(10);
    /// assert_eq!((page_3.skip, page_3.limit), (20, Some(10)));
    /// ```
    pub fn skip(mut self, skip: u64) -> Self {
        self.skip = skip;
        self
    }

    /// `reduce`: whether a reduce view reduces (default true); `true` is an
    /// error on a map-only view.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert!(ViewQuery::new().resolve(true).unwrap().reduce);
    /// assert!(!ViewQuery::new().reduce(false).resolve(true).unwrap().reduce);
    /// let err = ViewQuery::new().reduce(true).resolve(false).unwrap_err();
    /// assert_eq!(err.reason(), "Reduce is invalid for map-only views.");
    /// ```
    pub fn reduce(mut self, reduce: bool) -> Self {
        self.reduce = Some(reduce);
        self
    }

    /// `group`: reduce per distinct key.
    ///
    /// ```
    /// use settee::view::{GroupLevel, ViewQuery};
    /// let q = ViewQuery::new().group(true).resolve(true).unwrap();
    /// assert_eq!(q.group_level, GroupLevel::Exact);
    /// assert_eq!(ViewQuery::new().resolve(true).unwrap().group_level, GroupLevel::All);
    /// ```
    pub fn group(mut self, group: bool) -> Self {
        self.group = Some(group);
        self
    }

    /// `group_level`: reduce per array-key prefix of this length (0: everything).
    ///
    /// ```
    /// use settee::view::{GroupLevel, ViewQuery};
    /// let q = ViewQuery::new().group_level(2).resolve(true).unwrap();
    /// assert_eq!(q.group_level, GroupLevel::Level(2));
    /// let err = ViewQuery::new().group(false).group_level(1).resolve(true).unwrap_err();
    /// assert_eq!(err.reason(), "Can't specify group=false and group_level>0 at the same time");
    /// ```
    pub fn group_level(mut self, level: u64) -> Self {
        self.group_level = Some(level);
        self
    }

    /// `include_docs`: add each row's document (map queries only).
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert!(ViewQuery::new().include_docs(true).reduce(false).resolve(true).is_ok());
    /// let err = ViewQuery::new().include_docs(true).resolve(true).unwrap_err();
    /// assert_eq!(err.reason(), "`include_docs` is invalid for reduce");
    /// ```
    pub fn include_docs(mut self, include: bool) -> Self {
        self.include_docs = include;
        self
    }

    /// `conflicts`: with `include_docs`, add `_conflicts` to the documents.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::new().include_docs(true).conflicts(true);
    /// assert!(q.resolve(false).is_ok());
    /// assert_eq!(q.resolve(true).unwrap_err().name(), "query_parse_error");
    /// ```
    pub fn conflicts(mut self, conflicts: bool) -> Self {
        self.conflicts = Some(conflicts);
        self
    }

    /// `update`: whether the index is brought up to date first (see [`UpdateMode`]).
    ///
    /// ```
    /// use settee::view::{UpdateMode, ViewQuery};
    /// let q = ViewQuery::new().update(UpdateMode::Lazy);
    /// assert_eq!(q.update, UpdateMode::Lazy);
    /// ```
    pub fn update(mut self, mode: UpdateMode) -> Self {
        self.update = mode;
        self
    }

    /// `update_seq`: report the sequence the index reflects.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert!(ViewQuery::new().update_seq(true).update_seq);
    /// ```
    pub fn update_seq(mut self, report: bool) -> Self {
        self.update_seq = report;
        self
    }

    /// Parses URL query parameters (already percent-decoded), as CouchDB does
    /// for `GET .../_view/v?...`. Unknown parameters are ignored.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// let q = ViewQuery::from_query_pairs([("key", "\"a\""), ("limit", "2")]).unwrap();
    /// assert_eq!(q.limit, Some(2));
    /// let err = ViewQuery::from_query_pairs([("limit", "-1")]).unwrap_err();
    /// assert_eq!(err.reason(), "Invalid value for positive integer: \"-1\"");
    /// ```
    pub fn from_query_pairs<'a, I>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut query = ViewQuery::new();
        query.apply_query_pairs(pairs)?;
        Ok(query)
    }

    /// Parses the members of a POST body (`{"keys": [..], "limit": 2, ...}`):
    /// values are already JSON, so keys are not decoded again.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let body = json!({"keys": ["a", "b"], "group": true});
    /// let q = ViewQuery::from_body(&body).unwrap();
    /// assert_eq!(q.keys.as_ref().map(Vec::len), Some(2));
    /// ```
    pub fn from_body(body: &Value) -> Result<Self> {
        let mut query = ViewQuery::new();
        query.apply_body(body)?;
        Ok(query)
    }

    /// Applies a POST body on top of this query (CouchDB parses the body first,
    /// then lets the query string override it).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let mut q = ViewQuery::new();
    /// q.apply_body(&json!({"keys": ["a", "b"], "limit": 1})).unwrap();
    /// q.apply_query_pairs([("limit", "5")]).unwrap();
    /// assert_eq!((q.keys.as_ref().map(Vec::len), q.limit), (Some(2), Some(5)));
    /// let err = q.apply_body(&json!({"keys": "a"})).unwrap_err();
    /// assert_eq!(err.reason(), "`keys` member must be an array.");
    /// ```
    pub fn apply_body(&mut self, body: &Value) -> Result<()> {
        self.apply_body_text(body, None)
    }

    /// [`ViewQuery::apply_body`] for a body parsed from `text`: integers in
    /// the keys beyond `serde_json`'s range keep their exact values, as
    /// CouchDB's bignums do (`{"key": -12345678901234567890}` matches no
    /// emitted double).
    ///
    /// ```
    /// use serde_json::Value;
    /// use settee::view::ViewQuery;
    /// let text = r#"{"key": -12345678901234567890}"#;
    /// let body: Value = serde_json::from_str(text).unwrap();
    /// let mut q = ViewQuery::new();
    /// q.apply_body_text(&body, Some(text)).unwrap();
    /// assert!(q.start_key.is_some());
    /// ```
    pub fn apply_body_text(&mut self, body: &Value, text: Option<&str>) -> Result<()> {
        let members = body
            .as_object()
            .ok_or_else(|| Error::bad_request("Request body must be a JSON object"))?;
        if let Some(keys) = members.get("keys") {
            if !keys.is_array() {
                return Err(Error::bad_request("`keys` member must be an array."));
            }
        }
        let exact = text
            .and_then(ExactIntegers::scan)
            .and_then(|e| e.split(members.values()))
            .unwrap_or_default();
        for (i, (name, value)) in members.iter().enumerate() {
            let exact = exact.get(i).and_then(Option::as_ref);
            self.apply(name, ParamValue::Json(value), exact)?;
        }
        self.collapse_single_key();
        Ok(())
    }

    /// Applies URL query parameters on top of this query.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let mut q = ViewQuery::new().limit(3);
    /// q.apply_query_pairs([("startkey", "[\"a\"]"), ("skip", "2")]).unwrap();
    /// assert_eq!((q.start_key, q.skip, q.limit), (Some(json!(["a"])), 2, Some(3)));
    /// // A one-key `keys` is a `key` (CouchDB 3.3+).
    /// let mut one = ViewQuery::new();
    /// one.apply_query_pairs([("keys", "[\"x\"]")]).unwrap();
    /// assert_eq!(one, ViewQuery::new().key(json!("x")));
    /// ```
    pub fn apply_query_pairs<'a, I>(&mut self, pairs: I) -> Result<()>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        for (name, value) in pairs {
            self.apply(name, ParamValue::Text(value), None)?;
        }
        self.collapse_single_key();
        Ok(())
    }

    /// CouchDB 3.3+ treats `keys=[K]` as `key=K` (a single-key fetch is a range).
    fn collapse_single_key(&mut self) {
        if let Some(keys) = &self.keys {
            if keys.len() == 1 {
                let key = keys[0].clone();
                let exact = self.exact.keys.first().cloned().flatten();
                self.keys = None;
                self.exact.keys.clear();
                self.start_key = Some(key.clone());
                self.end_key = Some(key);
                self.exact.start = exact;
                self.exact.end = self.exact.start.clone();
            }
        }
    }

    /// Applies one parameter. `exact` holds the exact integers of a body
    /// member's JSON text; a query-string value is its own text.
    fn apply(
        &mut self,
        name: &str,
        value: ParamValue<'_>,
        exact: Option<&ExactIntegers>,
    ) -> Result<()> {
        // Only key parameters can hold numbers worth keeping exact.
        let exact = || match value {
            ParamValue::Text(text) => ExactIntegers::scan(text),
            ParamValue::Json(_) => exact.cloned(),
        };
        match name {
            "key" => {
                let key = value.json()?;
                self.start_key = Some(key.clone());
                self.end_key = Some(key);
                self.exact.start = exact();
                self.exact.end = self.exact.start.clone();
            }
            "keys" => match value.json()? {
                Value::Array(keys) => {
                    self.exact.keys = exact().and_then(|e| e.split(&keys)).unwrap_or_default();
                    self.keys = Some(keys);
                }
                _ => return Err(Error::query_parse("`keys` must be an array of strings.")),
            },
            "startkey" | "start_key" => {
                self.start_key = Some(value.json()?);
                self.exact.start = exact();
            }
            "endkey" | "end_key" => {
                self.end_key = Some(value.json()?);
                self.exact.end = exact();
            }
            "startkey_docid" | "start_key_doc_id" => self.start_key_docid = Some(value.text()),
            "endkey_docid" | "end_key_doc_id" => self.end_key_docid = Some(value.text()),
            "limit" => self.limit = Some(value.non_negative_int()?),
            "skip" => self.skip = value.non_negative_int()?,
            "group_level" => self.group_level = Some(value.non_negative_int()?),
            "reduce" => self.reduce = Some(value.boolean()?),
            "group" => self.group = Some(value.boolean()?),
            "descending" => self.descending = value.boolean()?,
            "inclusive_end" => self.inclusive_end = Some(value.boolean()?),
            "include_docs" => self.include_docs = value.boolean()?,
            "conflicts" => self.conflicts = Some(value.boolean()?),
            "update_seq" => self.update_seq = value.boolean()?,
            "sorted" => self.sorted = value.boolean()?,
            "attachments" | "att_encoding_info" => self.attachments |= value.boolean()?,
            "stale" => match value.as_str() {
                Some("ok") => {
                    self.stable = true;
                    self.update = UpdateMode::False;
                }
                Some("update_after") => {
                    self.stable = true;
                    self.update = UpdateMode::Lazy;
                }
                _ => return Err(Error::query_parse("Invalid value for `stale`.")),
            },
            "stable" => match value.as_str() {
                Some("true") => self.stable = true,
                Some("false") => self.stable = false,
                _ => return Err(Error::query_parse("Invalid value for `stable`.")),
            },
            "update" => match value.as_str() {
                Some("true") => self.update = UpdateMode::True,
                Some("false") => self.update = UpdateMode::False,
                Some("lazy") => self.update = UpdateMode::Lazy,
                _ => return Err(Error::query_parse("Invalid value for `update`.")),
            },
            // CouchDB keeps unknown parameters aside and ignores them.
            _ => {}
        }
        Ok(())
    }

    /// The row limit under a server's `query_limit` (CouchDB's
    /// `[query_server_config] query_limit`, [`DEFAULT_QUERY_LIMIT`] unless
    /// configured): `limit` when it is within it, the `query_limit` itself
    /// when no `limit` was given, else CouchDB's `query_parse_error`.
    ///
    /// ```
    /// use settee::view::{ViewQuery, DEFAULT_QUERY_LIMIT};
    /// assert_eq!(ViewQuery::new().limit(5).limit_within(10).unwrap(), 5);
    /// assert_eq!(ViewQuery::new().limit_within(10).unwrap(), 10);
    /// let err = ViewQuery::new().limit(11).limit_within(10).unwrap_err();
    /// assert_eq!((err.status(), err.reason().as_str()), (400, "Limit is too large, must not exceed 10"));
    /// assert!(ViewQuery::new().limit(DEFAULT_QUERY_LIMIT + 1).limit_within(DEFAULT_QUERY_LIMIT).is_err());
    /// ```
    pub fn limit_within(&self, query_limit: u64) -> Result<u64> {
        match self.limit {
            Some(limit) if limit > query_limit => Err(Error::query_parse(format!(
                "Limit is too large, must not exceed {query_limit}"
            ))),
            Some(limit) => Ok(limit),
            None => Ok(query_limit),
        }
    }

    /// Checks the options against the view they query and fixes the defaults,
    /// with CouchDB's checks in CouchDB's order.
    ///
    /// `view_has_reduce` says whether the view defines a reduce function.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// let err = ViewQuery::new().group(true).resolve(false).unwrap_err();
    /// assert_eq!(err.reason(), "Invalid use of grouping on a map view.");
    /// ```
    pub fn resolve(&self, view_has_reduce: bool) -> Result<ResolvedQuery> {
        let group_level = self.determine_group_level()?;
        let reduce = match (view_has_reduce, self.reduce) {
            (false, Some(true)) => {
                return Err(Error::query_parse("Reduce is invalid for map-only views."))
            }
            (true, None) | (true, Some(true)) => true,
            _ => false,
        };
        if reduce && group_level != Some(GroupLevel::Exact) && self.keys.is_some() {
            return Err(Error::query_parse(
                "Multi-key fetches for reduce views must use `group=true`",
            ));
        }
        if matches!(&self.keys, Some(keys) if !keys.is_empty())
            && (self.start_key.is_some() || self.end_key.is_some())
        {
            return Err(Error::query_parse(
                "`keys` is incompatible with `key`, `start_key` and `end_key`",
            ));
        }
        let group_level = match (reduce, group_level) {
            (_, None) | (_, Some(GroupLevel::All)) => GroupLevel::All,
            (true, Some(level)) => level,
            (false, Some(_)) => {
                return Err(Error::query_parse("Invalid use of grouping on a map view."))
            }
        };
        if reduce && self.include_docs {
            return Err(Error::query_parse("`include_docs` is invalid for reduce"));
        }
        if reduce && self.conflicts.is_some() {
            return Err(Error::query_parse(
                "`conflicts` is invalid for reduce views.",
            ));
        }
        Ok(ResolvedQuery {
            options: self.clone(),
            reduce,
            group_level,
        })
    }

    fn determine_group_level(&self) -> Result<Option<GroupLevel>> {
        match (self.group, self.group_level) {
            (None, None) | (Some(false), None) => Ok(None),
            (Some(false), Some(level)) if level > 0 => Err(Error::query_parse(
                "Can't specify group=false and group_level>0 at the same time",
            )),
            (Some(true), None) => Ok(Some(GroupLevel::Exact)),
            (_, Some(0)) => Ok(Some(GroupLevel::All)),
            (_, Some(level)) => Ok(Some(GroupLevel::Level(level as usize))),
        }
    }
}

/// CouchDB's default `query_limit` (`?MAX_VIEW_LIMIT`, 2^28): the most rows
/// one view query returns, and the largest `limit` it accepts.
pub const DEFAULT_QUERY_LIMIT: u64 = 0x1000_0000;

/// A query checked against its view: what the engine executes.
///
/// ```
/// use settee::view::{GroupLevel, ViewQuery};
/// let resolved = ViewQuery::new().group_level(1).resolve(true).unwrap();
/// assert!(resolved.reduce);
/// assert_eq!(resolved.group_level, GroupLevel::Level(1));
/// assert_eq!(resolved.options.group_level, Some(1));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuery {
    /// The options as given.
    pub options: ViewQuery,
    /// Whether rows are reduced.
    pub reduce: bool,
    /// How reduced rows are grouped (`All` for map queries).
    pub group_level: GroupLevel,
}

impl ResolvedQuery {
    /// `inclusive_end` with its default applied.
    ///
    /// ```
    /// use settee::view::ViewQuery;
    /// assert!(ViewQuery::new().resolve(false).unwrap().inclusive_end());
    /// ```
    pub fn inclusive_end(&self) -> bool {
        self.options.inclusive_end.unwrap_or(true)
    }
}

/// One parameter value: text from a query string, or JSON from a POST body.
/// CouchDB reports bad values in Erlang term syntax, which differs between the
/// two (`"3"` for a query string, `<<"3">>` for a JSON string).
enum ParamValue<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl ParamValue<'_> {
    fn json(&self) -> Result<Value> {
        match self {
            ParamValue::Json(value) => Ok((*value).clone()),
            ParamValue::Text(text) => {
                serde_json::from_str(text).map_err(|_| Error::bad_request("invalid UTF-8 JSON"))
            }
        }
    }

    fn text(&self) -> String {
        match self {
            ParamValue::Text(text) => text.to_string(),
            ParamValue::Json(Value::String(s)) => s.clone(),
            ParamValue::Json(value) => value.to_string(),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Text(text) => Some(text),
            ParamValue::Json(Value::String(s)) => Some(s),
            ParamValue::Json(_) => None,
        }
    }

    fn boolean(&self) -> Result<bool> {
        if let ParamValue::Json(Value::Bool(b)) = self {
            return Ok(*b);
        }
        let parsed = self.as_str().and_then(|s| match s.to_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        parsed.ok_or_else(|| {
            let shown = match self {
                // CouchDB turns a JSON string into a charlist before formatting it.
                ParamValue::Json(Value::String(s)) => erlang_charlist(s),
                _ => self.erlang_term(),
            };
            Error::query_parse(format!("Invalid boolean parameter: {shown}"))
        })
    }

    fn non_negative_int(&self) -> Result<u64> {
        let parsed: Option<i128> = match self {
            ParamValue::Json(Value::Number(n)) if !n.is_f64() => {
                n.as_i64().map(i128::from).or(n.as_u64().map(i128::from))
            }
            ParamValue::Json(_) => None,
            ParamValue::Text(text) => parse_erlang_integer(text),
        };
        let Some(int) = parsed else {
            return Err(Error::query_parse(format!(
                "Invalid value for integer: {}",
                self.erlang_term()
            )));
        };
        u64::try_from(int).map_err(|_| {
            Error::query_parse(format!(
                "Invalid value for positive integer: {}",
                self.erlang_term()
            ))
        })
    }

    /// The value as Erlang's `~p` prints it in CouchDB's error messages.
    fn erlang_term(&self) -> String {
        match self {
            ParamValue::Text(text) => erlang_charlist(text),
            ParamValue::Json(value) => erlang_json_term(value),
        }
    }
}

/// `list_to_integer/1`: an optional sign and decimal digits, nothing else.
fn parse_erlang_integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i128>().ok().or_else(|| {
        Some(if text.starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        })
    })
}

/// `~p` of an Erlang string (a list of bytes): quoted when printable, a list of
/// integers otherwise; the empty string is `[]`.
fn erlang_charlist(text: &str) -> String {
    if text.is_empty() {
        return "[]".into();
    }
    let printable = text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\n' | b'\r' | b'\t'));
    if !printable {
        let bytes: Vec<String> = text.bytes().map(|b| b.to_string()).collect();
        return format!("[{}]", bytes.join(","));
    }
    format!("\"{}\"", erlang_escape(text))
}

fn erlang_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// `~p` of a JSON value as CouchDB's JSON decoder represents it.
fn erlang_json_term(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => erlang_float(f),
            _ => n.to_string(),
        },
        Value::String(s) if s.is_ascii() => format!("<<\"{}\">>", erlang_escape(s)),
        Value::String(s) => format!("<<\"{}\"/utf8>>", erlang_escape(s)),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(erlang_json_term).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(members) => format!("{{[{}]}}", erlang_members(members)),
    }
}

fn erlang_members(members: &Map<String, Value>) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| {
            format!(
                "{{{},{}}}",
                erlang_json_term(&Value::String(k.clone())),
                erlang_json_term(v)
            )
        })
        .collect();
    members.join(",")
}

/// Erlang prints floats with the shortest round-trip digits and always a
/// fractional part (`3.0`, `1.5e21`).
fn erlang_float(f: f64) -> String {
    let shortest = format!("{f:?}");
    match shortest.split_once('e') {
        Some((mantissa, exp)) if !mantissa.contains('.') => format!("{mantissa}.0e{exp}"),
        _ => shortest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_err(pairs: &[(&str, &str)]) -> String {
        ViewQuery::from_query_pairs(pairs.iter().copied())
            .unwrap_err()
            .reason()
    }

    #[test]
    fn query_string_errors_quote_like_erlang() {
        assert_eq!(
            parse_err(&[("limit", "-1")]),
            "Invalid value for positive integer: \"-1\""
        );
        assert_eq!(
            parse_err(&[("skip", "abc")]),
            "Invalid value for integer: \"abc\""
        );
        assert_eq!(parse_err(&[("limit", "")]), "Invalid value for integer: []");
        assert_eq!(
            parse_err(&[("descending", "yes")]),
            "Invalid boolean parameter: \"yes\""
        );
        assert_eq!(
            parse_err(&[("include_docs", "1")]),
            "Invalid boolean parameter: \"1\""
        );
        assert_eq!(
            parse_err(&[("stale", "bogus")]),
            "Invalid value for `stale`."
        );
        assert_eq!(
            parse_err(&[("update", "bogus")]),
            "Invalid value for `update`."
        );
        assert_eq!(parse_err(&[("stable", "x")]), "Invalid value for `stable`.");
    }

    #[test]
    fn body_errors_quote_like_erlang() {
        let err = ViewQuery::from_body(&json!({"limit": "3"})).unwrap_err();
        assert_eq!(err.reason(), "Invalid value for integer: <<\"3\">>");
        let err = ViewQuery::from_body(&json!({"limit": -1})).unwrap_err();
        assert_eq!(err.reason(), "Invalid value for positive integer: -1");
        let err = ViewQuery::from_body(&json!({"limit": 1.5})).unwrap_err();
        assert_eq!(err.reason(), "Invalid value for integer: 1.5");
        let err = ViewQuery::from_body(&json!({"descending": "yes"})).unwrap_err();
        assert_eq!(err.reason(), "Invalid boolean parameter: \"yes\"");
        let err = ViewQuery::from_body(&json!({"keys": "x"})).unwrap_err();
        assert_eq!(
            (err.name(), err.reason().as_str()),
            ("bad_request", "`keys` member must be an array.")
        );
        let err = ViewQuery::from_body(&json!([1, 2])).unwrap_err();
        assert_eq!(err.reason(), "Request body must be a JSON object");
    }

    #[test]
    fn booleans_are_case_insensitive() {
        let q = ViewQuery::from_query_pairs([("descending", "TRUE"), ("group", "False")]).unwrap();
        assert!(q.descending);
        assert_eq!(q.group, Some(false));
    }

    #[test]
    fn invalid_json_key_is_a_bad_request() {
        let err = ViewQuery::from_query_pairs([("startkey", "not-json")]).unwrap_err();
        assert_eq!((err.name(), err.status()), ("bad_request", 400));
        assert_eq!(err.reason(), "invalid UTF-8 JSON");
    }

    #[test]
    fn stale_maps_to_update_modes() {
        let q = ViewQuery::from_query_pairs([("stale", "ok")]).unwrap();
        assert_eq!(q.update, UpdateMode::False);
        let q = ViewQuery::from_query_pairs([("stale", "update_after")]).unwrap();
        assert_eq!(q.update, UpdateMode::Lazy);
        let q = ViewQuery::from_query_pairs([("update", "lazy")]).unwrap();
        assert_eq!(q.update, UpdateMode::Lazy);
    }

    #[test]
    fn single_keys_become_key() {
        let q = ViewQuery::from_query_pairs([("key", "\"a\""), ("keys", "[\"a\"]")]).unwrap();
        assert_eq!(q.keys, None);
        assert_eq!(q.start_key, Some(json!("a")));
        assert_eq!(q.end_key, Some(json!("a")));
        // A single-key fetch on a reduce view needs no grouping.
        let resolved = q.resolve(true).unwrap();
        assert_eq!(resolved.group_level, GroupLevel::All);
    }

    #[test]
    fn body_then_query_string_overrides() {
        let mut q = ViewQuery::from_body(&json!({"limit": 5, "foo": "bar"})).unwrap();
        q.apply_query_pairs([("limit", "2")]).unwrap();
        assert_eq!(q.limit, Some(2));
    }

    #[test]
    fn resolve_checks_in_couchdb_order() {
        let reason = |q: ViewQuery, reduce: bool| q.resolve(reduce).unwrap_err().reason();
        assert_eq!(
            reason(ViewQuery::new().group(false).group_level(2), true),
            "Can't specify group=false and group_level>0 at the same time"
        );
        assert_eq!(
            reason(ViewQuery::new().reduce(true), false),
            "Reduce is invalid for map-only views."
        );
        assert_eq!(
            reason(ViewQuery::new().keys(vec![json!(1), json!(2)]), true),
            "Multi-key fetches for reduce views must use `group=true`"
        );
        assert_eq!(
            reason(
                ViewQuery::new()
                    .keys(vec![json!(1), json!(2)])
                    .group_level(1),
                true
            ),
            "Multi-key fetches for reduce views must use `group=true`"
        );
        assert_eq!(
            reason(
                ViewQuery::new()
                    .keys(vec![json!(1), json!(2)])
                    .key(json!(0)),
                false
            ),
            "`keys` is incompatible with `key`, `start_key` and `end_key`"
        );
        assert_eq!(
            reason(ViewQuery::new().group(true), false),
            "Invalid use of grouping on a map view."
        );
        assert_eq!(
            reason(ViewQuery::new().group(true).reduce(false), true),
            "Invalid use of grouping on a map view."
        );
        assert_eq!(
            reason(ViewQuery::new().include_docs(true), true),
            "`include_docs` is invalid for reduce"
        );
        assert_eq!(
            reason(ViewQuery::new().conflicts(true), true),
            "`conflicts` is invalid for reduce views."
        );
    }

    #[test]
    fn resolve_accepts_valid_combinations() {
        let r = ViewQuery::new().resolve(true).unwrap();
        assert!(r.reduce);
        assert_eq!(r.group_level, GroupLevel::All);
        let r = ViewQuery::new()
            .group(true)
            .group_level(2)
            .resolve(true)
            .unwrap();
        assert_eq!(r.group_level, GroupLevel::Level(2));
        let r = ViewQuery::new().group(true).resolve(true).unwrap();
        assert_eq!(r.group_level, GroupLevel::Exact);
        let r = ViewQuery::new()
            .reduce(false)
            .include_docs(true)
            .resolve(true)
            .unwrap();
        assert!(!r.reduce);
        // group=false with group_level=0 is fine, and conflicts on a map view is ignored.
        ViewQuery::new()
            .group(false)
            .group_level(0)
            .resolve(true)
            .unwrap();
        ViewQuery::new().conflicts(true).resolve(false).unwrap();
        let r = ViewQuery::new()
            .keys(vec![json!(1), json!(2)])
            .group(true)
            .resolve(true)
            .unwrap();
        assert_eq!(r.group_level, GroupLevel::Exact);
    }

    #[test]
    fn vectors_from_couchdb_error_table() {
        // Every query-option case of ../shared/vectors/view_query_errors.json
        // that does not need an index to answer.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/view_query_errors.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            panic!("missing {path}");
        };
        let table: Value = serde_json::from_str(&text).unwrap();
        let mut checked = 0;
        for case in table["cases"].as_array().unwrap() {
            let request = case["request"].as_str().unwrap();
            let (has_reduce, params) = match request {
                "map-only view ?group=true" => (false, vec![("group", "true")]),
                "map-only view ?reduce=true" => (false, vec![("reduce", "true")]),
                "reduce view ?include_docs=true (reduce not false)" => {
                    (true, vec![("include_docs", "true")])
                }
                "reduce view ?conflicts=true" => (true, vec![("conflicts", "true")]),
                "reduce view, keys=[k1,k2] without group=true" => {
                    (true, vec![("keys", "[\"k1\",\"k2\"]")])
                }
                "?keys=[1,2]&key=0 (or startkey/endkey with keys)" => {
                    (false, vec![("keys", "[1,2]"), ("key", "0")])
                }
                "?group=false&group_level=2" => {
                    (true, vec![("group", "false"), ("group_level", "2")])
                }
                "?group_level=-1" => (true, vec![("group_level", "-1")]),
                "?limit=-1" => (false, vec![("limit", "-1")]),
                "?skip=abc" => (false, vec![("skip", "abc")]),
                "?descending=yes" => (false, vec![("descending", "yes")]),
                "?stale=foo" => (false, vec![("stale", "foo")]),
                "?update=foo" => (false, vec![("update", "foo")]),
                "?stable=foo" => (false, vec![("stable", "foo")]),
                _ => continue,
            };
            let err = ViewQuery::from_query_pairs(params)
                .and_then(|q| q.resolve(has_reduce))
                .unwrap_err();
            assert_eq!(
                err.status() as u64,
                case["status"].as_u64().unwrap(),
                "{request}"
            );
            assert_eq!(err.name(), case["error"].as_str().unwrap(), "{request}");
            assert_eq!(err.reason(), case["reason"].as_str().unwrap(), "{request}");
            checked += 1;
        }
        assert_eq!(checked, 14);
    }
}
