//! One JavaScript worker: a boa `Context` with settee's runtime loaded, the
//! functions it has compiled, and the code that runs each kind of call.
//!
//! A `Worker` lives on the stack of its own OS thread (see `pool.rs`) and is
//! never put in a `thread_local!`: boa's GC is thread-local, and a Context
//! dropped after it at thread exit corrupts the heap.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use boa_engine::object::builtins::{JsArray, JsFunction};
use boa_engine::object::FunctionObjectBuilder;
use boa_engine::property::Attribute;
use boa_engine::{
    js_string, Context, JsNativeError, JsObject, JsResult, JsValue, NativeFunction, Source,
};
use boa_gc::{Finalize, Trace};
use serde_json::Value;

use super::compile::{compile_function, script_text};
use super::convert::{to_json, to_json_or_null, JsBuilder, OutputLimits};
use super::limits::{check_nesting, max_nesting_for_stack};
use super::memory;
use super::pool::{Counters, JobState};
use super::reads::{parameter_reads, union, ParamReads};
use super::reduce::{apply_reduce_limit, ReduceCall};
use super::thrown::Thrown;
use super::{DocMapOutput, FunctionKind, JsConfig, MapGroup, ValidateCall};
use crate::{Error, Result};

/// The runtime every worker loads (`js/runtime.js`).
const RUNTIME_JS: &str = include_str!("../../js/runtime.js");

/// What `emit` and `log` write to while a call runs.
#[derive(Default)]
struct Sink {
    rows: Vec<(Value, Value)>,
    limits: OutputLimits,
    /// Design document, kind of function and document being processed, for
    /// the log lines of `log()` (a reduce knows no design document or
    /// document: both are then empty).
    ddoc_id: String,
    function: &'static str,
    doc_id: Option<String>,
    /// The job being run: progress reports to the pool's watchdog, and
    /// whether the watchdog has given up on it.
    job: Option<Arc<JobState>>,
}

/// Shares the sink with the native functions. It holds no GC pointers, so
/// it needs no tracing.
#[derive(Trace, Finalize, Clone)]
struct SinkHandle {
    #[unsafe_ignore_trace]
    sink: Rc<RefCell<Sink>>,
}

/// What the `JSON.stringify` replacement needs: the engine's own version
/// (for replacer and indent arguments) and the output limits.
#[derive(Trace, Finalize)]
struct StringifyCaptures {
    original: JsObject,
    handle: SinkHandle,
    #[unsafe_ignore_trace]
    limits: OutputLimits,
}

/// A map group compiled in this worker.
struct CompiledGroup {
    maps: Vec<JsFunction>,
    require: JsValue,
    /// What the maps read of their document, together.
    doc_reads: ParamReads,
}

/// A design-document function compiled in this worker, with its `this`.
#[derive(Clone)]
struct DdocFunction {
    function: JsFunction,
    ddoc: JsValue,
    require: JsValue,
    /// For `validate_doc_update`: what it reads of `newDoc` and `oldDoc`.
    doc_reads: Rc<[ParamReads]>,
}

/// A small insertion-ordered cache; the oldest entry goes first.
struct Cache<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Cache<K, V> {
    fn new(capacity: usize) -> Self {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.map.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.map.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }
}

/// One worker's JavaScript engine.
pub struct Worker {
    ctx: Context,
    config: Arc<JsConfig>,
    max_nesting: usize,
    sink: Rc<RefCell<Sink>>,
    builder: JsBuilder,
    make_require: JsFunction,
    groups: Cache<String, Rc<CompiledGroup>>,
    reduces: Cache<String, JsFunction>,
    ddoc_functions: Cache<(String, String, u64), DdocFunction>,
    /// The last `(userCtx, secObj)` a validation saw, and their frozen JS values.
    validation_context: Option<(Arc<Value>, Arc<Value>, JsValue, JsValue)>,
    counters: Arc<Counters>,
}

