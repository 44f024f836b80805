//! A general heap with boundary tags and an explicit free list: any size, any order of
//! frees, placement by first, next or best fit.
//!
//! **What it is for.** Objects with unrelated lifetimes and sizes, where neither an arena
//! (everything dies together) nor a pool (one size) fits. It is the textbook allocator of
//! Knuth and of dlmalloc's ancestors, kept small enough to read in one sitting and
//! instrumented so that its fragmentation can be seen: the placement experiment (seed task
//! 7) runs the three policies over the same core.
//!
//! **How.** Every block carries a header and a footer, both holding its size and an
//! in-use bit (boundary tags), so both physical neighbours are found in O(1): the next
//! block starts at `block + size`, the previous block's size is in the word just below.
//! Free blocks are threaded on a doubly linked list through their payloads (a free block
//! stores its links where the data was), so a search never visits blocks in use. A freed
//! block joins the list at the head ([`FreeOrder::Lifo`], the default: fast, warm) or at
//! the tail ([`FreeOrder::Fifo`]: tighter); the block at the end of a segment (the
//! wilderness) always waits at the tail, so holes are reused before fresh memory.
//! Allocation takes a free block by the [`Placement`] policy and splits off the tail when
//! the remainder can hold a minimum block (32 bytes), not otherwise. Freeing coalesces
//! with a free previous and/or next neighbour, so no two free blocks are ever adjacent.
//! `realloc` grows in place into a free next neighbour and shrinks in place.
//!
//! Memory comes from a [`SpanSource`] as *segments*, each bounded by in-use sentinel tags
//! so that coalescing stops at its ends: over a caller's buffer ([`FreeList::over_buffer`],
//! one segment, no system calls), over the chunk source (the default: the heap grows by
//! whole spans and gives a segment back when it becomes entirely free, keeping one), or
//! over a [`crate::source::Reservation`] (the global allocator: consecutive spans are joined
//! into one growing segment).
//!
//! **What it cannot do.** Searches are linear in the number of free blocks (best fit
//! always walks the whole list): a heap with many small holes and a large request is slow;
//! [`crate::sizeclass`] is the answer for speed. Each block costs 16 bytes of tags and
//! sizes round up to 16. Memory inside a segment is not returned to the OS until the
//! whole segment is free. Not thread safe ([`crate::global::GlobalFreeList`] adds a lock).
//!
//! **Complexity.** Free O(1); realloc in place O(1); allocation O(free blocks) (first and
//! next fit stop at the first fit); [`FreeList::check`] O(blocks). What the orders and
//! policies cost and save is measured in `docs/heaps.md` (FIFO first fit is as tight as
//! best fit on the request mix, LIFO first fit about twice as fast).
//!
//! **Debug support.** [`FreeList::check`] walks the whole heap and verifies every
//! invariant (header == footer, no two adjacent free blocks, the free list holds exactly
//! the free blocks, sizes add up to each segment, counters agree). With the `guard`
//! feature, `free` and `realloc` verify the pointer first and panic instead of corrupting
//! the heap: a pointer into a free block is a double free ("double free of free-list
//! block"), even after the block coalesced with both neighbours; a foreign or interior
//! pointer, or tags that disagree, is reported as such. Free memory is poisoned, and a
//! block handed out again (by allocation, or by a realloc growing into it) must still hold
//! the poison: a write after free panics then ("write after free detected in free-list
//! block").
//!
//! ```
//! use core::alloc::Layout;
//! use allockit::freelist::{FreeList, Placement};
//!
//! let mut buffer = vec![0u8; 64 * 1024];
//! let heap = FreeList::over_buffer(&mut buffer, Placement::BestFit);
//! let layout = Layout::from_size_align(100, 8)?;
//! let a = heap.alloc(layout)?;
//! let b = heap.alloc(layout)?;
//! // SAFETY: both came from this heap with this layout and are not used afterwards.
//! unsafe {
//!     heap.free(a, layout);
//!     heap.free(b, layout);
//! }
//! heap.check()?; // every invariant holds; the two blocks coalesced
//! assert_eq!(heap.free_stats().free_blocks, 1);
//!
//! // Collections run on it through allocator-api2.
//! let mut v = allocator_api2::vec::Vec::new_in(&heap);
//! v.extend_from_slice(b"boundary tags");
//! assert_eq!(v.len(), 13);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blocks;
#[cfg(test)]
mod tests;

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use std::sync::Arc;

