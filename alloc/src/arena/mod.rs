//! Bump arenas: allocation is a pointer bump, freeing is a reset of the whole arena.
//!
//! **What it is for.** Memory whose lifetime is one unit of work: a request, a frame, a
//! parse. A request handler allocates freely and the whole request's memory goes away in
//! one [`Arena::reset`], with no per-object bookkeeping (PostgreSQL's `bump.c`, bumpalo).
//!
//! **Two modes.**
//! * [`FixedArena`]: over a caller's buffer (the seed task's `arena_init` /
//!   `arena_alloc` / `arena_reset`). Exhaustion is an `Err`.
//! * [`Arena`]: over chunks from a [`ChunkSource`]. The fast path is align, bounds check,
//!   bump (inlined); a new chunk is a cold path; a request larger than a quarter of a chunk
//!   gets a dedicated span; an optional byte limit caps what one arena may hold.
//!
//! **What it cannot do.** Free one object (except the most recent one, which `Allocator`
//! deallocation and shrinking roll back), or run destructors: values put in an arena are
//! forgotten at reset, so types that own other resources should not go there. `reset` takes
//! `&mut self`, so the borrow checker proves that nothing allocated before it is still used.
//!
//! **Escaping allocations.** [`Arena::alloc_escaping`] returns an [`Escaped`] handle that
//! may outlive `reset` and move to other threads. Its chunk cannot be recycled while the
//! handle lives: `reset` retires it (counted as *pinned*) and continues on a fresh chunk,
//! and the last handle to drop gives the chunk back. This is the pinning pitfall of
//! request arenas, made safe and visible: one small long-lived object keeps a whole chunk.
//!
//! **Complexity.** Allocation O(1); `reset` O(chunks held), which is O(1) for the common
//! request that fits in the chunk the arena keeps across resets.
//!
//! **Debug support** (`guard` feature): every allocation carries a canary, checked on reset;
//! reset memory is poisoned; chunks end in guard pages (see [`crate::guard`]).
//!
//! ```
//! use allockit::arena::Arena;
//!
//! let mut arena = Arena::new();
//! let answer = arena.alloc(42u64)?;
//! let name = arena.alloc_str("allockit")?;
//! assert_eq!((*answer, &*name), (42, "allockit"));
//!
//! // Collections live in the arena through allocator-api2.
//! let mut v = allocator_api2::vec::Vec::new_in(&arena);
//! v.extend_from_slice(&[1, 2, 3]);
//! assert_eq!(v.len(), 3);
//! drop(v);
//!
//! arena.reset(); // everything above is gone; the arena keeps one chunk for next time
//! # Ok::<(), allockit::arena::ArenaError>(())
//! ```

/// The typed allocation methods, the same for [`Arena`] and [`FixedArena`], written once
/// on top of each type's `alloc_layout`.
macro_rules! typed_allocation {
    () => {
        /// Moves `value` into the arena. Its destructor will not run.
        #[inline]
        #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
        pub fn alloc<T>(&self, value: T) -> Result<&mut T, ArenaError> {
            let ptr = self.alloc_layout(Layout::new::<T>())?.cast::<T>();
            // SAFETY: fresh, aligned, exclusively ours until reset (which needs &mut self).
            unsafe {
                ptr.as_ptr().write(value);
                Ok(&mut *ptr.as_ptr())
            }
        }

        /// Copies a slice into the arena.
        #[inline]
        #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
        pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], ArenaError> {
            let layout = Layout::for_value(src);
            let ptr = self.alloc_layout(layout)?.cast::<T>();
            // SAFETY: fresh room for src.len() elements, which cannot overlap src.
            unsafe {
                core::ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr(), src.len());
                Ok(core::slice::from_raw_parts_mut(ptr.as_ptr(), src.len()))
            }
        }

        /// Copies a string into the arena.
        #[inline]
        #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
        pub fn alloc_str(&self, src: &str) -> Result<&mut str, ArenaError> {
            let bytes = self.alloc_slice_copy(src.as_bytes())?;
            // SAFETY: a copy of valid UTF-8 is valid UTF-8.
            Ok(unsafe { core::str::from_utf8_unchecked_mut(bytes) })
        }
    };
}

