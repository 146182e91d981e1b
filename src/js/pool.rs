//! The pool: worker threads, the job queue, and the watchdog that abandons
//! and replaces a worker stuck in one call.
//!
//! boa 0.22 cannot interrupt running JavaScript (boa-dev/boa#3442; its only
//! preemption point, `Script::evaluate_async_with_budget`, yields in the
//! outermost VM loop of a script, not in function calls made from Rust or
//! in callbacks of built-ins). So a call that makes no progress for
//! `timeout` is answered with `os_process_error` and its worker thread is
//! left behind: it is marked abandoned, a replacement thread is started, and
//! the old thread exits as soon as its call unwinds. It stops early: before
//! the next document of its batch, and at the next native function of
//! settee's it calls (`emit`, `log`, `JSON.stringify`, ...), which drops the
//! engine's limits to zero. Otherwise only the loop and recursion limits end
//! it: a plain loop within `loop_iteration_limit`, but nested loops in
//! separate function frames that call none of those natives can run for a
//! very long time. [`JsPool::stats`] counts the live threads.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use serde_json::Value;

use super::memory;
use super::reduce::ReduceCall;
use super::worker::Worker;
use super::{DocMapOutput, FunctionKind, JsConfig, MapGroup, ValidateCall};
use crate::{Error, Result};

/// Fewest documents (or validations) worth a job of their own when a batch
/// is split over the workers.
const MIN_ITEMS_PER_JOB: usize = 8;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const ABANDONED: u8 = 3;
/// Stopped by the memory budget (see `memory.rs`); its thread sleeps forever.
const OVER_MEMORY: u8 = 4;
/// How often a waiter looks for a call stopped by the memory budget.
const MEMORY_POLL: Duration = Duration::from_millis(50);

/// Shared between a caller and the worker running its job.
pub struct JobState {
    status: AtomicU8,
    /// Milliseconds since the pool's epoch at the last sign of progress.
    progress_ms: AtomicU64,
    epoch: Instant,
}

impl JobState {
    fn new(epoch: Instant) -> Self {
        // Progress starts now, not at the epoch: a waiter that sees the job
        // running before the worker's first `touch` must not take it for a
        // call that has been stuck since the pool started.
        let state = JobState {
            status: AtomicU8::new(QUEUED),
            progress_ms: AtomicU64::new(0),
            epoch,
        };
        state.touch();
        state
    }

