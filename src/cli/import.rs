//! `settee import`: bulk-load JSON lines. A reader thread splits the input
//! into batches, parses and prepares them (validation, serialisation,
//! revision hashing) on the rayon pool while the main thread writes the
//! previous batch in one transaction.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde_json::{json, Value};
use settee::{BulkOptions, BulkResult, Database, PreparedBatch, Result};

use super::print_json;

/// A prepared batch: the documents' line numbers, the documents ready to
/// write, the lines that did not parse, and how many input bytes it covers.
struct Batch {
    lines: Vec<u64>,
    docs: PreparedBatch,
    bad: Vec<(u64, String)>,
    bytes: u64,
}

pub(crate) fn run(db: &Path, file: &Path, batch_size: usize) -> Result<i32> {
    let (input, total_bytes): (Box<dyn Read + Send>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(file)?;
        let len = f.metadata()?.len();
        (Box::new(f), Some(len))
    };
    let db = super::open_validated(db)?;
    let progress = progress_bar(total_bytes);
    let summary = import(&db, input, batch_size, progress.as_ref())?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    print_json(&json!({
        "ok": summary.failed == 0,
        "imported": summary.imported,
        "failed": summary.failed,
        "seconds": summary.seconds,
        "docs_per_sec": (summary.imported as f64 / summary.seconds.max(1e-9)).round(),
        "update_seq": db.update_seq()?,
    }))?;
    Ok(if summary.failed == 0 { 0 } else { 1 })
}

/// What an import did.
pub(crate) struct ImportSummary {
    /// Documents written.
    pub imported: u64,
    /// Lines refused (bad JSON, invalid or rejected documents), each reported on stderr.
    pub failed: u64,
    /// Wall time, parsing included.
    pub seconds: f64,
}

/// Imports JSON lines from `input` into `db`, `batch_size` documents a
/// transaction: a reader thread parses and prepares the next batch while
/// this one is written (and validated).
pub(crate) fn import(
    db: &Database,
    input: Box<dyn Read + Send>,
    batch_size: usize,
    progress: Option<&ProgressBar>,
) -> Result<ImportSummary> {
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded::<Result<Batch>>(1);
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || read_batches(&db, input, batch_size, &tx))
    };
    let (mut imported, mut failed) = (0u64, 0u64);
    for batch in rx {
        let batch = batch?;
        for (line, reason) in &batch.bad {
            report(progress, &format!("line {line}: bad_request: {reason}"));
        }
        failed += batch.bad.len() as u64;
        let results = db.write_prepared(batch.docs)?;
        for (line, result) in batch.lines.iter().zip(&results) {
            match result {
                BulkResult::Ok(_) => imported += 1,
                BulkResult::Error { id, error, .. } => {
                    failed += 1;
                    report(
                        progress,
                        &format!("line {line}: {} ({id}): {}", error.name(), error.reason()),
                    );
                }
            }
        }
        if let Some(pb) = progress {
            pb.inc(batch.bytes);
            let rate = imported as f64 / started.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!("{imported} docs, {rate:.0} docs/s"));
        }
    }
    reader
        .join()
        .map_err(|_| settee::Error::Corrupt("the input reader thread panicked".into()))?;
    Ok(ImportSummary {
        imported,
        failed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn progress_bar(total_bytes: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match total_bytes {
        Some(len) => {
            let pb = ProgressBar::new(len);
            pb.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {percent:>3}% {msg}, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            pb
        }
    };
    pb.set_message("0 docs");
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

fn report(progress: Option<&ProgressBar>, msg: &str) {
    match progress {
        Some(pb) => pb.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    }
}

/// Reads `batch_size` lines at a time, parses and prepares them in
/// parallel and sends the batches; stops early if the receiver is gone.
fn read_batches(
    db: &Database,
    input: Box<dyn Read + Send>,
    batch_size: usize,
    tx: &crossbeam_channel::Sender<Result<Batch>>,
) {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line_no = 0u64;
    loop {
        let mut lines = Vec::with_capacity(batch_size);
        let mut bytes = 0u64;
        while lines.len() < batch_size {
            let mut line = Vec::with_capacity(512);
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => {
                    bytes += n as u64;
                    line_no += 1;
                    if !line.trim_ascii().is_empty() {
                        lines.push((line_no, line));
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            }
        }
        if lines.is_empty() && bytes == 0 {
            return;
        }
        let parsed: Vec<(u64, std::result::Result<Value, String>)> = lines
            .into_par_iter()
            .map(|(n, line)| {
                (
                    n,
                    serde_json::from_slice(&line).map_err(|e| format!("invalid JSON: {e}")),
                )
            })
            .collect();
        let mut numbers = Vec::with_capacity(parsed.len());
        let mut docs = Vec::with_capacity(parsed.len());
        let mut bad = Vec::new();
        for (n, r) in parsed {
            match r {
                Ok(doc) => {
                    numbers.push(n);
                    docs.push(doc);
                }
                Err(e) => bad.push((n, e)),
            }
        }
        let batch = db
            .prepare_bulk(docs, BulkOptions::default().per_doc_errors(true))
            .map(|docs| Batch {
                lines: numbers,
                docs,
                bad,
                bytes,
            });
        if tx.send(batch).is_err() {
            return;
        }
    }
}
