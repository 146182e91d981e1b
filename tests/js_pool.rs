//! The JavaScript worker pool: CouchDB's map/reduce/validate/filter behaviour
//! and containment of misbehaving functions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use settee::js::{reduce_overflow_reason, FunctionKind, JsConfig, JsPool, MapGroup, ValidateCall};

fn pool() -> JsPool {
    JsPool::new(JsConfig {
        workers: 2,
        ..JsConfig::default()
    })
    .unwrap()
}

fn group(id: &str, maps: &[&str]) -> Arc<MapGroup> {
    Arc::new(MapGroup {
        id: id.into(),
        ddoc_id: format!("_design/{id}"),
        lib: None,
        maps: maps.iter().map(|s| s.to_string()).collect(),
    })
}

fn rows(out: &settee::js::MapResult) -> Value {
    let rows = out.as_ref().expect("the map function succeeded");
    Value::Array(rows.iter().map(|(k, v)| json!([k, v])).collect())
}

/// The pool still works after a failure.
fn assert_answers(pool: &JsPool) {
    let g = group("alive", &["function(doc) { emit(doc._id, 1); }"]);
    let out = pool.map(&g, vec![json!({"_id": "ok"})]).unwrap();
    assert_eq!(rows(&out[0][0]), json!([["ok", 1]]));
}

#[test]
fn emit_follows_json_stringify() {
    let pool = pool();
    // From golden B_mr_emits (`weird` view).
    let g = group(
        "weird",
        &["function(doc) {
          emit(null, 1);
          emit(doc.nothing_here, 'undefined-key');
          emit(NaN, Infinity);
          emit([doc.n, undefined, -Infinity], {a: undefined, b: null, c: NaN, f: function() {}});
          emit(doc, null);
          emit(true, doc.n % 2 === 0);
          emit([], {});
          emit('novalue');
          emit(new Date(0), 1.0);
        }"],
    );
    let doc = json!({"_id": "d1", "_rev": "1-abc", "z": 1, "a": [1, {"b": 2}], "n": 6});
    let out = pool.map(&g, vec![doc.clone()]).unwrap();
    assert_eq!(
        rows(&out[0][0]),
        json!([
            [null, 1],
            [null, "undefined-key"],
            [null, null],
            [[6, null, null], {"b": null, "c": null}],
            [doc, null],
            [true, true],
            [[], {}],
            ["novalue", null],
            ["1970-01-01T00:00:00.000Z", 1]
        ])
    );
    // Member order of the doc-as-key is kept.
    let (key, _) = &out[0][0].as_ref().unwrap()[4];
    assert_eq!(
        serde_json::to_string(key).unwrap(),
        r#"{"_id":"d1","_rev":"1-abc","z":1,"a":[1,{"b":2}],"n":6}"#
    );
}

#[test]
fn a_throwing_map_drops_only_its_own_rows_for_that_doc() {
    let pool = pool();
    // From golden B_mr_emits (`thr` view) plus a second view that must keep its rows.
    let g = group(
        "thr",
        &[
            "function(doc) {
              if (doc.bad) throw new Error('bad doc ' + doc._id);
              if (doc.n % 4 === 0) { emit('before-crash', doc._id); var x = doc.nothing.deeper; }
              emit(doc._id, doc.n);
            }",
            "function(doc) { emit(doc.n, null); }",
        ],
    );
    let docs = vec![
        json!({"_id": "a", "n": 1}),
        json!({"_id": "b", "n": 4}),
        json!({"_id": "c", "n": 5, "bad": true}),
    ];
    let out = pool.map(&g, docs).unwrap();
    assert_eq!(rows(&out[0][0]), json!([["a", 1]]));
    let err = out[1][0].as_ref().unwrap_err();
    assert!(err.contains("TypeError"), "{err}");
    assert_eq!(
        out[2][0].as_ref().unwrap_err(),
        "(new Error(\"bad doc c\", \"<unknown>\", 1))"
    );
    assert_eq!(rows(&out[1][1]), json!([[4, null]]));
    assert_eq!(rows(&out[2][1]), json!([[5, null]]));
}

