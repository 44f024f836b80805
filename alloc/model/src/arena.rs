//! The model of the chunked bump arena ([`Arena`]) on a chunk source of its own, optionally
//! under a byte limit.
//!
//! Operations: allocations of any size (up to 256 KiB, so dedicated spans too) and
//! alignment (up to 128 KiB, above the chunk size); `Allocator::deallocate` (rolls back the
//! tip, ignores the rest); escaping allocations (byte slices, and values with a destructor)
//! whose handles outlive resets and are dropped in any order, on any thread;
//! `allocator_api2` vectors that grow at the tip or move; resets.
//!
//! Checked after every operation: alignment, no overlap with any live block (escaped blocks
//! included, across resets), the counters (allocations, failures, resets, live bytes), the
//! byte limit, and the pinned-chunk count of the source. Contents are checked when a block
//! dies, before every reset (every block of the cycle) and after it (every escaped block),
//! or after every operation with [`ContentChecks::EveryOp`]. At the end, once the arena and
//! every escaped handle are gone, the source must have every chunk back.
//!
//! Used by `alloc/tests/model.rs` and the `arena` fuzz target.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::collections::HashSet;
use std::sync::Arc;

use allocator_api2::alloc::Allocator;
use allockit::{Arena, ArenaError, ChunkSource, Escaped};
use arbitrary::Arbitrary;

use crate::{Align, ContentChecks, Extents, Size, assert_aligned, assert_holds, fill, pattern, pick};

/// The largest alignment the arena operations ask for: 2^17 = 128 KiB, above the chunk size.
pub const MAX_ALIGN_SHIFT: u32 = 17;

/// Vectors the model keeps at once.
pub const VECTORS: usize = 4;

/// One step of the arena model. Sizes are at most [`Size::MAX`]; alignments are powers of
/// two up to `1 << MAX_ALIGN_SHIFT`.
#[derive(Debug, Clone, Arbitrary)]
pub enum ArenaOp {
    /// `alloc_layout`, then fill the block.
    Alloc {
        /// Bytes.
        #[arbitrary(with = Size::arbitrary_bytes)]
        size: usize,
        /// Alignment.
        #[arbitrary(with = Align::arbitrary_bytes::<MAX_ALIGN_SHIFT>)]
        align: usize,
        /// Seed of the block's pattern.
        seed: u8,
    },
    /// `Allocator::deallocate` of a block of this cycle.
    Dealloc {
        /// Which block of the cycle ([`pick`]).
        pick: u16,
    },
    /// `alloc_escaping_slice_copy` of a patterned byte slice.
    EscapeBytes {
        /// Bytes.
        #[arbitrary(with = Size::arbitrary_bytes)]
        size: usize,
        /// Seed of the slice's pattern.
        seed: u8,
    },
    /// `alloc_escaping` of a value that owns heap memory (its destructor must run).
    EscapeOwned {
        /// Length of the owned vector.
        len: u8,
        /// Seed of its pattern.
        seed: u8,
    },
    /// Drops one escaped handle, here or on another thread (the last handle of a pinned
    /// chunk gives it back from whichever thread drops it).
    DropEscape {
        /// Which live handle.
        pick: u16,
        /// Drop it on a thread of its own.
        elsewhere: bool,
    },
    /// `try_reserve` then push `count` values onto one of the vectors.
    Push {
        /// Which vector (modulo [`VECTORS`]); created if it does not exist.
        vector: u8,
        /// Values to push.
        count: u8,
        /// Seed of the values.
        seed: u8,
    },
    /// `shrink_to_fit` one of the vectors.
    ShrinkToFit {
        /// Which vector.
        vector: u8,
    },
    /// Drops one of the vectors.
    DropVector {
        /// Which vector.
        vector: u8,
    },
    /// Ends the cycle: every vector is dropped, then `Arena::reset`.
    Reset,
}

/// How to run the arena model.
#[derive(Debug, Clone)]
pub struct ArenaRun {
    /// The arena's chunk source: private to this run, since the driver checks its pinned
    /// and in-use chunks.
    pub source: Arc<ChunkSource>,
    /// The arena's byte limit, if any (`Arena::with_limit`).
    pub limit: Option<usize>,
    /// Whether allockit was built with `count-allocations`: the arena then counts every
    /// allocation and the model checks the count; without it the count must stay zero.
    pub counts_allocations: bool,
    /// How often untouched blocks are read back.
    pub contents: ContentChecks,
}

