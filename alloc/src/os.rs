//! The operating-system layer: the only module that calls `mmap`, `mprotect`, `madvise`
//! and `munmap` (through `rustix`).
//!
//! Everything above it speaks in *reserve* (claim address space, no memory),
//! *commit* (make a range usable), *decommit* (give the physical pages back while keeping
//! the addresses), *purge lazily* (let the kernel take them back when it needs to) and
//! *protect* (turn a page into a guard page). Keeping these verbs
//! in one place is what makes the chunk source and the allocators above it testable and
//! portable, as mimalloc's `os.c` does.
//!
//! Linux semantics worth knowing:
//! * A reservation is `PROT_NONE` + `MAP_NORESERVE`: it costs address space, not memory,
//!   and does not count against overcommit accounting. Touching it faults.
//! * Commit is `mprotect(PROT_READ | PROT_WRITE)`. The kernel still backs a page only when
//!   it is first touched, so committed-but-untouched memory is not yet resident.
//! * Decommit is `madvise(MADV_DONTNEED)`: the pages leave the process's RSS at once and
//!   read back as zeros. The range stays readable and writable, so a decommitted chunk can be
//!   reused without another `mprotect` (and without splitting the mapping).

use core::ffi::c_void;
use core::ptr::NonNull;
use std::sync::OnceLock;

use rustix::mm::{self, Advice, MapFlags, MprotectFlags, ProtFlags};

/// An error from the operating system, with the call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{call}({len} bytes) failed: {source}")]
pub struct OsError {
    /// The system call that failed.
    pub call: &'static str,
    /// The length it was asked for.
    pub len: usize,
    /// The error the kernel returned.
    #[source]
    pub source: std::io::Error,
}

fn os_error(call: &'static str, len: usize, err: rustix::io::Errno) -> OsError {
    OsError { call, len, source: err.into() }
}

/// The size of a virtual memory page (4096 on x86-64 Linux).
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(rustix::param::page_size)
}

/// Reserves `len` bytes of address space with no access and no backing memory.
///
/// `len` must be a multiple of the page size. The returned range faults on access until
/// [`commit`] makes (part of) it usable. Release it with [`release`].
pub fn reserve(len: usize) -> Result<NonNull<u8>, OsError> {
    // SAFETY: an anonymous mapping at an address of the kernel's choosing aliases nothing.
    let ptr = unsafe {
        mm::mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(|e| os_error("mmap", len, e))?;
    NonNull::new(ptr.cast()).ok_or_else(|| os_error("mmap", len, rustix::io::Errno::NOMEM))
}

/// Reserves `len` bytes of address space (as [`reserve`]) starting at a multiple of `align`,
/// a power of two.
///
/// The kernel aligns a mapping to a page, or to 2 MiB when its length is a multiple of
/// 2 MiB (transparent huge pages), and valgrind to a page only: so this reserves
/// `len + align - page` bytes and unmaps the unaligned head and the tail. If unmapping
/// either fails, that part stays reserved (address space, no memory) and unused.
///
/// An `align` that is not a power of two is refused (`EINVAL`): the head and tail to unmap
/// would not be whole pages.
pub fn reserve_aligned(len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
    if !align.is_power_of_two() {
        return Err(os_error("mmap", len, rustix::io::Errno::INVAL));
    }
    let page = page_size();
    if align <= page {
        return reserve(len);
    }
    let padded =
        len.checked_add(align - page).ok_or_else(|| os_error("mmap", len, rustix::io::Errno::NOMEM))?;
    let base = reserve(padded)?;
    let head = base.as_ptr().addr().next_multiple_of(align) - base.as_ptr().addr();
    let tail = padded - head - len;
    // SAFETY: head and tail are page-aligned ends of the mapping just made, which nobody
    // uses; the aligned middle stays mapped.
    unsafe {
        if head > 0 {
            let _ = release(base, head);
        }
        if tail > 0 {
            let _ = release(base.add(head + len), tail);
        }
        Ok(base.add(head))
    }
}

/// Makes `[ptr, ptr + len)` readable and writable.
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`] and be page aligned.
pub unsafe fn commit(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller guarantees the range is a page-aligned part of our own mapping.
    unsafe { mm::mprotect(ptr.as_ptr().cast::<c_void>(), len, MprotectFlags::READ | MprotectFlags::WRITE) }
        .map_err(|e| os_error("mprotect", len, e))
}

/// Returns the physical pages behind `[ptr, ptr + len)` to the kernel. The range stays
/// mapped and accessible; it reads back as zeros.
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`], be page aligned, and hold
/// nothing anyone still needs.
pub unsafe fn decommit(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller guarantees the range is ours and its contents are dead.
    unsafe { mm::madvise(ptr.as_ptr().cast::<c_void>(), len, Advice::LinuxDontNeed) }
        .map_err(|e| os_error("madvise", len, e))
}

