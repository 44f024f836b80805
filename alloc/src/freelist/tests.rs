use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::Arc;

use super::*;
use crate::source::Reservation;
use crate::source::chunk::{ChunkConfig, ChunkSource};

/// A 16-aligned buffer for heaps in tests.
fn buffer(bytes: usize) -> Vec<u128> {
    vec![0u128; bytes / 16]
}

fn bytes(buffer: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128 has no invalid bit patterns and u8 has alignment 1.
    unsafe { core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len() * 16) }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Allocates and checks the heap.
fn alloc_checked<S: SpanSource>(heap: &FreeList<S>, size: usize) -> NonNull<u8> {
    let ptr = heap.alloc(layout(size)).unwrap();
    heap.check().unwrap();
    ptr
}

/// Frees and checks the heap.
fn free_checked<S: SpanSource>(heap: &FreeList<S>, ptr: NonNull<u8>, size: usize) {
    // SAFETY: tests pass blocks they allocated with this size and drop them here.
    unsafe { heap.free(ptr, layout(size)) };
    heap.check().unwrap();
}

#[test]
fn a_block_is_split_only_when_the_remainder_holds_a_minimum_block() {
    let mut memory = buffer(16 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = alloc_checked(&heap, 100);
    let hole = alloc_checked(&heap, 100); // a 128-byte block
    let c = alloc_checked(&heap, 100);
    free_checked(&heap, hole, 100);
    let free_with_hole = heap.free_stats();
    assert_eq!(free_with_hole.free_blocks, 2);

    // 88 bytes need a 112-byte block: the 16-byte remainder is too small to split off.
    let reused = alloc_checked(&heap, 88);
    assert_eq!(reused, hole);
    assert_eq!(heap.free_stats().free_blocks, 1);
    assert_eq!(heap.free_stats().free_bytes, free_with_hole.free_bytes - 128);
    free_checked(&heap, reused, 88);

    // 80 bytes need a 96-byte block: the 32-byte remainder becomes a free block.
    let split = alloc_checked(&heap, 80);
    assert_eq!(split, hole);
    assert_eq!(heap.free_stats().free_blocks, 2);
    assert_eq!(heap.free_stats().free_bytes, free_with_hole.free_bytes - 96);
    for (ptr, size) in [(split, 80), (a, 100), (c, 100)] {
        free_checked(&heap, ptr, size);
    }
    assert_eq!(heap.free_stats().free_blocks, 1);
}

#[test]
fn usable_size_is_the_request_rounded_to_16_bytes_of_payload() {
    let mut memory = buffer(16 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    for (request, usable) in [(0, 16), (1, 16), (16, 16), (17, 32), (65, 80), (100, 112), (200, 208)] {
        let ptr = alloc_checked(&heap, request);
        // SAFETY: a block just allocated from this heap.
        assert_eq!(unsafe { heap.usable_size(ptr) }, usable, "request {request}");
        free_checked(&heap, ptr, request);
    }
}

#[test]
fn free_coalesces_with_the_previous_and_the_next_neighbour() {
    let mut memory = buffer(16 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let blocks: Vec<_> = (0..4).map(|_| alloc_checked(&heap, 64)).collect();
    free_checked(&heap, blocks[0], 64);
    free_checked(&heap, blocks[2], 64);
    assert_eq!(heap.free_stats().free_blocks, 3, "two holes and the tail");
    free_checked(&heap, blocks[1], 64);
    assert_eq!(heap.free_stats().free_blocks, 2, "the three front blocks became one");
    assert_eq!(heap.free_stats().largest_free, heap.free_stats().free_bytes - 3 * 80);
    free_checked(&heap, blocks[3], 64);
    let free = heap.free_stats();
    assert_eq!(free.free_blocks, 1);
    assert_eq!(free.external_fragmentation(), 0.0);
}

#[test]
fn holes_cannot_serve_a_larger_request_until_the_rest_is_freed_and_coalesced() {
    // Seed task 3: many small blocks, free every other one; a larger request fails
    // although enough bytes are free in total; free the rest and it succeeds.
    let mut memory = buffer(32 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let mut small = Vec::new();
    while let Ok(ptr) = heap.alloc(layout(64)) {
        small.push(ptr);
    }
    heap.check().unwrap();
    assert!(small.len() > 300);
    let mut kept = Vec::new();
    for (i, ptr) in small.into_iter().enumerate() {
        if i % 2 == 0 {
            free_checked(&heap, ptr, 64);
        } else {
            kept.push(ptr);
        }
    }
    let holes = heap.free_stats();
    let large = layout(1024);
    assert!(holes.free_bytes > 8 * large.size(), "plenty of bytes are free in total");
    assert!(holes.external_fragmentation() > 0.95, "but they are scattered: {holes:?}");
    let failures = heap.stats().failures;
    assert!(matches!(heap.alloc(large), Err(HeapError::Exhausted { .. })));
    assert_eq!(heap.stats().failures, failures + 1);
    heap.check().unwrap();

    for ptr in kept {
        free_checked(&heap, ptr, 64);
    }
    assert_eq!(heap.free_stats().external_fragmentation(), 0.0);
    let served = heap.alloc(large).unwrap();
    heap.check().unwrap();
    free_checked(&heap, served, 1024);
}

/// Builds free holes of 512, 256 and 1024 payload bytes, freed so that the LIFO list
/// reads 512, 256, 1024 from its head, and a heap with no other free block.
fn heap_with_three_holes(
    memory: &mut [u128],
    placement: Placement,
) -> (FreeList<BufferSource<'_>>, [NonNull<u8>; 3]) {
    let heap = FreeList::over_buffer(bytes(memory), placement);
    let sizes = [1024, 256, 512];
    let mut holes = Vec::new();
    for size in sizes {
        holes.push(alloc_checked(&heap, size));
        alloc_checked(&heap, 16); // a separator that stays in use
    }
    while heap.alloc(layout(16)).is_ok() {}
    for (ptr, size) in holes.iter().zip(sizes) {
        free_checked(&heap, *ptr, size);
    }
    (heap, [holes[2], holes[1], holes[0]])
}

#[test]
fn first_fit_takes_the_first_listed_block_that_fits() {
    let mut memory = buffer(8 * 1024);
    let (heap, [h512, _h256, _h1024]) = heap_with_three_holes(&mut memory, Placement::FirstFit);
    assert_eq!(alloc_checked(&heap, 200), h512);
}

#[test]
fn best_fit_takes_the_smallest_block_that_fits() {
    let mut memory = buffer(8 * 1024);
    let (heap, [_h512, h256, h1024]) = heap_with_three_holes(&mut memory, Placement::BestFit);
    assert_eq!(alloc_checked(&heap, 200), h256);
    assert_eq!(alloc_checked(&heap, 600), h1024);
}

#[test]
fn next_fit_resumes_where_the_previous_search_stopped() {
    let mut memory = buffer(8 * 1024);
    let (heap, [h512, _h256, h1024]) = heap_with_three_holes(&mut memory, Placement::NextFit);
    assert_eq!(alloc_checked(&heap, 600), h1024);
    // First fit would go back to the 512-byte hole at the head; next fit continues in
    // the remainder of the 1024-byte hole.
    let next = alloc_checked(&heap, 200);
    assert_eq!(next.as_ptr().addr(), h1024.as_ptr().addr() + 624);
    assert_ne!(next, h512);
}

#[test]
fn searches_count_the_free_list_entries_they_look_at() {
    let searched = |heap: &FreeList<BufferSource<'_>>| heap.free_stats().searched_blocks;
    // The list reads 512, 256, 1024 from its head, and nothing else is free.
    let mut memory = buffer(8 * 1024);
    let (first, _) = heap_with_three_holes(&mut memory, Placement::FirstFit);
    let before = searched(&first);
    alloc_checked(&first, 200); // the head fits
    assert_eq!(searched(&first) - before, 1);
    alloc_checked(&first, 600); // the rest of the 512 hole, 256, then 1024
    assert_eq!(searched(&first) - before, 1 + 3);

    let mut memory = buffer(8 * 1024);
    let (best, _) = heap_with_three_holes(&mut memory, Placement::BestFit);
    let before = searched(&best);
    alloc_checked(&best, 200); // best fit looks at every entry
    assert_eq!(searched(&best) - before, 3);
}

/// Two equal holes, the first freed first, and a wilderness at the end.
fn two_holes(heap: &FreeList<BufferSource<'_>>) -> (NonNull<u8>, NonNull<u8>) {
    let older = alloc_checked(heap, 200);
    alloc_checked(heap, 16);
    let newer = alloc_checked(heap, 200);
    alloc_checked(heap, 16);
    free_checked(heap, older, 200);
    free_checked(heap, newer, 200);
    (older, newer)
}

#[test]
fn lifo_order_reuses_the_newest_hole_and_fifo_the_oldest() {
    let mut memory = buffer(8 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let (_, newer) = two_holes(&heap);
    assert_eq!(alloc_checked(&heap, 200), newer);

    let mut memory = buffer(8 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit).with_order(FreeOrder::Fifo);
    let (older, _) = two_holes(&heap);
    assert_eq!(alloc_checked(&heap, 200), older);
}

#[test]
fn holes_are_reused_before_the_wilderness_in_every_order() {
    for order in [FreeOrder::Lifo, FreeOrder::Fifo] {
        for placement in Placement::ALL {
            let mut memory = buffer(8 * 1024);
            let heap = FreeList::over_buffer(bytes(&mut memory), placement).with_order(order);
            let (older, newer) = two_holes(&heap);
            let first = alloc_checked(&heap, 100);
            let second = alloc_checked(&heap, 100);
            for ptr in [first, second] {
                let in_a_hole = [older, newer]
                    .iter()
                    .any(|hole| (hole.as_ptr()..hole.as_ptr().wrapping_add(200)).contains(&ptr.as_ptr()));
                assert!(in_a_hole, "{placement:?} {order:?} cut into the wilderness");
            }
        }
    }
}

#[test]
fn realloc_grows_in_place_into_a_free_next_neighbour() {
    let mut memory = buffer(16 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = alloc_checked(&heap, 100);
    // SAFETY: a holds 100 bytes.
    unsafe { a.as_ptr().write_bytes(0x5A, 100) };
    let b = alloc_checked(&heap, 200);
    let guard = alloc_checked(&heap, 16);
    free_checked(&heap, b, 200);
    // SAFETY: a came from this heap with layout(100).
    let grown = unsafe { heap.realloc(a, layout(100), 300) }.unwrap();
    heap.check().unwrap();
    assert_eq!(grown, a, "grew into the free neighbour");
    // SAFETY: the first 100 bytes were preserved.
    assert!(unsafe { core::slice::from_raw_parts(grown.as_ptr(), 100) }.iter().all(|&x| x == 0x5A));

    // The neighbour is in use now: growing further must move, keeping the contents.
    // SAFETY: as above, with the layout of the last realloc.
    let moved = unsafe { heap.realloc(grown, layout(300), 2000) }.unwrap();
    heap.check().unwrap();
    assert_ne!(moved, a);
    // SAFETY: the first 100 bytes were copied.
    assert!(unsafe { core::slice::from_raw_parts(moved.as_ptr(), 100) }.iter().all(|&x| x == 0x5A));
    free_checked(&heap, moved, 2000);
    free_checked(&heap, guard, 16);
    assert_eq!(heap.stats().live_bytes, 0);
}

#[test]
fn realloc_shrinks_in_place_and_frees_the_tail() {
    let mut memory = buffer(16 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = alloc_checked(&heap, 1000);
    let _keep = alloc_checked(&heap, 16);
    let free_before = heap.free_stats().free_bytes;
    // SAFETY: a came from this heap with layout(1000).
    let shrunk = unsafe { heap.realloc(a, layout(1000), 100) }.unwrap();
    heap.check().unwrap();
    assert_eq!(shrunk, a);
    assert_eq!(heap.free_stats().free_bytes, free_before + 1024 - 128);
    assert_eq!(heap.stats().live_bytes, 116);
}

#[test]
fn large_alignments_are_honoured_and_leave_a_valid_heap() {
    let mut memory = buffer(256 * 1024);
    for placement in Placement::ALL {
        let heap = FreeList::over_buffer(bytes(&mut memory), placement);
        let mut live = Vec::new();
        for (i, align) in [32usize, 64, 128, 256, 512, 1024, 4096, 8192].into_iter().enumerate() {
            alloc_checked(&heap, 8 + i); // misalign the tail between requests
            let wanted = Layout::from_size_align(24 + i * 40, align).unwrap();
            let ptr = heap.alloc(wanted).unwrap();
            heap.check().unwrap();
            assert!(ptr.as_ptr().addr().is_multiple_of(align), "{placement:?} align {align}");
            live.push((ptr, wanted));
        }
        for (ptr, wanted) in live {
            // SAFETY: allocated above with `wanted`.
            unsafe { heap.free(ptr, wanted) };
            heap.check().unwrap();
        }
    }
}

#[test]
fn zero_size_requests_get_distinct_blocks() {
    let mut memory = buffer(4 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let empty = Layout::from_size_align(0, 1).unwrap();
    let a = heap.alloc(empty).unwrap();
    let b = heap.alloc(empty).unwrap();
    assert_ne!(a, b);
    heap.check().unwrap();
    // SAFETY: both allocated with `empty`.
    unsafe {
        heap.free(a, empty);
        heap.free(b, empty);
    }
    heap.check().unwrap();
}

#[test]
fn exhausting_a_buffer_is_an_error_and_the_heap_stays_usable() {
    let mut memory = buffer(4 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::BestFit);
    let mut live = Vec::new();
    loop {
        match heap.alloc(layout(100)) {
            Ok(ptr) => live.push(ptr),
            Err(HeapError::Exhausted { requested: 100, .. }) => break,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(heap.alloc(layout(1 << 40)).is_err());
    assert_eq!(heap.stats().failures, 2);
    free_checked(&heap, live.pop().unwrap(), 100);
    assert!(heap.alloc(layout(100)).is_ok());
    heap.check().unwrap();
}

fn small_source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig {
        chunk_size: 64 * 1024,
        region_size: 64 * 64 * 1024,
        initial_regions: 1,
        max_regions: 1,
        retain_idle_bytes: 0,
        commit_step: 256 * 1024,
    })
    .unwrap()
}

#[test]
fn a_heap_on_the_chunk_source_grows_by_segments_and_gives_empty_ones_back() {
    let source = small_source();
    let heap = FreeList::with_source(Arc::clone(&source), Placement::FirstFit);
    let mut live = Vec::new();
    for _ in 0..200 {
        live.push(alloc_checked(&heap, 4000));
    }
    let grown = heap.stats();
    assert!(grown.chunks > 1, "200 × 4 KB needs several segments: {grown:?}");
    assert!(grown.footprint_bytes >= 800_000);
    let guard = source.chunk_size() - source.usable_chunk_size();
    let held = |segments: usize| source.stats().chunks_in_use * source.chunk_size() - segments * guard;
    assert_eq!(held(grown.chunks), grown.footprint_bytes);
    let large = alloc_checked(&heap, 1 << 20);
    for ptr in live {
        free_checked(&heap, ptr, 4000);
    }
    free_checked(&heap, large, 1 << 20);
    let stats = heap.stats();
    assert_eq!(stats.chunks, 1, "every empty segment but one went back");
    let large_segment = 17 * source.chunk_size() - guard;
    assert_eq!(heap.free_stats().peak_footprint_bytes, grown.footprint_bytes + large_segment);
    assert_eq!(stats.footprint_bytes, large_segment);
    assert_eq!(held(1), stats.footprint_bytes);
    drop(heap);
    assert_eq!(source.stats().chunks_in_use, 0);
}

#[test]
fn requests_beyond_the_source_are_errors() {
    let heap = FreeList::with_source(small_source(), Placement::FirstFit);
    assert!(matches!(heap.alloc(layout(1 << 30)), Err(HeapError::Exhausted { .. })));
    let huge = Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap();
    assert!(heap.alloc(huge).is_err());
    assert_eq!(heap.stats().failures, 2);
}

#[test]
fn a_reservation_backed_heap_joins_consecutive_spans_into_one_segment() {
    let heap = FreeList::with_source(Reservation::new(64 << 20), Placement::FirstFit);
    let first = alloc_checked(&heap, 100);
    let big = alloc_checked(&heap, 3 << 20);
    let stats = heap.stats();
    assert_eq!(stats.chunks, 1, "the second span extended the first segment");
    assert!(stats.footprint_bytes >= (3 << 20) + 100);
    free_checked(&heap, big, 3 << 20);
    free_checked(&heap, first, 100);
    assert_eq!(heap.free_stats().free_blocks, 1);
}

#[test]
fn check_reports_a_damaged_footer() {
    let mut memory = buffer(4 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = alloc_checked(&heap, 64);
    // SAFETY: deliberately writes the word just past the 64-byte payload: the footer.
    unsafe { a.as_ptr().add(64).cast::<usize>().write_unaligned(0xBAD0) };
    assert!(matches!(heap.check(), Err(HeapCorruption::TagMismatch { .. })));
}

#[test]
fn stats_count_requested_bytes_and_footprint() {
    let mut memory = buffer(8 * 1024);
    let len = memory.len() * 16;
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = alloc_checked(&heap, 10);
    let b = alloc_checked(&heap, 20);
    free_checked(&heap, a, 10);
    let stats = heap.stats();
    assert_eq!((stats.allocations, stats.frees), (2, 1));
    assert_eq!((stats.allocated_bytes, stats.live_bytes, stats.high_water_bytes), (30, 20, 30));
    assert_eq!(stats.footprint_bytes, len);
    free_checked(&heap, b, 20);
}

#[test]
fn collections_run_on_the_heap() {
    let heap = FreeList::with_source(small_source(), Placement::BestFit);
    let mut words = allocator_api2::vec::Vec::new_in(&heap);
    for i in 0..10_000u32 {
        words.push(i);
    }
    let mut copy = allocator_api2::vec::Vec::with_capacity_in(10, &heap);
    copy.extend(words.iter().rev().take(10).copied());
    assert_eq!(copy[0], 9_999);
    heap.check().unwrap();
    drop((words, copy));
    assert_eq!(heap.stats().live_bytes, 0);
    heap.check().unwrap();
}

#[cfg(feature = "guard")]
#[test]
fn a_double_free_is_caught_by_the_guard_build() {
    let mut memory = buffer(4 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = heap.alloc(layout(64)).unwrap();
    let _b = heap.alloc(layout(64)).unwrap();
    // SAFETY: allocated above.
    unsafe { heap.free(a, layout(64)) };
    // SAFETY: deliberately frees twice; the guard build must catch the second.
    let message = crate::guard::message_of(|| unsafe { heap.free(a, layout(64)) });
    assert_eq!(message, format!("allockit guard: double free of free-list block {a:p}"));
    heap.check().unwrap();
}

#[cfg(feature = "guard")]
#[test]
fn freed_payloads_are_poisoned_in_the_guard_build() {
    let mut memory = buffer(4 * 1024);
    let heap = FreeList::over_buffer(bytes(&mut memory), Placement::FirstFit);
    let a = heap.alloc(layout(64)).unwrap();
    let _b = heap.alloc(layout(64)).unwrap();
    // SAFETY: a holds 64 bytes.
    unsafe { a.as_ptr().write_bytes(0x11, 64) };
    // SAFETY: allocated above.
    unsafe { heap.free(a, layout(64)) };
    // SAFETY: the block is free but its memory is still the heap's; past the two list
    // links it must read as poison.
    let tail = unsafe { core::slice::from_raw_parts(a.as_ptr().add(16), 48) };
    assert!(tail.iter().all(|&b| b == crate::guard::POISON_FREED));
}
