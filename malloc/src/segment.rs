//! Segments: 4 MiB of address space aligned to 4 MiB, cut into equal pages of one size
//! class each, with all their metadata in a header at the start.
//!
//! **What it is for.** Finding a block's page from its address alone: the segment is the
//! address with its low 22 bits cleared, and the page is `(address - segment) >> page_shift`.
//! No global map, no lock, no header before each block (mimalloc's segments; jemalloc
//! finds its extents through a radix tree instead, tcmalloc its spans through a page map).
//!
//! Two kinds: *small* segments hold 64 pages of 64 KiB (classes up to 8 KiB), *medium*
//! segments 8 pages of 512 KiB (classes up to 128 KiB). Page 0 starts after the header
//! (8 KiB), so no block of a page ever sits at a segment-aligned address: that is how
//! the large-block layer tells its own blocks apart.
//!
//! **Ownership.** A segment belongs to one heap ([`Segment::owner`]); only the thread of
//! that heap touches the owner-only fields of the segment and of its pages. Other threads
//! touch only the atomics: they read `owner` and push to a page's `thread_free`. A heap
//! whose thread exits sets `owner` to null and hands the segment to the abandoned list,
//! from which another heap adopts it. This layer does not know the heap type: the owner is
//! an opaque pointer, which the heap layer casts back.
//!
//! **What it cannot do.** Serve a block above 128 KiB or aligned above 4 KiB (the large
//! path does); give back a page while one block of it is live.
//!
//! **Complexity.** Pointer to page: a mask, a subtraction and a shift. A fresh segment:
//! three or four system calls (reserve aligned, commit).
//!
//! **Debug support.** With the `guard` feature every segment is entered in
//! [`crate::guard`]'s registry, so a pointer is checked before its header is trusted.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::list::{Linked, List};
use crate::stats::GLOBAL;

/// log2 of the segment size.
pub(crate) const SEGMENT_SHIFT: u32 = 22;
/// Size and alignment of a segment (4 MiB).
pub(crate) const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// Bytes at the start of a segment taken by its header; page 0 starts after them.
pub(crate) const SEGMENT_HEADER: usize = 8192;
/// Pages per small segment (the most of either kind).
pub(crate) const MAX_PAGES: usize = 64;

/// The largest class served from small pages (64 KiB pages, at least 8 blocks each).
pub(crate) const SMALL_MAX: usize = 8 * 1024;
/// The largest class served from pages at all (512 KiB pages, at least 4 blocks each);
/// larger requests are large blocks.
pub(crate) const MEDIUM_MAX: usize = 128 * 1024;
/// Number of size classes served from pages: allockit's table continued to [`MEDIUM_MAX`]
/// (`class_of_size(MEDIUM_MAX) + 1`, checked by a test).
pub(crate) const CLASSES: usize = 52;

/// The first byte of every segment and large-block header: which of the two it is.
pub(crate) const KIND_SMALL: u8 = 1;
pub(crate) const KIND_MEDIUM: u8 = 2;
pub(crate) const KIND_LARGE: u8 = 3;
/// A large block's header while its mapping waits in the cache (freed).
pub(crate) const KIND_LARGE_FREED: u8 = 4;

/// The low bit of [`Page::thread_free`]: the page sits on its heap's full list, so the
/// first remote free to it tells the heap (see the page operations).
pub(crate) const FULL_FLAG: usize = 1;

/// A free block: the link of a free list, written into the block itself.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) next: *mut Block,
}

/// A page: a run of equal blocks of one size class.
///
/// Owner-only fields (the thread of the heap in `Segment::owner`): everything but
/// `thread_free`. Shared: `thread_free`, the stack other threads push their frees to with
/// one compare-and-swap; its low bit is [`FULL_FLAG`]. Fields that describe the blocks
/// (`block_size`, `class`, `start`) do not change while a block of the page is live, so
/// any thread holding a block may read them.
///
/// Invariants: `used` counts blocks handed out and not yet back on `free` (blocks waiting
/// on `thread_free` still count); `free` holds `capacity - used - (blocks on thread_free)`
/// blocks; blocks `capacity..reserved` were never touched.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Page {
    // -- owner only --
    pub(crate) free: *mut Block,
    pub(crate) used: u32,
    pub(crate) capacity: u32,
    pub(crate) reserved: u32,
    pub(crate) class: u8,
    /// The page holds blocks (is in a heap's queue or full list).
    pub(crate) in_use: bool,
    /// The page is on its heap's full list (and `thread_free` carries [`FULL_FLAG`]).
    pub(crate) in_full: bool,
    /// A free page whose memory was not yet decommitted.
    pub(crate) dirty: bool,
    pub(crate) block_size: usize,
    pub(crate) start: *mut u8,
    /// Links of the heap's queue or full list this page is on.
    pub(crate) next: *mut Page,
    pub(crate) prev: *mut Page,
    /// When a free page became free (ms, `sys::now_ms`), for the purge delay.
    pub(crate) freed_at: u64,
    /// Bytes of the page slot touched since it was last purged (a multiple of 4 KiB): what
    /// it may hold resident. Kept across reuse of the slot, for the footprint.
    pub(crate) resident: usize,
    // -- shared --
    pub(crate) thread_free: AtomicUsize,
}