use allocator_api2::alloc::AllocError;

use crate::guard;
use crate::heap::HeapError;
use crate::source::chunk::ChunkSource;
use crate::source::{BufferSource, SpanSource};
use crate::stats::Stats;
use blocks::{ALIGN, Blocks, SEGMENT_OVERHEAD, block_size_for};

pub use blocks::{FreeOrder, HeapCorruption, Placement};

/// Free-space figures of a [`FreeList`], beyond the common [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FreeStats {
    /// Bytes in free blocks (tags included).
    pub free_bytes: usize,
    /// Free blocks.
    pub free_blocks: usize,
    /// The largest free block in bytes (tags included): a request for up to 16 bytes less
    /// is served without growing the heap.
    pub largest_free: usize,
    /// Segments held.
    pub segments: usize,
    /// The most bytes ever held from the source.
    pub peak_footprint_bytes: usize,
    /// Free-list entries that allocation searches looked at, over the heap's life. Divided
    /// by [`Stats::allocations`] it is the mean walk per allocation:
    /// what a placement policy costs, since every entry is a block header read from
    /// wherever the block lies.
    pub searched_blocks: u64,
}

impl FreeStats {
    /// External fragmentation: 1 − largest free / total free (0 when nothing is free or
    /// all free space is one block; near 1 when it is scattered in small holes).
    pub fn external_fragmentation(&self) -> f64 {
        if self.free_bytes == 0 { 0.0 } else { 1.0 - self.largest_free as f64 / self.free_bytes as f64 }
    }
}

/// The counters of a heap, kept with its blocks.
#[derive(Debug, Clone, Copy)]
struct Counters {
    allocations: u64,
    frees: u64,
    allocated_bytes: u64,
    live_bytes: usize,
    high_water: usize,
    failures: u64,
}

impl Counters {
    const ZERO: Self =
        Self { allocations: 0, frees: 0, allocated_bytes: 0, live_bytes: 0, high_water: 0, failures: 0 };

    #[inline(always)]
    fn on_alloc(&mut self, size: usize) {
        self.allocations += 1;
        self.allocated_bytes += size as u64;
        self.live_bytes += size;
        self.high_water = self.high_water.max(self.live_bytes);
    }

    #[inline(always)]
    fn on_free(&mut self, size: usize) {
        self.frees += 1;
        self.live_bytes -= size;
    }

    #[inline(always)]
    fn on_resize(&mut self, old: usize, new: usize) {
        if new > old {
            self.allocated_bytes += (new - old) as u64;
        }
        self.live_bytes = self.live_bytes + new - old;
        self.high_water = self.high_water.max(self.live_bytes);
    }
}

struct State {
    blocks: Blocks,
    counters: Counters,
}

/// A boundary-tag heap with an explicit free list. See the module docs.
///
/// Invariant: `state` is only reached through `&self` methods that do not call back into
/// the heap while they hold it (the source is another object), so the `UnsafeCell` is
/// never borrowed twice; the type is not `Sync`.
pub struct FreeList<S: SpanSource = Arc<ChunkSource>> {
    state: UnsafeCell<State>,
    source: S,
    segment_bytes: usize,
}

// SAFETY: the heap exclusively owns its segments; moving it moves that ownership. Memory it
// handed out is borrowed from it (Allocator) or governed by the raw API's contract.
unsafe impl<S: SpanSource + Send> Send for FreeList<S> {}

impl<S: SpanSource> core::fmt::Debug for FreeList<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FreeList")
            .field("placement", &self.placement())
            .field("order", &self.order())
            .field("stats", &self.stats())
            .field("free", &self.free_stats())
            .finish()
    }
}

impl Default for FreeList<Arc<ChunkSource>> {
    fn default() -> Self {
        Self::new(Placement::FirstFit)
    }
}

impl FreeList<Arc<ChunkSource>> {
    /// A heap on the process-wide default chunk source.
    pub fn new(placement: Placement) -> Self {
        Self::with_source(Arc::clone(ChunkSource::global()), placement)
    }
}

