//! Property tests of the general heaps against a shadow model: random sequences of
//! alloc, free and realloc (zero sizes, alignments up to 8 KiB, large blocks) must keep
//! every live block's contents, honour every alignment, never overlap, keep the counters
//! consistent, and (free list) pass `check()` after every single operation.
//!
//! Case counts are modest so that `cargo test` stays fast; for a long run set
//! `PROPTEST_CASES`, e.g. `PROPTEST_CASES=5000 cargo test -p allockit --release --test heaps_model`.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::collections::BTreeMap;
use std::sync::Arc;

use allockit::chunk::{ChunkConfig, ChunkSource};
use allockit::freelist::{FreeList, FreeOrder, Placement};
use allockit::heap::{Heap, SpanSource};
use allockit::sizeclass::SizeClass;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align: usize },
    Free { pick: usize },
    Realloc { pick: usize, size: usize },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=64,
        4 => 65usize..=2048,
        2 => 2049usize..=20_000,
        1 => 20_001usize..=100_000,
    ]
}

fn align() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => (0u32..=3).prop_map(|shift| 1usize << shift),
        2 => (4u32..=13).prop_map(|shift| 1usize << shift),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (size(), align()).prop_map(|(size, align)| Op::Alloc { size, align }),
        3 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        2 => (any::<usize>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A heap under test: the shared [`Heap`] interface and a check of its own invariants.
trait ModelHeap: Heap {
    fn check(&self) -> Result<(), String>;
}

impl<S: SpanSource> ModelHeap for FreeList<S> {
    fn check(&self) -> Result<(), String> {
        FreeList::check(self).map_err(|e| e.to_string())
    }
}

impl<S: SpanSource> ModelHeap for SizeClass<S> {
    fn check(&self) -> Result<(), String> {
        self.large().check().map_err(|e| e.to_string())
    }
}

/// A live block in the model: where it is, its layout, the byte it is filled with.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    fill: u8,
}

fn fill(block: &Block) {
    // SAFETY: the block is live and holds `layout.size()` bytes.
    unsafe { block.ptr.as_ptr().write_bytes(block.fill, block.layout.size()) };
}

fn holds_its_fill(block: &Block, len: usize) -> bool {
    // SAFETY: the block is live and holds at least `len` bytes.
    unsafe { core::slice::from_raw_parts(block.ptr.as_ptr(), len) }.iter().all(|&b| b == block.fill)
}

