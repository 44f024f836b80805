//! The bump core shared by [`super::Arena`] and [`super::FixedArena`]: a cursor and an end.
//!
//! The fast path is: round the cursor up to the alignment, check the bounds, move the
//! cursor. Allocation goes upward, so the most recent allocation sits at the tip and can
//! grow (or be freed) in place by moving the cursor.
//!
//! With the `guard` feature each allocation is followed by a canary and a trailer
//! (`prev_end`, `payload`, `len`), so the allocations of a chunk can be walked from the
//! cursor back to the chunk's start and every canary checked on reset: PostgreSQL's
//! sentinel check for its memory contexts.

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;

use crate::guard;

/// A cursor that has no chunk: every non-empty allocation fails the bounds check, and a
/// zero-size allocation gets this well-aligned, never dereferenced address.
pub(crate) const EMPTY: *mut u8 = core::ptr::without_provenance_mut(1 << 62);

/// Invariants: `start <= cursor <= end`, all three in (or one past) the same range, and
/// `start` is a multiple of [`MIN_ALIGN`] ([`Bump::set`] checks it). Without guards the
/// cursor stays a multiple of `MIN_ALIGN` too. Every pointer the bump hands out or stores is
/// derived from `start`, the pointer its owner got from the chunk (or buffer), so it carries
/// that range's provenance, never a caller's.
#[derive(Debug)]
pub(crate) struct Bump {
    cursor: Cell<*mut u8>,
    end: Cell<*mut u8>,
    /// Where the current range starts (off the fast path: guard walks and tip checks).
    start: Cell<*mut u8>,
    /// Whether the bump tells AddressSanitizer and Valgrind which of its bytes are handed
    /// out. False over a borrowed buffer ([`super::FixedArena`]): `mem::forget` of the arena
    /// skips its `Drop`, so any mark left on the caller's buffer would outlive the borrow.
    describes_memory: bool,
}

/// Whether any memory-checking tool is told about allocations (the `asan` or `valgrind`
/// feature).
const TOOLS: bool = guard::ASAN || guard::VALGRIND;

/// Without guards the cursor is always a multiple of this, and sizes are rounded up to it.
pub(crate) const MIN_ALIGN: usize = 8;

/// A size rounded up to [`MIN_ALIGN`] (no overflow: sizes are at most isize::MAX).
#[inline(always)]
const fn round_size(size: usize) -> usize {
    (size + MIN_ALIGN - 1) & !(MIN_ALIGN - 1)
}

/// The record after each guarded allocation.
#[cfg(feature = "guard")]
#[derive(Clone, Copy)]
#[repr(C)]
struct Trailer {
    prev_end: *mut u8,
    payload: *mut u8,
    len: usize,
}

/// Bytes a guarded allocation adds after its payload.
pub(crate) const GUARD_EXTRA: usize =
    if guard::ENABLED { guard::CANARY_LEN + 3 * core::mem::size_of::<usize>() } else { 0 };

impl Bump {
    /// A bump with no range, over memory the allocator owns (chunks and spans).
    pub(crate) const fn empty() -> Self {
        Self {
            cursor: Cell::new(EMPTY),
            end: Cell::new(EMPTY),
            start: Cell::new(EMPTY),
            describes_memory: true,
        }
    }

    /// A bump with no range, for ranges of a borrowed buffer: it never marks their bytes
    /// for AddressSanitizer or Valgrind (see the field's docs).
    pub(crate) const fn empty_borrowed() -> Self {
        Self { describes_memory: false, ..Self::empty() }
    }

    /// Whether to tell the memory-checking tools about this bump's range.
    #[inline(always)]
    fn describes(&self) -> bool {
        TOOLS && self.describes_memory
    }

    /// A pointer to `addr` (inside or one past the current range) with the provenance of
    /// the range's start: the cursor and every record are rebuilt from the chunk's own
    /// pointer, never from a pointer a caller handed back (bumpalo does the same).
    #[inline(always)]
    fn at(&self, addr: usize) -> *mut u8 {
        self.start.get().with_addr(addr)
    }

