//! Request memory of one worker: its arenas, its response-buffer pool, and the sampled
//! allocation-latency measurements.
//!
//! A worker is one thread with a current-thread runtime, so a request never changes thread
//! and nothing here needs a lock. Each in-flight request checks out an arena
//! ([`WorkerMemory::lease`]); the [`ArenaLease`] resets it and puts it back when dropped,
//! which happens on every path out of the handler: success, error, and the client going
//! away (hyper then drops the handler's future).

use core::cell::{Cell, RefCell};
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::alloc::Layout;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use allocator_api2::alloc::{AllocError, Allocator};
use allockit::{Arena, ChunkSource, Pool, PoolBox, PoolError};
use prometheus::Histogram;

use crate::metrics::Metrics;

/// Bytes of one response buffer (the pooled hot type).
pub const RESPONSE_BYTES: usize = 8 * 1024;

/// A response buffer: the pooled type. Uninitialised until rendered into.
pub type ResponseBlock = [MaybeUninit<u8>; RESPONSE_BYTES];

/// Counters of one worker's pool, mirrored into atomics so that `/metrics` (on any
/// thread) can read them.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Blocks handed out.
    pub live: AtomicUsize,
    /// Blocks available without a new chunk.
    pub free: AtomicUsize,
    /// Allocations, ever.
    pub allocations: AtomicU64,
    /// Frees, ever.
    pub frees: AtomicU64,
    /// Allocations refused at the pool's cap, ever.
    pub exhausted: AtomicU64,
}

/// A worker's pool of response buffers and its counters.
pub struct ResponsePool {
    pool: Pool<ResponseBlock>,
    counters: Arc<PoolCounters>,
}

impl ResponsePool {
    fn publish(&self) {
        let objects = self.pool.objects();
        let stats = self.pool.stats();
        self.counters.live.store(objects.live, Ordering::Relaxed);
        self.counters.free.store(objects.free, Ordering::Relaxed);
        self.counters.allocations.store(stats.allocations, Ordering::Relaxed);
        self.counters.frees.store(stats.frees, Ordering::Relaxed);
        self.counters.exhausted.store(objects.exhausted, Ordering::Relaxed);
    }
}

/// A response buffer from the pool. It outlives the handler: hyper drops it after writing
/// the response, and that returns the block to the pool.
pub struct PooledBuffer {
    block: PoolBox<'static, ResponseBlock>,
    pool: &'static ResponsePool,
}

impl PooledBuffer {
    /// The whole block, to render into.
    pub fn block_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        &mut self.block[..]
    }

    /// The first `len` bytes, which the caller has initialised.
    ///
    /// # Safety
    /// `[..len]` must have been written.
    pub unsafe fn initialised(&self, len: usize) -> &[u8] {
        // SAFETY: guaranteed by the caller.
        unsafe { core::slice::from_raw_parts(self.block.as_ptr().cast::<u8>(), len) }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        // The block itself returns to the pool when `block` drops, right after this.
        let counters = &self.pool.counters;
        counters.frees.fetch_add(1, Ordering::Relaxed);
        counters.live.fetch_sub(1, Ordering::Relaxed);
        counters.free.fetch_add(1, Ordering::Relaxed);
    }
}

/// One allocator's sampled latency measurement: every `every`-th allocation is timed.
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
#[derive(Clone, Copy)]
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

/// One worker's request memory.
pub struct WorkerMemory {
    idle: RefCell<Vec<Arena>>,
    source: Arc<ChunkSource>,
    arena_limit: usize,
    pool: NonNull<ResponsePool>,
    /// The latency samplers.
    pub samplers: Samplers,
    metrics: Arc<Metrics>,
}

impl WorkerMemory {
    /// Memory for one worker: arenas on `source`, a response pool on `pool_source`.
    pub fn new(
        source: Arc<ChunkSource>,
        arena_limit: usize,
        pool_source: Arc<ChunkSource>,
        pool_max_chunks: usize,
        samplers: Samplers,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Arc<PoolCounters>), PoolError> {
        let counters = Arc::new(PoolCounters::default());
        let pool = ResponsePool {
            pool: Pool::with_source(pool_source, pool_max_chunks)?,
            counters: Arc::clone(&counters),
        };
        let pool = NonNull::from(Box::leak(Box::new(pool)));
        Ok((Self { idle: RefCell::new(Vec::new()), source, arena_limit, pool, samplers, metrics }, counters))
    }

    fn pool(&self) -> &'static ResponsePool {
        // SAFETY: the pool is leaked in `new` and reclaimed only in `Drop`, after the
        // worker's runtime (and every response buffer on it) is gone; see `Drop`.
        unsafe { self.pool.as_ref() }
    }

    /// Checks out an arena for one request.
    pub fn lease(&self) -> ArenaLease<'_> {
        let arena = self
            .idle
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Arena::with_source(Arc::clone(&self.source)).with_limit(self.arena_limit));
        let stats = arena.stats();
        ArenaLease { arena: Some(arena), memory: self, allocations: stats.allocations, limit_exceeded: 0 }
            .with_limit_baseline()
    }

    /// A response buffer from the pool (sampled for latency).
    pub fn response_buffer(&self) -> Result<PooledBuffer, PoolError> {
        let pool = self.pool();
        let block =
            self.samplers.pool.measure(|| pool.pool.alloc([MaybeUninit::uninit(); RESPONSE_BYTES]))?;
        pool.publish();
        Ok(PooledBuffer { block, pool })
    }

    /// Counts a refused pool allocation in the published counters.
    pub fn publish_pool(&self) {
        self.pool().publish();
    }
}

impl Drop for WorkerMemory {
    fn drop(&mut self) {
        // SAFETY: the worker drops its memory after its runtime has shut down, so no task
        // (and no response buffer borrowing the pool) is left; the pool was leaked from a
        // Box in `new` and is reclaimed exactly once here.
        drop(unsafe { Box::from_raw(self.pool.as_ptr()) });
    }
}

/// An arena checked out for one request; resets it and returns it when dropped.
pub struct ArenaLease<'w> {
    arena: Option<Arena>,
    memory: &'w WorkerMemory,
    allocations: u64,
    limit_exceeded: u64,
}

impl ArenaLease<'_> {
    fn with_limit_baseline(mut self) -> Self {
        self.limit_exceeded = self.arena().limit_exceeded();
        self
    }

    /// The arena.
    pub fn arena(&self) -> &Arena {
        self.arena.as_ref().expect("the arena is present until drop")
    }

    /// Whether this request hit the arena's per-request byte limit.
    pub fn hit_limit(&self) -> bool {
        self.arena().limit_exceeded() > self.limit_exceeded
    }
}

impl Drop for ArenaLease<'_> {
    fn drop(&mut self) {
        let Some(mut arena) = self.arena.take() else { return };
        let metrics = &self.memory.metrics;
        let stats = arena.stats();
        metrics.arena_allocations.inc_by(stats.allocations - self.allocations);
        metrics.arena_allocated_bytes.inc_by(stats.live_bytes as u64);
        metrics.arena_request_bytes.observe(stats.live_bytes as f64);
        metrics.arena_limit_exceeded.inc_by(arena.limit_exceeded() - self.limit_exceeded);
        let start = Instant::now();
        arena.reset();
        metrics.arena_reset_duration.observe(start.elapsed().as_secs_f64());
        metrics.arena_resets.inc();
        self.memory.idle.borrow_mut().push(arena);
    }
}