#[test]
fn helpers_and_require_from_views_lib() {
    let pool = pool();
    // From golden B_mr_helpers (`helpers` design doc).
    let g = Arc::new(MapGroup {
        id: "helpers".into(),
        ddoc_id: "_design/helpers".into(),
        lib: Some(json!({
            "util": "exports.norm = function(s) { return (s || '').toLowerCase(); };\nexports.bucket = function(n) { return n < 100 ? 'small' : (n < 300 ? 'mid' : 'big'); };",
            "math": "exports.twice = function(x) { return 2 * x; };\nexports.name = 'math-lib';",
            "nested": {"deep": "var u = require('../util'); exports.v = u.norm('ABC');"},
            "broken": "exports.x = ;"
        })),
        maps: vec![
            "function(doc) {\n  var u = require('views/lib/util');\n  if (doc.type === 'order') emit([u.bucket(doc.total || 0), u.norm(doc.customer)], doc.total || 0);\n}".into(),
            "function(doc) { var m = require('views/lib/math'); if (doc.type === 'post') emit(m.twice(doc.votes), m.name); }".into(),
            "function(doc) {\n  log('mapping ' + doc._id); log({id: doc._id});\n  if (isArray(doc.tags) && doc.tags.length) emit(toJSON(doc.tags), sum(doc.vec || [0]));\n  if (!isArray(doc.tags)) emit(toJSON(doc.tags === undefined ? 'none' : doc.tags), -1);\n}".into(),
            "function(doc) { emit(require('views/lib/nested/deep').v, null); }".into(),
            "function(doc) { require('views/lib/missing'); }".into(),
            "function(doc) { require('views/lib/broken'); }".into(),
        ],
    });
    let docs = vec![
        json!({"_id": "o1", "type": "order", "total": 150, "customer": "ALICE", "tags": ["x", "y"], "vec": [1, 2.5]}),
        json!({"_id": "p1", "type": "post", "votes": 4}),
    ];
    let out = pool.map(&g, docs).unwrap();
    assert_eq!(rows(&out[0][0]), json!([[["mid", "alice"], 150]]));
    assert_eq!(rows(&out[1][1]), json!([[8, "math-lib"]]));
    assert_eq!(rows(&out[0][2]), json!([["[\"x\",\"y\"]", 3.5]]));
    assert_eq!(rows(&out[1][2]), json!([["\"none\"", -1]]));
    assert_eq!(rows(&out[0][3]), json!([["abc", null]]));
    let missing = out[0][4].as_ref().unwrap_err();
    assert!(missing.contains("invalid_require_path"), "{missing}");
    let broken = out[0][5].as_ref().unwrap_err();
    assert!(broken.contains("compilation_error"), "{broken}");
    assert!(
        broken.contains("Module require('views/lib/broken') raised error"),
        "{broken}"
    );
}

#[test]
fn documents_are_frozen_between_map_functions() {
    let pool = pool();
    let g = group(
        "freeze",
        &[
            "function(doc) { doc.added = 1; doc.a.b = 2; doc.list.push(3); emit(doc.added, doc.a.b); }",
            "function(doc) { emit(Object.keys(doc), doc.list.length); }",
        ],
    );
    let out = pool
        .map(&g, vec![json!({"_id": "x", "a": {"b": 1}, "list": [1]})])
        .unwrap();
    // push on a frozen array throws: the first function's rows are dropped.
    assert!(out[0][0].is_err());
    assert_eq!(rows(&out[0][1]), json!([[["_id", "a", "list"], 1]]));
    let g = group(
        "freeze2",
        &["function(doc) { doc.added = 1; doc.a.b = 2; emit(doc.added, doc.a.b); }"],
    );
    let out = pool
        .map(&g, vec![json!({"_id": "x", "a": {"b": 1}})])
        .unwrap();
    assert_eq!(rows(&out[0][0]), json!([[null, 1]]));
}

#[test]
fn batches_are_split_across_workers_in_order() {
    let pool = pool();
    let g = group("order", &["function(doc) { emit(doc.i, doc.i * 2); }"]);
    let docs: Vec<Value> = (0..500)
        .map(|i| json!({"_id": format!("d{i}"), "i": i}))
        .collect();
    let out = pool.map(&g, docs).unwrap();
    assert_eq!(out.len(), 500);
    for (i, doc) in out.iter().enumerate() {
        assert_eq!(rows(&doc[0]), json!([[i, i * 2]]));
    }
    assert!(pool.map(&g, vec![]).unwrap().is_empty());
}