impl Worker {
    /// A fresh context with the limits of `config` and the runtime loaded.
    /// `counters` are the pool's, which this worker adds to.
    pub fn new(config: Arc<JsConfig>, counters: Arc<Counters>) -> Result<Worker> {
        let mut ctx = Context::default();
        let limits = ctx.runtime_limits_mut();
        limits.set_loop_iteration_limit(config.loop_iteration_limit);
        limits.set_recursion_limit(config.recursion_limit);
        let sink = Rc::new(RefCell::new(Sink {
            limits: OutputLimits {
                max_bytes: config.max_value_bytes,
                ..OutputLimits::default()
            },
            ..Sink::default()
        }));
        let handle = SinkHandle { sink: sink.clone() };
        let setup = |ctx: &mut Context| -> JsResult<JsFunction> {
            ctx.register_global_callable(
                js_string!("emit"),
                2,
                NativeFunction::from_copy_closure_with_captures(native_emit, handle.clone()),
            )?;
            ctx.register_global_callable(
                js_string!("__settee_log"),
                1,
                NativeFunction::from_copy_closure_with_captures(native_log, handle.clone()),
            )?;
            ctx.register_global_property(
                js_string!("require"),
                JsValue::undefined(),
                Attribute::all(),
            )?;
            install_stringify(ctx, &handle)?;
            install_array_guards(ctx, &handle, OutputLimits::default().max_depth)?;
            ctx.eval(Source::from_bytes(RUNTIME_JS))?;
            let make_require = ctx.eval(Source::from_bytes("__settee.makeRequire"))?;
            make_require.as_function().ok_or_else(|| {
                JsNativeError::typ()
                    .with_message("makeRequire missing")
                    .into()
            })
        };
        let start_error = |e: boa_engine::JsError| Error::JavaScript {
            name: "os_process_error".into(),
            reason: format!("cannot start the JavaScript runtime: {e}"),
        };
        let builder = JsBuilder::new(&mut ctx).map_err(start_error)?;
        let make_require = setup(&mut ctx).map_err(start_error)?;
        Ok(Worker {
            ctx,
            max_nesting: max_nesting_for_stack(config.stack_size, config.max_source_nesting),
            groups: Cache::new(config.cache_size),
            reduces: Cache::new(config.cache_size * 4),
            ddoc_functions: Cache::new(config.cache_size * 4),
            validation_context: None,
            config,
            sink,
            builder,
            make_require,
            counters,
        })
    }

    /// Names the design document and kind of function that `log()` lines
    /// of the coming calls belong to, and forgets the previous document.
    fn set_scope(&self, ddoc_id: &str, kind: FunctionKind) {
        let mut sink = self.sink.borrow_mut();
        sink.ddoc_id.clear();
        sink.ddoc_id.push_str(ddoc_id);
        sink.function = kind.as_str();
        sink.doc_id = None;
    }

    /// Sets (or clears) the job being run.
    pub(super) fn set_job(&mut self, job: Option<Arc<JobState>>) {
        self.sink.borrow_mut().job = job;
    }

    /// Reports progress to the watchdog (one document or call done), or
    /// stops a call the watchdog has abandoned: nobody waits for the rest of
    /// its batch, and the thread should exit as soon as it can.
    fn tick(&self) -> Result<()> {
        if let Some(job) = &self.sink.borrow().job {
            if job.abandoned() {
                return Err(abandoned_error());
            }
            job.touch();
        }
        memory::reset_usage();
        Ok(())
    }

    /// Compiles a function with [`compile_function`], counting it in the
    /// pool's statistics.
    fn compile(&mut self, source: &str) -> Result<JsFunction> {
        self.counters.compilations.fetch_add(1, Ordering::Relaxed);
        compile_function(&mut self.ctx, source, self.max_nesting)
    }

    /// Compiles `source` and discards it (design-document checks). Every
    /// kind compiles the same way in CouchDB; `kind` only labels the log.
    pub fn compile_check(&mut self, kind: FunctionKind, source: &str) -> Result<()> {
        self.set_global("require", JsValue::undefined())?;
        let result = self.compile(source).map(|_| ());
        if let Err(e) = &result {
            tracing::debug!(target: "settee::js", kind = kind.as_str(), "compile check failed: {e}");
        }
        result
    }

