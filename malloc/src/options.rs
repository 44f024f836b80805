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

use core::sync::atomic::Ordering;

use crate::sys::env_integer;

/// Reads every option into its static.
pub(crate) fn read() {
    if let Some(delay) = env_integer(b"ALLOCKIT_PURGE_DELAY_MS\0") {
        crate::purge::PURGE_DELAY_MS.store(delay, Ordering::Relaxed);
    }
    if let Some(megabytes) = env_integer(b"ALLOCKIT_LARGE_CACHE_MB\0") {
        crate::large::CACHE_BYTES
            .store((megabytes.max(0) as usize).saturating_mul(1 << 20), Ordering::Relaxed);
    }
    if let Some(show) = env_integer(b"ALLOCKIT_SHOW_STATS\0") {
        crate::stats::SHOW_STATS.store(show != 0, Ordering::Relaxed);
    }
}