/// `allocator_api2::alloc::Allocator` for a shared reference to either arena: allocation
/// through `alloc_layout`, and the tip freed, grown or shrunk in place when it can be.
macro_rules! bump_allocator {
    ($arena:ty) => {
        // SAFETY: memory handed out stays valid until reset (which needs `&mut`, impossible
        // while a shared reference is borrowed as the allocator) or drop; blocks are aligned
        // and sized as asked; grow/shrink preserve contents (in place, or by copying).
        unsafe impl Allocator for $arena {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                self.alloc_layout(layout)
                    .map(|ptr| NonNull::slice_from_raw_parts(ptr, layout.size()))
                    .map_err(|_| AllocError)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                if self.bump.free_tip(ptr, layout.size()) {
                    self.frees.set(self.frees.get() + 1);
                }
            }

            #[inline]
            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: forwarded from the caller's contract.
                unsafe { resize(*self, &self.bump, ptr, old, new) }
            }

            #[inline]
            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: forwarded from the caller's contract.
                unsafe { resize(*self, &self.bump, ptr, old, new) }
            }
        }
    };
}

mod bump;
mod escape;
mod fixed;

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use allocator_api2::alloc::{AllocError, Allocator};

use crate::guard;
use crate::source::chunk::{Chunk, ChunkError, ChunkSource};
use crate::stats::Stats;
use bump::{Bump, GUARD_EXTRA};

pub use escape::Escaped;
pub use fixed::FixedArena;

/// Why an arena allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// The arena's byte limit would be exceeded.
    #[error("arena limit exceeded: {requested} more bytes requested, {held} of {limit} bytes held")]
    LimitExceeded {
        /// The configured limit.
        limit: usize,
        /// Bytes held when the request came.
        held: usize,
        /// Bytes the request needed from the chunk source.
        requested: usize,
    },
    /// A fixed buffer has no room left.
    #[error("arena buffer exhausted: {requested} bytes requested, {available} bytes left")]
    BufferExhausted {
        /// Bytes asked for (with alignment padding).
        requested: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// The size computation overflowed (a slice too long for memory).
    #[error("allocation size overflows")]
    SizeOverflow,
    /// The chunk source could not supply memory.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// The header at the start of every chunk or span an [`Arena`] holds.
///
/// Invariant: `refs` is 1 for the owning arena plus one per live [`Escaped`] handle into
/// the chunk. `source` is null while the arena owns the chunk; it is set (holding one
/// `Arc` count) just before the arena gives up its reference to a pinned chunk, so that
/// the last handle can give the chunk back.
#[repr(C)]
pub(crate) struct ChunkHeader {
    /// The next chunk in the arena's list.
    next: Cell<Option<NonNull<ChunkHeader>>>,
    /// Usable bytes of the chunk, header included.
    usable: usize,
    /// Bytes used, header included; kept up to date when the chunk stops being current.
    used: Cell<usize>,
    refs: AtomicUsize,
    source: AtomicPtr<ChunkSource>,
}

const HEADER: usize = size_of::<ChunkHeader>().next_multiple_of(16);

impl ChunkHeader {
    fn data_start(header: NonNull<ChunkHeader>) -> *mut u8 {
        // SAFETY: every chunk is larger than its header.
        unsafe { header.cast::<u8>().as_ptr().add(HEADER) }
    }

    fn chunk_end(header: NonNull<ChunkHeader>) -> *mut u8 {
        // SAFETY: `usable` bytes from the header are the chunk's usable range.
        unsafe { header.cast::<u8>().as_ptr().add(header.as_ref().usable) }
    }

    /// Rebuilds the chunk token of this header.
    ///
    /// # Safety
    /// The caller must own the chunk and use the token to give it back exactly once.
    unsafe fn into_chunk(header: NonNull<ChunkHeader>) -> Chunk {
        // SAFETY: header and usable were taken from the chunk token at install time.
        unsafe { Chunk::from_raw(header.cast(), header.as_ref().usable) }
    }

    /// Drops one reference; the last one gives the (pinned) chunk back to its source.
    ///
    /// # Safety
    /// The caller must own one reference and not touch the chunk afterwards.
    unsafe fn release(header: NonNull<ChunkHeader>) {
        // SAFETY: the caller owns a reference, so the header is alive.
        let h = unsafe { header.as_ref() };
        if h.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        let source = h.source.load(Ordering::Relaxed);
        // The arena sets the source before it gives up its own reference, so the last
        // reference always finds it; checked, since `Arc::from_raw(null)` would be UB.
        assert!(!source.is_null(), "allockit: the last reference to an arena chunk found no chunk source");
        // SAFETY: the arena stored one Arc count here before releasing its reference (the
        // fence above makes that store visible); we are the last user of the chunk.
        unsafe {
            let source = Arc::from_raw(source);
            source.give_back_pinned(Self::into_chunk(header));
        }
    }
}

/// A bump arena over chunks from a [`ChunkSource`]. See the module docs.
///
/// `Arena` is `Send` (it may move to another thread with its chunks) but not `Sync`:
/// allocation goes through `&self` with no locking.
pub struct Arena {
    bump: Bump,
    /// The chunk the bump cursor is in, if any.
    current: Cell<Option<NonNull<ChunkHeader>>>,
    /// Every chunk and span held, most recent first (the current chunk included).
    chunks: Cell<Option<NonNull<ChunkHeader>>>,
    source: Arc<ChunkSource>,
    large_threshold: usize,
    limit: Option<usize>,
    held_bytes: Cell<usize>,
    held_chunks: Cell<usize>,
    /// Bytes used in chunks that stopped being current during this cycle.
    retired_used: Cell<usize>,
    allocations: Cell<u64>,
    frees: Cell<u64>,
    failures: Cell<u64>,
    limit_exceeded: Cell<u64>,
    resets: Cell<u64>,
    allocated_bytes: Cell<u64>,
    high_water: Cell<usize>,
    pinned_retired: Cell<u64>,
}

// SAFETY: the arena exclusively owns its chunks (escaped objects are reached only through
// their own handles, whose reference counts are atomic), so moving it to another thread is
// sound. It is not Sync: the Cells are unsynchronised.
unsafe impl Send for Arena {}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Arena {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Arena").field("stats", &self.stats()).field("limit", &self.limit).finish()
    }
}

