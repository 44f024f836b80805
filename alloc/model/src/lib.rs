//! # allockit-model
//!
//! The shadow models that check allockit's allocators operation by operation: one oracle,
//! used by
//!
//! * allockit's property tests, `alloc/tests/model.rs` (arena, pool) and
//!   `alloc/tests/heaps_model.rs` (free list, size classes), which generate the operations
//!   with proptest; and
//! * the libFuzzer targets in `fuzz/fuzz_targets` (`scripts/fuzz`), which read the same
//!   operations from the fuzzer's bytes through their [`Arbitrary`] implementations.
//!
//! Both used to carry their own copy of the model; with one crate the two cannot drift.
//!
//! | module | allocator | driver |
//! |---|---|---|
//! | [`heap`] | the general heaps, [`allockit::FreeList`] and [`allockit::SizeClass`] | [`heap::drive`] |
//! | [`arena`] | the chunked bump arena, [`allockit::Arena`] | [`arena::drive`] |
//! | [`pool`] | the fixed-size pool, [`allockit::RawPool`] | [`pool::drive`] |
//!
//! A driver runs a sequence of operations on the allocator and, after every one, checks it
//! against the model: every block handed out is aligned and overlaps no live block
//! ([`Extents`]), a block keeps the contents it was filled with ([`fill`], [`pattern`]), and
//! the allocator's counters agree with what the model saw. Every disagreement panics with
//! what was expected, so a proptest case fails (and shrinks) and a fuzz input crashes.
//!
//! ```
//! use allockit::{FreeList, Placement};
//! use allockit_model::heap::{HeapOp, drive};
//!
//! let mut buffer = vec![0u128; 4096];
//! // SAFETY: u128 has no invalid bit patterns; the byte view covers the same memory.
//! let bytes = unsafe {
//!     core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len() * 16)
//! };
//! let heap = FreeList::over_buffer(bytes, Placement::FirstFit);
//! drive(&heap, &[
//!     HeapOp::Alloc { size: 100, align: 16, seed: 1 },
//!     HeapOp::Alloc { size: 3000, align: 8, seed: 2 },
//!     HeapOp::Realloc { pick: 0, size: 5000 },
//!     HeapOp::Free { pick: 1 },
//! ]);
//! ```
//!
//! What the models cannot see: a write into a block that leaves the same pattern behind,
//! and memory handed out twice when both blocks die before either is checked (the extents
//! would have caught the overlap at the second allocation). The fuzz targets build allockit
//! with its `guard` feature and AddressSanitizer so that a corruption is caught where it
//! happens rather than when it is finally read.
//!
//! Costs: an insert or remove in [`Extents`] is O(log n); a pattern fill or check is O(size).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod arena;
pub mod heap;
pub mod pool;

use std::collections::BTreeMap;
use std::sync::Arc;

use allockit::{ChunkConfig, ChunkSource};
use arbitrary::{Arbitrary, Unstructured};

/// A request size read from the fuzzer's bytes, with a skewed distribution: mostly small,
/// often a few KiB, sometimes large enough for a dedicated span or the large-object path.
/// The operations store the byte count ([`Size::arbitrary_bytes`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Size(pub u32);

impl Size {
    /// The largest size: 256 KiB - 1.
    pub const MAX: usize = 0x3_FFFF;

    /// The size in bytes: the top two bits choose the band (0 to 255 for half the values,
    /// 0 to 16 KiB - 1 for a quarter, 0 to [`Size::MAX`] for the rest).
    pub fn bytes(self) -> usize {
        let raw = self.0 as usize;
        match raw >> 30 {
            0 | 1 => raw & 0xFF,
            2 => raw & 0x3FFF,
            _ => raw & Self::MAX,
        }
    }

    /// Reads a [`Size`] and returns its bytes: the `arbitrary(with = ...)` of the size
    /// fields, so the operations hold plain byte counts that proptest can generate too.
    pub fn arbitrary_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<usize> {
        Ok(Self::arbitrary(u)?.bytes())
    }
}

/// An alignment read from the fuzzer's bytes: a power of two up to `1 << max_shift`, mostly
/// at most 8.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Align(pub u8);

impl Align {
    /// The alignment in bytes.
    pub fn bytes(self, max_shift: u32) -> usize {
        let shift = if self.0 < 192 { u32::from(self.0 % 4) } else { u32::from(self.0) % (max_shift + 1) };
        1 << shift.min(max_shift)
    }

