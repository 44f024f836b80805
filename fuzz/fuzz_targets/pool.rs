//! Fuzz target: the fixed-size pool ([`allockit::RawPool`]) with a random block layout and
//! chunk cap, driven by random alloc/dealloc sequences against the shadow model of
//! [`allockit_model::pool`]: blocks are aligned, disjoint and keep their contents; the pool
//! refuses a block exactly when every block of every chunk it may hold is live, and then
//! with `Exhausted`; the counters agree.
#![no_main]

use core::alloc::Layout;

use allockit::PoolError;
use allockit_model::pool::{PoolOp, PoolRun, drive};
use allockit_model::{Align, ContentChecks, private_source};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

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
    ops: Vec<PoolOp>,
}

fuzz_target!(|input: Input| {
    let Ok(layout) = Layout::from_size_align(usize::from(input.size), input.align.bytes(12)) else {
        return;
    };
    let run = PoolRun {
        source: private_source(input.region_mib),
        layout,
        max_chunks: usize::from(input.max_chunks % 5),
        contents: ContentChecks::OnTouch,
    };
    match drive(&run, &input.ops) {
        Ok(_) | Err(PoolError::Invalid(_)) => {}
        Err(error) => panic!("creating a pool takes no memory, yet: {error}"),
    }
});
