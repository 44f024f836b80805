//! The whole test binary runs on the size-class heap as its global allocator.

mod support;

use allockit::global::GlobalSizeClass;
use allockit::sizeclass::CLASS_COUNT;

#[global_allocator]
static HEAP: GlobalSizeClass = GlobalSizeClass::new();

#[test]
fn a_multithreaded_program_runs_on_the_size_class_heap() {
    let before = HEAP.stats();
    support::run_checked_workload();
    let after = HEAP.stats();
    assert!(after.allocations - before.allocations > 20_000, "{before:?} → {after:?}");
    assert!(after.frees - before.frees > 20_000);
    let classes = HEAP.class_stats();
    let busy = classes.iter().filter(|class| class.requests > 0).count();
    assert!(busy > CLASS_COUNT / 2, "the workload touched {busy} classes");
    let fragmentation = HEAP.internal_fragmentation();
    assert!(fragmentation > 0.0 && fragmentation < 0.5, "internal fragmentation {fragmentation}");
    HEAP.check_large().expect("large-heap invariants hold after the workload");
}

#[test]
fn an_impossible_request_is_an_error_not_an_abort() {
    let mut huge: Vec<u8> = Vec::new();
    assert!(huge.try_reserve(1 << 40).is_err());
    assert!(HEAP.stats().failures >= 1);
    huge.push(1);
    assert_eq!(huge, [1]);
}
