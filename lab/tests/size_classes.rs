mod support;

use std::process::Command;

use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;
use allockit_lab::size_classes::{self, BOUND_ABOVE_BYTES, Contender, DOCUMENTED_BOUND, SizeClassesOptions};
use support::rounds::{self, PrintedSpread};

#[test]
fn every_class_wastes_no_more_than_its_documented_bound() {
    let options = SizeClassesOptions::quick();
    let outcome = size_classes::run(&options).unwrap();
    let contenders: Vec<Contender> = outcome.heaps.iter().map(|h| h.contender).collect();
    assert_eq!(contenders, Contender::ALL);

    assert!(outcome.classes.len() >= 30, "the trace's sizes reach most classes: {}", outcome.classes.len());
    let small: u64 = outcome.classes.iter().map(|c| c.requests).sum();
    assert_eq!(small + outcome.large_requests, options.trace.allocations as u64);
    assert!(outcome.large_requests > 0, "sizes up to 32 KiB take the large path above 16 KiB");
    for class in &outcome.classes {
        assert_eq!(class.handed_out_bytes, class.requests * class.class_size as u64, "{class:?}");
        assert!(class.requested_bytes <= class.handed_out_bytes, "{class:?}");
        assert!(class.waste() <= class.worst_case, "{class:?}: {}", class.waste());
        if class.class_size > BOUND_ABOVE_BYTES {
            assert!(class.waste() < DOCUMENTED_BOUND, "{class:?}: {}", class.waste());
        }
    }
    let overall = outcome.overall_waste();
    assert!(overall > 0.0 && overall < DOCUMENTED_BOUND, "{overall}");

    for heap in &outcome.heaps {
        let name = heap.contender.label();
        assert!(heap.peak_footprint_bytes >= outcome.peak_live_bytes, "{name}");
        assert_eq!(heap.rounds.len(), options.rounds);
        for round in &heap.rounds {
            assert!(round.wall_secs.is_finite() && round.wall_secs > 0.0, "{name}: {round:?}");
            assert_eq!(round.searched_blocks, heap.searched_blocks, "{name}: the same searches every round");
        }
    }
    let searched = |contender| outcome.heap(contender).map(|heap| heap.searched_blocks).unwrap();
    assert!(
        searched(Contender::SizeClass) < searched(Contender::FreeListFirstFit) / 10,
        "only the size-class heap's large path searches: {} vs {}",
        searched(Contender::SizeClass),
        searched(Contender::FreeListFirstFit)
    );
    let speedup = outcome.speedup_over(Contender::FreeListFirstFit);
    assert!(
        speedup.min > 0.0 && speedup.min <= speedup.median && speedup.median <= speedup.max,
        "{speedup:?}"
    );

    let dir = TempDir::new("size-classes-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("size-classes.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + outcome.classes.len());
    assert!(support::is_png(&dir.path().join("size-classes.png")));
    assert!(support::is_png(&dir.path().join("size-classes-throughput.png")));
}

#[test]
fn the_printed_table_gives_medians_with_ranges_and_the_verdict_orders_only_apart_ranges() {
    let output = Command::new(support::lab_exe())
        .args(["size-classes", "--quick", "--rounds", "3"])
        .output()
        .expect("run allockit-lab");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("UTF-8 output");
    let heaps = rounds::table(&text, "The trace of task 7");
    let names: Vec<&str> = heaps.iter().map(|row| row["heap"].as_str()).collect();
    assert_eq!(names, ["freelist first-fit", "freelist best-fit", "sizeclass"]);
    for row in &heaps {
        for column in ["M ops/s", "speed vs first fit", "CPU-time speed vs first fit", "CPU share"] {
            let spread =
                PrintedSpread::parse(&row[column]).unwrap_or_else(|| panic!("{column}: {:?}", row[column]));
            assert!(spread.is_ordered(), "{}: {column} {spread:?}", row["heap"]);
        }
    }
    let searched = |row: usize| -> f64 { heaps[row]["searched/alloc"].parse().expect("a number") };
    assert!(searched(2) < searched(0), "size classes search less than the single list");
    assert!(text.contains("median (range) of per-round ratios over 3 alternating rounds"), "{text}");
    rounds::check_verdicts(&text, &heaps, "heap", 3);
}
