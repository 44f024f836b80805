//! Large blocks: requests above 128 KiB (or aligned above 4 KiB) each get their own
//! mapping, with a small cache of freed mappings in front of the OS.
//!
//! **Layout.** A large block's mapping is reserved at a 4 MiB boundary and starts with a
//! header ([`Large`]) whose first byte is `KIND_LARGE`, where a segment's says small or
//! medium; the block starts one OS page (or the requested alignment) in. So
//! [`crate::segment::header_of`] finds both kinds of header by masking the address. A block
//! aligned to 4 MiB or more is itself segment-aligned, and its header sits in the page just
//! below it (pages of segments never start a block at a segment-aligned address).
//!
//! **Growth in place.** The whole reservation (a multiple of 4 MiB) is readable and
//! writable from the start; only touched pages are resident. A realloc that grows within
//! the reservation just records the new size, so a buffer grown by doubling copies only
//! when it leaves its 4 MiB, 8 MiB, … reservation (glibc uses `mremap` for the same).
//!
//! **The cache.** Python, compilers and realloc-growth loops allocate and free blocks of
//! 100 KiB–1 MiB constantly; a system call pair per block would dominate. Up to 64 freed
//! mappings stay cached, reused by the next large request that fits (any request up to the
//! mapping's size, down to a quarter of it); after ten purge delays (100 ms by default) the
//! cached ones are decommitted (kept reserved, no longer resident); beyond `ALLOCKIT_LARGE_CACHE_MB`
//! resident bytes a freed block is decommitted at once. jemalloc keeps freed extents of
//! every size in its arenas' dirty and muzzy lists; tcmalloc's page heap keeps spans.
//!
//! **What it cannot do.** Share a mapping between blocks; so many live blocks of 129 KiB
//! each cost 4 MiB of address space each (not memory: only their pages are resident).
//!
//! **Complexity.** Allocation and free: a lock and a scan of 64 cache slots; a cache miss
//! costs four system calls (reserve aligned, commit), a free beyond the cache one (`munmap`).
//!
//! **Debug support.** With `guard`, large headers are entered in the registry like segments.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use crate::lock::SpinLock;
use crate::options::{CACHE_BYTES, PURGE_DELAY_MS};
use crate::segment::{KIND_LARGE, KIND_LARGE_FREED, SEGMENT_SIZE};
use crate::stats::GLOBAL;
use crate::sys;

/// Cached mappings at most.
const CACHE_SLOTS: usize = 64;

/// A cached large mapping stays resident this many purge delays (mimalloc's
/// `arena_purge_mult` is 10 too): reuse of a freed large block is the common case, and
/// faulting a large block's pages in again costs more than a small page's.
const LARGE_DELAY_MULTIPLIER: i64 = 10;

/// The header of a large block. Written when the block is allocated and read by whichever
/// thread frees or resizes it (which then holds the block exclusively).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Large {
    /// Always `KIND_LARGE` (the first byte of every header).
    pub(crate) kind: u8,
    /// The whole mapping.
    pub(crate) map_base: *mut u8,
    pub(crate) map_len: usize,
    /// The block: `map_base + offset`, `size` usable bytes (a multiple of the OS page).
    pub(crate) offset: usize,
    pub(crate) size: usize,
    /// Bytes of the mapping the block may have touched (its largest size so far and the
    /// header page), counted in the footprint.
    pub(crate) touched: usize,
}

/// A freed mapping kept for reuse.
#[derive(Clone, Copy, Debug)]
struct Cached {
    base: *mut u8,
    len: usize,
    freed_at: u64,
    resident: bool,
    /// Bytes counted in the footprint for it (the header page once decommitted).
    touched: usize,
}

struct Cache {
    slots: [Option<Cached>; CACHE_SLOTS],
    resident_bytes: usize,
}

// SAFETY: reached only through its lock; the mappings it names are no one else's.
unsafe impl Send for Cache {}