    /// Reads an [`Align`] and returns its bytes (at most `1 << MAX_SHIFT`), as
    /// [`Size::arbitrary_bytes`] does for sizes.
    pub fn arbitrary_bytes<const MAX_SHIFT: u32>(u: &mut Unstructured<'_>) -> arbitrary::Result<usize> {
        Ok(Self::arbitrary(u)?.bytes(MAX_SHIFT))
    }
}

/// How often a driver reads back the contents of blocks that no operation touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentChecks {
    /// When a block dies (freed, dropped, reset) or moves, and at the end of the run: O(size)
    /// per touched block. The fuzz targets run this way, for speed.
    #[default]
    OnTouch,
    /// Also every live block after every operation: O(live bytes) per operation. The
    /// property tests run this way: a stray write shows up at the operation that made it.
    EveryOp,
}

/// The byte at `index` of a block filled with `seed`: position dependent, so a block copied
/// from the wrong offset or swapped with another does not pass.
#[inline]
pub fn pattern(seed: u8, index: usize) -> u8 {
    seed.wrapping_add((index % PERIOD) as u8)
}

/// The pattern repeats every 251 bytes (a prime, so it does not line up with alignments).
const PERIOD: usize = 251;

/// One period of the pattern of each seed: fills and checks copy and compare whole periods
/// (`memcpy`, `memcmp`) rather than bytes, which keeps the debug-build property tests fast.
static PERIODS: [[u8; PERIOD]; 256] = {
    let mut periods = [[0; PERIOD]; 256];
    let mut seed = 0;
    while seed < 256 {
        let mut index = 0;
        while index < PERIOD {
            periods[seed][index] = (seed as u8).wrapping_add(index as u8);
            index += 1;
        }
        seed += 1;
    }
    periods
};

/// Fills `len` bytes at `ptr` with the pattern of `seed`.
///
/// # Safety
/// `[ptr, ptr + len)` must be writable memory the caller owns.
pub unsafe fn fill(ptr: *mut u8, len: usize, seed: u8) {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
    let period = &PERIODS[usize::from(seed)];
    for chunk in bytes.chunks_mut(PERIOD) {
        chunk.copy_from_slice(&period[..chunk.len()]);
    }
}

