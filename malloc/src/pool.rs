//! The heap pool: memory for heaps, every heap ever made, and the dead ones waiting for a
//! new thread.
//!
//! **What it is for.** Heaps are carved from mappings made for them and never unmapped, so
//! a stale pointer to a heap (a remote free's hint to an owner that exited) stays harmless,
//! and the report can sum every heap's counters. A thread that exits gives its heap back
//! here; the next new thread gets it.
//!
//! **What it cannot do.** Give heap memory back to the OS.
//!
//! **Complexity.** Take and give back: a lock and O(1); [`for_each_heap`]: O(heaps ever
//! made), under the lock.
//!
//! **Debug support.** `ALLOCKIT_SHOW_STATS=1` counts heaps started and live.

use core::ptr;

use crate::heap::Heap;
use crate::lock::SpinLock;
use crate::stats::GLOBAL;

/// Heap memory is carved from mappings of this size.
const HEAP_AREA: usize = 256 * 1024;

/// Every heap ever made (linked by `all_next`) and the dead ones waiting for reuse
/// (linked by `pool_next`), and the rest of the current heap mapping.
struct HeapPool {
    all: *mut Heap,
    dead: *mut Heap,
    carve: *mut u8,
    carve_end: *mut u8,
}

// SAFETY: the pool is only reached through its lock; the heaps it links are plain memory.
unsafe impl Send for HeapPool {}

static HEAPS: SpinLock<HeapPool> = SpinLock::new(HeapPool {
    all: ptr::null_mut(),
    dead: ptr::null_mut(),
    carve: ptr::null_mut(),
    carve_end: ptr::null_mut(),
});

/// A heap for a new thread, initialised: a dead one recycled, or one carved from heap
/// memory; null if no memory is left.
pub(crate) fn take() -> *mut Heap {
    let mut pool = HEAPS.lock();
    let heap = if !pool.dead.is_null() {
        let heap = pool.dead;
        // SAFETY: heaps on the dead list are valid heap memory no thread uses.
        pool.dead = unsafe { (*heap).pool_next };
        heap
    } else {
        let size = core::mem::size_of::<Heap>();
        if pool.carve.is_null() || pool.carve_end.addr() - pool.carve.addr() < size {
            let Ok(area) = allockit::os::reserve(HEAP_AREA) else { return ptr::null_mut() };
            // SAFETY: a fresh reservation of HEAP_AREA bytes.
            if unsafe { allockit::os::commit(area, HEAP_AREA) }.is_err() {
                return ptr::null_mut();
            }
            pool.carve = area.as_ptr();
            pool.carve_end = area.as_ptr().wrapping_add(HEAP_AREA);
        }
        let heap = pool.carve.cast::<Heap>();
        pool.carve = pool.carve.wrapping_add(size);
        // SAFETY: fresh zeroed memory for one heap (mappings are page aligned and Heap's
        // size is a multiple of its alignment); linked into the list of all heaps.
        unsafe { (*heap).all_next = pool.all };
        pool.all = heap;
        GLOBAL.footprint(size as isize);
        heap
    };
    // SAFETY: the heap memory is ours alone now.
    unsafe { Heap::init(heap) };
    heap
}

/// Calls `visit` with every heap ever made (live or dead), under the pool's lock.
pub(crate) fn for_each_heap(mut visit: impl FnMut(&Heap)) {
    let pool = HEAPS.lock();
    let mut heap = pool.all;
    while !heap.is_null() {
        // SAFETY: heaps are never unmapped; their counters are atomics.
        unsafe {
            visit(&*heap);
            heap = (*heap).all_next;
        }
    }
}

/// Puts the heap of an exited thread on the dead list for the next new thread.
///
/// # Safety
/// The heap was abandoned and no thread uses it any more.
pub(crate) unsafe fn give_back(heap: *mut Heap) {
    let mut pool = HEAPS.lock();
    // SAFETY: the heap is dead; the pool owns it now.
    unsafe { (*heap).pool_next = pool.dead };
    pool.dead = heap;
}

/// Takes (`true`) or releases the pool's lock around `fork()`.
pub(crate) fn fork_lock(take: bool) {
    if take {
        HEAPS.acquire();
    } else {
        // SAFETY: taken by the fork prepare handler in this thread (or by a thread that does
        // not exist in the child); no guard is alive.
        unsafe { HEAPS.force_unlock() };
    }
}