/// What a run of the arena model saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaReport {
    /// Requests the arena refused (chunk source exhausted, or over the limit).
    pub failures: u64,
    /// Resets.
    pub resets: u64,
}

/// A block allocated in the current cycle.
#[derive(Debug, Clone, Copy)]
struct RawBlock {
    ptr: NonNull<u8>,
    layout: Layout,
    seed: u8,
}

impl RawBlock {
    fn assert_intact(&self, what: &str) {
        // SAFETY: a live block of this cycle, `layout.size()` bytes.
        unsafe { assert_holds(self.ptr.as_ptr(), self.layout.size(), self.seed, what) };
    }
}

/// An escaped value the model holds.
enum Escapee {
    Bytes(Escaped<[u8]>),
    Owned(Escaped<Vec<u8>>),
}

struct LiveEscape {
    value: Escapee,
    seed: u8,
    /// Created before the last reset: its chunk must be counted as pinned.
    before_reset: bool,
    /// Certainly in a shared chunk rather than a dedicated span (so it pins one chunk).
    small: bool,
}

impl LiveEscape {
    /// The block the handle owns in the arena: (start, length).
    fn extent(&self) -> (usize, usize) {
        match &self.value {
            Escapee::Bytes(bytes) => (bytes.as_ptr().addr(), bytes.len()),
            Escapee::Owned(owned) => (core::ptr::from_ref::<Vec<u8>>(owned).addr(), size_of::<Vec<u8>>()),
        }
    }

    fn chunk_addr(&self) -> usize {
        match &self.value {
            Escapee::Bytes(bytes) => bytes.chunk_addr(),
            Escapee::Owned(owned) => owned.chunk_addr(),
        }
    }

    fn assert_intact(&self, when: &str) {
        match &self.value {
            Escapee::Bytes(bytes) => {
                // SAFETY: the handle keeps its bytes alive.
                unsafe { assert_holds(bytes.as_ptr(), bytes.len(), self.seed, when) }
            }
            Escapee::Owned(owned) => {
                let expected = (0..owned.len()).map(|index| pattern(self.seed, index));
                assert!(owned.iter().copied().eq(expected), "{when}: an escaped value lost its contents");
            }
        }
    }
}

/// Everything the model knows across cycles.
struct Model {
    source: Arc<ChunkSource>,
    limit: Option<usize>,
    counts_allocations: bool,
    contents: ContentChecks,
    extents: Extents,
    escapes: Vec<LiveEscape>,
    allocations: u64,
    failures: u64,
    resets: u64,
    /// A request above this (size plus alignment) certainly gets a dedicated span.
    small_bound: usize,
}

/// One vector and the values it should hold.
struct Vector<'arena> {
    values: allocator_api2::vec::Vec<u32, &'arena Arena>,
    shadow: Vec<u32>,
}

impl Vector<'_> {
    fn extent(&self) -> (usize, usize) {
        if self.values.capacity() == 0 {
            (0, 0)
        } else {
            (self.values.as_ptr().addr(), self.values.capacity() * size_of::<u32>())
        }
    }

    fn assert_intact(&self) {
        assert_eq!(&self.values[..], &self.shadow[..], "a vector lost its contents");
    }
}