static CACHE: SpinLock<Cache> = SpinLock::new(Cache { slots: [None; CACHE_SLOTS], resident_bytes: 0 });

fn page() -> usize {
    allockit::os::page_size()
}

/// Allocates a large block of at least `size` bytes aligned to `align` (a power of two);
/// null when the OS refuses. Sets `*zeroed` when the memory is known to read as zeros.
pub(crate) fn alloc(size: usize, align: usize, zeroed: &mut bool) -> *mut u8 {
    let page = page();
    let Some(size) = size.checked_next_multiple_of(page) else { return ptr::null_mut() };
    let aligned_high = align >= SEGMENT_SIZE;
    let offset = if aligned_high { align } else { align.max(page) };
    let Some(need) = offset.checked_add(size) else { return ptr::null_mut() };
    let Some(map_len) = need.checked_next_multiple_of(SEGMENT_SIZE) else { return ptr::null_mut() };

    if !aligned_high && let Some(cached) = take_cached(need) {
        *zeroed = !cached.resident;
        GLOBAL.large_reused();
        GLOBAL.footprint(-(cached.touched as isize));
        // SAFETY: the mapping is ours and free; its first page is the header.
        unsafe { write_header(cached.base, cached.base, cached.len, offset, size) };
        return cached.base.wrapping_add(offset);
    }
    let Ok(mapped) = allockit::os::reserve_aligned(map_len, align.max(SEGMENT_SIZE)) else {
        return ptr::null_mut();
    };
    // SAFETY: a fresh reservation of map_len bytes.
    if unsafe { allockit::os::commit(mapped, map_len) }.is_err() {
        // SAFETY: ours, unused.
        let _ = unsafe { allockit::os::release(mapped, map_len) };
        return ptr::null_mut();
    }
    let base = mapped.as_ptr();
    *zeroed = true;
    GLOBAL.large_mapped(map_len);
    let block = base.wrapping_add(offset);
    let header = if aligned_high { block.wrapping_sub(page) } else { base };
    // SAFETY: the header page lies inside the committed mapping, below the block.
    unsafe { write_header(header, base, map_len, offset, size) };
    crate::guard::register(header);
    block
}

/// # Safety
/// `header` is the start of a committed, unused page of our own mapping at `map_base`.
unsafe fn write_header(header: *mut u8, map_base: *mut u8, map_len: usize, offset: usize, size: usize) {
    let touched = size + page();
    // SAFETY: the caller guarantees the page is ours and writable.
    unsafe {
        header.cast::<Large>().write(Large { kind: KIND_LARGE, map_base, map_len, offset, size, touched })
    };
    GLOBAL.large_live(size as isize);
    GLOBAL.footprint(touched as isize);
}

fn take_cached(need: usize) -> Option<Cached> {
    let mut cache = CACHE.lock();
    let mut best: Option<(usize, usize)> = None;
    for (index, slot) in cache.slots.iter().enumerate() {
        if let Some(entry) = slot
            && entry.len >= need
            && entry.len / 4 <= need.next_multiple_of(SEGMENT_SIZE)
            && best.is_none_or(|(_, len)| entry.len < len)
        {
            best = Some((index, entry.len));
        }
    }
    let entry = cache.slots.get_mut(best?.0)?.take()?;
    if entry.resident {
        cache.resident_bytes -= entry.len;
    }
    Some(entry)
}

/// The usable size of a large block.
///
/// # Safety
/// `header` is the header of a live large block.
pub(crate) unsafe fn usable_size(header: *mut u8) -> usize {
    // SAFETY: the caller guarantees a live header.
    unsafe { (*header.cast::<Large>()).size }
}

