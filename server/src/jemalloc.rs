//! jemalloc: global statistics, a dedicated arena for long-lived objects, heap profiling.
//!
//! * [`Stats::read`] advances jemalloc's statistics epoch and reads allocated, active,
//!   resident, mapped, retained and metadata bytes (what `/metrics` exports).
//! * [`CacheArena`] is a jemalloc arena created with `arenas.create`; the server gives it
//!   extent hooks ([`CacheArena::create_on`]) so that its pages come from regions allockit
//!   reserved up front ([`crate::cache_region`]). Allocations go through
//!   `mallocx(size, MALLOCX_ARENA(i) | MALLOCX_TCACHE_NONE)`: they never share pages with
//!   request or general-heap memory, and bypass the thread caches (which would otherwise
//!   hold freed cache objects in per-thread bins of the default arenas). It implements
//!   `allocator_api2::alloc::Allocator`, so `Box`, `Vec` and hashbrown tables can live there.
//! * Heap profiling: the binary starts jemalloc with `prof:true,prof_active:false`
//!   (sampling compiled in, off until activated); [`set_profiling`] turns sampling on and
//!   [`dump_profile`] writes a profile that `jeprof` reads.

use std::alloc::Layout;
use std::ffi::{CString, c_int, c_uint};
use std::path::Path;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};
use tikv_jemalloc_ctl::{epoch, raw, stats};
use tikv_jemalloc_sys as sys;

use crate::cache_region::CacheRegions;
use crate::error::{Error, ErrorKind};

/// jemalloc's start-up options for this process: heap profiling compiled in and inactive,
/// one sample per 512 KiB allocated (`lg_prof_sample:19`) once activated.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 46] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

fn ctl_error(what: impl Into<String>) -> impl FnOnce(tikv_jemalloc_ctl::Error) -> Error {
    let what = what.into();
    move |code| Error::jemalloc(what, code)
}

/// Process-wide jemalloc statistics, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes allocated by the application.
    pub allocated: usize,
    /// Bytes in active pages (allocated plus fragmentation inside them).
    pub active: usize,
    /// Bytes in physically resident data pages mapped by the allocator.
    pub resident: usize,
    /// Bytes in active extents mapped by the allocator.
    pub mapped: usize,
    /// Bytes retained: virtual memory kept mapped but returned to the OS.
    pub retained: usize,
    /// Bytes of allocator metadata.
    pub metadata: usize,
}

impl Stats {
    /// Advances the statistics epoch and reads the totals.
    pub fn read() -> Result<Self, Error> {
        epoch::advance().map_err(ctl_error("epoch"))?;
        Ok(Self {
            allocated: stats::allocated::read().map_err(ctl_error("stats.allocated"))?,
            active: stats::active::read().map_err(ctl_error("stats.active"))?,
            resident: stats::resident::read().map_err(ctl_error("stats.resident"))?,
            mapped: stats::mapped::read().map_err(ctl_error("stats.mapped"))?,
            retained: stats::retained::read().map_err(ctl_error("stats.retained"))?,
            metadata: stats::metadata::read().map_err(ctl_error("stats.metadata"))?,
        })
    }
}

/// Statistics of one jemalloc arena (read after [`Stats::read`] advanced the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Bytes allocated from the arena (small and large).
    pub allocated: usize,
    /// Resident bytes of the arena.
    pub resident: usize,
    /// Dirty bytes: pages freed, not yet returned to the OS (`pdirty` times the page size).
    pub dirty_bytes: usize,
}

fn read_usize(name: &str) -> Result<usize, Error> {
    let cname = CString::new(name).expect("mallctl names have no NUL");
    // SAFETY: every name read here is a size_t statistic.
    unsafe { raw::read::<usize>(cname.as_bytes_with_nul()) }.map_err(ctl_error(name))
}

impl ArenaStats {
    /// Reads the statistics of arena `index`.
    pub fn read(index: u32) -> Result<Self, Error> {
        let prefix = format!("stats.arenas.{index}");
        Ok(Self {
            allocated: read_usize(&format!("{prefix}.small.allocated"))?
                + read_usize(&format!("{prefix}.large.allocated"))?,
            resident: read_usize(&format!("{prefix}.resident"))?,
            dirty_bytes: read_usize(&format!("{prefix}.pdirty"))? * read_usize("arenas.page")?,
        })
    }
}

