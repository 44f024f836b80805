//! Tasks 4–6: the properties the seed's self-checks ask of the arena, the pool and the free
//! list, measured through allockit's public API in the lab's own process and printed with
//! the figure each one produced, PASS or FAIL.
//!
//! * Arena (task 4): every alignment from 1 to 4096 bytes on [`Arena`] and on a
//!   [`FixedArena`] over a buffer whose start is deliberately misaligned, after requests of
//!   odd sizes that leave the cursor anywhere (misaligned results counted); exhaustion of a
//!   fixed buffer and of an arena's byte limit is an `Err` (its text, and after how many
//!   bytes), and the arena serves again after `reset`.
//! * Pool (task 5): the block size a [`RawPool`] chooses for objects of 1, 2, 4, 8, 12 and
//!   24 bytes (at least a pointer, so a free block can hold the free-list link; a multiple
//!   of the alignment); blocks handed out aligned and at least a block apart; exhaustion at
//!   the chunk cap is an `Err` after exactly `cap × blocks per chunk` blocks; a freed block
//!   is the next one handed out (LIFO).
//! * Free list (task 6): a `realloc` round trip — grow in place into a free neighbour,
//!   shrink in place, move when the neighbour is in use — with the contents compared byte
//!   for byte after each step; the split threshold, measured by allocating every request
//!   size from one free block and reading the heap's free-block count: the smallest
//!   remainder split off and the largest kept inside the block as slack; and coalescing
//!   after many mixed alloc/realloc/free cycles (every placement policy, seeded): after
//!   freeing everything one free block holds all the free bytes, and
//!   [`FreeList::check`] held all along.
//!
//! Every figure comes from the heaps' public counters ([`FreeList::free_stats`],
//! [`FreeList::usable_size`], [`RawPool::block_size`], the errors' own text); nothing is
//! computed from the design constants except the expectations the figures are checked
//! against. O(cycles × free blocks) for the coalescing run (best fit walks the whole free
//! list); well under a second at the full size.

use std::alloc::Layout;
use std::fmt::Write as _;
use std::ptr::NonNull;
use std::sync::Arc;

use allockit::arena::{Arena, ArenaError, FixedArena};
use allockit::freelist::{FreeList, FreeStats, Placement};
use allockit::pool::{PoolError, RawPool};
use allockit::source::{ChunkConfig, ChunkSource, Reservation};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::LabError;
use crate::chart::Chart;
use crate::report::{self, CsvFile, Outcome, Table};

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertiesOptions {
    /// Allocations per alignment in the arena's alignment check.
    pub allocations_per_alignment: usize,
    /// Mixed alloc/realloc/free cycles per placement policy in the coalescing check.
    pub cycles: usize,
    /// Slots of the coalescing workload: at most this many blocks live at once.
    pub live_slots: usize,
    /// Seed of the coalescing workload.
    pub seed: u64,
}

impl PropertiesOptions {
    /// The documented sizes: 1,000 allocations per alignment, 100,000 cycles.
    pub fn full() -> Self {
        PropertiesOptions { allocations_per_alignment: 1000, cycles: 100_000, live_slots: 1000, seed: 42 }
    }

    /// The test-suite sizes: 200 allocations per alignment, 20,000 cycles.
    pub fn quick() -> Self {
        PropertiesOptions { allocations_per_alignment: 200, cycles: 20_000, live_slots: 300, seed: 42 }
    }

    /// Refuses sizes that check nothing, naming the flag.
    pub fn validate(&self) -> Result<(), LabError> {
        let invalid = |flag, reason: String| Err(LabError::InvalidArgument { flag, reason });
        if self.cycles < 2 * self.live_slots {
            return invalid(
                "--cycles",
                format!("{} cycles cannot fill {} slots and empty them again", self.cycles, self.live_slots),
            );
        }
        if self.live_slots < 2 {
            return invalid("--live-slots", format!("{} is too few; need at least 2", self.live_slots));
        }
        if self.allocations_per_alignment == 0 {
            return invalid("--allocations-per-alignment", "must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// One property, checked: what was measured and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The seed task (4 arena, 5 pool, 6 free list).
    pub task: u8,
    /// The allocator checked.
    pub allocator: &'static str,
    /// The property, in a few words.
    pub property: &'static str,
    /// The figures measured.
    pub measured: String,
    /// What the property requires of them.
    pub expected: String,
    /// Whether the figures meet it.
    pub pass: bool,
}

/// Every check, in task order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesOutcome {
    /// The sizes of the run.
    pub options: PropertiesOptions,
    /// Every property checked.
    pub checks: Vec<Check>,
}

impl PropertiesOutcome {
    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.pass).collect()
    }
}

