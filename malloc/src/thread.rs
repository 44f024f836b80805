//! Threads and processes: the thread-local heap pointer, heap creation and recycling, the
//! thread-exit handover (abandoned segments), process start-up (options, the pthread key,
//! fork handlers) and `fork()`.
//!
//! **What it is for.** A thread's first malloc finds a null thread-local, takes a heap
//! (a recycled one or a new one carved from memory mapped for heaps) and registers it under
//! a pthread key whose destructor runs at thread exit. The destructor abandons the heap's
//! segments ([`crate::heap::abandon`]): they go on a global list, and another thread adopts
//! one in its slow path before it maps a new segment. Blocks of an abandoned segment freed
//! later from anywhere still find their page by address, and go to its `thread_free`.
//! mimalloc does exactly this; tcmalloc and jemalloc instead flush the dying thread's cache
//! back to central lists or arena bins, which a thread cache that holds blocks (not pages)
//! can do.
//!
//! The thread-local is a `Cell` of a raw pointer with a const initialiser: a type without
//! `Drop`, so Rust registers no TLS destructor (glibc's `__cxa_thread_atexit_impl` would
//! call calloc from inside the first malloc).
//!
//! **Fork.** `pthread_atfork` handlers take every global lock before `fork()` and release
//! them in the parent and the child, so the child never inherits a lock held by a thread
//! that does not exist there. The forking thread's heap works on in the child. Heaps of the
//! other threads are left as they were: a thread may have been halfway through a free-list
//! update when `fork()` copied it, so walking them would be unsafe; their pages are simply
//! not reused in the child (frees of their blocks go to the pages' `thread_free`).
//!
//! **What it cannot do.** Return a heap's memory when a thread exits while blocks of it are
//! still live elsewhere (the segment waits, abandoned, for an adopter).
//!
//! **Complexity.** Thread start: a lock and a heap initialisation (a few KiB of writes).
//! Thread exit: O(pages owned). Adoption: one segment per slow-path call.
//!
//! **Debug support.** `ALLOCKIT_SHOW_STATS=1` counts heaps, abandoned and adopted segments.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::heap::{self, Heap};
use crate::pool;
use crate::stats::GLOBAL;

