//! Property tests of the general heaps against the shadow model of `allockit-model` (the
//! one the `freelist` and `sizeclass` fuzz targets run): random sequences of alloc, free,
//! realloc and `Allocator` grow/shrink (zero sizes, alignments up to 8 KiB, large blocks)
//! must keep every live block's contents, honour every alignment, never overlap, keep the
//! counters consistent, pass the heap's own `check()` after every single operation, and
//! leave the heap fully coalesced once everything is freed.
//!
//! Case counts are modest so that `cargo test` stays fast; for a long run set
//! `PROPTEST_CASES`, e.g. `PROPTEST_CASES=5000 cargo test -p allockit --release --test heaps_model`.

use std::sync::Arc;

use allockit::freelist::{FreeList, FreeOrder, Placement};
use allockit::sizeclass::SizeClass;
use allockit::source::{ChunkConfig, ChunkSource};
use allockit_model::heap::{HeapOp, drive};
use proptest::prelude::*;

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

fn op() -> impl Strategy<Value = HeapOp> {
    prop_oneof![
        5 => (size(), align(), any::<u8>()).prop_map(|(size, align, seed)| HeapOp::Alloc { size, align, seed }),
        3 => any::<u16>().prop_map(|pick| HeapOp::Free { pick }),
        2 => (any::<u16>(), size()).prop_map(|(pick, size)| HeapOp::Realloc { pick, size }),
        1 => (any::<u16>(), size(), align()).prop_map(|(pick, size, align)| HeapOp::Resize { pick, size, align }),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    ProptestConfig { cases, ..ProptestConfig::default() }
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
        drive(&heap, &ops);
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
        drive(&heap, &ops);
        prop_assert!(heap.stats().chunks <= 1, "empty segments went back, at most one stays");
        drop(heap);
        prop_assert_eq!(source.stats().chunks_in_use, 0);
    }

    #[test]
    fn size_class_heap_matches_the_model(ops in proptest::collection::vec(op(), 1..300)) {
        let source = private_source();
        let heap = SizeClass::with_source(Arc::clone(&source));
        drive(&heap, &ops);
        let classes = heap.class_stats();
        for class in classes {
            prop_assert_eq!(class.live_blocks(), 0);
            prop_assert!(class.requested_bytes <= class.handed_out_bytes());
        }
        drop(heap);
        prop_assert_eq!(source.stats().chunks_in_use, 0);
    }
}
