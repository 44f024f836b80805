//! The driver the two general-heap targets share (`freelist`, `sizeclass`): a random
//! sequence of alloc, free, realloc and `Allocator` grow/shrink (which may change the
//! alignment) against the shadow model.
//!
//! After every operation: the heap's own `check()` passes, every block handed out is
//! aligned and overlaps no live block, a touched block kept its contents, and the counters
//! agree with the model (live bytes, live blocks, failures). At the end every block still
//! holds its contents, and once all are freed the heap is fully coalesced: one free block
//! per segment.

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use allockit::heap::{Heap, SpanSource};
use allockit::{FreeList, FreeStats, SizeClass};
use arbitrary::Arbitrary;

use crate::{Align, Extents, Size, assert_aligned, assert_holds, fill, pick};

/// The largest alignment the heap targets ask for: 2^13 = 8 KiB.
pub const MAX_ALIGN_SHIFT: u32 = 13;

/// One step of a heap target.
#[derive(Debug, Clone, Arbitrary)]
pub enum HeapOp {
    /// `alloc(size, align)`, then fill the block.
    Alloc {
        /// Bytes.
        size: Size,
        /// Alignment.
        align: Align,
        /// Seed of the block's pattern.
        seed: u8,
    },
    /// `free` of a live block.
    Free {
        /// Which live block.
        pick: u16,
    },
    /// `realloc` of a live block to a new size, same alignment.
    Realloc {
        /// Which live block.
        pick: u16,
        /// The new size.
        size: Size,
    },
    /// `Allocator::grow` or `shrink` of a live block, to a new size and alignment.
    Resize {
        /// Which live block.
        pick: u16,
        /// The new size.
        size: Size,
        /// The new alignment.
        align: Align,
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
/// empty. Panics on the first disagreement.
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
                let layout = Layout::from_size_align(size.bytes(), align.bytes(MAX_ALIGN_SHIFT))
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
                    let new_size = size.bytes();
                    // SAFETY: a live block of this heap with its current layout.
                    match unsafe { heap.realloc(old.ptr, old.layout, new_size) } {
                        Ok(ptr) => {
                            let layout = Layout::from_size_align(new_size, old.layout.align())
                                .expect("a valid layout");
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
                    let layout = Layout::from_size_align(size.bytes(), align.bytes(MAX_ALIGN_SHIFT))
                        .expect("a valid layout");
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
