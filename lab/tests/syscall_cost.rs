use allockit_lab::syscall_cost::{self, Operation, SyscallCostOptions};

#[test]
fn mmap_pairs_cost_more_than_malloc_pairs_and_only_the_touching_loop_faults() {
    let outcome = syscall_cost::run(&SyscallCostOptions::quick()).unwrap();
    // Two system calls against a few dozen user-space instructions: the margin is tens of
    // times, so this ratio of two loops measured in the same run does not flake.
    assert!(outcome.ratio_to_malloc(Operation::MmapMunmap) > 1.0, "{:?}", outcome.costs);
    assert!(outcome.ratio_to_malloc(Operation::MmapTouchMunmap) > 1.0, "{:?}", outcome.costs);

    let faults = |op| outcome.cost(op).unwrap().faults_per_pair;
    assert!(faults(Operation::MallocFree) < 0.01, "malloc reuses one warm chunk");
    assert!(faults(Operation::MmapMunmap) < 0.05, "an untouched mapping is never backed");
    assert!(
        faults(Operation::MmapTouchMunmap) >= 0.95,
        "every touched fresh page faults: the loop really ran"
    );
}

#[test]
fn zero_iterations_are_refused_naming_the_flag() {
    let options = SyscallCostOptions { malloc_pairs: 0, ..SyscallCostOptions::quick() };
    let err = syscall_cost::run(&options).unwrap_err();
    assert!(err.to_string().contains("--iterations"), "{err}");
}
