//! Page operations: carving blocks, popping and pushing the local free list, the remote
//! free (one compare-and-swap onto `thread_free`) and its collection by the owner.
//!
//! **What it is for.** Free-list sharding (mimalloc's central idea): each page has its own
//! short free list instead of one list per size class, so the blocks of a page stay
//! together, an empty page is noticed the moment its `used` count reaches zero, and a free
//! from another thread touches only the page's `thread_free`, never the owner's list.
//!
//! **Remote frees and full pages.** A page with no free block leaves its heap's queue for
//! the heap's full list and gets [`FULL_FLAG`] in `thread_free`. The first remote free
//! onto such a page reports it ([`free_remote`] returns the page's class), and the heap
//! layer sets that class's bit in the owner's `full_hints`, so the owner
//! looks at that class's full list again; without the hint it rescans the list now and then.
//! (mimalloc makes the same move with a per-heap delayed-free list; tcmalloc instead sends
//! remote frees through a central free list per class, jemalloc through the arena bin's
//! lock.)
//!
//! **What it cannot do.** Return blocks to the OS: whole empty pages do that (purging).
//!
//! **Complexity.** Pop and local push O(1), no atomics. Remote push: one CAS (retried under
//! contention). Collection: O(blocks collected) to find the list's tail.
//!
//! **Debug support.** With `guard`, a freed block carries a marker in its second word,
//! which a second free of the block finds (the `guard` module).

use core::ptr;
use core::sync::atomic::Ordering;

use crate::segment::{Block, FULL_FLAG, Page};

/// `thread_free`'s top 16 bits count the blocks on the list (a page holds at most
/// 64 KiB / 8 B = 8,192 blocks; user-space addresses stay below bit 47 on x86-64 and
/// below bit 48 on AArch64), so collecting needs no walk.
const COUNT_SHIFT: u32 = 48;
/// One block in the count.
const COUNT_ONE: usize = 1 << COUNT_SHIFT;
/// The list's head pointer inside `thread_free`.
const PTR_MASK: usize = (COUNT_ONE - 1) & !FULL_FLAG;
const _: () = {
    use crate::segment::{MAX_PAGES, SEGMENT_SIZE, SMALL_MAX};
    let max_count = 1 << (usize::BITS - COUNT_SHIFT);
    // Small pages: a 64 KiB page of 8-byte blocks. Medium: 512 KiB of blocks above SMALL_MAX.
    assert!(SEGMENT_SIZE / MAX_PAGES / 8 < max_count, "a small page's block count fits");
    assert!(512 * 1024 / SMALL_MAX < max_count, "a medium page's block count fits");
};

/// Blocks carved per extension: about 4 KiB worth, at least one (touching memory lazily
/// keeps a page that is barely used from being resident).
const EXTEND_BYTES: usize = 4096;

/// Sets up a free page slot for blocks of `block_size` (class `class`) in `[start, start+len)`.
///
/// # Safety
/// The page must be a free slot of a segment owned by the calling thread's heap, and the
/// area its own.
pub(crate) unsafe fn init(page: *mut Page, class: usize, block_size: usize, start: *mut u8, len: usize) {
    // SAFETY: the caller owns the page slot; no other thread can reach a free slot.
    let p = unsafe { &mut *page };
    p.free = ptr::null_mut();
    p.used = 0;
    p.capacity = 0;
    p.reserved = (len / block_size) as u32;
    p.class = class as u8;
    p.in_use = true;
    p.in_full = false;
    p.dirty = false;
    p.block_size = block_size;
    p.start = start;
    p.next = ptr::null_mut();
    p.prev = ptr::null_mut();
    p.thread_free.store(0, Ordering::Relaxed);
}

