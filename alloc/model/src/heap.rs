//! The model of the general heaps ([`FreeList`], [`SizeClass`]): a random sequence of
//! alloc, free, realloc and `Allocator` grow/shrink (which may change the alignment).
//!
//! After every operation: the heap's own walk ([`ModelHeap::check`]) passes, every block
//! handed out is aligned and overlaps no live block, a moved or resized block kept its
//! contents, and the counters agree with the model (live bytes, live blocks, failures).
//! A block's contents are checked when it is freed or moved and at the end; once all are
//! freed the heap must be fully coalesced: one free block per segment.
//!
//! Used by `alloc/tests/heaps_model.rs` and the `freelist` and `sizeclass` fuzz targets.

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use allockit::heap::Heap;
use allockit::source::SpanSource;
use allockit::{FreeList, FreeStats, SizeClass};
use arbitrary::Arbitrary;

use crate::{Align, Extents, Size, assert_aligned, assert_holds, fill, pick};

/// The largest alignment the heap operations ask for: 2^13 = 8 KiB.
pub const MAX_ALIGN_SHIFT: u32 = 13;

/// One step of the heap model. Sizes are at most [`Size::MAX`]; alignments are powers of
/// two up to `1 << MAX_ALIGN_SHIFT`.
#[derive(Debug, Clone, Arbitrary)]
pub enum HeapOp {
    /// `alloc(size, align)`, then fill the block.
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
    /// `free` of a live block.
    Free {
        /// Which live block ([`pick`]).
        pick: u16,
    },
    /// `realloc` of a live block to a new size, same alignment.
    Realloc {
        /// Which live block.
        pick: u16,
        /// The new size.
        #[arbitrary(with = Size::arbitrary_bytes)]
        size: usize,
    },
    /// `Allocator::grow` or `shrink` of a live block, to a new size and alignment.
    Resize {
        /// Which live block.
        pick: u16,
        /// The new size.
        #[arbitrary(with = Size::arbitrary_bytes)]
        size: usize,
        /// The new alignment.
        #[arbitrary(with = Align::arbitrary_bytes::<MAX_ALIGN_SHIFT>)]
        align: usize,
    },
}

/// What the driver needs from a heap under test: the shared [`Heap`] interface, the
/// `Allocator` one, and checks of its own invariants.
pub trait ModelHeap: Heap + Allocator {
    /// Panics if the heap's own walk finds a broken invariant.
    fn check(&self, after: &HeapOp);
    /// Panics if the heap, with nothing live, is not fully coalesced and balanced.
    fn check_empty(&self);
}

fn assert_coalesced(free: FreeStats, what: &str) {
    assert_eq!(
        free.free_blocks, free.segments,
        "{what}: with nothing live every segment must be one free block ({free:?})"
    );
}

impl<S: SpanSource> ModelHeap for FreeList<S> {
    fn check(&self, after: &HeapOp) {
        if let Err(corruption) = FreeList::check(self) {
            panic!("free-list heap corrupt after {after:?}: {corruption}");
        }
    }
    fn check_empty(&self) {
        assert_coalesced(self.free_stats(), "free-list heap");
    }
}

impl<S: SpanSource> ModelHeap for SizeClass<S> {
    fn check(&self, after: &HeapOp) {
        if let Err(corruption) = self.large().check() {
            panic!("size-class large heap corrupt after {after:?}: {corruption}");
        }
        let classes = self.class_stats();
        let small_live: u64 = classes.iter().map(|class| class.live_blocks()).sum();
        let large = self.large().stats();
        let stats = SizeClass::stats(self);
        assert_eq!(
            small_live + (large.allocations - large.frees),
            stats.allocations - stats.frees,
            "class counters disagree with the totals after {after:?}"
        );
        for class in classes {
            assert!(class.requested_bytes <= class.handed_out_bytes(), "class {class:?} over-counts");
        }
    }
    fn check_empty(&self) {
        for class in self.class_stats() {
            assert_eq!(class.live_blocks(), 0, "class {} still has live blocks", class.class_size);
        }
        assert_coalesced(self.large().free_stats(), "size-class large heap");
    }
}

