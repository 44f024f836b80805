//! [`FixedArena`]: a bump arena over a caller's buffer (the seed task's `arena_init`,
//! `arena_alloc`, `arena_reset`).

use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

use super::bump::{self, Bump};
use super::{ArenaError, resize};
use crate::guard;
use crate::stats::Stats;

/// A bump arena over a borrowed buffer: no chunks, no system calls, and exhaustion is
/// [`ArenaError::BufferExhausted`].
///
/// The arena uses the buffer from its first multiple of 8 on. A buffer too short to hold
/// one aligned byte (an empty one included) gives an arena of capacity 0, whose zero-sized
/// allocations are still aligned as asked.
///
/// The buffer stays the caller's memory: with the `asan` or `valgrind` feature the arena
/// does not mark its bytes for the tools (as [`super::Arena`] does its chunks), because
/// `core::mem::forget` of the arena is safe, skips `Drop`, and would leave the caller's
/// buffer marked unaddressable after the borrow ends. Use after reset in a `FixedArena`
/// is what the `guard` feature's poisoning shows instead.
///
/// ```
/// use allockit::arena::FixedArena;
///
/// let mut buffer = [0u8; 256];
/// let mut arena = FixedArena::new(&mut buffer); // arena_init
/// let x = arena.alloc(7u32)?;                   // arena_alloc
/// assert_eq!(*x, 7);
/// assert!(arena.alloc_slice_copy(&[0u8; 512]).is_err());
/// arena.reset();                                // arena_reset
/// assert_eq!(arena.used(), 0);
/// # Ok::<(), allockit::arena::ArenaError>(())
/// ```
pub struct FixedArena<'buf> {
    bump: Bump,
    start: *mut u8,
    capacity: usize,
    allocations: Cell<u64>,
    frees: Cell<u64>,
    failures: Cell<u64>,
    resets: Cell<u64>,
    allocated_bytes: Cell<u64>,
    high_water: Cell<usize>,
    _buffer: PhantomData<&'buf mut [u8]>,
}

impl core::fmt::Debug for FixedArena<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FixedArena").field("capacity", &self.capacity).field("stats", &self.stats()).finish()
    }
}

impl<'buf> FixedArena<'buf> {
    /// An arena that allocates from `buffer` until it is full.
    pub fn new(buffer: &'buf mut [u8]) -> Self {
        // The bump keeps its cursor a multiple of MIN_ALIGN: skip the buffer's first
        // unaligned bytes. A buffer with no byte at or after its first aligned address (an
        // empty slice's dangling pointer is 0x1) has no aligned start inside it: the arena
        // then gets the bump's EMPTY range, whose address is aligned to 2^62, so zero-sized
        // allocations still come out aligned.
        let skip = buffer.as_ptr().addr().wrapping_neg() % bump::MIN_ALIGN;
        let (start, capacity) = match buffer.get_mut(skip..) {
            Some(aligned) if !aligned.is_empty() => (aligned.as_mut_ptr(), aligned.len()),
            _ => (bump::EMPTY, 0),
        };
        let bump = Bump::empty_borrowed();
        // start + capacity is the end of the borrowed buffer, or EMPTY itself.
        bump.set(start, start.wrapping_add(capacity));
        Self {
            bump,
            start,
            capacity,
            allocations: Cell::new(0),
            frees: Cell::new(0),
            failures: Cell::new(0),
            resets: Cell::new(0),
            allocated_bytes: Cell::new(0),
            high_water: Cell::new(0),
            _buffer: PhantomData,
        }
    }

    /// Allocates room for `layout`; the memory is uninitialised.
    #[inline]
    pub fn alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        match self.bump.alloc(layout) {
            Some(ptr) => {
                if cfg!(feature = "count-allocations") {
                    self.allocations.set(self.allocations.get() + 1);
                }
                Ok(ptr)
            }
            None => Err(self.exhausted(layout)),
        }
    }

    #[cold]
    fn exhausted(&self, layout: Layout) -> ArenaError {
        self.failures.set(self.failures.get() + 1);
        ArenaError::BufferExhausted {
            requested: layout.size() + bump::GUARD_EXTRA,
            available: self.bump.remaining(),
        }
    }

    typed_allocation!();

    /// Bytes used since the last reset (padding included).
    pub fn used(&self) -> usize {
        self.bump.used()
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frees everything: the whole buffer is available again. O(1) (O(used) with guards,
    /// which check canaries and poison the used part).
    pub fn reset(&mut self) {
        let used = self.used();
        // SAFETY: [start, cursor) is the range this arena's bump filled; nothing allocated
        // from it is reachable any more (&mut self).
        unsafe {
            bump::check_records(self.start, self.bump.cursor());
            guard::poison(self.start, used);
        }
        self.allocated_bytes.set(self.allocated_bytes.get() + used as u64);
        self.high_water.set(self.high_water.get().max(used));
        self.resets.set(self.resets.get() + 1);
        self.bump.set(self.start, self.bump.end());
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let live = self.used();
        Stats {
            allocations: self.allocations.get(),
            frees: self.frees.get(),
            allocated_bytes: self.allocated_bytes.get() + live as u64,
            live_bytes: live,
            footprint_bytes: self.capacity,
            high_water_bytes: self.high_water.get().max(live),
            chunks: 0,
            resets: self.resets.get(),
            failures: self.failures.get(),
        }
    }
}

bump_allocator!(&FixedArena<'_>);
