//! A segregated-fit heap: requests are rounded up to one of 40 size classes, and each
//! class has its own free list fed by slabs carved from chunks.
//!
//! **What it is for.** General allocation where speed matters more than the last bytes:
//! the design of every modern malloc's small-object path (jemalloc's bins, mimalloc's
//! pages, tcmalloc's size classes). A request maps to its class by arithmetic (a
//! leading-zero count, a shift, an add: no search), pops the head of that class's free
//! list, and is done; a free pushes the block back. Both are O(1) whatever the heap holds.
//!
//! **Classes.** Eight classes 8 bytes apart up to 64, then four classes per doubling, a
//! quarter of the power of two apart, up to 16 KiB:
//!
//! | classes | spacing | worst-case waste (share of the block) |
//! |---|---|---|
//! | 8, 16, 24, 32, 40, 48, 56, 64 | 8 | 7 bytes (87.5% for 1 byte, 21.9% for 25 → 32, 10.9% for 57 → 64) |
//! | 80, 96, 112, 128 | 16 | 18.8% (65 → 80) |
//! | 160, 192, 224, 256 | 32 | 19.4% (129 → 160) |
//! | 320, 384, 448, 512 | 64 | 19.7% |
//! | 640 … 1024, 1280 … 2048, 2560 … 4096, 5120 … 8192 | a quarter of the power of two below | 19.8% … 19.99% |
//! | 10240, 12288, 14336, 16384 | 2048 | 19.99% (8193 → 10240) |
//!
//! So no request above 32 bytes wastes a fifth of its block (the bound is `(2^k − 1) /
//! (5·2^k)`: one byte past a power of two lands in the next class, a quarter of it
//! higher); for sizes spread evenly the waste averages about 8%. Over-aligned requests
//! (16 to 4096) take the first class that is a multiple of the alignment. [`ClassStats`]
//! reports what a workload really wastes, class by class.
//!
//! **Slabs.** A class whose free list is empty takes a slab of about 4 KiB (at least four
//! blocks, so 8 KiB for the 2 KiB class and up to 48 KiB for the largest) and carves
//! blocks from it lazily, like [`crate::pool`]. Slabs are cut one after another from the
//! heap's current chunk, so a class that is barely used costs a few kilobytes, not a
//! chunk (jemalloc sizes its slabs the same way); a slab starts at the alignment of its
//! class, so every block is aligned to the lowest set bit of its class size (up to 4096).
//! When the chunk cannot hold another block of the class, the heap takes the next chunk;
//! a small header at the start of each chunk links them for `Drop` (at the start, so that
//! a run past the last slab meets the chunk's end, the guard page in the guard build, and
//! not the links).
//!
//! **Large requests** (above 16 KiB, or aligned above 4096) go to a best-fit
//! [`FreeList`] on the same kind of source: they are rare, and best fit keeps them tight.
//!
//! **What it cannot do.** Give a slab back before the heap drops: blocks of all the slabs
//! of a class share one free list, so the memory a class once needed stays with it (a
//! burst of 1 MB of 64-byte objects keeps 1 MB of 64-byte blocks). Internal fragmentation
//! is the price of O(1): up to a fifth of each block. Not thread safe
//! ([`crate::global::GlobalSizeClass`] adds a lock); no per-thread caches.
//!
//! **Complexity.** Small alloc and free O(1); a new slab O(1) (a bump in the current
//! chunk, now and then a chunk-source call); large requests as [`FreeList`].
//!
//! **Debug support** (`guard` feature). Each block is followed by a red zone and a state
//! word (so a slot is the class size plus at least 16 bytes, rounded up to the class's
//! alignment: the guard build holds more memory):
//!
//! * a canary right after the bytes asked for, written when the block is handed out and
//!   checked when it is freed or resized in place: an overrun, even by one byte and even
//!   of a block that fills its class, panics with "overwrite detected after a size-class
//!   block";
//! * the state word says whether the slot is in use or free (keyed by its address): a
//!   second free panics with "double free of size-class block", a pointer the heap did
//!   not hand out (or a layout of another class) with "is not a size-class block in use",
//!   or, when the canary where it should be is damaged too, "overwrite detected" (an
//!   overrun long enough to reach the state word looks the same);
//! * freed blocks and their red zones are poisoned, and a recycled block whose poison was
//!   disturbed panics ("write after free detected in size-class block");
//! * chunks from the chunk source end in guard pages, and the chunk header is at the
//!   start, so a run past the last slab of a chunk faults; the header carries a canary,
//!   checked when the heap drops ("damaged size-class chunk header").
//!
//! ```
//! use core::alloc::Layout;
//! use allockit::sizeclass::SizeClass;
//!
//! let heap = SizeClass::new();
//! let layout = Layout::from_size_align(100, 8)?; // served by the 112-byte class
//! let block = heap.alloc(layout)?;
//! // SAFETY: allocated above with this layout, not used afterwards.
//! unsafe { heap.free(block, layout) };
//! let class = heap.class_stats()[allockit::sizeclass::class_of(100, 8).unwrap()];
//! assert_eq!((class.class_size, class.requests, class.requested_bytes), (112, 1, 100));
//!
//! let mut names = allocator_api2::vec::Vec::new_in(&heap);
//! names.push("size classes");
//! assert_eq!(names.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classes;
#[cfg(test)]
mod tests;

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use std::sync::Arc;

