//! Regions reserved up front for the cache arena: jemalloc extent hooks
//! (`arena.<i>.extent_hooks`) that carve the cache arena's extents out of address space
//! allockit reserved itself.
//!
//! jemalloc asks an arena's *extent hooks* for every run of pages (an extent) the arena
//! needs, its own metadata included; by default they `mmap` anywhere. [`CacheRegions`]
//! replaces them for the cache arena, so every byte of the long-lived cache lives in a few
//! large regions ([`allockit::os::reserve_aligned`]: `PROT_NONE`, no memory) that a reader
//! can point at, and the arena's committed memory is a number this module counts.
//!
//! | hook | what it does here |
//! |---|---|
//! | `alloc` | bump-carves `size` bytes at a multiple of `alignment` from the first region with room, or exactly at `new_addr` when that is where a region's carving stopped (else fails); when no region has room, reserves another (up to [`MAX_REGIONS`]). Commits (`mprotect` read/write) only when jemalloc asks, and always reports zeroed memory: a carved range was never handed out before. |
//! | `dalloc` | refuses (returns true): jemalloc keeps the extent as *retained* and reuses it, so region memory never goes back to the carver |
//! | `destroy` | nothing: the addresses stay reserved in their region |
//! | `commit` | `mprotect(PROT_READ \| PROT_WRITE)`; the pages are zero (never touched, or dropped by `decommit`) |
//! | `decommit` | `mprotect(PROT_NONE)` then `madvise(MADV_DONTNEED)`: the pages leave RSS and fault if touched before the next commit |
//! | `purge_lazy` / `purge_forced` | `madvise(MADV_FREE)` / `madvise(MADV_DONTNEED)` |
//! | `split` / `merge` | allowed (false) only for extents inside one region: two regions may happen to be adjacent, but an extent never spans two |
//!
//! Every hook refuses a range that is not inside one of its regions.
//!
//! **What a hook may do.** jemalloc calls the hooks with its own locks held, on whatever
//! thread is allocating or freeing on the cache arena. So the hooks never allocate (the
//! global allocator is jemalloc itself, behind a counting wrapper), never panic (they are
//! `extern "C"`: a panic would abort), and take one lock of their own, a futex-based
//! `std::sync::Mutex` around the carving cursors, under which they only do arithmetic and
//! system calls. The region table is fixed-size and published with atomics, so finding the
//! region of an address takes no lock.
//!
//! **Costs.** A carved range is never returned to the region: the cache arena's address
//! space only grows, by jemalloc's own geometric steps (2 MiB, 2.5 MiB, 3 MiB, …), and what
//! jemalloc frees it keeps as retained extents and reuses. Alignment padding between two
//! carved ranges stays reserved and unused (address space, never memory). The regions are
//! never released, since jemalloc may hold extents in them until the process ends: a
//! process that starts several servers (the tests do) keeps every server's regions, and
//! `process_virtual_memory_bytes` counts each reservation whole.

use core::ffi::{c_uint, c_void};
use core::fmt;
use core::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use allockit::os;
use tikv_jemalloc_sys::extent_hooks_t;

use crate::error::Error;

/// The most regions one [`CacheRegions`] reserves (the first one up front, the rest when an
/// extent does not fit the ones before). Beyond, the `alloc` hook fails and jemalloc reports
/// the cache arena out of memory.
pub const MAX_REGIONS: usize = 64;

/// jemalloc's huge page: it asks for its metadata blocks aligned to it, so regions start on
/// one, and no region is smaller.
pub const MIN_REGION_BYTES: usize = 2 << 20;

/// One reserved region, published once: `base` is written before `count` covers the slot.
#[derive(Debug)]
struct RegionSlot {
    base: AtomicPtr<u8>,
    len: AtomicUsize,
}

/// The regions of one cache arena and the extent hooks that carve them. Made once and never
/// freed ([`CacheRegions::reserve`] returns a `&'static`): jemalloc keeps a pointer to the
/// hooks for the arena's whole life.
///
/// Invariants: slots `[0, count)` hold reservations made by [`os::reserve_aligned`], never
/// released; `carved[i]` bytes from the base of region `i` have been handed to jemalloc
/// (alignment padding included) and are never handed out again; `committed` is the bytes of
/// carved ranges currently readable and writable.
#[repr(C)]
pub struct CacheRegions {
    /// First field: the pointer jemalloc hands each hook is a pointer to the whole struct.
    hooks: extent_hooks_t,
    region_bytes: usize,
    slots: [RegionSlot; MAX_REGIONS],
    count: AtomicUsize,
    carved: Mutex<[usize; MAX_REGIONS]>,
    reserved: AtomicUsize,
    committed: AtomicUsize,
}