    /// Records progress; the watchdog measures the timeout from here.
    pub fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.progress_ms.store(now, Ordering::Relaxed);
    }

    /// Marks the running job as stopped by the memory budget.
    pub fn exceed_memory(&self) {
        self.transition(RUNNING, OVER_MEMORY);
    }

    /// Whether the watchdog has given up on the job.
    pub fn abandoned(&self) -> bool {
        self.status.load(Ordering::Acquire) == ABANDONED
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.progress_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn transition(&self, from: u8, to: u8) -> bool {
        self.status
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Counters shared by a pool and its workers; see [`JsStats`].
#[derive(Default)]
pub struct Counters {
    /// Functions compiled; workers add to it.
    pub compilations: AtomicU64,
    live_threads: AtomicUsize,
    abandoned: AtomicU64,
}

/// Counts one live worker thread from its creation until it ends (dropped
/// last on the thread, after its worker and boa context).
struct LiveThread(Arc<Counters>);

impl LiveThread {
    fn new(counters: Arc<Counters>) -> LiveThread {
        counters.live_threads.fetch_add(1, Ordering::AcqRel);
        LiveThread(counters)
    }
}

impl Drop for LiveThread {
    fn drop(&mut self) {
        self.0.live_threads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a [`JsPool`] has done so far (see [`JsPool::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsStats {
    /// Functions compiled, over all workers since the pool started: every
    /// map function of a group, reduce, `validate_doc_update` and filter a
    /// worker compiles (then caches), and every [`JsPool::compile_check`].
    pub compilations: u64,
    /// Worker threads alive: the configured workers plus abandoned ones whose
    /// call has not unwound yet.
    pub live_threads: usize,
    /// Calls the watchdog gave up on, for their time or memory budget (each
    /// replaced its worker).
    pub abandoned: u64,
}

/// A job: runs on a worker and sends its own reply.
struct Job {
    state: Arc<JobState>,
    run: Box<dyn FnOnce(&mut Worker) + Send>,
}

/// A submitted job's reply channel.
struct Pending<R> {
    reply: Receiver<Result<R>>,
    state: Arc<JobState>,
}

struct Inner {
    jobs: Sender<Job>,
    /// Kept to hand to replacement workers; workers stop when `jobs` (the
    /// only sender) is dropped with the pool.
    queue: Receiver<Job>,
    config: Arc<JsConfig>,
    epoch: Instant,
    threads_started: AtomicUsize,
    counters: Arc<Counters>,
}

/// A pool of JavaScript workers. Cheap to clone; all clones share the
/// workers, which stop when the last clone is dropped.
///
/// ```
/// use settee::js::{FunctionKind, JsConfig, JsPool};
/// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
/// pool.compile_check(FunctionKind::Map, "function(doc) { emit(doc._id, 1); }")?;
/// let err = pool.compile_check(FunctionKind::Map, "function(doc) { emit(").unwrap_err();
/// assert_eq!(err.name(), "compilation_error");
/// # Ok::<(), settee::Error>(())
/// ```
#[derive(Clone)]
pub struct JsPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JsPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsPool")
            .field("workers", &self.inner.config.workers)
            .finish_non_exhaustive()
    }
}

impl JsPool {
    /// Starts `config.workers` worker threads (at least one).
    ///
    /// ```
    /// use settee::js::{JsConfig, JsPool};
    /// let pool = JsPool::new(JsConfig { workers: 0, ..JsConfig::default() })?;
    /// assert_eq!(pool.config().workers, 1);
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn new(mut config: JsConfig) -> Result<JsPool> {
        config.workers = config.workers.max(1);
        let (jobs, queue) = bounded(config.workers * 4);
        let pool = JsPool {
            inner: Arc::new(Inner {
                jobs,
                queue,
                config: Arc::new(config),
                epoch: Instant::now(),
                threads_started: AtomicUsize::new(0),
                counters: Arc::default(),
            }),
        };
        for _ in 0..pool.inner.config.workers {
            pool.spawn_worker()?;
        }
        Ok(pool)
    }

    /// The configuration the pool runs with.
    ///
    /// ```
    /// use std::time::Duration;
    /// use settee::js::{JsConfig, JsPool};
    /// let config = JsConfig { workers: 1, timeout: Duration::from_secs(1), ..JsConfig::default() };
    /// let pool = JsPool::new(config)?;
    /// assert_eq!(pool.config().timeout, Duration::from_secs(1));
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn config(&self) -> &JsConfig {
        &self.inner.config
    }

    /// What the pool has done so far: compilations (each worker compiles a
    /// function once and caches it), live worker threads, abandoned calls.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool, MapGroup};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let group = Arc::new(MapGroup {
    ///     id: "sig".into(),
    ///     ddoc_id: "_design/app".into(),
    ///     lib: None,
    ///     maps: vec!["function(doc) { emit(doc._id, null); }".into()],
    /// });
    /// for _ in 0..3 {
    ///     pool.map(&group, vec![json!({"_id": "a"})])?;
    /// }
    /// let stats = pool.stats();
    /// assert_eq!((stats.compilations, stats.live_threads, stats.abandoned), (1, 1, 0));
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn stats(&self) -> JsStats {
        let counters = &self.inner.counters;
        JsStats {
            compilations: counters.compilations.load(Ordering::Relaxed),
            live_threads: counters.live_threads.load(Ordering::Acquire),
            abandoned: counters.abandoned.load(Ordering::Relaxed),
        }
    }

    /// Checks that `source` compiles to a function, as CouchDB does when a
    /// design document is saved: `compilation_error` with the engine's message
    /// (`<error> (<source>)`, or `Expression does not eval to a function.
    /// (<source>)`), `not_found` "missing function" for an empty source. The
    /// caller adds CouchDB's prefix, e.g. "Compilation of the map function in
    /// the 'v' view failed: ".
    ///
    /// ```
    /// use settee::js::{FunctionKind, JsConfig, JsPool};
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// pool.compile_check(FunctionKind::Map, "function(doc) { emit(doc._id, 1); }")?;
    /// let err = pool.compile_check(FunctionKind::Map, "function(doc) {").unwrap_err();
    /// assert_eq!((err.name(), err.status()), ("compilation_error", 400));
    /// let err = pool.compile_check(FunctionKind::Reduce, "42").unwrap_err();
    /// assert!(err.reason().starts_with("Expression does not eval to a function."));
    /// assert_eq!(pool.compile_check(FunctionKind::Map, "").unwrap_err().name(), "not_found");
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn compile_check(&self, kind: FunctionKind, source: &str) -> Result<()> {
        let source = source.to_owned();
        self.call(move |w| w.compile_check(kind, &source))
    }

    /// Runs every map function of `group` over `docs`, spread over all
    /// workers. Returns, per document in order, one result per map function:
    /// the emitted `(key, value)` rows, or the message of the exception the
    /// function threw for that document (its rows are dropped, and the
    /// exception is logged).
    ///
    /// Whole-call errors: `compilation_error`, `os_process_error` (time
    /// budget, loop or recursion limit), `map_runtime_error` for
    /// `throw "fatal_error"`, and the name/reason of `throw ["fatal", name, reason]`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool, MapGroup};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let group = Arc::new(MapGroup {
    ///     id: "example".into(),
    ///     ddoc_id: "_design/example".into(),
    ///     lib: None,
    ///     maps: vec![
    ///         "function(doc) { emit(doc.n, doc.n * 2); emit([doc.n], null); }".into(),
    ///         "function(doc) { emit(doc.missing.field, 1); }".into(), // throws
    ///     ],
    /// });
    /// let out = pool.map(&group, vec![json!({"_id": "a", "n": 1})])?;
    /// assert_eq!(out[0][0], Ok(vec![(json!(1), json!(2)), (json!([1]), json!(null))]));
    /// assert!(out[0][1].is_err()); // only this function's rows are dropped
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn map(&self, group: &Arc<MapGroup>, docs: Vec<Value>) -> Result<Vec<DocMapOutput>> {
        let group = group.clone();
        self.run_split(docs, move |w, chunk| w.map(&group, chunk))
    }

    /// Reduces map rows `(key, docid, value)` with each JavaScript reduce
    /// source: one reduction per source. A reduce that throws gives null
    /// (logged). Under `reduce_limit`, a call whose output does not shrink
    /// gives the overflow marker for every source (see
    /// [`reduce_overflow_reason`](super::reduce_overflow_reason)).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let sources = [
    ///     "function(keys, values, rereduce) { return sum(values); }".to_owned(),
    ///     "function(keys, values, rereduce) { return keys.map(function(k) { return k[1]; }); }".to_owned(),
    /// ];
    /// let rows = [(json!("a"), "doc1".to_owned(), json!(2)), (json!("b"), "doc2".to_owned(), json!(3))];
    /// assert_eq!(pool.reduce(&sources, &rows)?, [json!(5), json!(["doc1", "doc2"])]);
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn reduce(
        &self,
        sources: &[String],
        rows: &[(Value, String, Value)],
    ) -> Result<Vec<Value>> {
        let mut keys = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        for (key, id, value) in rows {
            keys.push((key.clone(), id.clone()));
            values.push(value.clone());
        }
        let call = ReduceCall {
            sources: Arc::new(sources.to_vec()),
            keys: Some(keys),
            values,
        };
        self.call(move |w| w.reduce(call))
    }

    /// Rereduces earlier reductions: `values_per_source[i]` are the values
    /// for `sources[i]` (CouchDB sends one function per rereduce call; this
    /// does the same, on one worker). Returns one reduction per source.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let sources = ["function(keys, values, rereduce) { return rereduce ? sum(values) : -1; }".to_owned()];
    /// assert_eq!(pool.rereduce(&sources, vec![vec![json!(5), json!(7)]])?, [json!(12)]);
    /// assert_eq!(pool.rereduce(&sources, vec![]).unwrap_err().status(), 400);
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn rereduce(
        &self,
        sources: &[String],
        values_per_source: Vec<Vec<Value>>,
    ) -> Result<Vec<Value>> {
        if sources.len() != values_per_source.len() {
            return Err(Error::bad_request(
                "rereduce needs one list of values per function",
            ));
        }
        let calls: Vec<ReduceCall> = sources
            .iter()
            .zip(values_per_source)
            .map(|(source, values)| ReduceCall {
                sources: Arc::new(vec![source.clone()]),
                keys: None,
                values,
            })
            .collect();
        self.call(move |w| {
            let mut out = Vec::with_capacity(calls.len());
            for call in calls {
                out.extend(w.reduce(call)?);
            }
            Ok(out)
        })
    }

    /// Runs a design document's `validate_doc_update`. `Ok` accepts the
    /// write; `forbidden` (403), `unauthorized` (401) and `unknown_error`
    /// (500, for a thrown string or other one-member object) are CouchDB's
    /// refusals; a thrown `Error` gives its name and message (500).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool, ValidateCall};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let ddoc = json!({"_id": "_design/rules", "validate_doc_update":
    ///     "function(newDoc, oldDoc, userCtx, secObj) {
    ///         if (!newDoc.owner) throw({forbidden: 'owner required'});
    ///         if (userCtx.roles.indexOf('_admin') < 0) throw({unauthorized: 'admins only'});
    ///     }"});
    /// let call = |doc, roles| ValidateCall {
    ///     ddoc_id: "_design/rules".into(),
    ///     ddoc: Arc::new(ddoc.clone()),
    ///     new_doc: Arc::new(doc),
    ///     old_doc: None,
    ///     user_ctx: Arc::new(json!({"db": "db", "name": null, "roles": roles})),
    ///     sec_obj: Arc::new(json!({})),
    /// };
    /// assert!(pool.validate(&call(json!({"_id": "a", "owner": "ann"}), json!(["_admin"]))).is_ok());
    /// let err = pool.validate(&call(json!({"_id": "a"}), json!(["_admin"]))).unwrap_err();
    /// assert_eq!((err.status(), err.reason().as_str()), (403, "owner required"));
    /// let err = pool.validate(&call(json!({"_id": "a", "owner": "ann"}), json!([]))).unwrap_err();
    /// assert_eq!(err.status(), 401);
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn validate(&self, call: &ValidateCall) -> Result<()> {
        let call = call.clone();
        self.call(move |w| w.validate(&call))
    }

    /// Runs several validations (as `_bulk_docs` needs), spread over the
    /// workers like [`JsPool::map`]: one outcome per call, in order. The outer
    /// error is for the pool itself (time budget, engine limits).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool, ValidateCall};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let ddoc = Arc::new(json!({"validate_doc_update":
    ///     "function(doc) { if (doc.n < 0) throw({forbidden: 'negative'}); }"}));
    /// let calls = [1, -1, 2]
    ///     .map(|n| ValidateCall {
    ///         ddoc_id: "_design/v".into(),
    ///         ddoc: ddoc.clone(),
    ///         new_doc: Arc::new(json!({"_id": format!("d{n}"), "n": n})),
    ///         old_doc: None,
    ///         user_ctx: Arc::new(json!({"db": "db", "name": null, "roles": []})),
    ///         sec_obj: Arc::new(json!({})),
    ///     })
    ///     .to_vec();
    /// let outcomes = pool.validate_batch(calls)?;
    /// assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    /// assert_eq!(outcomes[1].as_ref().unwrap_err().reason(), "negative");
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn validate_batch(&self, calls: Vec<ValidateCall>) -> Result<Vec<Result<()>>> {
        self.run_split(calls, |w, chunk: Vec<ValidateCall>| {
            let mut outcomes = Vec::with_capacity(chunk.len());
            for call in &chunk {
                match w.validate(call) {
                    Err(e @ Error::JavaScript { .. }) if e.name() == "os_process_error" => {
                        return Err(e)
                    }
                    outcome => outcomes.push(outcome),
                }
            }
            Ok(outcomes)
        })
    }

    /// Splits `items` into one job per worker (at least [`MIN_ITEMS_PER_JOB`]
    /// items each) running `run`, and concatenates their outputs in order.
    /// The first failing job's error fails the whole call.
    fn run_split<T, R, F>(&self, items: Vec<T>, run: F) -> Result<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(&mut Worker, Vec<T>) -> Result<Vec<R>> + Send + Sync + 'static,
    {
        let total = items.len();
        let jobs = self
            .inner
            .config
            .workers
            .min(total.div_ceil(MIN_ITEMS_PER_JOB))
            .max(1);
        let per_job = total.div_ceil(jobs).max(1);
        let run = Arc::new(run);
        let mut items = items.into_iter();
        let mut pending = Vec::with_capacity(jobs);
        loop {
            let chunk: Vec<T> = items.by_ref().take(per_job).collect();
            if chunk.is_empty() && !pending.is_empty() {
                break;
            }
            let run = run.clone();
            pending.push(self.submit(move |w| run(w, chunk)));
        }
        let mut out = Vec::with_capacity(total);
        let mut failure = None;
        for p in pending {
            match self.wait(p) {
                Ok(part) => out.extend(part),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Runs filter function `name` of `ddoc` over `docs` with request `req`:
    /// one boolean (the truthiness of the result) per document. A throw fails
    /// the whole call.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool};
    ///
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() })?;
    /// let ddoc = Arc::new(json!({"filters": {
    ///     "by_type": "function(doc, req) { return doc.type === req.query.type; }"}}));
    /// let docs = vec![json!({"_id": "a", "type": "order"}), json!({"_id": "b", "type": "user"})];
    /// let req = json!({"query": {"type": "order"}});
    /// assert_eq!(pool.filter("_design/app", ddoc, "by_type", docs, req)?, [true, false]);
    /// # Ok::<(), settee::Error>(())
    /// ```
    pub fn filter(
        &self,
        ddoc_id: &str,
        ddoc: Arc<Value>,
        name: &str,
        docs: Vec<Value>,
        req: Value,
    ) -> Result<Vec<bool>> {
        let ddoc_id = ddoc_id.to_owned();
        let name = name.to_owned();
        self.call(move |w| w.filter(&ddoc_id, &ddoc, &name, docs, &req))
    }

    fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Worker) -> Result<R> + Send + 'static,
    {
        let pending = self.submit(f);
        self.wait(pending)
    }

    fn submit<R, F>(&self, f: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Worker) -> Result<R> + Send + 'static,
    {
        let state = Arc::new(JobState::new(self.inner.epoch));
        let (tx, reply) = bounded(1);
        let job = Job {
            state: state.clone(),
            run: Box::new(move |worker: &mut Worker| {
                // The caller may have given up; nobody listens then.
                let _ = tx.send(f(worker));
            }),
        };
        // The pool holds a receiver, so the channel never disconnects here.
        let _ = self.inner.jobs.send(job);
        Pending { reply, state }
    }

    fn wait<R>(&self, pending: Pending<R>) -> Result<R> {
        let budget = self.inner.config.timeout;
        loop {
            // A queued job waits for a worker; the budget runs from its start.
            let wait = match pending.state.status.load(Ordering::Acquire) {
                QUEUED => budget,
                _ => budget.saturating_sub(pending.state.idle()),
            };
            if pending.state.status.load(Ordering::Acquire) == OVER_MEMORY {
                let limit = self.inner.config.max_call_memory;
                tracing::warn!(
                    target: "settee::js",
                    "a JavaScript call allocated more than {limit} bytes; replacing its worker"
                );
                self.replace_worker();
                return Err(Error::JavaScript {
                    name: Cow::Borrowed("os_process_error"),
                    reason: format!("memory limit: a call allocated more than {limit} bytes"),
                });
            }
            if wait.is_zero() {
                if pending.state.transition(RUNNING, ABANDONED) {
                    tracing::warn!(
                        target: "settee::js",
                        "a JavaScript call made no progress for {budget:?}; replacing its worker"
                    );
                    self.replace_worker();
                    return Err(timeout_error(budget));
                }
                // Finished just now: its reply is there.
                continue;
            }
            match pending.reply.recv_timeout(wait.min(MEMORY_POLL)) {
                Ok(result) => return result,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::JavaScript {
                        name: Cow::Borrowed("os_process_error"),
                        reason: "the JavaScript worker failed".into(),
                    });
                }
            }
        }
    }

    /// Starts a worker in place of one left behind with its call.
    fn replace_worker(&self) {
        self.inner
            .counters
            .abandoned
            .fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.spawn_worker() {
            tracing::error!(target: "settee::js", "cannot start a replacement worker: {e}");
        }
    }

    fn spawn_worker(&self) -> Result<()> {
        let n = self.inner.threads_started.fetch_add(1, Ordering::Relaxed);
        let queue = self.inner.queue.clone();
        let config = self.inner.config.clone();
        // Counted from here, so a thread that fails to spawn uncounts itself
        // when the closure holding this is dropped.
        let live = LiveThread::new(self.inner.counters.clone());
        // Check the runtime starts before handing the thread any work.
        let (ready_tx, ready) = bounded(1);
        std::thread::Builder::new()
            .name(format!("settee-js-{n}"))
            .stack_size(config.stack_size)
            .spawn(move || worker_thread(live, queue, config, ready_tx))?;
        ready.recv().unwrap_or_else(|_| {
            Err(Error::JavaScript {
                name: Cow::Borrowed("os_process_error"),
                reason: "the JavaScript worker did not start".into(),
            })
        })
    }
}

fn timeout_error(budget: Duration) -> Error {
    Error::JavaScript {
        name: Cow::Borrowed("os_process_error"),
        reason: format!("timeout: no progress for {} ms", budget.as_millis()),
    }
}

/// `live` is declared first so that it is dropped last, after the worker.
fn worker_thread(
    live: LiveThread,
    queue: Receiver<Job>,
    config: Arc<JsConfig>,
    ready: Sender<Result<()>>,
) {
    let counters = live.0.clone();
    let mut worker = match Worker::new(config.clone(), counters.clone()) {
        Ok(w) => {
            let _ = ready.send(Ok(()));
            w
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    drop(ready);
    while let Ok(job) = queue.recv() {
        // Touch before running, so the budget is measured from this start.
        job.state.touch();
        if !job.state.transition(QUEUED, RUNNING) {
            continue;
        }
        worker.set_job(Some(job.state.clone()));
        let run = job.run;
        memory::start_call(config.max_call_memory, &job.state);
        let panicked = catch_unwind(AssertUnwindSafe(|| run(&mut worker))).is_err();
        memory::end_call();
        worker.set_job(None);
        if panicked {
            // The reply sender was dropped, so the caller sees a failure.
            // The context may be inconsistent: start over.
            tracing::error!(target: "settee::js", "a JavaScript worker panicked; restarting it");
            match Worker::new(config.clone(), counters.clone()) {
                Ok(w) => worker = w,
                Err(_) => return,
            }
        }
        if !job.state.transition(RUNNING, DONE) {
            // Abandoned by the watchdog; a replacement already runs.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job seen running before its worker's first `touch` is not idle
    /// since the pool's epoch (this race made the watchdog abandon healthy
    /// calls in a long-running server).
    #[test]
    fn new_job_is_not_idle_since_the_epoch() {
        let epoch = Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .expect("an hour ago");
        let state = JobState::new(epoch);
        assert!(state.transition(QUEUED, RUNNING));
        assert!(state.idle() < Duration::from_secs(60), "{:?}", state.idle());
    }
}
