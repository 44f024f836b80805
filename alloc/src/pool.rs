//! Fixed-size pools: blocks of one size carved from chunks, recycled through an
//! intrusive free list.
//!
//! **What it is for.** One hot type with heavy churn (a connection's buffers, a request's
//! response buffer, a tree node): allocation pops the head of a free list and freeing
//! pushes onto it, O(1) with no search, no size lookup and — in release builds — no
//! per-object metadata. Freed blocks are reused before fresh ones (LIFO), so a steady
//! churn stays in cache-warm memory. PostgreSQL's `slab.c` and every object pool do this.
//!
//! **How.** The free list is threaded through the free blocks themselves: the first word
//! of a free block points to the next free block. Fresh blocks are carved lazily from the
//! current chunk (a bump), so a new chunk costs nothing until its blocks are used. The pool
//! grows a whole chunk at a time up to a cap; past it, allocation is
//! [`PoolError::Exhausted`].
//!
//! **What it cannot do.** Blocks of other sizes; giving a chunk back before the pool is
//! dropped (blocks of one chunk are mixed into one free list); use from several threads at
//! once (a pool is per thread, like a thread cache: `Send`, not `Sync`).
//!
//! **Debug support** (`guard` feature): a canary after every block, checked on free; freed
//! blocks are poisoned and the poison is checked when the block is handed out again (a
//! write after free); one bit per block catches a double free; chunks end in guard pages.
//!
//! ```
//! use allockit::pool::Pool;
//!
//! let pool: Pool<[u8; 64]> = Pool::new(4)?;
//! let mut block = pool.alloc([0; 64])?;
//! block[0] = 1;
//! drop(block); // back on the free list
//! assert_eq!(pool.objects().live, 0);
//! # Ok::<(), allockit::pool::PoolError>(())
//! ```

use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::sync::Arc;

use crate::guard;
use crate::source::chunk::{Chunk, ChunkError, ChunkSource};
use crate::stats::Stats;

/// Why a pool could not be created or could not hand out a block.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every block of every chunk the pool may hold is live.
    #[error("pool exhausted: all {capacity} blocks of {max_chunks} chunks are live")]
    Exhausted {
        /// Blocks the pool can hold at its cap.
        capacity: usize,
        /// The chunk cap.
        max_chunks: usize,
    },
    /// The block layout does not fit in a chunk, or the cap is zero.
    #[error("invalid pool: {0}")]
    Invalid(String),
    /// The chunk source could not supply a chunk.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// A free block: its first word links to the next free block.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// The header at the start of each pool chunk.
#[repr(C)]
struct PoolChunk {
    next: Option<NonNull<PoolChunk>>,
    usable: usize,
}

/// Live and free block counts of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolObjects {
    /// Blocks handed out.
    pub live: usize,
    /// Blocks available without taking another chunk (free list and uncarved room).
    pub free: usize,
    /// The most blocks live at once.
    pub high_water: usize,
    /// Allocations refused because the pool was at its cap.
    pub exhausted: u64,
}

/// An untyped pool of blocks of one layout. See the module docs; [`Pool`] is the typed,
/// safe front.
pub struct RawPool {
    free: Cell<*mut FreeBlock>,
    carve: Cell<*mut u8>,
    carve_end: Cell<*mut u8>,
    object_size: usize,
    block_size: usize,
    /// Offset of the first block in a chunk (the header, and the guard bitmap).
    first_block: usize,
    blocks_per_chunk: usize,
    chunks: Cell<Option<NonNull<PoolChunk>>>,
    chunk_count: Cell<usize>,
    max_chunks: usize,
    source: Arc<ChunkSource>,
    live: Cell<usize>,
    high_water: Cell<usize>,
    allocations: Cell<u64>,
    frees: Cell<u64>,
    exhausted: Cell<u64>,
}

