//! The allocator's entry points, shared by the C exports (`c_api`) and the Rust
//! face ([`crate::AllocKitMalloc`]): size to class, small/medium blocks from the thread's
//! heap, large blocks from [`crate::large`], and free/realloc/usable-size dispatched on the
//! header a pointer's address leads to.
//!
//! **What it cannot do.** Report why an allocation failed beyond `ENOMEM`.
//!
//! **Complexity.** O(1) on the fast paths (see [`crate::heap`]).
//!
//! **Debug support.** With `guard`, every pointer given to free or realloc is checked first
//! ([`crate::guard`]).

use crate::heap;
use crate::large;
use crate::segment::{KIND_LARGE, MEDIUM_MAX, Segment, header_of};
use crate::sys::set_errno;
use crate::thread;
use allockit::sizeclass::{class_of_size, class_size};

/// The smallest block: 8 bytes, or 16 with guards (the freed marker needs a second word).
const MIN_BLOCK: usize = if crate::guard::ENABLED { 16 } else { 8 };

/// The largest alignment a page class serves; larger ones take the large path.
const MAX_PAGE_ALIGN: usize = 4096;

/// The largest malloc size served inline; bigger ones go through [`alloc_sized`].
const FAST_MAX: usize = 1024;

/// The class of a C `malloc(size)`: 16-byte aligned (glibc's guarantee, which compilers
/// assume), except blocks of at most 8 bytes, which cannot hold an object needing more.
const fn c_class_of(size: usize) -> usize {
    if size <= MIN_BLOCK { class_of_size(MIN_BLOCK) } else { class_of_size((size + 15) & !15) }
}

/// [`c_class_of`] for every size up to [`FAST_MAX`], by `(size + 7) / 8`: each index covers
/// eight sizes `(8(i − 1), 8i]`, which never straddle a multiple of 16, so they share a class.
/// One load instead of the leading-zero arithmetic on the fast path (mimalloc's
/// `pages_free_direct` serves the same purpose).
static C_CLASSES: [u8; FAST_MAX / 8 + 1] = {
    let mut table = [0u8; FAST_MAX / 8 + 1];
    let mut index = 0;
    while index < table.len() {
        table[index] = c_class_of(index * 8) as u8;
        index += 1;
    }
    table
};

#[inline(always)]
fn c_class(size: usize) -> usize {
    match C_CLASSES.get(size.wrapping_add(7) / 8) {
        Some(&class) => usize::from(class),
        None => c_class_of(size),
    }
}

/// The page class serving `size` bytes aligned to `align` (a power of two), or `None` for
/// a large block. Rounding the size up to the alignment finds a class whose blocks are so
/// aligned (allockit's table: every multiple of a class spacing is a class).
#[inline]
fn class_for(size: usize, align: usize) -> Option<usize> {
    if align > MAX_PAGE_ALIGN {
        return None;
    }
    let rounded = size.max(MIN_BLOCK).checked_next_multiple_of(align)?;
    (rounded <= MEDIUM_MAX).then(|| class_of_size(rounded))
}

