//! jemalloc's control interface (`mallctl`, `mallocx`, `dallocx`), found at run time.
//!
//! The lab binary is not linked with jemalloc: its children run with
//! `LD_PRELOAD=libjemalloc.so.2`, which puts jemalloc's exported symbols into the global
//! scope. [`Jemalloc::loaded`] looks them up with `dlsym(RTLD_DEFAULT, ..)`, so the same
//! binary can read jemalloc's statistics, create arenas and dump heap profiles when it
//! runs on jemalloc, and reports a clear error when it does not. (Linking
//! `tikv-jemalloc-ctl` instead would pull a second, static jemalloc into the binary and
//! defeat the preload.)
//!
//! Statistics are cached inside jemalloc and refreshed by writing `epoch`; [`Jemalloc::stats`]
//! does that first. Each call costs a few microseconds.

use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr::NonNull;

use serde::{Deserialize, Serialize};

use crate::LabError;

type MallctlFn = unsafe extern "C" fn(*const c_char, *mut c_void, *mut usize, *mut c_void, usize) -> c_int;
type MallocxFn = unsafe extern "C" fn(usize, c_int) -> *mut c_void;
type DallocxFn = unsafe extern "C" fn(*mut c_void, c_int);

/// `MALLOCX_TCACHE_NONE`: bypass the thread cache, so a freed region goes straight back
/// to its arena instead of being handed to the next `malloc` of the same size.
pub const MALLOCX_TCACHE_NONE: c_int = 1 << 8;

/// `MALLOCX_ARENA(arena)`: allocate from this arena.
pub const fn mallocx_arena(arena: u32) -> c_int {
    ((arena as c_int) + 1) << 20
}

/// jemalloc's entry points in this process.
///
/// Invariant: the function pointers were resolved from the jemalloc that serves `malloc`
/// in this process (a preloaded library is never unloaded), so they stay valid for the
/// life of the process.
#[derive(Debug, Clone, Copy)]
pub struct Jemalloc {
    mallctl: MallctlFn,
    mallocx: MallocxFn,
    dallocx: DallocxFn,
}

/// jemalloc's global counters, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JemallocStats {
    /// Bytes in live allocations (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in pages that hold live allocations (`stats.active`).
    pub active: u64,
    /// Bytes in physically resident pages jemalloc holds (`stats.resident`).
    pub resident: u64,
    /// Bytes in mapped extents (`stats.mapped`).
    pub mapped: u64,
}

impl Jemalloc {
    /// Finds jemalloc in this process.
    pub fn loaded() -> Result<Jemalloc, LabError> {
        Ok(Jemalloc {
            // SAFETY: the symbol is jemalloc's `mallctl`, whose C signature is MallctlFn.
            mallctl: unsafe {
                std::mem::transmute::<NonNull<c_void>, MallctlFn>(symbol(c"mallctl", "mallctl")?)
            },
            // SAFETY: the symbol is jemalloc's `mallocx`, whose C signature is MallocxFn.
            mallocx: unsafe {
                std::mem::transmute::<NonNull<c_void>, MallocxFn>(symbol(c"mallocx", "mallocx")?)
            },
            // SAFETY: the symbol is jemalloc's `dallocx`, whose C signature is DallocxFn.
            dallocx: unsafe {
                std::mem::transmute::<NonNull<c_void>, DallocxFn>(symbol(c"dallocx", "dallocx")?)
            },
        })
    }

    /// Reads a `size_t` (or `ssize_t`) control such as `stats.allocated`.
    pub fn read_usize(&self, name: &str) -> Result<usize, LabError> {
        let cname = control_name(name)?;
        let mut value: usize = 0;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: oldp points to a usize and oldlenp to its size, as mallctl requires for
        // size_t controls; newp is null (read only). `mallctl` is valid (type invariant).
        let rc = unsafe {
            (self.mallctl)(cname.as_ptr(), (&raw mut value).cast(), &mut len, std::ptr::null_mut(), 0)
        };
        check(name, rc)?;
        Ok(value)
    }

    /// Reads an `unsigned` control such as `opt.narenas`.
    pub fn read_u32(&self, name: &str) -> Result<u32, LabError> {
        let cname = control_name(name)?;
        let mut value: u32 = 0;
        let mut len = std::mem::size_of::<u32>();
        // SAFETY: oldp points to a u32 and oldlenp to its size, as mallctl requires for
        // unsigned controls; newp is null (read only).
        let rc = unsafe {
            (self.mallctl)(cname.as_ptr(), (&raw mut value).cast(), &mut len, std::ptr::null_mut(), 0)
        };
        check(name, rc)?;
        Ok(value)
    }