// SAFETY: the pool exclusively owns its chunks; blocks handed out borrow the pool (typed
// API) or are the caller's responsibility (raw API), so moving the pool moves ownership of
// everything it manages. It is not Sync.
unsafe impl Send for RawPool {}

impl core::fmt::Debug for RawPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawPool")
            .field("block_size", &self.block_size)
            .field("objects", &self.objects())
            .finish()
    }
}

impl RawPool {
    /// A pool of blocks for `layout`, taking at most `max_chunks` chunks from `source`.
    pub fn new(source: Arc<ChunkSource>, layout: Layout, max_chunks: usize) -> Result<Self, PoolError> {
        let align = layout.align().max(align_of::<FreeBlock>());
        let payload = layout.size().max(size_of::<FreeBlock>());
        let block_size =
            (payload + if guard::ENABLED { guard::CANARY_LEN } else { 0 }).next_multiple_of(align);
        let usable = source.usable_chunk_size();
        let bitmap = if guard::ENABLED { (usable / block_size).div_ceil(8) } else { 0 };
        let first_block = (size_of::<PoolChunk>() + bitmap).next_multiple_of(align);
        if max_chunks == 0 {
            return Err(PoolError::Invalid("max_chunks must be at least 1".into()));
        }
        if first_block + block_size > usable {
            return Err(PoolError::Invalid(format!(
                "a block of {block_size} bytes (align {align}) does not fit in a {usable}-byte chunk"
            )));
        }
        Ok(Self {
            free: Cell::new(core::ptr::null_mut()),
            carve: Cell::new(core::ptr::null_mut()),
            carve_end: Cell::new(core::ptr::null_mut()),
            object_size: layout.size(),
            block_size,
            first_block,
            blocks_per_chunk: (usable - first_block) / block_size,
            chunks: Cell::new(None),
            chunk_count: Cell::new(0),
            max_chunks,
            source,
            live: Cell::new(0),
            high_water: Cell::new(0),
            allocations: Cell::new(0),
            frees: Cell::new(0),
            exhausted: Cell::new(0),
        })
    }

    /// Bytes per block (the object size rounded up, plus the canary with guards).
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks one chunk holds.
    pub fn blocks_per_chunk(&self) -> usize {
        self.blocks_per_chunk
    }

    /// Hands out a block. O(1): pop the free list, else carve, else (cold) a new chunk.
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, PoolError> {
        let head = self.free.get();
        let recycled = !head.is_null();
        let block = if recycled {
            // SAFETY: a free-list entry is a free block of ours (handed out from here on);
            // its first word is the link. What the pool reads of it, it wrote when the block
            // was freed (the link, and with guards the poison and the canary); the caller's
            // part becomes undefined again below, once the guard checks are done.
            self.free.set(unsafe {
                guard::make_readable(head.cast(), self.block_size);
                (*head).next
            });
            head.cast::<u8>()
        } else {
            self.alloc_slow()?
        };
        self.on_alloc(block, recycled);
        if recycled {
            // SAFETY: the block is handed out; for the caller its contents are garbage.
            unsafe { guard::make_undefined(block, self.object_size) };
        }
        let live = self.live.get() + 1;
        self.live.set(live);
        if live > self.high_water.get() {
            self.high_water.set(live);
        }
        self.allocations.set(self.allocations.get() + 1);
        // SAFETY: blocks are inside chunks, never null.
        Ok(unsafe { NonNull::new_unchecked(block) })
    }

