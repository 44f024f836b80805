//! The process's global allocator: jemalloc, wrapped to count the allocations a request
//! handler makes on the general heap.
//!
//! Counting is *armed* per thread by [`Armed`] while a handler does its own work (reading
//! the body into request memory, parsing, aggregating, the cache, rendering). It stays
//! disarmed for hyper's HTTP framing around it (its connection buffers and the header maps
//! of the request and response message), which belong to the transport, not to the
//! request's work. In the default mode the counters stay at zero: that is the proof that
//! request work never touches the general heap.
//!
//! The armed state is one thread-local pointer to the counters of the server that armed it,
//! so several servers in one process (tests) keep separate counts. The thread-local has a
//! `const` initialiser and no destructor, so reading it never allocates (which a global
//! allocator must not do).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tikv_jemallocator::Jemalloc;

/// Counts of general-heap allocations made while armed.
#[derive(Debug, Default)]
pub struct HeapCounters {
    allocations: AtomicU64,
    bytes: AtomicU64,
}

impl HeapCounters {
    /// Allocations (and reallocations) counted so far.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Bytes requested by those allocations.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn record(&self, size: usize) {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
    }
}

thread_local! {
    static ARMED: Cell<*const HeapCounters> = const { Cell::new(core::ptr::null()) };
}

/// Arms heap counting on this thread until dropped (restoring what was there before, so
/// guards nest).
#[must_use = "counting is disarmed when the guard drops"]
#[derive(Debug)]
pub struct Armed {
    previous: *const HeapCounters,
}

impl Armed {
    /// Counts this thread's general-heap allocations into `counters` while the guard lives.
    /// The counters must outlive the guard (they live in the server's shared state).
    pub fn new(counters: &HeapCounters) -> Self {
        Self::scope(Some(counters))
    }

    /// Counts into `counters`, or (`None`) counts nothing, while the guard lives.
    pub fn scope(counters: Option<&HeapCounters>) -> Self {
        let pointer = counters.map_or(core::ptr::null(), |c| c as *const HeapCounters);
        let previous = ARMED.with(|armed| armed.replace(pointer));
        Self { previous }
    }
}

/// A future whose every poll counts its general-heap allocations into one set of counters,
/// or into none. Connections are polled under the connection counters, and route handlers
/// (which hyper polls from inside the connection) under none, with request work arming the
/// request counters itself: each allocation lands in exactly one place.
#[derive(Debug)]
pub struct Counted<F> {
    counters: Option<Arc<HeapCounters>>,
    inner: F,
}

impl<F> Counted<F> {
    /// `inner`, counted into `counters` (or, with `None`, not counted).
    pub fn new(counters: Option<Arc<HeapCounters>>, inner: F) -> Self {
        Self { counters, inner }
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and
        // `Counted` has no `Drop` impl and is `Unpin` only if `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        let _armed = Armed::scope(this.counters.as_deref());
        // SAFETY: as above; `this` came from a pinned reference.
        unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.with(|armed| armed.set(self.previous));
    }
}

#[inline]
fn count(size: usize) {
    // `try_with`: during thread teardown the slot may be gone; then nothing is armed.
    let _ = ARMED.try_with(|armed| {
        let counters = armed.get();
        if !counters.is_null() {
            // SAFETY: an `Armed` guard set this pointer from a reference that outlives the
            // guard, and it is cleared when the guard drops.
            unsafe { (*counters).record(size) };
        }
    });
}

/// jemalloc with request-path counting. Installed as the global allocator by this crate.
#[derive(Debug)]
pub struct CountingJemalloc;

// SAFETY: every call is forwarded unchanged to jemalloc; counting touches only a
// thread-local pointer and atomics, and never allocates.
unsafe impl GlobalAlloc for CountingJemalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { Jemalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { Jemalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { Jemalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { Jemalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_armed_allocations_are_counted() {
        let counters = HeapCounters::default();
        drop(std::hint::black_box(vec![0u8; 100]));
        assert_eq!(counters.allocations(), 0);
        {
            let _armed = Armed::new(&counters);
            drop(std::hint::black_box(vec![0u8; 100]));
            drop(std::hint::black_box(vec![0u64; 10]));
        }
        assert_eq!(counters.allocations(), 2);
        assert_eq!(counters.bytes(), 180);
        drop(std::hint::black_box(vec![0u8; 100]));
        assert_eq!(counters.allocations(), 2);
    }
}