/// What the regions hold now, in bytes (`allockit_cache_region_bytes{state}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheRegionStats {
    /// Address space reserved by every region.
    pub reserved: usize,
    /// Bytes of it committed (readable and writable); their pages are resident once touched.
    pub committed: usize,
    /// Regions reserved.
    pub regions: usize,
}

impl fmt::Debug for CacheRegions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheRegions")
            .field("region_bytes", &self.region_bytes)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl CacheRegions {
    /// Reserves the first region of `region_bytes` (rounded up to a multiple of 2 MiB, at
    /// least [`MIN_REGION_BYTES`]) and returns the hooks' state, which lives as long as the
    /// process.
    pub fn reserve(region_bytes: usize) -> Result<&'static CacheRegions, Error> {
        let region_bytes = region_bytes.max(MIN_REGION_BYTES).next_multiple_of(MIN_REGION_BYTES);
        let base = os::reserve_aligned(region_bytes, MIN_REGION_BYTES)
            .map_err(|error| Error::cache_region(region_bytes, error.source))?;
        let regions: &'static CacheRegions = Box::leak(Box::new(CacheRegions {
            hooks: extent_hooks_t {
                alloc: Some(hook_alloc),
                dalloc: Some(hook_dalloc),
                destroy: Some(hook_destroy),
                commit: Some(hook_commit),
                decommit: Some(hook_decommit),
                purge_lazy: Some(hook_purge_lazy),
                purge_forced: Some(hook_purge_forced),
                split: Some(hook_split),
                merge: Some(hook_merge),
            },
            region_bytes,
            slots: std::array::from_fn(|_| RegionSlot {
                base: AtomicPtr::new(ptr::null_mut()),
                len: AtomicUsize::new(0),
            }),
            count: AtomicUsize::new(0),
            carved: Mutex::new([0; MAX_REGIONS]),
            reserved: AtomicUsize::new(0),
            committed: AtomicUsize::new(0),
        }));
        regions.publish(0, base, region_bytes);
        Ok(regions)
    }

    /// The pointer `arenas.create` takes: jemalloc passes it back to every hook.
    pub fn extent_hooks(&'static self) -> *mut extent_hooks_t {
        ptr::from_ref(self).cast_mut().cast()
    }

    /// Reserved and committed bytes, and the number of regions.
    pub fn stats(&self) -> CacheRegionStats {
        CacheRegionStats {
            reserved: self.reserved.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            regions: self.count.load(Ordering::Acquire),
        }
    }

    /// Whether `ptr` lies inside one of the regions.
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.region_of(ptr.addr(), 1).is_some()
    }

    /// The size of a region reserved when an extent does not fit the others.
    pub fn region_bytes(&self) -> usize {
        self.region_bytes
    }

    fn region(&self, index: usize) -> (NonNull<u8>, usize) {
        let slot = &self.slots[index];
        let base = NonNull::new(slot.base.load(Ordering::Relaxed)).unwrap_or(NonNull::dangling());
        (base, slot.len.load(Ordering::Relaxed))
    }

    /// The region holding all of `[addr, addr + len)`, if one does.
    fn region_of(&self, addr: usize, len: usize) -> Option<usize> {
        let end = addr.checked_add(len)?;
        (0..self.count.load(Ordering::Acquire)).find(|&index| {
            let (base, region_len) = self.region(index);
            let base = base.as_ptr().addr();
            addr >= base && end <= base + region_len
        })
    }

    /// Fills slot `index` (under the carving lock, or before anyone else can see `self`) and
    /// makes it visible to lock-free readers.
    fn publish(&self, index: usize, base: NonNull<u8>, len: usize) {
        let slot = &self.slots[index];
        slot.base.store(base.as_ptr(), Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        self.reserved.fetch_add(len, Ordering::Relaxed);
        self.count.store(index + 1, Ordering::Release);
    }

    /// The `alloc` hook's work: carves `size` bytes at a multiple of `alignment` (exactly at
    /// `new_addr` if given), committing them if `commit`. `None` when the request is
    /// malformed, `new_addr` is not where a region's carving stopped, no region can be
    /// reserved, or the commit fails; nothing is carved then.
    fn carve(
        &self,
        new_addr: Option<usize>,
        size: usize,
        alignment: usize,
        commit: bool,
    ) -> Option<NonNull<u8>> {
        let page = os::page_size();
        if size == 0 || !size.is_multiple_of(page) || !alignment.is_power_of_two() {
            return None;
        }
        let alignment = alignment.max(page);
        if new_addr.is_some_and(|addr| !addr.is_multiple_of(alignment)) {
            return None;
        }
        let mut carved = self.carved.lock().unwrap_or_else(PoisonError::into_inner);
        let count = self.count.load(Ordering::Relaxed);
        let fit = (0..count).find_map(|index| {
            let (base, len) = self.region(index);
            let cursor = base.as_ptr().addr().checked_add(carved[index])?;
            let start = match new_addr {
                Some(addr) => (addr == cursor).then_some(addr)?,
                None => cursor.checked_next_multiple_of(alignment)?,
            };
            let offset = start - base.as_ptr().addr();
            (offset.checked_add(size)? <= len).then_some((index, offset))
        });
        let (index, offset) = match (fit, new_addr) {
            (Some(fit), _) => fit,
            (None, Some(_)) => return None,
            (None, None) => {
                if count == MAX_REGIONS {
                    return None;
                }
                let len = self.region_bytes.max(size.checked_next_multiple_of(MIN_REGION_BYTES)?);
                let base = os::reserve_aligned(len, alignment.max(MIN_REGION_BYTES)).ok()?;
                carved[count] = 0;
                self.publish(count, base, len);
                (count, 0)
            }
        };
        let (base, _) = self.region(index);
        // SAFETY: offset + size <= the region's length (checked above, or the region was
        // reserved at least `size` long), so the result stays inside the reservation.
        let start = unsafe { base.add(offset) };
        if commit {
            // SAFETY: [start, start + size) lies inside our reservation, is page aligned
            // (start is a multiple of an alignment of at least a page, size a multiple of
            // the page), and was never handed out: nobody uses it.
            unsafe { os::commit(start, size) }.ok()?;
            self.committed.fetch_add(size, Ordering::Relaxed);
        }
        carved[index] = offset + size;
        Some(start)
    }

    /// `[addr + offset, addr + offset + length)` as a page-aligned range inside one region,
    /// as the commit, decommit and purge hooks receive it.
    fn range(&self, addr: *mut c_void, offset: usize, length: usize) -> Option<NonNull<u8>> {
        let page = os::page_size();
        let start = addr.cast::<u8>().wrapping_add(offset);
        let aligned = start.addr().is_multiple_of(page) && length.is_multiple_of(page) && length > 0;
        (aligned && self.region_of(start.addr(), length).is_some()).then_some(NonNull::new(start)?)
    }

    fn uncount_committed(&self, bytes: usize) {
        // An update that saturates at zero: the counter never wraps, whatever jemalloc asks.
        let _ = self
            .committed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| Some(now.saturating_sub(bytes)));
    }
}

