//! Property tests of the lab's pure pieces against simple models.

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
