//! The whole test binary runs on the free-list heap as its global allocator.

mod support;

use allockit::freelist::Placement;
use allockit::global::GlobalFreeList;

#[global_allocator]
static HEAP: GlobalFreeList = GlobalFreeList::new(Placement::FirstFit);

#[test]
fn a_multithreaded_program_runs_on_the_free_list_heap() {
    let before = HEAP.stats();
    support::run_checked_workload();
    let after = HEAP.stats();
    assert!(after.allocations - before.allocations > 20_000, "{before:?} → {after:?}");
    assert!(after.frees - before.frees > 20_000);
    assert!(after.footprint_bytes >= 1 << 20, "the 1 MiB buffer came from this heap");
    assert_eq!(after.chunks, 1, "the reservation grows one segment");
    HEAP.check().expect("heap invariants hold after the workload");
}

#[test]
fn an_impossible_request_is_an_error_not_an_abort() {
    let mut huge: Vec<u8> = Vec::new();
    assert!(huge.try_reserve(1 << 40).is_err());
    let failures = HEAP.stats().failures;
    assert!(failures >= 1);
    huge.push(1);
    assert_eq!(huge, [1]);
}