/// The state behind the hooks pointer jemalloc passes.
///
/// # Safety
/// `hooks` must be a pointer returned by [`CacheRegions::extent_hooks`].
unsafe fn regions<'a>(hooks: *mut extent_hooks_t) -> &'a CacheRegions {
    // SAFETY: the pointer was made from a `&'static CacheRegions` (repr(C), the hooks
    // first), and jemalloc only reads through it.
    unsafe { &*hooks.cast_const().cast::<CacheRegions>() }
}

/// `extent_alloc_t`: see the module docs. On failure returns null and leaves `*zero` and
/// `*commit` as they were.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`]; `zero` and `commit` are valid.
unsafe extern "C" fn hook_alloc(
    hooks: *mut extent_hooks_t,
    new_addr: *mut c_void,
    size: usize,
    alignment: usize,
    zero: *mut bool,
    commit: *mut bool,
    _arena: c_uint,
) -> *mut c_void {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    let regions = unsafe { regions(hooks) };
    // SAFETY: jemalloc passes valid pointers to two bools it owns for the call.
    let (zero, commit) = unsafe { (&mut *zero, &mut *commit) };
    let new_addr = (!new_addr.is_null()).then(|| new_addr.addr());
    match regions.carve(new_addr, size, alignment, *commit) {
        Some(start) => {
            // Never handed out before: untouched pages of an anonymous mapping read zero.
            *zero = true;
            start.as_ptr().cast()
        }
        None => ptr::null_mut(),
    }
}