/// A dedicated jemalloc arena for long-lived objects. Cheap to copy: it is an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheArena {
    index: u32,
    flags: c_int,
}

impl CacheArena {
    /// Creates a new arena (`arenas.create`) with jemalloc's default extent hooks: its
    /// pages are `mmap`ed wherever the kernel places them.
    pub fn create() -> Result<Self, Error> {
        // SAFETY: `arenas.create` returns the new arena's index as an unsigned.
        let index = unsafe { raw::read::<u32>(b"arenas.create\0") }.map_err(ctl_error("arenas.create"))?;
        Ok(Self::with_index(index))
    }

    /// Creates a new arena whose extents (its metadata included) all come from `regions`:
    /// `arenas.create` given a pointer to [`CacheRegions`]' extent hooks.
    pub fn create_on(regions: &'static CacheRegions) -> Result<Self, Error> {
        let mut index: c_uint = 0;
        let mut index_len = size_of::<c_uint>();
        let mut hooks = regions.extent_hooks();
        // SAFETY: `arenas.create` writes the new arena's index (an unsigned) into oldp and
        // reads an `extent_hooks_t *` from newp; both buffers have the sizes passed. The
        // hooks live as long as the process (`&'static`), as jemalloc requires.
        let code = unsafe {
            sys::mallctl(
                c"arenas.create".as_ptr(),
                (&raw mut index).cast(),
                &mut index_len,
                (&raw mut hooks).cast(),
                size_of::<*mut sys::extent_hooks_t>(),
            )
        };
        if code != 0 {
            return Err(Error::new(ErrorKind::Jemalloc(format!(
                "arenas.create with extent hooks (error code {code})"
            ))));
        }
        Ok(Self::with_index(index))
    }

    fn with_index(index: u32) -> Self {
        Self { index, flags: sys::MALLOCX_ARENA(index as usize) | sys::MALLOCX_TCACHE_NONE }
    }

    /// The arena's index (for `stats.arenas.<i>.*`).
    pub fn index(&self) -> u32 {
        self.index
    }

    fn flags(&self, layout: Layout) -> c_int {
        self.flags | sys::MALLOCX_ALIGN(layout.align())
    }
}

// SAFETY: mallocx/sdallocx on one arena: blocks are valid until deallocated, sized and
// aligned as asked (MALLOCX_ALIGN), and freed with the same size and flags. Zero-size
// requests never reach jemalloc (mallocx requires a non-zero size).
unsafe impl Allocator for CacheArena {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            // SAFETY: an aligned dangling pointer is valid for zero-size blocks.
            let dangling =
                unsafe { NonNull::new_unchecked(core::ptr::without_provenance_mut(layout.align())) };
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        }
        // SAFETY: non-zero size, valid flags.
        let ptr = unsafe { sys::mallocx(layout.size(), self.flags(layout)) };
        NonNull::new(ptr.cast::<u8>())
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: allocated by `allocate` above with this size and these flags.
            unsafe { sys::sdallocx(ptr.as_ptr().cast(), layout.size(), self.flags(layout)) };
        }
    }
}

/// Turns heap-profile sampling on or off (`prof.active`).
pub fn set_profiling(active: bool) -> Result<(), Error> {
    // SAFETY: `prof.active` is a bool.
    unsafe { raw::write(b"prof.active\0", active) }.map_err(ctl_error("prof.active"))
}

/// Whether heap-profile sampling is on.
pub fn profiling_active() -> Result<bool, Error> {
    // SAFETY: `prof.active` is a bool.
    unsafe { raw::read::<bool>(b"prof.active\0") }.map_err(ctl_error("prof.active"))
}

