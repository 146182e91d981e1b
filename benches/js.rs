//! Map throughput of the JavaScript pool, conversion included, for the
//! `simple` and `heavy` maps of the index-build benchmark
//! (shared/bench/README.md) over orders-like documents.
//!
//! `cargo bench --bench js`; criterion reports docs/s as "elements/s".
//! Two groups: `map` measures wall time; `map_cpu` measures the process's CPU
//! time, which on a shared, loaded machine gives docs per CPU-second (per
//! worker) independent of how much of a core the workers actually got.

use std::sync::Arc;

// As in src/main.rs: mimalloc (measured 10–45% faster here than glibc
// malloc), wrapped in the workers' memory budget, so the figures include it.
#[global_allocator]
static GLOBAL: settee::js::JsMemoryGuard<mimalloc::MiMalloc> =
    settee::js::JsMemoryGuard(mimalloc::MiMalloc);

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::Value;
use settee::bench_data::OrdersGenerator;
use settee::js::{JsConfig, JsPool, MapGroup};

const SIMPLE: &str = "function(doc){ if(doc.type==='order') emit(doc.customer, doc.total); }";
const HEAVY: &str = "function(doc){\n  var n = doc.items ? doc.items.length : 0;\n  emit([doc.type, doc.customer, doc.ts], doc.total);\n  emit([doc.region, doc.status, doc.type], 1);\n  emit([doc.customer, n], n);\n}";

/// The orders dataset of ../shared/bench (the same generator as `settee demo`).
fn orders(n: usize) -> Vec<Value> {
    OrdersGenerator::new(42).take(n).collect()
}

/// CPU time of the whole process (all threads), in nanoseconds.
struct CpuTime;

static WALL: WallTime = WallTime;

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        process_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        process_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn wall(c: &mut Criterion) {
    map_throughput(c, "map");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    map_throughput(c, "map_cpu");
}

fn map_throughput<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    const BATCH: usize = 4000;
    let docs = orders(BATCH);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    for workers in [1, 2] {
        let pool = JsPool::new(JsConfig {
            workers,
            ..JsConfig::default()
        })
        .unwrap();
        for (name, source) in [("simple", SIMPLE), ("heavy", HEAVY)] {
            let map = Arc::new(MapGroup {
                id: format!("bench-{name}"),
                ddoc_id: format!("_design/{name}"),
                lib: None,
                maps: vec![source.to_string()],
            });
            group.bench_function(format!("{name}/{workers}w"), |b| {
                b.iter_batched(
                    || docs.clone(),
                    |batch| pool.map(&map, batch).unwrap(),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