/// Runs `ops` on a new arena over `run.source` against the model, then drops the arena and
/// every escaped handle and checks that the source has every chunk back. Panics on the
/// first disagreement.
pub fn drive(run: &ArenaRun, ops: &[ArenaOp]) -> ArenaReport {
    let mut arena = Arena::with_source(Arc::clone(&run.source));
    if let Some(limit) = run.limit {
        arena = arena.with_limit(limit);
    }
    let mut model = Model {
        small_bound: run.source.usable_chunk_size() / 4 - 1024,
        source: Arc::clone(&run.source),
        limit: run.limit,
        counts_allocations: run.counts_allocations,
        contents: run.contents,
        extents: Extents::default(),
        escapes: Vec::new(),
        allocations: 0,
        failures: 0,
        resets: 0,
    };
    let mut ops = ops.iter();
    while run_cycle(&arena, &mut ops, &mut model) {
        arena.reset();
        model.resets += 1;
        for escape in &mut model.escapes {
            escape.before_reset = true;
            escape.assert_intact("an escaped block after reset");
        }
        let stats = arena.stats();
        assert_eq!(stats.live_bytes, 0, "live bytes after reset");
        assert!(stats.chunks <= 1, "reset keeps at most one chunk, it held {}", stats.chunks);
        check_counters(&arena, &model, &ArenaOp::Reset);
    }
    for escape in &model.escapes {
        escape.assert_intact("an escaped block at the end of the run");
    }
    drop(arena);
    let held_by_escapes = model.escapes.len();
    model.escapes.clear();
    let chunks = model.source.stats();
    assert_eq!(
        (chunks.chunks_in_use, chunks.chunks_pinned),
        (0, 0),
        "every chunk goes back once the arena and its {held_by_escapes} escaped handles are gone"
    );
    ArenaReport { failures: model.failures, resets: model.resets }
}

