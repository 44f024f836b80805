//! Where every allocator of the crate gets its memory: the chunk source (fixed-size chunks
//! from regions reserved up front) and the span sources the general heaps draw on.
//!
//! **What it is for.** The arena and the pool take *chunks* from a [`ChunkSource`]
//! ([`chunk`]); a general heap ([`crate::freelist`], [`crate::sizeclass`]) is an algorithm
//! over memory it does not own: it asks a [`SpanSource`] for *spans* (runs of contiguous
//! bytes) when it runs out and gives them back when it no longer needs them (talc's
//! `Source`, dlmalloc's `MORECORE`). Three span sources ship here:
//!
//! | source | spans | gives back | for |
//! |---|---|---|---|
//! | [`ChunkSource`] (`Arc`) | whole chunks, aligned to the chunk size | yes: idle chunks are reused or decommitted | heaps inside a program (the default) |
//! | [`BufferSource`] ([`buffer`]) | the caller's buffer, once | no | heaps over a fixed buffer (no system calls at all) |
//! | [`Reservation`] ([`reservation`]) | consecutive slices of one large reservation, committed as needed | only at the top | `GlobalAlloc` wrappers: it never allocates from the heap |
//!
//! All of them sit on [`crate::os`] (reserve, commit, decommit, protect).
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
//! an `mprotect` when the committed frontier moves); see [`chunk`] for the chunk source.

pub mod buffer;
pub mod chunk;
mod region;
pub mod reservation;

use core::ptr::NonNull;
use std::sync::Arc;

pub use buffer::BufferSource;
pub use chunk::{Chunk, ChunkConfig, ChunkError, ChunkSource, ChunkStats};
pub use reservation::{RESERVATION_GRANULE, Reservation};

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
