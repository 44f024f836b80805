mod support;

use std::process::Command;

use allockit::freelist::{FreeOrder, Placement};
use allockit_lab::placement::{self, PlacementOptions, Policy};
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;
use support::rounds::{self, PrintedSpread, Verdict};

#[test]
fn best_fit_never_needs_more_memory_than_first_fit_on_the_same_trace() {
    let options = PlacementOptions::quick();
    let outcome = placement::run(&options).unwrap();
    let policies: Vec<Policy> = outcome.runs.iter().map(|run| run.policy).collect();
    assert_eq!(policies, Policy::COMPARED);
    assert_eq!(outcome.trace_ops, 2 * options.trace.allocations);

    let first = outcome.run_of(Policy { placement: Placement::FirstFit, order: FreeOrder::Lifo }).unwrap();
    let best = outcome.run_of(Policy { placement: Placement::BestFit, order: FreeOrder::Lifo }).unwrap();
    assert!(
        best.peak_footprint_bytes <= first.peak_footprint_bytes,
        "best fit {} B, first fit {} B",
        best.peak_footprint_bytes,
        first.peak_footprint_bytes
    );
    assert!(
        best.mean_free_blocks() <= first.mean_free_blocks(),
        "best fit splits less, so it leaves fewer free blocks"
    );

    for run in &outcome.runs {
        let name = run.policy.label();
        assert!(
            run.peak_footprint_bytes >= outcome.peak_live_bytes,
            "{name}: footprint holds the live bytes"
        );
        assert!(outcome.efficiency(run) <= 1.0 && outcome.efficiency(run) > 0.2, "{name}");
        assert_eq!(run.samples.first().map(|s| s.operation), Some(0));
        assert_eq!(run.samples.last().map(|s| (s.operation, s.live_bytes)), Some((outcome.trace_ops, 0)));
        assert!(run.samples.len() >= options.samples, "{name}: {} samples", run.samples.len());
        let peak_sampled = run.samples.iter().map(|s| s.live_bytes).max().unwrap();
        assert!(peak_sampled <= outcome.peak_live_bytes && peak_sampled > outcome.peak_live_bytes / 2);
        for sample in &run.samples {
            assert!(sample.footprint_bytes >= sample.live_bytes, "{name}: {sample:?}");
            assert!(sample.largest_free <= sample.free_bytes, "{name}: {sample:?}");
            assert!((0.0..=1.0).contains(&sample.external_fragmentation()), "{name}: {sample:?}");
        }
        assert_eq!(run.rounds.len(), options.rounds);
        for round in &run.rounds {
            assert!(round.wall_secs.is_finite() && round.wall_secs > 0.0, "{name}: {round:?}");
            assert!(
                round.cpu_secs > 0.0 && round.cpu_secs <= round.wall_secs * 1.01 + 1e-3,
                "{name}: {round:?}"
            );
            assert_eq!(
                round.searched_blocks, run.searched_blocks,
                "{name}: the replay is deterministic, so every round searches the same blocks"
            );
        }
        assert!(
            run.searched_per_allocation(options.trace.allocations) >= 1.0,
            "{name}: every search looks at one"
        );
        let speed = outcome.speed_vs_first_fit(run);
        assert!(speed.min <= speed.median && speed.median <= speed.max, "{name}: {speed:?}");
    }
    assert_eq!(outcome.speed_vs_first_fit(first).median, 1.0);

    let dir = TempDir::new("placement-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let samples = std::fs::read_to_string(dir.path().join("placement-samples.csv")).unwrap();
    for policy in Policy::COMPARED {
        assert!(samples.lines().any(|l| l.starts_with(&format!("{},", policy.label()))));
    }
    assert!(support::is_png(&dir.path().join("placement.png")));
}

#[test]
fn the_same_seed_gives_the_same_footprints_and_another_seed_another_trace() {
    let options = PlacementOptions { rounds: 1, samples: 10, ..PlacementOptions::quick() };
    let footprints = |outcome: &placement::PlacementOutcome| -> Vec<u64> {
        outcome.runs.iter().map(|run| run.peak_footprint_bytes).collect()
    };
    let once = placement::run(&options).unwrap();
    let again = placement::run(&options).unwrap();
    assert_eq!(footprints(&once), footprints(&again));
    assert_eq!(once.peak_live_bytes, again.peak_live_bytes);
    let mut other = options;
    other.trace.seed += 1;
    assert_ne!(placement::run(&other).unwrap().peak_live_bytes, once.peak_live_bytes);
}

fn lab_placement(args: &[&str]) -> String {
    let output =
        Command::new(support::lab_exe()).arg("placement").args(args).output().expect("run allockit-lab");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn the_printed_table_gives_medians_with_ranges_and_the_verdict_orders_only_apart_ranges() {
    let text = lab_placement(&["--quick", "--rounds", "3"]);
    assert!(text.contains("over 3 alternating rounds"), "{text}");
    let time = rounds::table(&text, "Time:");
    let names: Vec<&str> = time.iter().map(|row| row["policy"].as_str()).collect();
    assert_eq!(names, ["first-fit", "next-fit", "best-fit", "first-fit FIFO"]);
    for row in &time {
        for column in [
            "M ops/s",
            "speed vs first fit",
            "CPU-time speed vs first fit",
            "CPU ns/searched block",
            "CPU share",
        ] {
            let spread =
                PrintedSpread::parse(&row[column]).unwrap_or_else(|| panic!("{column}: {:?}", row[column]));
            assert!(spread.is_ordered(), "{}: {column} {spread:?}", row["policy"]);
        }
        let searched: f64 = row["searched/alloc"].parse().expect("searched/alloc is a number");
        assert!(searched >= 1.0, "{row:?}");
        let share = PrintedSpread::parse(&row["CPU share"]).unwrap();
        assert!(share.max <= 102.0, "CPU time is at most the wall-clock time: {row:?}");
    }
    assert_eq!(time[0]["speed vs first fit"], "1.00× (1.00–1.00)");
    rounds::check_verdicts(&text, &time, "policy", 3);
}

#[test]
fn one_round_orders_nothing() {
    let text = lab_placement(&["--quick", "--rounds", "1", "--allocations", "2000"]);
    let time = rounds::table(&text, "Time:");
    let verdicts = rounds::check_verdicts(&text, &time, "policy", 1);
    assert!(verdicts.iter().all(|v| matches!(v, Verdict::TooFewRounds { .. })), "{verdicts:?}");
}