    /// Carves a fresh block, taking a new chunk when the current one is used up.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self) -> Result<*mut u8, PoolError> {
        if self.carve.get().addr() + self.block_size > self.carve_end.get().addr()
            || self.carve.get().is_null()
        {
            self.grow()?;
        }
        let block = self.carve.get();
        // SAFETY: block + block_size <= carve_end, inside the current chunk; the block is
        // handed out from here on.
        unsafe {
            self.carve.set(block.add(self.block_size));
            guard::make_addressable(block, self.block_size);
        }
        Ok(block)
    }

    fn grow(&self) -> Result<(), PoolError> {
        if self.chunk_count.get() >= self.max_chunks {
            self.exhausted.set(self.exhausted.get() + 1);
            return Err(PoolError::Exhausted {
                capacity: self.max_chunks * self.blocks_per_chunk,
                max_chunks: self.max_chunks,
            });
        }
        let chunk = self.source.take()?;
        let (ptr, usable) = chunk.into_raw();
        let header = ptr.cast::<PoolChunk>();
        // SAFETY: the chunk is ours, writable, and larger than the header (and bitmap).
        unsafe {
            header.as_ptr().write(PoolChunk { next: self.chunks.get(), usable });
            if guard::ENABLED {
                let bitmap = ptr.as_ptr().add(size_of::<PoolChunk>());
                bitmap.write_bytes(0, self.first_block - size_of::<PoolChunk>());
            }
            self.carve.set(ptr.as_ptr().add(self.first_block));
            self.carve_end.set(ptr.as_ptr().add(self.first_block + self.blocks_per_chunk * self.block_size));
            guard::make_unaddressable(self.carve.get(), usable - self.first_block);
        }
        self.chunks.set(Some(header));
        self.chunk_count.set(self.chunk_count.get() + 1);
        Ok(())
    }

    /// Returns a block to the free list. O(1).
    ///
    /// # Safety
    /// `block` must come from [`RawPool::alloc`] on this pool and not be used afterwards.
    /// With the `guard` feature a double free is detected (and panics) instead of
    /// corrupting the free list.
    #[inline]
    pub unsafe fn dealloc(&self, block: NonNull<u8>) {
        self.on_free(block.as_ptr());
        let block = block.as_ptr().cast::<FreeBlock>();
        // SAFETY: the caller gives the block back; its first word becomes the link, and
        // then nobody may touch it until it is handed out again.
        unsafe {
            block.write(FreeBlock { next: self.free.get() });
            guard::make_unaddressable(block.cast(), self.block_size);
        }
        self.free.set(block);
        self.live.set(self.live.get() - 1);
        self.frees.set(self.frees.get() + 1);
    }

    /// The guard bitmap bit of a block: (byte address, mask).
    fn guard_bit(&self, block: *mut u8) -> (*mut u8, u8) {
        let chunk_size = self.source.chunk_size();
        let base = block.map_addr(|a| a & !(chunk_size - 1));
        let index = (block.addr() - base.addr() - self.first_block) / self.block_size;
        (base.wrapping_add(size_of::<PoolChunk>() + index / 8), 1 << (index % 8))
    }

    #[inline(always)]
    fn on_alloc(&self, block: *mut u8, recycled: bool) {
        if !guard::ENABLED {
            return;
        }
        let (byte, mask) = self.guard_bit(block);
        // SAFETY: the block and its bitmap byte are inside one of our chunks.
        unsafe {
            if recycled {
                // Freed blocks were poisoned; only the link word may have changed since.
                let link = size_of::<FreeBlock>().min(self.object_size);
                let tail = core::slice::from_raw_parts(block.add(link), self.object_size - link);
                if let Some(at) = tail.iter().position(|b| *b != guard::POISON_FREED) {
                    guard::fired(format_args!(
                        "write after free detected in pool block {block:p} at offset {}",
                        link + at
                    ));
                }
            }
            *byte |= mask;
            guard::write_canary(block.add(self.object_size));
        }
    }

    #[inline(always)]
    fn on_free(&self, block: *mut u8) {
        if !guard::ENABLED {
            return;
        }
        let (byte, mask) = self.guard_bit(block);
        // SAFETY: the block and its bitmap byte are inside one of our chunks.
        unsafe {
            if *byte & mask == 0 {
                guard::fired(format_args!("double free of pool block {block:p}"));
            }
            guard::check_canary(block.add(self.object_size), "a pool block");
            *byte &= !mask;
            guard::poison(block, self.object_size);
        }
    }

    /// Live and free block counts.
    pub fn objects(&self) -> PoolObjects {
        let live = self.live.get();
        PoolObjects {
            live,
            free: self.chunk_count.get() * self.blocks_per_chunk - live,
            high_water: self.high_water.get(),
            exhausted: self.exhausted.get(),
        }
    }

    /// A snapshot of the counters in the common shape.
    pub fn stats(&self) -> Stats {
        Stats {
            allocations: self.allocations.get(),
            frees: self.frees.get(),
            allocated_bytes: self.allocations.get() * self.block_size as u64,
            live_bytes: self.live.get() * self.block_size,
            footprint_bytes: self.chunk_count.get() * self.source.usable_chunk_size(),
            high_water_bytes: self.high_water.get() * self.block_size,
            chunks: self.chunk_count.get(),
            resets: 0,
            failures: self.exhausted.get(),
        }
    }
}