impl Page {
    /// A page with no blocks: also the sentinel every empty class queue points its fast
    /// path at, so that the fast path needs no null check.
    pub(crate) const fn empty() -> Page {
        Page {
            free: ptr::null_mut(),
            used: 0,
            capacity: 0,
            reserved: 0,
            class: 0,
            in_use: false,
            in_full: false,
            dirty: false,
            block_size: 0,
            start: ptr::null_mut(),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            freed_at: 0,
            resident: 0,
            thread_free: AtomicUsize::new(0),
        }
    }
}

/// The header at the start of a segment.
///
/// `kind`, `page_shift` and `page_count` never change after creation. `owner` is shared
/// (read by any thread, written by the owner when it abandons the segment and by the
/// adopter under the abandoned list's lock). Everything else is owner-only.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) kind: u8,
    pub(crate) page_shift: u32,
    pub(crate) page_count: u32,
    // -- shared --
    /// The owning heap, opaque here (null while abandoned).
    pub(crate) owner: AtomicPtr<()>,
    // -- owner only --
    /// Links of the owner's segment list, or of the abandoned list.
    pub(crate) next: *mut Segment,
    pub(crate) prev: *mut Segment,
    pub(crate) used_pages: u32,
    /// Page slots not in use.
    pub(crate) free_mask: u64,
    /// Free page slots whose memory is still resident (not purged).
    pub(crate) dirty_mask: u64,
    pub(crate) pages: [Page; MAX_PAGES],
}

const _: () = assert!(core::mem::size_of::<Segment>() <= SEGMENT_HEADER);
const _: () = assert!(CLASSES <= 64, "a heap's hint mask has one bit per class");

/// The segment kind that serves blocks of `block_size`.
pub(crate) fn kind_for(block_size: usize) -> u8 {
    if block_size <= SMALL_MAX { KIND_SMALL } else { KIND_MEDIUM }
}

/// The segment or large-block header a pointer from this allocator belongs to: the
/// address rounded down to the segment size, or, for a segment-aligned pointer (only
/// large blocks aligned to 4 MiB or more are), the OS page below it.
#[inline(always)]
pub(crate) fn header_of(block: *mut u8) -> *mut u8 {
    let base = block.map_addr(|a| a & !(SEGMENT_SIZE - 1));
    if base == block { block.wrapping_sub(allockit::os::page_size()) } else { base }
}

impl Segment {
    /// The page slot holding `block`.
    ///
    /// # Safety
    /// `block` must lie inside this segment.
    #[inline(always)]
    pub(crate) unsafe fn page_of(this: *mut Segment, block: *mut u8) -> *mut Page {
        // SAFETY: the caller guarantees `block` is in the segment, so the index is below
        // `page_count` <= MAX_PAGES.
        unsafe {
            let index = (block.addr() - this.addr()) >> (*this).page_shift;
            (&raw mut (*this).pages).cast::<Page>().add(index)
        }
    }

    /// The first byte and the length of page slot `index`.
    ///
    /// # Safety
    /// `this` must be a live segment and `index < page_count`.
    pub(crate) unsafe fn page_area(this: *mut Segment, index: usize) -> (*mut u8, usize) {
        // SAFETY: the caller guarantees a live segment.
        let shift = unsafe { (*this).page_shift };
        let page_bytes = 1usize << shift;
        let start = this.cast::<u8>().wrapping_add(index << shift);
        if index == 0 {
            (start.wrapping_add(SEGMENT_HEADER), page_bytes - SEGMENT_HEADER)
        } else {
            (start, page_bytes)
        }
    }

