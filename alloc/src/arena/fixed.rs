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
        // unaligned bytes.
        let skip = buffer.as_ptr().addr().wrapping_neg() % bump::MIN_ALIGN;
        let buffer = buffer.get_mut(skip..).unwrap_or_default();
        let start = buffer.as_mut_ptr();
        let capacity = buffer.len();
        let bump = Bump::empty();
        // SAFETY: start + len is the end of the borrowed buffer.
        bump.set(start, unsafe { start.add(capacity) });
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

impl Drop for FixedArena<'_> {
    fn drop(&mut self) {
        // SAFETY: the buffer goes back to its owner, who may use all of it.
        unsafe { guard::make_addressable(self.start, self.capacity) };
    }
}

bump_allocator!(&FixedArena<'_>);