/// Runs every check.
pub fn run(options: &PropertiesOptions) -> Result<PropertiesOutcome, LabError> {
    options.validate()?;
    let source = ChunkSource::new(ChunkConfig::default())?;
    let mut checks = vec![
        arena_alignment(&source, options.allocations_per_alignment),
        fixed_arena_alignment(options.allocations_per_alignment),
        fixed_arena_exhaustion(),
        arena_limit_exhaustion(&source),
    ];
    for (size, align) in [(1, 1), (2, 2), (4, 4), (8, 8), (12, 4), (24, 8)] {
        checks.push(pool_block_size(&source, size, align)?);
    }
    checks.push(pool_exhaustion(&source)?);
    checks.push(pool_lifo_reuse(&source)?);
    checks.extend(realloc_round_trip()?);
    checks.push(split_threshold()?);
    for placement in Placement::ALL {
        checks.push(coalescing_after_cycles(options, placement)?);
    }
    Ok(PropertiesOutcome { options: *options, checks })
}

/// Power-of-two alignments up to a page.
const ALIGNMENTS: [usize; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// The request sizes the alignment checks cycle through: odd, so the cursor lands anywhere.
fn odd_size(i: usize) -> usize {
    1 + (i * 7) % 61
}

/// Allocations checked, misaligned and refused over the alignment checks.
#[derive(Debug, Default)]
struct AlignmentTally {
    checked: usize,
    misaligned: usize,
    refused: usize,
}

/// `per_alignment` rounds at one alignment: an unaligned filler of an odd size, then an
/// aligned request of another, through `alloc`; counts the aligned results in `tally`.
fn alignment_pass(
    align: usize,
    per_alignment: usize,
    tally: &mut AlignmentTally,
    mut alloc: impl FnMut(Layout) -> Option<NonNull<u8>>,
) {
    for i in 0..per_alignment {
        let filler = Layout::from_size_align(odd_size(i), 1).expect("odd sizes are small");
        let layout = Layout::from_size_align(odd_size(i + 1), align).expect("alignments are powers of two");
        match (alloc(filler), alloc(layout)) {
            (Some(_), Some(ptr)) => {
                tally.checked += 1;
                tally.misaligned += usize::from(!ptr.as_ptr().addr().is_multiple_of(align));
            }
            _ => tally.refused += 1,
        }
    }
}

fn arena_alignment(source: &Arc<ChunkSource>, per_alignment: usize) -> Check {
    let arena = Arena::with_source(Arc::clone(source));
    let mut tally = AlignmentTally::default();
    for align in ALIGNMENTS {
        alignment_pass(align, per_alignment, &mut tally, |layout| arena.alloc_layout(layout).ok());
    }
    let AlignmentTally { checked, misaligned, refused } = tally;
    Check {
        task: 4,
        allocator: "Arena",
        property: "alignment 1..4096",
        measured: format!(
            "{} alignments × {per_alignment}: {checked} allocations checked, {misaligned} misaligned, {refused} refused",
            ALIGNMENTS.len()
        ),
        expected: "0 misaligned, 0 refused".to_owned(),
        pass: misaligned == 0 && refused == 0 && checked == ALIGNMENTS.len() * per_alignment,
    }
}

fn fixed_arena_alignment(per_alignment: usize) -> Check {
    // Room for the largest alignment's requests, padding included; one byte more so that
    // the arena's buffer can start one byte past the vector's (misaligned) start.
    let mut buffer = vec![0u8; per_alignment * (2 * 64 + 4096) + 4097];
    let mut arena = FixedArena::new(&mut buffer[1..]);
    let mut tally = AlignmentTally::default();
    for align in ALIGNMENTS {
        alignment_pass(align, per_alignment, &mut tally, |layout| arena.alloc_layout(layout).ok());
        arena.reset();
    }
    let AlignmentTally { checked, misaligned, refused } = tally;
    Check {
        task: 4,
        allocator: "FixedArena",
        property: "alignment 1..4096",
        measured: format!(
            "{} alignments × {per_alignment} over a buffer starting 1 byte off: {checked} checked, {misaligned} \
             misaligned, {refused} refused",
            ALIGNMENTS.len()
        ),
        expected: "0 misaligned, 0 refused".to_owned(),
        pass: misaligned == 0 && refused == 0 && checked == ALIGNMENTS.len() * per_alignment,
    }
}

fn fixed_arena_exhaustion() -> Check {
    const CAPACITY: usize = 4096;
    const REQUEST: usize = 100;
    let mut buffer = vec![0u8; CAPACITY];
    let mut arena = FixedArena::new(&mut buffer);
    let layout = Layout::from_size_align(REQUEST, 8).expect("a small layout");
    let mut served = 0;
    let error = loop {
        match arena.alloc_layout(layout) {
            Ok(_) => served += 1,
            Err(error) => break error,
        }
        if served > CAPACITY {
            break ArenaError::SizeOverflow;
        }
    };
    let (used, capacity) = (arena.used(), arena.capacity());
    let is_exhausted = matches!(error, ArenaError::BufferExhausted { .. });
    arena.reset();
    let again = arena.alloc_layout(layout).is_ok();
    Check {
        task: 4,
        allocator: "FixedArena",
        property: "exhaustion is an Err",
        measured: format!(
            "{capacity} B buffer, {REQUEST} B requests: Err after {served} allocations, {used} B used: \"{error}\"; \
             after reset: {}",
            if again { "served" } else { "refused" }
        ),
        expected: format!("BufferExhausted with under {REQUEST} B + padding left, then served again"),
        pass: is_exhausted && served > 0 && used <= capacity && capacity - used < REQUEST + 16 && again,
    }
}

fn arena_limit_exhaustion(source: &Arc<ChunkSource>) -> Check {
    const LIMIT: usize = 256 * 1024;
    const REQUEST: usize = 1000;
    let mut arena = Arena::with_source(Arc::clone(source)).with_limit(LIMIT);
    let layout = Layout::from_size_align(REQUEST, 8).expect("a small layout");
    let mut served = 0usize;
    let error = loop {
        match arena.alloc_layout(layout) {
            Ok(_) => served += 1,
            Err(error) => break error,
        }
        if served * REQUEST > 2 * LIMIT {
            break ArenaError::SizeOverflow;
        }
    };
    let limited = matches!(error, ArenaError::LimitExceeded { .. });
    arena.reset();
    let again = arena.alloc_layout(layout).is_ok();
    Check {
        task: 4,
        allocator: "Arena",
        property: "byte limit is an Err",
        measured: format!(
            "limit {LIMIT} B, {REQUEST} B requests: Err after {served} allocations ({} B): \"{error}\"; after \
             reset: {}",
            served * REQUEST,
            if again { "served" } else { "refused" }
        ),
        expected: format!("LimitExceeded with at most {LIMIT} B allocated, then served again"),
        pass: limited && served * REQUEST <= LIMIT && served > 0 && again,
    }
}

fn pool_block_size(source: &Arc<ChunkSource>, size: usize, align: usize) -> Result<Check, LabError> {
    let layout = Layout::from_size_align(size, align).expect("a small layout");
    let pool = RawPool::new(Arc::clone(source), layout, 1).map_err(pool_error)?;
    let block = pool.block_size();
    let count = pool.blocks_per_chunk().min(1000);
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        addresses.push(pool.alloc().map_err(pool_error)?);
    }
    let misaligned = addresses.iter().filter(|p| !p.as_ptr().addr().is_multiple_of(align)).count();
    let mut sorted: Vec<usize> = addresses.iter().map(|p| p.as_ptr().addr()).collect();
    sorted.sort_unstable();
    let closest = sorted.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(block);
    for ptr in addresses {
        // SAFETY: a block of this pool, handed out above and freed once.
        unsafe { pool.dealloc(ptr) };
    }
    let pointer = size_of::<*mut u8>();
    Ok(Check {
        task: 5,
        allocator: "RawPool",
        property: "block size ≥ pointer",
        measured: format!(
            "{size} B (align {align}) → {block} B blocks; {count} handed out: {misaligned} misaligned, closest {closest} \
             B apart"
        ),
        expected: format!(
            "block ≥ {} B and a multiple of {align}; blocks ≥ 1 block apart",
            size.max(pointer)
        ),
        pass: block >= pointer
            && block >= size
            && block.is_multiple_of(align)
            && misaligned == 0
            && closest >= block,
    })
}

