//! The options, read once from environment variables (with `getenv`, which does not
//! allocate) when the process first allocates.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ALLOCKIT_PURGE_DELAY_MS` | 10 | how long an empty page (and a cached large block) stays resident before it is decommitted; 0 at once, negative never |
//! | `ALLOCKIT_LARGE_CACHE_MB` | 256 | resident bytes of freed large blocks kept for reuse (up to 64 mappings), decommitted after ten purge delays |
//! | `ALLOCKIT_SHOW_STATS` | 0 | 1: print totals and per-class figures to stderr at exit |
//!
//! **What it cannot do.** Change an option after start-up.
//!
//! **Complexity.** A few `getenv` calls, once. **Debug support.** None.

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use crate::sys::env_integer;

/// `ALLOCKIT_PURGE_DELAY_MS`: how long a free page stays resident (ms; 0 at once;
/// negative: never).
pub(crate) static PURGE_DELAY_MS: AtomicI64 = AtomicI64::new(10);

/// `ALLOCKIT_LARGE_CACHE_MB` in bytes: resident bytes of cached large mappings.
/// 256 MiB by default: a workload that keeps replacing blocks of a few MiB (a window of
/// buffers per thread) finds its freed mappings still resident instead of faulting fresh
/// zeroed pages in for every block (with 64 MiB and 16 slots allockit-malloc took 9 × the
/// page faults of mimalloc on `scripts/bench-malloc`'s `large`).
pub(crate) static CACHE_BYTES: AtomicUsize = AtomicUsize::new(256 << 20);

/// `ALLOCKIT_SHOW_STATS`.
pub(crate) static SHOW_STATS: AtomicBool = AtomicBool::new(false);

/// Reads every option into its static.
pub(crate) fn read() {
    if let Some(delay) = env_integer(b"ALLOCKIT_PURGE_DELAY_MS\0") {
        PURGE_DELAY_MS.store(delay, Ordering::Relaxed);
    }
    if let Some(megabytes) = env_integer(b"ALLOCKIT_LARGE_CACHE_MB\0") {
        CACHE_BYTES.store((megabytes.max(0) as usize).saturating_mul(1 << 20), Ordering::Relaxed);
    }
    if let Some(show) = env_integer(b"ALLOCKIT_SHOW_STATS\0") {
        SHOW_STATS.store(show != 0, Ordering::Relaxed);
    }
}
