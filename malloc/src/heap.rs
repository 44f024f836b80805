//! The per-thread heap: a queue of pages per size class, the segments it owns, and the
//! malloc fast path.
//!
//! **What it is for.** Every thread allocates from its own heap (the thread layer keeps
//! the pointer in a thread-local), so the common malloc is: thread-local heap → the first
//! page of the class's queue → pop that page's free list. No lock and no atomic
//! read-modify-write; a free of a block of one of the heap's own pages pushes it back just
//! as cheaply. Everything else is a named, out-of-line slow path: [`alloc_generic`] finds
//! or makes a page with a free block (collecting remote frees, extending the page, adopting
//! an abandoned segment, taking a fresh page from a segment), and an emptied page goes back
//! to its segment ([`page_release`]).
//!
//! This is mimalloc's heap. tcmalloc's per-thread (now per-CPU) caches hold *lists of
//! blocks* per class refilled from a central free list in batches, and jemalloc's tcache
//! holds a small stack of blocks per class in front of the arena's bins: both cache blocks,
//! where mimalloc and this heap own whole pages.
//!
//! **Thread ownership.** All fields but `full_hints` and the pool links are touched only by
//! the heap's own thread; `full_hints` is the one word other threads write (an atomic OR,
//! on the first remote free to a full page). Heaps live in memory the allocator maps for
//! them and are never unmapped: a dead thread's heap is recycled for the next new thread.
//!
//! **What it cannot do.** Move a page between classes while it holds a block, or give a
//! page back while a block of it is live (one live block pins 64 KiB or 512 KiB).
//!
//! **Complexity.** Fast path O(1); the slow path is O(pages in the class queue) plus, now and
//! then, O(full pages of the class).
//!
//! **Debug support.** With `guard`, the fast path clears the freed marker of the block it
//! hands out (see [`crate::guard`]).

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::abandoned;
use crate::list::List;
use crate::page;
use crate::purge;
use crate::segment::{self, Block, CLASSES, KIND_SMALL, MAX_PAGES, Page, SEGMENT_SIZE, Segment, SegmentList};
use crate::stats::Counter;

/// How many fully empty segments a heap keeps (their pages are purged after the delay)
/// before it unmaps further ones at once.
const KEPT_EMPTY_SEGMENTS: u32 = 1;

/// Every how many fresh pages of a class the heap rescans that class's full list even
/// without a hint (hints can be lost to a heap that was abandoned meanwhile).
const FULL_RESCAN_PERIOD: u32 = 8;

/// The sentinel page every empty queue's fast-path slot points at: no free block, so the
/// fast path falls through to the slow path, which never writes to it.
static mut EMPTY_PAGE: Page = Page::empty();

fn empty_page() -> *mut Page {
    &raw mut EMPTY_PAGE
}

/// A size class's pages (links in the pages).
pub(crate) type PageQueue = List<Page>;

/// Per-heap counters, written only by the heap's thread (a load and a store, no
/// read-modify-write) and read by the statistics at exit.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct HeapStats {
    pub(crate) allocs: [Counter; CLASSES],
    pub(crate) frees: [Counter; CLASSES],
    pub(crate) remote_frees: Counter,
    pub(crate) fresh_pages: Counter,
}

/// A thread's heap. See the module docs for who touches what.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Heap {
    // -- owner only, the fast path first --
    /// The first page of each class's queue, or the empty sentinel.
    pub(crate) direct: [*mut Page; CLASSES],
    /// Pages of each class that may have a free block; the first is the current one.
    pub(crate) queues: [PageQueue; CLASSES],
    /// Pages of each class with no free block (each has [`segment::FULL_FLAG`] set).
    pub(crate) full: [PageQueue; CLASSES],
    /// Owned segments per kind (small, medium).
    pub(crate) segments: [SegmentList; 2],
    pub(crate) empty_segments: u32,
    pub(crate) fresh_since_rescan: [u32; CLASSES],
    /// When the next dirty free page is due to be purged (ms; 0: none is dirty).
    pub(crate) purge_due: u64,
    pub(crate) stats: HeapStats,
    // -- shared --
    /// One bit per class: a remote free reached a page on that class's full list.
    pub(crate) full_hints: AtomicU64,
    /// The heap belongs to a running thread (false while it waits in the pool).
    pub(crate) live: AtomicBool,
    // -- under the heap pool's lock (`pool`) --
    pub(crate) all_next: *mut Heap,
    pub(crate) pool_next: *mut Heap,
}