/// Runs operations up to the next `Reset` (true) or the end of the input (false). The
/// vectors live only within a cycle: they borrow the arena, and reset needs it unborrowed.
fn run_cycle<'arena>(
    arena: &'arena Arena,
    ops: &mut core::slice::Iter<'_, ArenaOp>,
    model: &mut Model,
) -> bool {
    let mut blocks: Vec<RawBlock> = Vec::new();
    let mut vectors: [Option<Vector<'arena>>; VECTORS] = Default::default();
    let mut reset = false;
    for op in ops.by_ref() {
        if matches!(op, ArenaOp::Reset) {
            reset = true;
            break;
        }
        let before = arena.stats();
        let mut allocated = 0..=0;
        let mut freed = 0..=0;
        match *op {
            ArenaOp::Alloc { size, align, seed } => {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                match arena.alloc_layout(layout) {
                    Ok(ptr) => {
                        assert_aligned(ptr.as_ptr().addr(), layout.align(), "an arena block");
                        model.extents.insert(ptr.as_ptr().addr(), layout.size());
                        // SAFETY: a fresh block of `layout.size()` bytes.
                        unsafe { fill(ptr.as_ptr(), layout.size(), seed) };
                        blocks.push(RawBlock { ptr, layout, seed });
                        allocated = 1..=1;
                    }
                    Err(error) => on_error(model, &error),
                }
            }
            ArenaOp::Dealloc { pick: raw } => {
                if let Some(index) = pick(raw, blocks.len()) {
                    let block = blocks.swap_remove(index);
                    block.assert_intact("a block being deallocated");
                    model.extents.remove(block.ptr.as_ptr().addr(), block.layout.size());
                    // SAFETY: allocated by this arena with this layout, not used afterwards.
                    unsafe { arena.deallocate(block.ptr, block.layout) };
                    freed = 0..=1;
                }
            }
            ArenaOp::EscapeBytes { size, seed } => {
                let bytes: Vec<u8> = (0..size).map(|index| pattern(seed, index)).collect();
                match arena.alloc_escaping_slice_copy(&bytes) {
                    Ok(escaped) => {
                        let small = bytes.len() < model.small_bound;
                        add_escape(model, Escapee::Bytes(escaped), seed, small);
                        allocated = 1..=1;
                    }
                    Err(error) => on_error(model, &error),
                }
            }
            ArenaOp::EscapeOwned { len, seed } => {
                let owned: Vec<u8> = (0..usize::from(len)).map(|index| pattern(seed, index)).collect();
                match arena.alloc_escaping(owned) {
                    Ok(escaped) => {
                        add_escape(model, Escapee::Owned(escaped), seed, true);
                        allocated = 1..=1;
                    }
                    Err(error) => on_error(model, &error),
                }
            }
            ArenaOp::DropEscape { pick: raw, elsewhere } => {
                if let Some(index) = pick(raw, model.escapes.len()) {
                    let escape = model.escapes.swap_remove(index);
                    escape.assert_intact("an escaped block being dropped");
                    let (start, len) = escape.extent();
                    model.extents.remove(start, len);
                    if elsewhere {
                        std::thread::spawn(move || drop(escape.value))
                            .join()
                            .expect("dropping an escaped handle on another thread");
                    }
                }
            }
            ArenaOp::Push { vector, count, seed } => {
                let slot = &mut vectors[usize::from(vector) % VECTORS];
                let vector = slot.get_or_insert_with(|| Vector {
                    values: allocator_api2::vec::Vec::new_in(arena),
                    shadow: Vec::new(),
                });
                let (start, len) = vector.extent();
                model.extents.remove(start, len);
                if vector.values.try_reserve(usize::from(count)).is_ok() {
                    for _ in 0..count {
                        let value = u32::from(seed) << 16 | vector.shadow.len() as u32;
                        vector.values.push(value);
                        vector.shadow.push(value);
                    }
                    allocated = 0..=1;
                } else {
                    model.failures += 1;
                }
                after_vector_op(model, vector);
            }
            ArenaOp::ShrinkToFit { vector } => {
                if let Some(vector) = &mut vectors[usize::from(vector) % VECTORS] {
                    let (start, len) = vector.extent();
                    model.extents.remove(start, len);
                    vector.values.shrink_to_fit();
                    freed = 0..=1;
                    after_vector_op(model, vector);
                }
            }
            ArenaOp::DropVector { vector } => {
                if let Some(vector) = vectors[usize::from(vector) % VECTORS].take() {
                    drop_vector(model, vector);
                    freed = 0..=1;
                }
            }
            ArenaOp::Reset => unreachable!("a reset ends the cycle above"),
        }
        let after = arena.stats();
        let counted = after.allocations - before.allocations;
        if model.counts_allocations {
            assert!(allocated.contains(&counted), "allocations after {op:?}");
        } else {
            assert_eq!(counted, 0, "an arena without count-allocations counted one after {op:?}");
        }
        model.allocations += counted;
        assert!(freed.contains(&(after.frees - before.frees)), "frees after {op:?}");
        let live: usize = blocks.iter().map(|block| block.layout.size()).sum::<usize>()
            + model
                .escapes
                .iter()
                .filter(|escape| !escape.before_reset)
                .map(|escape| escape.extent().1)
                .sum::<usize>()
            + vectors.iter().flatten().map(|vector| vector.extent().1).sum::<usize>();
        assert!(
            after.live_bytes >= live,
            "live bytes {} below the model's {live} after {op:?}",
            after.live_bytes
        );
        check_counters(arena, model, op);
        if model.contents == ContentChecks::EveryOp {
            for block in &blocks {
                block.assert_intact("a block of the cycle");
            }
            for escape in &model.escapes {
                escape.assert_intact("an escaped block");
            }
            for vector in vectors.iter().flatten() {
                vector.assert_intact();
            }
        }
    }
    for vector in vectors.into_iter().flatten() {
        drop_vector(model, vector);
    }
    for block in blocks {
        block.assert_intact("a block before reset");
        model.extents.remove(block.ptr.as_ptr().addr(), block.layout.size());
    }
    reset
}

fn on_error(model: &mut Model, error: &ArenaError) {
    model.failures += 1;
    match error {
        ArenaError::LimitExceeded { .. } => assert!(model.limit.is_some(), "a limit error without a limit"),
        ArenaError::Chunk(_) => {}
        other => panic!("a bounded request failed with {other}"),
    }
}

fn add_escape(model: &mut Model, value: Escapee, seed: u8, small: bool) {
    let escape = LiveEscape { value, seed, before_reset: false, small };
    let (start, len) = escape.extent();
    assert_aligned(start, if matches!(escape.value, Escapee::Owned(_)) { 8 } else { 1 }, "an escaped block");
    model.extents.insert(start, len);
    escape.assert_intact("a fresh escaped block");
    model.escapes.push(escape);
}

fn after_vector_op(model: &mut Model, vector: &Vector<'_>) {
    vector.assert_intact();
    assert_aligned(vector.values.as_ptr().addr(), align_of::<u32>(), "a vector buffer");
    let (start, len) = vector.extent();
    model.extents.insert(start, len);
}

fn drop_vector(model: &mut Model, vector: Vector<'_>) {
    vector.assert_intact();
    let (start, len) = vector.extent();
    model.extents.remove(start, len);
}

/// The counters and the source's pinned chunks against the model.
fn check_counters(arena: &Arena, model: &Model, after: &ArenaOp) {
    let stats = arena.stats();
    assert_eq!(stats.resets, model.resets, "resets after {after:?}");
    assert_eq!(stats.failures, model.failures, "failures after {after:?}");
    assert_eq!(stats.allocations, model.allocations, "allocations after {after:?}");
    assert!(stats.high_water_bytes >= stats.live_bytes, "high water below live bytes");
    assert!(stats.footprint_bytes >= stats.live_bytes, "footprint below live bytes");
    if let Some(limit) = model.limit {
        assert!(
            stats.footprint_bytes <= limit,
            "the arena holds {} bytes over its limit {limit}",
            stats.footprint_bytes
        );
    }
    let retired: Vec<&LiveEscape> = model.escapes.iter().filter(|escape| escape.before_reset).collect();
    let chunks: HashSet<usize> = retired.iter().map(|escape| escape.chunk_addr()).collect();
    let pinned = model.source.stats().chunks_pinned;
    if retired.iter().all(|escape| escape.small) {
        assert_eq!(pinned, chunks.len(), "pinned chunks after {after:?}");
    } else {
        // A dedicated span pins all the chunks it spans.
        assert!(pinned >= chunks.len(), "pinned chunks after {after:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private_source;

    /// Every kind of step, across two resets, with escapes that outlive both.
    fn every_kind_of_op() -> Vec<ArenaOp> {
        vec![
            ArenaOp::Alloc { size: 100, align: 8, seed: 1 },
            ArenaOp::Alloc { size: 0, align: 1, seed: 2 },
            ArenaOp::Alloc { size: 200_000, align: 4096, seed: 3 },
            ArenaOp::Alloc { size: 64, align: 1 << MAX_ALIGN_SHIFT, seed: 4 },
            ArenaOp::EscapeBytes { size: 300, seed: 5 },
            ArenaOp::EscapeOwned { len: 40, seed: 6 },
            ArenaOp::Push { vector: 0, count: 200, seed: 7 },
            ArenaOp::Push { vector: 5, count: 3, seed: 8 },
            ArenaOp::Push { vector: 0, count: 100, seed: 9 },
            ArenaOp::Dealloc { pick: 0 },
            ArenaOp::ShrinkToFit { vector: 1 },
            ArenaOp::Reset,
            ArenaOp::EscapeBytes { size: 10, seed: 10 },
            ArenaOp::DropEscape { pick: 0, elsewhere: true },
            ArenaOp::Alloc { size: 5000, align: 16, seed: 11 },
            ArenaOp::DropVector { vector: 2 },
            ArenaOp::Push { vector: 2, count: 9, seed: 12 },
            ArenaOp::DropVector { vector: 2 },
            ArenaOp::Reset,
            ArenaOp::DropEscape { pick: 1, elsewhere: false },
            ArenaOp::Alloc { size: 7, align: 2, seed: 13 },
        ]
    }

    #[test]
    fn every_kind_of_op_passes_with_either_content_check() {
        for contents in [ContentChecks::OnTouch, ContentChecks::EveryOp] {
            let run = ArenaRun { source: private_source(7), limit: None, counts_allocations: true, contents };
            let report = drive(&run, &every_kind_of_op());
            assert_eq!(report, ArenaReport { failures: 0, resets: 2 });
        }
    }

    #[test]
    fn requests_over_the_limit_are_counted_failures() {
        let run = ArenaRun {
            source: private_source(7),
            limit: Some(64 * 1024),
            counts_allocations: true,
            contents: ContentChecks::EveryOp,
        };
        let ops: Vec<ArenaOp> = (0..4).map(|seed| ArenaOp::Alloc { size: 40_000, align: 8, seed }).collect();
        let report = drive(&run, &ops);
        assert!(report.failures >= 2, "at most one 40 KB block fits in 64 KiB: {report:?}");
    }

    #[test]
    fn an_exhausted_source_is_a_counted_failure() {
        let run = ArenaRun {
            source: private_source(0),
            limit: None,
            counts_allocations: true,
            contents: ContentChecks::OnTouch,
        };
        let ops: Vec<ArenaOp> = (0..8).map(|seed| ArenaOp::EscapeBytes { size: Size::MAX, seed }).collect();
        let report = drive(&run, &ops);
        assert!(report.failures >= 4, "a 1 MiB source holds at most four 256 KiB spans: {report:?}");
    }
}
