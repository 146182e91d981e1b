//! Design documents: CouchDB's save-time validation, and the view group they
//! define (the distinct map functions, the reduce functions on top of them, and
//! the signature that names the group's index).
//!
//! The signature covers only what changes index contents (views, `language`,
//! the design `options`, `views.lib`), so editing a `validate_doc_update` or a
//! filter rebuilds nothing, and two design documents with identical views share
//! one index.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::collate::Collation;
use crate::error::{Error, Result};
use crate::js::FunctionKind;
use crate::view::reduce::BuiltinReducer;

/// A view's reduce function.
///
/// ```
/// use serde_json::json;
/// use settee::view::reduce::BuiltinReducer;
/// use settee::view::{DesignDoc, Reducer};
///
/// let ddoc = DesignDoc::parse(&json!({"_id": "_design/d", "views": {
///     "n": {"map": "function(doc) { emit(doc._id, 1); }", "reduce": "_count"},
///     "js": {"map": "function(doc) { emit(doc._id, 1); }",
///            "reduce": "function(k, v) { return v.length; }"}
/// }})).unwrap();
/// let reducer = |name| {
///     let at = ddoc.group.view(name).unwrap();
///     ddoc.group.maps[at.map].reduces[at.reduce.unwrap()].reducer.clone()
/// };
/// assert_eq!(reducer("n"), Reducer::Builtin(BuiltinReducer::Count));
/// assert!(matches!(reducer("js"), Reducer::JavaScript(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Reducer {
    /// A built-in reducer run in Rust (`_sum`, `_count`, ...).
    Builtin(BuiltinReducer),
    /// A JavaScript `function(keys, values, rereduce)` source.
    JavaScript(String),
}

/// A view with a reduce function (see [`Reducer`] for an example).
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceView {
    /// The view name.
    pub name: String,
    /// The `reduce` member as written (part of the signature).
    pub source: String,
    /// What runs it.
    pub reducer: Reducer,
}

/// One distinct map function of a group, with every view that uses it.
///
/// Views with the same map source and the same `options` share one index tree,
/// as in CouchDB.
///
/// ```
/// use serde_json::json;
/// use settee::collate::Collation;
/// use settee::view::DesignDoc;
///
/// let map = "function(doc) { emit(doc.type, 1); }";
/// let ddoc = DesignDoc::parse(&json!({"_id": "_design/d", "views": {
///     "all": {"map": map},
///     "count": {"map": map, "reduce": "_count"},
///     "raw": {"map": map, "options": {"collation": "raw"}}
/// }})).unwrap();
/// assert_eq!(ddoc.group.maps.len(), 2); // `all` and `count` share a tree
/// let shared = &ddoc.group.maps[ddoc.group.view("count").unwrap().map];
/// assert_eq!((shared.map_names.as_slice(), shared.reduces[0].name.as_str()), (&["all".to_owned()][..], "count"));
/// assert_eq!(shared.map_source(), Some(map));
/// let raw = &ddoc.group.maps[ddoc.group.view("raw").unwrap().map];
/// assert_eq!(raw.collation, Collation::Raw);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MapIndex {
    /// The map function: JavaScript source, or a Mango definition for
    /// `language: "query"`.
    pub map: Value,
    /// The view `options` object.
    pub options: Map<String, Value>,
    /// Key order of this tree.
    pub collation: Collation,
    /// Names of the map-only views over this tree.
    pub map_names: Vec<String>,
    /// The reduce views over this tree.
    pub reduces: Vec<ReduceView>,
}

impl MapIndex {
    /// The map source as a string (JavaScript views).
    pub fn map_source(&self) -> Option<&str> {
        self.map.as_str()
    }
}

/// Where a view name points inside its group ([`ViewGroup::view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewRef {
    /// Index into [`ViewGroup::maps`].
    pub map: usize,
    /// Index into that map's `reduces`, for a reduce view.
    pub reduce: Option<usize>,
}