fn pool_error(error: PoolError) -> LabError {
    LabError::InvalidArgument { flag: "properties (pool)", reason: error.to_string() }
}

fn pool_exhaustion(source: &Arc<ChunkSource>) -> Result<Check, LabError> {
    const CAP: usize = 2;
    let pool = RawPool::new(Arc::clone(source), Layout::new::<[u64; 8]>(), CAP).map_err(pool_error)?;
    let capacity = CAP * pool.blocks_per_chunk();
    let mut live = Vec::with_capacity(capacity);
    let error = loop {
        match pool.alloc() {
            Ok(ptr) => live.push(ptr),
            Err(error) => break error,
        }
        if live.len() > 2 * capacity {
            return Err(LabError::InvalidArgument {
                flag: "properties (pool)",
                reason: format!("the pool handed out {} blocks past its cap of {capacity}", live.len()),
            });
        }
    };
    let served = live.len();
    let exhausted = matches!(error, PoolError::Exhausted { .. });
    let freed = live.pop();
    if let Some(ptr) = freed {
        // SAFETY: a block of this pool, freed once.
        unsafe { pool.dealloc(ptr) };
    }
    let again = pool.alloc().map_err(pool_error)?;
    live.push(again);
    for ptr in live {
        // SAFETY: blocks of this pool, freed once.
        unsafe { pool.dealloc(ptr) };
    }
    Ok(Check {
        task: 5,
        allocator: "RawPool",
        property: "exhaustion is an Err",
        measured: format!(
            "64 B blocks, cap {CAP} chunks of {}: Err after {served} blocks: \"{error}\"; one freed, then served",
            pool.blocks_per_chunk()
        ),
        expected: format!("Exhausted after exactly {capacity} blocks"),
        pass: exhausted && served == capacity,
    })
}

