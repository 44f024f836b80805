mod support;

use allockit::sizeclass::{class_of, class_size};
use allockit_lab::fragmentation::{
    self, FragmentationOptions, FragmentedHeap, ODD_SIZES, Origin, PASS_ALIGN, Pass, SizedHeap, Step,
};
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
    let internal = std::fs::read_to_string(dir.path().join("internal_fragmentation.csv")).unwrap();
    assert_eq!(internal.lines().count(), 1 + SizedHeap::ALL.len() * (1 + ODD_SIZES.len()));
    assert!(support::is_png(&dir.path().join("fragmentation.png")));
    let page = std::fs::read_to_string(dir.path().join("fragmentation.md")).unwrap();
    assert!(page.contains("Why coalescing matters"));
    assert!(page.contains("Internal and external fragmentation"));
    assert!(page.contains("Internal vs external fragmentation, same requests"));
}

#[test]
fn internal_fragmentation_is_measured_on_the_same_requests_next_to_external() {
    let options = FragmentationOptions::quick();
    let outcome = fragmentation::run(support::lab_exe(), &options).unwrap();
    assert_eq!(outcome.internal.len(), Pass::ALL.len() * SizedHeap::ALL.len());
    for pass in &outcome.internal {
        let name = format!("{} {:?}", pass.heap.label(), pass.pass);
        let (sizes, blocks) = pass.pass.requests(&options);
        let measured: Vec<usize> = pass.report.groups.iter().map(|g| g.size).collect();
        assert_eq!(measured, sizes, "{name}");
        for g in &pass.report.groups {
            assert_eq!(g.blocks, blocks as u64, "{name}");
            assert_eq!(g.requested_bytes, (g.size * blocks) as u64, "{name}");
            assert!(g.usable_bytes >= g.requested_bytes, "{name}: {g:?}");
            assert!(g.handed_out_bytes >= g.usable_bytes, "{name}: {g:?}");
            let internal = g.internal_fragmentation();
            assert!((0.0..1.0).contains(&internal), "{name}: {g:?}");
            match pass.heap {
                SizedHeap::FreeList => {
                    assert_eq!(
                        g.tags_per_block(),
                        16.0,
                        "{name}: header and footer, counted by the heap: {g:?}"
                    );
                    assert!(g.rounding_per_block() < 16.0, "{name}: 16-byte granularity: {g:?}");
                }
                SizedHeap::SizeClass => {
                    let class = class_size(class_of(g.size, PASS_ALIGN).unwrap());
                    assert_eq!(
                        g.handed_out_per_block(),
                        class as f64,
                        "{name}: one class slot per request: {g:?}"
                    );
                    assert_eq!(g.tags_per_block(), 0.0, "{name}");
                }
                SizedHeap::Glibc => assert_eq!(g.tags_per_block(), 8.0, "{name}: the chunk's size word"),
            }
        }
        let external = pass.report.holes.external_fragmentation();
        match pass.heap {
            SizedHeap::SizeClass => assert_eq!(external, None, "{name}"),
            _ => {
                assert!(external.unwrap() > 0.5, "{name}: every other block freed leaves holes: {external:?}")
            }
        }
        assert!(pass.report.holes.free_bytes > 0, "{name}");
    }

    let total = |heap, pass| outcome.internal_of(heap, pass).unwrap().total();
    let (freelist, sizeclass) =
        (total(SizedHeap::FreeList, Pass::SmallBlocks), total(SizedHeap::SizeClass, Pass::SmallBlocks));
    assert!(
        sizeclass.internal_fragmentation() < freelist.internal_fragmentation(),
        "64 B is a class: no rounding, no tags ({sizeclass:?}); the free list pays its tags ({freelist:?})"
    );
    let (freelist, sizeclass) =
        (total(SizedHeap::FreeList, Pass::OddSizes), total(SizedHeap::SizeClass, Pass::OddSizes));
    assert!(
        sizeclass.rounding_per_block() > freelist.rounding_per_block(),
        "odd sizes round up to a class: {sizeclass:?} vs {freelist:?}"
    );
    assert!(
        sizeclass.internal_fragmentation() > freelist.internal_fragmentation(),
        "for these sizes class rounding outweighs the free list's tags: {sizeclass:?} vs {freelist:?}"
    );
}

#[test]
fn a_large_size_a_hole_could_hold_is_refused_naming_the_flag() {
    let options = FragmentationOptions { large_size: 64, ..FragmentationOptions::quick() };
    let err = fragmentation::run(support::lab_exe(), &options).unwrap_err();
    assert!(err.to_string().contains("--large-size"), "{err}");
}