    /// Runs every map function of `group` over `docs`.
    pub fn map(&mut self, group: &MapGroup, docs: Vec<Value>) -> Result<Vec<DocMapOutput>> {
        let compiled = self.map_group(group)?;
        self.set_global("require", compiled.require.clone())?;
        self.set_scope(&group.ddoc_id, FunctionKind::Map);
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            self.tick()?;
            let doc_id = doc.get("_id").and_then(Value::as_str).map(str::to_owned);
            let js_doc = self
                .builder
                .build_read(
                    &doc,
                    compiled.doc_reads.as_deref(),
                    self.config.freeze_docs,
                    &mut self.ctx,
                )
                .map_err(|e| self.engine_error(e))?;
            drop(doc);
            self.sink.borrow_mut().doc_id = doc_id;
            let mut per_doc = Vec::with_capacity(compiled.maps.len());
            for map in &compiled.maps {
                self.sink.borrow_mut().rows.clear();
                match map.call(
                    &JsValue::undefined(),
                    std::slice::from_ref(&js_doc),
                    &mut self.ctx,
                ) {
                    Ok(_) => per_doc.push(Ok(std::mem::take(&mut self.sink.borrow_mut().rows))),
                    Err(err) => {
                        let thrown = Thrown::from_js(err, &mut self.ctx);
                        self.abort_if_needed(&thrown)?;
                        let message = thrown.describe();
                        let sink = self.sink.borrow();
                        tracing::info!(
                            target: "settee::js",
                            ddoc_id = %sink.ddoc_id,
                            group = %group.id,
                            doc_id = sink.doc_id.as_deref().unwrap_or(""),
                            "function raised exception {message} with doc._id {}",
                            sink.doc_id.as_deref().unwrap_or("undefined")
                        );
                        per_doc.push(Err(message));
                    }
                }
            }
            out.push(per_doc);
        }
        self.sink.borrow_mut().rows.clear();
        Ok(out)
    }

    /// Runs reduce (or rereduce) functions; see [`ReduceCall`].
    pub fn reduce(&mut self, call: ReduceCall) -> Result<Vec<Value>> {
        self.set_global("require", JsValue::undefined())?;
        self.set_scope("", FunctionKind::Reduce);
        let mut functions = Vec::with_capacity(call.sources.len());
        for source in call.sources.iter() {
            functions.push(self.reduce_function(source)?);
        }
        let (keys, values) = self
            .reduce_arguments(&call)
            .map_err(|e| self.engine_error(e))?;
        let rereduce = JsValue::new(call.keys.is_none());
        let limits = self.sink.borrow().limits;
        let mut reductions = Vec::with_capacity(functions.len());
        for function in &functions {
            self.tick()?;
            let args = [keys.clone(), values.clone(), rereduce.clone()];
            let result = function
                .call(&JsValue::undefined(), &args, &mut self.ctx)
                .and_then(|v| to_json_or_null(&v, limits, &mut self.ctx));
            match result {
                Ok(v) => reductions.push(v),
                Err(err) => {
                    let thrown = Thrown::from_js(err, &mut self.ctx);
                    self.abort_if_needed(&thrown)?;
                    tracing::info!(
                        target: "settee::js",
                        "reduce function raised exception {}",
                        thrown.describe()
                    );
                    reductions.push(Value::Null);
                }
            }
        }
        Ok(apply_reduce_limit(&self.config, &call, reductions))
    }

    fn reduce_arguments(&mut self, call: &ReduceCall) -> JsResult<(JsValue, JsValue)> {
        let mut values = Vec::with_capacity(call.values.len());
        for v in &call.values {
            values.push(self.builder.build(v, false, &mut self.ctx)?);
        }
        let values = JsArray::from_iter(values, &mut self.ctx).into();
        let keys = match &call.keys {
            None => JsValue::null(),
            Some(keys) => {
                let mut pairs = Vec::with_capacity(keys.len());
                for (key, id) in keys {
                    let key = self.builder.build(key, false, &mut self.ctx)?;
                    let id = JsValue::from(js_string!(id.as_str()));
                    pairs.push(JsArray::from_iter([key, id], &mut self.ctx).into());
                }
                JsArray::from_iter(pairs, &mut self.ctx).into()
            }
        };
        Ok((keys, values))
    }

    /// Runs one `validate_doc_update`, with CouchDB's outcomes.
    pub fn validate(&mut self, call: &ValidateCall) -> Result<()> {
        let Some(source) = call.ddoc.get("validate_doc_update").and_then(Value::as_str) else {
            return Ok(());
        };
        let f = self.ddoc_function(&call.ddoc_id, &call.ddoc, "validate_doc_update", source)?;
        self.set_global("require", f.require.clone())?;
        self.set_scope(&call.ddoc_id, FunctionKind::Validate);
        self.sink.borrow_mut().doc_id = call
            .new_doc
            .get("_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut js_args = Vec::with_capacity(4);
        for (i, doc) in [Some(&*call.new_doc), call.old_doc.as_deref()]
            .into_iter()
            .enumerate()
        {
            let reads = f.doc_reads.get(i).and_then(Option::as_deref);
            js_args.push(match doc {
                Some(v) => self
                    .builder
                    .build_read(v, reads, false, &mut self.ctx)
                    .map_err(|e| self.engine_error(e))?,
                None => JsValue::null(),
            });
        }
        let (user_ctx, sec_obj) = self.validation_context(&call.user_ctx, &call.sec_obj)?;
        js_args.push(user_ctx);
        js_args.push(sec_obj);
        self.tick()?;
        match f.function.call(&f.ddoc, &js_args, &mut self.ctx) {
            Ok(_) => Ok(()),
            Err(err) => {
                let thrown = Thrown::from_js(err, &mut self.ctx);
                self.abort_if_needed(&thrown)?;
                Err(validation_error(thrown))
            }
        }
    }

    /// `userCtx` and `secObj` as frozen JavaScript objects, reused while they
    /// stay the same (every document of a bulk write shares them).
    fn validation_context(
        &mut self,
        user_ctx: &Arc<Value>,
        sec_obj: &Arc<Value>,
    ) -> Result<(JsValue, JsValue)> {
        if let Some((u, s, js_u, js_s)) = &self.validation_context {
            // The calls of one batch share their `Arc`s: no deep comparison.
            let same = |a: &Arc<Value>, b: &Arc<Value>| Arc::ptr_eq(a, b) || a == b;
            if same(u, user_ctx) && same(s, sec_obj) {
                return Ok((js_u.clone(), js_s.clone()));
            }
        }
        let js_u = self
            .builder
            .build(user_ctx, true, &mut self.ctx)
            .map_err(|e| self.engine_error(e))?;
        let js_s = self
            .builder
            .build(sec_obj, true, &mut self.ctx)
            .map_err(|e| self.engine_error(e))?;
        self.validation_context = Some((
            user_ctx.clone(),
            sec_obj.clone(),
            js_u.clone(),
            js_s.clone(),
        ));
        Ok((js_u, js_s))
    }

    /// Runs filter `name` of a design document over `docs`.
    pub fn filter(
        &mut self,
        ddoc_id: &str,
        ddoc: &Value,
        name: &str,
        docs: Vec<Value>,
        req: &Value,
    ) -> Result<Vec<bool>> {
        let source = ddoc
            .get("filters")
            .and_then(|f| f.get(name))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::not_found(format!("missing json key: {name}")))?;
        let f = self.ddoc_function(ddoc_id, ddoc, name, source)?;
        self.set_global("require", f.require.clone())?;
        self.set_scope(ddoc_id, FunctionKind::Filter);
        let js_req = self
            .builder
            .build(req, false, &mut self.ctx)
            .map_err(|e| self.engine_error(e))?;
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            self.tick()?;
            self.sink.borrow_mut().doc_id =
                doc.get("_id").and_then(Value::as_str).map(str::to_owned);
            let js_doc = self
                .builder
                .build(&doc, false, &mut self.ctx)
                .map_err(|e| self.engine_error(e))?;
            match f
                .function
                .call(&f.ddoc, &[js_doc, js_req.clone()], &mut self.ctx)
            {
                Ok(v) => out.push(v.to_boolean()),
                Err(err) => {
                    let thrown = Thrown::from_js(err, &mut self.ctx);
                    self.abort_if_needed(&thrown)?;
                    return Err(thrown.into_query_server_error());
                }
            }
        }
        Ok(out)
    }

    /// Returns the error that ends the whole call for `thrown`, if any, and
    /// rebuilds the context after a fatal one.
    fn abort_if_needed(&mut self, thrown: &Thrown) -> Result<()> {
        let Some(error) = thrown.abort_error() else {
            return Ok(());
        };
        if thrown.is_fatal() {
            self.reset()?;
        }
        Err(error)
    }

    /// Replaces the context and forgets every compiled function (CouchDB
    /// restarts the couchjs process).
    fn reset(&mut self) -> Result<()> {
        let job = self.sink.borrow_mut().job.take();
        *self = Worker::new(self.config.clone(), self.counters.clone())?;
        self.set_job(job);
        Ok(())
    }

    fn map_group(&mut self, group: &MapGroup) -> Result<Rc<CompiledGroup>> {
        if let Some(compiled) = self.groups.get(&group.id) {
            return Ok(compiled.clone());
        }
        if let Some(lib) = &group.lib {
            self.check_lib_nesting(lib)?;
        }
        let root =
            serde_json::json!({ "views": { "lib": group.lib.clone().unwrap_or(Value::Null) } });
        let require = self.make_require(&root)?;
        self.set_global("require", require.clone())?;
        let mut maps = Vec::with_capacity(group.maps.len());
        let mut doc_reads: ParamReads = Some(Vec::new());
        for source in &group.maps {
            self.tick()?;
            maps.push(self.compile(source)?);
            let reads = parameter_reads(&script_text(source), 1).pop().flatten();
            doc_reads = union(doc_reads, reads);
        }
        let compiled = Rc::new(CompiledGroup {
            maps,
            require,
            doc_reads,
        });
        self.groups.insert(group.id.clone(), compiled.clone());
        Ok(compiled)
    }

    fn reduce_function(&mut self, source: &str) -> Result<JsFunction> {
        if let Some(f) = self.reduces.get(&source.to_owned()) {
            return Ok(f.clone());
        }
        let f = self.compile(source)?;
        self.reduces.insert(source.to_owned(), f.clone());
        Ok(f)
    }

    /// A validate or filter function of a design document. Cached by
    /// (ddoc id, function name, hash of the whole design document), so an
    /// edited design document (or library) is compiled again.
    fn ddoc_function(
        &mut self,
        ddoc_id: &str,
        ddoc: &Value,
        name: &str,
        source: &str,
    ) -> Result<DdocFunction> {
        // A stored design document's `_rev` names its content; hashing it
        // instead of the whole document keeps per-document calls cheap.
        let mut hasher = DefaultHasher::new();
        match ddoc.get("_rev").and_then(Value::as_str) {
            Some(rev) => rev.hash(&mut hasher),
            None => ddoc.to_string().hash(&mut hasher),
        }
        let key = (ddoc_id.to_owned(), name.to_owned(), hasher.finish());
        if let Some(f) = self.ddoc_functions.get(&key) {
            return Ok(f.clone());
        }
        self.check_lib_nesting(ddoc)?;
        let require = self.make_require(ddoc)?;
        self.set_global("require", require.clone())?;
        let function = self.compile(source)?;
        // Frozen, so a function cannot leave state in the cached `this`.
        let js_ddoc = self
            .builder
            .build(ddoc, true, &mut self.ctx)
            .map_err(|e| self.engine_error(e))?;
        let doc_reads = if name == "validate_doc_update" {
            parameter_reads(&script_text(source), 2).into()
        } else {
            Rc::from([])
        };
        let f = DdocFunction {
            function,
            ddoc: js_ddoc,
            require,
            doc_reads,
        };
        self.ddoc_functions.insert(key, f.clone());
        Ok(f)
    }

    /// Every string a `require` could evaluate must pass the nesting scan.
    fn check_lib_nesting(&self, value: &Value) -> Result<()> {
        match value {
            Value::String(s) => check_nesting(s, self.max_nesting),
            Value::Array(items) => items.iter().try_for_each(|v| self.check_lib_nesting(v)),
            Value::Object(members) => members.values().try_for_each(|v| self.check_lib_nesting(v)),
            _ => Ok(()),
        }
    }

    fn make_require(&mut self, root: &Value) -> Result<JsValue> {
        let root = self
            .builder
            .build(root, true, &mut self.ctx)
            .map_err(|e| self.engine_error(e))?;
        self.make_require
            .call(&JsValue::undefined(), &[root], &mut self.ctx)
            .map_err(|e| Thrown::from_js(e, &mut self.ctx).into_error())
    }

    fn set_global(&mut self, name: &str, value: JsValue) -> Result<()> {
        self.ctx
            .global_object()
            .set(js_string!(name), value, false, &mut self.ctx)
            .map(|_| ())
            .map_err(|e| Thrown::from_js(e, &mut self.ctx).into_error())
    }

    fn engine_error(&mut self, err: boa_engine::JsError) -> Error {
        Thrown::from_js(err, &mut self.ctx).into_error()
    }
}

