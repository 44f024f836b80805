//! The C ABI: glibc's malloc family with glibc's documented semantics.
//!
//! Every function is exported twice: with an `allockit_` prefix (always: `allockit_malloc`,
//! `allockit_free`, …, harmless to any program), and under its plain C name when the
//! `override` feature is on (the default), which is what replaces the process's malloc
//! under `LD_PRELOAD`. See the crate docs for why the plain names are a feature.
//!
//! Semantics kept: `malloc(0)` returns a unique pointer; `calloc` and `reallocarray` check
//! the multiplication (overflow: NULL and `ENOMEM`); `realloc(NULL, n)` is `malloc(n)` and
//! `realloc(p, 0)` frees `p` and returns NULL (glibc's behaviour); a failed `realloc` leaves
//! the block untouched; `posix_memalign` returns `EINVAL` for an alignment that is not a
//! power of two multiple of `sizeof(void *)` and `ENOMEM` on exhaustion without touching
//! `errno`; `aligned_alloc` fails with `EINVAL` for an alignment that is not a power of two
//! (glibc 2.38); `memalign` rounds a non-power-of-two alignment up; `valloc` aligns to the
//! page, `pvalloc` also rounds the size up to pages; `free_sized` and `free_aligned_sized`
//! (C23) free.
//!
//! **What it cannot do.** `mallopt`, `malloc_trim`, `mallinfo` and `malloc_stats` are not
//! replaced: calls to them reach glibc's allocator, which then holds (almost) nothing.
//!
//! **Complexity / debug support.** Those of [`crate::api`].

use core::ffi::c_void;

use crate::api;
use crate::sys::set_errno;

macro_rules! exports {
    ($(
        $(#[$doc:meta])*
        fn $name:ident = $prefixed:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block
    )*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// The C contract of the function of the same name (pointers from this allocator).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $prefixed($($arg: $ty),*) $(-> $ret)? $body

        $(#[$doc])*
        ///
        /// # Safety
        /// The C contract of the function of the same name (pointers from this allocator).
        #[cfg(feature = "override")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? $body
    )*};
}

fn page() -> usize {
    allockit::os::page_size()
}

exports! {
    /// `malloc(size)`.
    fn malloc = allockit_malloc(size: usize) -> *mut c_void {
        api::malloc(size).cast()
    }

    /// `free(ptr)`.
    fn free = allockit_free(ptr: *mut c_void) {
        // SAFETY: the caller passes null or a live block of ours.
        unsafe { api::free(ptr.cast()) }
    }

    /// `calloc(count, size)`: zeroed; NULL with `ENOMEM` if the product overflows.
    fn calloc = allockit_calloc(count: usize, size: usize) -> *mut c_void {
        match count.checked_mul(size) {
            Some(total) => api::alloc_sized(total, if total <= 8 { 8 } else { 16 }, true).cast(),
            None => {
                set_errno(libc::ENOMEM);
                core::ptr::null_mut()
            }
        }
    }

    /// `realloc(ptr, size)`.
    fn realloc = allockit_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        if ptr.is_null() {
            return api::malloc(size).cast();
        }
        if size == 0 {
            // SAFETY: a live block of ours.
            unsafe { api::free(ptr.cast()) };
            return core::ptr::null_mut();
        }
        // SAFETY: a live block of ours, malloc-aligned.
        unsafe { api::realloc(ptr.cast(), size, 16) }.cast()
    }

    /// `reallocarray(ptr, count, size)`: `realloc` with an overflow check.
    fn reallocarray = allockit_reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
        match count.checked_mul(size) {
            // SAFETY: the caller's contract is realloc's.
            Some(total) => unsafe { allockit_realloc(ptr, total) },
            None => {
                set_errno(libc::ENOMEM);
                core::ptr::null_mut()
            }
        }
    }

    /// `posix_memalign(out, alignment, size)`: returns 0, `EINVAL` or `ENOMEM`; `errno` kept.
    fn posix_memalign = allockit_posix_memalign(out: *mut *mut c_void, alignment: usize, size: usize) -> i32 {
        if !alignment.is_power_of_two() || !alignment.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
            return libc::EINVAL;
        }
        // SAFETY: __errno_location is the thread's errno slot.
        let saved = unsafe { *libc::__errno_location() };
        let block = api::alloc_sized(size, alignment.max(16), false);
        set_errno(saved);
        if block.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller passes a valid out pointer.
        unsafe { *out = block.cast() };
        0
    }

    /// `aligned_alloc(alignment, size)`: NULL with `EINVAL` for a non-power-of-two alignment.
    fn aligned_alloc = allockit_aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
        if !alignment.is_power_of_two() {
            set_errno(libc::EINVAL);
            return core::ptr::null_mut();
        }
        api::alloc_sized(size, alignment.max(16), false).cast()
    }

    /// `memalign(alignment, size)`: a non-power-of-two alignment is rounded up.
    fn memalign = allockit_memalign(alignment: usize, size: usize) -> *mut c_void {
        match alignment.max(16).checked_next_power_of_two() {
            Some(alignment) if alignment <= isize::MAX as usize => api::alloc_sized(size, alignment, false).cast(),
            _ => {
                set_errno(libc::EINVAL);
                core::ptr::null_mut()
            }
        }
    }

    /// `valloc(size)`: page aligned.
    fn valloc = allockit_valloc(size: usize) -> *mut c_void {
        api::alloc_sized(size, page(), false).cast()
    }

    /// `pvalloc(size)`: page aligned, the size rounded up to whole pages (0 → one page).
    fn pvalloc = allockit_pvalloc(size: usize) -> *mut c_void {
        match size.max(1).checked_next_multiple_of(page()) {
            Some(rounded) => api::alloc_sized(rounded, page(), false).cast(),
            None => {
                set_errno(libc::ENOMEM);
                core::ptr::null_mut()
            }
        }
    }

    /// `malloc_usable_size(ptr)`: the bytes the block really holds (0 for NULL).
    fn malloc_usable_size = allockit_malloc_usable_size(ptr: *mut c_void) -> usize {
        // SAFETY: the caller passes null or a live block of ours.
        unsafe { api::usable_size(ptr.cast()) }
    }

    /// `free_sized(ptr, size)` (C23): frees; the size is not needed.
    fn free_sized = allockit_free_sized(ptr: *mut c_void, _size: usize) {
        // SAFETY: the caller passes null or a live block of ours.
        unsafe { api::free(ptr.cast()) }
    }

    /// `free_aligned_sized(ptr, alignment, size)` (C23): frees.
    fn free_aligned_sized = allockit_free_aligned_sized(ptr: *mut c_void, _alignment: usize, _size: usize) {
        // SAFETY: the caller passes null or a live block of ours.
        unsafe { api::free(ptr.cast()) }
    }
}

/// Fills `*out` with the allocator's figures ([`crate::Stats`]), for C programs and for
/// tests that load the library with `dlopen`.
///
/// # Safety
/// `out` points to writable memory for one `Stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn allockit_malloc_stats(out: *mut crate::Stats) {
    // SAFETY: the caller passes a valid out pointer.
    unsafe { out.write(crate::report::stats()) };
}

/// Prints the `ALLOCKIT_SHOW_STATS` report to stderr now.
#[unsafe(no_mangle)]
pub extern "C" fn allockit_malloc_print_stats() {
    crate::report::print_to_stderr();
}
