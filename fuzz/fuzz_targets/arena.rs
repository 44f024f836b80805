//! Fuzz target: the chunked bump arena ([`allockit::Arena`]) on a private chunk source,
//! optionally under a byte limit, against the shadow model of [`allockit_model::arena`]
//! (allocations of any size and alignment, deallocations, escaping values dropped on any
//! thread across resets, growing vectors, resets).
#![no_main]

use allockit_model::arena::{ArenaOp, ArenaRun, drive};
use allockit_model::{ContentChecks, private_source};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    region_mib: u8,
    limit_kib: Option<u16>,
    ops: Vec<ArenaOp>,
}

fuzz_target!(|input: Input| {
    let run = ArenaRun {
        source: private_source(input.region_mib),
        limit: input.limit_kib.map(|kib| usize::from(kib) * 1024),
        // fuzz/Cargo.toml builds allockit with count-allocations.
        counts_allocations: true,
        contents: ContentChecks::OnTouch,
    };
    drive(&run, &input.ops);
});
