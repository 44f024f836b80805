//! Thread-safe `GlobalAlloc` wrappers, so that a whole program can run on
//! [`crate::freelist`] or [`crate::sizeclass`].
//!
//! ```no_run
//! use allockit::freelist::Placement;
//! use allockit::global::GlobalFreeList;
//!
//! #[global_allocator]
//! static HEAP: GlobalFreeList = GlobalFreeList::new(Placement::FirstFit);
//!
//! fn main() {
//!     let words: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
//!     assert_eq!(words.len(), 1000);
//!     assert!(HEAP.stats().allocations >= 1000);
//! }
//! ```
//!
//! **What it is for.** Running real programs (collections, strings, threads) on the
//! heaps of this crate, to see their behaviour under a real allocation pattern and to
//! compare them with the system allocator and jemalloc.
//!
//! **How.** A global allocator may not call the global allocator, so these wrappers take
//! nothing from the heap: each is a `static` built by a `const fn`, holding a heap whose
//! memory comes from a [`Reservation`] (address space reserved with `mmap` on first use,
//! committed as it grows, bookkeeping in a few words), behind a `std::sync::Mutex` (a
//! futex on Linux: it never allocates). Locking is a wrapper around the unchanged
//! single-threaded heap, as in talc's `TalcLock`.
//!
//! **What it cannot do.** Scale across threads: one lock serialises every allocation (a
//! production allocator adds per-thread caches, as jemalloc and mimalloc do). Return
//! memory to the OS: a `Reservation` hands out its address space once, so the heaps keep
//! their peak. A guard that fires inside the heap (the `guard` feature) cannot report
//! through a panic, because the panic would allocate from the heap it holds locked: a
//! per-thread flag turns that re-entry into an allocation failure, so the process aborts
//! instead of deadlocking.
//!
//! **Complexity.** That of the heap inside, plus an uncontended lock (two atomic
//! operations) per call.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard};

use crate::freelist::{FreeList, FreeStats, HeapCorruption, Placement};
use crate::sizeclass::{CLASS_COUNT, ClassStats, SizeClass};
use crate::source::Reservation;
use crate::stats::Stats;

/// Address space each global heap reserves on first use: 16 GiB. Reserving costs no
/// memory (`PROT_NONE`, `MAP_NORESERVE`); it bounds what the heap can ever hold.
pub const DEFAULT_RESERVATION: usize = 16 << 30;

std::thread_local! {
    /// Whether this thread is inside a global heap's lock.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on the heap behind `lock`, unless this thread is already inside a global
/// heap (a panic raised inside the heap that tries to allocate): then `None`.
#[inline]
fn with_locked<H, R>(lock: &Mutex<H>, f: impl FnOnce(&H) -> R) -> Option<R> {
    if INSIDE.replace(true) {
        return None;
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            INSIDE.set(false);
        }
    }
    let _leave = Leave;
    Some(f(&lock_heap(lock)))
}

fn lock_heap<H>(lock: &Mutex<H>) -> MutexGuard<'_, H> {
    // A panic inside the heap (only a fired guard raises one) leaves the heap as the guard
    // found it; recover the lock rather than refusing all further service.
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn as_ptr_or_null<E>(result: Result<NonNull<u8>, E>) -> *mut u8 {
    result.map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// Implements `GlobalAlloc` for a wrapper holding `heap: Mutex<H>`, where `H` is one of the
/// heaps (their inherent `alloc`, `free`, `realloc`, the [`crate::heap::Heap`] interface).
macro_rules! impl_global_alloc {
    ($wrapper:ident) => {
        // SAFETY: every call is serialised by the mutex and forwarded to the heap, which
        // returns blocks aligned and sized as asked, or an error that becomes null; nothing
        // here allocates.
        unsafe impl GlobalAlloc for $wrapper {
            #[inline]
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                with_locked(&self.heap, |heap| as_ptr_or_null(heap.alloc(layout))).unwrap_or(ptr::null_mut())
            }

            #[inline]
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator with `layout`.
                with_locked(&self.heap, |heap| unsafe { heap.free(NonNull::new_unchecked(ptr), layout) });
            }

            #[inline]
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                with_locked(&self.heap, |heap| {
                    // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator with `layout`.
                    as_ptr_or_null(unsafe { heap.realloc(NonNull::new_unchecked(ptr), layout, new_size) })
                })
                .unwrap_or(ptr::null_mut())
            }
        }
    };
}