/// `malloc`: the fast path inline, everything else out of line.
#[inline(always)]
pub(crate) fn malloc(size: usize) -> *mut u8 {
    let heap = thread::current();
    if !heap.is_null() && size <= FAST_MAX {
        // SAFETY: the calling thread's own heap; c_class of a size <= FAST_MAX is a page class.
        let block = unsafe { heap::alloc_class(heap, c_class(size)) };
        if !block.is_null() {
            return block;
        }
    }
    malloc_slow(size)
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut u8 {
    let align = if size <= MIN_BLOCK { MIN_BLOCK } else { 16 };
    alloc_sized(size, align, false)
}

/// A block of `size` bytes aligned to `align` (a power of two), zeroed if asked; null with
/// `errno = ENOMEM` when memory is exhausted.
pub(crate) fn alloc_sized(size: usize, align: usize, zero: bool) -> *mut u8 {
    let block = match class_for(size, align) {
        Some(class) => {
            let heap = thread::heap();
            if heap.is_null() {
                core::ptr::null_mut()
            } else {
                // SAFETY: the calling thread's own heap and a page class.
                let block = unsafe { heap::alloc_class(heap, class) };
                if zero && !block.is_null() {
                    // SAFETY: the block holds at least `size` bytes.
                    unsafe { block.write_bytes(0, size) };
                }
                block
            }
        }
        None => {
            // Large blocks do not need a heap, but the process start-up (options, fork
            // handlers) happens with the first heap.
            let _ = thread::heap();
            let mut zeroed = false;
            let block = large::alloc(size, align, &mut zeroed);
            if zero && !zeroed && !block.is_null() {
                // SAFETY: the block holds at least `size` bytes.
                unsafe { block.write_bytes(0, size) };
            }
            block
        }
    };
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block
}

/// `free`.
///
/// # Safety
/// `block` is null or a live block from this allocator.
#[inline(always)]
pub(crate) unsafe fn free(block: *mut u8) {
    if block.is_null() {
        return;
    }
    let header = header_of(block);
    guard_check(block, header, true);
    // SAFETY: a live block's header is mapped; its first byte is its kind.
    unsafe {
        if *header == KIND_LARGE {
            large::free(header);
            return;
        }
        let segment = header.cast::<Segment>();
        let page = Segment::page_of(segment, block);
        let heap = thread::current();
        let owner = Segment::owner(segment).cast::<heap::Heap>();
        if owner == heap && !heap.is_null() {
            heap::free_local(heap, page, block);
        } else {
            heap::count_remote_free(heap, usize::from((*page).class));
            heap::free_remote(owner, page, block);
        }
    }
}

/// `malloc_usable_size`: the bytes the block really holds.
///
/// # Safety
/// `block` is null or a live block from this allocator.
pub(crate) unsafe fn usable_size(block: *mut u8) -> usize {
    if block.is_null() {
        return 0;
    }
    let header = header_of(block);
    guard_check(block, header, false);
    // SAFETY: a live block's header is mapped.
    unsafe {
        if *header == KIND_LARGE {
            large::usable_size(header)
        } else {
            (*Segment::page_of(header.cast(), block)).block_size
        }
    }
}

/// `realloc` for any alignment: in place when the block already fits (and is not more than
/// twice too big), else a new block, a copy and a free. `size` 0 is the caller's business.
///
/// # Safety
/// `block` is a live block from this allocator, aligned to `align`.
pub(crate) unsafe fn realloc(block: *mut u8, size: usize, align: usize) -> *mut u8 {
    let header = header_of(block);
    guard_check(block, header, false);
    // SAFETY: a live block's header is mapped.
    let old = unsafe {
        if *header == KIND_LARGE {
            if size > MEDIUM_MAX && large::resize_in_place(header, size) {
                return block;
            }
            large::usable_size(header)
        } else {
            let old = (*Segment::page_of(header.cast(), block)).block_size;
            if size <= old && (size >= old / 2 || old <= class_size(0) * 2) {
                return block;
            }
            old
        }
    };
    let fresh = alloc_sized(size, align, false);
    if !fresh.is_null() {
        // SAFETY: both blocks hold at least min(old, size) bytes and are distinct.
        unsafe {
            core::ptr::copy_nonoverlapping(block, fresh, old.min(size));
            free(block);
        }
    }
    fresh
}

/// The `guard` feature's checks of a pointer given to free (`mark`: mark it freed),
/// realloc or `malloc_usable_size`: its header is registered, it starts a live block.
#[cfg(feature = "guard")]
fn guard_check(block: *mut u8, header: *mut u8, mark: bool) {
    use crate::segment::KIND_LARGE_FREED;
    use crate::sys::fatal;

    crate::guard::require_registered(block, header);
    // SAFETY: the header is registered, so it is a live header of ours.
    unsafe {
        if *header == KIND_LARGE_FREED {
            fatal("free(): double free", block.addr());
        }
        if *header == KIND_LARGE {
            let large = &*header.cast::<large::Large>();
            if large.map_base.wrapping_add(large.offset) != block {
                fatal("free(): pointer is not the start of a large block", block.addr());
            }
            return;
        }
        let segment = header.cast::<Segment>();
        let page = Segment::page_of(segment, block);
        if !(*page).in_use || block < (*page).start {
            fatal("free(): pointer is not in a page in use", block.addr());
        }
        let offset = block.addr() - (*page).start.addr();
        if !offset.is_multiple_of((*page).block_size)
            || offset / (*page).block_size >= (*page).capacity as usize
        {
            fatal("free(): pointer is not the start of a block", block.addr());
        }
        crate::guard::check_marker(block, mark);
    }
}

#[cfg(not(feature = "guard"))]
#[inline(always)]
fn guard_check(_block: *mut u8, _header: *mut u8, _mark: bool) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_class_table_agrees_with_the_arithmetic() {
        for size in 0..=FAST_MAX {
            assert_eq!(c_class(size), c_class_of(size), "size {size}");
            let block = class_size(c_class(size));
            assert!(block >= size.max(1));
            assert!(size <= 8 || block.is_multiple_of(16), "size {size}: block {block} is 16-byte aligned");
        }
    }
}