#[test]
fn fatal_throws_abort_the_call() {
    let pool = pool();
    let g = group(
        "fatal",
        &["function(doc) { if (doc.f) throw 'fatal_error'; emit(1, 1); }"],
    );
    let err = pool
        .map(
            &g,
            vec![json!({"_id": "a"}), json!({"_id": "b", "f": true})],
        )
        .unwrap_err();
    assert_eq!(err.name(), "map_runtime_error");
    assert_eq!(err.reason(), "function raised 'fatal_error'");
    let g = group(
        "fatal2",
        &["function(doc) { throw ['fatal', 'my_error', 'gone']; }"],
    );
    let err = pool.map(&g, vec![json!({"_id": "a"})]).unwrap_err();
    assert_eq!((err.name(), err.reason().as_str()), ("my_error", "gone"));
    assert_answers(&pool);
}

#[test]
fn compile_check_matches_couchdb() {
    let pool = pool();
    for ok in [
        "function(doc) { emit(doc.k, doc.v); }",
        "function(doc, a, b) { emit(doc.k, doc.v); }",
        "(doc) => { emit(doc.k, 1); }",
        "function(k, v, r) { return sum(v); }",
    ] {
        pool.compile_check(FunctionKind::Map, ok).unwrap();
    }
    // Golden D_ddoc_validation: named function, two expressions, syntax errors, `_count` as JS.
    let err = pool
        .compile_check(FunctionKind::Map, "function named(doc) { emit(doc.k, 1); }")
        .unwrap_err();
    assert_eq!(
        (err.name(), err.reason()),
        (
            "compilation_error",
            "Expression does not eval to a function. (function named(doc) { emit(doc.k, 1); })"
                .to_string()
        )
    );
    assert_eq!(err.status(), 400);
    for bad in [
        "function(doc) { if (doc.k !== undefined) emit(doc.k, doc.v); }; 1",
        "function(doc) { emit(doc.k",
        "function(doc) {",
        "function(k, v, r) { return sum(v) ",
        " _count",
    ] {
        let err = pool.compile_check(FunctionKind::Reduce, bad).unwrap_err();
        assert_eq!(err.name(), "compilation_error", "{bad}");
        assert!(
            err.reason().ends_with(&format!("({bad})")),
            "{}",
            err.reason()
        );
    }
    let err = pool.compile_check(FunctionKind::Reduce, "").unwrap_err();
    assert_eq!(
        (err.status(), err.reason()),
        (404, "missing function".to_string())
    );
}

#[test]
fn containment_loop_limit() {
    let pool = JsPool::new(JsConfig {
        workers: 1,
        loop_iteration_limit: 100_000,
        ..JsConfig::default()
    })
    .unwrap();
    let g = group(
        "loop",
        &["function(doc) { try { while (true) {} } catch (e) { emit('caught', 1); } }"],
    );
    let err = pool.map(&g, vec![json!({"_id": "a"})]).unwrap_err();
    assert_eq!(err.name(), "os_process_error");
    assert_eq!(err.status(), 500);
    // Also at compile time (top-level code runs when a source is evaluated).
    let err = pool
        .compile_check(FunctionKind::Map, "while (true) {}; (function(doc) {})")
        .unwrap_err();
    assert_eq!(err.name(), "os_process_error");
    assert_answers(&pool);
}

#[test]
fn containment_time_budget_replaces_the_worker() {
    let pool = JsPool::new(JsConfig {
        workers: 1,
        timeout: Duration::from_millis(300),
        loop_iteration_limit: 1_000_000,
        ..JsConfig::default()
    })
    .unwrap();
    // Nested loops: each frame stays under the loop limit, the whole runs for minutes.
    let g = group(
        "slow",
        &["function(doc) { var n = 0; for (var i = 0; i < 900000; i++) { (function() { for (var j = 0; j < 900000; j++) n++; })(); } emit(n, 1); }"],
    );
    let err = pool.map(&g, vec![json!({"_id": "a"})]).unwrap_err();
    assert_eq!(err.name(), "os_process_error");
    assert!(err.reason().starts_with("timeout"), "{}", err.reason());
    assert_answers(&pool);
}

