//! Shared by the integration tests: the C functions as a table of function pointers, taken
//! either from this crate's `allockit_`-prefixed exports (linked in) or from the built
//! `liballockit_malloc.so` loaded with `dlopen` (the artifact programs preload).
#![allow(dead_code)]

use std::ffi::{CString, c_void};
use std::path::PathBuf;

/// The malloc family, from one copy of the allocator.
#[derive(Clone, Copy, Debug)]
pub struct CApi {
    pub name: &'static str,
    pub malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    pub calloc: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    pub reallocarray: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
    pub free: unsafe extern "C" fn(*mut c_void),
    pub free_sized: unsafe extern "C" fn(*mut c_void, usize),
    pub free_aligned_sized: unsafe extern "C" fn(*mut c_void, usize, usize),
    pub posix_memalign: unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> i32,
    pub aligned_alloc: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    pub memalign: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    pub valloc: unsafe extern "C" fn(usize) -> *mut c_void,
    pub pvalloc: unsafe extern "C" fn(usize) -> *mut c_void,
    pub usable_size: unsafe extern "C" fn(*mut c_void) -> usize,
    pub stats: unsafe extern "C" fn(*mut allockit_malloc::Stats),
}

/// The allocator linked into this test binary (the rlib), through its prefixed exports.
pub fn linked() -> CApi {
    use allockit_malloc as m;
    CApi {
        name: "rlib",
        malloc: m::allockit_malloc,
        calloc: m::allockit_calloc,
        realloc: m::allockit_realloc,
        reallocarray: m::allockit_reallocarray,
        free: m::allockit_free,
        free_sized: m::allockit_free_sized,
        free_aligned_sized: m::allockit_free_aligned_sized,
        posix_memalign: m::allockit_posix_memalign,
        aligned_alloc: m::allockit_aligned_alloc,
        memalign: m::allockit_memalign,
        valloc: m::allockit_valloc,
        pvalloc: m::allockit_pvalloc,
        usable_size: m::allockit_malloc_usable_size,
        stats: m::allockit_malloc_stats,
    }
}

/// The cdylib cargo built beside this test (`target/<profile>/deps/liballockit_malloc.so`,
/// or its copy one directory up). Panics when it is missing: a test that cannot find the
/// library must fail, not pass.
pub fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("the test binary lives in a directory");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        let candidate = dir.join("liballockit_malloc.so");
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("liballockit_malloc.so not found next to {} (cargo builds it with the tests)", exe.display());
}

/// The C functions of the built .so, loaded with `dlopen(RTLD_LOCAL)`: its `malloc` does
/// not replace this process's, and the table calls the plain C names.
pub fn loaded() -> CApi {
    let path = CString::new(built_library().into_os_string().into_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path; the library stays loaded for the process.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen failed");
    macro_rules! sym {
        ($name:literal: $($ty:tt)*) => {{
            let name = CString::new($name).unwrap();
            // SAFETY: dlsym on a live handle; the symbol has the C signature named by the
            // field it is stored in (the exports of c_api.rs).
            let address = unsafe { libc::dlsym(handle, name.as_ptr()) };
            assert!(!address.is_null(), "{} not exported", $name);
            // SAFETY: as above.
            unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" $($ty)*>(address) }
        }};
    }
    CApi {
        name: "dlopen",
        malloc: sym!("malloc": fn(usize) -> *mut c_void),
        calloc: sym!("calloc": fn(usize, usize) -> *mut c_void),
        realloc: sym!("realloc": fn(*mut c_void, usize) -> *mut c_void),
        reallocarray: sym!("reallocarray": fn(*mut c_void, usize, usize) -> *mut c_void),
        free: sym!("free": fn(*mut c_void)),
        free_sized: sym!("free_sized": fn(*mut c_void, usize)),
        free_aligned_sized: sym!("free_aligned_sized": fn(*mut c_void, usize, usize)),
        posix_memalign: sym!("posix_memalign": fn(*mut *mut c_void, usize, usize) -> i32),
        aligned_alloc: sym!("aligned_alloc": fn(usize, usize) -> *mut c_void),
        memalign: sym!("memalign": fn(usize, usize) -> *mut c_void),
        valloc: sym!("valloc": fn(usize) -> *mut c_void),
        pvalloc: sym!("pvalloc": fn(usize) -> *mut c_void),
        usable_size: sym!("malloc_usable_size": fn(*mut c_void) -> usize),
        stats: sym!("allockit_malloc_stats": fn(*mut allockit_malloc::Stats)),
    }
}

impl CApi {
    pub fn stats(&self) -> allockit_malloc::Stats {
        let mut stats = allockit_malloc::Stats::default();
        // SAFETY: a valid out pointer.
        unsafe { (self.stats)(&mut stats) };
        stats
    }
}

pub fn errno() -> i32 {
    // SAFETY: the thread's errno slot.
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(value: i32) {
    // SAFETY: the thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}
