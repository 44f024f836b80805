//! The shadow model the fuzz targets share: structured sizes and alignments read from the
//! fuzzer's bytes, a byte pattern that proves a block's contents survived, and the set of
//! live extents that proves no two blocks overlap.
//!
//! Each target (`fuzz_targets/*.rs`) drives one allocator with a random operation sequence
//! and checks it against this model after every operation; allockit is built with its
//! `guard` feature (canaries, poisoning, guard pages, double-free bits) and, under
//! `cargo fuzz`, with AddressSanitizer and the allocators' manual poisoning (`asan`), so a
//! corruption is caught where it happens rather than when it is finally read.
//!
//! What it cannot see: a write into a block that is later overwritten by the same pattern,
//! and memory the allocator hands out twice when both blocks are freed before either is
//! checked (the extents would have caught the overlap at the second allocation).
//!
//! Costs: an insert or remove in [`Extents`] is O(log n); a pattern fill or check is O(size).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod heap;

use std::collections::BTreeMap;

use arbitrary::Arbitrary;

/// A request size with a skewed distribution: mostly small, often a few KiB, sometimes
/// large enough for a dedicated span or the large-object path.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Size(u32);

impl Size {
    /// The size in bytes: the top two bits choose the band.
    pub fn bytes(self) -> usize {
        let raw = self.0 as usize;
        match raw >> 30 {
            0 | 1 => raw & 0xFF,
            2 => raw & 0x3FFF,
            _ => raw & 0x3_FFFF,
        }
    }
}

/// An alignment: a power of two up to `1 << max_shift`, mostly small.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Align(u8);

impl Align {
    /// The alignment in bytes.
    pub fn bytes(self, max_shift: u32) -> usize {
        let shift = if self.0 < 192 { u32::from(self.0 % 4) } else { u32::from(self.0) % (max_shift + 1) };
        1 << shift.min(max_shift)
    }
}

/// The byte at `index` of a block filled with `seed`: position dependent, so a block copied
/// from the wrong offset or swapped with another does not pass.
#[inline]
pub fn pattern(seed: u8, index: usize) -> u8 {
    seed.wrapping_add((index % 251) as u8)
}

/// Fills `len` bytes at `ptr` with the pattern of `seed`.
///
/// # Safety
/// `[ptr, ptr + len)` must be writable memory the caller owns.
pub unsafe fn fill(ptr: *mut u8, len: usize, seed: u8) {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = pattern(seed, index);
    }
}

/// Panics unless the `len` bytes at `ptr` still hold the pattern of `seed`.
///
/// # Safety
/// `[ptr, ptr + len)` must be readable memory the caller owns.
pub unsafe fn assert_holds(ptr: *const u8, len: usize, seed: u8, what: &str) {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    if let Some(at) = bytes.iter().enumerate().position(|(index, &byte)| byte != pattern(seed, index)) {
        panic!("{what} at {ptr:p} ({len} bytes) lost its contents at offset {at}");
    }
}

/// Panics unless `addr` is a multiple of `align`.
pub fn assert_aligned(addr: usize, align: usize, what: &str) {
    assert!(addr.is_multiple_of(align), "{what} at {addr:#x} is not aligned to {align}");
}

/// The live extents `[start, start + len)`, by start address: inserting one that overlaps
/// another panics. Empty extents are not recorded (a zero-size block may share its address).
#[derive(Debug, Default)]
pub struct Extents {
    by_start: BTreeMap<usize, usize>,
}

impl Extents {
    /// Records a live extent; panics if it overlaps one already recorded.
    pub fn insert(&mut self, start: usize, len: usize) {
        if len == 0 {
            return;
        }
        if let Some((&before, &before_len)) = self.by_start.range(..=start).next_back() {
            assert!(
                before + before_len <= start,
                "block [{start:#x}, +{len}) overlaps live block [{before:#x}, +{before_len})"
            );
        }
        if let Some((&after, &after_len)) = self.by_start.range(start..).next() {
            assert!(
                start + len <= after,
                "block [{start:#x}, +{len}) overlaps live block [{after:#x}, +{after_len})"
            );
        }
        self.by_start.insert(start, len);
    }

    /// Forgets a live extent recorded with [`Extents::insert`].
    pub fn remove(&mut self, start: usize, len: usize) {
        if len != 0 {
            assert_eq!(self.by_start.remove(&start), Some(len), "the model lost the extent at {start:#x}");
        }
    }

    /// Forgets every extent.
    pub fn clear(&mut self) {
        self.by_start.clear();
    }

    /// Live extents.
    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    /// Whether no extent is live.
    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }
}

/// The index `raw` picks among `len` items, if there are any.
pub fn pick(raw: u16, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(raw) % len)
}

/// A chunk source of its own for one fuzz input, small enough that exhaustion happens
/// (and must be an error): one region of `region_mib` MiB (1 to 16) of 64 KiB chunks.
pub fn private_source(region_mib: u8) -> std::sync::Arc<allockit::ChunkSource> {
    let region_size = (usize::from(region_mib % 16) + 1) << 20;
    allockit::ChunkSource::new(allockit::ChunkConfig {
        chunk_size: 64 * 1024,
        region_size,
        initial_regions: 1,
        max_regions: 1,
        retain_idle_bytes: 512 * 1024,
        commit_step: 256 * 1024,
    })
    .expect("a valid chunk source configuration")
}
