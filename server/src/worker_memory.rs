//! Request memory of one worker: its arenas and its response-buffer pool (with the
//! latency samplers that time them).
//!
//! A worker is one thread with a current-thread runtime, so a request never changes thread
//! and nothing here needs a lock. Each in-flight request checks out an arena
//! ([`WorkerMemory::lease`]); the [`ArenaLease`] resets it and puts it back when dropped,
//! which happens on every path out of the handler: success, error, and the client going
//! away (hyper then drops the handler's future).

use core::cell::RefCell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use allockit::{Arena, ChunkSource, Pool, PoolError};

use crate::metrics::Metrics;
use crate::response_pool::{PoolCounters, PooledBuffer, RESPONSE_BYTES, ResponsePool};
use crate::sampling::Samplers;

/// One worker's request memory.
#[derive(Debug)]
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
#[derive(Debug)]
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

    /// The leased arena; it is reset when the lease drops, so nothing allocated in it may
    /// outlive the request (escaping allocations aside).
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