    pub(crate) fn cursor(&self) -> *mut u8 {
        self.cursor.get()
    }

    pub(crate) fn end(&self) -> *mut u8 {
        self.end.get()
    }

    /// Bytes left before the end.
    pub(crate) fn remaining(&self) -> usize {
        self.end.get().addr() - self.cursor.get().addr()
    }

    /// Points the cursor at a new range.
    ///
    /// # Panics
    /// If `start` is not a multiple of [`MIN_ALIGN`]: the fast path hands out the cursor
    /// unrounded for alignments up to `MIN_ALIGN`, so a misaligned start would hand out
    /// misaligned memory. Callers guarantee it (chunk data starts and [`super::FixedArena`]
    /// align it); the check keeps that a checked invariant in release builds too, off the
    /// fast path.
    ///
    /// With the `asan` or `valgrind` feature the whole range becomes unaddressable until
    /// allocated from.
    pub(crate) fn set(&self, start: *mut u8, end: *mut u8) {
        assert!(
            start.addr().is_multiple_of(MIN_ALIGN) && start.addr() <= end.addr(),
            "bump range {start:p}..{end:p} must start at a multiple of {MIN_ALIGN}"
        );
        if self.describes() && start != EMPTY {
            // SAFETY: the range is the bump's own, and nothing in it is allocated.
            unsafe { guard::make_unaddressable(start, end.addr() - start.addr()) };
        }
        self.start.set(start);
        self.cursor.set(start);
        self.end.set(end);
    }

    /// Frees everything allocated in the range: the cursor goes back to its start.
    #[inline(always)]
    pub(crate) fn rewind(&self) {
        let start = self.start.get();
        if self.describes() && start != EMPTY {
            // SAFETY: the range is the bump's own, and nothing in it is allocated any more.
            unsafe { guard::make_unaddressable(start, self.end.get().addr() - start.addr()) };
        }
        self.cursor.set(start);
    }

    /// Bytes used since the range was set.
    #[inline(always)]
    pub(crate) fn used(&self) -> usize {
        self.cursor.get().addr() - self.start.get().addr()
    }