/// Resizes a large block in place if its reservation has room; returns whether it did.
///
/// # Safety
/// `header` is the header of the live large block `block`, held by the caller.
pub(crate) unsafe fn resize_in_place(header: *mut u8, new_size: usize) -> bool {
    // SAFETY: the caller holds the block; the header is its own.
    let large = unsafe { &mut *header.cast::<Large>() };
    let Some(new_size) = new_size.checked_next_multiple_of(page()) else { return false };
    let room = large.map_len - large.offset;
    if new_size > room || new_size < large.size / 2 {
        return false;
    }
    GLOBAL.large_live(new_size as isize - large.size as isize);
    large.size = new_size;
    if new_size + page() > large.touched {
        GLOBAL.footprint((new_size + page() - large.touched) as isize);
        large.touched = new_size + page();
    }
    true
}

/// Frees a large block: into the cache, or back to the OS.
///
/// # Safety
/// `header` is the header of a live large block, which the caller gives up.
pub(crate) unsafe fn free(header: *mut u8) {
    // SAFETY: the caller guarantees a live header.
    let Large { map_base, map_len, size, offset, touched, .. } = unsafe { header.cast::<Large>().read() };
    GLOBAL.large_live(-(size as isize));
    let aligned_high = offset >= SEGMENT_SIZE;
    let now = sys::now_ms();
    expire_cache(now);
    if !aligned_high {
        let mut cache = CACHE.lock();
        let resident = cache.resident_bytes + map_len <= CACHE_BYTES.load(Ordering::Relaxed)
            && PURGE_DELAY_MS.load(Ordering::Relaxed) != 0;
        let free_slot = cache.slots.iter().position(Option::is_none);
        if let Some(slot) = free_slot.and_then(|index| cache.slots.get_mut(index)) {
            let touched = if resident { touched } else { decommit_block(map_base, map_len, touched) };
            *slot = Some(Cached { base: map_base, len: map_len, freed_at: now, resident, touched });
            if resident {
                cache.resident_bytes += map_len;
            }
            // The header stays (registered, with the guard feature) and says "freed", so a
            // second free of the block is recognised.
            // SAFETY: the header page is ours and stays mapped while cached.
            unsafe { *header = KIND_LARGE_FREED };
            return;
        }
    }
    crate::guard::unregister(header);
    GLOBAL.large_unmapped(map_len);
    GLOBAL.footprint(-(touched as isize));
    if let Some(base) = NonNull::new(map_base) {
        // SAFETY: the whole mapping is ours and dead.
        let _ = unsafe { allockit::os::release(base, map_len) };
    }
}

/// Decommits everything of a cached mapping but its header page; returns what stays
/// counted in the footprint of the `touched` bytes it had.
fn decommit_block(base: *mut u8, len: usize, touched: usize) -> usize {
    let page = page();
    if let Some(start) = NonNull::new(base.wrapping_add(page))
        // SAFETY: a free mapping of ours; the range lies inside it.
        && unsafe { allockit::os::decommit(start, len - page) }.is_ok()
    {
        GLOBAL.purged(touched - page);
        GLOBAL.footprint(-((touched - page) as isize));
        return page;
    }
    touched
}

/// Decommits cached mappings that stayed resident longer than
/// [`LARGE_DELAY_MULTIPLIER`] purge delays.
pub(crate) fn expire_cache(now: u64) {
    let delay = PURGE_DELAY_MS.load(Ordering::Relaxed);
    if delay < 0 {
        return;
    }
    let delay = delay.saturating_mul(LARGE_DELAY_MULTIPLIER);
    let mut cache = CACHE.lock();
    if cache.resident_bytes == 0 {
        return;
    }
    let mut released = 0;
    for entry in cache.slots.iter_mut().flatten() {
        if entry.resident && entry.freed_at + delay as u64 <= now {
            entry.touched = decommit_block(entry.base, entry.len, entry.touched);
            entry.resident = false;
            released += entry.len;
        }
    }
    cache.resident_bytes -= released;
}

/// Takes (`true`) or releases the cache's lock around `fork()`.
pub(crate) fn fork_lock(take: bool) {
    if take {
        CACHE.acquire();
    } else {
        // SAFETY: taken by the fork prepare handler in this thread (or by a thread that does
        // not exist in the child); no guard is alive.
        unsafe { CACHE.force_unlock() };
    }
}