fn pool_lifo_reuse(source: &Arc<ChunkSource>) -> Result<Check, LabError> {
    let pool = RawPool::new(Arc::clone(source), Layout::new::<[u64; 8]>(), 1).map_err(pool_error)?;
    let mut blocks: Vec<NonNull<u8>> =
        (0..8).map(|_| pool.alloc()).collect::<Result<_, _>>().map_err(pool_error)?;
    let mut reused = 0;
    for slot in blocks.iter_mut().rev() {
        let freed = *slot;
        // SAFETY: a live block of this pool, freed once; the slot takes the next handout.
        unsafe { pool.dealloc(freed) };
        *slot = pool.alloc().map_err(pool_error)?;
        reused += usize::from(*slot == freed);
    }
    for ptr in blocks {
        // SAFETY: the live blocks of this pool, each freed once.
        unsafe { pool.dealloc(ptr) };
    }
    Ok(Check {
        task: 5,
        allocator: "RawPool",
        property: "freed block reused first",
        measured: format!("{reused} of 8 frees: the next allocation returned the block just freed"),
        expected: "8 of 8 (LIFO free list)".to_owned(),
        pass: reused == 8,
    })
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("sizes of the checks are small")
}

fn heap_error(cause: allockit::HeapError) -> LabError {
    LabError::HeapRefused { heap: "allockit freelist".into(), cause }
}

fn pattern(i: usize) -> u8 {
    (i * 31 + 7) as u8
}

/// Bytes of `ptr` (up to `len`) that differ from [`pattern`].
///
/// # Safety
/// `ptr` holds at least `len` initialised bytes.
unsafe fn differing(ptr: NonNull<u8>, len: usize) -> usize {
    // SAFETY: forwarded.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
    bytes.iter().enumerate().filter(|&(i, &b)| b != pattern(i)).count()
}