/// `emit(key, value)`: converts both at once with `JSON.stringify` rules
/// (a missing value is null).
fn native_emit(
    _this: &JsValue,
    args: &[JsValue],
    handle: &SinkHandle,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    stop_if_abandoned(handle, ctx)?;
    let limits = handle.sink.borrow().limits;
    let undefined = JsValue::undefined();
    let key = to_json_or_null(args.first().unwrap_or(&undefined), limits, ctx)?;
    let value = to_json_or_null(args.get(1).unwrap_or(&undefined), limits, ctx)?;
    handle.sink.borrow_mut().rows.push((key, value));
    Ok(JsValue::undefined())
}

/// Replaces `JSON.stringify` with a version that refuses values nested deeper
/// than the converter's limit: boa's own recurses natively once per level,
/// and a value nested a million deep (easy to build in a loop) would overflow
/// the worker's stack and abort the process.
fn install_stringify(ctx: &mut Context, handle: &SinkHandle) -> JsResult<()> {
    let limits = handle.sink.borrow().limits;
    let json = ctx.global_object().get(js_string!("JSON"), ctx)?;
    let json = json
        .as_object()
        .ok_or_else(|| JsNativeError::typ().with_message("JSON missing"))?;
    let original = json
        .get(js_string!("stringify"), ctx)?
        .as_object()
        .ok_or_else(|| JsNativeError::typ().with_message("JSON.stringify missing"))?;
    let captures = StringifyCaptures {
        original,
        handle: handle.clone(),
        limits: OutputLimits {
            errors_as_objects: false,
            ..limits
        },
    };
    let stringify = FunctionObjectBuilder::new(
        ctx.realm(),
        NativeFunction::from_copy_closure_with_captures(native_stringify, captures),
    )
    .name(js_string!("stringify"))
    .length(3)
    .build();
    json.set(js_string!("stringify"), stringify, true, ctx)?;
    Ok(())
}

