//! The hot-type pool: each worker's response buffers. A response is rendered into a block
//! checked out of the worker's [`ResponsePool`]; the [`PooledBuffer`] outlives the handler
//! (hyper drops it after writing the response) and gives the block back when dropped.

use core::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use allockit::{Pool, PoolBox};

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
    /// Blocks taken since the worker started (a counter: never goes down).
    pub allocations: AtomicU64,
    /// Blocks given back since the worker started; `allocations - frees` is `live`.
    pub frees: AtomicU64,
    /// Allocations refused at the pool's cap, ever.
    pub exhausted: AtomicU64,
}

/// A worker's pool of response buffers and its counters.
#[derive(Debug)]
pub struct ResponsePool {
    pub(crate) pool: Pool<ResponseBlock>,
    pub(crate) counters: Arc<PoolCounters>,
}

impl ResponsePool {
    /// Mirrors the pool's counts into the shared counters.
    pub(crate) fn publish(&self) {
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
#[derive(Debug)]
pub struct PooledBuffer {
    pub(crate) block: PoolBox<'static, ResponseBlock>,
    pub(crate) pool: &'static ResponsePool,
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