/// Runs `ops` against `heap` and the model, checking everything after every operation.
fn run_model(heap: &impl ModelHeap, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut live: Vec<Block> = Vec::new();
    let mut next_fill = 1u8;
    let mut failures = heap.stats().failures;
    for op in ops {
        match *op {
            Op::Alloc { size, align } => {
                let layout = Layout::from_size_align(size, align).unwrap();
                match heap.alloc(layout) {
                    Ok(ptr) => {
                        prop_assert!(
                            ptr.as_ptr().addr().is_multiple_of(align),
                            "misaligned {ptr:?} for {layout:?}"
                        );
                        let block = Block { ptr, layout, fill: next_fill };
                        next_fill = next_fill.wrapping_add(1).max(1);
                        fill(&block);
                        live.push(block);
                    }
                    Err(_) => failures += 1,
                }
            }
            Op::Free { pick } if !live.is_empty() => {
                let block = live.swap_remove(pick % live.len());
                prop_assert!(holds_its_fill(&block, block.layout.size()), "contents lost before free");
                // SAFETY: a live block of this heap with its current layout, dropped here.
                unsafe { heap.free(block.ptr, block.layout) };
            }
            Op::Realloc { pick, size } if !live.is_empty() => {
                let index = pick % live.len();
                let old = &live[index];
                // SAFETY: a live block of this heap with its current layout.
                match unsafe { heap.realloc(old.ptr, old.layout, size) } {
                    Ok(ptr) => {
                        let layout = Layout::from_size_align(size, old.layout.align()).unwrap();
                        let kept = old.layout.size().min(size);
                        let block = Block { ptr, layout, fill: old.fill };
                        prop_assert!(
                            ptr.as_ptr().addr().is_multiple_of(layout.align()),
                            "realloc misaligned"
                        );
                        prop_assert!(holds_its_fill(&block, kept), "realloc lost contents");
                        fill(&block);
                        live[index] = block;
                    }
                    Err(_) => failures += 1,
                }
            }
            Op::Free { .. } | Op::Realloc { .. } => {}
        }
        if let Err(corruption) = heap.check() {
            return Err(TestCaseError::fail(format!("after {op:?}: {corruption}")));
        }
        let stats = heap.stats();
        prop_assert_eq!(stats.live_bytes, live.iter().map(|b| b.layout.size()).sum::<usize>());
        prop_assert_eq!(stats.allocations - stats.frees, live.len() as u64);
        prop_assert_eq!(stats.failures, failures);
        prop_assert!(stats.high_water_bytes >= stats.live_bytes);
        prop_assert!(stats.footprint_bytes >= stats.live_bytes);
        let mut extents = BTreeMap::new();
        for block in &live {
            extents.insert(block.ptr.as_ptr().addr(), block.layout.size().max(1));
        }
        let mut end = 0;
        for (&start, &len) in &extents {
            prop_assert!(start >= end, "blocks overlap at {start:#x}");
            end = start + len;
        }
    }
    for block in &live {
        prop_assert!(holds_its_fill(block, block.layout.size()), "contents lost");
    }
    for block in live {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { heap.free(block.ptr, block.layout) };
    }
    prop_assert_eq!(heap.stats().live_bytes, 0);
    heap.check().map_err(TestCaseError::fail)
}

fn private_source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig {
        chunk_size: 64 * 1024,
        region_size: 64 << 20,
        initial_regions: 1,
        max_regions: 1,
        retain_idle_bytes: 1 << 20,
        commit_step: 1 << 20,
    })
    .unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn free_list_over_a_buffer_matches_the_model(
        ops in proptest::collection::vec(op(), 1..300),
        placement in proptest::sample::select(Placement::ALL.to_vec()),
        order in proptest::sample::select(vec![FreeOrder::Lifo, FreeOrder::Fifo]),
    ) {
        // 512 KiB: small enough that exhaustion happens and must be an error.
        let mut buffer = vec![0u128; 32 * 1024];
        // SAFETY: u128 has no invalid bit patterns; the byte view covers the same memory.
        let bytes = unsafe { core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len() * 16) };
        let heap = FreeList::over_buffer(bytes, placement).with_order(order);
        run_model(&heap, &ops)?;
    }

    #[test]
    fn free_list_on_the_chunk_source_matches_the_model(
        ops in proptest::collection::vec(op(), 1..300),
        placement in proptest::sample::select(Placement::ALL.to_vec()),
        order in proptest::sample::select(vec![FreeOrder::Lifo, FreeOrder::Fifo]),
    ) {
        let source = private_source();
        let heap = FreeList::with_source(Arc::clone(&source), placement)
            .with_order(order)
            .with_segment_bytes(64 * 1024);
        run_model(&heap, &ops)?;
        prop_assert!(heap.stats().chunks <= 1, "empty segments went back, at most one stays");
        drop(heap);
        prop_assert_eq!(source.stats().chunks_in_use, 0);
    }

    #[test]
    fn size_class_heap_matches_the_model(ops in proptest::collection::vec(op(), 1..300)) {
        let source = private_source();
        let heap = SizeClass::with_source(Arc::clone(&source));
        run_model(&heap, &ops)?;
        let classes = heap.class_stats();
        for class in classes {
            prop_assert_eq!(class.live_blocks(), 0);
            prop_assert!(class.requested_bytes <= class.handed_out_bytes());
        }
        drop(heap);
        prop_assert_eq!(source.stats().chunks_in_use, 0);
    }
}