impl Heap {
    /// Resets a heap for a new thread. Keeps `all_next` (the list of every heap ever made).
    ///
    /// # Safety
    /// `this` points to heap memory no thread uses.
    pub(crate) unsafe fn init(this: *mut Heap) {
        // SAFETY: the caller has exclusive use of the heap memory.
        let heap = unsafe { &mut *this };
        heap.direct = [empty_page(); CLASSES];
        heap.queues = [PageQueue::EMPTY; CLASSES];
        heap.full = [PageQueue::EMPTY; CLASSES];
        heap.segments = [SegmentList::EMPTY, SegmentList::EMPTY];
        heap.empty_segments = 0;
        heap.fresh_since_rescan = [0; CLASSES];
        heap.purge_due = 0;
        heap.full_hints.store(0, Ordering::Relaxed);
        heap.live.store(true, Ordering::Relaxed);
        heap.pool_next = ptr::null_mut();
    }

    fn sync_direct(&mut self, class: usize) {
        if let (Some(slot), Some(queue)) = (self.direct.get_mut(class), self.queues.get(class)) {
            *slot = if queue.first.is_null() { empty_page() } else { queue.first };
        }
    }
}

/// Pops a block of `class` from the heap: the fast path.
///
/// # Safety
/// `heap` is the calling thread's heap and `class < CLASSES`.
#[inline(always)]
pub(crate) unsafe fn alloc_class(heap: *mut Heap, class: usize) -> *mut u8 {
    // SAFETY: the heap is the caller's own; `class` is in range; the direct page is either
    // a page of this heap or the sentinel, whose free list is empty.
    unsafe {
        let page = *(*heap).direct.get_unchecked(class);
        let block = (*page).free;
        if block.is_null() {
            return alloc_generic(heap, class);
        }
        (*page).free = (*block).next;
        (*page).used += 1;
        (*heap).stats.allocs.get_unchecked(class).bump();
        crate::guard::on_alloc(block.cast(), (*page).block_size);
        block.cast()
    }
}

/// The slow path of [`alloc_class`]: finds or makes a page of `class` with a free block.
///
/// # Safety
/// As [`alloc_class`].
#[cold]
#[inline(never)]
pub(crate) unsafe fn alloc_generic(heap: *mut Heap, class: usize) -> *mut u8 {
    // SAFETY: the heap is the caller's own.
    let page = unsafe { find_page(heap, class) };
    if page.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: find_page returns an owned page with a free block, first in its queue.
    unsafe {
        let block = (*page).free;
        (*page).free = (*block).next;
        (*page).used += 1;
        (*heap).stats.allocs.get_unchecked(class).bump();
        crate::guard::on_alloc(block.cast(), (*page).block_size);
        block.cast()
    }
}