/// Grows in place into a free neighbour, shrinks in place, then moves when the neighbour is
/// in use: three checks, each comparing the contents byte for byte.
fn realloc_round_trip() -> Result<Vec<Check>, LabError> {
    let mut memory = vec![0u128; 64 * 1024 / 16];
    // SAFETY: u128 has no invalid bit patterns and u8 has alignment 1; the slice covers
    // exactly the vector's bytes and the vector outlives the heap.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(memory.as_mut_ptr().cast::<u8>(), memory.len() * 16) };
    let heap = FreeList::over_buffer(bytes, Placement::FirstFit);
    let (a_size, b_size) = (100, 300);
    let a = heap.alloc(layout(a_size)).map_err(heap_error)?;
    let b = heap.alloc(layout(b_size)).map_err(heap_error)?;
    let fence = heap.alloc(layout(16)).map_err(heap_error)?;
    // SAFETY: `a` holds a_size writable bytes.
    unsafe {
        for i in 0..a_size {
            a.as_ptr().add(i).write(pattern(i));
        }
    }
    // SAFETY: `b` came from this heap with this layout; not used again.
    unsafe { heap.free(b, layout(b_size)) };

    let mut checks = Vec::new();
    let grown_size = 350;
    // SAFETY: `a` is live with its layout; only the returned pointer is used afterwards.
    let grown = unsafe { heap.realloc(a, layout(a_size), grown_size) }.map_err(heap_error)?;
    // SAFETY: the block holds the a_size bytes written above.
    let bad = unsafe { differing(grown, a_size) };
    let ok = heap.check().is_ok();
    checks.push(Check {
        task: 6,
        allocator: "FreeList",
        property: "realloc grows in place",
        measured: format!(
            "{a_size} → {grown_size} B with a free {b_size} B neighbour: {}, {a_size} bytes compared, {bad} differ, \
             check() {}",
            if grown == a { "same address" } else { "moved" },
            if ok { "OK" } else { "failed" }
        ),
        expected: "same address, 0 differ".to_owned(),
        pass: grown == a && bad == 0 && ok,
    });

    let shrunk_size = 40;
    let free_before = heap.free_stats().free_bytes;
    // SAFETY: `grown` is live with its layout; only the returned pointer is used after.
    let shrunk = unsafe { heap.realloc(grown, layout(grown_size), shrunk_size) }.map_err(heap_error)?;
    let released = heap.free_stats().free_bytes.saturating_sub(free_before);
    // SAFETY: the block holds at least shrunk_size of the bytes written above.
    let bad = unsafe { differing(shrunk, shrunk_size) };
    let ok = heap.check().is_ok();
    checks.push(Check {
        task: 6,
        allocator: "FreeList",
        property: "realloc shrinks in place",
        measured: format!(
            "{grown_size} → {shrunk_size} B: {}, tail of {released} B freed, {shrunk_size} bytes compared, {bad} \
             differ, check() {}",
            if shrunk == grown { "same address" } else { "moved" },
            if ok { "OK" } else { "failed" }
        ),
        expected: "same address, tail freed, 0 differ".to_owned(),
        pass: shrunk == grown && released > 0 && bad == 0 && ok,
    });

    let moved_size = 4000;
    // SAFETY: `shrunk` is live with its layout; only the returned pointer is used after.
    let moved = unsafe { heap.realloc(shrunk, layout(shrunk_size), moved_size) }.map_err(heap_error)?;
    // SAFETY: the new block holds the shrunk_size bytes copied over.
    let bad = unsafe { differing(moved, shrunk_size) };
    let ok = heap.check().is_ok();
    checks.push(Check {
        task: 6,
        allocator: "FreeList",
        property: "realloc moves when it must",
        measured: format!(
            "{shrunk_size} → {moved_size} B, more than the free space before the in-use fence: {}, {shrunk_size} \
             bytes compared, {bad} differ, check() {}",
            if moved == shrunk { "same address" } else { "moved" },
            if ok { "OK" } else { "failed" }
        ),
        expected: "moved, 0 differ".to_owned(),
        pass: moved != shrunk && bad == 0 && ok,
    });
    // SAFETY: both live blocks of this heap with these layouts, freed once.
    unsafe {
        heap.free(moved, layout(moved_size));
        heap.free(fence, layout(16));
    }
    let after = heap.free_stats();
    let ok = heap.check().is_ok();
    checks.push(Check {
        task: 6,
        allocator: "FreeList",
        property: "free after the round trip",
        measured: format!(
            "{} free block(s), largest {} of {} free bytes, check() {}",
            after.free_blocks,
            after.largest_free,
            after.free_bytes,
            if ok { "OK" } else { "failed" }
        ),
        expected: "1 free block holding every free byte".to_owned(),
        pass: after.free_blocks == 1 && after.largest_free == after.free_bytes && ok,
    });
    Ok(checks)
}

