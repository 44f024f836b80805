//! Model-based property tests of the arena and the pool: proptest generates operation
//! sequences, and the shadow models of `allockit-model` (the same ones the fuzz targets in
//! `fuzz/` run) check the allocator after every operation, reading back every live block.
//!
//! Case counts are modest so the default test run stays fast; raise them for a long run
//! with `PROPTEST_CASES=100000 cargo test -p allockit --test model --release`.

use std::alloc::Layout;
use std::sync::Arc;

use allockit::{ChunkConfig, ChunkSource};
use allockit_model::ContentChecks;
use allockit_model::arena::{self, ArenaOp, ArenaRun};
use allockit_model::pool::{self, PoolOp, PoolRun};
use proptest::prelude::*;

/// 64 cases per property unless `PROPTEST_CASES` says otherwise (an explicit `cases` would
/// ignore the variable).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A source of its own for each case (the models check its chunks), with room for every
/// request a case makes.
fn source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig {
        region_size: 64 * 1024 * 1024,
        max_regions: 1,
        retain_idle_bytes: 512 * 1024,
        ..ChunkConfig::default()
    })
    .unwrap()
}

/// Mostly small allocations, some past the chunk size; escapes, vectors, resets.
fn arena_op() -> impl Strategy<Value = ArenaOp> {
    prop_oneof![
        8 => (0usize..512, 0u32..8, any::<u8>())
            .prop_map(|(size, shift, seed)| ArenaOp::Alloc { size, align: 1 << shift, seed }),
        1 => (1usize..70_000, 0u32..12, any::<u8>())
            .prop_map(|(size, shift, seed)| ArenaOp::Alloc { size, align: 1 << shift, seed }),
        1 => any::<u16>().prop_map(|pick| ArenaOp::Dealloc { pick }),
        2 => (1usize..256, any::<u8>()).prop_map(|(size, seed)| ArenaOp::EscapeBytes { size, seed }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(len, seed)| ArenaOp::EscapeOwned { len, seed }),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(pick, elsewhere)| ArenaOp::DropEscape { pick, elsewhere }),
        2 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(vector, count, seed)| ArenaOp::Push { vector, count, seed }),
        1 => any::<u8>().prop_map(|vector| ArenaOp::ShrinkToFit { vector }),
        1 => any::<u8>().prop_map(|vector| ArenaOp::DropVector { vector }),
        1 => Just(ArenaOp::Reset),
    ]
}

/// The arena counts allocations only when allockit is built with `count-allocations`.
fn arena_run(limit: Option<usize>) -> ArenaRun {
    ArenaRun {
        source: source(),
        limit,
        counts_allocations: cfg!(feature = "count-allocations"),
        contents: ContentChecks::EveryOp,
    }
}

proptest! {
    #![proptest_config(config())]

    /// A quarter of the cases run under a byte limit, where refusals are expected.
    #[test]
    fn arena_matches_the_model(
        ops in proptest::collection::vec(arena_op(), 1..200),
        limit_kib in proptest::option::weighted(0.25, 64usize..1024),
    ) {
        let report = arena::drive(&arena_run(limit_kib.map(|kib| kib * 1024)), &ops);
        if limit_kib.is_none() {
            prop_assert_eq!(report.failures, 0, "a 64 MiB source without a limit refused a request");
        }
    }
}

/// Mostly one block at a time, sometimes a burst of up to 64 that runs into the cap.
fn pool_op() -> impl Strategy<Value = PoolOp> {
    let repeat = prop_oneof![7 => Just(0u8), 1 => any::<u8>()];
    prop_oneof![
        3 => (repeat, any::<u8>()).prop_map(|(repeat, seed)| PoolOp::Alloc { repeat, seed }),
        2 => any::<u16>().prop_map(|pick| PoolOp::Free { pick }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_matches_the_model(
        ops in proptest::collection::vec(pool_op(), 1..600),
        size in 0usize..300,
        align_shift in 0u32..7,
    ) {
        let run = PoolRun {
            source: source(),
            layout: Layout::from_size_align(size, 1 << align_shift).unwrap(),
            max_chunks: 3,
            contents: ContentChecks::EveryOp,
        };
        pool::drive(&run, &ops).expect("every such layout fits a chunk");
    }
}