/// A page of `class` with a free block, moved to the front of its queue; null when the OS
/// has no memory left.
unsafe fn find_page(heap: *mut Heap, class: usize) -> *mut Page {
    // SAFETY: the heap and all pages on its lists are the caller's own.
    unsafe {
        let h = &mut *heap;
        let mut adopted = false;
        loop {
            let mut page = h.queues.get_unchecked(class).first;
            while !page.is_null() {
                let next = (*page).next;
                page::collect(page);
                if (*page).free.is_null() && (*page).capacity < (*page).reserved {
                    page::extend(page);
                }
                if (*page).free.is_null() && !page::try_mark_full(page) {
                    page::collect(page);
                }
                let queue = h.queues.get_unchecked_mut(class);
                if !(*page).free.is_null() {
                    if queue.first != page {
                        queue.remove(page);
                        queue.push_front(page);
                    }
                    h.sync_direct(class);
                    return page;
                }
                queue.remove(page);
                (*page).in_full = true;
                h.full.get_unchecked_mut(class).push_back(page);
                page = next;
            }
            h.sync_direct(class);

            let bit = 1u64 << class;
            let rescan = h.fresh_since_rescan.get_unchecked_mut(class);
            *rescan += 1;
            let hinted = h.full_hints.load(Ordering::Relaxed) & bit != 0;
            if hinted || *rescan >= FULL_RESCAN_PERIOD {
                *rescan = 0;
                if hinted {
                    h.full_hints.fetch_and(!bit, Ordering::Acquire);
                }
                if rescue_full_pages(heap, class) {
                    continue;
                }
            }
            if !adopted && abandoned::waiting() {
                adopted = true;
                let segment = abandoned::take(heap.cast());
                if !segment.is_null() {
                    adopt(heap, segment);
                    continue;
                }
            }
            return fresh_page(heap, class);
        }
    }
}

/// Moves the pages on `class`'s full list that got remote frees back to its queue.
unsafe fn rescue_full_pages(heap: *mut Heap, class: usize) -> bool {
    let mut found = false;
    // SAFETY: the heap and its pages are the caller's own.
    unsafe {
        let h = &mut *heap;
        let mut page = h.full.get_unchecked(class).first;
        while !page.is_null() {
            let next = (*page).next;
            if (*page).thread_free.load(Ordering::Relaxed) & !segment::FULL_FLAG != 0 {
                h.full.get_unchecked_mut(class).remove(page);
                (*page).in_full = false;
                page::collect(page);
                h.queues.get_unchecked_mut(class).push_back(page);
                found = true;
            }
            page = next;
        }
        h.sync_direct(class);
    }
    found
}

/// Takes a free page slot (from an owned segment, or a new one) and sets it up for `class`.
unsafe fn fresh_page(heap: *mut Heap, class: usize) -> *mut Page {
    let block_size = allockit::sizeclass::class_size(class);
    let kind = segment::kind_for(block_size);
    // SAFETY: the heap and its segments are the caller's own.
    unsafe {
        let h = &mut *heap;
        let list = h.segments.get_unchecked_mut(usize::from(kind - KIND_SMALL));
        let mut segment = list.first;
        if segment.is_null() || (*segment).free_mask == 0 {
            segment = Segment::create(kind, heap.cast());
            if segment.is_null() {
                return ptr::null_mut();
            }
            list.push_front(segment);
        } else if (*segment).used_pages == 0 {
            h.empty_segments -= 1;
        }
        let index = (*segment).free_mask.trailing_zeros() as usize;
        let bit = 1u64 << index;
        (*segment).free_mask &= !bit;
        (*segment).dirty_mask &= !bit;
        (*segment).used_pages += 1;
        if (*segment).free_mask == 0 && list.last != segment {
            list.remove(segment);
            list.push_back(segment);
        }
        let (start, len) = Segment::page_area(segment, index);
        let page = Segment::page(segment, index);
        page::init(page, class, block_size, start, len);
        page::extend(page);
        h.queues.get_unchecked_mut(class).push_front(page);
        h.sync_direct(class);
        h.stats.fresh_pages.bump();
        purge::maybe_purge(&mut h.purge_due, &h.segments);
        page
    }
}

/// Frees `block` of `page` from the page's owner: the same-thread fast path.
///
/// # Safety
/// `heap` is the calling thread's heap and owns the page's segment; `block` is a live
/// block of `page`.
#[inline(always)]
pub(crate) unsafe fn free_local(heap: *mut Heap, page: *mut Page, block: *mut u8) {
    // SAFETY: the caller owns the page; the block is dead to its user from now on.
    unsafe {
        let block = block.cast::<Block>();
        (*block).next = (*page).free;
        (*page).free = block;
        (*page).used -= 1;
        (*heap).stats.frees.get_unchecked(usize::from((*page).class)).bump();
        if (*page).used == 0 || (*page).in_full {
            // The only page of its class's queue stays, empty or not (no links either way):
            // a loop of one malloc and one free must not take and give back a page each time.
            if !(*page).in_full && (*page).prev.is_null() && (*page).next.is_null() {
                return;
            }
            free_local_slow(heap, page);
        }
    }
}