use allocator_api2::alloc::AllocError;

use crate::freelist::{FreeList, Placement};
use crate::guard;
use crate::heap::HeapError;
use crate::source::SpanSource;
use crate::source::chunk::{ChunkError, ChunkSource};
use crate::stats::Stats;

pub use classes::{
    CLASS_COUNT, CLASS_SIZES, MAX_SMALL, MAX_SMALL_ALIGN, class_of, class_of_size, class_size,
};

/// Counters of one size class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes per block of the class.
    pub class_size: usize,
    /// Slabs the class holds.
    pub slabs: usize,
    /// Allocations served (resizes within the class are not counted).
    pub requests: u64,
    /// Blocks given back.
    pub frees: u64,
    /// Bytes those allocations asked for.
    pub requested_bytes: u64,
}

impl ClassStats {
    /// Blocks handed out and not given back.
    pub fn live_blocks(&self) -> u64 {
        self.requests - self.frees
    }

    /// Bytes handed out: requests × class size.
    pub fn handed_out_bytes(&self) -> u64 {
        self.requests * self.class_size as u64
    }

    /// Internal fragmentation: the share of handed-out bytes nobody asked for.
    pub fn internal_fragmentation(&self) -> f64 {
        let handed_out = self.handed_out_bytes();
        if handed_out == 0 { 0.0 } else { 1.0 - self.requested_bytes as f64 / handed_out as f64 }
    }
}

/// A free block: its first word links to the next free block of its class.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// The start of every chunk the heap holds: links the chunks for `Drop`. The canary is
/// checked in the guard build before the links are followed.
#[repr(C)]
struct ChunkHeader {
    canary: u64,
    next: *mut ChunkHeader,
    span: *mut u8,
    span_len: usize,
}

const HEADER: usize = size_of::<ChunkHeader>();

/// Guard build: bytes of the state word at the end of each slot.
const STATE_LEN: usize = size_of::<usize>();

/// Guard build: bytes each slot holds beyond its class size: room for the canary after a
/// block that fills its class, and the state word.
const SLOT_GUARD: usize = if guard::ENABLED { guard::CANARY_LEN + STATE_LEN } else { 0 };

/// Guard build: a slot's state word is its address XOR one of these.
const SLOT_IN_USE: usize = 0x1B5E_A110_C0DE_0001;
const SLOT_FREE: usize = 0xF4EE_DB10_C0DE_0002;

/// The distance between two blocks of a class of `size` bytes: the size itself, or in
/// the guard build the size plus its red zone and state word, rounded up so that every
/// block keeps the class's alignment.
const fn stride(size: usize) -> usize {
    (size + SLOT_GUARD).next_multiple_of(classes::block_align(size))
}

/// Bytes a slab aims for.
const SLAB_BYTES: usize = 4096;

/// Blocks a slab holds at least (when its chunk has room for them).
const MIN_BLOCKS_PER_SLAB: usize = 4;

/// One class: its free list, the uncarved rest of its newest slab, its counters.
#[derive(Clone, Copy)]
struct Bin {
    free: *mut FreeBlock,
    carve: *mut u8,
    carve_end: *mut u8,
    size: usize,
    /// [`stride`] of `size`.
    stride: usize,
    requests: u64,
    frees: u64,
    requested_bytes: u64,
    slabs: usize,
}