/// A live block of the model.
#[derive(Debug, Clone, Copy)]
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    seed: u8,
}

impl Block {
    fn extent(&self) -> (usize, usize) {
        // General heaps give every request a real block, so even zero-size ones are disjoint.
        (self.ptr.as_ptr().addr(), self.layout.size().max(1))
    }

    fn assert_intact(&self, what: &str) {
        // SAFETY: the block is live and holds `layout.size()` bytes.
        unsafe { assert_holds(self.ptr.as_ptr(), self.layout.size(), self.seed, what) };
    }
}

/// Runs `ops` on `heap` against the model, then frees everything and checks the heap is
/// empty and coalesced. Panics on the first disagreement.
pub fn drive(heap: &impl ModelHeap, ops: &[HeapOp]) {
    let mut live: Vec<Block> = Vec::new();
    let mut extents = Extents::default();
    let mut failures = heap.stats().failures;
    let added = |block: Block, extents: &mut Extents, live: &mut Vec<Block>, index: Option<usize>| {
        assert_aligned(block.ptr.as_ptr().addr(), block.layout.align(), "a heap block");
        let (start, len) = block.extent();
        extents.insert(start, len);
        match index {
            Some(index) => live[index] = block,
            None => live.push(block),
        }
    };
    for op in ops {
        match *op {
            HeapOp::Alloc { size, align, seed } => {
                let layout = Layout::from_size_align(size, align)
                    .expect("bounded sizes and power-of-two alignments make valid layouts");
                match heap.alloc(layout) {
                    Ok(ptr) => {
                        // SAFETY: a fresh block of `layout.size()` bytes.
                        unsafe { fill(ptr.as_ptr(), layout.size(), seed) };
                        added(Block { ptr, layout, seed }, &mut extents, &mut live, None);
                    }
                    Err(_) => failures += 1,
                }
            }
            HeapOp::Free { pick: raw } => {
                if let Some(index) = pick(raw, live.len()) {
                    let block = live.swap_remove(index);
                    block.assert_intact("a block being freed");
                    let (start, len) = block.extent();
                    extents.remove(start, len);
                    // SAFETY: a live block of this heap with its current layout, dropped here.
                    unsafe { heap.free(block.ptr, block.layout) };
                }
            }
            HeapOp::Realloc { pick: raw, size } => {
                if let Some(index) = pick(raw, live.len()) {
                    let old = live[index];
                    old.assert_intact("a block being reallocated");
                    // SAFETY: a live block of this heap with its current layout.
                    match unsafe { heap.realloc(old.ptr, old.layout, size) } {
                        Ok(ptr) => {
                            let layout =
                                Layout::from_size_align(size, old.layout.align()).expect("a valid layout");
                            let moved = Block { ptr, layout, seed: old.seed };
                            let (start, len) = old.extent();
                            extents.remove(start, len);
                            resized(&moved, old.layout.size());
                            added(moved, &mut extents, &mut live, Some(index));
                        }
                        Err(_) => {
                            old.assert_intact("a block whose realloc failed");
                            failures += 1;
                        }
                    }
                }
            }
            HeapOp::Resize { pick: raw, size, align } => {
                if let Some(index) = pick(raw, live.len()) {
                    let old = live[index];
                    old.assert_intact("a block being resized");
                    let layout = Layout::from_size_align(size, align).expect("a valid layout");
                    // SAFETY: a live block of this heap with its current layout; `grow` gets a
                    // size at least the old one and `shrink` at most.
                    let result = unsafe {
                        if layout.size() >= old.layout.size() {
                            heap.grow(old.ptr, old.layout, layout)
                        } else {
                            heap.shrink(old.ptr, old.layout, layout)
                        }
                    };
                    match result {
                        Ok(slice) => {
                            assert!(slice.len() >= layout.size(), "a resized block is too short");
                            let moved = Block { ptr: slice.cast(), layout, seed: old.seed };
                            let (start, len) = old.extent();
                            extents.remove(start, len);
                            resized(&moved, old.layout.size());
                            added(moved, &mut extents, &mut live, Some(index));
                        }
                        Err(_) => {
                            old.assert_intact("a block whose resize failed");
                            failures += 1;
                        }
                    }
                }
            }
        }
        heap.check(op);
        let stats = heap.stats();
        assert_eq!(stats.live_bytes, live.iter().map(|b| b.layout.size()).sum::<usize>(), "live bytes");
        assert_eq!(stats.allocations - stats.frees, live.len() as u64, "live blocks");
        assert_eq!(stats.failures, failures, "failures");
        assert_eq!(extents.len(), live.len(), "the model's extents");
        assert!(stats.high_water_bytes >= stats.live_bytes, "high water below live bytes");
        assert!(stats.footprint_bytes >= stats.live_bytes, "footprint below live bytes");
    }
    for block in &live {
        block.assert_intact("a block at the end of the run");
    }
    for block in live {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { heap.free(block.ptr, block.layout) };
    }
    assert_eq!(heap.stats().live_bytes, 0, "live bytes after freeing everything");
    heap.check(&HeapOp::Free { pick: 0 });
    heap.check_empty();
}

