//! The report: the [`Stats`] snapshot with the heaps' counters summed
//! ([`stats`], `allockit_malloc_stats`), and the text `ALLOCKIT_SHOW_STATS=1` prints at
//! exit.
//!
//! **What it is for.** Seeing what the allocator holds and what each size class served
//! (see `stats` for the counters themselves).
//!
//! **What it cannot do.** Give an exact instant picture: the heaps' counters are read while
//! their threads run.
//!
//! **Complexity.** A snapshot walks every heap once; the report walks them once per class.
//!
//! **Debug support.** It is the debug support: the report formats into a stack buffer
//! with `core::fmt::Write` and goes out with `write(2)`.

use core::fmt::Write;
use core::sync::atomic::Ordering;

use crate::options::SHOW_STATS;
use crate::segment::{CLASSES, SEGMENT_SIZE};
use crate::stats::{GLOBAL, Stats};
use crate::sys::StackText;

/// The allocator's figures now (see [`Stats`]).
pub fn stats() -> Stats {
    let mut stats = GLOBAL.snapshot();
    crate::pool::for_each_heap(|heap| {
        for class in 0..CLASSES {
            let (allocs, frees) = crate::heap::class_counts(heap, class);
            stats.allocations += allocs;
            stats.frees += frees;
        }
        stats.remote_frees += heap.stats.remote_frees.get();
    });
    stats
}

/// Registers the exit report when `ALLOCKIT_SHOW_STATS` asks for it.
pub(crate) fn register_exit_report() {
    if SHOW_STATS.load(Ordering::Relaxed) {
        // SAFETY: a plain function; glibc's first atexit block is static (no allocation).
        unsafe { libc::atexit(print_report) };
    }
}

extern "C" fn print_report() {
    print_to_stderr();
}

/// Writes the report to stderr.
pub fn print_to_stderr() {
    let s = stats();
    let mut out = StackText::<512>::new();
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let _ = writeln!(out, "allockit-malloc stats");
    let _ = writeln!(
        out,
        "  segments: {} now, {} peak, {} mapped in all ({} MiB each)",
        s.segments,
        s.segments_peak,
        s.segments_total,
        SEGMENT_SIZE >> 20
    );
    let _ = writeln!(
        out,
        "  large: {:.1} MiB live, {:.1} MiB mapped, {:.1} MiB peak mapped, {} served from the cache",
        mib(s.large_live_bytes),
        mib(s.large_mapped_bytes),
        mib(s.large_mapped_peak_bytes),
        s.large_reused
    );
    let _ = writeln!(
        out,
        "  footprint: {:.1} MiB now, {:.1} MiB peak; purged: {:.1} MiB",
        mib(s.footprint_bytes),
        mib(s.footprint_peak_bytes),
        mib(s.purged_bytes)
    );
    out.flush_to_stderr();
    let _ = writeln!(
        out,
        "  threads: {} heaps started, {} live; segments {} abandoned, {} adopted",
        s.heaps_started, s.heaps_live, s.segments_abandoned, s.segments_adopted
    );
    let _ = writeln!(
        out,
        "  small+medium: {} allocations, {} frees ({} remote)",
        s.allocations, s.frees, s.remote_frees
    );
    let _ = writeln!(out, "  {:>8} {:>14} {:>14} {:>12}", "class", "allocations", "frees", "live");
    out.flush_to_stderr();
    for class in 0..CLASSES {
        let (mut allocs, mut frees) = (0u64, 0u64);
        crate::pool::for_each_heap(|heap| {
            let (a, f) = crate::heap::class_counts(heap, class);
            allocs += a;
            frees += f;
        });
        if allocs == 0 && frees == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:>8} {:>14} {:>14} {:>12}",
            allockit::sizeclass::class_size(class),
            allocs,
            frees,
            allocs as i64 - frees as i64
        );
        out.flush_to_stderr();
    }
}
