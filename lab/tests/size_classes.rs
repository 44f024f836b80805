mod support;

use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;
use allockit_lab::size_classes::{self, BOUND_ABOVE_BYTES, Contender, DOCUMENTED_BOUND, SizeClassesOptions};

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
        assert_eq!(heap.round_secs.len(), options.rounds);
        assert!(heap.round_secs.iter().all(|s| s.is_finite() && *s > 0.0), "{name}: {:?}", heap.round_secs);
    }
    let speedup = outcome.speedup_over(Contender::FreeListFirstFit);
    assert!(speedup.is_finite() && speedup > 0.0, "{speedup}");

    let dir = TempDir::new("size-classes-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("size-classes.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + outcome.classes.len());
    assert!(support::is_png(&dir.path().join("size-classes.png")));
    assert!(support::is_png(&dir.path().join("size-classes-throughput.png")));
}
