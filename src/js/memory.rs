//! A per-call memory budget for JavaScript workers, enforced by a global
//! allocator wrapper.
//!
//! boa has no heap limit, and JavaScript can grow memory without calling
//! anything settee controls: `s = s + s` in a loop asks for a 4 GiB string
//! after 32 rounds, and a failed allocation aborts the whole process. The
//! only place that sees every allocation is the global allocator, so
//! [`JsMemoryGuard`] counts, per worker thread, the bytes a call has
//! allocated and not freed. When that passes `JsConfig::max_call_memory`, it
//! must not fail the allocation (that aborts) nor unwind (undefined
//! behaviour in an allocator): it marks the call as over its budget, so the
//! caller gets `os_process_error` at once and a replacement worker starts,
//! and puts the thread to sleep for good. The process keeps what the call had
//! allocated (at most the budget) and survives.
//!
//! Threads other than JavaScript workers, and workers between calls, are
//! only passed through to the wrapped allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::time::Duration;

use super::pool::JobState;

thread_local! {
    /// The running call's budget in bytes; 0 outside calls.
    static BUDGET: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed on this thread since the budget
    /// started (frees of memory from before can make it negative).
    static USED: Cell<isize> = const { Cell::new(0) };
    /// The running call's state, valid while `BUDGET` is not 0.
    static JOB: Cell<*const JobState> = const { Cell::new(std::ptr::null()) };
}

/// A global allocator that enforces the JavaScript pool's per-call memory
/// budget (`JsConfig::max_call_memory`) by wrapping another allocator.
/// Without it installed, the budget is not enforced and a function that
/// builds huge values can exhaust memory.
///
/// ```
/// use settee::js::JsMemoryGuard;
///
/// #[global_allocator]
/// static GLOBAL: JsMemoryGuard<std::alloc::System> = JsMemoryGuard(std::alloc::System);
/// ```
#[derive(Debug, Default)]
pub struct JsMemoryGuard<A>(pub A);

/// Starts counting this thread's allocations against `budget` bytes for the
/// call `job` (kept alive by the caller until [`end_call`]).
pub(super) fn start_call(budget: usize, job: &JobState) {
    JOB.with(|j| j.set(job));
    USED.with(|u| u.set(0));
    BUDGET.with(|b| b.set(budget));
}

/// Starts the budget over (one document done).
pub(super) fn reset_usage() {
    USED.with(|u| u.set(0));
}

/// Stops counting.
pub(super) fn end_call() {
    BUDGET.with(|b| b.set(0));
    JOB.with(|j| j.set(std::ptr::null()));
}

/// Counts `bytes` (negative: freed) against the budget, if a call runs.
fn charge(bytes: isize) {
    // `try_with`: allocations also happen while thread-locals are torn down.
    let _ = BUDGET.try_with(|budget| {
        let budget = budget.get();
        if budget == 0 {
            return;
        }
        let used = USED.with(|u| {
            let used = u.get().saturating_add(bytes);
            u.set(used);
            used
        });
        if bytes > 0 && used > budget as isize {
            over_budget();
        }
    });
}

/// Reports the call as over its budget and parks the thread forever: see
/// the module documentation for why it can neither fail nor unwind.
fn over_budget() -> ! {
    BUDGET.with(|b| b.set(0));
    let job = JOB.with(|j| j.get());
    // SAFETY: `start_call` set it to a state the worker keeps alive for
    // the whole call, and the call cannot end while this thread sleeps here.
    if let Some(job) = unsafe { job.as_ref() } {
        job.exceed_memory();
    }
    loop {
        // No allocation here: sleep is a plain system call.
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// SAFETY: every method forwards to the wrapped allocator with the same
// arguments; the bookkeeping neither allocates nor unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for JsMemoryGuard<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(layout.size() as isize);
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(layout.size() as isize);
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        charge(-(layout.size() as isize));
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        charge(new_size as isize - layout.size() as isize);
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
