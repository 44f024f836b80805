//! # allockit-malloc
//!
//! allockit's size classes as a drop-in, thread-caching C `malloc`: per-thread heaps of
//! pages in 4 MiB aligned segments, frees from other threads on a separate per-page list,
//! empty pages purged after a delay, thread exit and `fork()` handled. The design follows
//! mimalloc's; `docs/malloc.md` sets it beside mimalloc, jemalloc and tcmalloc.
//!
//! Run any program on it:
//!
//! ```text
//! cargo build --release -p allockit-malloc
//! LD_PRELOAD=target/release/liballockit_malloc.so your-program
//! ```
//!
//! or name it as a Rust program's global allocator:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: allockit_malloc::AllocKitMalloc = allockit_malloc::AllocKitMalloc;
//!
//! let words: Vec<String> = (0..1000).map(|n| n.to_string()).collect();
//! assert_eq!(words[999], "999");
//! assert!(allockit_malloc::stats().allocations > 0);
//! ```
//!
//! | module | what it owns |
//! |---|---|
//! | `c_api` | the C exports |
//! | `api` | the entry points behind the C exports and [`AllocKitMalloc`]; the `guard` checks of a pointer's header |
//! | `thread` | the thread-local heap, thread exit, process start, fork |
//! | `report` | the [`stats`] snapshot summed over heaps and the `ALLOCKIT_SHOW_STATS` report |
//! | `pool` | heap memory, every heap ever made, dead heaps waiting for reuse |
//! | `heap` | the per-thread heap, page queues per class, the fast path, abandon and adopt |
//! | `purge` | decommitting empty pages after `ALLOCKIT_PURGE_DELAY_MS` |
//! | `page` | a page's free list, remote frees (one CAS) and their collection |
//! | `large` | blocks above 128 KiB on their own mappings, a cache of freed ones |
//! | `abandoned` | segments of exited threads waiting for an adopter |
//! | `segment` | 4 MiB aligned segments, pages, blocks: the layout; pointer → page by address arithmetic |
//! | `guard` | the `guard` feature's registry of headers and freed-block marker |
//! | `stats` | counters (per heap and global) and the [`Stats`] type |
//! | `options` | the option statics, read from the environment once |
//! | `list` | the intrusive doubly linked list of pages and of segments |
//! | `lock` / `sys` | a spin lock; `errno`, time, stderr, environment without allocating |
//!
//! **Layers.** Each module imports only modules listed below it in the table, never one
//! above: `c_api` → `api` → `thread` → `report` → `pool` → `heap` → `purge` → `page`,
//! `large` → `abandoned`, `segment` → `guard`, `stats`, `options`, `list` → `lock`, `sys`. So no two
//! modules import each other: a segment stores its owning heap as an opaque pointer, a page
//! reports a remote free's hint instead of writing to the heap, purging is handed the
//! heap's fields it needs, and the header checks live in `api`, above the layouts they read.
//!
//! ## Options (environment variables, read once at the first allocation)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ALLOCKIT_PURGE_DELAY_MS` | 10 | how long an empty page or cached large block stays resident before it is decommitted (`MADV_DONTNEED`); 0 at once; negative never |
//! | `ALLOCKIT_LARGE_CACHE_MB` | 256 | resident bytes of freed large blocks kept for reuse (at most 64 mappings), decommitted after ten purge delays |
//! | `ALLOCKIT_SHOW_STATS` | 0 | 1: print totals and per-class figures to stderr at exit |
//!
//! ## Features, and keeping the C names out of Rust programs
//!
//! * `override` (default): export the plain C names (`malloc`, `free`, …). A `#[no_mangle]`
//!   `malloc` in an rlib is a hazard: the linker pulls the object that defines it into any
//!   program that links the rlib and references `malloc` (every Rust program does, through
//!   std), silently replacing the whole process's malloc. So a Rust crate that wants only
//!   [`AllocKitMalloc`] depends with `default-features = false`; the `allockit_`-prefixed
//!   exports (`allockit_malloc`, …) are always there and replace nothing.
//!   Cargo unifies features: a build that selects this crate itself (such as
//!   `cargo test --workspace`) turns `override` on for every crate that depends on it in
//!   that build. [`serves_process_malloc`] tells a program which case it is in.
//! * `guard`: a double free or a free of a pointer this library never returned stops the
//!   program with a message (`allockit-malloc: free(): double free (address 0x…)`).
//!
//! ## What it cannot do
//!
//! Give back a page while one block of it is live; purge for a thread that has gone idle
//! (purging runs on each heap's own slow paths); reuse other threads' heaps in a `fork()`
//! child (their memory stays as it was). `mallopt`, `malloc_trim` and `mallinfo` are not
//! replaced.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

mod abandoned;
mod api;
mod c_api;
mod guard;
mod heap;
mod large;
mod list;
mod lock;
mod options;
mod page;
mod pool;
mod purge;
mod report;
mod segment;
mod stats;
mod sys;
mod thread;

use core::alloc::{GlobalAlloc, Layout};

pub use c_api::*;
pub use report::{print_to_stderr, stats};
pub use stats::Stats;

/// Whether this build checks every free (the `guard` feature).
pub const GUARD: bool = guard::ENABLED;

/// allockit-malloc as a Rust global allocator, on the same heaps as the C exports.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout};
/// use allockit_malloc::AllocKitMalloc;
///
/// let layout = Layout::from_size_align(100, 64).unwrap();
/// // SAFETY: a non-zero layout; freed with the same layout.
/// unsafe {
///     let block = AllocKitMalloc.alloc(layout);
///     assert_eq!(block.addr() % 64, 0);
///     AllocKitMalloc.dealloc(block, layout);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AllocKitMalloc;

// SAFETY: every block satisfies its layout (class_for rounds to the alignment; large
// blocks are aligned explicitly), blocks never overlap, and null signals exhaustion.
unsafe impl GlobalAlloc for AllocKitMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 && layout.size() >= layout.align() {
            api::malloc(layout.size())
        } else {
            api::alloc_sized(layout.size(), layout.align(), false)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: a live block of ours.
        unsafe { api::free(ptr) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        api::alloc_sized(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: a live block of ours with this layout, new_size > 0.
        unsafe { api::realloc(ptr, new_size, layout.align()) }
    }
}

/// Whether this library is the process's `malloc`: true under `LD_PRELOAD` of the .so, or
/// in a program that links the rlib with the `override` feature; false for a Rust program
/// that uses [`AllocKitMalloc`] with `default-features = false`.
pub fn serves_process_malloc() -> bool {
    #[cfg(feature = "override")]
    {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
        let process_malloc = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
        let ours: unsafe extern "C" fn(usize) -> *mut core::ffi::c_void = c_api::malloc;
        process_malloc.addr() == ours as usize
    }
    #[cfg(not(feature = "override"))]
    false
}
