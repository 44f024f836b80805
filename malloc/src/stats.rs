//! Counters: per-heap ones its thread bumps without a read-modify-write, global ones the
//! slow paths update atomically, the [`Stats`] snapshot, and the report
//! `ALLOCKIT_SHOW_STATS=1` prints at exit.
//!
//! **What it is for.** Seeing what the allocator holds (segments, large mappings, purged
//! bytes, abandoned and adopted segments) and what each size class served, as
//! `MIMALLOC_SHOW_STATS` and jemalloc's `malloc_stats_print` do; tests read [`stats`] to
//! check that memory is reused.
//!
//! **What it cannot do.** Give an exact instant picture: per-heap counters are read while
//! their threads run, so live blocks per class are `allocations − frees` summed over heaps
//! at one moment, approximately. Frees from a thread that never allocated are not counted
//! per class.
//!
//! **Complexity.** A counter bump is a load and a store on the owner's cache line; the
//! report walks every heap once.
//!
//! **Debug support.** It is the debug support: the report formats into a stack buffer
//! with `core::fmt::Write` and goes out with `write(2)`.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::segment::{CLASSES, SEGMENT_SIZE};
use crate::sys::StackText;

/// A counter one thread writes and any thread may read.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one: a relaxed load and store (the owner is the only writer), no lock prefix.
    #[inline(always)]
    pub(crate) fn bump(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `ALLOCKIT_SHOW_STATS`.
pub(crate) static SHOW_STATS: AtomicBool = AtomicBool::new(false);

/// Process-wide counters, updated on slow paths.
#[derive(Debug)]
pub(crate) struct Global {
    segments: AtomicUsize,
    segments_peak: AtomicUsize,
    segments_total: AtomicUsize,
    large_mapped: AtomicUsize,
    large_mapped_peak: AtomicUsize,
    large_live: AtomicUsize,
    large_reused: AtomicUsize,
    purged: AtomicUsize,
    heaps_live: AtomicUsize,
    heaps_started: AtomicUsize,
    abandoned: AtomicUsize,
    adopted: AtomicUsize,
    heapless_frees: AtomicUsize,
    footprint: AtomicUsize,
    footprint_peak: AtomicUsize,
}

pub(crate) static GLOBAL: Global = Global {
    segments: AtomicUsize::new(0),
    segments_peak: AtomicUsize::new(0),
    segments_total: AtomicUsize::new(0),
    large_mapped: AtomicUsize::new(0),
    large_mapped_peak: AtomicUsize::new(0),
    large_live: AtomicUsize::new(0),
    large_reused: AtomicUsize::new(0),
    purged: AtomicUsize::new(0),
    heaps_live: AtomicUsize::new(0),
    heaps_started: AtomicUsize::new(0),
    abandoned: AtomicUsize::new(0),
    adopted: AtomicUsize::new(0),
    heapless_frees: AtomicUsize::new(0),
    footprint: AtomicUsize::new(0),
    footprint_peak: AtomicUsize::new(0),
};

impl Global {
    pub(crate) fn segment_mapped(&self) {
        let now = self.segments.fetch_add(1, Ordering::Relaxed) + 1;
        self.segments_peak.fetch_max(now, Ordering::Relaxed);
        self.segments_total.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn segment_unmapped(&self) {
        self.segments.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn large_mapped(&self, bytes: usize) {
        let now = self.large_mapped.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.large_mapped_peak.fetch_max(now, Ordering::Relaxed);
    }
    pub(crate) fn large_unmapped(&self, bytes: usize) {
        self.large_mapped.fetch_sub(bytes, Ordering::Relaxed);
    }
    pub(crate) fn large_live(&self, delta: isize) {
        if delta >= 0 {
            self.large_live.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.large_live.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }
    pub(crate) fn large_reused(&self) {
        self.large_reused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn purged(&self, bytes: usize) {
        self.purged.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn heap_started(&self) {
        self.heaps_live.fetch_add(1, Ordering::Relaxed);
        self.heaps_started.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn heap_ended(&self) {
        self.heaps_live.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn segment_abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn segment_adopted(&self) {
        self.adopted.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `delta` bytes that may be resident (touched and not purged since).
    pub(crate) fn footprint(&self, delta: isize) {
        if delta >= 0 {
            let now = self.footprint.fetch_add(delta as usize, Ordering::Relaxed) + delta as usize;
            self.footprint_peak.fetch_max(now, Ordering::Relaxed);
        } else {
            self.footprint.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }
    pub(crate) fn heapless_free(&self) {
        self.heapless_frees.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the allocator's process-wide figures (C layout: `allockit_malloc_stats`
/// fills one for programs that load the library).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes the allocator may hold resident now: the touched part of every page not
    /// purged since (in 4 KiB steps), segment headers, heaps, live large blocks (with their
    /// header page) and cached large blocks not yet purged. Address space reserved but never
    /// touched is not counted. This is the denominator of heap efficiency.
    pub footprint_bytes: u64,
    /// The largest `footprint_bytes` so far.
    pub footprint_peak_bytes: u64,
    /// Segments (4 MiB each) mapped now.
    pub segments: u64,
    /// The most segments mapped at once.
    pub segments_peak: u64,
    /// Segments mapped since start (reuse keeps this low).
    pub segments_total: u64,
    /// Bytes of address space mapped for large blocks now (cached ones included).
    pub large_mapped_bytes: u64,
    /// The most bytes mapped for large blocks at once.
    pub large_mapped_peak_bytes: u64,
    /// Usable bytes of live large blocks.
    pub large_live_bytes: u64,
    /// Large allocations served from the cache of freed mappings.
    pub large_reused: u64,
    /// Bytes given back to the OS by purging.
    pub purged_bytes: u64,
    /// Threads with a heap now.
    pub heaps_live: u64,
    /// Heaps handed to threads since start.
    pub heaps_started: u64,
    /// Segments abandoned by exiting threads.
    pub segments_abandoned: u64,
    /// Abandoned segments adopted by other threads.
    pub segments_adopted: u64,
    /// Small and medium allocations, all threads.
    pub allocations: u64,
    /// Small and medium frees, all threads (counted by the freeing thread; those of threads
    /// that never allocated are counted in total, not per class).
    pub frees: u64,
    /// Frees of a block owned by another thread's heap (or by none).
    pub remote_frees: u64,
}

/// The allocator's figures now (see [`Stats`]).
pub fn stats() -> Stats {
    let g = &GLOBAL;
    let load = |counter: &AtomicUsize| counter.load(Ordering::Relaxed) as u64;
    let mut stats = Stats {
        footprint_bytes: load(&g.footprint),
        footprint_peak_bytes: load(&g.footprint_peak),
        segments: load(&g.segments),
        segments_peak: load(&g.segments_peak),
        segments_total: load(&g.segments_total),
        large_mapped_bytes: load(&g.large_mapped),
        large_mapped_peak_bytes: load(&g.large_mapped_peak),
        large_live_bytes: load(&g.large_live),
        large_reused: load(&g.large_reused),
        purged_bytes: load(&g.purged),
        heaps_live: load(&g.heaps_live),
        heaps_started: load(&g.heaps_started),
        segments_abandoned: load(&g.abandoned),
        segments_adopted: load(&g.adopted),
        frees: load(&g.heapless_frees),
        remote_frees: load(&g.heapless_frees),
        ..Stats::default()
    };
    crate::thread::for_each_heap(|heap| {
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
        crate::thread::for_each_heap(|heap| {
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