#[test]
fn containment_recursion_limit() {
    let pool = pool();
    let g = group(
        "rec",
        &["function(doc) { function f(n) { return f(n + 1) + 1; } emit(f(0), 1); }"],
    );
    let err = pool.map(&g, vec![json!({"_id": "a"})]).unwrap_err();
    assert_eq!(err.name(), "os_process_error");
    // Recursion through native built-ins (callbacks, call, getters, toJSON,
    // sort, proxies) is counted too, so it cannot overflow the native stack.
    for (i, src) in [
        "function(doc) { function f() { return [1].map(f); } f(); }",
        "function(doc) { function f() { return f.call(null); } f(); }",
        "function(doc) { var o = {get x() { return this.x; }}; o.x; }",
        "function(doc) { function f() { return JSON.stringify({toJSON: f}); } f(); }",
        "function(doc) { function f(a, b) { return [2, 1].sort(f); } f(); }",
        "function(doc) { var p = new Proxy({}, {get: function(t, k, r) { return r[k]; }}); p.x; }",
    ]
    .into_iter()
    .enumerate()
    {
        let err = pool
            .map(&group(&format!("rec{i}"), &[src]), vec![json!({})])
            .unwrap_err();
        assert_eq!(err.name(), "os_process_error", "{src}");
    }
    let err = pool
        .reduce(
            &["function(k, v) { function f() { return f(); } return f(); }".into()],
            &[],
        )
        .unwrap_err();
    assert_eq!(err.name(), "os_process_error");
    assert_answers(&pool);
}

