//! Model-based property tests: random operation sequences against a simple shadow model.
//!
//! Case counts are modest so the default test run stays fast; raise them for a long run
//! with `PROPTEST_CASES=100000 cargo test -p allockit --test model --release`.

use std::alloc::Layout;
use std::collections::HashSet;
use std::sync::Arc;

use allockit::{Arena, ChunkConfig, ChunkSource, Escaped, RawPool};
use proptest::prelude::*;

/// 64 cases per property unless `PROPTEST_CASES` says otherwise (an explicit `cases` would
/// ignore the variable).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

fn source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig {
        region_size: 64 * 1024 * 1024,
        max_regions: 1,
        retain_idle_bytes: 512 * 1024,
        ..ChunkConfig::default()
    })
    .unwrap()
}

#[derive(Debug, Clone)]
enum ArenaOp {
    Alloc { size: usize, align_shift: u32, fill: u8 },
    Escape { size: usize, fill: u8 },
    DropEscape(usize),
    Reset,
}

fn arena_op() -> impl Strategy<Value = ArenaOp> {
    prop_oneof![
        8 => (0usize..512, 0u32..8, any::<u8>()).prop_map(|(size, align_shift, fill)| ArenaOp::Alloc { size, align_shift, fill }),
        1 => (1usize..70_000, 0u32..12, any::<u8>()).prop_map(|(size, align_shift, fill)| ArenaOp::Alloc { size, align_shift, fill }),
        2 => (1usize..256, any::<u8>()).prop_map(|(size, fill)| ArenaOp::Escape { size, fill }),
        1 => any::<usize>().prop_map(ArenaOp::DropEscape),
        1 => Just(ArenaOp::Reset),
    ]
}

struct Live {
    ptr: *const u8,
    len: usize,
    fill: u8,
}

fn assert_disjoint_and_intact(live: &[Live], escaped: &[(Escaped<[u8]>, u8)]) {
    let mut ranges: Vec<(usize, usize)> = live.iter().map(|l| (l.ptr.addr(), l.len)).collect();
    ranges.extend(escaped.iter().map(|(e, _)| (e.as_ptr().addr(), e.len())));
    ranges.retain(|(_, len)| *len > 0);
    ranges.sort();
    for pair in ranges.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap: {pair:?}");
    }
    for l in live {
        // SAFETY: the model only keeps allocations made since the last reset.
        let bytes = unsafe { std::slice::from_raw_parts(l.ptr, l.len) };
        assert!(bytes.iter().all(|b| *b == l.fill), "contents changed before reset");
    }
    for (e, fill) in escaped {
        assert!(e.iter().all(|b| b == fill), "escaped contents changed");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arena_matches_the_model(ops in proptest::collection::vec(arena_op(), 1..200)) {
        let source = source();
        let mut arena = Arena::with_source(Arc::clone(&source));
        let mut live: Vec<Live> = Vec::new();
        let mut escaped: Vec<(Escaped<[u8]>, u8)> = Vec::new();
        let mut allocations = 0u64;
        let mut resets = 0u64;
        for op in ops {
            match op {
                ArenaOp::Alloc { size, align_shift, fill } => {
                    let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                    let ptr = arena.alloc_layout(layout).unwrap();
                    prop_assert_eq!(ptr.as_ptr().addr() % layout.align(), 0);
                    // SAFETY: fresh allocation of `size` bytes.
                    unsafe { ptr.as_ptr().write_bytes(fill, size) };
                    live.push(Live { ptr: ptr.as_ptr(), len: size, fill });
                    allocations += 1;
                }
                ArenaOp::Escape { size, fill } => {
                    escaped.push((arena.alloc_escaping_slice_copy(&vec![fill; size]).unwrap(), fill));
                    allocations += 1;
                }
                ArenaOp::DropEscape(i) => {
                    if !escaped.is_empty() {
                        let i = i % escaped.len();
                        escaped.swap_remove(i);
                    }
                }
                ArenaOp::Reset => {
                    arena.reset();
                    live.clear();
                    resets += 1;
                    // Chunks pinned now are exactly those holding live escapes, minus the
                    // one the arena may still hold (none: reset retired every pinned chunk).
                    let pinned_chunks: HashSet<usize> = escaped.iter().map(|(e, _)| e.chunk_addr()).collect();
                    prop_assert_eq!(source.stats().chunks_pinned, pinned_chunks.len());
                }
            }
            assert_disjoint_and_intact(&live, &escaped);
            let stats = arena.stats();
            if cfg!(feature = "count-allocations") {
                prop_assert_eq!(stats.allocations, allocations);
            }
            prop_assert_eq!(stats.resets, resets);
        }
        drop(arena);
        drop(escaped);
        let stats = source.stats();
        prop_assert_eq!((stats.chunks_in_use, stats.chunks_pinned), (0, 0));
    }
}

#[derive(Debug, Clone)]
enum PoolOp {
    Alloc(u8),
    Free(usize),
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_matches_the_model(
        ops in proptest::collection::vec(prop_oneof![3 => any::<u8>().prop_map(PoolOp::Alloc), 2 => any::<usize>().prop_map(PoolOp::Free)], 1..600),
        size in 1usize..300,
        align_shift in 0u32..7,
    ) {
        let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
        let max_chunks = 3;
        let pool = RawPool::new(source(), layout, max_chunks).unwrap();
        let capacity = max_chunks * pool.blocks_per_chunk();
        let mut live: Vec<(std::ptr::NonNull<u8>, u8)> = Vec::new();
        let mut exhausted = 0;
        for op in ops {
            match op {
                PoolOp::Alloc(fill) => match pool.alloc() {
                    Ok(block) => {
                        prop_assert_eq!(block.as_ptr().addr() % layout.align(), 0);
                        // SAFETY: a fresh block of `size` bytes.
                        unsafe { block.as_ptr().write_bytes(fill, size) };
                        live.push((block, fill));
                    }
                    Err(_) => {
                        prop_assert_eq!(live.len(), capacity);
                        exhausted += 1;
                    }
                },
                PoolOp::Free(i) => {
                    if !live.is_empty() {
                        let (block, _) = live.swap_remove(i % live.len());
                        // SAFETY: the block came from this pool and is freed once.
                        unsafe { pool.dealloc(block) };
                    }
                }
            }
            let mut addrs: Vec<usize> = live.iter().map(|(b, _)| b.as_ptr().addr()).collect();
            addrs.sort();
            for pair in addrs.windows(2) {
                prop_assert!(pair[0] + size <= pair[1], "blocks overlap");
            }
            for (block, fill) in &live {
                // SAFETY: live blocks are ours.
                let bytes = unsafe { std::slice::from_raw_parts(block.as_ptr(), size) };
                prop_assert!(bytes.iter().all(|b| b == fill));
            }
            let objects = pool.objects();
            prop_assert_eq!(objects.live, live.len());
            prop_assert_eq!(objects.exhausted, exhausted);
            prop_assert_eq!(objects.live + objects.free, pool.stats().chunks * pool.blocks_per_chunk());
        }
    }
}
