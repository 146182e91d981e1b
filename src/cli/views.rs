//! View commands: `deploy` (design documents from files), `query` and
//! `reindex` (the batch re-index job).

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use settee::js::{JsConfig, JsPool};
use settee::validation::DocValidator;
use settee::view::{BuildProgress, BulkBuildConfig, DesignDoc, ViewEngine, ViewQuery};
use settee::{Database, Error, ReadOptions, Result};

use super::{print_json, read_input};

/// A database with design-document checks and VDUs installed, and its views.
fn open_views(db: &Path, workers: Option<usize>) -> Result<ViewEngine> {
    let db = Database::open(db)?;
    let mut config = JsConfig::default();
    if let Some(n) = workers {
        config.workers = n.max(1);
    }
    let pool = JsPool::new(config)?;
    DocValidator::install(&db, pool.clone());
    Ok(ViewEngine::new(db, pool).with_bulk_build(bulk_build_config()?))
}

/// The first-build settings, from `SETTEE_BULK_MEMORY`: the sort budget in
/// bytes (suffixes `K`, `M`, `G`), or `off` to build batch by batch.
fn bulk_build_config() -> Result<BulkBuildConfig> {
    let mut config = BulkBuildConfig::default();
    let Ok(text) = std::env::var("SETTEE_BULK_MEMORY") else {
        return Ok(config);
    };
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        config.enabled = false;
        return Ok(config);
    }
    let (digits, scale) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| Error::bad_request(format!("SETTEE_BULK_MEMORY: not a size: {text:?}")))?;
    config.memory_budget = n.saturating_mul(scale);
    Ok(config)
}

// ---------------------------------------------------------------- deploy

/// `settee deploy <db> <path>`: checks and compiles every design document
/// found at `path` before saving any, then saves the new and changed ones.
pub(crate) fn deploy(db: &Path, path: &Path) -> Result<i32> {
    let docs = load_design_docs(path)?;
    let views = open_views(db, None)?;
    let db = views.database();
    let pool = JsPool::new(JsConfig {
        workers: 1,
        ..JsConfig::default()
    })?;
    let existing: Vec<DesignDoc> = views.design_docs()?;
    let mut plans = Vec::with_capacity(docs.len());
    for doc in docs {
        let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default();
        if !id.starts_with("_design/") {
            return Err(Error::bad_request(format!(
                "{}: `_id` must start with `_design/`",
                if id.is_empty() { "(no _id)" } else { id }
            )));
        }
        // Nothing is saved unless every document passes.
        let ddoc = DesignDoc::check(&doc, &pool)
            .inspect_err(|_| eprintln!("settee: {id} is invalid; nothing was deployed"))?;
        let stored = match db.get(id, &ReadOptions::default()) {
            Ok(stored) => Some(stored),
            Err(e) if e.status() == 404 => None,
            Err(e) => return Err(e),
        };
        plans.push(plan_deploy(doc, ddoc, stored, &existing, &views));
    }
    let mut report = Vec::with_capacity(plans.len());
    let mut saved_any = false;
    for plan in plans {
        let mut line = plan.report;
        if let Some(doc) = plan.save {
            let saved = db.put(doc)?;
            line["rev"] = json!(saved.rev);
            saved_any = true;
        }
        report.push(line);
    }
    if saved_any {
        // As the server does after a design document change (here at once:
        // this process ends next): indexes no design document uses go.
        views.cleanup()?;
    }
    print_json(&json!({ "design_docs": report }))?;
    Ok(0)
}

/// What deploying one design document will do.
struct DeployPlan {
    /// The document to save (with the stored `_rev`), if anything changed.
    save: Option<Value>,
    report: Value,
}

fn plan_deploy(
    mut doc: Value,
    ddoc: DesignDoc,
    stored: Option<Value>,
    existing: &[DesignDoc],
    views: &ViewEngine,
) -> DeployPlan {
    let view_names: Vec<&str> = ddoc
        .group
        .maps
        .iter()
        .flat_map(|m| {
            m.map_names
                .iter()
                .map(String::as_str)
                .chain(m.reduces.iter().map(|r| r.name.as_str()))
        })
        .collect();
    let signature = &ddoc.group.signature;
    // An index another design document already uses (or one left on disk)
    // is reused as it is; otherwise saving starts a build from scratch.
    let index_exists = existing.iter().any(|d| &d.group.signature == signature)
        || views.index_dir(signature).exists();
    let (status, rev) = match &stored {
        None => ("new", None),
        Some(stored) => {
            let rev = stored.get("_rev").cloned();
            if same_content(&doc, stored) {
                ("unchanged", rev)
            } else {
                ("changed", rev)
            }
        }
    };
    let rebuilds = status != "unchanged" && !view_names.is_empty() && !index_exists;
    let report = json!({
        "id": ddoc.id,
        "status": status,
        "signature": signature,
        "views": view_names,
        "rebuilds": if rebuilds { view_names.clone() } else { Vec::new() },
    });
    let save = (status != "unchanged").then(|| {
        if let (Some(rev), Some(members)) = (rev, doc.as_object_mut()) {
            members.insert("_rev".into(), rev);
        }
        doc
    });
    DeployPlan { save, report }
}