fn native_stringify(
    _this: &JsValue,
    args: &[JsValue],
    captures: &StringifyCaptures,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    stop_if_abandoned(&captures.handle, ctx)?;
    let undefined = JsValue::undefined();
    let value = args.first().unwrap_or(&undefined);
    let converted = to_json(value, captures.limits, ctx)?;
    let plain = args.iter().skip(1).all(JsValue::is_null_or_undefined);
    if !plain {
        // The depth is known to be safe now; the engine handles replacer and indent.
        return captures.original.call(&JsValue::undefined(), args, ctx);
    }
    Ok(match converted {
        None => JsValue::undefined(),
        Some(json) => {
            let text = serde_json::to_string(&json)
                .map_err(|e| JsNativeError::typ().with_message(e.to_string()))?;
            JsValue::from(js_string!(text.as_str()))
        }
    })
}

/// A built-in wrapped by [`install_array_guards`].
#[derive(Trace, Finalize)]
struct GuardCaptures {
    original: JsObject,
    handle: SinkHandle,
    #[unsafe_ignore_trace]
    depth: Rc<Cell<usize>>,
    #[unsafe_ignore_trace]
    max_depth: usize,
    /// For `flat`: clamp the depth argument instead of counting calls.
    #[unsafe_ignore_trace]
    clamp_argument: bool,
}