    /// The page struct of slot `index`.
    ///
    /// # Safety
    /// `this` must be a live segment and `index < MAX_PAGES`.
    pub(crate) unsafe fn page(this: *mut Segment, index: usize) -> *mut Page {
        // SAFETY: the caller guarantees a live segment and an index in range.
        unsafe { (&raw mut (*this).pages).cast::<Page>().add(index) }
    }

    /// Maps a new segment of `kind` owned by `owner`, or null when the OS refuses.
    pub(crate) fn create(kind: u8, owner: *mut ()) -> *mut Segment {
        let Ok(base) = allockit::os::reserve_aligned(SEGMENT_SIZE, SEGMENT_SIZE) else {
            return ptr::null_mut();
        };
        // SAFETY: `base` is a fresh reservation of SEGMENT_SIZE bytes.
        if unsafe { allockit::os::commit(base, SEGMENT_SIZE) }.is_err() {
            // SAFETY: our reservation, unused.
            let _ = unsafe { allockit::os::release(base, SEGMENT_SIZE) };
            return ptr::null_mut();
        }
        let segment = base.as_ptr().cast::<Segment>();
        let page_shift = if kind == KIND_SMALL { 16 } else { 19 };
        let page_count = (SEGMENT_SIZE >> page_shift) as u32;
        // SAFETY: fresh memory reads as zeros, a valid bit pattern for the page array
        // (null pointers, zero counts, false flags); the header fits in it.
        unsafe {
            let s = &mut *segment;
            s.kind = kind;
            s.page_shift = page_shift;
            s.page_count = page_count;
            s.owner = AtomicPtr::new(owner);
            s.next = ptr::null_mut();
            s.prev = ptr::null_mut();
            s.used_pages = 0;
            s.free_mask = if page_count == 64 { u64::MAX } else { (1u64 << page_count) - 1 };
            s.dirty_mask = 0;
        }
        crate::guard::register(segment.cast());
        GLOBAL.segment_mapped();
        GLOBAL.footprint(SEGMENT_HEADER as isize);
        segment
    }

    /// Unmaps a segment none of whose pages is in use.
    ///
    /// # Safety
    /// No page of the segment holds a live block, and no list links it any more.
    pub(crate) unsafe fn release(this: *mut Segment) {
        crate::guard::unregister(this.cast());
        GLOBAL.segment_unmapped();
        let mut resident = SEGMENT_HEADER;
        for index in 0..MAX_PAGES {
            // SAFETY: a live segment; index < MAX_PAGES.
            resident += unsafe { (*Segment::page(this, index)).resident };
        }
        GLOBAL.footprint(-(resident as isize));
        // SAFETY: the caller guarantees the segment is dead; it is our own mapping.
        let _ = unsafe { allockit::os::release(ptr::NonNull::new_unchecked(this.cast()), SEGMENT_SIZE) };
    }

    /// The heap that owns the segment (null while abandoned).
    #[inline(always)]
    pub(crate) fn owner(this: *mut Segment) -> *mut () {
        // SAFETY: callers pass live segments; `owner` is an atomic.
        unsafe { (*this).owner.load(Ordering::Relaxed) }
    }
}

/// A heap's segments of one kind, those with a free page slot before the full ones.
pub(crate) type SegmentList = List<Segment>;

// SAFETY: `prev` and `next` are the page's own link fields, used only by its heap's lists.
unsafe impl Linked for Page {
    unsafe fn links(this: *mut Self) -> (*mut *mut Self, *mut *mut Self) {
        // SAFETY: the caller passes a live element; only field addresses are taken.
        unsafe { (&raw mut (*this).prev, &raw mut (*this).next) }
    }
}

// SAFETY: `prev` and `next` are the segment's own link fields, used only by its heap's lists.
unsafe impl Linked for Segment {
    unsafe fn links(this: *mut Self) -> (*mut *mut Self, *mut *mut Self) {
        // SAFETY: the caller passes a live element; only field addresses are taken.
        unsafe { (&raw mut (*this).prev, &raw mut (*this).next) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allockit::sizeclass::{class_of_size, class_size};

    #[test]
    fn the_page_classes_end_at_the_medium_limit() {
        assert_eq!(class_of_size(MEDIUM_MAX) + 1, CLASSES);
        assert_eq!(class_size(CLASSES - 1), MEDIUM_MAX);
        assert_eq!(class_size(class_of_size(SMALL_MAX)), SMALL_MAX);
    }
}