#[test]
fn containment_deeply_nested_source() {
    let pool = pool();
    // Would abort the process with a native stack overflow if boa parsed it.
    for depth in [2_000, 100_000] {
        let src = format!(
            "function(doc) {{ emit({}1{}, 1); }}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let err = pool.compile_check(FunctionKind::Map, &src).unwrap_err();
        assert_eq!(err.name(), "compilation_error");
        let err = pool
            .map(&group(&format!("deep{depth}"), &[&src]), vec![json!({})])
            .unwrap_err();
        assert_eq!(err.name(), "compilation_error");
    }
    let bangs = format!("function(doc) {{ emit({}1, 1); }}", "!".repeat(50_000));
    assert_eq!(
        pool.compile_check(FunctionKind::Map, &bangs)
            .unwrap_err()
            .name(),
        "compilation_error"
    );
    // A deep library module is rejected too.
    let g = Arc::new(MapGroup {
        id: "deeplib".into(),
        ddoc_id: "_design/deeplib".into(),
        lib: Some(
            json!({"m": format!("exports.x = {}1{};", "[".repeat(50_000), "]".repeat(50_000))}),
        ),
        maps: vec!["function(doc) { emit(require('views/lib/m').x, 1); }".into()],
    });
    assert_eq!(
        pool.map(&g, vec![json!({})]).unwrap_err().name(),
        "compilation_error"
    );
    assert_answers(&pool);
}

#[test]
fn containment_huge_values() {
    let pool = JsPool::new(JsConfig {
        workers: 1,
        max_value_bytes: 1 << 20,
        ..JsConfig::default()
    })
    .unwrap();
    let g = group(
        "huge",
        &["function(doc) { var s = 'x'; for (var i = 0; i < 22; i++) s += s; emit(doc._id, s); }"],
    );
    let out = pool.map(&g, vec![json!({"_id": "a"})]).unwrap();
    let err = out[0][0].as_ref().unwrap_err();
    assert!(err.contains("RangeError"), "{err}");
    // Deeply nested values built at run time are refused, not a stack overflow.
    let g = group(
        "nested",
        &["function(doc) { var o = 1; for (var i = 0; i < 100000; i++) o = [o]; emit(o, 1); }"],
    );
    let out = pool.map(&g, vec![json!({"_id": "a"})]).unwrap();
    assert!(out[0][0].as_ref().unwrap_err().contains("RangeError"));
    // So are they through JSON.stringify (boa's own would overflow the native
    // stack and abort the process), toJSON and log; replacer/indent still work.
    let g = group(
        "stringify",
        &["function(doc) {
          var o = 1; for (var i = 0; i < 100000; i++) o = [o];
          var seen = [];
          [function() { JSON.stringify(o); }, function() { toJSON(o); }, function() { log(o); },
           function() { JSON.stringify(o, null, 2); }, function() { String(o); },
           function() { o.join(); }, function() { o.toLocaleString(); }].forEach(function(f) {
            try { f(); seen.push('no error'); } catch (e) { seen.push(e.name); }
          });
          emit(seen, [JSON.stringify({a: [1, {b: undefined}]}, null, 1), JSON.stringify(new Error('x')),
                      toJSON(undefined) === undefined, String([1, [2, [3]]]), [[1, [2]], 3].flat(Infinity),
                      o.flat(Infinity).length]);
        }"],
    );
    let out = pool.map(&g, vec![json!({"_id": "a"})]).unwrap();
    assert_eq!(
        rows(&out[0][0]),
        json!([[
            [
                "RangeError",
                "RangeError",
                "RangeError",
                "RangeError",
                "RangeError",
                "RangeError",
                "RangeError"
            ],
            [
                "{\n \"a\": [\n  1,\n  {}\n ]\n}",
                "{}",
                true,
                "1,2,3",
                [1, 2, 3],
                1
            ]
        ]])
    );
    assert_answers(&pool);
}

#[test]
fn no_ambient_authority() {
    let pool = pool();
    let g = group(
        "sandbox",
        &["function(doc) { emit([typeof console, typeof setTimeout, typeof setInterval, typeof fetch, typeof process, typeof XMLHttpRequest, typeof readFile, typeof print], 1); }"],
    );
    let out = pool.map(&g, vec![json!({})]).unwrap();
    assert_eq!(
        rows(&out[0][0]),
        json!([[
            [
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined"
            ],
            1
        ]])
    );
}

#[test]
fn reduce_and_rereduce() {
    let pool = pool();
    // From golden B_mr_js.
    let count = "function(keys, values, rereduce) {\n  if (rereduce) return sum(values);\n  return values.length;\n}".to_string();
    let max = "function(keys, values, rereduce) {\n  var best = null;\n  for (var i = 0; i < values.length; i++) {\n    var x = values[i];\n    if (best === null || x.v > best.v || (x.v === best.v && x.id > best.id)) best = x;\n  }\n  return best;\n}".to_string();
    let keys_seen = "function(keys, values, rereduce) { return keys.map(function(k) { return k[1] + ':' + k[0]; }).join(','); }".to_string();
    let throws =
        "function(keys, values, rereduce) { throw new Error('reduce always fails'); }".to_string();
    let no_require = "function(keys, values) { return typeof require; }".to_string();
    let rows = vec![
        (json!("a"), "d1".to_string(), json!({"v": 3, "id": "d1"})),
        (json!("b"), "d2".to_string(), json!({"v": 5, "id": "d2"})),
        (json!("b"), "d3".to_string(), json!({"v": 5, "id": "d3"})),
    ];
    let out = pool
        .reduce(
            &[count.clone(), max.clone(), keys_seen, throws, no_require],
            &rows,
        )
        .unwrap();
    assert_eq!(
        out,
        vec![
            json!(3),
            json!({"v": 5, "id": "d3"}),
            json!("d1:a,d2:b,d3:b"),
            Value::Null,
            json!("undefined")
        ]
    );
    let out = pool
        .rereduce(
            &[count, max],
            vec![
                vec![json!(3), json!(4)],
                vec![json!({"v": 1, "id": "x"}), json!({"v": 2, "id": "y"})],
            ],
        )
        .unwrap();
    assert_eq!(out, vec![json!(7), json!({"v": 2, "id": "y"})]);
}

#[test]
fn reduce_limit_gives_the_overflow_marker() {
    let pool = pool();
    // CouchDB's couch_query_servers_tests: output twice the input.
    let grow =
        "function(keys, vals, rereduce) { return ['result', vals.concat(vals)]; }".to_string();
    let rows: Vec<_> = (0..10)
        .map(|i| {
            let props: serde_json::Map<String, Value> = (0..20)
                .map(|j| (format!("key-{i}-{j}-padding"), json!(1)))
                .collect();
            (json!(i), format!("doc{i}"), Value::Object(props))
        })
        .collect();
    let out = pool.reduce(std::slice::from_ref(&grow), &rows).unwrap();
    let reason = reduce_overflow_reason(&out[0]).expect("overflow marker");
    assert!(
        reason.starts_with("Reduce output must shrink more rapidly: input size: "),
        "{reason}"
    );
    // `log` and `false` return the value.
    for mode in [settee::js::ReduceLimit::Log, settee::js::ReduceLimit::Off] {
        let pool = JsPool::new(JsConfig {
            workers: 1,
            reduce_limit: mode,
            ..JsConfig::default()
        })
        .unwrap();
        let out = pool.reduce(std::slice::from_ref(&grow), &rows).unwrap();
        assert_eq!(out[0][0], json!("result"));
    }
}

fn vdu_call(
    ddoc: &Value,
    new_doc: Value,
    old_doc: Option<Value>,
    user: &str,
    roles: &[&str],
) -> ValidateCall {
    ValidateCall {
        ddoc_id: ddoc["_id"].as_str().unwrap().into(),
        ddoc: Arc::new(ddoc.clone()),
        new_doc: Arc::new(new_doc),
        old_doc: old_doc.map(Arc::new),
        user_ctx: Arc::new(json!({"db": "db", "name": user, "roles": roles})),
        sec_obj: Arc::new(
            json!({"admins": {"names": [], "roles": ["boss"]}, "members": {"names": [], "roles": []}}),
        ),
    }
}

#[test]
fn validate_doc_update_outcomes() {
    let pool = pool();
    // From golden E_vdu (`_design/auth`).
    let ddoc = json!({"_id": "_design/auth", "validate_doc_update": "function(newDoc, oldDoc, userCtx, secObj) {\n  var isAdmin = userCtx.roles.indexOf('_admin') !== -1 || userCtx.roles.indexOf('boss') !== -1;\n  if (newDoc._deleted) {\n    if (!isAdmin && userCtx.roles.indexOf('writer') === -1) throw({unauthorized: 'only writers may delete'});\n    return;\n  }\n  if (!newDoc.type) throw({forbidden: 'doc.type is required'});\n  if (newDoc.type === 'plain') throw 'plain string thrown';\n  if (newDoc.type === 'other') throw({other: 'not forbidden, not unauthorized'});\n  if (newDoc.type === 'error') throw new TypeError('real error');\n  if (newDoc.type === 'this') throw({forbidden: this._id + ' ' + typeof this.validate_doc_update});\n  if (oldDoc === null && newDoc.author !== userCtx.name && !isAdmin) throw({forbidden: 'author must be ' + userCtx.name});\n  if (newDoc.type === 'locked' && secObj.admins.roles.indexOf('boss') !== -1 && !isAdmin) throw({forbidden: 'locked docs are for db admins'});\n}"});
    let ok = vdu_call(
        &ddoc,
        json!({"_id": "a", "type": "t", "author": "alice"}),
        None,
        "alice",
        &[],
    );
    pool.validate(&ok).unwrap();
    let cases: Vec<(ValidateCall, u16, &str, &str)> = vec![
        (
            vdu_call(&ddoc, json!({"_id": "a"}), None, "alice", &[]),
            403,
            "forbidden",
            "doc.type is required",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "_deleted": true}),
                Some(json!({"_id": "a"})),
                "alice",
                &[],
            ),
            401,
            "unauthorized",
            "only writers may delete",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "type": "plain"}),
                None,
                "alice",
                &[],
            ),
            500,
            "unknown_error",
            "plain string thrown",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "type": "other"}),
                None,
                "alice",
                &[],
            ),
            500,
            "unknown_error",
            "not forbidden, not unauthorized",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "type": "t", "author": "bob"}),
                None,
                "alice",
                &[],
            ),
            403,
            "forbidden",
            "author must be alice",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "type": "locked", "author": "alice"}),
                None,
                "alice",
                &[],
            ),
            403,
            "forbidden",
            "locked docs are for db admins",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "type": "this"}),
                None,
                "alice",
                &[],
            ),
            403,
            "forbidden",
            "_design/auth string",
        ),
        (
            vdu_call(
                &ddoc,
                json!({"_id": "a", "type": "error"}),
                None,
                "alice",
                &[],
            ),
            500,
            "TypeError",
            "real error",
        ),
    ];
    let batch: Vec<ValidateCall> = cases.iter().map(|c| c.0.clone()).collect();
    for (call, status, name, reason) in &cases {
        let err = pool.validate(call).unwrap_err();
        assert_eq!(
            (err.status(), err.name(), err.reason().as_str()),
            (*status, *name, *reason)
        );
    }
    let outcomes = pool.validate_batch(batch).unwrap();
    for (outcome, (_, status, name, _)) in outcomes.iter().zip(&cases) {
        let err = outcome.as_ref().unwrap_err();
        assert_eq!((err.status(), err.name()), (*status, *name));
    }
    // Admins pass; a design doc without a VDU accepts everything.
    pool.validate(&vdu_call(
        &ddoc,
        json!({"_id": "a", "type": "locked"}),
        None,
        "root",
        &["_admin"],
    ))
    .unwrap();
    pool.validate(&vdu_call(
        &json!({"_id": "_design/none"}),
        json!({"_id": "a"}),
        None,
        "x",
        &[],
    ))
    .unwrap();
}

