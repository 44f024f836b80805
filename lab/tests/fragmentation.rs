mod support;

use allockit_lab::fragmentation::{self, FragmentationOptions, FragmentedHeap, Origin, Step};
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;

#[test]
fn holes_cannot_serve_the_large_block_until_their_neighbours_are_freed_and_merged() {
    let options = FragmentationOptions::quick();
    let outcome = fragmentation::run(support::lab_exe(), &options).unwrap();
    let heaps: Vec<FragmentedHeap> = outcome.runs.iter().map(|run| run.heap).collect();
    assert_eq!(heaps, FragmentedHeap::ALL);
    let small_bytes = (options.blocks * options.block_size) as u64;
    let large = options.large_size as u64;
    for run in &outcome.runs {
        let name = run.heap.label();
        let r = &run.report;
        let steps: Vec<Step> = r.steps.iter().map(|s| s.step).collect();
        assert_eq!(steps, Step::ALL, "{name}");
        assert_eq!(r.large_before, Origin::FreshMemory, "{name}: no hole can hold the large block");
        assert_eq!(r.large_after, Origin::SmallBlockMemory, "{name}: the merged holes serve it");

        let at = |step| r.at(step).unwrap();
        let live: Vec<u64> = r.steps.iter().map(|s| s.live_bytes).collect();
        assert_eq!(
            live,
            [0, small_bytes, small_bytes / 2, small_bytes / 2 + large, large, 2 * large],
            "{name}"
        );

        let grown = at(Step::Allocated).rss_bytes.saturating_sub(at(Step::Start).rss_bytes);
        assert!(
            grown as f64 >= 0.9 * small_bytes as f64,
            "{name}: the small blocks are resident ({grown} B)"
        );

        let holes = at(Step::EveryOtherFreed).heap;
        assert!(holes.free_bytes >= small_bytes / 2, "{name}: {holes:?}");
        assert!(
            holes.free_blocks >= (options.blocks / 2 - 7) as u64,
            "{name}: one free block per hole (glibc's thread cache keeps seven): {holes:?}"
        );
        let merged = at(Step::LargeAfterCoalescing).heap;
        assert!(
            merged.free_blocks * 100 < holes.free_blocks,
            "{name}: the holes merged ({} free blocks, {} before)",
            merged.free_blocks,
            holes.free_blocks
        );
        assert!(merged.largest_free >= small_bytes / 2, "{name}: one large free block: {merged:?}");
        assert!(
            holes.external_fragmentation() > merged.external_fragmentation() + 0.5,
            "{name}: {holes:?} vs {merged:?}"
        );
    }

    let freelist = outcome.run_of(FragmentedHeap::FreeList).unwrap();
    let rest = freelist.at(Step::RestFreed).unwrap().heap;
    assert!(rest.free_blocks <= 2, "the free list merges on every free: {rest:?}");
    assert_eq!(rest.deferred_blocks, None);
    let glibc = outcome.run_of(FragmentedHeap::Glibc).unwrap();
    let deferred = glibc.at(Step::RestFreed).unwrap().heap.deferred_blocks.unwrap();
    assert!(
        deferred as usize >= options.blocks / 2 - 7,
        "glibc parks small freed chunks in fast bins without merging them: {deferred}"
    );

    let dir = TempDir::new("fragmentation-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("fragmentation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * Step::ALL.len());
    assert!(support::is_png(&dir.path().join("fragmentation.png")));
    let page = std::fs::read_to_string(dir.path().join("fragmentation.md")).unwrap();
    assert!(page.contains("Why coalescing matters"));
}

#[test]
fn a_large_size_a_hole_could_hold_is_refused_naming_the_flag() {
    let options = FragmentationOptions { large_size: 64, ..FragmentationOptions::quick() };
    let err = fragmentation::run(support::lab_exe(), &options).unwrap_err();
    assert!(err.to_string().contains("--large-size"), "{err}");
}
