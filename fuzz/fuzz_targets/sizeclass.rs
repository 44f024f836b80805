//! Fuzz target: the segregated-fit heap ([`allockit::SizeClass`]) over a private chunk
//! source or over two reservations (as the global allocator runs it), against the shadow
//! model of [`allockit_model::heap`]; its large heap's `check()` and the per-class counters
//! are verified after every operation.
#![no_main]

use std::sync::Arc;

use allockit::SizeClass;
use allockit::source::Reservation;
use allockit_model::heap::{HeapOp, drive};
use allockit_model::private_source;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Where the heap gets its memory.
#[derive(Debug, Arbitrary)]
enum Source {
    /// A private chunk source of `region_mib` MiB for slabs and large blocks alike.
    Chunks { region_mib: u8 },
    /// Slabs from one reservation, large blocks from another (1 to 32 MiB each).
    Reservations { slab_mib: u8, large_mib: u8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    source: Source,
    ops: Vec<HeapOp>,
}

fn reservation(mib: u8) -> Reservation {
    Reservation::new((usize::from(mib % 32) + 1) << 20)
}

fuzz_target!(|input: Input| {
    match input.source {
        Source::Chunks { region_mib } => {
            let source = private_source(region_mib);
            let heap = SizeClass::with_source(Arc::clone(&source));
            drive(&heap, &input.ops);
            drop(heap);
            assert_eq!(source.stats().chunks_in_use, 0, "the heap's drop gave every chunk back");
        }
        Source::Reservations { slab_mib, large_mib } => {
            let heap = SizeClass::from_sources(reservation(slab_mib), reservation(large_mib));
            drive(&heap, &input.ops);
        }
    }
});