/// A local free made a page non-full or empty.
#[cold]
#[inline(never)]
unsafe fn free_local_slow(heap: *mut Heap, page: *mut Page) {
    // SAFETY: the caller owns the page and the heap.
    unsafe {
        let h = &mut *heap;
        let class = usize::from((*page).class);
        if (*page).in_full {
            h.full.get_unchecked_mut(class).remove(page);
            page::unmark_full(page);
            h.queues.get_unchecked_mut(class).push_back(page);
            h.sync_direct(class);
        }
        if (*page).used == 0 {
            let queue = h.queues.get_unchecked_mut(class);
            if queue.first == page && (*page).next.is_null() {
                // The class's only page: kept (see free_local).
                return;
            }
            queue.remove(page);
            h.sync_direct(class);
            page_release(heap, page);
        }
    }
}

/// Returns an empty page (on no list any more) to its segment's free slots; keeps the
/// memory resident until the purge delay has passed.
///
/// # Safety
/// The heap owns the page's segment; the page holds no live block and is on no list.
pub(crate) unsafe fn page_release(heap: *mut Heap, page: *mut Page) {
    // SAFETY: page structs live in their segment's header, so masking finds the segment.
    unsafe {
        let h = &mut *heap;
        let segment = page.map_addr(|a| a & !(SEGMENT_SIZE - 1)).cast::<Segment>();
        let index = (page.addr() - (&raw mut (*segment).pages).addr()) / core::mem::size_of::<Page>();
        mark_slot_free(segment, index);
        let list = h.segments.get_unchecked_mut(usize::from((*segment).kind - KIND_SMALL));
        if list.first != segment {
            list.remove(segment);
            list.push_front(segment);
        }
        if (*segment).used_pages == 0 {
            if h.empty_segments >= KEPT_EMPTY_SEGMENTS {
                list.remove(segment);
                Segment::release(segment);
                return;
            }
            h.empty_segments += 1;
        }
        purge::page_freed(&mut h.purge_due, &h.segments, segment, index);
    }
}

/// Hands over every segment of an exiting thread's heap: pages emptied by remote frees
/// are released, free pages purged, empty segments unmapped, the rest abandoned for other
/// heaps to adopt.
///
/// # Safety
/// `heap` is the calling thread's heap, which it will not use again.
pub(crate) unsafe fn abandon(heap: *mut Heap) {
    // SAFETY: the heap and its segments are the caller's own until abandoned.
    unsafe {
        let h = &mut *heap;
        for kind in 0..2 {
            let mut segment = h.segments.get_unchecked(kind).first;
            while !segment.is_null() {
                let next = (*segment).next;
                for index in 0..(*segment).page_count as usize {
                    let page = Segment::page(segment, index);
                    if (*page).in_use {
                        page::collect(page);
                        if (*page).used == 0 {
                            mark_slot_free(segment, index);
                            (*segment).dirty_mask |= 1u64 << index;
                        }
                    }
                }
                purge::purge_segment_now(segment);
                (*segment).next = ptr::null_mut();
                (*segment).prev = ptr::null_mut();
                if (*segment).used_pages == 0 {
                    Segment::release(segment);
                } else {
                    (*segment).owner.store(ptr::null_mut(), Ordering::Release);
                    abandoned::push(segment);
                }
                segment = next;
            }
        }
        Heap::init(heap);
        h.live.store(false, Ordering::Relaxed);
    }
}