/// Writes a heap profile (jeprof format) to `path` (`prof.dump`).
pub fn dump_profile(path: &Path) -> Result<(), Error> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::new(ErrorKind::ProfilePath(path.to_path_buf())))?;
    // SAFETY: `prof.dump` takes a NUL-terminated path, which outlives the call.
    unsafe { raw::write(b"prof.dump\0", cpath.as_ptr()) }.map_err(ctl_error("prof.dump"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_consistent() {
        let stats = Stats::read().unwrap();
        assert!(stats.allocated > 0);
        assert!(stats.active >= stats.allocated);
        assert!(stats.resident >= stats.active / 2);
        assert!(stats.mapped >= stats.active);
    }

    #[test]
    fn cache_arena_allocations_show_in_its_own_stats() {
        let arena = CacheArena::create().unwrap();
        let before = {
            Stats::read().unwrap();
            ArenaStats::read(arena.index()).unwrap()
        };
        let blocks: Vec<_> =
            (0..1000).map(|i| allocator_api2::boxed::Box::new_in([i as u8; 200], arena)).collect();
        Stats::read().unwrap();
        let during = ArenaStats::read(arena.index()).unwrap();
        assert!(during.allocated >= before.allocated + 1000 * 200);
        assert!(blocks.iter().enumerate().all(|(i, b)| b[199] == i as u8));
        drop(blocks);
        Stats::read().unwrap();
        let after = ArenaStats::read(arena.index()).unwrap();
        assert!(after.allocated < during.allocated);
    }

    /// `stats.arenas.<i>.<name>` after advancing the epoch.
    fn arena_stat(index: u32, name: &str) -> usize {
        Stats::read().unwrap();
        read_usize(&format!("stats.arenas.{index}.{name}")).unwrap()
    }

    #[test]
    fn an_arena_on_cache_regions_takes_every_extent_from_them() {
        let regions = CacheRegions::reserve(16 << 20).unwrap();
        let arena = CacheArena::create_on(regions).unwrap();
        let at_start = regions.stats();
        assert!(at_start.committed > 0, "the arena's own metadata lives in the region");
        let layouts = [(24, 8), (200, 8), (4096, 4096), (100_000, 64), (1 << 20, 1 << 16)];
        let blocks: Vec<_> = (0..200)
            .map(|i| {
                let (size, align) = layouts[i % layouts.len()];
                let layout = Layout::from_size_align(size, align).unwrap();
                let block = arena.allocate(layout).unwrap().cast::<u8>();
                // SAFETY: `size` bytes just allocated.
                unsafe { block.as_ptr().write_bytes(i as u8, size) };
                (block, layout)
            })
            .collect();
        for (i, (block, layout)) in blocks.iter().enumerate() {
            assert!(regions.contains(block.as_ptr()), "block {i} outside the regions");
            assert!(regions.contains(block.as_ptr().wrapping_add(layout.size() - 1)));
            assert_eq!(block.as_ptr().addr() % layout.align(), 0);
            // SAFETY: allocated and filled above.
            assert_eq!(unsafe { block.as_ptr().add(layout.size() - 1).read() }, i as u8);
        }
        let during = regions.stats();
        assert!(during.committed >= 40 << 20, "large blocks are committed: {during:?}");
        assert!(during.regions > 1, "a full region is followed by another: {during:?}");
        assert!(during.committed <= during.reserved);
        assert!(arena_stat(arena.index(), "mapped") <= during.reserved);
        for (block, layout) in blocks {
            // SAFETY: allocated above with this layout.
            unsafe { arena.deallocate(block, layout) };
        }
        // Purging every free page: jemalloc cannot give extents back (dalloc opts out), so it
        // decommits them through the hook, and they stay in the region as retained memory.
        let purge = CString::new(format!("arena.{}.purge", arena.index())).unwrap();
        // SAFETY: `arena.<i>.purge` reads and writes nothing.
        let code = unsafe {
            sys::mallctl(
                purge.as_ptr(),
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(code, 0);
        let after = regions.stats();
        assert!(after.committed < during.committed / 10, "decommitted on purge: {after:?}");
        assert_eq!(after.reserved, during.reserved, "regions are never released");
        let again = allocator_api2::boxed::Box::new_in([3u8; 5000], arena);
        assert!(regions.contains(again.as_ptr()) && again[4999] == 3);
    }

    #[test]
    fn cache_arena_honours_large_alignment() {
        let arena = CacheArena::create().unwrap();
        let layout = Layout::from_size_align(100, 4096).unwrap();
        let block = arena.allocate(layout).unwrap();
        assert_eq!(block.cast::<u8>().as_ptr().addr() % 4096, 0);
        // SAFETY: allocated above with this layout.
        unsafe { arena.deallocate(block.cast(), layout) };
    }
}
