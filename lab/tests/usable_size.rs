mod support;

use allockit_lab::allocator::AllocatorKind;
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;
use allockit_lab::usable_size::{self, SizeProbe};

#[test]
fn every_allocator_gives_at_least_the_requested_bytes_and_its_size_classes_are_found() {
    let probe = SizeProbe::quick();
    let outcome = usable_size::run(support::lab_exe(), &probe).unwrap();
    assert!(
        outcome.missing.is_empty(),
        "scripts/install-deps installs every allocator: {:?}",
        outcome.missing
    );
    let kinds: Vec<AllocatorKind> = outcome.runs.iter().map(|r| r.allocator).collect();
    assert_eq!(kinds, AllocatorKind::ALL);

    for run in &outcome.runs {
        let name = run.allocator;
        let requested: Vec<usize> = run.report.probes.iter().map(|p| p.requested).collect();
        assert_eq!(requested, usable_size::PROBE_SIZES);
        for p in &run.report.probes {
            assert!(
                p.usable >= p.requested,
                "{name}: malloc({}) gave only {} usable bytes",
                p.requested,
                p.usable
            );
        }
        let classes = &run.report.classes;
        assert!(
            classes.len() >= 20,
            "{name}: only {} size classes up to {}",
            classes.len(),
            probe.class_limit
        );
        assert_eq!(classes[0].first_request, 1);
        assert!(classes.last().unwrap().last_request >= probe.class_limit);
        for pair in classes.windows(2) {
            assert_eq!(pair[0].last_request + 1, pair[1].first_request, "{name}: classes must be contiguous");
            assert!(pair[1].usable > pair[0].usable, "{name}: usable size must jump at each boundary");
        }
        for class in classes {
            assert!(class.usable >= class.last_request, "{name}: {class:?}");
        }
        let small = run.report.small_objects;
        assert_eq!(small.objects, probe.objects);
        let one = run.report.probes[0].usable as f64;
        assert!(
            small.bytes_per_object() >= one * 0.9,
            "{name}: {} bytes per object",
            small.bytes_per_object()
        );
    }

    let glibc = &outcome.runs[0];
    for p in &glibc.report.probes {
        assert_eq!(p.usable, usable_size::glibc_model_usable(p.requested), "glibc malloc({})", p.requested);
    }
    assert_eq!(&glibc.report.classes[..2].iter().map(|c| c.last_request).collect::<Vec<_>>(), &[24, 40]);
    let glibc_cost = glibc.report.small_objects.bytes_per_object();
    assert!(glibc_cost >= 30.0, "a 1-byte glibc object sits in a 32-byte chunk, measured {glibc_cost}");
    for run in &outcome.runs[1..] {
        assert!(
            run.report.small_objects.bytes_per_object() < glibc_cost / 2.0,
            "{} keeps no per-object header, so tiny objects cost far less than glibc's",
            run.allocator
        );
    }
}

#[test]
fn usable_size_files_hold_one_csv_row_per_request_and_a_chart() {
    let probe = SizeProbe { probes: vec![1, 24, 25], class_limit: 256, objects: 10_000 };
    let outcome = usable_size::run(support::lab_exe(), &probe).unwrap();
    let dir = TempDir::new("usable-size-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("usable-size.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("allocator,requested,usable,overhead_bytes,overhead_percent"));
    assert_eq!(csv.lines().count(), 1 + 3 * outcome.runs.len());
    assert!(csv.contains("\nglibc,1,24,23,"));
    let page = std::fs::read_to_string(dir.path().join("usable-size.md")).unwrap();
    assert!(page.contains("8-byte size field"), "the page explains glibc's header");
    assert!(page.contains("![") && page.contains("usable-size.png"));
    assert!(support::is_png(&dir.path().join("usable-size.png")));
}
