//! Debug guards (the `guard` feature): a free of a pointer this library never returned, or
//! a second free of a block, stops the program with a message instead of corrupting a heap.
//!
//! **How.** Every segment and large-block header is entered in a registry (an open-addressing
//! hash set of header addresses in memory mapped for it, behind a lock), so `free` checks a
//! pointer's header before it reads it, then that the pointer starts a block of a page in use.
//! This module is the registry and the marker, below the segment and large layers (which
//! register their headers); the checks that read a header are the entry points' (`api`).
//! A freed block carries a marker in its second word (its address XOR a constant), which a
//! second free finds; handing the block out again clears it. Blocks are at least 16 bytes in
//! this build, so every block has a second word. Without the feature every function here is
//! empty and inlined away.
//!
//! **What it cannot do.** Catch a double free after the block was handed out again (it is a
//! live block again by then), a write after free, or a free of a pointer into the middle of
//! a large block's mapping with a valid-looking header (the block start is checked). The
//! marker could in principle match user data that happens to hold the same word.
//!
//! **Complexity.** A lock and a hash probe per free in guard builds; nothing otherwise.
//!
//! **Debug support.** This is it. glibc's equivalents are the `free(): double free detected
//! in tcache 2` and `free(): invalid pointer` checks; mimalloc's are its `MI_DEBUG` builds.

#[cfg(feature = "guard")]
mod enabled {
    use core::ptr;

    use crate::lock::SpinLock;
    use crate::sys::fatal;

    /// Registry slots (a power of two): 1M headers, 8 MiB of address space, touched lazily.
    const SLOTS: usize = 1 << 20;
    const TOMBSTONE: usize = 1;
    const MARKER: usize = 0xA110_C4EE_DFEE_D0DE;

    struct Registry {
        table: *mut usize,
        len: usize,
    }

    // SAFETY: reached only through its lock.
    unsafe impl Send for Registry {}

    static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry { table: ptr::null_mut(), len: 0 });

    fn slot_of(address: usize) -> usize {
        (address >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 20)
    }

    impl Registry {
        fn table(&mut self) -> Option<*mut usize> {
            if self.table.is_null() {
                let bytes = SLOTS * core::mem::size_of::<usize>();
                let area = allockit::os::reserve(bytes).ok()?;
                // SAFETY: a fresh reservation of `bytes`.
                unsafe { allockit::os::commit(area, bytes) }.ok()?;
                self.table = area.as_ptr().cast();
            }
            Some(self.table)
        }

        fn find(&mut self, address: usize) -> Option<usize> {
            let table = self.table()?;
            let mut slot = slot_of(address);
            for _ in 0..SLOTS {
                // SAFETY: slot < SLOTS, inside the table.
                let value = unsafe { *table.add(slot) };
                if value == address {
                    return Some(slot);
                }
                if value == 0 {
                    return None;
                }
                slot = (slot + 1) & (SLOTS - 1);
            }
            None
        }
    }

    pub(crate) fn register(header: *mut u8) {
        let mut registry = REGISTRY.lock();
        let Some(table) = registry.table() else { fatal("guard registry: no memory", header.addr()) };
        if registry.len >= SLOTS / 2 {
            fatal("guard registry full", header.addr());
        }
        let mut slot = slot_of(header.addr());
        loop {
            // SAFETY: slot < SLOTS, inside the table.
            let value = unsafe { &mut *table.add(slot) };
            if *value == 0 || *value == TOMBSTONE {
                *value = header.addr();
                registry.len += 1;
                return;
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }

    pub(crate) fn unregister(header: *mut u8) {
        let mut registry = REGISTRY.lock();
        if let (Some(slot), Some(table)) = (registry.find(header.addr()), registry.table()) {
            // SAFETY: slot < SLOTS, inside the table.
            unsafe { *table.add(slot) = TOMBSTONE };
            registry.len -= 1;
        }
    }

    /// Stops the program unless `header` is a registered segment or large-block header (so
    /// that `block`'s header may be read at all).
    pub(crate) fn require_registered(block: *mut u8, header: *mut u8) {
        if REGISTRY.lock().find(header.addr()).is_none() {
            fatal("free(): pointer was not allocated by allockit-malloc", block.addr());
        }
    }

    /// Stops the program if `block` carries the freed marker; marks it freed if `mark`.
    ///
    /// # Safety
    /// `block` is the start of a block of a page in use, at least two words long.
    pub(crate) unsafe fn check_marker(block: *mut u8, mark: bool) {
        // SAFETY: the caller guarantees the block's second word is ours to read and write.
        unsafe {
            let marker = block.cast::<usize>().add(1);
            if marker.read() == MARKER ^ block.addr() {
                fatal("free(): double free", block.addr());
            }
            if mark {
                marker.write(MARKER ^ block.addr());
            }
        }
    }

    pub(crate) fn on_alloc(block: *mut u8, block_size: usize) {
        if block_size >= 16 {
            // SAFETY: the block is live and at least two words long.
            unsafe { block.cast::<usize>().add(1).write(0) };
        }
    }

    pub(crate) fn fork_lock(take: bool) {
        if take {
            REGISTRY.acquire();
        } else {
            // SAFETY: taken by the fork prepare handler; no guard is alive.
            unsafe { REGISTRY.force_unlock() };
        }
    }
}

#[cfg(feature = "guard")]
pub(crate) use enabled::{check_marker, fork_lock, on_alloc, register, require_registered, unregister};

/// Whether this build checks frees (the `guard` feature).
pub const ENABLED: bool = cfg!(feature = "guard");

#[cfg(not(feature = "guard"))]
mod disabled {
    #[inline(always)]
    pub(crate) fn register(_header: *mut u8) {}
    #[inline(always)]
    pub(crate) fn unregister(_header: *mut u8) {}
    #[inline(always)]
    pub(crate) fn on_alloc(_block: *mut u8, _block_size: usize) {}
    #[inline(always)]
    pub(crate) fn fork_lock(_take: bool) {}
}

#[cfg(not(feature = "guard"))]
pub(crate) use disabled::{fork_lock, on_alloc, register, unregister};
