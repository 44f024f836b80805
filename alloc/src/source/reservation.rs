//! One large reservation of address space handed out front to back: the span source of the
//! `GlobalAlloc` wrappers, which may not allocate from the heap.

use core::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

use super::{ChunkError, Span, SpanSource};
use crate::os;

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
}