#[test]
fn filters() {
    let pool = pool();
    let ddoc = Arc::new(json!({"_id": "_design/f", "filters": {
        "by_type": "function(doc, req) { return doc.type === req.query.type; }",
        "truthy": "function(doc, req) { return doc.n; }",
        "throws": "function(doc, req) { throw new Error('no'); }"
    }}));
    let docs = vec![
        json!({"_id": "a", "type": "x", "n": 0}),
        json!({"_id": "b", "type": "y", "n": 2}),
    ];
    let req = json!({"query": {"type": "y"}});
    assert_eq!(
        pool.filter(
            "_design/f",
            ddoc.clone(),
            "by_type",
            docs.clone(),
            req.clone()
        )
        .unwrap(),
        vec![false, true]
    );
    assert_eq!(
        pool.filter(
            "_design/f",
            ddoc.clone(),
            "truthy",
            docs.clone(),
            req.clone()
        )
        .unwrap(),
        vec![false, true]
    );
    assert!(pool
        .filter(
            "_design/f",
            ddoc.clone(),
            "throws",
            docs.clone(),
            req.clone()
        )
        .is_err());
    let err = pool
        .filter("_design/f", ddoc, "missing", docs, req)
        .unwrap_err();
    assert_eq!(err.status(), 404);
}