/// Checks that a moved or resized block kept the bytes both sizes cover, then refills it.
fn resized(block: &Block, old_size: usize) {
    let kept = old_size.min(block.layout.size());
    // SAFETY: the block is live and holds at least `kept` bytes.
    unsafe {
        assert_holds(block.ptr.as_ptr(), kept, block.seed, "a resized block");
        fill(block.ptr.as_ptr(), block.layout.size(), block.seed);
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use std::sync::Arc;

    use allocator_api2::alloc::AllocError;
    use allockit::heap::HeapError;
    use allockit::source::Reservation;
    use allockit::{FreeOrder, Placement, Stats};

    use super::*;
    use crate::private_source;

    /// Every kind of step, over sizes that take the small and the large paths.
    fn mixed_ops() -> Vec<HeapOp> {
        let mut ops = Vec::new();
        for (index, size) in [0, 1, 24, 100, 700, 4096, 20_000, 100_000, 300].into_iter().enumerate() {
            let align = 1 << (index % 3 * 6);
            ops.push(HeapOp::Alloc { size, align, seed: index as u8 });
        }
        ops.extend([
            HeapOp::Free { pick: 2 },
            HeapOp::Realloc { pick: 0, size: 5000 },
            HeapOp::Realloc { pick: 3, size: 10 },
            HeapOp::Resize { pick: 1, size: 9000, align: 4096 },
            HeapOp::Resize { pick: 4, size: 3, align: 1 },
            HeapOp::Free { pick: 7 },
            HeapOp::Alloc { size: 64, align: 64, seed: 99 },
            HeapOp::Free { pick: 0 },
            HeapOp::Free { pick: 1 },
        ]);
        ops
    }

    #[test]
    fn a_free_list_over_a_buffer_passes_under_every_policy() {
        for placement in Placement::ALL {
            for order in [FreeOrder::Lifo, FreeOrder::Fifo] {
                let mut buffer = vec![0u128; 32 * 1024];
                // SAFETY: u128 has no invalid bit patterns; the byte view covers the same memory.
                let bytes = unsafe {
                    core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len() * 16)
                };
                let heap = FreeList::over_buffer(bytes, placement).with_order(order);
                drive(&heap, &mixed_ops());
            }
        }
    }

    #[test]
    fn a_full_buffer_counts_its_failures() {
        let mut buffer = vec![0u128; 1024];
        // SAFETY: u128 has no invalid bit patterns; the byte view covers the same memory.
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len() * 16) };
        let heap = FreeList::over_buffer(bytes, Placement::BestFit);
        let ops: Vec<HeapOp> = (0..8).map(|seed| HeapOp::Alloc { size: 4000, align: 8, seed }).collect();
        drive(&heap, &ops);
        assert!(heap.stats().failures > 0, "16 KiB cannot hold eight 4000-byte blocks");
    }

    #[test]
    fn the_size_class_heap_passes_on_chunks_and_reservations() {
        let source = private_source(3);
        let heap = SizeClass::with_source(Arc::clone(&source));
        drive(&heap, &mixed_ops());
        drop(heap);
        assert_eq!(source.stats().chunks_in_use, 0);
        let heap = SizeClass::from_sources(Reservation::new(4 << 20), Reservation::new(4 << 20));
        drive(&heap, &mixed_ops());
    }

    /// What a [`Liar`] gets wrong.
    #[derive(Debug, Clone, Copy)]
    enum Lie {
        /// Its second block is its first one again.
        HandsOutTwice,
        /// Its realloc moves the block without copying it.
        ForgetsOnRealloc,
        /// It reports one live byte more than it has.
        Miscounts,
    }

    /// A size-class heap with one bug, to show that the model catches it.
    struct Liar {
        heap: SizeClass<Arc<allockit::ChunkSource>>,
        lie: Lie,
        first: Cell<Option<NonNull<u8>>>,
    }

    impl Liar {
        fn new(lie: Lie) -> Self {
            Self { heap: SizeClass::with_source(private_source(3)), lie, first: Cell::new(None) }
        }
    }

    impl Heap for Liar {
        fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, HeapError> {
            let ptr = self.heap.alloc(layout)?;
            match (self.lie, self.first.get()) {
                (Lie::HandsOutTwice, Some(first)) => Ok(first),
                _ => {
                    self.first.set(Some(ptr));
                    Ok(ptr)
                }
            }
        }

        unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: forwarded from the caller.
            unsafe { self.heap.free(ptr, layout) }
        }

        unsafe fn realloc(
            &self,
            ptr: NonNull<u8>,
            layout: Layout,
            new_size: usize,
        ) -> Result<NonNull<u8>, HeapError> {
            if let Lie::ForgetsOnRealloc = self.lie {
                let new_layout = Layout::from_size_align(new_size, layout.align()).expect("a valid layout");
                let new = self.heap.alloc(new_layout)?;
                // SAFETY: forwarded from the caller.
                unsafe { self.heap.free(ptr, layout) };
                return Ok(new);
            }
            // SAFETY: forwarded from the caller.
            unsafe { self.heap.realloc(ptr, layout, new_size) }
        }

        fn stats(&self) -> Stats {
            let mut stats = self.heap.stats();
            if let Lie::Miscounts = self.lie {
                stats.live_bytes += 1;
            }
            stats
        }
    }

    // SAFETY: blocks come from the size-class heap, which is an `Allocator`; the liar's own
    // bugs are what the tests below expect the model to report.
    unsafe impl Allocator for Liar {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            let ptr = Heap::alloc(self, layout).map_err(|_| AllocError)?;
            Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
        }

        unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: forwarded from the caller.
            unsafe { Heap::free(self, ptr, layout) }
        }
    }

    impl ModelHeap for Liar {
        fn check(&self, after: &HeapOp) {
            self.heap.check(after);
        }
        fn check_empty(&self) {
            self.heap.check_empty();
        }
    }

    #[test]
    #[should_panic(expected = "overlaps live block")]
    fn a_block_handed_out_twice_is_caught() {
        let heap = Liar::new(Lie::HandsOutTwice);
        drive(
            &heap,
            &[HeapOp::Alloc { size: 32, align: 8, seed: 1 }, HeapOp::Alloc { size: 32, align: 8, seed: 2 }],
        );
    }

    #[test]
    #[should_panic(expected = "a resized block")]
    fn a_realloc_that_loses_the_contents_is_caught() {
        let heap = Liar::new(Lie::ForgetsOnRealloc);
        drive(
            &heap,
            &[HeapOp::Alloc { size: 32, align: 8, seed: 1 }, HeapOp::Realloc { pick: 0, size: 4000 }],
        );
    }

    #[test]
    #[should_panic(expected = "live bytes")]
    fn a_counter_off_by_one_is_caught() {
        let heap = Liar::new(Lie::Miscounts);
        drive(&heap, &[HeapOp::Alloc { size: 32, align: 8, seed: 1 }]);
    }
}