/// The index definition of one design document: what the indexer builds and
/// what queries read.
///
/// ```
/// use serde_json::json;
/// use settee::view::DesignDoc;
///
/// let views = json!({"v": {"map": "function(doc) { emit(doc.n, null); }"}});
/// let a = DesignDoc::parse(&json!({"_id": "_design/a", "views": views})).unwrap().group;
/// let b = DesignDoc::parse(&json!({"_id": "_design/b", "views": views})).unwrap().group;
/// // Same views, same index: the signature ignores the document's id.
/// assert_eq!(a.signature, b.signature);
/// assert_eq!(a.signature.len(), 32);
/// assert!(a.is_javascript() && !a.include_design());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ViewGroup {
    /// Hex md5 over everything that changes index contents.
    pub signature: String,
    /// `language` (default `"javascript"`).
    pub language: String,
    /// The design `options` object.
    pub options: Map<String, Value>,
    /// `views.lib`, the CommonJS modules map functions may `require`.
    pub lib: Option<Value>,
    /// The distinct map functions, in signature order.
    pub maps: Vec<MapIndex>,
}

impl ViewGroup {
    /// Finds a view by name.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::{DesignDoc, ViewRef};
    ///
    /// let ddoc = DesignDoc::parse(&json!({"_id": "_design/d", "views": {
    ///     "by_n": {"map": "function(doc) { emit(doc.n, 1); }", "reduce": "_sum"}
    /// }})).unwrap();
    /// assert_eq!(ddoc.group.view("by_n"), Some(ViewRef { map: 0, reduce: Some(0) }));
    /// assert_eq!(ddoc.group.view("nope"), None);
    /// ```
    pub fn view(&self, name: &str) -> Option<ViewRef> {
        self.maps.iter().enumerate().find_map(|(i, m)| {
            if m.map_names.iter().any(|n| n == name) {
                return Some(ViewRef {
                    map: i,
                    reduce: None,
                });
            }
            let reduce = m.reduces.iter().position(|r| r.name == name)?;
            Some(ViewRef {
                map: i,
                reduce: Some(reduce),
            })
        })
    }

    /// `options.include_design`: design documents are mapped too.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::DesignDoc;
    /// let ddoc = DesignDoc::parse(&json!({"_id": "_design/d",
    ///     "options": {"include_design": true, "local_seq": true},
    ///     "views": {"v": {"map": "function(doc) { emit(doc._local_seq, null); }"}}})).unwrap();
    /// assert!(ddoc.group.include_design() && ddoc.group.local_seq());
    /// ```
    pub fn include_design(&self) -> bool {
        self.options.get("include_design") == Some(&Value::Bool(true))
    }

    /// `options.local_seq`: documents carry `_local_seq` when mapped.
    pub fn local_seq(&self) -> bool {
        self.options.get("local_seq") == Some(&Value::Bool(true))
    }

    /// Whether this group runs JavaScript (as opposed to Mango or an unknown language).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::DesignDoc;
    /// let ddoc = DesignDoc::parse(&json!({"_id": "_design/d", "language": "erlang",
    ///     "views": {"v": {"map": "fun({Doc}) -> ok end."}}})).unwrap();
    /// assert_eq!(ddoc.group.language, "erlang");
    /// assert!(!ddoc.group.is_javascript());
    /// ```
    pub fn is_javascript(&self) -> bool {
        self.language == "javascript"
    }
}

/// A design document's content that settee acts on.
///
/// ```
/// use serde_json::json;
/// use settee::view::DesignDoc;
///
/// let ddoc = DesignDoc::parse(&json!({
///     "_id": "_design/app",
///     "autoupdate": false,
///     "validate_doc_update": "function(newDoc) { if (!newDoc.type) throw({forbidden: 'type'}); }",
///     "views": {"by_type": {"map": "function(doc) { emit(doc.type, null); }"}}
/// })).unwrap();
/// assert_eq!(ddoc.id, "_design/app");
/// assert!(!ddoc.autoupdate);
/// assert!(ddoc.validate_doc_update.is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DesignDoc {
    /// `_design/...`.
    pub id: String,
    /// The index definition.
    pub group: ViewGroup,
    /// `validate_doc_update` source, if any.
    pub validate_doc_update: Option<String>,
    /// `autoupdate` (default true): whether background indexing builds it.
    pub autoupdate: bool,
}

