//! A spin lock for the allocator's few global lists (dead heaps, abandoned segments, the
//! large-block cache), which only slow paths touch.
//!
//! **What it is for.** `std::sync::Mutex` does not allocate either, but a fork handler must
//! take every lock in `prepare` and release it in `parent`/`child` from different calls, which
//! a guard object cannot express; [`SpinLock::force_unlock`] can.
//!
//! **What it cannot do.** Sleep: a waiter spins, then yields the CPU (`sched_yield`). Fine
//! for sections of a few hundred instructions taken on slow paths; never hold it across a
//! system call that may block for long.
//!
//! **Complexity.** One compare-and-swap to take, one store to release.
//!
//! **Debug support.** None beyond the type: the data is reachable only through a guard.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A lock around `T`. Invariant: `data` is accessed only through a [`SpinGuard`], and
/// at most one guard exists at a time (`locked` is true while it does).
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `data`; T moves between threads with it.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpinLock").field("locked", &self.locked.load(Ordering::Relaxed)).finish()
    }
}

impl<T> SpinLock<T> {
    pub(crate) const fn new(data: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), data: UnsafeCell::new(data) }
    }

    /// Takes the lock, spinning then yielding while another thread holds it.
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        self.acquire();
        SpinGuard { lock: self }
    }

    /// Takes the lock without a guard (fork `prepare`); [`SpinLock::force_unlock`] releases it.
    pub(crate) fn acquire(&self) {
        let mut spins = 0u32;
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            } else {
                core::hint::spin_loop();
            }
        }
    }

    /// Releases a lock taken with [`SpinLock::acquire`], or reset one in a fork child, where
    /// the thread that held it no longer exists.
    ///
    /// # Safety
    /// No guard of this lock may be alive in this thread.
    pub(crate) unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

/// Proof of holding a [`SpinLock`]; releases it when dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard's existence means this thread holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard's existence means this thread holds the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