    /// The fast path. `None` when the layout does not fit before the end.
    #[inline(always)]
    pub(crate) fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        if guard::ENABLED {
            return self.alloc_guarded(layout);
        }
        let cursor = self.cursor.get();
        // The cursor stays a multiple of MIN_ALIGN, so the common alignments need no
        // rounding (a constant-folded branch for a known type), and sizes are rounded up
        // to keep it so.
        // No overflow in these additions: a cursor is a user-space address (below 2^47)
        // or EMPTY (2^62), an alignment is at most 2^63 and the rounded size at most 2^63
        // (with `aligned + size <= 2^63` whenever the alignment exceeds 2^62), so every sum
        // stays below 2^64.
        let aligned = if layout.align() <= MIN_ALIGN {
            cursor.addr()
        } else {
            (cursor.addr() + layout.align() - 1) & !(layout.align() - 1)
        };
        let new_cursor = aligned + round_size(layout.size());
        if new_cursor > self.end.get().addr() {
            return None;
        }
        // SAFETY: cursor <= aligned <= new_cursor <= end, so the offset stays inside the
        // current range (or is zero on the EMPTY sentinel). The cursor is always derived
        // from the range's start (see `Bump::at`), so the payload has the chunk's provenance.
        let payload = unsafe { cursor.add(aligned - cursor.addr()) };
        self.cursor.set(payload.with_addr(new_cursor));
        if self.describes() {
            // SAFETY: [payload, payload + size) was just handed out.
            unsafe { guard::make_addressable(payload, layout.size()) };
        }
        // SAFETY: payload is inside a live range, or is EMPTY: never null either way.
        Some(unsafe { NonNull::new_unchecked(payload) })
    }

    #[cfg(not(feature = "guard"))]
    fn alloc_guarded(&self, _layout: Layout) -> Option<NonNull<u8>> {
        unreachable!("guard records exist only with the guard feature")
    }

    #[cfg(feature = "guard")]
    #[inline(never)]
    fn alloc_guarded(&self, layout: Layout) -> Option<NonNull<u8>> {
        let cursor = self.cursor.get();
        let pad = cursor.addr().wrapping_neg() & (layout.align() - 1);
        let needed = pad + layout.size() + GUARD_EXTRA;
        if needed > self.end.get().addr() - cursor.addr() {
            return None;
        }
        // SAFETY: cursor + needed <= end.
        let payload = unsafe { cursor.add(pad) };
        // SAFETY: the record (payload, canary, trailer) is handed out and fits before the end.
        unsafe {
            if self.describes() {
                guard::make_addressable(cursor, needed);
            }
            self.write_record(cursor, payload, layout.size());
        }
        NonNull::new(payload)
    }

    /// Writes the canary and trailer after `payload[..len]` and moves the cursor past them.
    ///
    /// # Safety
    /// `prev_end <= payload` must lie in the current range, and `payload + len +
    /// GUARD_EXTRA` must not pass the end.
    #[cfg(feature = "guard")]
    unsafe fn write_record(&self, prev_end: *mut u8, payload: *mut u8, len: usize) {
        // The record and the new cursor are derived from the range's own pointer: `payload`
        // may be a pointer a caller handed back (resize_tip), whose provenance is its block.
        let (prev_end, payload) = (self.at(prev_end.addr()), self.at(payload.addr()));
        // SAFETY: guaranteed by the caller: all of it lies before the end.
        unsafe {
            let canary = payload.add(len);
            guard::write_canary(canary);
            let trailer = canary.add(guard::CANARY_LEN);
            trailer.cast::<Trailer>().write_unaligned(Trailer { prev_end, payload, len });
            self.cursor.set(trailer.add(size_of::<Trailer>()));
        }
    }

    /// The trailer of the most recent allocation, if any lies in `[start, cursor)`.
    #[cfg(feature = "guard")]
    fn last_trailer(&self) -> Option<Trailer> {
        let cursor = self.cursor.get();
        if self.used() < GUARD_EXTRA {
            return None;
        }
        let at = cursor.wrapping_sub(size_of::<Trailer>());
        // SAFETY: at least one guarded allocation lies in [start, cursor), and the last
        // one's trailer ends exactly at the cursor.
        Some(unsafe { at.cast::<Trailer>().read_unaligned() })
    }

    /// True if `ptr..ptr + size` is the most recent allocation (it ends at the cursor).
    #[inline]
    fn is_tip(&self, ptr: NonNull<u8>, size: usize) -> bool {
        #[cfg(feature = "guard")]
        {
            let _ = size;
            self.last_trailer().is_some_and(|t| t.payload == ptr.as_ptr())
                && ptr.as_ptr().addr() < self.cursor.get().addr()
        }
        #[cfg(not(feature = "guard"))]
        {
            ptr.as_ptr().wrapping_add(round_size(size)) == self.cursor.get()
        }
    }

    /// Resizes the tip allocation in place to `new_size` bytes. False if `ptr` is not the
    /// tip or the new size does not fit.
    pub(crate) fn resize_tip(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> bool {
        if !self.is_tip(ptr, old_size) {
            return false;
        }
        let available = self.end.get().addr() - ptr.as_ptr().addr();
        if new_size.saturating_add(GUARD_EXTRA) > available {
            return false;
        }
        #[cfg(not(feature = "guard"))]
        let new_cursor = ptr.as_ptr().addr() + round_size(new_size);
        #[cfg(not(feature = "guard"))]
        if new_cursor > self.end.get().addr() {
            return false;
        }
        // Read the tip's trailer before the tools are told: a shrink makes it unaddressable.
        #[cfg(feature = "guard")]
        let prev_end = self.last_trailer().map_or(ptr.as_ptr(), |t| t.prev_end);
        if self.describes() {
            let block = ptr.as_ptr();
            // SAFETY: both ranges lie in the bump's range, at the tip block's end: the part
            // a grow adds (after the kept contents, whose state the tools keep) or the part
            // a shrink gives up (after the new record).
            unsafe {
                if new_size > old_size {
                    guard::make_addressable(block.wrapping_add(old_size), new_size - old_size + GUARD_EXTRA);
                } else {
                    guard::make_unaddressable(
                        block.wrapping_add(new_size + GUARD_EXTRA),
                        old_size - new_size,
                    );
                }
            }
        }
        #[cfg(feature = "guard")]
        {
            // SAFETY: the record fits before the end, checked above; prev_end is the end of
            // the allocation before the tip.
            unsafe { self.write_record(prev_end, ptr.as_ptr(), new_size) };
        }
        // The new cursor is the range's own pointer moved to the new address, not the
        // caller's `ptr`, so later allocations keep the chunk's provenance.
        #[cfg(not(feature = "guard"))]
        self.cursor.set(self.at(new_cursor));
        true
    }

    /// Frees the tip allocation by moving the cursor back. False if `ptr` is not the tip.
    pub(crate) fn free_tip(&self, ptr: NonNull<u8>, size: usize) -> bool {
        if !self.is_tip(ptr, size) {
            return false;
        }
        #[cfg(feature = "guard")]
        let new_cursor = self.last_trailer().map_or(ptr.as_ptr(), |t| t.prev_end).addr();
        #[cfg(not(feature = "guard"))]
        let new_cursor = ptr.as_ptr().addr();
        // The cursor moves back to the start of the freed record, rebuilt from the range's
        // own pointer (not from `ptr`, whose provenance may be narrower: a caller's block).
        let new_cursor = self.at(new_cursor);
        let freed = self.cursor.get().addr() - new_cursor.addr();
        // SAFETY: [new_cursor, cursor) is the record being freed; nothing else uses it.
        unsafe { guard::poison(new_cursor, freed) };
        self.cursor.set(new_cursor);
        if self.describes() {
            // SAFETY: the freed tip block lies in the bump's range and is no longer handed out.
            unsafe { guard::make_unaddressable(ptr.as_ptr(), size) };
        }
        true
    }
}