/// `extent_dalloc_t`: opts out (true), so jemalloc retains the extent for reuse.
///
/// # Safety
/// Any arguments: nothing is read.
unsafe extern "C" fn hook_dalloc(
    _hooks: *mut extent_hooks_t,
    _addr: *mut c_void,
    _size: usize,
    _committed: bool,
    _arena: c_uint,
) -> bool {
    true
}

/// `extent_destroy_t`: region memory stays reserved; nothing to do.
///
/// # Safety
/// Any arguments: nothing is read.
unsafe extern "C" fn hook_destroy(
    _hooks: *mut extent_hooks_t,
    _addr: *mut c_void,
    _size: usize,
    _committed: bool,
    _arena: c_uint,
) {
}

/// `extent_commit_t`: makes the pages readable and writable; false on success.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe extern "C" fn hook_commit(
    hooks: *mut extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _arena: c_uint,
) -> bool {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    let regions = unsafe { regions(hooks) };
    let Some(start) = regions.range(addr, offset, length) else { return true };
    // SAFETY: a page-aligned range inside one of our regions, of an extent jemalloc holds
    // decommitted (or never committed): no one reads or writes it.
    if unsafe { os::commit(start, length) }.is_err() {
        return true;
    }
    regions.committed.fetch_add(length, Ordering::Relaxed);
    false
}

/// `extent_decommit_t`: makes the pages inaccessible, then drops them (they read zero after
/// the next commit); false on success. If dropping fails the pages are made accessible
/// again and the hook reports failure, so a committed range is always zero-filled.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe extern "C" fn hook_decommit(
    hooks: *mut extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _arena: c_uint,
) -> bool {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    let regions = unsafe { regions(hooks) };
    let Some(start) = regions.range(addr, offset, length) else { return true };
    // SAFETY: a page-aligned range inside one of our regions, of an extent jemalloc no
    // longer uses (it asked for the decommit): its contents are dead.
    unsafe {
        if os::protect(start, length).is_err() {
            return true;
        }
        if os::decommit(start, length).is_err() {
            let _ = os::commit(start, length);
            return true;
        }
    }
    regions.uncount_committed(length);
    false
}

/// `extent_purge_t` (lazy): `MADV_FREE`; false on success.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe extern "C" fn hook_purge_lazy(
    hooks: *mut extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _arena: c_uint,
) -> bool {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    unsafe { purge(hooks, addr, offset, length, os::purge_lazily) }
}

/// `extent_purge_t` (forced): `MADV_DONTNEED`, the pages read zero afterwards; false on
/// success.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe extern "C" fn hook_purge_forced(
    hooks: *mut extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _arena: c_uint,
) -> bool {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    unsafe { purge(hooks, addr, offset, length, os::decommit) }
}

/// What both purge hooks do: `how` on the range if it lies in one of our regions; false on
/// success (jemalloc's convention), true for a range that is not ours or a failed call.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe fn purge(
    hooks: *mut extent_hooks_t,
    addr: *mut c_void,
    offset: usize,
    length: usize,
    how: unsafe fn(NonNull<u8>, usize) -> Result<(), os::OsError>,
) -> bool {
    // SAFETY: as the caller guarantees.
    let regions = unsafe { regions(hooks) };
    let Some(start) = regions.range(addr, offset, length) else { return true };
    // SAFETY: inside one of our regions, page aligned; jemalloc purges only pages it holds
    // free, whose contents are dead.
    unsafe { how(start, length) }.is_err()
}

/// `extent_split_t`: allowed (false) when the extent lies inside one region.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe extern "C" fn hook_split(
    hooks: *mut extent_hooks_t,
    addr: *mut c_void,
    size: usize,
    _size_a: usize,
    _size_b: usize,
    _committed: bool,
    _arena: c_uint,
) -> bool {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    let regions = unsafe { regions(hooks) };
    regions.region_of(addr.addr(), size).is_none()
}