    /// Reads a `bool` control such as `opt.prof`.
    pub fn read_bool(&self, name: &str) -> Result<bool, LabError> {
        let cname = control_name(name)?;
        let mut value: u8 = 0;
        let mut len = std::mem::size_of::<u8>();
        // SAFETY: oldp points to one byte and oldlenp to its size, as mallctl requires for
        // C `bool` controls (one byte on every jemalloc platform); newp is null.
        let rc = unsafe {
            (self.mallctl)(cname.as_ptr(), (&raw mut value).cast(), &mut len, std::ptr::null_mut(), 0)
        };
        check(name, rc)?;
        Ok(value != 0)
    }

    /// Advances the statistics epoch and reads allocated, active, resident and mapped.
    pub fn stats(&self) -> Result<JemallocStats, LabError> {
        let mut epoch: u64 = 1;
        // SAFETY: `epoch` takes a uint64_t as its new value; we pass one and its size.
        let rc = unsafe {
            (self.mallctl)(
                c"epoch".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut epoch).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        check("epoch", rc)?;
        Ok(JemallocStats {
            allocated: self.read_usize("stats.allocated")? as u64,
            active: self.read_usize("stats.active")? as u64,
            resident: self.read_usize("stats.resident")? as u64,
            mapped: self.read_usize("stats.mapped")? as u64,
        })
    }

    /// Creates a new arena and returns its index (`arenas.create`).
    pub fn create_arena(&self) -> Result<u32, LabError> {
        let mut arena: u32 = 0;
        let mut len = std::mem::size_of::<u32>();
        // SAFETY: `arenas.create` writes an unsigned into oldp; we pass a u32 and its size.
        let rc = unsafe {
            (self.mallctl)(
                c"arenas.create".as_ptr(),
                (&raw mut arena).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        check("arenas.create", rc)?;
        Ok(arena)
    }

    /// Writes a heap profile to `path` (`prof.dump`); needs `prof:true` in `MALLOC_CONF`.
    pub fn dump_profile(&self, path: &std::path::Path) -> Result<(), LabError> {
        let cpath =
            CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| LabError::InvalidArgument {
                flag: "--out",
                reason: format!("{} contains a NUL byte", path.display()),
            })?;
        let mut name_ptr: *const c_char = cpath.as_ptr();
        // SAFETY: `prof.dump` takes a `const char *` as its new value; we pass a pointer to
        // one and its size. The string outlives the call.
        let rc = unsafe {
            (self.mallctl)(
                c"prof.dump".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut name_ptr).cast(),
                std::mem::size_of::<*const c_char>(),
            )
        };
        check("prof.dump", rc)
    }

    /// `mallocx(size, flags)`: `None` when jemalloc is out of memory.
    pub fn mallocx(&self, size: usize, flags: c_int) -> Option<NonNull<u8>> {
        // SAFETY: mallocx needs a nonzero size, which `max(1)` guarantees, and valid flags
        // (any arena index jemalloc rejects makes it return null); `mallocx` is valid
        // (type invariant).
        NonNull::new(unsafe { (self.mallocx)(size.max(1), flags) }.cast())
    }

    /// Frees memory from [`Jemalloc::mallocx`].
    ///
    /// # Safety
    /// `ptr` must come from `mallocx` of this jemalloc and not have been freed.
    pub unsafe fn dallocx(&self, ptr: NonNull<u8>, flags: c_int) {
        // SAFETY: the caller guarantees `ptr` is a live jemalloc allocation.
        unsafe { (self.dallocx)(ptr.as_ptr().cast(), flags) }
    }
}

fn symbol(name: &std::ffi::CStr, display: &'static str) -> Result<NonNull<c_void>, LabError> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads the linker's tables.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    NonNull::new(address).ok_or(LabError::JemallocNotLoaded { symbol: display })
}

fn control_name(name: &str) -> Result<CString, LabError> {
    CString::new(name).map_err(|_| LabError::Mallctl { name: name.to_owned(), errno: libc::EINVAL })
}

fn check(name: &str, rc: c_int) -> Result<(), LabError> {
    if rc == 0 { Ok(()) } else { Err(LabError::Mallctl { name: name.to_owned(), errno: rc }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_is_reported_missing_without_a_preload() {
        let err = Jemalloc::loaded().err().unwrap();
        assert!(matches!(err, LabError::JemallocNotLoaded { symbol: "mallctl" }));
    }

    #[test]
    fn mallocx_flags_match_jemalloc_h() {
        assert_eq!(mallocx_arena(0), 1 << 20);
        assert_eq!(mallocx_arena(7), 8 << 20);
        assert_eq!(MALLOCX_TCACHE_NONE, 256);
    }
}
