//! Sampled allocation latency (`allockit_alloc_duration_seconds{allocator}`): one
//! allocation in `--latency-sample-every` is timed, per allocator, with the cost of the
//! clock reads subtracted.

use core::cell::Cell;
use core::ptr::NonNull;
use std::alloc::Layout;
use std::time::Instant;

use allocator_api2::alloc::{AllocError, Allocator};
use prometheus::Histogram;

use crate::metrics::Metrics;

/// One allocator's sampled latency measurement: every `every`-th allocation is timed.
#[derive(Debug)]
pub struct Sampler {
    every: u32,
    countdown: Cell<u32>,
    histogram: Histogram,
    /// The cost of the two clock reads around a measurement, subtracted from each sample.
    overhead_ns: u64,
}

impl Sampler {
    /// A sampler recording into `histogram`.
    pub fn new(every: u32, histogram: Histogram, overhead_ns: u64) -> Self {
        Self { every, countdown: Cell::new(every), histogram, overhead_ns }
    }

    /// True on every `every`-th call.
    #[inline]
    pub fn tick(&self) -> bool {
        let left = self.countdown.get() - 1;
        if left == 0 {
            self.countdown.set(self.every);
            true
        } else {
            self.countdown.set(left);
            false
        }
    }

    /// Runs `f`, timing it if this is a sampled call.
    #[inline]
    pub fn measure<R>(&self, f: impl FnOnce() -> R) -> R {
        if !self.tick() {
            return f();
        }
        let start = Instant::now();
        let result = f();
        let elapsed = start.elapsed().as_nanos() as u64;
        self.histogram.observe(elapsed.saturating_sub(self.overhead_ns) as f64 * 1e-9);
        result
    }
}

/// The smallest cost of timing nothing: two `Instant::now()` calls and a subtraction.
pub fn timer_overhead_ns() -> u64 {
    (0..2000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(start.elapsed().as_nanos() as u64)
        })
        .min()
        .unwrap_or(0)
}

/// An allocator whose allocations are sampled by a [`Sampler`].
#[derive(Debug, Clone, Copy)]
pub struct Sampled<'s, A> {
    inner: A,
    sampler: &'s Sampler,
}

impl<'s, A> Sampled<'s, A> {
    /// Wraps `inner`.
    pub fn new(inner: A, sampler: &'s Sampler) -> Self {
        Self { inner, sampler }
    }
}

// SAFETY: every call is forwarded to `inner` unchanged; sampling only times it.
unsafe impl<A: Allocator> Allocator for Sampled<'_, A> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.sampler.measure(|| self.inner.allocate(layout))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.deallocate(ptr, layout) }
    }

    #[inline]
    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        self.sampler.measure(|| unsafe { self.inner.grow(ptr, old, new) })
    }

    #[inline]
    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.shrink(ptr, old, new) }
    }
}

/// The samplers of one worker, one per allocator label.
#[derive(Debug)]
pub struct Samplers {
    /// Request arena allocations.
    pub arena: Sampler,
    /// Response-buffer pool allocations.
    pub pool: Sampler,
    /// Cache-arena allocations (new profiles).
    pub cache: Sampler,
    /// General-heap allocations of request work (heap mode).
    pub heap: Sampler,
}

impl Samplers {
    /// Samplers recording into the server's `allockit_alloc_duration_seconds`.
    pub fn new(metrics: &Metrics, every: u32, overhead_ns: u64) -> Self {
        let sampler =
            |label| Sampler::new(every, metrics.alloc_duration.with_label_values(&[label]), overhead_ns);
        Self {
            arena: sampler("arena"),
            pool: sampler("pool"),
            cache: sampler("cache"),
            heap: sampler("heap"),
        }
    }
}
