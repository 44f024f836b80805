//! Fuzz target: the boundary-tag free list ([`allockit::FreeList`]) under every placement
//! policy and free order, over each kind of memory source (a caller's buffer, the chunk
//! source, a reservation), against the shadow model of [`allockit_model::heap`]; `check()`
//! runs after every operation.
#![no_main]

use std::sync::Arc;

use allockit::source::Reservation;
use allockit::{FreeList, FreeOrder, Placement};
use allockit_model::heap::{HeapOp, drive};
use allockit_model::private_source;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Where the heap gets its memory.
#[derive(Debug, Arbitrary)]
enum Source {
    /// A caller's buffer of `kib` KiB (0 to 1 MiB): one segment, then exhaustion.
    Buffer { kib: u16 },
    /// A private chunk source of `region_mib` MiB, growing by `segment_kib` KiB (0: default).
    Chunks { region_mib: u8, segment_kib: u8 },
    /// A reservation of `mib` MiB (1 to 32): spans joined into one growing segment.
    Reservation { mib: u8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    source: Source,
    placement: u8,
    fifo: bool,
    ops: Vec<HeapOp>,
}

fuzz_target!(|input: Input| {
    let placement = Placement::ALL[usize::from(input.placement) % Placement::ALL.len()];
    let order = if input.fifo { FreeOrder::Fifo } else { FreeOrder::Lifo };
    match input.source {
        Source::Buffer { kib } => {
            let mut buffer = vec![0u128; (usize::from(kib) % 1025) * 64];
            // SAFETY: u128 has no invalid bit patterns; the byte view covers the same memory.
            let bytes = unsafe {
                core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len() * 16)
            };
            let heap = FreeList::over_buffer(bytes, placement).with_order(order);
            drive(&heap, &input.ops);
        }
        Source::Chunks { region_mib, segment_kib } => {
            let source = private_source(region_mib);
            let heap = FreeList::with_source(Arc::clone(&source), placement)
                .with_order(order)
                .with_segment_bytes(usize::from(segment_kib) * 1024);
            drive(&heap, &input.ops);
            assert!(heap.stats().chunks <= 1, "empty segments go back to the source; at most one stays");
            drop(heap);
            assert_eq!(source.stats().chunks_in_use, 0, "the heap's drop gave every chunk back");
        }
        Source::Reservation { mib } => {
            let reservation = Reservation::new((usize::from(mib % 32) + 1) << 20);
            let heap = FreeList::with_source(reservation, placement).with_order(order);
            drive(&heap, &input.ops);
        }
    }
});