/// Allocates every request size from one free block of a known size and reads whether the
/// remainder was split off (the free-block count stays) or kept as slack (it drops).
fn split_threshold() -> Result<Check, LabError> {
    const HOLE_REQUEST: usize = 144;
    let mut memory = vec![0u128; 64 * 1024 / 16];
    // SAFETY: as in `realloc_round_trip`.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(memory.as_mut_ptr().cast::<u8>(), memory.len() * 16) };
    let heap = FreeList::over_buffer(bytes, Placement::FirstFit);
    // A second heap measures each request's block size: the free bytes it takes from a
    // large free block, which is always split.
    let mut sizing_memory = vec![0u128; 64 * 1024 / 16];
    // SAFETY: as above.
    let sizing_bytes = unsafe {
        std::slice::from_raw_parts_mut(sizing_memory.as_mut_ptr().cast::<u8>(), sizing_memory.len() * 16)
    };
    let sizing = FreeList::over_buffer(sizing_bytes, Placement::FirstFit);
    // The heap takes its buffer as a segment on the first allocation: one allocation and
    // free first, so that every reading below sees the segment's free block.
    let first = sizing.alloc(layout(1)).map_err(heap_error)?;
    // SAFETY: the block just allocated, freed once.
    unsafe { sizing.free(first, layout(1)) };

    let hole = heap.alloc(layout(HOLE_REQUEST)).map_err(heap_error)?;
    let fence = heap.alloc(layout(16)).map_err(heap_error)?;
    let before = heap.free_stats();
    // SAFETY: a block of this heap with this layout, freed once; its neighbours are the
    // segment start and the fence, both in use, so it stays one free block of its own.
    unsafe { heap.free(hole, layout(HOLE_REQUEST)) };
    let with_hole = heap.free_stats();
    let hole_block = with_hole.free_bytes - before.free_bytes;

    let (mut smallest_split, mut largest_kept) = (usize::MAX, None::<usize>);
    let (mut from_hole, mut consistent) = (0, true);
    for request in 1..=HOLE_REQUEST {
        let free_before = sizing.free_stats().free_bytes;
        let sized = sizing.alloc(layout(request)).map_err(heap_error)?;
        let block = free_before - sizing.free_stats().free_bytes;
        // SAFETY: the block just allocated from `sizing`, freed once.
        unsafe { sizing.free(sized, layout(request)) };

        let ptr = heap.alloc(layout(request)).map_err(heap_error)?;
        from_hole += usize::from(ptr == hole);
        let after = heap.free_stats();
        let remainder = hole_block - block;
        let split = after.free_blocks == with_hole.free_blocks;
        // SAFETY: a live block of this heap.
        let usable = unsafe { heap.usable_size(ptr) };
        if split {
            smallest_split = smallest_split.min(remainder);
            consistent &= after.free_bytes == with_hole.free_bytes - block && usable + 16 == block;
        } else {
            largest_kept = Some(largest_kept.map_or(remainder, |kept: usize| kept.max(remainder)));
            consistent &= after.free_bytes == with_hole.free_bytes - hole_block && usable + 16 == hole_block;
        }
        // SAFETY: the block just allocated, freed once: it coalesces with the remainder
        // (when split off) back into the hole.
        unsafe { heap.free(ptr, layout(request)) };
        // The heap is back where it was, block for block; only the running count of
        // searched free-list entries moves with every allocation.
        let restored = FreeStats { searched_blocks: with_hole.searched_blocks, ..heap.free_stats() };
        consistent &= restored == with_hole && heap.check().is_ok();
    }
    // SAFETY: the fence, freed once.
    unsafe { heap.free(fence, layout(16)) };
    let largest_kept = largest_kept.unwrap_or(0);
    Ok(Check {
        task: 6,
        allocator: "FreeList",
        property: "split threshold",
        measured: format!(
            "requests 1..={HOLE_REQUEST} B from a free block of {hole_block} B ({from_hole} served from it): \
             smallest remainder split off {smallest_split} B, largest kept as slack {largest_kept} B; block sizes \
             and free bytes consistent: {}",
            if consistent { "yes" } else { "no" }
        ),
        expected: "remainders ≥ 32 B (a minimum block) split off, smaller ones kept".to_owned(),
        pass: from_hole == HOLE_REQUEST
            && smallest_split == 32
            && largest_kept < smallest_split
            && consistent,
    })
}

