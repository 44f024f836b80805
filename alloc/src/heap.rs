//! What the general heaps ([`crate::freelist`], [`crate::sizeclass`]) share: where they get
//! their memory, their error type, and their common interface ([`Heap`]).
//!
//! **What it is for.** A heap is an algorithm over memory it does not own; it asks a
//! [`SpanSource`] for *spans* (runs of contiguous bytes) when it runs out and gives them
//! back when it no longer needs them (talc's `Source`, dlmalloc's `MORECORE`). Three
//! sources ship here:
//!
//! | source | spans | gives back | for |
//! |---|---|---|---|
//! | [`ChunkSource`] (`Arc`) | whole chunks, aligned to the chunk size | yes: idle chunks are reused or decommitted | heaps inside a program (the default) |
//! | [`BufferSource`] | the caller's buffer, once | no | heaps over a fixed buffer (no system calls at all) |
//! | [`Reservation`] | consecutive slices of one large reservation, committed as needed | only at the top | `GlobalAlloc` wrappers: it never allocates from the heap |
//!
//! **Why a `Reservation` at all.** A global allocator may not call the global allocator,
//! and [`ChunkSource::new`] does (its `Vec`s, its `Arc`). A `Reservation` is `const`
//! constructible, keeps its bookkeeping in a few words behind a futex mutex, and reserves
//! its address space (`mmap`, `PROT_NONE`, no memory) on first use. Its spans follow each
//! other in memory, so a heap may join them into one growing segment (like `sbrk`).
//!
//! **What it cannot do.** A `Reservation` cannot reuse a span given back below its top:
//! the pages are decommitted (the memory goes back to the kernel) but the addresses stay
//! used. Heaps over it therefore keep what they take ([`SpanSource::RECLAIMS`] is false).
//!
//! **Complexity.** `take_span`/`give_back`: O(1) for `BufferSource` and `Reservation` (plus
//! an `mprotect` when the committed frontier moves); see [`crate::chunk`] for the chunk
//! source.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::chunk::{Chunk, ChunkError, ChunkSource};
use crate::os;

/// Why a heap could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// Nothing free fits, and the memory source refused to supply more.
    #[error("heap exhausted: {requested} bytes (align {align}) requested and the memory source has no more")]
    Exhausted {
        /// Bytes asked for.
        requested: usize,
        /// Alignment asked for.
        align: usize,
        /// Why the source refused.
        #[source]
        source: ChunkError,
    },
    /// The request cannot be described (its size overflows with its alignment).
    #[error("a request of {requested} bytes with alignment {align} is too large to describe")]
    TooLarge {
        /// Bytes asked for.
        requested: usize,
        /// Alignment asked for.
        align: usize,
    },
}

/// A run of contiguous bytes handed out by a [`SpanSource`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a span that is not given back stays taken"]
pub struct Span {
    ptr: NonNull<u8>,
    len: usize,
}

impl Span {
    /// A span of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `[ptr, ptr + len)` must be writable memory that the holder of the span may use
    /// exclusively until it is given back.
    pub unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        Self { ptr, len }
    }

    /// The first byte of the span.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Bytes in the span.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the span holds no bytes (sources never hand out empty spans).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte.
    pub fn end(&self) -> *mut u8 {
        self.ptr.as_ptr().wrapping_add(self.len)
    }
}

/// Where a heap gets its memory. See the module docs.
///
/// # Safety
/// Implementations must hand out spans of at least the requested length, aligned to at
/// least 16 bytes, writable, and used by nobody else until they are given back. When
/// [`SpanSource::JOINS_SPANS`] is true, a heap may treat two spans that are adjacent in
/// memory as one and give them back as one.
pub unsafe trait SpanSource {
    /// Whether spans given back are reused (so a heap should give back what it no longer
    /// needs). When false, heaps keep every span until they are dropped.
    const RECLAIMS: bool;

    /// Whether adjacent spans may be joined by the heap and later given back as one.
    const JOINS_SPANS: bool;

    /// Takes a span of at least `min_bytes`.
    fn take_span(&self, min_bytes: usize) -> Result<Span, ChunkError>;

    /// Gives a span back.
    ///
    /// # Safety
    /// `span` must come from [`SpanSource::take_span`] on this source (or be a join of
    /// adjacent such spans, where `JOINS_SPANS` allows it), and nothing may use it
    /// afterwards.
    unsafe fn give_back(&self, span: Span);

    /// The size of span this source hands out without waste (a chunk's usable bytes):
    /// heaps size their requests in multiples of it.
    fn granule(&self) -> usize;
}