impl Arena {
    /// An arena on the process-wide default chunk source ([`ChunkSource::global`]).
    pub fn new() -> Self {
        Self::with_source(Arc::clone(ChunkSource::global()))
    }

    /// An arena on the given chunk source.
    pub fn with_source(source: Arc<ChunkSource>) -> Self {
        let large_threshold = source.usable_chunk_size() / 4;
        Self {
            bump: Bump::empty(),
            current: Cell::new(None),
            chunks: Cell::new(None),
            source,
            large_threshold,
            limit: None,
            held_bytes: Cell::new(0),
            held_chunks: Cell::new(0),
            retired_used: Cell::new(0),
            allocations: Cell::new(0),
            frees: Cell::new(0),
            failures: Cell::new(0),
            limit_exceeded: Cell::new(0),
            resets: Cell::new(0),
            allocated_bytes: Cell::new(0),
            high_water: Cell::new(0),
            pinned_retired: Cell::new(0),
        }
    }

    /// Caps the bytes of chunks and spans this arena may hold at once. Allocations that
    /// would pass it fail with [`ArenaError::LimitExceeded`].
    pub fn with_limit(mut self, limit_bytes: usize) -> Self {
        self.limit = Some(limit_bytes);
        self
    }

    /// The chunk source this arena takes its chunks from.
    pub fn source(&self) -> &Arc<ChunkSource> {
        &self.source
    }

