use core::alloc::Layout;
use std::sync::Arc;

use super::*;
use crate::source::chunk::{ChunkConfig, ChunkSource};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn source(chunks: usize) -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig {
        chunk_size: 64 * 1024,
        region_size: chunks * 64 * 1024,
        initial_regions: 1,
        max_regions: 1,
        retain_idle_bytes: 0,
        commit_step: 64 * 1024,
    })
    .unwrap()
}

#[test]
fn a_freed_block_is_the_next_one_handed_out_in_its_class() {
    let heap = SizeClass::with_source(source(16));
    let a = heap.alloc(layout(100)).unwrap();
    let b = heap.alloc(layout(110)).unwrap();
    assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), stride(112), "same class, carved back to back");
    // SAFETY: allocated above.
    unsafe { heap.free(a, layout(100)) };
    assert_eq!(heap.alloc(layout(97)).unwrap(), a);
    let other_class = heap.alloc(layout(200)).unwrap();
    assert_ne!(other_class, a);
}

#[test]
fn class_stats_report_requested_against_handed_out_bytes() {
    let heap = SizeClass::with_source(source(16));
    let blocks: Vec<_> = (0..10).map(|_| heap.alloc(layout(100)).unwrap()).collect();
    let class = heap.class_stats()[class_of(100, 8).unwrap()];
    assert_eq!(class.class_size, 112);
    assert_eq!((class.requests, class.requested_bytes, class.handed_out_bytes()), (10, 1000, 1120));
    assert!((class.internal_fragmentation() - (1.0 - 1000.0 / 1120.0)).abs() < 1e-12);
    assert!((heap.internal_fragmentation() - class.internal_fragmentation()).abs() < 1e-12);
    for block in blocks {
        // SAFETY: allocated above.
        unsafe { heap.free(block, layout(100)) };
    }
    let class = heap.class_stats()[class_of(100, 8).unwrap()];
    assert_eq!((class.frees, class.live_blocks(), class.slabs), (10, 0, 1));
}

#[test]
fn a_class_takes_a_new_slab_only_when_its_slab_is_used_up() {
    let source = source(16);
    let heap = SizeClass::with_source(Arc::clone(&source));
    let class = class_of(4096, 8).unwrap();
    let blocks: Vec<_> = (0..MIN_BLOCKS_PER_SLAB).map(|_| heap.alloc(layout(4096)).unwrap()).collect();
    assert_eq!(heap.class_stats()[class].slabs, 1);
    let next = heap.alloc(layout(4096)).unwrap();
    assert_eq!(heap.class_stats()[class].slabs, 2);
    assert_eq!(heap.stats().chunks, 1, "both slabs were cut from one chunk");
    let mut starts: Vec<_> = blocks.iter().chain([&next]).map(|b| b.as_ptr().addr()).collect();
    starts.sort_unstable();
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 4096), "blocks do not overlap");
}

#[test]
fn slabs_of_many_classes_share_a_chunk() {
    let source = source(16);
    let heap = SizeClass::with_source(Arc::clone(&source));
    for &size in &CLASS_SIZES[..12] {
        heap.alloc(layout(size)).unwrap();
    }
    let stats = heap.stats();
    assert_eq!(stats.chunks, 1, "12 slabs of about 4 KiB, one chunk: {stats:?}");
    assert_eq!(source.stats().chunks_in_use, 1);
    assert!(heap.class_stats()[..12].iter().all(|class| class.slabs == 1));
}

#[test]
fn a_class_moves_to_a_new_chunk_when_the_current_one_is_full() {
    let source = source(16);
    let heap = SizeClass::with_source(Arc::clone(&source));
    // The header at the chunk's start costs the largest class a whole alignment unit.
    let per_chunk = (source.usable_chunk_size() - MAX_SMALL_ALIGN) / stride(MAX_SMALL);
    for _ in 0..per_chunk {
        heap.alloc(layout(MAX_SMALL)).unwrap();
    }
    assert_eq!(heap.stats().chunks, 1);
    heap.alloc(layout(MAX_SMALL)).unwrap();
    assert_eq!(heap.stats().chunks, 2);
}

#[test]
fn every_alignment_is_honoured_small_and_large() {
    let heap = SizeClass::with_source(source(64));
    for align in (0..=14).map(|shift| 1usize << shift) {
        for size in [0, 1, 24, 100, 3000, 20_000] {
            let wanted = Layout::from_size_align(size, align).unwrap();
            let block = heap.alloc(wanted).unwrap();
            assert!(block.as_ptr().addr().is_multiple_of(align), "size {size} align {align}");
            // SAFETY: the block holds `size` bytes.
            unsafe { block.as_ptr().write_bytes(0xA5, size) };
            // SAFETY: allocated above with `wanted`.
            unsafe { heap.free(block, wanted) };
        }
    }
    assert_eq!(heap.stats().live_bytes, 0);
    heap.large().check().unwrap();
}

