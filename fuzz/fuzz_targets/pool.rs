//! Fuzz target: the fixed-size pool ([`allockit::RawPool`]) with a random block layout and
//! chunk cap, driven by random alloc/dealloc sequences against the shadow model: blocks are
//! aligned, disjoint and keep their contents; the pool refuses a block exactly when every
//! block of every chunk it may hold is live, and then with `Exhausted`; the counters agree.
#![no_main]

use core::alloc::Layout;
use core::ptr::NonNull;

use allockit::{PoolError, RawPool};
use allockit_fuzz::{Align, Extents, assert_aligned, assert_holds, fill, pick, private_source};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    /// Allocate `1 + repeat % 64` blocks.
    Alloc { repeat: u8, seed: u8 },
    /// Free one live block.
    Free { pick: u16 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Object size (0 to 64 KiB: the largest do not fit a chunk and must be refused).
    size: u16,
    align: Align,
    /// Chunk cap, 0 to 4 (0 must be refused).
    max_chunks: u8,
    /// Region of the private chunk source, 1 to 16 MiB (odd sizes are mapped at any page,
    /// so the source must align them itself).
    region_mib: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let Ok(layout) = Layout::from_size_align(usize::from(input.size), input.align.bytes(12)) else {
        return;
    };
    let source = private_source(input.region_mib);
    let pool = match RawPool::new(source.clone(), layout, usize::from(input.max_chunks % 5)) {
        Ok(pool) => pool,
        Err(PoolError::Invalid(_)) => return,
        Err(error) => panic!("creating a pool takes no memory, yet: {error}"),
    };
    let max_chunks = usize::from(input.max_chunks % 5);
    let capacity = max_chunks * pool.blocks_per_chunk();
    let size = layout.size();
    let mut live: Vec<(NonNull<u8>, u8)> = Vec::new();
    let mut extents = Extents::default();
    let mut exhausted = 0u64;
    let (mut allocations, mut frees) = (0u64, 0u64);
    for op in &input.ops {
        match *op {
            Op::Alloc { repeat, seed } => {
                for round in 0..=repeat % 64 {
                    let seed = seed.wrapping_add(round);
                    match pool.alloc() {
                        Ok(block) => {
                            assert!(live.len() < capacity, "a pool at its cap handed out a block");
                            assert_aligned(block.as_ptr().addr(), layout.align(), "a pool block");
                            extents.insert(block.as_ptr().addr(), size.max(1));
                            // SAFETY: a fresh block of `size` bytes.
                            unsafe { fill(block.as_ptr(), size, seed) };
                            live.push((block, seed));
                            allocations += 1;
                        }
                        Err(PoolError::Exhausted { capacity: reported, .. }) => {
                            assert_eq!(live.len(), capacity, "the pool refused a block below its cap");
                            assert_eq!(reported, capacity, "the reported capacity");
                            exhausted += 1;
                        }
                        Err(error) => panic!("a pool under its chunk source's room failed with {error}"),
                    }
                }
            }
            Op::Free { pick: raw } => {
                if let Some(index) = pick(raw, live.len()) {
                    let (block, seed) = live.swap_remove(index);
                    // SAFETY: a live block of `size` bytes.
                    unsafe { assert_holds(block.as_ptr(), size, seed, "a pool block being freed") };
                    extents.remove(block.as_ptr().addr(), size.max(1));
                    // SAFETY: the block came from this pool and is freed once.
                    unsafe { pool.dealloc(block) };
                    frees += 1;
                }
            }
        }
        let objects = pool.objects();
        let stats = pool.stats();
        assert_eq!(objects.live, live.len(), "live blocks");
        assert_eq!(objects.exhausted, exhausted, "exhausted count");
        assert_eq!(objects.live + objects.free, stats.chunks * pool.blocks_per_chunk(), "live + free");
        assert!(stats.chunks <= max_chunks, "the pool passed its chunk cap");
        assert!(objects.high_water >= objects.live, "high water below live");
        assert_eq!((stats.allocations, stats.frees), (allocations, frees), "allocation and free counts");
        assert_eq!(stats.live_bytes, live.len() * pool.block_size(), "live bytes");
    }
    for (block, seed) in &live {
        // SAFETY: live blocks of `size` bytes.
        unsafe { assert_holds(block.as_ptr(), size, *seed, "a pool block at the end of the run") };
    }
    for (block, _) in live {
        // SAFETY: each live block is freed once.
        unsafe { pool.dealloc(block) };
    }
    assert_eq!(pool.objects().live, 0);
    drop(pool);
    assert_eq!(source.stats().chunks_in_use, 0, "the pool's drop gave every chunk back");
});