// SAFETY: the chunk source hands out chunk-aligned, exclusive, writable spans; spans are
// never joined, so each one given back is exactly a chunk token taken apart.
unsafe impl SpanSource for Arc<ChunkSource> {
    const RECLAIMS: bool = true;
    const JOINS_SPANS: bool = false;

    fn take_span(&self, min_bytes: usize) -> Result<Span, ChunkError> {
        let (ptr, len) = ChunkSource::take_span(self, min_bytes)?.into_raw();
        Ok(Span { ptr, len })
    }

    unsafe fn give_back(&self, span: Span) {
        // SAFETY: the span is a chunk token this source handed out, taken apart once.
        ChunkSource::give_back(self, unsafe { Chunk::from_raw(span.ptr, span.len) });
    }

    fn granule(&self) -> usize {
        self.usable_chunk_size()
    }
}

/// A caller's buffer as a [`SpanSource`]: the whole buffer is handed out once (aligned up
/// to 16 bytes); every later request is [`ChunkError::Exhausted`].
#[derive(Debug)]
pub struct BufferSource<'buf> {
    ptr: NonNull<u8>,
    len: usize,
    taken: Cell<bool>,
    _buffer: PhantomData<&'buf mut [u8]>,
}

// SAFETY: the source stands for an exclusive borrow of the buffer, which may move between
// threads; it is not Sync (the Cell).
unsafe impl Send for BufferSource<'_> {}

impl<'buf> BufferSource<'buf> {
    /// A source that hands out `buffer`.
    pub fn new(buffer: &'buf mut [u8]) -> Self {
        let start = buffer.as_mut_ptr();
        let skip = start.align_offset(16).min(buffer.len());
        let len = buffer.len() - skip;
        // SAFETY: start + skip is inside the buffer (or its end), so not null.
        let ptr = unsafe { NonNull::new_unchecked(start.add(skip)) };
        Self { ptr, len, taken: Cell::new(false), _buffer: PhantomData }
    }
}

// SAFETY: the buffer is borrowed exclusively for 'buf and handed out at most once, aligned
// to 16.
unsafe impl SpanSource for BufferSource<'_> {
    const RECLAIMS: bool = false;
    const JOINS_SPANS: bool = false;

    fn take_span(&self, min_bytes: usize) -> Result<Span, ChunkError> {
        // An empty remainder is refused: its pointer may be the buffer's unaligned end
        // (`new` clamps the skip to the length), and spans are never empty.
        if self.taken.get() || min_bytes > self.len || self.len == 0 {
            return Err(ChunkError::Exhausted { requested: min_bytes, reserved: self.len });
        }
        self.taken.set(true);
        Ok(Span { ptr: self.ptr, len: self.len })
    }

    unsafe fn give_back(&self, _span: Span) {
        // The buffer stays the caller's; there is nothing to return it to.
    }

    fn granule(&self) -> usize {
        self.len
    }
}

/// Bytes by which a [`Reservation`] hands out spans (and aligns them, relative to its
/// page-aligned base).
pub const RESERVATION_GRANULE: usize = 64 * 1024;

/// The committed frontier of a [`Reservation`] moves this many bytes at a time.
const RESERVATION_COMMIT_STEP: usize = 1024 * 1024;

/// One large reservation of address space handed out front to back, without touching the
/// global allocator. See the module docs.
#[derive(Debug)]
pub struct Reservation {
    bytes: usize,
    state: Mutex<ReservationState>,
}

#[derive(Debug)]
struct ReservationState {
    /// The base address; 0 until the first `take_span` reserves the range.
    base: usize,
    /// Bytes handed out from the base (the top).
    top: usize,
    /// Bytes from the base that are readable and writable.
    committed: usize,
}