/// `Array.prototype.join` (and so `toString`/`String(array)`),
/// `toLocaleString` and `flat` recurse natively into nested arrays; a value
/// nested a million deep would overflow the stack and abort the process. The
/// wrappers refuse (or, for `flat`, stop) at `max_depth` levels.
fn install_array_guards(ctx: &mut Context, handle: &SinkHandle, max_depth: usize) -> JsResult<()> {
    let prototype = ctx.intrinsics().constructors().array().prototype();
    let depth = Rc::new(Cell::new(0));
    for (name, length, clamp_argument) in [
        ("join", 1, false),
        ("toLocaleString", 0, false),
        ("flat", 0, true),
    ] {
        let original = prototype
            .get(js_string!(name), ctx)?
            .as_object()
            .ok_or_else(|| {
                JsNativeError::typ().with_message(format!("Array.prototype.{name} missing"))
            })?;
        let captures = GuardCaptures {
            original,
            handle: handle.clone(),
            depth: depth.clone(),
            max_depth,
            clamp_argument,
        };
        let guarded = FunctionObjectBuilder::new(
            ctx.realm(),
            NativeFunction::from_copy_closure_with_captures(native_guarded, captures),
        )
        .name(js_string!(name))
        .length(length)
        .build();
        prototype.set(js_string!(name), guarded, true, ctx)?;
    }
    Ok(())
}