impl<'buf> FreeList<BufferSource<'buf>> {
    /// A heap over a caller's buffer: one segment, no system calls; when it is full,
    /// allocation is [`HeapError::Exhausted`].
    pub fn over_buffer(buffer: &'buf mut [u8], placement: Placement) -> Self {
        Self::with_source(BufferSource::new(buffer), placement)
    }
}

impl<S: SpanSource> FreeList<S> {
    /// A heap that takes its memory from `source`, a segment at a time. It takes nothing
    /// until the first allocation, so this is `const` (a static global allocator).
    pub const fn with_source(source: S, placement: Placement) -> Self {
        Self {
            state: UnsafeCell::new(State {
                blocks: Blocks::new(placement, FreeOrder::Lifo),
                counters: Counters::ZERO,
            }),
            source,
            segment_bytes: 0,
        }
    }

    /// Sets where freed blocks join the free list (default [`FreeOrder::Lifo`]).
    pub const fn with_order(mut self, order: FreeOrder) -> Self {
        self.state.get_mut().blocks.order = order;
        self
    }

    /// Where freed blocks join the free list.
    pub fn order(&self) -> FreeOrder {
        self.state().blocks.order
    }

    /// Sets the least bytes the heap asks its source for when it grows (default: four
    /// granules of the source, 256 KiB on the default chunk source).
    pub fn with_segment_bytes(mut self, bytes: usize) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The source this heap takes memory from.
    pub fn source(&self) -> &S {
        &self.source
    }

    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    fn state(&self) -> &mut State {
        // SAFETY: see the type's invariant: callers hold this borrow only within one
        // method and never across a call that could reach this heap again.
        unsafe { &mut *self.state.get() }
    }

    /// The placement policy.
    pub fn placement(&self) -> Placement {
        self.state().blocks.placement
    }