/// Equal bodies, ignoring `_rev` and member order.
fn same_content(new: &Value, stored: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("_rev");
        m.sort_keys();
        m
    };
    strip(new) == strip(stored)
}

/// Design documents from a JSON file (an object or an array), a couchapp-style
/// folder (it has an `_id` file), or a folder of those.
fn load_design_docs(path: &Path) -> Result<Vec<Value>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::bad_request(format!("{}: {e}", path.display())))?;
    if meta.is_file() {
        return docs_from_json(path);
    }
    if path.join("_id").is_file() {
        return Ok(vec![Value::Object(folder_to_object(path)?)]);
    }
    let mut docs = Vec::new();
    for entry in sorted_entries(path)? {
        let name = entry.file_name().to_string_lossy().to_string();
        let entry_path = entry.path();
        if entry_path.is_dir() && entry_path.join("_id").is_file() {
            docs.push(Value::Object(folder_to_object(&entry_path)?));
        } else if entry_path.is_file() && name.ends_with(".json") {
            docs.extend(docs_from_json(&entry_path)?);
        }
    }
    if docs.is_empty() {
        return Err(Error::bad_request(format!(
            "{}: no design documents (JSON files or couchapp folders with an `_id` file)",
            path.display()
        )));
    }
    Ok(docs)
}

fn docs_from_json(path: &Path) -> Result<Vec<Value>> {
    let text = read_input(path)?;
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::bad_request(format!("{}: invalid JSON: {e}", path.display())))?;
    match value {
        Value::Array(docs) => Ok(docs),
        doc @ Value::Object(_) => Ok(vec![doc]),
        _ => Err(Error::bad_request(format!(
            "{}: expected a design document or an array of them",
            path.display()
        ))),
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .collect::<std::io::Result<_>>()
        .map_err(Error::from)?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries
        .into_iter()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect())
}