/// Panics unless the `len` bytes at `ptr` still hold the pattern of `seed`.
///
/// # Safety
/// `[ptr, ptr + len)` must be readable memory the caller owns.
pub unsafe fn assert_holds(ptr: *const u8, len: usize, seed: u8, what: &str) {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    let period = &PERIODS[usize::from(seed)];
    if let Some(first) = bytes.chunks(PERIOD).position(|chunk| *chunk != period[..chunk.len()]) {
        let chunk = bytes.chunks(PERIOD).nth(first).expect("the period that differs");
        let within = chunk.iter().zip(period).position(|(byte, expected)| byte != expected);
        let at = first * PERIOD + within.expect("a period that differs has a byte that does");
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

    /// Forgets a live extent recorded with [`Extents::insert`]; panics if there is none of
    /// that length at `start`.
    pub fn remove(&mut self, start: usize, len: usize) {
        if len != 0 {
            assert_eq!(self.by_start.remove(&start), Some(len), "the model lost the extent at {start:#x}");
        }
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
/// (and must be an error): one region of `region_mib % 16 + 1` MiB of 64 KiB chunks.
pub fn private_source(region_mib: u8) -> Arc<ChunkSource> {
    let region_size = (usize::from(region_mib % 16) + 1) << 20;
    ChunkSource::new(ChunkConfig {
        chunk_size: 64 * 1024,
        region_size,
        initial_regions: 1,
        max_regions: 1,
        retain_idle_bytes: 512 * 1024,
        commit_step: 256 * 1024,
    })
    .expect("a valid chunk source configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_their_bands() {
        assert_eq!(Size(0x1234_5678).bytes(), 0x78, "band 0: the low byte");
        assert_eq!(Size(0x8000_FFFF).bytes(), 0x3FFF, "band 2: under 16 KiB");
        assert_eq!(Size(u32::MAX).bytes(), Size::MAX, "band 3: under 256 KiB");
    }

    #[test]
    fn alignments_are_powers_of_two_up_to_the_bound() {
        for raw in 0..=u8::MAX {
            for max_shift in [0, 12, 13, 17] {
                let align = Align(raw).bytes(max_shift);
                assert!(
                    align.is_power_of_two() && align <= 1 << max_shift,
                    "{raw} under {max_shift}: {align}"
                );
                if raw < 192 {
                    assert!(align <= 8, "the common alignments are small: {raw} gave {align}");
                }
            }
        }
        assert_eq!(Align(196 + 13).bytes(13), 1 << 13, "the bound itself is reachable");
    }

    #[test]
    fn decoding_reads_the_same_bytes_as_the_wrapper_types() {
        let data = [0xC3, 0x21, 0x05, 0xFF, 201, 7];
        let mut u = Unstructured::new(&data);
        let size = Size::arbitrary_bytes(&mut u).unwrap();
        let align = Align::arbitrary_bytes::<13>(&mut u).unwrap();
        let mut again = Unstructured::new(&data);
        assert_eq!(size, Size::arbitrary(&mut again).unwrap().bytes());
        assert_eq!(align, Align::arbitrary(&mut again).unwrap().bytes(13));
        assert_eq!(u.len(), again.len(), "both consumed the same bytes");
    }

    #[test]
    fn a_filled_block_holds_its_pattern() {
        let mut block = vec![0u8; 600];
        // SAFETY: the vector's 600 bytes, owned here.
        unsafe { fill(block.as_mut_ptr(), block.len(), 9) };
        assert_eq!(block[0], 9);
        assert_ne!(block[1], block[0], "the pattern depends on the position");
        // SAFETY: as above.
        unsafe { assert_holds(block.as_ptr(), block.len(), 9, "the block") };
    }

    #[test]
    #[should_panic(expected = "lost its contents at offset 300")]
    fn a_changed_byte_is_reported_at_its_offset() {
        let mut block = vec![0u8; 600];
        // SAFETY: the vector's 600 bytes, owned here.
        unsafe { fill(block.as_mut_ptr(), block.len(), 9) };
        block[300] ^= 1;
        // SAFETY: as above.
        unsafe { assert_holds(block.as_ptr(), block.len(), 9, "the block") };
    }

    #[test]
    #[should_panic(expected = "the block is not a shifted copy")]
    fn a_block_copied_from_the_wrong_offset_does_not_pass() {
        let mut block = vec![0u8; 64];
        // SAFETY: the vector's 64 bytes, owned here.
        unsafe { fill(block.as_mut_ptr(), block.len(), 9) };
        block.rotate_left(1);
        // SAFETY: as above.
        unsafe { assert_holds(block.as_ptr(), block.len(), 9, "the block is not a shifted copy") };
    }

    #[test]
    fn extents_accept_adjacent_and_empty_blocks() {
        let mut extents = Extents::default();
        extents.insert(100, 50);
        extents.insert(150, 10);
        extents.insert(90, 10);
        extents.insert(120, 0);
        assert_eq!(extents.len(), 3, "an empty extent is not recorded");
        extents.remove(150, 10);
        extents.remove(120, 0);
        extents.insert(150, 1);
        assert_eq!(extents.len(), 3);
    }

    #[test]
    #[should_panic(expected = "overlaps live block [0x64, +50)")]
    fn an_extent_starting_inside_another_is_refused() {
        let mut extents = Extents::default();
        extents.insert(100, 50);
        extents.insert(149, 8);
    }

    #[test]
    #[should_panic(expected = "overlaps live block [0x64, +50)")]
    fn an_extent_running_into_another_is_refused() {
        let mut extents = Extents::default();
        extents.insert(100, 50);
        extents.insert(60, 41);
    }

    #[test]
    #[should_panic(expected = "the model lost the extent")]
    fn removing_an_extent_of_another_length_panics() {
        let mut extents = Extents::default();
        extents.insert(100, 50);
        extents.remove(100, 49);
    }

    #[test]
    fn pick_wraps_and_refuses_an_empty_set() {
        assert_eq!(pick(7, 0), None);
        assert_eq!(pick(7, 5), Some(2));
    }

    #[test]
    fn a_private_source_has_the_asked_region() {
        let source = private_source(15 + 16);
        assert_eq!(source.config().region_size, 16 << 20, "region_mib wraps at 16");
    }
}