impl Bin {
    const fn new(size: usize) -> Self {
        Self {
            free: ptr::null_mut(),
            carve: ptr::null_mut(),
            carve_end: ptr::null_mut(),
            size,
            stride: stride(size),
            requests: 0,
            frees: 0,
            requested_bytes: 0,
            slabs: 0,
        }
    }
}

struct State {
    bins: [Bin; CLASS_COUNT],
    /// The chunks held, newest first.
    chunks: *mut ChunkHeader,
    chunk_count: usize,
    chunk_bytes: usize,
    /// Where the next slab is cut from the newest chunk, and where that chunk's room ends.
    slab_cursor: *mut u8,
    slab_limit: *mut u8,
    /// Live bytes asked for, small and large together.
    live_bytes: usize,
    high_water: usize,
    /// Small allocations refused (the large heap counts its own).
    failures: u64,
}

impl State {
    #[inline(always)]
    fn on_live_change(&mut self, grown: usize, shrunk: usize) {
        self.live_bytes = self.live_bytes + grown - shrunk;
        if self.live_bytes > self.high_water {
            self.high_water = self.live_bytes;
        }
    }
}

/// A segregated-fit heap. See the module docs.
///
/// Invariant: `state` is only reached through `&self` methods that hold the borrow within
/// one method and never across a call that could reach this heap again (sources and the
/// large heap are other objects); the type is not `Sync`. Every block on a bin's free
/// list, and every block between `carve` and `carve_end`, is a free block of that class
/// inside one of the chunks linked from `chunks`; `slab_cursor..slab_limit` is the uncut
/// room of the newest chunk.
pub struct SizeClass<S: SpanSource = Arc<ChunkSource>> {
    state: UnsafeCell<State>,
    slab_source: S,
    large: FreeList<S>,
}

// SAFETY: the heap exclusively owns its slabs and its large heap; moving it moves that
// ownership. Memory handed out is borrowed from it or governed by the raw API's contract.
unsafe impl<S: SpanSource + Send> Send for SizeClass<S> {}

impl<S: SpanSource> core::fmt::Debug for SizeClass<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SizeClass").field("stats", &self.stats()).finish()
    }
}

impl Default for SizeClass<Arc<ChunkSource>> {
    fn default() -> Self {
        Self::new()
    }
}

impl SizeClass<Arc<ChunkSource>> {
    /// A heap on the process-wide default chunk source.
    pub fn new() -> Self {
        Self::with_source(Arc::clone(ChunkSource::global()))
    }
}

impl<S: SpanSource + Clone> SizeClass<S> {
    /// A heap whose slabs and large blocks both come from `source`.
    pub fn with_source(source: S) -> Self {
        Self::from_sources(source.clone(), source)
    }
}

impl<S: SpanSource> SizeClass<S> {
    /// A heap taking slabs from `slabs` and large blocks from `large`. It takes nothing
    /// until the first allocation, so this is `const` (a static global allocator).
    pub const fn from_sources(slabs: S, large: S) -> Self {
        let mut bins = [Bin::new(CLASS_SIZES[0]); CLASS_COUNT];
        let mut class = 0;
        while class < CLASS_COUNT {
            bins[class] = Bin::new(CLASS_SIZES[class]);
            class += 1;
        }
        Self {
            state: UnsafeCell::new(State {
                bins,
                chunks: ptr::null_mut(),
                chunk_count: 0,
                chunk_bytes: 0,
                slab_cursor: ptr::null_mut(),
                slab_limit: ptr::null_mut(),
                live_bytes: 0,
                high_water: 0,
                failures: 0,
            }),
            slab_source: slabs,
            large: FreeList::with_source(large, Placement::BestFit),
        }
    }

    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    fn state(&self) -> &mut State {
        // SAFETY: see the type's invariant.
        unsafe { &mut *self.state.get() }
    }