/// A request size of the mixed workload: mostly small, some medium, a few large.
fn mixed_size(rng: &mut StdRng) -> usize {
    match rng.random_range(0..100) {
        0..70 => rng.random_range(1..=128),
        70..95 => rng.random_range(129..=4096),
        _ => rng.random_range(4097..=65_536),
    }
}

/// Writes the slot's tag into the first byte of a block and the slot's high byte into its
/// last (blocks of two bytes or more).
///
/// # Safety
/// `ptr` holds `size` >= 1 writable bytes.
unsafe fn tag(ptr: NonNull<u8>, size: usize, slot: usize) {
    // SAFETY: forwarded.
    unsafe {
        ptr.as_ptr().write(slot as u8);
        if size > 1 {
            ptr.as_ptr().add(size - 1).write((slot >> 8) as u8);
        }
    }
}

/// Whether a block still holds the tags [`tag`] wrote.
///
/// # Safety
/// `ptr` holds `size` >= 1 bytes, tagged by [`tag`].
unsafe fn tagged(ptr: NonNull<u8>, size: usize, slot: usize) -> bool {
    // SAFETY: forwarded.
    unsafe {
        ptr.as_ptr().read() == slot as u8
            && (size == 1 || ptr.as_ptr().add(size - 1).read() == (slot >> 8) as u8)
    }
}

fn coalescing_after_cycles(options: &PropertiesOptions, placement: Placement) -> Result<Check, LabError> {
    let heap = FreeList::with_source(Reservation::new(256 << 20), placement);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut slots: Vec<Option<(NonNull<u8>, usize)>> = vec![None; options.live_slots];
    let (mut allocs, mut reallocs, mut frees, mut checks_run, mut checks_failed, mut damaged) =
        (0, 0, 0, 0, 0, 0);
    let every = (options.cycles / 10).max(1);
    for cycle in 0..options.cycles {
        let i = rng.random_range(0..slots.len());
        slots[i] = match slots[i] {
            None => {
                let size = mixed_size(&mut rng);
                let ptr = heap.alloc(layout(size)).map_err(heap_error)?;
                // SAFETY: a fresh block of `size` bytes.
                unsafe { tag(ptr, size, i) };
                allocs += 1;
                Some((ptr, size))
            }
            Some((ptr, size)) => {
                // SAFETY: the slot's live block, tagged when it was allocated or resized.
                damaged += usize::from(!unsafe { tagged(ptr, size, i) });
                if rng.random_range(0..4) == 0 {
                    let new_size = mixed_size(&mut rng);
                    // SAFETY: the slot's live block with its layout; only the result is
                    // kept.
                    let moved = unsafe { heap.realloc(ptr, layout(size), new_size) }.map_err(heap_error)?;
                    // SAFETY: the resized block holds `new_size` bytes, its first byte
                    // kept from the old block.
                    unsafe {
                        damaged += usize::from(moved.as_ptr().read() != i as u8);
                        tag(moved, new_size, i);
                    }
                    reallocs += 1;
                    Some((moved, new_size))
                } else {
                    // SAFETY: the slot's live block with its layout, freed once.
                    unsafe { heap.free(ptr, layout(size)) };
                    frees += 1;
                    None
                }
            }
        };
        if (cycle + 1) % every == 0 {
            checks_run += 1;
            checks_failed += usize::from(heap.check().is_err());
        }
    }
    let peak = heap.free_stats().peak_footprint_bytes;
    for (i, slot) in slots.iter_mut().enumerate() {
        if let Some((ptr, size)) = slot.take() {
            // SAFETY: the slot's live block: checked, then freed once.
            unsafe {
                damaged += usize::from(!tagged(ptr, size, i));
                heap.free(ptr, layout(size));
            }
            frees += 1;
        }
    }
    let end = heap.free_stats();
    let footprint = heap.stats().footprint_bytes;
    let final_check = heap.check();
    let live = heap.stats().live_bytes;
    Ok(Check {
        task: 6,
        allocator: "FreeList",
        property: "coalescing after mixed cycles",
        measured: format!(
            "{}: {} cycles ({allocs} alloc, {reallocs} realloc, {frees} free; 1..64 KiB), peak footprint {}; all \
             freed: {} free block(s), largest {} of {} free ({} footprint), {damaged} blocks damaged, check() {}/{} \
             OK then {}",
            placement.name(),
            options.cycles,
            report::bytes(peak as f64),
            end.free_blocks,
            end.largest_free,
            end.free_bytes,
            footprint,
            checks_run - checks_failed,
            checks_run,
            if final_check.is_ok() { "OK".to_owned() } else { format!("{final_check:?}") },
        ),
        expected: "1 free block = every free byte, 0 damaged, every check() OK".to_owned(),
        pass: end.free_blocks == 1
            && end.largest_free == end.free_bytes
            && live == 0
            && damaged == 0
            && checks_failed == 0
            && final_check.is_ok(),
    })
}