/// A [`FreeList`] heap as a thread-safe global allocator. See the module docs.
#[derive(Debug)]
pub struct GlobalFreeList {
    heap: Mutex<FreeList<Reservation>>,
}

impl GlobalFreeList {
    /// A global free-list heap with the given placement policy, on a reservation of
    /// [`DEFAULT_RESERVATION`] bytes.
    pub const fn new(placement: Placement) -> Self {
        Self::with_reservation(placement, DEFAULT_RESERVATION)
    }

    /// A global free-list heap on a reservation of `bytes`.
    pub const fn with_reservation(placement: Placement, bytes: usize) -> Self {
        Self { heap: Mutex::new(FreeList::with_source(Reservation::new(bytes), placement)) }
    }

    /// The heap's counters.
    pub fn stats(&self) -> Stats {
        lock_heap(&self.heap).stats()
    }

    /// The heap's free-space figures.
    pub fn free_stats(&self) -> FreeStats {
        lock_heap(&self.heap).free_stats()
    }

    /// Walks the heap and verifies every invariant (it holds the lock meanwhile).
    pub fn check(&self) -> Result<(), HeapCorruption> {
        lock_heap(&self.heap).check()
    }
}

impl_global_alloc!(GlobalFreeList);

/// A [`SizeClass`] heap as a thread-safe global allocator. See the module docs.
#[derive(Debug)]
pub struct GlobalSizeClass {
    heap: Mutex<SizeClass<Reservation>>,
}

impl Default for GlobalSizeClass {
    fn default() -> Self {
        Self::new()
    }
}

impl GlobalSizeClass {
    /// A global size-class heap; slabs and large blocks each come from a reservation of
    /// [`DEFAULT_RESERVATION`] bytes.
    pub const fn new() -> Self {
        Self::with_reservation(DEFAULT_RESERVATION)
    }

    /// A global size-class heap on two reservations of `bytes` (slabs, large blocks).
    pub const fn with_reservation(bytes: usize) -> Self {
        Self { heap: Mutex::new(SizeClass::from_sources(Reservation::new(bytes), Reservation::new(bytes))) }
    }

    /// The heap's counters.
    pub fn stats(&self) -> Stats {
        lock_heap(&self.heap).stats()
    }

    /// The counters of every size class.
    pub fn class_stats(&self) -> [ClassStats; CLASS_COUNT] {
        lock_heap(&self.heap).class_stats()
    }

    /// Internal fragmentation over all small allocations so far.
    pub fn internal_fragmentation(&self) -> f64 {
        lock_heap(&self.heap).internal_fragmentation()
    }

    /// Walks the large-block heap and verifies its invariants.
    pub fn check_large(&self) -> Result<(), HeapCorruption> {
        lock_heap(&self.heap).large().check()
    }
}

impl_global_alloc!(GlobalSizeClass);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_free_list_serves_and_refuses_without_panicking() {
        let heap = GlobalFreeList::with_reservation(Placement::BestFit, 4 << 20);
        let layout = Layout::from_size_align(1000, 64).unwrap();
        // SAFETY: GlobalAlloc calls with a valid layout; the block is freed once.
        unsafe {
            let block = heap.alloc(layout);
            assert!(!block.is_null() && block.addr().is_multiple_of(64));
            let grown = heap.realloc(block, layout, 3000);
            assert!(!grown.is_null());
            assert!(heap.alloc(Layout::from_size_align(8 << 20, 8).unwrap()).is_null());
            heap.dealloc(grown, Layout::from_size_align(3000, 64).unwrap());
        }
        heap.check().unwrap();
        let stats = heap.stats();
        assert_eq!((stats.live_bytes, stats.failures), (0, 1));
    }

    #[test]
    fn a_global_size_class_heap_serves_small_and_large_blocks() {
        let heap = GlobalSizeClass::with_reservation(4 << 20);
        let small = Layout::from_size_align(24, 8).unwrap();
        let large = Layout::from_size_align(100_000, 8).unwrap();
        // SAFETY: GlobalAlloc calls with valid layouts; each block is freed once.
        unsafe {
            let a = heap.alloc(small);
            let b = heap.alloc(large);
            assert!(!a.is_null() && !b.is_null());
            heap.dealloc(a, small);
            heap.dealloc(b, large);
        }
        heap.check_large().unwrap();
        assert_eq!(heap.stats().allocations, 2);
        assert_eq!(heap.class_stats()[crate::sizeclass::class_of(24, 8).unwrap()].requests, 1);
        assert_eq!(heap.internal_fragmentation(), 0.0);
    }
}