/// `extent_merge_t`: allowed (false) when both extents lie inside the same region.
///
/// # Safety
/// `hooks` comes from [`CacheRegions::extent_hooks`].
unsafe extern "C" fn hook_merge(
    hooks: *mut extent_hooks_t,
    addr_a: *mut c_void,
    size_a: usize,
    addr_b: *mut c_void,
    size_b: usize,
    _committed: bool,
    _arena: c_uint,
) -> bool {
    // SAFETY: jemalloc passes back the hooks pointer it was given.
    let regions = unsafe { regions(hooks) };
    let a = regions.region_of(addr_a.addr(), size_a);
    a.is_none() || a != regions.region_of(addr_b.addr(), size_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// Calls the `alloc` hook as jemalloc does; returns the pointer and the flags after.
    fn alloc(
        regions: &'static CacheRegions,
        new_addr: *mut u8,
        size: usize,
        alignment: usize,
        zero: bool,
        commit: bool,
    ) -> (*mut u8, bool, bool) {
        let (mut zero, mut commit) = (zero, commit);
        // SAFETY: the hooks pointer of `regions`, and two live bools.
        let ptr = unsafe {
            hook_alloc(regions.extent_hooks(), new_addr.cast(), size, alignment, &mut zero, &mut commit, 0)
        };
        (ptr.cast(), zero, commit)
    }

    fn commit(regions: &'static CacheRegions, addr: *mut u8, length: usize) -> bool {
        // SAFETY: the hooks pointer of `regions`.
        unsafe { hook_commit(regions.extent_hooks(), addr.cast(), length, 0, length, 0) }
    }

    fn decommit(regions: &'static CacheRegions, addr: *mut u8, length: usize) -> bool {
        // SAFETY: the hooks pointer of `regions`.
        unsafe { hook_decommit(regions.extent_hooks(), addr.cast(), length, 0, length, 0) }
    }

    #[test]
    fn alloc_honours_the_alignment_and_reports_zeroed_memory() {
        let regions = CacheRegions::reserve(16 * MIB).unwrap();
        let page = os::page_size();
        for alignment in [page, 64 << 10, 2 * MIB, page] {
            let (ptr, zero, committed) = alloc(regions, ptr::null_mut(), 3 * page, alignment, false, true);
            assert!(!ptr.is_null(), "aligned to {alignment}");
            assert_eq!(ptr.addr() % alignment, 0, "aligned to {alignment}");
            assert!(zero && committed);
            assert!(regions.contains(ptr) && regions.contains(ptr.wrapping_add(3 * page - 1)));
            // SAFETY: committed, 3 pages, ours.
            let bytes = unsafe { core::slice::from_raw_parts_mut(ptr, 3 * page) };
            assert!(bytes.iter().all(|b| *b == 0));
            bytes.fill(0xA5);
        }
        assert_eq!(regions.stats().committed, 4 * 3 * page);
        assert_eq!(regions.stats().regions, 1);
    }

    #[test]
    fn a_malformed_request_fails_and_leaves_the_flags_alone() {
        let regions = CacheRegions::reserve(4 * MIB).unwrap();
        let page = os::page_size();
        for (size, alignment) in [(0, page), (page + 1, page), (page, 3 * page)] {
            let (ptr, zero, committed) = alloc(regions, ptr::null_mut(), size, alignment, false, true);
            assert!(ptr.is_null(), "size {size}, alignment {alignment}");
            assert!(!zero && committed, "flags untouched on failure");
        }
        assert_eq!(regions.stats().committed, 0);
    }

    #[test]
    fn alloc_commits_only_when_asked_and_commit_makes_the_range_usable() {
        let regions = CacheRegions::reserve(4 * MIB).unwrap();
        let page = os::page_size();
        let (ptr, zero, committed) = alloc(regions, ptr::null_mut(), 4 * page, page, false, false);
        assert!(!ptr.is_null() && zero);
        assert!(!committed, "reserve only: jemalloc commits when it needs the pages");
        assert_eq!(regions.stats().committed, 0);
        assert!(!commit(regions, ptr, 4 * page), "commit succeeds");
        assert_eq!(regions.stats().committed, 4 * page);
        // SAFETY: committed just now, 4 pages, ours.
        unsafe {
            assert_eq!(ptr.add(4 * page - 1).read(), 0);
            ptr.write_bytes(0x5A, 4 * page);
        }
        assert!(!decommit(regions, ptr, 4 * page), "decommit succeeds");
        assert_eq!(regions.stats().committed, 0);
        assert!(!commit(regions, ptr, 4 * page));
        // SAFETY: committed again; decommitted pages come back zero-filled.
        assert_eq!(unsafe { ptr.add(page).read() }, 0);
    }

    #[test]
    fn new_addr_is_honoured_where_carving_stopped_and_refused_elsewhere() {
        let regions = CacheRegions::reserve(4 * MIB).unwrap();
        let page = os::page_size();
        let (first, _, _) = alloc(regions, ptr::null_mut(), 2 * page, page, false, false);
        let next = first.wrapping_add(2 * page);
        let (ptr, zero, committed) = alloc(regions, next, page, page, true, true);
        assert_eq!(ptr, next, "the range right after the last carve is free");
        assert!(zero && committed);
        for taken in [first, next, next.wrapping_add(2 * page)] {
            let (ptr, zero, committed) = alloc(regions, taken, page, page, false, false);
            assert!(ptr.is_null(), "{taken:p} is carved already or not where carving stopped");
            assert!(!zero && !committed, "flags untouched on failure");
        }
        let misaligned = next.wrapping_add(page);
        assert!(alloc(regions, misaligned, page, 2 * page, false, false).0.is_null());
    }

    #[test]
    fn an_exhausted_region_is_followed_by_a_new_one_and_extents_never_span_two() {
        let regions = CacheRegions::reserve(2 * MIB).unwrap();
        let (a, _, _) = alloc(regions, ptr::null_mut(), 2 * MIB, MIN_REGION_BYTES, false, false);
        let (b, _, _) = alloc(regions, ptr::null_mut(), 3 * MIB, MIN_REGION_BYTES, false, true);
        assert!(!a.is_null() && !b.is_null());
        let stats = regions.stats();
        assert_eq!(stats.regions, 2);
        assert_eq!(stats.reserved, 2 * MIB + 4 * MIB, "a region big enough for the extent");
        assert_eq!(stats.committed, 3 * MIB);
        let hooks = regions.extent_hooks();
        let half = MIB;
        // SAFETY: the hooks pointer of `regions`; split and merge only compare addresses.
        unsafe {
            assert!(!hook_split(hooks, a.cast(), 2 * MIB, half, half, false, 0), "split inside a region");
            assert!(!hook_merge(hooks, a.cast(), half, a.add(half).cast(), half, false, 0));
            assert!(hook_merge(hooks, a.cast(), 2 * MIB, b.cast(), 3 * MIB, false, 0), "two regions");
            assert!(hook_split(hooks, a.cast(), 8 * MIB, 2 * MIB, 6 * MIB, false, 0), "beyond a region");
        }
    }

    #[test]
    fn hooks_refuse_ranges_outside_their_regions() {
        let regions = CacheRegions::reserve(2 * MIB).unwrap();
        let page = os::page_size();
        let foreign = os::reserve(page).unwrap().as_ptr();
        let hooks = regions.extent_hooks();
        assert!(commit(regions, foreign, page));
        assert!(decommit(regions, foreign, page));
        // SAFETY: the hooks pointer of `regions`; the range is refused before any call.
        unsafe {
            assert!(hook_purge_lazy(hooks, foreign.cast(), page, 0, page, 0));
            assert!(hook_purge_forced(hooks, foreign.cast(), page, 0, page, 0));
            assert!(hook_split(hooks, foreign.cast(), page, page / 2, page / 2, false, 0));
        }
        assert_eq!(regions.stats().committed, 0);
    }

    #[test]
    fn dalloc_opts_out_and_purges_keep_the_range_usable() {
        let regions = CacheRegions::reserve(2 * MIB).unwrap();
        let page = os::page_size();
        let (ptr, _, _) = alloc(regions, ptr::null_mut(), 2 * page, page, false, true);
        let hooks = regions.extent_hooks();
        // SAFETY: the hooks pointer of `regions`; the range is ours and committed, and its
        // contents are dead when purged.
        unsafe {
            assert!(hook_dalloc(hooks, ptr.cast(), 2 * page, true, 0), "jemalloc retains the extent");
            ptr.write_bytes(7, 2 * page);
            assert!(!hook_purge_lazy(hooks, ptr.cast(), 2 * page, 0, page, 0));
            assert!(!hook_purge_forced(hooks, ptr.cast(), 2 * page, page, page, 0));
            assert_eq!(ptr.add(page).read(), 0, "a forced purge reads back zero");
            ptr.add(page).write(1);
        }
        assert_eq!(regions.stats().committed, 2 * page, "purging keeps the pages committed");
    }
}
