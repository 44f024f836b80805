//! Counters: per-heap ones its thread bumps without a read-modify-write, global ones the
//! slow paths update atomically, and the [`Stats`] snapshot. The report that sums the heaps'
//! counters (`allockit_malloc::stats()`, `ALLOCKIT_SHOW_STATS=1` at exit) is `report`'s: this
//! module is a leaf that every layer may bump counters in.
//!
//! **What it is for.** Seeing what the allocator holds (segments, large mappings, purged
//! bytes, abandoned and adopted segments) and what each size class served, as
//! `MIMALLOC_SHOW_STATS` and jemalloc's `malloc_stats_print` do; tests read the snapshot to
//! check that memory is reused.
//!
//! **What it cannot do.** Give an exact instant picture: per-heap counters are read while
//! their threads run, so live blocks per class are `allocations − frees` summed over heaps
//! at one moment, approximately. Frees from a thread that never allocated are not counted
//! per class.
//!
//! **Complexity.** A counter bump is a load and a store on the owner's cache line.
//!
//! **Debug support.** It is the debug support (with the report).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

    /// The process-wide figures; the per-heap sums (`allocations`, `frees` and
    /// `remote_frees`) hold only the frees of threads without a heap, for the caller to add
    /// the heaps' counters to.
    pub(crate) fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicUsize| counter.load(Ordering::Relaxed) as u64;
        Stats {
            footprint_bytes: load(&self.footprint),
            footprint_peak_bytes: load(&self.footprint_peak),
            segments: load(&self.segments),
            segments_peak: load(&self.segments_peak),
            segments_total: load(&self.segments_total),
            large_mapped_bytes: load(&self.large_mapped),
            large_mapped_peak_bytes: load(&self.large_mapped_peak),
            large_live_bytes: load(&self.large_live),
            large_reused: load(&self.large_reused),
            purged_bytes: load(&self.purged),
            heaps_live: load(&self.heaps_live),
            heaps_started: load(&self.heaps_started),
            segments_abandoned: load(&self.abandoned),
            segments_adopted: load(&self.adopted),
            allocations: 0,
            frees: load(&self.heapless_frees),
            remote_frees: load(&self.heapless_frees),
        }
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
