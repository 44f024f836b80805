//! Property tests of the lab's pure pieces against simple models, and the `properties`
//! experiment (tasks 4-6: allockit's arena, pool and free list) run as the binary.

mod support;

use std::process::Command;

use allockit_lab::usable_size::{SizeClass, size_classes};
use allockit_probe::exposition;
use proptest::prelude::*;

proptest! {
    /// Any monotone step function (an allocator's usable size, modelled as a sorted list of
    /// class tops) is recovered exactly: same classes, same boundaries.
    #[test]
    fn class_search_recovers_every_class_of_a_step_function(
        steps in proptest::collection::btree_set(1usize..5000, 1..60)
    ) {
        let mut tops: Vec<usize> = steps.into_iter().collect();
        tops.push(usize::MAX / 2);
        let usable = |n: usize| Ok(*tops.iter().find(|&&top| top >= n).unwrap());
        let limit = tops[tops.len() - 2];
        let found = size_classes(limit, usable).unwrap();
        let mut expected = Vec::new();
        let mut first = 1;
        for &top in &tops[..tops.len() - 1] {
            expected.push(SizeClass { first_request: first, last_request: top, usable: top });
            first = top + 1;
        }
        prop_assert_eq!(found, expected);
    }

    /// Rendering samples in the exposition format and parsing them back gives the same
    /// sums, whatever the label values contain.
    #[test]
    fn exposition_round_trips_through_the_parser(
        values in proptest::collection::vec((0u32..1_000_000, "[a-z ,\"{}\\\\]{0,12}"), 1..20)
    ) {
        let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let text: String = values
            .iter()
            .map(|(value, label)| format!("m{{state=\"{}\"}} {value}\n", escape(label)))
            .collect();
        let parsed = exposition::parse(&text);
        prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        prop_assert_eq!(parsed.samples.len(), values.len());
        let total: f64 = values.iter().map(|(v, _)| f64::from(*v)).sum();
        prop_assert_eq!(parsed.sum("m", &[]), Some(total));
        for (sample, (_, label)) in parsed.samples.iter().zip(&values) {
            prop_assert_eq!(&sample.labels[0].1, label);
        }
    }
}

#[test]
fn the_properties_command_prints_every_figure_and_passes() {
    let output = Command::new(support::lab_exe()).args(["properties", "--quick"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("20 of 20 properties PASS"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let rows = |property: &str| stdout.lines().filter(|line| line.contains(property)).collect::<Vec<_>>();
    for line in rows("alignment 1..4096") {
        assert!(line.contains("2600") && line.contains(" 0 misaligned, 0 refused"), "{line}");
    }
    assert_eq!(rows("alignment 1..4096").len(), 2);
    for (size, align, block) in [(1, 1, 8), (2, 2, 8), (4, 4, 8), (8, 8, 8), (12, 4, 16), (24, 8, 24)] {
        let figure = format!("{size} B (align {align}) → {block} B blocks");
        assert!(stdout.contains(&figure), "{figure} in {stdout}");
    }
    assert!(stdout.contains("\"pool exhausted: all 2046 blocks of 2 chunks are live\""), "{stdout}");
    assert!(stdout.contains("\"arena buffer exhausted: "), "{stdout}");
    assert!(stdout.contains("\"arena limit exceeded: "), "{stdout}");
    assert!(
        stdout
            .contains("100 → 350 B with a free 300 B neighbour: same address, 100 bytes compared, 0 differ")
    );
    assert!(stdout.contains("350 → 40 B: same address"), "{stdout}");
    assert!(stdout.contains("40 → 4000 B, more than the free space before the in-use fence: moved"));
    assert!(
        stdout.contains("smallest remainder split off 32 B, largest kept as slack 16 B"),
        "the split threshold is one minimum block: {stdout}"
    );
    let coalescing = rows("coalescing after mixed cycles");
    assert_eq!(coalescing.len(), 3, "{stdout}");
    for line in coalescing {
        assert!(line.contains("20000 cycles") && line.contains("all freed: 1 free block(s)"), "{line}");
        assert!(line.contains("0 blocks damaged") && line.contains("check() 10/10 OK then OK"), "{line}");
    }
}

#[test]
fn properties_refuses_too_few_cycles_naming_the_flag() {
    let output =
        Command::new(support::lab_exe()).args(["properties", "--quick", "--cycles", "10"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--cycles"), "{stderr}");
}
