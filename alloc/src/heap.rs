//! What the general heaps ([`crate::freelist`], [`crate::sizeclass`]) share: their error
//! type and their common interface ([`Heap`]). Where they get their memory is
//! [`crate::source`].

use core::ptr::NonNull;

use crate::source::ChunkError;

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
        impl<S: crate::source::SpanSource> crate::heap::Heap for $heap<S> {
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
        unsafe impl<S: crate::source::SpanSource> allocator_api2::alloc::Allocator for $heap<S> {
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