impl DesignDoc {
    /// Reads a design document, checking its structure exactly as CouchDB does
    /// on save (`invalid_design_doc` errors). Functions are not compiled here;
    /// see [`DesignDoc::compile_check`].
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::DesignDoc;
    ///
    /// let ddoc = DesignDoc::parse(&json!({
    ///     "_id": "_design/app",
    ///     "views": {"by_type": {"map": "function(doc){ emit(doc.type, 1); }", "reduce": "_count"}}
    /// })).unwrap();
    /// assert!(ddoc.group.view("by_type").is_some());
    ///
    /// let err = DesignDoc::parse(&json!({"_id": "_design/x", "views": {"v": {"reduce": "_sum"}}}))
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), "View `v` must contain map function");
    /// ```
    pub fn parse(doc: &Value) -> Result<DesignDoc> {
        let body = doc
            .as_object()
            .ok_or_else(|| Error::bad_request("Document must be a JSON object"))?;
        check_field_types(body)?;
        let views = body.get("views").and_then(Value::as_object);
        if let Some(views) = views {
            for (name, view) in views {
                if name != "lib" && view.get("map").is_none() {
                    return Err(Error::invalid_design_doc(format!(
                        "View `{name}` must contain map function"
                    )));
                }
            }
        }
        let options = body
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if options.get("partitioned") == Some(&Value::Bool(true)) {
            return Err(Error::invalid_design_doc(
                "partitioned option cannot be true in a non-partitioned database.",
            ));
        }
        let language = body
            .get("language")
            .and_then(Value::as_str)
            .unwrap_or("javascript")
            .to_string();
        let lib = views.and_then(|v| v.get("lib")).cloned();
        let maps = collect_maps(views)?;
        let signature = signature(&maps, &language, &options, lib.as_ref());
        Ok(DesignDoc {
            id: body
                .get("_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            group: ViewGroup {
                signature,
                language,
                options,
                lib,
                maps,
            },
            validate_doc_update: body
                .get("validate_doc_update")
                .and_then(Value::as_str)
                .map(str::to_string),
            autoupdate: body.get("autoupdate") != Some(&Value::Bool(false)),
        })
    }

    /// What CouchDB checks when a design document is saved: the structure
    /// ([`DesignDoc::parse`]) and that every function compiles on `pool`.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool};
    /// use settee::view::DesignDoc;
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let err = DesignDoc::check(&json!({"_id": "_design/x",
    ///     "views": {"v": {"map": "function(doc) { emit(doc.a"}}}), &pool).unwrap_err();
    /// assert_eq!(err.name(), "compilation_error");
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn check(doc: &Value, pool: &crate::js::JsPool) -> Result<DesignDoc> {
        let ddoc = DesignDoc::parse(doc)?;
        ddoc.compile_check(|kind, source| pool.compile_check(kind, source))?;
        Ok(ddoc)
    }

    /// Compiles every JavaScript map and reduce function with `compile` (in
    /// practice [`crate::js::JsPool::compile_check`]). A compilation error gets
    /// CouchDB's prefix: "Compilation of the map function in the 'v' view
    /// failed: ...". Groups in a language other than JavaScript are not
    /// compiled (CouchDB accepts them, and fails their queries).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::view::DesignDoc;
    /// use settee::Error;
    ///
    /// let ddoc = DesignDoc::parse(&json!({"_id": "_design/d",
    ///     "views": {"v": {"map": "function(doc) { oops }"}}})).unwrap();
    /// // Any compiler will do; this one rejects sources containing "oops".
    /// let err = ddoc
    ///     .compile_check(|_kind, source| match source.contains("oops") {
    ///         true => Err(Error::Compilation("bad".into())),
    ///         false => Ok(()),
    ///     })
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), "Compilation of the map function in the 'v' view failed: bad");
    /// ```
    pub fn compile_check<F>(&self, mut compile: F) -> Result<()>
    where
        F: FnMut(FunctionKind, &str) -> Result<()>,
    {
        if !self.group.is_javascript() {
            return Ok(());
        }
        let mut check = |kind: FunctionKind, view: &str, source: &str| -> Result<()> {
            compile(kind, source).map_err(|e| match e {
                Error::Compilation(message) => Error::Compilation(format!(
                    "Compilation of the {} function in the '{view}' view failed: {message}",
                    kind.as_str()
                )),
                other => other,
            })
        };
        for map in &self.group.maps {
            let name = map
                .map_names
                .first()
                .or(map.reduces.first().map(|r| &r.name))
                .map(String::as_str)
                .unwrap_or_default();
            check(
                FunctionKind::Map,
                name,
                map.map_source().unwrap_or_default(),
            )?;
            for reduce in &map.reduces {
                if let Reducer::JavaScript(source) = &reduce.reducer {
                    check(FunctionKind::Reduce, &reduce.name, source)?;
                }
            }
        }
        Ok(())
    }
}