    /// Allocates a block for `layout`: uninitialised, aligned as asked (any power of two).
    #[inline]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, HeapError> {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            return self.alloc_large(layout);
        };
        let state = self.state();
        let bin = &mut state.bins[class];
        let block = if !bin.free.is_null() {
            let block = bin.free;
            // SAFETY: a free-list entry is a free slot of this class; its first word links.
            unsafe {
                Self::on_recycle(block.cast(), bin.stride);
                bin.free = (*block).next;
            }
            block.cast::<u8>()
        } else if bin.carve != bin.carve_end {
            let block = bin.carve;
            // SAFETY: carve + stride <= carve_end, inside the slab.
            bin.carve = unsafe { block.add(bin.stride) };
            block
        } else {
            return self.alloc_from_new_slab(class, layout);
        };
        // SAFETY: a whole slot of this class, ours to hand out.
        unsafe { Self::on_alloc(block, bin.stride, layout.size()) };
        bin.requests += 1;
        bin.requested_bytes += layout.size() as u64;
        state.on_live_change(layout.size(), 0);
        // SAFETY: blocks lie inside slabs, never at address 0.
        Ok(unsafe { NonNull::new_unchecked(block) })
    }

    /// Cuts a slab for `class` from the current chunk (taking a new chunk when it has no
    /// room for a block), then serves the request from it. Separate and cold: it runs once
    /// per slab, and sometimes calls the source.
    #[cold]
    #[inline(never)]
    fn alloc_from_new_slab(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, HeapError> {
        let size = CLASS_SIZES[class];
        let stride = stride(size);
        let align = classes::block_align(size);
        let wanted = (SLAB_BYTES / stride).max(MIN_BLOCKS_PER_SLAB);
        let (mut start, mut blocks) = self.room_for(stride, align);
        if blocks == 0 {
            self.take_chunk(layout)?;
            (start, blocks) = self.room_for(stride, align);
            if blocks == 0 {
                self.state().failures += 1;
                let source = ChunkError::Exhausted { requested: size, reserved: self.state().chunk_bytes };
                return Err(HeapError::Exhausted { requested: layout.size(), align: layout.align(), source });
            }
        }
        let blocks = blocks.min(wanted);
        let state = self.state();
        let bin = &mut state.bins[class];
        bin.carve = start;
        bin.carve_end = start.wrapping_add(blocks * stride);
        bin.slabs += 1;
        state.slab_cursor = bin.carve_end;
        self.alloc(layout)
    }

    /// Where a slab of `stride`-byte slots aligned to `align` would start in the current
    /// chunk, and how many slots fit there.
    fn room_for(&self, stride: usize, align: usize) -> (*mut u8, usize) {
        let state = self.state();
        let cursor = state.slab_cursor;
        let start = cursor.wrapping_add(cursor.align_offset(align));
        let room = state.slab_limit.addr().saturating_sub(start.addr());
        (start, if cursor.is_null() { 0 } else { room / stride })
    }

    /// Takes a chunk from the slab source and makes it the current one: its header at the
    /// start, slabs after it up to the end.
    fn take_chunk(&self, layout: Layout) -> Result<(), HeapError> {
        // Room for the header, the alignment of the largest class, one block of it.
        let least = HEADER + MAX_SMALL_ALIGN + stride(MAX_SMALL);
        let span = self.slab_source.take_span(self.slab_source.granule().max(least)).map_err(|source| {
            self.state().failures += 1;
            HeapError::Exhausted { requested: layout.size(), align: layout.align(), source }
        })?;
        let state = self.state();
        let start = span.as_ptr().as_ptr();
        let header = start.wrapping_add(start.align_offset(align_of::<ChunkHeader>()));
        // SAFETY: the header lies at the start of the span, which is ours from now on and
        // holds far more than a header.
        unsafe {
            header.cast::<ChunkHeader>().write(ChunkHeader {
                canary: guard::CANARY,
                next: state.chunks,
                span: start,
                span_len: span.len(),
            })
        };
        state.chunks = header.cast();
        state.chunk_count += 1;
        state.chunk_bytes += span.len();
        state.slab_cursor = header.wrapping_add(HEADER);
        state.slab_limit = span.end();
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn alloc_large(&self, layout: Layout) -> Result<NonNull<u8>, HeapError> {
        let block = self.large.alloc(layout)?;
        self.state().on_live_change(layout.size(), 0);
        Ok(block)
    }

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` must come from this heap with `layout` (or the layout of its last realloc) and
    /// not be used afterwards.
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            // SAFETY: forwarded: a large block of ours.
            return unsafe { self.free_large(ptr, layout) };
        };
        let state = self.state();
        let bin = &mut state.bins[class];
        let block = ptr.as_ptr().cast::<FreeBlock>();
        // SAFETY: the caller gives back a block of this class, a whole slot of ours; its
        // first word becomes the link.
        unsafe {
            Self::on_free(ptr.as_ptr(), bin.stride, layout.size());
            block.write(FreeBlock { next: bin.free });
        }
        bin.free = block;
        bin.frees += 1;
        state.on_live_change(0, layout.size());
    }

    #[cold]
    #[inline(never)]
    unsafe fn free_large(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.large.free(ptr, layout) };
        self.state().on_live_change(0, layout.size());
    }

    /// The state word of the slot of `stride` bytes at `block` (guard build).
    #[inline(always)]
    fn state_word(block: *mut u8, stride: usize) -> *mut usize {
        block.wrapping_add(stride - STATE_LEN).cast()
    }

    /// Guard build: marks a slot handed out and puts the canary after the `requested`
    /// bytes.
    #[inline(always)]
    unsafe fn on_alloc(block: *mut u8, stride: usize, requested: usize) {
        if !guard::ENABLED {
            return;
        }
        // SAFETY: the caller passes a whole slot; requested <= class size, so the canary
        // ends before the state word (the slot holds SLOT_GUARD bytes more).
        unsafe {
            Self::state_word(block, stride).write(block.addr() ^ SLOT_IN_USE);
            guard::write_canary(block.add(requested));
        }
    }

    /// Guard build: checks a block given to free or realloc (`what`): its slot must be in
    /// use (a free one is a double free) and the canary after its `requested` bytes
    /// intact.
    #[inline(always)]
    unsafe fn check_in_use(block: *mut u8, stride: usize, requested: usize, what: &str) {
        if !guard::ENABLED {
            return;
        }
        // SAFETY: the caller passes a block of this class; its slot's words are readable.
        unsafe {
            let state = Self::state_word(block, stride).read();
            if state == block.addr() ^ SLOT_FREE {
                if what == "free" {
                    guard::fired(format_args!("double free of size-class block {block:p}"));
                }
                guard::fired(format_args!("{what} of freed size-class block {block:p}"));
            }
            let canary_at = block.add(requested);
            if state != block.addr() ^ SLOT_IN_USE {
                let canary = canary_at.cast::<u64>().read_unaligned();
                if canary == guard::CANARY {
                    guard::fired(format_args!(
                        "{what} of {block:p}, which is not a size-class block in use (state word \
                         {state:#x}): a foreign pointer, or a layout of another class"
                    ));
                }
                guard::fired(format_args!(
                    "overwrite detected after a size-class block at {canary_at:p} (canary {canary:#018x}, \
                     state word {state:#x}): an overrun, or a pointer this heap did not hand out"
                ));
            }
            guard::check_canary(canary_at, "a size-class block");
        }
    }

    /// The debug treatment of a free: checks the block, then poisons it and its red zone
    /// and marks the slot free.
    #[inline(always)]
    unsafe fn on_free(block: *mut u8, stride: usize, requested: usize) {
        if !guard::ENABLED {
            return;
        }
        // SAFETY: the caller passes a whole slot it gives up.
        unsafe {
            Self::check_in_use(block, stride, requested, "free");
            guard::poison(block, stride - STATE_LEN);
            Self::state_word(block, stride).write(block.addr() ^ SLOT_FREE);
        }
    }

    /// Guard build: checks that a slot taken off a free list is free and still holds its
    /// poison, red zone included (past the link word).
    #[inline(always)]
    unsafe fn on_recycle(block: *mut u8, stride: usize) {
        if !guard::ENABLED {
            return;
        }
        // SAFETY: a free-list entry; if a write after free redirected the link that led
        // here it is not, which the state word says before anything else is read.
        unsafe {
            let state = Self::state_word(block, stride).read();
            if state != block.addr() ^ SLOT_FREE {
                guard::fired(format_args!(
                    "size-class free list corrupted: {block:p} is not a free block (state word {state:#x})"
                ));
            }
            guard::check_poisoned(block, size_of::<FreeBlock>(), stride - STATE_LEN, "size-class block");
        }
    }

    /// Resizes a block to `new_size` bytes, keeping `layout.align()`: in place when the
    /// new size stays in the same class (or both are large and the large heap can), else
    /// by moving it. On error the old block is untouched.
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
        match (class_of(layout.size(), layout.align()), class_of(new_size, layout.align())) {
            (Some(old), Some(new)) if old == new => {
                let state = self.state();
                let stride = state.bins[old].stride;
                if guard::ENABLED {
                    // SAFETY: forwarded: a block of this class; its canary moves to the
                    // new end, which stays inside the slot.
                    unsafe {
                        Self::check_in_use(ptr.as_ptr(), stride, layout.size(), "realloc");
                        guard::write_canary(ptr.as_ptr().add(new_size));
                    }
                }
                state.on_live_change(new_size, layout.size());
                Ok(ptr)
            }
            (None, None) => {
                // SAFETY: forwarded: a large block of ours.
                let moved = unsafe { self.large.realloc(ptr, layout, new_size) }?;
                self.state().on_live_change(new_size, layout.size());
                Ok(moved)
            }
            // SAFETY: forwarded.
            _ => unsafe { self.move_to(ptr, layout, new_layout) },
        }
    }

    /// Allocates for `new`, copies, frees the old block.
    unsafe fn move_to(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<u8>, HeapError> {
        let moved = self.alloc(new)?;
        // SAFETY: distinct blocks, each holding at least the bytes copied; the old block is
        // freed once.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), moved.as_ptr(), old.size().min(new.size()));
            self.free(ptr, old);
        }
        Ok(moved)
    }

    /// The counters in the common shape, small and large together. `live_bytes` and
    /// `allocated_bytes` count the bytes asked for; `footprint_bytes` is the chunks plus the
    /// large heap's segments.
    pub fn stats(&self) -> Stats {
        let large = self.large.stats();
        let state = self.state();
        let (requests, frees, requested) = state
            .bins
            .iter()
            .fold((0, 0, 0), |(r, f, b), bin| (r + bin.requests, f + bin.frees, b + bin.requested_bytes));
        Stats {
            allocations: requests + large.allocations,
            frees: frees + large.frees,
            allocated_bytes: requested + large.allocated_bytes,
            live_bytes: state.live_bytes,
            footprint_bytes: state.chunk_bytes + large.footprint_bytes,
            high_water_bytes: state.high_water,
            chunks: state.chunk_count + large.chunks,
            resets: 0,
            failures: state.failures + large.failures,
        }
    }

    /// The counters of every class (an array, so that reading them allocates nothing).
    pub fn class_stats(&self) -> [ClassStats; CLASS_COUNT] {
        self.state().bins.map(|bin| ClassStats {
            class_size: bin.size,
            slabs: bin.slabs,
            requests: bin.requests,
            frees: bin.frees,
            requested_bytes: bin.requested_bytes,
        })
    }

    /// Internal fragmentation over all small allocations so far: 1 − bytes requested /
    /// bytes handed out.
    pub fn internal_fragmentation(&self) -> f64 {
        let (requested, handed_out) = self
            .class_stats()
            .iter()
            .fold((0, 0), |(r, h), class| (r + class.requested_bytes, h + class.handed_out_bytes()));
        if handed_out == 0 { 0.0 } else { 1.0 - requested as f64 / handed_out as f64 }
    }

    /// The large path's heap (its stats, its `check`).
    pub fn large(&self) -> &FreeList<S> {
        &self.large
    }
}

impl<S: SpanSource> Drop for SizeClass<S> {
    fn drop(&mut self) {
        let mut header = self.state.get_mut().chunks;
        while !header.is_null() {
            // SAFETY: every header is the start of a chunk of ours; blocks still handed out
            // through the raw API become dangling, which its contract forbids using.
            unsafe {
                let ChunkHeader { canary, next, span, span_len } = header.read();
                if guard::ENABLED && canary != guard::CANARY {
                    guard::fired(format_args!(
                        "overwrite detected: damaged size-class chunk header at {header:p} (canary {canary:#018x})"
                    ));
                }
                header = next;
                self.slab_source.give_back(crate::source::Span::new(NonNull::new_unchecked(span), span_len));
            }
        }
    }
}

crate::heap::impl_allocator_for_heap!(SizeClass);

impl<S: SpanSource> SizeClass<S> {
    /// `Allocator::grow`/`shrink`: realloc when the alignment is unchanged, else a move.
    ///
    /// # Safety
    /// `ptr` was allocated by this heap with `old`.
    #[inline]
    unsafe fn resize(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let resized = if new.align() == old.align() {
            // SAFETY: forwarded.
            unsafe { self.realloc(ptr, old, new.size()) }
        } else {
            // SAFETY: forwarded.
            unsafe { self.move_to(ptr, old, new) }
        };
        resized.map(|p| NonNull::slice_from_raw_parts(p, new.size())).map_err(|_| AllocError)
    }
}