impl Outcome for PropertiesOutcome {
    fn slug(&self) -> &'static str {
        "properties"
    }

    fn title(&self) -> String {
        "Tasks 4-6: arena, pool and free-list properties, measured".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let failures = self.failures();
        let mut findings =
            vec![format!("{} of {} properties PASS", self.checks.len() - failures.len(), self.checks.len())];
        for check in failures {
            findings.push(format!(
                "FAIL task {} {} {}: {} (expected {})",
                check.task, check.allocator, check.property, check.measured, check.expected
            ));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            "Each property with the figures it produced (allockit's public API, this process)",
            &["task", "allocator", "property", "measured", "expected", "result"],
        );
        for check in &self.checks {
            table.push(vec![
                check.task.to_string(),
                check.allocator.to_owned(),
                check.property.to_owned(),
                check.measured.clone(),
                check.expected.clone(),
                if check.pass { "PASS" } else { "FAIL" }.to_owned(),
            ]);
        }
        vec![table]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let table = self.tables().remove(0);
        vec![CsvFile { file_name: "properties.csv".into(), table }]
    }

    fn charts(&self) -> Vec<Chart> {
        Vec::new()
    }

    fn explanation(&self) -> String {
        let mut text = String::from("### What each property protects\n\n");
        let _ = writeln!(
            text,
            "A bump arena aligns by rounding its cursor up, so alignment must hold whatever odd \
             sizes came before ({} allocations per alignment here); when it cannot serve it must \
             say so with an `Err` rather than abort, and `reset` makes the whole buffer usable \
             again. A pool threads its free list through the free blocks, so a block must hold a \
             pointer even when the object is one byte: the pool rounds small objects up to 8 \
             bytes. A boundary-tag free list splits a block only when the rest can stand as a \
             block of its own (header, two links, footer: 32 bytes); a smaller rest stays in the \
             block as slack, which `usable_size` shows. And it coalesces on every free, so after \
             any sequence of allocations, resizes and frees ({} cycles per policy here) the free \
             space of an emptied heap is one block again.",
            self.options.allocations_per_alignment, self.options.cycles,
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_check_nothing_are_refused_naming_the_flag() {
        let base = PropertiesOptions::quick();
        let cases = [
            (PropertiesOptions { cycles: 10, ..base }, "--cycles"),
            (PropertiesOptions { live_slots: 1, cycles: 100, ..base }, "--live-slots"),
            (PropertiesOptions { allocations_per_alignment: 0, ..base }, "--allocations-per-alignment"),
        ];
        for (options, flag) in cases {
            let err = options.validate().unwrap_err();
            assert!(err.to_string().contains(flag), "{options:?}: {err}");
        }
        assert!(PropertiesOptions::full().validate().is_ok());
    }
}