impl Reservation {
    /// A reservation of `bytes` (rounded up to [`RESERVATION_GRANULE`]), made on first use.
    pub const fn new(bytes: usize) -> Self {
        Self {
            bytes: bytes.next_multiple_of(RESERVATION_GRANULE),
            state: Mutex::new(ReservationState { base: 0, top: 0, committed: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReservationState> {
        // The state is a few integers updated after each system call succeeds, so a panic
        // elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes of address space this reservation covers.
    pub fn reserved_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes handed out and not given back at the top.
    pub fn taken_bytes(&self) -> usize {
        self.lock().top
    }

    /// Bytes made readable and writable so far (the committed frontier).
    pub fn committed_bytes(&self) -> usize {
        self.lock().committed
    }
}

// SAFETY: spans are disjoint slices of our own reservation, committed before they are
// handed out, aligned to RESERVATION_GRANULE from a page-aligned base; adjacent spans are
// adjacent slices, so a join of them is a slice we can decommit as one.
unsafe impl SpanSource for Reservation {
    const RECLAIMS: bool = false;
    const JOINS_SPANS: bool = true;

    fn take_span(&self, min_bytes: usize) -> Result<Span, ChunkError> {
        let mut state = self.lock();
        if state.base == 0 {
            state.base = os::reserve(self.bytes)?.as_ptr().addr();
        }
        let exhausted = ChunkError::Exhausted { requested: min_bytes, reserved: self.bytes };
        let Some(len) = min_bytes.max(1).checked_next_multiple_of(RESERVATION_GRANULE) else {
            return Err(exhausted);
        };
        if len > self.bytes - state.top {
            return Err(exhausted);
        }
        let end = state.top + len;
        if end > state.committed {
            let new_committed = end.next_multiple_of(RESERVATION_COMMIT_STEP).min(self.bytes);
            let from = (state.base + state.committed) as *mut u8;
            // SAFETY: [committed, new_committed) is a page-aligned part of our reservation.
            unsafe { os::commit(NonNull::new_unchecked(from), new_committed - state.committed)? };
            state.committed = new_committed;
        }
        let ptr = (state.base + state.top) as *mut u8;
        state.top = end;
        // SAFETY: a slice of a successful mapping is never null.
        Ok(Span { ptr: unsafe { NonNull::new_unchecked(ptr) }, len })
    }

    unsafe fn give_back(&self, span: Span) {
        let mut state = self.lock();
        let offset = span.ptr.as_ptr().addr() - state.base;
        if offset + span.len == state.top {
            state.top = offset;
        }
        // SAFETY: the span is a committed, page-aligned slice of our reservation and its
        // contents are dead. Failing to decommit keeps the pages resident, which wastes
        // memory but breaks nothing.
        let _ = unsafe { os::decommit(span.ptr, span.len) };
    }

    fn granule(&self) -> usize {
        RESERVATION_GRANULE
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let base = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).base;
        if let Some(base) = NonNull::new(base as *mut u8) {
            // SAFETY: exactly our reservation; every heap that took spans from it borrowed
            // or owned it, so none is alive any more. A failure leaks address space only.
            let _ = unsafe { os::release(base, self.bytes) };
        }
    }
}

/// The raw interface both general heaps ([`crate::FreeList`], [`crate::SizeClass`]) offer
/// as inherent methods, as a trait: for code generic over the heap (model tests, fuzz
/// targets, benchmark adapters, `GlobalAlloc` wrappers).
pub trait Heap {
    /// A block for `layout` (uninitialised, aligned as asked), or why not.
    fn alloc(&self, layout: core::alloc::Layout) -> Result<NonNull<u8>, HeapError>;

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` came from this heap's `alloc`/`realloc` with `layout` and is not used after.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: core::alloc::Layout);

    /// Resizes a block to `new_size` bytes (same alignment), in place when it can; the
    /// contents up to the smaller size are kept. On error the old block is untouched.
    ///
    /// # Safety
    /// As for [`Heap::free`]; the old pointer is not used after a success.
    unsafe fn realloc(
        &self,
        ptr: NonNull<u8>,
        layout: core::alloc::Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, HeapError>;

    /// The heap's counters.
    fn stats(&self) -> crate::Stats;
}

/// Implements [`Heap`] and `allocator_api2::alloc::Allocator` for a heap with the shared
/// inherent interface: `alloc(&self, Layout)`, `free(&self, NonNull<u8>, Layout)`,
/// `realloc(&self, NonNull<u8>, Layout, usize)`, `stats(&self)` and
/// `resize(&self, NonNull<u8>, old: Layout, new: Layout)` (grow and shrink alike).
macro_rules! impl_allocator_for_heap {
    ($heap:ident) => {
        impl<S: crate::heap::SpanSource> crate::heap::Heap for $heap<S> {
            #[inline]
            fn alloc(
                &self,
                layout: core::alloc::Layout,
            ) -> Result<core::ptr::NonNull<u8>, crate::heap::HeapError> {
                $heap::alloc(self, layout)
            }

            #[inline]
            unsafe fn free(&self, ptr: core::ptr::NonNull<u8>, layout: core::alloc::Layout) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $heap::free(self, ptr, layout) }
            }

            #[inline]
            unsafe fn realloc(
                &self,
                ptr: core::ptr::NonNull<u8>,
                layout: core::alloc::Layout,
                new_size: usize,
            ) -> Result<core::ptr::NonNull<u8>, crate::heap::HeapError> {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $heap::realloc(self, ptr, layout, new_size) }
            }

            fn stats(&self) -> crate::Stats {
                $heap::stats(self)
            }
        }

        // SAFETY: blocks stay valid until freed or until the heap drops (which needs it
        // unborrowed); they are aligned and sized as asked; grow/shrink keep the contents.
        unsafe impl<S: crate::heap::SpanSource> allocator_api2::alloc::Allocator for $heap<S> {
            #[inline]
            fn allocate(
                &self,
                layout: core::alloc::Layout,
            ) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
                self.alloc(layout)
                    .map(|ptr| core::ptr::NonNull::slice_from_raw_parts(ptr, layout.size()))
                    .map_err(|_| allocator_api2::alloc::AllocError)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: core::ptr::NonNull<u8>, layout: core::alloc::Layout) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { self.free(ptr, layout) }
            }

            #[inline]
            unsafe fn grow(
                &self,
                ptr: core::ptr::NonNull<u8>,
                old: core::alloc::Layout,
                new: core::alloc::Layout,
            ) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
                // SAFETY: forwarded from the caller's contract.
                unsafe { self.resize(ptr, old, new) }
            }

            #[inline]
            unsafe fn shrink(
                &self,
                ptr: core::ptr::NonNull<u8>,
                old: core::alloc::Layout,
                new: core::alloc::Layout,
            ) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
                // SAFETY: forwarded from the caller's contract.
                unsafe { self.resize(ptr, old, new) }
            }
        }
    };
}
pub(crate) use impl_allocator_for_heap;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_hands_out_adjacent_committed_spans() {
        let reservation = Reservation::new(8 * RESERVATION_COMMIT_STEP);
        let first = reservation.take_span(100).unwrap();
        let second = reservation.take_span(RESERVATION_GRANULE + 1).unwrap();
        assert_eq!(first.len(), RESERVATION_GRANULE);
        assert_eq!(second.len(), 2 * RESERVATION_GRANULE);
        assert_eq!(first.end(), second.as_ptr().as_ptr());
        // SAFETY: both spans are ours and committed.
        unsafe {
            first.as_ptr().as_ptr().write_bytes(1, first.len());
            second.as_ptr().as_ptr().write_bytes(2, second.len());
        }
        assert_eq!(reservation.taken_bytes(), 3 * RESERVATION_GRANULE);
        assert_eq!(reservation.committed_bytes(), RESERVATION_COMMIT_STEP);
        // SAFETY: taken from this reservation, not used afterwards.
        unsafe { reservation.give_back(second) };
        assert_eq!(reservation.taken_bytes(), RESERVATION_GRANULE);
        // SAFETY: as above.
        unsafe { reservation.give_back(first) };
        assert_eq!(reservation.taken_bytes(), 0);
    }

    #[test]
    fn reservation_exhaustion_is_an_error() {
        let reservation = Reservation::new(2 * RESERVATION_GRANULE);
        let whole = reservation.take_span(2 * RESERVATION_GRANULE).unwrap();
        assert!(matches!(reservation.take_span(1), Err(ChunkError::Exhausted { .. })));
        assert!(matches!(reservation.take_span(usize::MAX), Err(ChunkError::Exhausted { .. })));
        // SAFETY: taken from this reservation, not used afterwards.
        unsafe { reservation.give_back(whole) };
        assert!(reservation.take_span(1).is_ok_and(|span| span.len() == RESERVATION_GRANULE));
    }

    #[test]
    fn buffer_source_hands_out_its_aligned_buffer_once() {
        let mut buffer = [0u8; 1000];
        let source = BufferSource::new(&mut buffer[3..]);
        let span = source.take_span(16).unwrap();
        assert_eq!(span.as_ptr().as_ptr().addr() % 16, 0);
        assert!(span.len() >= 1000 - 3 - 15);
        assert!(matches!(source.take_span(16), Err(ChunkError::Exhausted { .. })));
    }

    #[test]
    fn buffer_source_never_hands_out_an_empty_or_misaligned_span() {
        let mut buffer = [0u8; 64];
        let offset = buffer.as_ptr().align_offset(16);
        for (from, to) in [(0, 0), (offset + 1, offset + 1), (offset + 1, offset + 9)] {
            let source = BufferSource::new(&mut buffer[from..to]);
            assert!(matches!(source.take_span(0), Err(ChunkError::Exhausted { .. })), "{from}..{to}");
        }
        let source = BufferSource::new(&mut []);
        assert!(matches!(source.take_span(0), Err(ChunkError::Exhausted { .. })));
    }
}