/// Tells the kernel it may take the physical pages behind `[ptr, ptr + len)` whenever it
/// needs memory (`madvise(MADV_FREE)`, Linux 4.5 and later). Until it does, the pages keep
/// their contents and stay resident; a write to a page cancels the advice for that page.
/// Cheaper than [`decommit`] (no page is freed now), and the range's contents afterwards
/// are either the old bytes or zeros, page by page.
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`], be page aligned, and hold
/// nothing anyone still needs.
pub unsafe fn purge_lazily(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller guarantees the range is ours and its contents are dead.
    unsafe { mm::madvise(ptr.as_ptr().cast::<c_void>(), len, Advice::LinuxFree) }
        .map_err(|e| os_error("madvise", len, e))
}

/// Makes `[ptr, ptr + len)` inaccessible: any access raises `SIGSEGV` (a guard page).
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`], be page aligned, and hold
/// nothing anyone still uses.
pub unsafe fn protect(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe { mm::mprotect(ptr.as_ptr().cast::<c_void>(), len, MprotectFlags::empty()) }
        .map_err(|e| os_error("mprotect", len, e))
}

/// Unmaps a reservation, or a page-aligned part of one.
///
/// # Safety
/// `[ptr, ptr + len)` must be page aligned and lie inside reservations made by [`reserve`]
/// or [`reserve_aligned`], and nothing may use it afterwards.
pub unsafe fn release(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller guarantees the mapping is ours and dead.
    unsafe { mm::munmap(ptr.as_ptr().cast::<c_void>(), len) }.map_err(|e| os_error("munmap", len, e))
}

/// The resident set size of this process in bytes, read from `/proc/self/statm`.
///
/// Used by tests and stats to show that decommit really returns memory.
pub fn resident_bytes() -> std::io::Result<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let resident_pages: usize =
        statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc/self/statm")
        })?;
    Ok(resident_pages * page_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_commit_decommit_release_round_trip() {
        let len = 16 * page_size();
        let base = reserve(len).unwrap();
        // SAFETY: the range is our fresh reservation.
        unsafe { commit(base, len).unwrap() };
        // SAFETY: committed and ours.
        unsafe { base.as_ptr().write_bytes(0xAB, len) };
        // SAFETY: ours; contents are no longer needed.
        unsafe { decommit(base, len).unwrap() };
        // SAFETY: still committed; decommitted memory reads as zero.
        let first = unsafe { base.as_ptr().read() };
        assert_eq!(first, 0);
        // SAFETY: exactly the reservation.
        unsafe { release(base, len).unwrap() };
    }

    #[test]
    fn a_lazily_purged_range_stays_usable() {
        let len = 4 * page_size();
        let base = reserve(len).unwrap();
        // SAFETY: the range is our fresh reservation; after the purge every page holds either
        // its old byte or zero, and a write makes it ours again.
        unsafe {
            commit(base, len).unwrap();
            base.as_ptr().write_bytes(7, len);
            purge_lazily(base, len).unwrap();
            let first = base.as_ptr().read();
            assert!(first == 7 || first == 0, "old contents or zeros, read {first}");
            base.as_ptr().write(9);
            assert_eq!(base.as_ptr().read(), 9);
            release(base, len).unwrap();
        }
    }

    #[test]
    fn aligned_reservations_start_at_a_multiple_of_the_alignment() {
        for align in [page_size(), 64 << 10, 1 << 20, 32 << 20] {
            // An odd number of pages: the kernel itself aligns such a mapping to a page only.
            let len = 17 * page_size();
            let base = reserve_aligned(len, align).unwrap();
            assert_eq!(base.as_ptr().addr() % align, 0, "aligned to {align}");
            // SAFETY: the range is our fresh reservation, committed then released whole.
            unsafe {
                commit(base, len).unwrap();
                base.as_ptr().add(len - 1).write(1);
                release(base, len).unwrap();
            }
        }
    }

    #[test]
    fn an_alignment_that_is_not_a_power_of_two_is_refused() {
        for align in [0, 3 * page_size(), (64 << 10) + page_size()] {
            let error = reserve_aligned(16 * page_size(), align).unwrap_err();
            assert_eq!(error.source.raw_os_error(), Some(rustix::io::Errno::INVAL.raw_os_error()), "{align}");
        }
    }

    #[test]
    fn resident_bytes_reads_a_plausible_value() {
        let rss = resident_bytes().unwrap();
        assert!(rss > page_size());
    }
}