/// The calling thread's heap pointer: null until its first allocation and after its exit.
///
/// On x86-64 Linux it is one 8-byte slot of static TLS declared in assembly and read with
/// the initial-exec model (`mov %fs:offset`): two instructions. A Rust `thread_local!` in a
/// shared library uses the general-dynamic model, a call to `__tls_get_addr` on every
/// access, which was 14% of a malloc/free loop's time. Initial-exec TLS in a shared library
/// needs a slot in the static TLS block: always there for a preloaded library, and glibc
/// keeps spare room for the few libraries loaded later with `dlopen` (the tests do that).
/// Elsewhere, a `thread_local!` of a type without `Drop` (so no TLS destructor is
/// registered: glibc's `__cxa_thread_atexit_impl` would call calloc from inside malloc).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod slot {
    use super::Heap;

    core::arch::global_asm!(
        ".section .tbss.allockit_malloc_heap,\"awT\",@nobits",
        ".p2align 3",
        ".globl allockit_malloc_heap",
        ".hidden allockit_malloc_heap",
        ".type allockit_malloc_heap,@object",
        ".size allockit_malloc_heap,8",
        "allockit_malloc_heap:",
        ".zero 8",
        ".text",
    );

    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        let heap: *mut Heap;
        // SAFETY: reads this thread's 8-byte TLS slot declared above (offset from the GOT,
        // initial-exec model); no memory is written.
        unsafe {
            core::arch::asm!(
                "mov {heap}, qword ptr [rip + allockit_malloc_heap@GOTTPOFF]",
                "mov {heap}, qword ptr fs:[{heap}]",
                heap = out(reg) heap,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        heap
    }

    #[inline(always)]
    pub(super) fn set(heap: *mut Heap) {
        // SAFETY: writes this thread's 8-byte TLS slot declared above.
        unsafe {
            core::arch::asm!(
                "mov {offset}, qword ptr [rip + allockit_malloc_heap@GOTTPOFF]",
                "mov qword ptr fs:[{offset}], {heap}",
                offset = out(reg) _,
                heap = in(reg) heap,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod slot {
    use super::Heap;
    use core::ptr;

    thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(ptr::null_mut()) };
    }

    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        HEAP.get()
    }

    #[inline(always)]
    pub(super) fn set(heap: *mut Heap) {
        HEAP.set(heap)
    }
}

/// The calling thread's heap, or null if it has none yet.
#[inline(always)]
pub(crate) fn current() -> *mut Heap {
    slot::get()
}

/// Process start-up state: 0 not started, 1 running, 2 done.
static PROCESS_INIT: AtomicU8 = AtomicU8::new(0);
static KEY_READY: AtomicBool = AtomicBool::new(false);
static mut KEY: libc::pthread_key_t = 0;

/// Gives the calling thread a heap (its first allocation); null if no memory is left.
#[cold]
#[inline(never)]
pub(crate) fn heap_init() -> *mut Heap {
    let heap = pool::take();
    if heap.is_null() {
        return heap;
    }
    slot::set(heap);
    GLOBAL.heap_started();
    process_init();
    if KEY_READY.load(Ordering::Acquire) {
        // SAFETY: the key was created by process_init; a key below 32 stores its value
        // without allocating.
        unsafe { libc::pthread_setspecific(KEY, heap.cast()) };
    }
    heap
}

/// The calling thread's heap, made on first use; null if no memory is left.
#[inline(always)]
pub(crate) fn heap() -> *mut Heap {
    let heap = current();
    if heap.is_null() { heap_init() } else { heap }
}

/// The pthread key destructor: the thread is exiting.
extern "C" fn thread_exit(value: *mut c_void) {
    let heap = value.cast::<Heap>();
    if heap.is_null() {
        return;
    }
    if current() == heap {
        slot::set(ptr::null_mut());
    }
    // SAFETY: the heap was this thread's, and the thread-local no longer names it.
    unsafe { heap::abandon(heap) };
    GLOBAL.heap_ended();
    // SAFETY: the heap is abandoned and no thread names it any more.
    unsafe { pool::give_back(heap) };
}

/// Once per process, on the first thread's first allocation: reads the options, creates
/// the pthread key and installs the fork handlers. Re-entrant calls (pthread_atfork may
/// allocate) do not happen: the initialising thread already has its heap, so it never comes
/// back here. Another thread starting meanwhile waits for the key.
fn process_init() {
    if PROCESS_INIT.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
        while PROCESS_INIT.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
        return;
    }
    crate::options::read();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: a valid out pointer and destructor; pthread_key_create does not allocate.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
        // SAFETY: written once, before KEY_READY publishes it.
        unsafe { KEY = key };
        KEY_READY.store(true, Ordering::Release);
    }
    // SAFETY: the handlers are plain functions that only take and release our locks.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    crate::report::register_exit_report();
    PROCESS_INIT.store(2, Ordering::Release);
    // The first thread's heap was taken before the key existed.
    if KEY_READY.load(Ordering::Acquire) {
        // SAFETY: as in heap_init.
        unsafe { libc::pthread_setspecific(KEY, current().cast()) };
    }
}

extern "C" fn fork_prepare() {
    pool::fork_lock(true);
    crate::abandoned::fork_lock(true);
    crate::large::fork_lock(true);
    crate::guard::fork_lock(true);
}

extern "C" fn fork_parent() {
    crate::guard::fork_lock(false);
    crate::large::fork_lock(false);
    crate::abandoned::fork_lock(false);
    pool::fork_lock(false);
}

extern "C" fn fork_child() {
    fork_parent();
}