/// Carves up to [`EXTEND_BYTES`] of untouched blocks onto the free list; the page must have
/// `capacity < reserved` and an empty free list.
///
/// # Safety
/// The calling thread owns the page.
#[cold]
pub(crate) unsafe fn extend(page: *mut Page) {
    // SAFETY: the caller owns the page.
    let p = unsafe { &mut *page };
    let count = (EXTEND_BYTES / p.block_size).clamp(1, (p.reserved - p.capacity) as usize);
    let first = p.start.wrapping_add(p.capacity as usize * p.block_size);
    let mut block = first;
    for _ in 1..count {
        let next = block.wrapping_add(p.block_size);
        // SAFETY: blocks capacity..capacity+count lie inside the page's own area.
        unsafe { (*block.cast::<Block>()).next = next.cast() };
        block = next;
    }
    // SAFETY: as above; the last carved block ends the list.
    unsafe { (*block.cast::<Block>()).next = p.free };
    p.free = first.cast();
    p.capacity += count as u32;
    let touched = (p.capacity as usize * p.block_size).next_multiple_of(4096);
    if touched > p.resident {
        crate::stats::GLOBAL.footprint((touched - p.resident) as isize);
        p.resident = touched;
    }
}

/// Takes every block other threads pushed onto the page's `thread_free` onto the local free
/// list (clearing [`FULL_FLAG`]); returns how many.
///
/// # Safety
/// The calling thread owns the page.
pub(crate) unsafe fn collect(page: *mut Page) -> u32 {
    // SAFETY: the caller owns the page; thread_free is an atomic.
    let p = unsafe { &mut *page };
    if p.thread_free.load(Ordering::Relaxed) & !FULL_FLAG == 0 {
        return 0;
    }
    let word = p.thread_free.swap(0, Ordering::Acquire);
    let head = (word & PTR_MASK) as *mut Block;
    let count = (word >> COUNT_SHIFT) as u32;
    debug_assert!(!head.is_null() && count > 0);
    if !p.free.is_null() {
        let mut tail = head;
        // SAFETY: the list was built by remote frees of blocks of this page, each linked
        // with Release ordering before the CAS our Acquire swap read.
        unsafe {
            while !(*tail).next.is_null() {
                tail = (*tail).next;
            }
            (*tail).next = p.free;
        }
    }
    p.free = head;
    p.used -= count;
    count
}

/// Pushes `block` onto `page.thread_free` from a thread that does not own the page. Returns
/// the page's class when the page was on its owner's full list and this was the first
/// remote free since, so the caller hints the owner; `None` otherwise.
///
/// # Safety
/// `block` is a live block of `page`, freed by its holder. After the push the page may be
/// reused or unmapped at once: the caller reads nothing of it afterwards (the owner it
/// hints was read from the segment before this call).
pub(crate) unsafe fn free_remote(page: *mut Page, block: *mut u8) -> Option<usize> {
    let block = block.cast::<Block>();
    // SAFETY: the page stays alive while `block` is unfreed, i.e. until the CAS succeeds.
    let (thread_free, class) = unsafe { (&(*page).thread_free, (*page).class) };
    let mut old = thread_free.load(Ordering::Relaxed);
    loop {
        // SAFETY: the block is ours to write until the CAS publishes it.
        unsafe { (*block).next = (old & PTR_MASK) as *mut Block };
        let new = block.addr() | (old & FULL_FLAG) | ((old & !(PTR_MASK | FULL_FLAG)) + COUNT_ONE);
        match thread_free.compare_exchange_weak(old, new, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(current) => old = current,
        }
    }
    (old == FULL_FLAG).then_some(usize::from(class))
}

/// Marks a page that has no free block as full: succeeds only if no remote free is
/// pending (otherwise the caller collects instead).
///
/// # Safety
/// The calling thread owns the page.
pub(crate) unsafe fn try_mark_full(page: *mut Page) -> bool {
    // SAFETY: the caller owns the page; thread_free is an atomic.
    unsafe { (*page).thread_free.compare_exchange(0, FULL_FLAG, Ordering::AcqRel, Ordering::Relaxed) }.is_ok()
}

/// Takes a page off the full state: clears [`FULL_FLAG`] and collects what other threads
/// freed meanwhile.
///
/// # Safety
/// The calling thread owns the page.
pub(crate) unsafe fn unmark_full(page: *mut Page) {
    // SAFETY: the caller owns the page; thread_free is an atomic.
    unsafe {
        (*page).in_full = false;
        (*page).thread_free.fetch_and(!FULL_FLAG, Ordering::AcqRel);
        collect(page);
    }
}