/// Marks page slot `index` of `segment` free (its page held no live block).
///
/// # Safety
/// The calling thread owns the segment; the page is on no list.
unsafe fn mark_slot_free(segment: *mut Segment, index: usize) {
    // SAFETY: the caller owns the segment and the page.
    unsafe {
        let page = Segment::page(segment, index);
        (*page).in_use = false;
        (*page).in_full = false;
        (*page).free = ptr::null_mut();
        (*page).thread_free.store(0, Ordering::Relaxed);
        (*segment).free_mask |= 1u64 << index;
        (*segment).used_pages -= 1;
    }
}

/// Makes `segment`, just taken from the abandoned list with its owner set to `heap`, part
/// of the heap: its pages join the heap's queues or full lists.
///
/// # Safety
/// `heap` is the calling thread's heap; the segment was abandoned and is now owned by it.
unsafe fn adopt(heap: *mut Heap, segment: *mut Segment) {
    // SAFETY: the segment now belongs to the calling thread's heap.
    unsafe {
        let h = &mut *heap;
        let mut emptied = 0u64;
        for index in 0..(*segment).page_count as usize {
            let page = Segment::page(segment, index);
            if !(*page).in_use {
                continue;
            }
            let class = usize::from((*page).class);
            page::unmark_full(page);
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
            if (*page).used == 0 {
                mark_slot_free(segment, index);
                emptied |= 1u64 << index;
            } else if (*page).free.is_null()
                && (*page).capacity == (*page).reserved
                && page::try_mark_full(page)
            {
                (*page).in_full = true;
                h.full.get_unchecked_mut(class).push_back(page);
            } else {
                page::collect(page);
                h.queues.get_unchecked_mut(class).push_back(page);
                h.sync_direct(class);
            }
        }
        if (*segment).used_pages == 0 {
            if h.empty_segments >= KEPT_EMPTY_SEGMENTS {
                Segment::release(segment);
                return;
            }
            h.empty_segments += 1;
        }
        let kind = usize::from((*segment).kind - KIND_SMALL);
        let list = h.segments.get_unchecked_mut(kind);
        if (*segment).free_mask != 0 {
            list.push_front(segment);
        } else {
            list.push_back(segment);
        }
        for index in 0..MAX_PAGES {
            if emptied & (1u64 << index) != 0 {
                purge::page_freed(&mut h.purge_due, &h.segments, segment, index);
            }
        }
    }
}

/// Statistics of a heap's class counters, summed by the report.
pub(crate) fn class_counts(heap: &Heap, class: usize) -> (u64, u64) {
    match (heap.stats.allocs.get(class), heap.stats.frees.get(class)) {
        (Some(a), Some(f)) => (a.get(), f.get()),
        _ => (0, 0),
    }
}

/// Frees `block` of `page` from a thread that does not own the page (or with no heap):
/// one compare-and-swap onto the page's `thread_free`, and a hint to `owner` when the page
/// was on its full list.
///
/// # Safety
/// `block` is a live block of `page`, freed by its holder; `owner` was read from the
/// page's segment before this call.
#[inline]
pub(crate) unsafe fn free_remote(owner: *mut Heap, page: *mut Page, block: *mut u8) {
    // SAFETY: the caller's guarantees are page::free_remote's.
    if let Some(class) = unsafe { page::free_remote(page, block) }
        && !owner.is_null()
    {
        // SAFETY: heaps are never unmapped (a dead one is recycled), so a stale owner only
        // gets a spurious hint.
        unsafe { (*owner).full_hints.fetch_or(1u64 << class, Ordering::Release) };
    }
}

/// Counts a free of a block of `class` by a thread that does not own its page.
pub(crate) fn count_remote_free(heap: *mut Heap, class: usize) {
    if heap.is_null() {
        // A thread that never allocated has no heap to count in: one atomic add beside the
        // compare-and-swap the remote free costs anyway.
        crate::stats::GLOBAL.heapless_free();
        return;
    }
    // SAFETY: a non-null heap from the thread-local is the calling thread's own.
    unsafe {
        (*heap).stats.remote_frees.bump();
        if let Some(counter) = (*heap).stats.frees.get(class) {
            counter.bump();
        }
    }
}
