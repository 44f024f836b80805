//! The model of the fixed-size pool ([`RawPool`]) under a chunk cap: random alloc and
//! dealloc sequences.
//!
//! Checked after every operation: blocks are aligned and disjoint; the pool refuses a block
//! exactly when every block of every chunk it may hold is live, and then with
//! [`PoolError::Exhausted`] and the right capacity; the counters (live, free, exhausted,
//! high water, allocations, frees, live bytes) agree with the model and the pool holds no
//! more chunks than its cap. Contents are checked when a block is freed and at the end, or
//! after every operation with [`ContentChecks::EveryOp`]. At the end every block is freed
//! and, once the pool is dropped, the source has every chunk back.
//!
//! Used by `alloc/tests/model.rs` and the `pool` fuzz target.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::Arc;

use allockit::{ChunkSource, PoolError, RawPool};
use arbitrary::Arbitrary;

use crate::{ContentChecks, Extents, assert_aligned, assert_holds, fill, pick};

/// One step of the pool model.
#[derive(Debug, Clone, Arbitrary)]
pub enum PoolOp {
    /// Allocates `1 + repeat % 64` blocks, filling each.
    Alloc {
        /// Blocks beyond the first, modulo 64.
        repeat: u8,
        /// Seed of the first block's pattern (the next ones count up from it).
        seed: u8,
    },
    /// Frees one live block.
    Free {
        /// Which live block ([`pick`]).
        pick: u16,
    },
}

/// How to run the pool model.
#[derive(Debug, Clone)]
pub struct PoolRun {
    /// The pool's chunk source: private to this run, since the driver checks that every
    /// chunk goes back, and roomy enough for `max_chunks` chunks.
    pub source: Arc<ChunkSource>,
    /// The layout of every block.
    pub layout: Layout,
    /// The pool's chunk cap.
    pub max_chunks: usize,
    /// How often untouched blocks are read back.
    pub contents: ContentChecks,
}

/// Runs `ops` on a new pool against the model, then frees every block, drops the pool and
/// checks that the source has every chunk back. Returns the pool's refusal if it cannot be
/// created (`RawPool::new`); every disagreement after that panics. Returns how many
/// requests found the pool exhausted.
pub fn drive(run: &PoolRun, ops: &[PoolOp]) -> Result<u64, PoolError> {
    let PoolRun { ref source, layout, max_chunks, contents } = *run;
    let pool = RawPool::new(Arc::clone(source), layout, max_chunks)?;
    let capacity = max_chunks * pool.blocks_per_chunk();
    let size = layout.size();
    let mut live: Vec<(NonNull<u8>, u8)> = Vec::new();
    let mut extents = Extents::default();
    let mut exhausted = 0u64;
    let (mut allocations, mut frees) = (0u64, 0u64);
    for op in ops {
        match *op {
            PoolOp::Alloc { repeat, seed } => {
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
            PoolOp::Free { pick: raw } => {
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
        if contents == ContentChecks::EveryOp {
            for (block, seed) in &live {
                // SAFETY: live blocks of `size` bytes.
                unsafe { assert_holds(block.as_ptr(), size, *seed, "a live pool block") };
            }
        }
    }
    for (block, seed) in &live {
        // SAFETY: live blocks of `size` bytes.
        unsafe { assert_holds(block.as_ptr(), size, *seed, "a pool block at the end of the run") };
    }
    for (block, _) in live {
        // SAFETY: each live block is freed once.
        unsafe { pool.dealloc(block) };
    }
    assert_eq!(pool.objects().live, 0, "live blocks after freeing everything");
    drop(pool);
    assert_eq!(source.stats().chunks_in_use, 0, "the pool's drop gave every chunk back");
    Ok(exhausted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private_source;

    fn run(size: usize, align: usize, max_chunks: usize) -> PoolRun {
        PoolRun {
            source: private_source(3),
            layout: Layout::from_size_align(size, align).expect("a valid layout"),
            max_chunks,
            contents: ContentChecks::EveryOp,
        }
    }

    #[test]
    fn a_pool_filled_to_its_cap_refuses_and_recovers() {
        let run = run(1000, 64, 2);
        let ops = [
            PoolOp::Alloc { repeat: 63, seed: 0 },
            PoolOp::Alloc { repeat: 63, seed: 0 },
            PoolOp::Alloc { repeat: 63, seed: 0 },
            PoolOp::Free { pick: 17 },
            PoolOp::Free { pick: 3 },
            PoolOp::Alloc { repeat: 0, seed: 9 },
        ];
        let exhausted = drive(&run, &ops).expect("a valid pool");
        // Two 64 KiB chunks hold fewer than 130 blocks of 1000 bytes: the third round of 64
        // runs into the cap.
        assert!(exhausted > 0, "192 blocks of 1000 bytes exhaust two chunks");
    }

    #[test]
    fn zero_sized_blocks_are_disjoint_too() {
        let exhausted =
            drive(&run(0, 1, 1), &[PoolOp::Alloc { repeat: 20, seed: 1 }, PoolOp::Free { pick: 5 }])
                .expect("a valid pool");
        assert_eq!(exhausted, 0);
    }

    #[test]
    fn a_pool_that_cannot_exist_is_returned_as_the_error() {
        let refused = drive(&run(16, 8, 0), &[PoolOp::Alloc { repeat: 0, seed: 0 }]);
        assert!(matches!(refused, Err(PoolError::Invalid(_))), "a cap of zero chunks: {refused:?}");
    }
}