/// A batch spread over several workers keeps one outcome per call, in order.
#[test]
fn validate_batch_keeps_order_across_workers() {
    let pool = JsPool::new(JsConfig {
        workers: 3,
        ..JsConfig::default()
    })
    .unwrap();
    let ddoc = json!({"_id": "_design/odd", "validate_doc_update":
        "function(newDoc) { if (newDoc.n % 3 === 0) throw({forbidden: 'n=' + newDoc.n}); }"});
    let calls: Vec<ValidateCall> = (0..100)
        .map(|n| {
            vdu_call(
                &ddoc,
                json!({"_id": format!("d{n}"), "n": n}),
                None,
                "u",
                &[],
            )
        })
        .collect();
    let outcomes = pool.validate_batch(calls).unwrap();
    assert_eq!(outcomes.len(), 100);
    for (n, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(()) => assert_ne!(n % 3, 0, "call {n} passed"),
            Err(e) => assert_eq!(e.reason(), format!("n={n}")),
        }
    }
}

#[test]
fn functions_are_compiled_once_per_worker() {
    let pool = pool();
    let g = group(
        "compiled-once",
        &[
            "function(doc) { emit(doc._id, 1); }",
            "function(doc) { emit(doc.n, null); }",
        ],
    );
    let docs: Vec<Value> = (0..64)
        .map(|n| json!({"_id": format!("d{n}"), "n": n}))
        .collect();
    for _ in 0..10 {
        let out = pool.map(&g, docs.clone()).unwrap();
        assert_eq!(out.len(), 64);
    }
    // Two functions, compiled by each of the (at most two) workers that ran
    // a part of a batch, never again for later batches.
    let compiled = pool.stats().compilations;
    assert!(compiled == 2 || compiled == 4, "{compiled}");
    pool.map(&g, docs).unwrap();
    assert_eq!(pool.stats().compilations, compiled);

    let one = JsPool::new(JsConfig {
        workers: 1,
        ..JsConfig::default()
    })
    .unwrap();
    let reduce = ["function(k, v, re) { return sum(v); }".to_owned()];
    for _ in 0..5 {
        one.map(&g, vec![json!({"_id": "a", "n": 1})]).unwrap();
        one.reduce(&reduce, &[(json!(1), "a".into(), json!(2))])
            .unwrap();
        let ddoc =
            json!({"_id": "_design/v", "_rev": "1-a", "validate_doc_update": "function(doc) {}"});
        one.validate(&vdu_call(&ddoc, json!({"_id": "a"}), None, "ann", &[]))
            .unwrap();
    }
    assert_eq!(one.stats().compilations, 4);
}