/// Walks the guarded allocations in `[start, end)` from the last back to the first and
/// checks every canary. Without the `guard` feature this does nothing.
///
/// # Safety
/// `[start, end)` must be a range that a [`Bump`] filled with guarded allocations.
#[cfg_attr(not(feature = "guard"), allow(unused_variables))]
pub(crate) unsafe fn check_records(start: *mut u8, end: *mut u8) {
    #[cfg(feature = "guard")]
    {
        let mut at = end;
        while at.addr() > start.addr() {
            if at.addr() - start.addr() < GUARD_EXTRA {
                guard::fired(format_args!("overwrite detected: damaged arena record before {at:p}"));
            }
            // SAFETY: a trailer ends at `at`, and it lies inside the range.
            let trailer = unsafe { at.sub(size_of::<Trailer>()).cast::<Trailer>().read_unaligned() };
            let canary_at = trailer.payload.wrapping_add(trailer.len);
            let sane = trailer.prev_end.addr() >= start.addr()
                && trailer.prev_end.addr() <= trailer.payload.addr()
                && canary_at.addr() + GUARD_EXTRA == at.addr();
            if !sane {
                guard::fired(format_args!("overwrite detected: damaged arena record before {at:p}"));
            }
            // SAFETY: the trailer is sane, so its canary lies inside the range.
            unsafe { guard::check_canary(canary_at, "an arena allocation") };
            at = trailer.prev_end;
        }
    }
}