    /// Allocates a block for `layout`: uninitialised, aligned to `layout.align()` (any
    /// power of two). Zero-size layouts get a real (minimum) block.
    #[inline]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, HeapError> {
        let need = block_size_for(layout.size());
        let state = self.state();
        // SAFETY: `need` is a valid block size and the blocks are ours.
        let payload = match unsafe { state.blocks.allocate(need, layout.align()) } {
            Some(payload) => payload,
            None => self.alloc_from_new_segment(layout, need)?,
        };
        // SAFETY: a block in use, just handed out.
        unsafe { Self::on_alloc(payload) };
        self.state().counters.on_alloc(layout.size());
        // SAFETY: payloads lie inside segments, never at address 0.
        Ok(unsafe { NonNull::new_unchecked(payload) })
    }

    /// Grows the heap by a segment that can hold the request, then allocates from it.
    /// Separate and cold: it runs once per segment, and it calls the source.
    #[cold]
    #[inline(never)]
    fn alloc_from_new_segment(&self, layout: Layout, need: usize) -> Result<*mut u8, HeapError> {
        let align_slack = if layout.align() > ALIGN { layout.align() + blocks::MIN_BLOCK } else { 0 };
        let exhausted = |source| {
            self.state().counters.failures += 1;
            HeapError::Exhausted { requested: layout.size(), align: layout.align(), source }
        };
        let Some(minimum) = need.checked_add(align_slack + SEGMENT_OVERHEAD) else {
            self.state().counters.failures += 1;
            return Err(HeapError::TooLarge { requested: layout.size(), align: layout.align() });
        };
        let preferred = if self.segment_bytes == 0 {
            self.source.granule().saturating_mul(4)
        } else {
            self.segment_bytes
        };
        let span = match self.source.take_span(minimum.max(preferred)) {
            Ok(span) => span,
            Err(_) if preferred > minimum => self.source.take_span(minimum).map_err(exhausted)?,
            Err(error) => return Err(exhausted(error)),
        };
        let refused = |span: &crate::source::Span| crate::source::chunk::ChunkError::Exhausted {
            requested: minimum,
            reserved: span.len(),
        };
        let state = self.state();
        // SAFETY: the span is ours from now on; if it is refused it goes straight back.
        unsafe {
            if !state.blocks.add_span(&span, S::JOINS_SPANS) {
                let error = refused(&span);
                self.source.give_back(span);
                return Err(exhausted(error));
            }
            let error = refused(&span);
            state.blocks.allocate(need, layout.align()).ok_or_else(|| exhausted(error))
        }
    }

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` must come from this heap with `layout` (or the layout of its last realloc)
    /// and not be used afterwards. With the `guard` feature a double free or a foreign
    /// pointer whose tags do not match is detected and panics.
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        let payload = ptr.as_ptr();
        self.on_free(payload, "free");
        let state = self.state();
        // SAFETY: as above.
        let (block, size) = unsafe { state.blocks.free(payload) };
        state.counters.on_free(layout.size());
        if S::RECLAIMS {
            // SAFETY: `block` is the free block just made.
            if let Some(span) = unsafe { state.blocks.release_if_empty(block, size) } {
                // SAFETY: the segment left the heap and nothing in it is live.
                unsafe { self.source.give_back(span) };
            }
        }
    }

    /// The debug check of a block being handed out: in the guard build free memory is
    /// poisoned past its header and links (see `blocks`), so a payload must still read as
    /// poison past its first two words; anything else was written after it was freed.
    #[inline(always)]
    unsafe fn on_alloc(payload: *mut u8) {
        if !guard::ENABLED {
            return;
        }
        // SAFETY: a block in use of ours, `payload_capacity` bytes long.
        unsafe {
            let capacity = Blocks::payload_capacity(payload);
            guard::check_poisoned(payload, 2 * blocks::WORD, capacity, "free-list block");
        }
    }

    /// The debug check of a pointer given to free or realloc (`what`): the one place to
    /// extend (sanitizer hooks go here too). `Blocks::free` poisons what it frees.
    #[inline(always)]
    fn on_free(&self, payload: *mut u8, what: &str) {
        if !guard::ENABLED {
            return;
        }
        match self.state().blocks.validate_in_use(payload) {
            Ok(()) => {}
            Err(HeapCorruption::AlreadyFree { .. }) if what == "free" => {
                guard::fired(format_args!("double free of free-list block {payload:p}"))
            }
            Err(HeapCorruption::AlreadyFree { .. }) => {
                guard::fired(format_args!("{what} of freed free-list block {payload:p}"))
            }
            Err(corruption) => guard::fired(format_args!("free-list heap: bad {what}: {corruption}")),
        }
    }

    /// Resizes a block in use in place (see `Blocks::resize_in_place`); in the guard build,
    /// memory it grows into must still hold the poison of the free block it was.
    ///
    /// # Safety
    /// `payload` is a block in use of this heap.
    unsafe fn resize_in_place(&self, payload: *mut u8, new_size: usize) -> bool {
        // SAFETY: forwarded.
        let capacity = unsafe { Blocks::payload_capacity(payload) };
        // SAFETY: forwarded; the new size is a valid block size.
        if !unsafe { self.state().blocks.resize_in_place(payload, block_size_for(new_size)) } {
            return false;
        }
        if guard::ENABLED {
            // SAFETY: forwarded: the block (now of its new capacity) is ours. Past the old
            // capacity lie the old footer, then the absorbed block's header and links.
            unsafe {
                let grown = Blocks::payload_capacity(payload);
                guard::check_poisoned(payload, capacity + 4 * blocks::WORD, grown, "free-list block");
            }
        }
        true
    }

    /// Resizes a block to `new_size` bytes, keeping `layout.align()`: in place when it can
    /// (shrinking, or growing into a free next neighbour), else by moving it. On error the
    /// old block is untouched.
    ///
    /// # Safety
    /// `ptr` must come from this heap with `layout`; after success only the returned
    /// pointer may be used.
    pub unsafe fn realloc(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, HeapError> {
        let new_layout = Layout::from_size_align(new_size, layout.align())
            .map_err(|_| HeapError::TooLarge { requested: new_size, align: layout.align() })?;
        self.on_free(ptr.as_ptr(), "realloc");
        // SAFETY: a block in use of ours.
        if unsafe { self.resize_in_place(ptr.as_ptr(), new_size) } {
            self.state().counters.on_resize(layout.size(), new_size);
            return Ok(ptr);
        }
        let new = self.alloc(new_layout)?;
        // SAFETY: distinct blocks; both hold at least the bytes copied. The old block is
        // then freed once, as the caller gave it up.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size));
            self.free(ptr, layout);
        }
        Ok(new)
    }

    /// The payload bytes of the block at `ptr`: what its caller may use, the request rounded
    /// up to the block size less its 16 bytes of tags (and any tail too small to split off).
    /// The free list's `malloc_usable_size`; internal fragmentation is the gap to the
    /// request.
    ///
    /// # Safety
    /// `ptr` came from this heap's `alloc` or `realloc` and is not freed yet.
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>) -> usize {
        // SAFETY: forwarded: a payload of a block in use of this heap.
        unsafe { Blocks::payload_capacity(ptr.as_ptr()) }
    }

    /// Walks the whole heap and verifies every invariant (see the module docs). Returns the
    /// first violation found.
    pub fn check(&self) -> Result<(), HeapCorruption> {
        self.state().blocks.check()
    }

    /// The counters in the common shape. `live_bytes` and `allocated_bytes` count the
    /// bytes asked for; `footprint_bytes` is what the heap holds from its source.
    pub fn stats(&self) -> Stats {
        let State { blocks, counters } = self.state();
        Stats {
            allocations: counters.allocations,
            frees: counters.frees,
            allocated_bytes: counters.allocated_bytes,
            live_bytes: counters.live_bytes,
            footprint_bytes: blocks.footprint,
            high_water_bytes: counters.high_water,
            chunks: blocks.segment_count,
            resets: 0,
            failures: counters.failures,
        }
    }

    /// Free-space figures: free bytes, free blocks, the largest free block (a walk of the
    /// free list), segments and peak footprint.
    pub fn free_stats(&self) -> FreeStats {
        let blocks = &self.state().blocks;
        FreeStats {
            free_bytes: blocks.free_bytes,
            free_blocks: blocks.free_blocks,
            largest_free: blocks.largest_free(),
            segments: blocks.segment_count,
            peak_footprint_bytes: blocks.peak_footprint,
            searched_blocks: blocks.searched,
        }
    }
}

impl<S: SpanSource> Drop for FreeList<S> {
    fn drop(&mut self) {
        for span in self.state.get_mut().blocks.take_all_spans() {
            // SAFETY: every segment came from our source; blocks still handed out through
            // the raw API become dangling, which its contract forbids using.
            unsafe { self.source.give_back(span) };
        }
    }
}

crate::heap::impl_allocator_for_heap!(FreeList);

impl<S: SpanSource> FreeList<S> {
    /// `Allocator::grow`/`shrink`: realloc when the block already satisfies the new
    /// alignment, else a move to a block that does.
    ///
    /// # Safety
    /// `ptr` was allocated by this heap with `old`.
    unsafe fn resize(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let moved = if ptr.as_ptr().addr().is_multiple_of(new.align()) {
            // SAFETY: forwarded; the alignment is kept by an in-place resize and by a move
            // with the old alignment, which the block already satisfies for `new`.
            unsafe { self.realloc_to(ptr, old, new) }
        } else {
            // SAFETY: forwarded.
            unsafe { self.move_to(ptr, old, new) }
        };
        moved.map(|p| NonNull::slice_from_raw_parts(p, new.size())).map_err(|_| AllocError)
    }

    /// Realloc to `new`'s size, moving (if it must) to a block aligned for `new`.
    unsafe fn realloc_to(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<u8>, HeapError> {
        if new.align() <= old.align() {
            // SAFETY: forwarded.
            return unsafe { self.realloc(ptr, old, new.size()) };
        }
        self.on_free(ptr.as_ptr(), "realloc");
        // SAFETY: a block in use of ours.
        if unsafe { self.resize_in_place(ptr.as_ptr(), new.size()) } {
            self.state().counters.on_resize(old.size(), new.size());
            return Ok(ptr);
        }
        // SAFETY: forwarded.
        unsafe { self.move_to(ptr, old, new) }
    }

    /// Allocates for `new`, copies, frees the old block.
    unsafe fn move_to(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<u8>, HeapError> {
        let moved = self.alloc(new)?;
        // SAFETY: distinct blocks, each holding at least the bytes copied; the old block is
        // freed once.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), moved.as_ptr(), old.size().min(new.size()));
            self.free(ptr, old);
        }
        Ok(moved)
    }
}
