//! Reading what `placement` and `size-classes` print: tables whose cells are
//! `median (min–max)` over alternating rounds, and the verdict lines that order two
//! contenders only where their ranges do not overlap.

use std::collections::HashMap;

/// A printed `median (min–max)` cell (a `×` after the median is allowed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrintedSpread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl PrintedSpread {
    /// Parses `12.34 (10.00–15.00)` or `2.50× (2.10–3.00)`.
    pub fn parse(cell: &str) -> Option<PrintedSpread> {
        let (median, range) = cell.split_once(" (")?;
        let (min, max) = range.strip_suffix(')')?.split_once('–')?;
        Some(PrintedSpread {
            median: median.trim_end_matches('×').parse().ok()?,
            min: min.parse().ok()?,
            max: max.parse().ok()?,
        })
    }

    /// The median lies within the range.
    pub fn is_ordered(&self) -> bool {
        self.min <= self.median && self.median <= self.max
    }
}

/// The rows of the printed table whose caption starts with `caption`, each as header →
/// cell. Columns are separated by two spaces or more (cells hold single spaces only).
pub fn table(text: &str, caption: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines().skip_while(|line| !line.starts_with(caption));
    let Some(_) = lines.next() else { return Vec::new() };
    let split = |line: &str| -> Vec<String> {
        line.trim().split("  ").map(str::trim).filter(|cell| !cell.is_empty()).map(str::to_owned).collect()
    };
    let Some(headers) = lines.next().map(split) else { return Vec::new() };
    lines
        .skip(1) // the rule under the headers
        .take_while(|line| !line.trim().is_empty())
        .map(|line| headers.iter().cloned().zip(split(line)).collect())
        .collect()
}

/// One `verdict:` line.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// `a` faster (or slower) than `b`, with both ranges in M ops/s.
    Ordered { a: String, b: String, faster: bool, a_range: (f64, f64), b_range: (f64, f64) },
    /// No ordering because the printed ranges overlap.
    Overlap { a: String, b: String, a_range: (f64, f64), b_range: (f64, f64) },
    /// No ordering because there were too few rounds.
    TooFewRounds { a: String, b: String },
}

fn range(text: &str) -> Option<(f64, f64)> {
    let (min, max) = text.trim().split_once('–')?;
    Some((min.parse().ok()?, max.parse().ok()?))
}

/// `a–b vs c–d M ops/s ...` → the two ranges.
fn ranges(text: &str) -> Option<((f64, f64), (f64, f64))> {
    let (first, rest) = text.split_once(" vs ")?;
    let second = rest.split(" M ops/s").next()?;
    Some((range(first)?, range(second)?))
}

/// Every `* verdict:` line of `text`, parsed; panics on one it cannot read.
pub fn verdicts(text: &str) -> Vec<Verdict> {
    text.lines()
        .filter_map(|line| line.strip_prefix("* verdict: "))
        .map(|line| parse_verdict(line).unwrap_or_else(|| panic!("unreadable verdict: {line}")))
        .collect()
}

fn parse_verdict(line: &str) -> Option<Verdict> {
    if let Some((pair, rest)) = line.split_once(": no ordering, ") {
        let (a, b) = pair.split_once(" vs ")?;
        let (a, b) = (a.to_owned(), b.to_owned());
        if let Some(overlap) = rest.strip_prefix("the ranges overlap (") {
            let (a_range, b_range) = ranges(overlap)?;
            return Some(Verdict::Overlap { a, b, a_range, b_range });
        }
        return rest.contains("an ordering needs at least 3").then_some(Verdict::TooFewRounds { a, b });
    }
    let (faster, (a, rest)) = match line.split_once(" is faster than ") {
        Some(split) => (true, split),
        None => (false, line.split_once(" is slower than ")?),
    };
    let (b, figures) = rest.split_once(" in every round: ")?;
    let (a_range, b_range) = ranges(figures)?;
    Some(Verdict::Ordered { a: a.to_owned(), b: b.to_owned(), faster, a_range, b_range })
}

/// Checks every verdict line against the printed ranges: an ordering only where the ranges
/// do not overlap and in its direction, "overlap" only where they do, the ranges quoted
/// equal to the table's `M ops/s` column (rows named by `name_column`), one line per pair,
/// and no ordering at all under three rounds. Returns the verdicts.
pub fn check_verdicts(
    text: &str,
    rows: &[HashMap<String, String>],
    name_column: &str,
    rounds: usize,
) -> Vec<Verdict> {
    let throughput: HashMap<&str, PrintedSpread> = rows
        .iter()
        .map(|row| {
            let cell = &row["M ops/s"];
            let spread = PrintedSpread::parse(cell).unwrap_or_else(|| panic!("M ops/s cell {cell:?}"));
            assert!(spread.is_ordered(), "{cell}");
            (row[name_column].as_str(), spread)
        })
        .collect();
    let quoted = |name: &str, (min, max): (f64, f64)| {
        let printed = throughput.get(name).unwrap_or_else(|| panic!("no row for {name}"));
        assert_eq!((printed.min, printed.max), (min, max), "{name}: verdict and table disagree");
    };
    let found = verdicts(text);
    assert_eq!(found.len(), rows.len() * (rows.len() - 1) / 2, "one verdict per pair: {found:?}");
    for verdict in &found {
        match verdict {
            Verdict::Ordered { a, b, faster, a_range, b_range } => {
                assert!(rounds >= 3, "an ordering from {rounds} rounds: {verdict:?}");
                quoted(a, *a_range);
                quoted(b, *b_range);
                // Printed with two decimals: ranges apart may round to touching.
                if *faster {
                    assert!(a_range.0 >= b_range.1, "{verdict:?}");
                } else {
                    assert!(a_range.1 <= b_range.0, "{verdict:?}");
                }
            }
            Verdict::Overlap { a, b, a_range, b_range } => {
                assert!(rounds >= 3, "{verdict:?}");
                quoted(a, *a_range);
                quoted(b, *b_range);
                assert!(a_range.0 <= b_range.1 && b_range.0 <= a_range.1, "{verdict:?}");
            }
            Verdict::TooFewRounds { .. } => assert!(rounds < 3, "{verdict:?}"),
        }
    }
    found
}
