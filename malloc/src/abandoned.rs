//! The abandoned segments: those of heaps whose threads exited while blocks of them were
//! still live, waiting for another heap to adopt them.
//!
//! **What it is for.** An exiting thread cannot free a segment that holds live blocks, and
//! must not leave it unreachable either: it sets the segment's owner to null and pushes it
//! here. A heap about to map a new segment adopts one from here first. mimalloc does the
//! same with its abandoned segments.
//!
//! **What it cannot do.** Choose which segment to adopt: the last one pushed comes first,
//! whatever its size class mix.
//!
//! **Complexity.** Push and take: a lock and O(1). [`waiting`] is one relaxed load, so the
//! heap's slow path looks here without the lock.
//!
//! **Debug support.** `ALLOCKIT_SHOW_STATS=1` counts abandoned and adopted segments.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::lock::SpinLock;
use crate::segment::Segment;
use crate::stats::GLOBAL;

/// Abandoned segments, linked through their `next` field.
struct Abandoned {
    first: *mut Segment,
}

// SAFETY: reached only through its lock.
unsafe impl Send for Abandoned {}

static ABANDONED: SpinLock<Abandoned> = SpinLock::new(Abandoned { first: ptr::null_mut() });
static ABANDONED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Puts a segment on the abandoned list.
///
/// # Safety
/// The segment's owner was just set to null by its exiting owner, which links it nowhere.
pub(crate) unsafe fn push(segment: *mut Segment) {
    let mut list = ABANDONED.lock();
    // SAFETY: the segment is no heap's; the list's lock guards its links.
    unsafe { (*segment).next = list.first };
    list.first = segment;
    ABANDONED_COUNT.fetch_add(1, Ordering::Relaxed);
    GLOBAL.segment_abandoned();
}

/// Whether any abandoned segment waits for an adopter (a relaxed load, no lock).
#[inline]
pub(crate) fn waiting() -> bool {
    ABANDONED_COUNT.load(Ordering::Relaxed) > 0
}

/// Takes one abandoned segment and makes `owner` (the calling thread's heap) its owner;
/// null if there was none. The caller then links the segment's pages into its heap.
pub(crate) fn take(owner: *mut ()) -> *mut Segment {
    let segment = {
        let mut list = ABANDONED.lock();
        let segment = list.first;
        if segment.is_null() {
            return segment;
        }
        // SAFETY: the lock guards the list's links; the segment is no heap's.
        unsafe {
            list.first = (*segment).next;
            (*segment).next = ptr::null_mut();
            (*segment).owner.store(owner, Ordering::Release);
        }
        ABANDONED_COUNT.fetch_sub(1, Ordering::Relaxed);
        segment
    };
    GLOBAL.segment_adopted();
    segment
}

/// Takes (`true`) or releases the list's lock around `fork()`.
pub(crate) fn fork_lock(take: bool) {
    if take {
        ABANDONED.acquire();
    } else {
        // SAFETY: taken by the fork prepare handler in this thread (or by a thread that does
        // not exist in the child); no guard is alive.
        unsafe { ABANDONED.force_unlock() };
    }
}