impl Drop for RawPool {
    fn drop(&mut self) {
        let mut next = self.chunks.get();
        while let Some(header) = next {
            // SAFETY: every chunk in the list is ours; blocks still handed out through the
            // raw API become dangling, which the raw API's contract forbids using.
            unsafe {
                let h = header.as_ptr().read();
                next = h.next;
                self.source.give_back(Chunk::from_raw(header.cast(), h.usable));
            }
        }
    }
}

/// A typed pool: `Pool<T>` hands out [`PoolBox<T>`], which drops `T` and returns its
/// block when it goes out of scope.
pub struct Pool<T> {
    raw: RawPool,
    _type: PhantomData<T>,
}

impl<T> core::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Pool").field(&self.raw).finish()
    }
}

impl<T> Pool<T> {
    /// A pool on the process-wide default chunk source, holding at most `max_chunks` chunks.
    pub fn new(max_chunks: usize) -> Result<Self, PoolError> {
        Self::with_source(Arc::clone(ChunkSource::global()), max_chunks)
    }

    /// A pool on the given chunk source.
    pub fn with_source(source: Arc<ChunkSource>, max_chunks: usize) -> Result<Self, PoolError> {
        Ok(Self { raw: RawPool::new(source, Layout::new::<T>(), max_chunks)?, _type: PhantomData })
    }

    /// Moves `value` into a pool block. On error `value` is dropped.
    #[inline]
    pub fn alloc(&self, value: T) -> Result<PoolBox<'_, T>, PoolError> {
        let ptr = self.raw.alloc()?.cast::<T>();
        // SAFETY: a fresh block, aligned and sized for T.
        unsafe { ptr.as_ptr().write(value) };
        Ok(PoolBox { ptr, pool: self })
    }

    /// Live and free block counts.
    pub fn objects(&self) -> PoolObjects {
        self.raw.objects()
    }

    /// Counters in the common shape.
    pub fn stats(&self) -> Stats {
        self.raw.stats()
    }

    /// The untyped pool underneath.
    pub fn raw(&self) -> &RawPool {
        &self.raw
    }
}

/// A `T` in a pool block. Dropping it drops the `T` and returns the block.
pub struct PoolBox<'pool, T> {
    ptr: NonNull<T>,
    pool: &'pool Pool<T>,
}

impl<T> PoolBox<'_, T> {
    /// Moves the value out and returns the block.
    pub fn into_inner(this: Self) -> T {
        let this = core::mem::ManuallyDrop::new(this);
        // SAFETY: we own the initialised value; the block goes back once, below, and the
        // ManuallyDrop keeps our Drop from running.
        unsafe {
            let value = this.ptr.as_ptr().read();
            this.pool.raw.dealloc(this.ptr.cast());
            value
        }
    }
}

impl<T> Deref for PoolBox<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the block holds an initialised T that we own.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the block holds an initialised T that we own exclusively.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for PoolBox<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T> Drop for PoolBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we own the value and the block; both are given up here, once.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            self.pool.raw.dealloc(self.ptr.cast());
        }
    }
}