/// A couchapp folder as a document, the way couchapp and erica build one:
/// folders become objects, `name.js` the string member `name`, `name.json`
/// the parsed member `name`, and other files (`_id`, `language`) their text,
/// trimmed. `_attachments` are not supported and are skipped.
fn folder_to_object(dir: &Path) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for entry in sorted_entries(dir)? {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if name == "_attachments" {
            continue;
        }
        if path.is_dir() {
            out.insert(name, Value::Object(folder_to_object(&path)?));
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::bad_request(format!("{}: {e}", path.display())))?;
        if let Some(stem) = name.strip_suffix(".json") {
            let value = serde_json::from_str(&text).map_err(|e| {
                Error::bad_request(format!("{}: invalid JSON: {e}", path.display()))
            })?;
            out.insert(stem.to_string(), value);
        } else if let Some(stem) = name.strip_suffix(".js") {
            out.insert(stem.to_string(), Value::String(text.trim_end().to_string()));
        } else {
            out.insert(name, Value::String(text.trim().to_string()));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- query

/// `settee query <db> <ddoc>/<view>`: CouchDB's response JSON. `params` are
/// CouchDB query parameters (`limit=3`, `group_level=1`, JSON for keys),
/// applied after the JSON object `body`, as an HTTP query string overrides a
/// POST body.
pub(crate) fn query(
    db: &Path,
    view: &str,
    body: Option<&str>,
    params: &[(String, String)],
) -> Result<i32> {
    let (ddoc, name) = view
        .strip_prefix("_design/")
        .unwrap_or(view)
        .split_once('/')
        .filter(|(d, n)| !d.is_empty() && !n.is_empty())
        .ok_or_else(|| Error::bad_request("the view must be given as DDOC/VIEW"))?;
    let ddoc_id = format!("_design/{ddoc}");
    let mut query = match body {
        Some(text) => {
            let body: Value = serde_json::from_str(text)
                .map_err(|e| Error::bad_request(format!("--params: invalid JSON: {e}")))?;
            if !body.is_object() {
                return Err(Error::bad_request("Request body must be a JSON object"));
            }
            ViewQuery::from_body(&body)?
        }
        None => ViewQuery::new(),
    };
    query.apply_query_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let views = open_views(db, None)?;
    print_json(&views.query(&ddoc_id, name, &query)?)?;
    Ok(0)
}

// ---------------------------------------------------------------- reindex

/// Options of `settee reindex`.
pub(crate) struct ReindexOptions {
    pub ddoc: Option<String>,
    pub from_scratch: bool,
    pub workers: Option<usize>,
}

/// `settee reindex <db>`: builds or catches up every view group (or one).
/// Each batch commits its rows with the checkpoint, so an interrupted run
/// (Ctrl-C, kill) resumes where it stopped.
pub(crate) fn reindex(db: &Path, options: ReindexOptions) -> Result<i32> {
    // Before any worker thread starts, so that they all inherit the mask.
    let interrupted = interrupt_flag();
    let views = open_views(db, options.workers)?;
    let ddocs: Vec<String> = match &options.ddoc {
        Some(name) if name.starts_with("_design/") => vec![name.clone()],
        Some(name) => vec![format!("_design/{name}")],
        None => views
            .design_docs()?
            .into_iter()
            .filter(|d| !d.group.maps.is_empty() && d.group.is_javascript())
            .map(|d| d.id)
            .collect(),
    };
    let mut summaries = Vec::new();
    let mut done_signatures = std::collections::HashSet::new();
    for ddoc_id in &ddocs {
        let ddoc = views.design_doc(ddoc_id)?;
        if !done_signatures.insert(ddoc.group.signature.clone()) {
            // Two design documents with identical views share one index.
            continue;
        }
        if options.from_scratch {
            views.reset(ddoc_id)?;
        }
        let started = Instant::now();
        let bar = build_progress_bar(ddoc_id);
        let mut docs = 0;
        let outcome = views.update(ddoc_id, &mut |p: BuildProgress| {
            docs = p.docs_done;
            if let Some(bar) = &bar {
                bar.set_length(p.docs_total.max(p.docs_done));
                bar.set_position(p.docs_done);
            }
            if interrupted.load(Ordering::Relaxed) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let seq = outcome?;
        let stopped = interrupted.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let rows: u64 = views.row_counts(ddoc_id)?.iter().sum();
        let info = views.info(ddoc_id)?;
        summaries.push(json!({
            "design_doc": ddoc_id,
            "signature": ddoc.group.signature,
            "docs": docs,
            "rows": rows,
            "seconds": round3(seconds),
            "docs_per_sec": (docs as f64 / seconds.max(1e-9)).round(),
            "index_bytes": info.view_index.sizes.file,
            "update_seq": seq,
            "complete": !stopped,
        }));
        if stopped {
            break;
        }
    }
    print_json(&json!({ "indexes": summaries }))?;
    if interrupted.load(Ordering::Relaxed) {
        // Interrupted: the checkpoints written so far are where the next run resumes.
        eprintln!("settee: interrupted; run reindex again to resume from the checkpoint");
        return Ok(130);
    }
    Ok(0)
}

/// Set on SIGINT/SIGTERM, which then no longer kill the process: the update
/// stops at the next batch boundary. Blocks both signals in the calling
/// thread, so call it before starting other threads (they inherit the mask),
/// and receives them on a thread of its own.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = termination_signals();
    // SAFETY: `set` is an initialised sigset_t; a null old-mask pointer is allowed.
    let blocked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if blocked != 0 {
        // Without the mask, signals keep their default effect: still safe,
        // as every batch commits atomically with its checkpoint.
        return flag;
    }
    let on_signal = flag.clone();
    let spawned = std::thread::Builder::new()
        .name("settee-signals".into())
        .spawn(move || {
            let mut signal = 0;
            // SAFETY: waits on an initialised set of signals blocked in this thread.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                on_signal.store(true, Ordering::Relaxed);
            }
        });
    if spawned.is_err() {
        // SAFETY: as above; restores the default handling.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
    flag
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// A progress bar for an index build (docs done of total, docs/s, ETA), shown
/// only when stderr is a terminal.
pub(crate) fn build_progress_bar(ddoc_id: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} docs, {per_sec}, ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(ddoc_id.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
