//! A reader for the Prometheus text exposition format, just enough to diagnose a server
//! from its `/metrics`: samples with labels, summed over the series that match.
//!
//! Comments (`# HELP`, `# TYPE`), timestamps and exemplars are ignored; histogram and
//! summary series come through as their plain `_bucket`/`_sum`/`_count` samples.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// Metric name.
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Parses every sample line of an exposition; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MetricSample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MetricSample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().ok()?,
    };
    Some(MetricSample { name, labels, value })
}

/// Parses `a="x",b="y"}` and returns the labels and the text after the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after_key) = text.split_once('=')?;
        let mut chars = after_key.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (index, c) = chars.next()?;
            match c {
                '"' => break index,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        };
        labels.push((key.trim().to_owned(), value));
        text = &after_key[end + 2..];
    }
}

/// The sum of every series named `name` whose labels include all of `filter`; `None`
/// when no series matches.
pub fn sum(samples: &[MetricSample], name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    let mut matched = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| filter.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.value)
        .peekable();
    matched.peek()?;
    Some(matched.sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP jemalloc_allocated_bytes Bytes allocated\n\
        # TYPE jemalloc_allocated_bytes gauge\n\
        jemalloc_allocated_bytes 1.5e6\n\
        allockit_arena_chunks{worker=\"0\",state=\"pinned\"} 3\n\
        allockit_arena_chunks{worker=\"1\",state=\"pinned\"} 4 1700000000\n\
        allockit_arena_chunks{worker=\"1\",state=\"idle\"} 9\n\
        weird{path=\"a,\\\"b\\\"}\"} 2\n";

    #[test]
    fn samples_are_summed_over_matching_series() {
        let samples = parse(TEXT);
        assert_eq!(sum(&samples, "jemalloc_allocated_bytes", &[]), Some(1.5e6));
        assert_eq!(sum(&samples, "allockit_arena_chunks", &[("state", "pinned")]), Some(7.0));
        assert_eq!(sum(&samples, "allockit_arena_chunks", &[]), Some(16.0));
        assert_eq!(sum(&samples, "allockit_cache_bytes", &[]), None);
    }

    #[test]
    fn label_values_may_hold_commas_quotes_and_braces() {
        let samples = parse(TEXT);
        let weird = samples.iter().find(|s| s.name == "weird").unwrap();
        assert_eq!(weird.labels, vec![("path".to_owned(), "a,\"b\"}".to_owned())]);
        assert_eq!(weird.value, 2.0);
    }
}