/// Waits until only the configured workers are left.
fn assert_abandoned_threads_end(pool: &JsPool, what: &str) {
    let workers = pool.config().workers;
    let start = std::time::Instant::now();
    while pool.stats().live_threads > workers {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: the abandoned worker still runs ({:?})",
            pool.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn abandoned_workers_stop() {
    let pool = JsPool::new(JsConfig {
        workers: 1,
        timeout: Duration::from_millis(200),
        // A tenth of the default, so that loops that only the limit ends
        // (the third case calls a built-in, not one of settee's natives)
        // end within seconds on a loaded machine.
        loop_iteration_limit: 5_000_000,
        ..JsConfig::default()
    })
    .unwrap();
    assert_eq!(pool.stats().live_threads, 1);
    // Each call outlives the time budget. Plain loops and recursion end at
    // the loop and recursion limits; nested loops whose frames each stay
    // under the loop limit would run for hours, but stop at the first native
    // function they call after being abandoned, even if they catch its error.
    let inner = "function() { for (var j = 0; j < 200000; j++) {} }";
    for (i, src) in [
        "function(doc) { for (;;) {} }".to_owned(),
        "function(doc) { do {} while (1); }".to_owned(),
        "function(doc) { var s = 0; while (true) { s += Math.abs(-1); } }".to_owned(),
        format!("function(doc) {{ for (;;) {{ ({inner})(); try {{ JSON.stringify(1); }} catch (e) {{}} }} }}"),
        format!("function(doc) {{ for (;;) {{ ({inner})(); try {{ emit(1, 1); }} catch (e) {{}} }} }}"),
        format!("function(doc) {{ for (;;) {{ ({inner})(); try {{ log('x'); }} catch (e) {{}} }} }}"),
        format!("function(doc) {{ for (;;) {{ ({inner})(); try {{ [1].join(); }} catch (e) {{}} }} }}"),
    ]
    .into_iter()
    .enumerate()
    {
        // Several documents: the rest of the batch is not run either.
        let docs = vec![json!({"_id": "a"}), json!({"_id": "b"}), json!({"_id": "c"})];
        let err = pool.map(&group(&format!("stuck{i}"), &[&src]), docs).unwrap_err();
        assert_eq!(err.name(), "os_process_error", "{src}");
        assert_abandoned_threads_end(&pool, &src);
        assert_answers(&pool);
    }
    let rec = "function(doc) { function f(n) { for (var j = 0; j < 50000; j++) {} return f(n + 1); } f(0); }";
    pool.map(&group("stuck-rec", &[rec]), vec![json!({})])
        .unwrap_err();
    assert_abandoned_threads_end(&pool, rec);
    assert!(pool.stats().abandoned >= 1);
    assert_answers(&pool);
}

/// Maps that only read members of `doc` are given just those (`js::reads`):
/// their rows and errors are those of maps given the whole document.
#[test]
fn member_reading_maps_emit_as_whole_document_ones() {
    let pool = pool();
    let maps = [
        "function(doc) { if (doc.type === 'order') emit(doc.customer, doc.total); }",
        "function(doc) { var n = doc.items ? doc.items.length : 0; emit([doc.region, n], doc.items[0].sku); }",
        "function(doc) { doc.added = 1; emit(doc.added, doc._conflicts || null); }",
    ];
    let whole: Vec<String> = maps
        .iter()
        .map(|m| m.replacen("function(doc) {", "function(doc) { JSON.stringify(doc);", 1))
        .collect();
    let docs = vec![
        json!({"_id": "a", "type": "order", "customer": "c1", "total": 5, "region": "eu", "items": [{"sku": 7}], "other": [1, 2]}),
        json!({"_id": "b", "type": "refund", "region": "us"}),
        json!({"_id": "c", "_conflicts": ["2-x"], "items": []}),
    ];
    let outcome = |maps: &[&str]| -> Value {
        let g = group(&format!("reads{}", maps[0].len()), maps);
        let out = pool.map(&g, docs.clone()).unwrap();
        Value::Array(
            out.iter()
                .flat_map(|per_doc| per_doc.iter())
                .map(|r| match r {
                    Ok(_) => rows(r),
                    Err(message) => json!({ "error": message }),
                })
                .collect(),
        )
    };
    let projected = outcome(&maps);
    let whole: Vec<&str> = whole.iter().map(String::as_str).collect();
    assert_eq!(projected, outcome(&whole));
    assert_eq!(projected[0], json!([["c1", 5]]));
    assert_eq!(projected[1], json!([[["eu", 1], 7]]));
    assert!(projected[4].get("error").is_some(), "{}", projected[4]);
    assert_eq!(projected[8], json!([[null, ["2-x"]]]));
}