#[test]
fn requests_above_the_largest_class_take_the_large_heap() {
    let heap = SizeClass::with_source(source(64));
    let big = layout(100_000);
    let block = heap.alloc(big).unwrap();
    assert_eq!(heap.large().stats().allocations, 1);
    assert_eq!(heap.large().stats().live_bytes, 100_000);
    assert_eq!(heap.stats().live_bytes, 100_000);
    // SAFETY: allocated above with `big`.
    unsafe { heap.free(block, big) };
    assert_eq!(heap.large().stats().live_bytes, 0);
    assert_eq!(heap.stats().allocations, 1);
    heap.large().check().unwrap();
}

#[test]
fn realloc_stays_in_place_within_a_class_and_moves_across_classes() {
    let heap = SizeClass::with_source(source(64));
    let a = heap.alloc(layout(100)).unwrap();
    // SAFETY: a holds 100 bytes.
    unsafe { a.as_ptr().write_bytes(7, 100) };
    // SAFETY: a came from this heap with layout(100); the results likewise.
    unsafe {
        let same = heap.realloc(a, layout(100), 112).unwrap();
        assert_eq!(same, a);
        let moved = heap.realloc(same, layout(112), 5000).unwrap();
        assert_ne!(moved, a);
        assert!(core::slice::from_raw_parts(moved.as_ptr(), 100).iter().all(|&b| b == 7));
        let large = heap.realloc(moved, layout(5000), 50_000).unwrap();
        assert!(core::slice::from_raw_parts(large.as_ptr(), 100).iter().all(|&b| b == 7));
        let larger = heap.realloc(large, layout(50_000), 60_000).unwrap();
        assert!(core::slice::from_raw_parts(larger.as_ptr(), 100).iter().all(|&b| b == 7));
        assert_eq!(heap.stats().live_bytes, 60_000);
        let back = heap.realloc(larger, layout(60_000), 10).unwrap();
        assert!(core::slice::from_raw_parts(back.as_ptr(), 10).iter().all(|&b| b == 7));
        heap.free(back, layout(10));
    }
    assert_eq!(heap.stats().live_bytes, 0);
    // The move back to a small class held both blocks for a moment.
    assert_eq!(heap.stats().high_water_bytes, 60_010);
}

#[test]
fn exhaustion_is_an_error_and_dropping_the_heap_returns_every_chunk() {
    let source = source(4);
    let heap = SizeClass::with_source(Arc::clone(&source));
    let mut blocks = 0;
    while heap.alloc(layout(1000)).is_ok() {
        blocks += 1;
    }
    // Each chunk: the header, then 1024-aligned slots (1024 bytes, 2048 with the guards).
    let per_chunk = (source.usable_chunk_size() - 1024) / stride(1024);
    assert_eq!(blocks, 4 * per_chunk, "four chunks of 1024-byte blocks");
    assert!(matches!(heap.alloc(layout(1 << 20)), Err(HeapError::Exhausted { .. })));
    assert_eq!(heap.stats().failures, 2);
    assert_eq!(source.stats().chunks_in_use, 4);
    drop(heap);
    assert_eq!(source.stats().chunks_in_use, 0);
}

#[test]
fn zero_size_requests_get_distinct_blocks() {
    let heap = SizeClass::with_source(source(4));
    let empty = Layout::from_size_align(0, 1).unwrap();
    let a = heap.alloc(empty).unwrap();
    let b = heap.alloc(empty).unwrap();
    assert_ne!(a, b);
    // SAFETY: both allocated with `empty`.
    unsafe {
        heap.free(a, empty);
        heap.free(b, empty);
    }
    assert_eq!(heap.stats().frees, 2);
}

#[cfg(feature = "guard")]
#[test]
fn a_write_after_free_is_caught_when_the_block_is_recycled() {
    let heap = SizeClass::with_source(source(4));
    let a = heap.alloc(layout(64)).unwrap();
    // SAFETY: allocated above; the write after the free is the bug under test, into memory
    // the heap still owns.
    unsafe {
        heap.free(a, layout(64));
        a.as_ptr().add(32).write(1);
    }
    let message = crate::guard::message_of(|| drop(heap.alloc(layout(64))));
    assert_eq!(
        message,
        format!("allockit guard: write after free detected in size-class block {a:p} at offset 32")
    );
}