fn native_guarded(
    this: &JsValue,
    args: &[JsValue],
    guard: &GuardCaptures,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    stop_if_abandoned(&guard.handle, ctx)?;
    if guard.clamp_argument {
        let depth = match args.first() {
            Some(d) if !d.is_undefined() => d.to_number(ctx)?,
            _ => 1.0,
        };
        let clamped = JsValue::new(depth.min(guard.max_depth as f64));
        return guard.original.call(this, &[clamped], ctx);
    }
    if guard.depth.get() >= guard.max_depth {
        return Err(JsNativeError::range()
            .with_message(format!(
                "array nested deeper than {} levels",
                guard.max_depth
            ))
            .into());
    }
    guard.depth.set(guard.depth.get() + 1);
    let result = guard.original.call(this, args, ctx);
    guard.depth.set(guard.depth.get() - 1);
    result
}

/// The error that ends a call the watchdog has abandoned.
fn abandoned_error() -> Error {
    Error::JavaScript {
        name: "os_process_error".into(),
        reason: "the call was abandoned after its time budget".into(),
    }
}

/// Makes an abandoned call unwind, from a native function it calls. boa 0.22
/// cannot be interrupted from another thread (boa-dev/boa#3442), so the
/// watchdog only flags the job; the natives the runtime installs (`emit`,
/// `log`, `JSON.stringify`, the array guards) are the points where the
/// worker thread itself notices. The error thrown here can be caught, so
/// both runtime limits drop to zero first: the next loop iteration or
/// function call of the rest of the call raises an error JavaScript cannot
/// catch. The worker thread exits when the call has unwound.
fn stop_if_abandoned(handle: &SinkHandle, ctx: &mut Context) -> JsResult<()> {
    let abandoned = handle
        .sink
        .borrow()
        .job
        .as_ref()
        .is_some_and(|job| job.abandoned());
    if abandoned {
        let limits = ctx.runtime_limits_mut();
        limits.set_loop_iteration_limit(0);
        limits.set_recursion_limit(0);
        return Err(JsNativeError::error()
            .with_message("the call was abandoned after its time budget")
            .into());
    }
    Ok(())
}

/// `__settee_log(message)`: the runtime's `log` has already made it a string.
fn native_log(
    _this: &JsValue,
    args: &[JsValue],
    handle: &SinkHandle,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    stop_if_abandoned(handle, ctx)?;
    let message = match args.first() {
        Some(v) => v.to_string(ctx)?.to_std_string_escaped(),
        None => String::new(),
    };
    let sink = handle.sink.borrow();
    tracing::info!(
        target: "settee::js",
        ddoc_id = %sink.ddoc_id,
        doc_id = sink.doc_id.as_deref().unwrap_or(""),
        function = sink.function,
        "{message}"
    );
    Ok(JsValue::undefined())
}

/// CouchDB's `validate_doc_update` outcomes: `{forbidden: msg}` → 403,
/// `{unauthorized: msg}` → 401, any other one-member object or a string →
/// 500 `unknown_error`, and real `Error`s are rethrown as query-server errors.
fn validation_error(thrown: Thrown) -> Error {
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    if let Some(e) = thrown.as_query_server_error() {
        return e;
    }
    match thrown {
        Thrown::Value(Some(Value::Object(members))) if members.len() == 1 => {
            let (name, message) = members.iter().next().expect("one member");
            match name.as_str() {
                "forbidden" => Error::Forbidden(text(message)),
                "unauthorized" => Error::Unauthorized(text(message)),
                _ => Error::couch(500, "unknown_error", text(message)),
            }
        }
        Thrown::Value(Some(Value::String(s))) => Error::couch(500, "unknown_error", s),
        other => other.into_error(),
    }
}
