//! Functions that build huge values neither hang nor crash the process: the
//! per-call memory budget, enforced by `JsMemoryGuard` as this binary's
//! global allocator (as in the `settee` binary), stops them with a typed
//! error, and the pool still answers afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use settee::js::{JsConfig, JsMemoryGuard, JsPool, MapGroup};

#[global_allocator]
static GLOBAL: JsMemoryGuard<std::alloc::System> = JsMemoryGuard(std::alloc::System);

fn group(id: &str, map: &str) -> Arc<MapGroup> {
    Arc::new(MapGroup {
        id: id.into(),
        ddoc_id: format!("_design/{id}"),
        lib: None,
        maps: vec![map.into()],
    })
}

fn assert_answers(pool: &JsPool) {
    let out = pool
        .map(
            &group("alive", "function(doc) { emit(doc._id, 1); }"),
            vec![json!({"_id": "ok"})],
        )
        .unwrap();
    assert_eq!(out[0][0], Ok(vec![(json!("ok"), json!(1))]));
}

#[test]
fn huge_values_hit_the_memory_budget() {
    let pool = JsPool::new(JsConfig {
        workers: 1,
        max_call_memory: 64 << 20,
        max_value_bytes: 8 << 20,
        // Longer than any of these calls take to reach the budget: the
        // error must come from the budget, not the clock.
        timeout: Duration::from_secs(60),
        ..JsConfig::default()
    })
    .unwrap();
    for (i, src) in [
        // Without the budget: a 4 GiB allocation after 32 rounds, which
        // aborts the process when it fails.
        "function(doc) { var s = 'x'; while (true) { s = s + s; } }",
        "function(doc) { var a = []; while (true) a.push(new Array(1e6).fill(0)); }",
        "function(doc) { var a = []; while (true) a.push(new Array(1e6)); }",
        "function(doc) { var a = []; while (true) a.push('y' + a.length); }",
        // Rows accumulate too.
        "function(doc) { while (true) emit(doc._id, [1, 2, 3]); }",
    ]
    .into_iter()
    .enumerate()
    {
        let start = Instant::now();
        let docs = vec![json!({"_id": "a"}), json!({"_id": "b"})];
        let err = pool
            .map(&group(&format!("huge{i}"), src), docs)
            .unwrap_err();
        assert_eq!(err.name(), "os_process_error", "{src}");
        assert!(
            err.reason().starts_with("memory limit"),
            "{src}: {}",
            err.reason()
        );
        assert!(start.elapsed() < Duration::from_secs(30), "{src}");
        assert_answers(&pool);
    }
    // Each stopped worker was replaced (the stopped threads sleep for good).
    let stats = pool.stats();
    assert_eq!(stats.abandoned, 5);
    assert_eq!(stats.live_threads, 1 + 5);

    // One huge emitted value (16 MiB, within the call budget) is refused by
    // `max_value_bytes` for that document only.
    let g = group(
        "huge-emit",
        "function(doc) { var s = 'x'; for (var i = 0; i < 24; i++) s += s; emit(doc._id, s); }",
    );
    let out = pool.map(&g, vec![json!({"_id": "a"})]).unwrap();
    assert!(out[0][0].as_ref().unwrap_err().contains("RangeError"));
    assert_answers(&pool);
}
