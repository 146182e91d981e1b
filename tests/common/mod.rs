//! Helpers shared by integration tests.

use std::sync::OnceLock;

use settee::js::{JsConfig, JsPool};

/// One JavaScript pool for all tests of a test binary (two workers: CI has two cores).
pub fn pool() -> JsPool {
    static POOL: OnceLock<JsPool> = OnceLock::new();
    POOL.get_or_init(|| {
        JsPool::new(JsConfig {
            workers: 2,
            ..JsConfig::default()
        })
        .expect("pool")
    })
    .clone()
}
