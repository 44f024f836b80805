//! Purging: giving the memory of free pages back to the OS (`MADV_DONTNEED`) once they
//! have stayed free for the purge delay, so that RSS falls after a peak.
//!
//! **What it is for.** A page that empties is usually needed again soon (a loop that
//! allocates and frees a burst); decommitting it at once would cost a system call and a
//! page fault per block on the next burst. So an emptied page stays resident ("dirty")
//! for `ALLOCKIT_PURGE_DELAY_MS` (default 10 ms, mimalloc's default too), and the heap
//! decommits the pages whose delay has passed the next time it takes a fresh page or
//! releases one. jemalloc does the same with time-based decay of dirty then muzzy pages
//! (`dirty_decay_ms`, 10 s by default) run by its arenas or a background thread; tcmalloc
//! releases from its page heap at a configured rate (`ReleaseMemoryToSystem`, the
//! background thread's release rate).
//!
//! Delay 0 purges at once; a negative delay never purges.
//!
//! **What it cannot do.** Purge for a thread that has gone idle: purging happens on the
//! heap's own slow paths (no background thread). An exiting thread purges all its free
//! pages at once.
//!
//! **Complexity.** A purge pass walks the heap's segments: O(segments × pages per
//! segment), at most once per delay period per heap.
//!
//! **Debug support.** `ALLOCKIT_SHOW_STATS=1` reports the bytes purged.

use core::sync::atomic::Ordering;

use crate::options::PURGE_DELAY_MS;
use crate::segment::{Segment, SegmentList};
use crate::stats::GLOBAL;
use crate::sys;

/// Records that page slot `index` of `segment` became free; purges it now when the
/// delay is 0, otherwise schedules it. `purge_due` and `segments` are the owning heap's
/// (when its next page is due, ms or 0; its segment lists).
///
/// # Safety
/// The calling thread's heap owns the segment and every segment on `segments`.
pub(crate) unsafe fn page_freed(
    purge_due: &mut u64,
    segments: &[SegmentList],
    segment: *mut Segment,
    index: usize,
) {
    let delay = PURGE_DELAY_MS.load(Ordering::Relaxed);
    // SAFETY: the heap owns the segment and the page slot.
    unsafe {
        if delay == 0 {
            decommit_page(segment, index);
            return;
        }
        (*segment).dirty_mask |= 1u64 << index;
        if delay < 0 {
            return;
        }
        let now = sys::now_ms();
        (*Segment::page(segment, index)).freed_at = now;
        let due = now + delay as u64;
        if *purge_due == 0 || due < *purge_due {
            *purge_due = due;
        }
        maybe_purge(purge_due, segments);
    }
}

/// Purges the heap's free pages whose delay has passed, if any is due (`purge_due` and
/// `segments` as in [`page_freed`]).
///
/// # Safety
/// The calling thread's heap owns every segment on `segments`.
pub(crate) unsafe fn maybe_purge(purge_due: &mut u64, segments: &[SegmentList]) {
    let due = *purge_due;
    if due == 0 {
        return;
    }
    let now = sys::now_ms();
    if now < due {
        return;
    }
    crate::large::expire_cache(now);
    let delay = PURGE_DELAY_MS.load(Ordering::Relaxed).max(0) as u64;
    let mut next_due = 0u64;
    // SAFETY: the caller's own segments.
    unsafe {
        for list in segments {
            let mut segment = list.first;
            while !segment.is_null() {
                let mut dirty = (*segment).dirty_mask;
                while dirty != 0 {
                    let index = dirty.trailing_zeros() as usize;
                    dirty &= dirty - 1;
                    let page_due = (*Segment::page(segment, index)).freed_at + delay;
                    if page_due <= now {
                        decommit_page(segment, index);
                    } else if next_due == 0 || page_due < next_due {
                        next_due = page_due;
                    }
                }
                segment = (*segment).next;
            }
        }
        *purge_due = next_due;
    }
}

/// Purges every dirty free page of a segment at once (a heap abandoning it).
///
/// # Safety
/// The calling thread owns the segment.
pub(crate) unsafe fn purge_segment_now(segment: *mut Segment) {
    if PURGE_DELAY_MS.load(Ordering::Relaxed) < 0 {
        return;
    }
    // SAFETY: the caller owns the segment.
    unsafe {
        let mut dirty = (*segment).dirty_mask;
        while dirty != 0 {
            let index = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            decommit_page(segment, index);
        }
    }
}

/// Gives the memory of free page slot `index` back to the OS; it reads as zeros afterwards
/// and needs no system call to use again.
unsafe fn decommit_page(segment: *mut Segment, index: usize) {
    // SAFETY: the caller owns the segment; the slot holds no live block.
    unsafe {
        let (start, len) = Segment::page_area(segment, index);
        if let Some(start) = core::ptr::NonNull::new(start)
            && allockit::os::decommit(start, len).is_ok()
        {
            GLOBAL.purged(len);
            let page = Segment::page(segment, index);
            GLOBAL.footprint(-((*page).resident as isize));
            (*page).resident = 0;
        }
        (*segment).dirty_mask &= !(1u64 << index);
    }
}