    /// Allocates room for `layout`. The memory is uninitialised.
    #[inline(always)]
    pub fn alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        match self.bump.alloc(layout) {
            Some(ptr) => {
                self.count_allocation();
                Ok(ptr)
            }
            None => self.alloc_slow(layout).map(|(ptr, _)| ptr),
        }
    }

    typed_allocation!();

    /// Moves `value` into the arena behind a handle that may outlive [`Arena::reset`] and
    /// move to other threads. While it lives, its chunk is pinned: reset retires the chunk
    /// instead of reusing it. Dropping the handle drops `value`.
    pub fn alloc_escaping<T: Send + Sync>(&self, value: T) -> Result<Escaped<T>, ArenaError> {
        let (ptr, header) = self.alloc_with_header(Layout::new::<T>())?;
        let ptr = ptr.cast::<T>();
        // SAFETY: fresh, aligned room for a T.
        unsafe { ptr.as_ptr().write(value) };
        // SAFETY: the header is a live chunk of this arena; the handle takes a reference.
        Ok(unsafe { Escaped::new(ptr, header) })
    }

    /// Copies a slice into the arena behind an escaping handle (see [`Arena::alloc_escaping`]).
    pub fn alloc_escaping_slice_copy<T: Copy + Send + Sync>(
        &self,
        src: &[T],
    ) -> Result<Escaped<[T]>, ArenaError> {
        let (ptr, header) = self.alloc_with_header(Layout::for_value(src))?;
        let ptr = ptr.cast::<T>();
        // SAFETY: fresh room for src.len() elements, which cannot overlap src.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr(), src.len()) };
        let slice = NonNull::slice_from_raw_parts(ptr, src.len());
        // SAFETY: as in alloc_escaping.
        Ok(unsafe { Escaped::new(slice, header) })
    }

    fn alloc_with_header(&self, layout: Layout) -> Result<(NonNull<u8>, NonNull<ChunkHeader>), ArenaError> {
        if let (Some(ptr), Some(header)) = (self.bump.alloc(layout), self.current.get()) {
            self.count_allocation();
            return Ok((ptr, header));
        }
        self.alloc_slow(layout)
    }

    /// Counts one allocation when the `count-allocations` feature is on (off by default). It
    /// would be the only bookkeeping on the fast path: a read-modify-write per allocation,
    /// about a fifth of a bare bump's cost, which is why it is opt-in.
    #[inline(always)]
    fn count_allocation(&self) {
        if cfg!(feature = "count-allocations") {
            self.allocations.set(self.allocations.get() + 1);
        }
    }

    /// A new chunk, or a dedicated span for a large request. Kept out of line so that the
    /// fast path stays a handful of instructions (PostgreSQL's `BumpAllocFromNewBlock`).
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<(NonNull<u8>, NonNull<ChunkHeader>), ArenaError> {
        let result = if layout.size() + layout.align() + GUARD_EXTRA > self.large_threshold {
            self.alloc_large(layout)
        } else {
            self.alloc_from_new_chunk(layout)
        };
        match &result {
            Ok(_) => self.count_allocation(),
            Err(error) => {
                self.failures.set(self.failures.get() + 1);
                if matches!(error, ArenaError::LimitExceeded { .. }) {
                    self.limit_exceeded.set(self.limit_exceeded.get() + 1);
                }
            }
        }
        result
    }

    fn alloc_from_new_chunk(
        &self,
        layout: Layout,
    ) -> Result<(NonNull<u8>, NonNull<ChunkHeader>), ArenaError> {
        let header = self.take(self.source.usable_chunk_size(), false)?;
        self.retire_current();
        self.current.set(Some(header));
        self.bump.set(ChunkHeader::data_start(header), ChunkHeader::chunk_end(header));
        let ptr = self.bump.alloc(layout).expect("a small layout fits in a fresh chunk");
        Ok((ptr, header))
    }

    /// A span holding exactly this allocation; the current chunk stays current.
    fn alloc_large(&self, layout: Layout) -> Result<(NonNull<u8>, NonNull<ChunkHeader>), ArenaError> {
        let bytes = HEADER
            .checked_add(layout.size())
            .and_then(|b| b.checked_add(layout.align() + GUARD_EXTRA))
            .ok_or(ArenaError::SizeOverflow)?;
        let header = self.take(bytes, true)?;
        let span = Bump::empty();
        span.set(ChunkHeader::data_start(header), ChunkHeader::chunk_end(header));
        let ptr = span.alloc(layout).expect("the span was sized for this layout");
        let used = span.cursor().addr() - header.as_ptr().addr();
        // SAFETY: the header was just written by `take` and belongs to this arena.
        unsafe { header.as_ref() }.used.set(used);
        self.retired_used.set(self.retired_used.get() + used - HEADER);
        Ok((ptr, header))
    }

    /// Takes a chunk (or a span of at least `bytes`) within the limit, writes its header
    /// and links it into the arena's list.
    fn take(&self, bytes: usize, span: bool) -> Result<NonNull<ChunkHeader>, ArenaError> {
        let held = self.held_bytes.get();
        if let Some(limit) = self.limit
            && held.saturating_add(bytes) > limit
        {
            return Err(ArenaError::LimitExceeded { limit, held, requested: bytes });
        }
        let chunk = if span { self.source.take_span(bytes)? } else { self.source.take()? };
        let (ptr, usable) = chunk.into_raw();
        if let Some(limit) = self.limit
            && held + usable > limit
        {
            // SAFETY: rebuilt from the token we just took apart, given back once.
            self.source.give_back(unsafe { Chunk::from_raw(ptr, usable) });
            return Err(ArenaError::LimitExceeded { limit, held, requested: usable });
        }
        let header = ptr.cast::<ChunkHeader>();
        // SAFETY: the chunk is ours, writable, aligned to the chunk size, and larger than a
        // header.
        unsafe {
            header.as_ptr().write(ChunkHeader {
                next: Cell::new(self.chunks.get()),
                usable,
                used: Cell::new(HEADER),
                refs: AtomicUsize::new(1),
                source: AtomicPtr::new(core::ptr::null_mut()),
            })
        };
        self.chunks.set(Some(header));
        self.held_bytes.set(held + usable);
        self.held_chunks.set(self.held_chunks.get() + 1);
        Ok(header)
    }

    /// Records how much of the current chunk was used; it stays in the list.
    fn retire_current(&self) {
        if let Some(current) = self.current.get() {
            let used = self.bump.cursor().addr() - current.as_ptr().addr();
            // SAFETY: current is a live chunk of this arena.
            unsafe { current.as_ref() }.used.set(used);
            self.retired_used.set(self.retired_used.get() + used - HEADER);
        }
    }

    /// Bytes handed out since the last reset (alignment padding included).
    #[inline]
    pub fn allocated_since_reset(&self) -> usize {
        self.retired_used.get() + self.current.get().map_or(0, |_| self.bump.used())
    }

    /// Frees everything allocated since the last reset.
    ///
    /// Keeps the current chunk (so the next cycle starts without going to the chunk source)
    /// unless an escaping allocation pins it; every other chunk goes back to the source,
    /// and pinned ones are retired until their last handle drops. O(1) when the cycle fit in
    /// one chunk.
    #[inline]
    pub fn reset(&mut self) {
        self.resets.set(self.resets.get() + 1);
        if !guard::ENABLED
            && self.held_chunks.get() == 1
            && let Some(current) = self.current.get()
            // SAFETY: current is a live chunk of this arena.
            && unsafe { current.as_ref() }.refs.load(Ordering::Acquire) == 1
        {
            // The common case: the only chunk is current and unpinned, so nothing was
            // retired this cycle and the bump's range is the whole chunk. Rewind it.
            debug_assert_eq!(self.retired_used.get(), 0);
            self.record_cycle(self.bump.used());
            self.bump.rewind();
            return;
        }
        self.record_cycle(self.allocated_since_reset());
        self.reset_chunks();
    }

    /// Adds one cycle's bytes to the totals.
    #[inline(always)]
    fn record_cycle(&self, used: usize) {
        self.allocated_bytes.set(self.allocated_bytes.get() + used as u64);
        self.high_water.set(self.high_water.get().max(used));
    }

    /// The general reset: several chunks, spans, pinned chunks, or guards to check.
    #[cold]
    #[inline(never)]
    fn reset_chunks(&mut self) {
        self.retire_current();
        self.retired_used.set(0);
        let keep = self.current.get().filter(|current| {
            // SAFETY: current is a live chunk of this arena.
            unsafe { current.as_ref() }.refs.load(Ordering::Acquire) == 1
        });
        self.release_chunks(keep);
        match keep {
            Some(header) => {
                // SAFETY: we own the kept chunk; nothing allocated in it is reachable any
                // more (reset has &mut self and no handle pins it).
                unsafe {
                    header.as_ref().next.set(None);
                    header.as_ref().used.set(HEADER);
                }
                self.chunks.set(Some(header));
                self.bump.set(ChunkHeader::data_start(header), ChunkHeader::chunk_end(header));
            }
            None => {
                self.chunks.set(None);
                self.current.set(None);
                self.bump.set(bump::EMPTY, bump::EMPTY);
            }
        }
    }

    /// Gives back or retires every chunk in the list except `keep`.
    fn release_chunks(&self, keep: Option<NonNull<ChunkHeader>>) {
        let mut next = self.chunks.get();
        while let Some(header) = next {
            // SAFETY: every chunk in the list is live and owned by this arena.
            let h = unsafe { header.as_ref() };
            next = h.next.get();
            let data = ChunkHeader::data_start(header);
            let end = header.as_ptr().cast::<u8>().wrapping_add(h.used.get());
            if !std::thread::panicking() {
                // SAFETY: [data, end) is the range the bump filled in this chunk.
                unsafe { bump::check_records(data, end) };
            }
            if Some(header) == keep {
                // SAFETY: the kept chunk's used bytes are dead (see reset).
                unsafe { guard::poison(data, end.addr() - data.addr()) };
                continue;
            }
            self.held_bytes.set(self.held_bytes.get() - h.usable);
            self.held_chunks.set(self.held_chunks.get() - 1);
            if h.refs.load(Ordering::Acquire) == 1 {
                // SAFETY: only the arena references the chunk, and the arena is done with it.
                unsafe {
                    guard::poison(data, end.addr() - data.addr());
                    self.source.give_back(ChunkHeader::into_chunk(header));
                }
            } else {
                self.retire_pinned(header);
            }
        }
    }

    /// Hands a chunk that escaping handles still use over to those handles.
    fn retire_pinned(&self, header: NonNull<ChunkHeader>) {
        // SAFETY: the arena still owns a reference, so the header is alive.
        let h = unsafe { header.as_ref() };
        let chunks = (h.usable + if guard::ENABLED { crate::os::page_size() } else { 0 })
            .div_ceil(self.source.chunk_size());
        self.source.pin(chunks);
        self.pinned_retired.set(self.pinned_retired.get() + 1);
        h.source.store(Arc::into_raw(Arc::clone(&self.source)).cast_mut(), Ordering::Relaxed);
        // SAFETY: we give up the arena's reference and touch the chunk no more; the Release
        // in `release` publishes the source pointer stored above.
        unsafe { ChunkHeader::release(header) };
    }

    /// A snapshot of the arena's counters.
    pub fn stats(&self) -> Stats {
        let live = self.allocated_since_reset();
        Stats {
            allocations: self.allocations.get(),
            frees: self.frees.get(),
            allocated_bytes: self.allocated_bytes.get() + live as u64,
            live_bytes: live,
            footprint_bytes: self.held_bytes.get(),
            high_water_bytes: self.high_water.get().max(live),
            chunks: self.held_chunks.get(),
            resets: self.resets.get(),
            failures: self.failures.get(),
        }
    }

    /// Allocations refused because of the arena's byte limit.
    pub fn limit_exceeded(&self) -> u64 {
        self.limit_exceeded.get()
    }

    /// Chunks this arena has retired while escaping allocations still pinned them.
    pub fn pinned_retired(&self) -> u64 {
        self.pinned_retired.get()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        self.retire_current();
        self.release_chunks(None);
    }
}

bump_allocator!(&Arena);

/// Grow or shrink for a bump allocator: in place at the tip when the alignment allows,
/// else a fresh allocation and a copy (the old block is abandoned until reset).
///
/// # Safety
/// The `Allocator::grow`/`shrink` contract: `ptr` was allocated by `alloc` with
/// `old_layout`.
#[inline]
unsafe fn resize(
    alloc: impl Allocator,
    bump: &Bump,
    ptr: NonNull<u8>,
    old_layout: Layout,
    new_layout: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    let aligned = ptr.as_ptr().addr().is_multiple_of(new_layout.align());
    if aligned && bump.resize_tip(ptr, old_layout.size(), new_layout.size()) {
        return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
    }
    if aligned && new_layout.size() <= old_layout.size() {
        return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
    }
    let new = alloc.allocate(new_layout)?;
    // SAFETY: the new block is fresh, so it cannot overlap the old one; we copy the bytes
    // both layouts cover.
    unsafe {
        core::ptr::copy_nonoverlapping(
            ptr.as_ptr(),
            new.cast::<u8>().as_ptr(),
            old_layout.size().min(new_layout.size()),
        );
    }
    Ok(new)
}