/// CouchDB's `validate_ddoc_fields`: each path must have one of the types.
fn check_field_types(body: &Map<String, Value>) -> Result<()> {
    use FieldType::*;
    check_type(body.get("filters"), "filters", &[Object])?;
    check_members(body.get("filters"), "filters", &[String, Object])?;
    check_type(body.get("language"), "language", &[String])?;
    check_type(body.get("lists"), "lists", &[Object])?;
    check_members(body.get("lists"), "lists", &[String, Object])?;
    check_type(body.get("options"), "options", &[Object])?;
    if let Some(Value::Object(options)) = body.get("options") {
        for flag in ["include_design", "local_seq", "partitioned"] {
            check_type(options.get(flag), &format!("options.{flag}"), &[Boolean])?;
        }
    }
    check_type(body.get("rewrites"), "rewrites", &[Array, String])?;
    check_type(body.get("shows"), "shows", &[Object])?;
    check_members(body.get("shows"), "shows", &[String, Object])?;
    check_type(body.get("updates"), "updates", &[Object])?;
    check_members(body.get("updates"), "updates", &[String, Object])?;
    check_type(
        body.get("validate_doc_update"),
        "validate_doc_update",
        &[String],
    )?;
    check_type(body.get("views"), "views", &[Object])?;
    if let Some(Value::Object(views)) = body.get("views") {
        check_type(views.get("lib"), "views.lib", &[Object])?;
        let map_type = if body.get("language").and_then(Value::as_str) == Some("query") {
            Object
        } else {
            String
        };
        for (name, view) in views {
            check_type(Some(view), &format!("views.{name}"), &[Object])?;
            if name == "lib" {
                continue;
            }
            check_type(view.get("map"), &format!("views.{name}.map"), &[map_type])?;
            check_type(
                view.get("reduce"),
                &format!("views.{name}.reduce"),
                &[String],
            )?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum FieldType {
    Object,
    String,
    Array,
    Boolean,
}

impl FieldType {
    fn matches(self, value: &Value) -> bool {
        match self {
            FieldType::Object => value.is_object(),
            FieldType::String => value.is_string(),
            FieldType::Array => value.is_array(),
            FieldType::Boolean => value.is_boolean(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldType::Object => "object",
            FieldType::String => "string",
            FieldType::Array => "array",
            FieldType::Boolean => "boolean",
        }
    }
}

fn check_type(value: Option<&Value>, path: &str, types: &[FieldType]) -> Result<()> {
    match value {
        Some(value) if !types.iter().any(|t| t.matches(value)) => {
            let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
            Err(Error::invalid_design_doc(format!(
                "`{path}` field must have {} type",
                names.join(" or ")
            )))
        }
        _ => Ok(()),
    }
}

fn check_members(value: Option<&Value>, path: &str, types: &[FieldType]) -> Result<()> {
    if let Some(Value::Object(members)) = value {
        for (name, member) in members {
            check_type(Some(member), &format!("{path}.{name}"), types)?;
        }
    }
    Ok(())
}

/// Groups views by (map, options) and sorts the groups, so the signature and
/// tree numbering do not depend on view order in the document.
fn collect_maps(views: Option<&Map<String, Value>>) -> Result<Vec<MapIndex>> {
    let mut by_definition: BTreeMap<String, MapIndex> = BTreeMap::new();
    for (name, view) in views.into_iter().flatten() {
        if name == "lib" {
            continue;
        }
        let (Some(map), Some(view)) = (view.get("map"), view.as_object()) else {
            continue;
        };
        let options = view
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let definition = serde_json::to_string(&(map, &options)).expect("JSON serialises");
        let entry = by_definition.entry(definition).or_insert_with(|| MapIndex {
            map: map.clone(),
            collation: Collation::from_option(options.get("collation")),
            options,
            map_names: Vec::new(),
            reduces: Vec::new(),
        });
        match view.get("reduce").and_then(Value::as_str) {
            None => entry.map_names.push(name.clone()),
            Some(source) => {
                let reducer = match BuiltinReducer::parse(source) {
                    Some(builtin) => Reducer::Builtin(builtin?),
                    None => Reducer::JavaScript(source.to_string()),
                };
                entry.reduces.push(ReduceView {
                    name: name.clone(),
                    source: source.to_string(),
                    reducer,
                });
            }
        }
    }
    Ok(by_definition.into_values().collect())
}

/// md5 over a canonical serialisation of everything that changes index
/// contents. `views.lib` members are sorted (CouchDB's `sort_lib`).
fn signature(
    maps: &[MapIndex],
    language: &str,
    options: &Map<String, Value>,
    lib: Option<&Value>,
) -> String {
    let views: Vec<Value> = maps
        .iter()
        .map(|m| {
            let reduces: Vec<Value> = m
                .reduces
                .iter()
                .map(|r| serde_json::json!([r.name, r.source]))
                .collect();
            serde_json::json!([m.map, m.options, m.map_names, reduces])
        })
        .collect();
    let canonical = serde_json::json!([
        views,
        language,
        options,
        lib.map(sorted_members).unwrap_or(Value::Null)
    ]);
    let digest = Md5::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sorted_members(value: &Value) -> Value {
    match value {
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_members(v)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAP: &str = "function(doc) { emit(doc.k, doc.v); }";

    fn reason(doc: Value) -> (u16, String, String) {
        let err = DesignDoc::parse(&doc).unwrap_err();
        (err.status(), err.name().to_string(), err.reason())
    }

    #[test]
    fn field_types_match_couchdb_reasons() {
        let cases = [
            (
                json!({"views": null}),
                "`views` field must have object type",
            ),
            (json!({"views": []}), "`views` field must have object type"),
            (
                json!({"views": {"a": MAP}}),
                "`views.a` field must have object type",
            ),
            (
                json!({"views": {"v": {"map": 42}}}),
                "`views.v.map` field must have string type",
            ),
            (
                json!({"views": {"v": {"map": null}}}),
                "`views.v.map` field must have string type",
            ),
            (
                json!({"views": {"v": {"map": MAP, "reduce": 5}}}),
                "`views.v.reduce` field must have string type",
            ),
            (
                json!({"views": {"lib": "x", "v": {"map": MAP}}}),
                "`views.lib` field must have object type",
            ),
            (json!({"shows": 5}), "`shows` field must have object type"),
            (
                json!({"shows": {"s": 5}}),
                "`shows.s` field must have string or object type",
            ),
            (
                json!({"rewrites": 5}),
                "`rewrites` field must have array or string type",
            ),
            (
                json!({"updates": 5}),
                "`updates` field must have object type",
            ),
            (
                json!({"filters": "x"}),
                "`filters` field must have object type",
            ),
            (
                json!({"language": 5}),
                "`language` field must have string type",
            ),
            (
                json!({"options": {"include_design": "yes"}}),
                "`options.include_design` field must have boolean type",
            ),
            (
                json!({"options": {"partitioned": true}}),
                "partitioned option cannot be true in a non-partitioned database.",
            ),
            (
                json!({"views": {"v": {"reduce": "_sum"}}}),
                "View `v` must contain map function",
            ),
            (
                json!({"views": {"v": {"map": MAP, "reduce": "_nosuch"}}}),
                "`_nosuch` is not a supported reduce function.",
            ),
            (
                json!({"views": {"v": {"map": MAP, "reduce": "_top_0"}}}),
                "rank value must be between 1 and 100",
            ),
            (
                json!({"views": {"v": {"map": MAP, "reduce": "_top_x"}}}),
                "invalid rank reducer",
            ),
        ];
        for (doc, expected) in cases {
            assert_eq!(
                reason(doc.clone()),
                (400, "invalid_design_doc".to_string(), expected.to_string()),
                "{doc}"
            );
        }
    }

    #[test]
    fn accepted_oddities() {
        for doc in [
            json!({"foo": "bar"}),
            json!({"views": {"": {"map": MAP}}}),
            json!({"views": {"v": {"map": MAP, "reduce": "_sum\n"}}}),
            json!({"views": {"v": {"map": MAP, "reduce": "_statsorama"}}}),
            json!({"views": {"v": {"map": MAP, "reduce": "_first_thing"}}}),
            json!({"views": {"v": {"map": MAP, "reduce": "_count", "extra": [1, 2]}}}),
            json!({"views": {"v": {"map": MAP, "options": {"collation": "bogus"}}}}),
            json!({"language": "python", "views": {"v": {"map": "def f(doc): pass"}}}),
            json!({"language": "query", "views": {"v": {"map": {"fields": {"k": "asc"}}, "reduce": "_count"}}}),
            json!({"autoupdate": false, "validate_doc_update": "", "shows": {"s": "function(){"}}),
        ] {
            DesignDoc::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        }
    }

    #[test]
    fn compile_check_wraps_engine_messages() {
        let ddoc =
            DesignDoc::parse(&json!({"views": {"c": {"map": "function(doc) { emit("}}})).unwrap();
        let err = ddoc
            .compile_check(|_, _| Err(Error::Compilation("SyntaxError: unexpected end".into())))
            .unwrap_err();
        assert_eq!(err.name(), "compilation_error");
        assert_eq!(
            err.reason(),
            "Compilation of the map function in the 'c' view failed: SyntaxError: unexpected end"
        );

        // Other errors (e.g. `missing function` for an empty source) pass through.
        let ddoc = DesignDoc::parse(&json!({"views": {"v": {"map": MAP, "reduce": "x"}}})).unwrap();
        let err = ddoc
            .compile_check(|kind, _| match kind {
                FunctionKind::Reduce => Err(Error::not_found("missing function")),
                _ => Ok(()),
            })
            .unwrap_err();
        assert_eq!(
            (err.status(), err.reason()),
            (404, "missing function".to_string())
        );

        // Built-in reducers are never compiled; unknown languages are not compiled at all.
        let ddoc =
            DesignDoc::parse(&json!({"views": {"v": {"map": MAP, "reduce": "_sum"}}})).unwrap();
        let mut compiled = Vec::new();
        ddoc.compile_check(|role, src| {
            compiled.push((role, src.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(compiled, vec![(FunctionKind::Map, MAP.to_string())]);
        let ddoc =
            DesignDoc::parse(&json!({"language": "python", "views": {"v": {"map": "x"}}})).unwrap();
        ddoc.compile_check(|_, _| Err(Error::Compilation("never".into())))
            .unwrap();
    }

    #[test]
    fn identical_maps_share_a_tree() {
        let ddoc = DesignDoc::parse(&json!({"views": {
            "a": {"map": MAP},
            "b": {"map": MAP, "reduce": "_sum"},
            "c": {"map": MAP, "options": {"collation": "raw"}},
        }}))
        .unwrap();
        let group = &ddoc.group;
        assert_eq!(group.maps.len(), 2);
        let a = group.view("a").unwrap();
        let b = group.view("b").unwrap();
        let c = group.view("c").unwrap();
        assert_eq!(a.map, b.map);
        assert_ne!(a.map, c.map);
        assert_eq!((a.reduce, b.reduce), (None, Some(0)));
        assert_eq!(group.maps[c.map].collation, Collation::Raw);
        assert!(group.view("nope").is_none());
    }

    #[test]
    fn signature_covers_only_index_contents() {
        let base = json!({"_id": "_design/a", "views": {"v": {"map": MAP, "reduce": "_sum"}}});
        let sig = |doc: Value| DesignDoc::parse(&doc).unwrap().group.signature;
        let original = sig(base.clone());
        assert_eq!(original.len(), 32);

        // Not in the signature: id, rev, validate_doc_update, filters, autoupdate.
        let mut same = base.clone();
        same["_id"] = json!("_design/b");
        same["_rev"] = json!("3-abc");
        same["validate_doc_update"] = json!("function(){}");
        same["filters"] = json!({"f": "function(){}"});
        same["autoupdate"] = json!(false);
        assert_eq!(sig(same), original);

        // In the signature: map/reduce source, view names, view options, language,
        // design options, lib.
        let changes = [
            json!({"views": {"v": {"map": MAP.replace(' ', "  "), "reduce": "_sum"}}}),
            json!({"views": {"v": {"map": MAP, "reduce": "_count"}}}),
            json!({"views": {"w": {"map": MAP, "reduce": "_sum"}}}),
            json!({"views": {"v": {"map": MAP, "reduce": "_sum", "options": {"collation": "raw"}}}}),
            json!({"language": "js", "views": {"v": {"map": MAP, "reduce": "_sum"}}}),
            json!({"options": {"local_seq": true}, "views": {"v": {"map": MAP, "reduce": "_sum"}}}),
            json!({"views": {"lib": {"m": "exports.x=1"}, "v": {"map": MAP, "reduce": "_sum"}}}),
        ];
        for doc in changes {
            assert_ne!(sig(doc.clone()), original, "{doc}");
        }

        // The order of distinct views and of lib members does not matter.
        let ordered = |names: [&str; 2], lib: Value| {
            let mut views = Map::new();
            for name in names {
                let map = if name == "x" { MAP } else { "function(d){}" };
                views.insert(name.into(), json!({ "map": map }));
            }
            views.insert("lib".into(), lib);
            sig(json!({ "views": views }))
        };
        assert_eq!(
            ordered(["x", "y"], json!({"b": "1", "a": "2"})),
            ordered(["y", "x"], json!({"a": "2", "b": "1"}))
        );
    }
}
