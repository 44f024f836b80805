//! The one parser of the Prometheus text exposition format (version 0.0.4) in the
//! workspace, enough to read a server's `/metrics`: sample lines with labels, escaped label
//! values, special float values and optional timestamps. `# HELP`, `# TYPE` and other
//! comments are skipped.
//!
//! What it cannot do: it does not check that `# TYPE` matches the samples, does not group
//! histogram series, and ignores timestamps. A malformed line is reported with its line
//! number and does not stop the parse, so one bad metric never hides the others.
//!
//! Cost: one pass over the text, O(length); label values are borrowed unless they contain
//! escapes.

use std::borrow::Cow;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample<'a> {
    /// Metric name, with any `_bucket`/`_sum`/`_count` suffix as written.
    pub name: &'a str,
    /// Label pairs in the order written, values unescaped.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value (`NaN` and the infinities included).
    pub value: f64,
}

impl MetricSample<'_> {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(label, _)| *label == name).map(|(_, value)| value.as_ref())
    }
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// The result of parsing a whole exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition<'a> {
    /// Every well-formed sample, in order.
    pub samples: Vec<MetricSample<'a>>,
    /// Every malformed line.
    pub errors: Vec<LineError>,
}

impl<'a> Exposition<'a> {
    /// The samples named exactly `name` (a histogram's series are named
    /// `name_bucket`, `name_sum`, `name_count`).
    pub fn named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s MetricSample<'a>> + 's {
        self.samples.iter().filter(move |sample| sample.name == name)
    }

    /// Whether any sample is named `name`, or, for a histogram, `name_count`.
    pub fn has(&self, name: &str) -> bool {
        self.samples
            .iter()
            .any(|sample| sample.name == name || sample.name.strip_prefix(name) == Some("_count"))
    }

    /// The sum of the samples a selector written as in PromQL or the exposition picks,
    /// e.g. `allockit_http_requests_total{route="/v1/events",status="400"}`: those named
    /// so whose labels include every pair written (see [`Exposition::sum`]). `None` when
    /// none matches, or when `selector` is not a name with optional `{label="value",...}`.
    pub fn select(&self, selector: &str) -> Option<f64> {
        let line = format!("{} 0", selector.trim());
        let wanted = parse_sample(&line).ok()?;
        let pairs: Vec<(&str, &str)> =
            wanted.labels.iter().map(|(label, value)| (*label, value.as_ref())).collect();
        self.sum(wanted.name, &pairs)
    }

    /// Sum of the samples named `name` whose labels include every pair in `matching`;
    /// `None` when no sample matches (the metric is absent).
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        self.total(|sample_name| sample_name == name, matching)
    }

    /// The number of observations of histogram `histogram` (the sum of its `_count` series
    /// whose labels include every pair in `matching`); `None` when no series matches.
    pub fn count(&self, histogram: &str, matching: &[(&str, &str)]) -> Option<f64> {
        self.total(|name| name.strip_prefix(histogram) == Some("_count"), matching)
    }

    fn total(&self, named: impl Fn(&str) -> bool, matching: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|sample| named(sample.name))
            .filter(|sample| matching.iter().all(|(label, value)| sample.label(label) == Some(*value)))
            .map(|sample| sample.value)
            .reduce(|total, value| total + value)
    }
}

/// Parses `text`; malformed lines land in [`Exposition::errors`] and the rest is read.
pub fn parse(text: &str) -> Exposition<'_> {
    let mut exposition = Exposition::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_sample(line) {
            Ok(sample) => exposition.samples.push(sample),
            Err(message) => exposition.errors.push(LineError { line: number + 1, message }),
        }
    }
    exposition
}

fn parse_sample(line: &str) -> Result<MetricSample<'_>, String> {
    let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("expected a metric name at {line:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value_text = fields.next().ok_or_else(|| format!("no value in {line:?}"))?;
    let value = value_text.parse::<f64>().map_err(|_| format!("{value_text:?} is not a sample value"))?;
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().map_err(|_| format!("{timestamp:?} is not a timestamp"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the value"));
    }
    Ok(MetricSample { name, labels, value })
}

/// Parses `name="value", ...}` and returns the text after the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(&'a str, Cow<'a, str>)>) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest.find(|c: char| !is_label_char(c)).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err(format!("expected a label name at {rest:?}"));
        }
        rest = rest[name_end..].trim_start();
        rest = rest.strip_prefix('=').ok_or_else(|| format!("expected '=' after label {name}"))?.trim_start();
        rest = rest.strip_prefix('"').ok_or_else(|| format!("expected '\"' to open label {name}"))?;
        let (value, after) =
            parse_quoted(rest).ok_or_else(|| format!("unterminated value of label {name}"))?;
        labels.push((name, value));
        rest = after.trim_start();
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma;
        } else if !rest.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {name}"));
        }
    }
}

/// Reads an escaped label value up to its closing quote; returns it and the text after.
fn parse_quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut escaped: Option<String> = None;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let value = escaped.map_or(Cow::Borrowed(&text[..at]), Cow::Owned);
                return Some((value, &text[at + 1..]));
            }
            '\\' => {
                let owned = escaped.get_or_insert_with(|| text[..at].to_owned());
                match chars.next()?.1 {
                    'n' => owned.push('\n'),
                    other => owned.push(other),
                }
            }
            c => {
                if let Some(owned) = escaped.as_mut() {
                    owned.push(c);
                }
            }
        }
    }
    None
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SERVER_LIKE: &str = r#"# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345e+08
# TYPE allockit_arena_chunks gauge
allockit_arena_chunks{state="in_use",worker="0"} 3
allockit_arena_chunks{state="in_use",worker="1"} 4
allockit_arena_chunks{state="pinned",worker="0"} 17
allockit_http_request_duration_seconds_bucket{route="/v1/events",le="+Inf"} 42
weird_value{path="a \"quoted\" \\ back\nslash"} NaN 1700000000000
"#;

    #[test]
    fn samples_with_and_without_labels_are_parsed_and_comments_skipped() {
        let exposition = parse(SERVER_LIKE);
        assert!(exposition.errors.is_empty(), "{:?}", exposition.errors);
        assert_eq!(exposition.samples.len(), 6);
        assert_eq!(exposition.sum("process_resident_memory_bytes", &[]), Some(123_450_000.0));
        let bucket = &exposition.samples[4];
        assert_eq!(bucket.label("le"), Some("+Inf"));
        assert_eq!(bucket.value, 42.0);
        assert_eq!(exposition.named("allockit_arena_chunks").count(), 3);
        assert!(exposition.has("allockit_http_request_duration_seconds_bucket"));
        assert!(!exposition.has("allockit_http_request_duration_seconds"), "no _count series here");
        assert!(parse("h_count 3\n").has("h"), "a histogram is present when its count is");
    }

    #[test]
    fn escaped_label_values_are_unescaped_and_special_values_read() {
        let exposition = parse(SERVER_LIKE);
        let weird = &exposition.samples[5];
        assert_eq!(weird.label("path"), Some("a \"quoted\" \\ back\nslash"));
        assert!(weird.value.is_nan());
        assert_eq!(parse("x -Inf\n").samples[0].value, f64::NEG_INFINITY);
    }

    #[test]
    fn sums_select_by_label_and_report_absence_as_none() {
        let exposition = parse(SERVER_LIKE);
        assert_eq!(exposition.sum("allockit_arena_chunks", &[("state", "in_use")]), Some(7.0));
        assert_eq!(exposition.sum("allockit_arena_chunks", &[("state", "pinned")]), Some(17.0));
        assert_eq!(exposition.sum("allockit_arena_chunks", &[("state", "idle")]), None);
        assert_eq!(exposition.sum("allockit_cache_bytes", &[]), None);
    }

    #[test]
    fn histogram_counts_sum_the_count_series_only() {
        let exposition = parse(
            "allockit_alloc_duration_seconds_bucket{allocator=\"arena\",le=\"+Inf\"} 9\n\
             allockit_alloc_duration_seconds_count{allocator=\"arena\"} 9\n\
             allockit_alloc_duration_seconds_count{allocator=\"pool\"} 4\n\
             allockit_alloc_duration_seconds_sum{allocator=\"pool\"} 0.5\n\
             allockit_alloc_duration_seconds_countless 100\n",
        );
        let count = |labels: &[(&str, &str)]| exposition.count("allockit_alloc_duration_seconds", labels);
        assert_eq!(count(&[("allocator", "arena")]), Some(9.0));
        assert_eq!(count(&[]), Some(13.0));
        assert_eq!(count(&[("allocator", "heap")]), None);
        assert_eq!(exposition.count("allockit_alloc_duration", &[]), None, "a prefix is not a histogram");
    }

    #[test]
    fn label_values_may_hold_commas_quotes_and_braces_and_samples_a_timestamp() {
        let exposition = parse(
            "allockit_arena_chunks{worker=\"1\",state=\"pinned\"} 4 1700000000\n\
             weird{path=\"a,\\\"b\\\"}\"} 2\n",
        );
        assert!(exposition.errors.is_empty(), "{:?}", exposition.errors);
        assert_eq!(exposition.sum("allockit_arena_chunks", &[("state", "pinned")]), Some(4.0));
        let weird = exposition.named("weird").next().unwrap();
        assert_eq!(weird.label("path"), Some("a,\"b\"}"));
        assert_eq!(weird.value, 2.0);
    }

    #[test]
    fn selectors_pick_samples_by_name_and_labels() {
        let exposition = parse(SERVER_LIKE);
        assert_eq!(exposition.select(r#"allockit_arena_chunks{state="in_use"}"#), Some(7.0));
        assert_eq!(exposition.select(r#"allockit_arena_chunks{state="in_use",worker="1"}"#), Some(4.0));
        assert_eq!(exposition.select("allockit_arena_chunks"), Some(24.0));
        assert_eq!(exposition.select(r#"allockit_arena_chunks{state="idle"}"#), None);
        assert_eq!(exposition.select(r#"allockit_arena_chunks{state="in_use""#), None, "unclosed");
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number_and_do_not_hide_the_rest() {
        let text = "good 1\nbad{state=\"x\" 2\n{no_name=\"a\"} 3\nnovalue\nvalue_not_a_number abc\nalso_good{a=\"b\",} 4\n";
        let exposition = parse(text);
        let lines: Vec<usize> = exposition.errors.iter().map(|error| error.line).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        let names: Vec<&str> = exposition.samples.iter().map(|sample| sample.name).collect();
        assert_eq!(names, ["good", "also_good"]);
    }

    proptest! {
        #[test]
        fn whatever_the_prometheus_crate_encodes_parses_back_to_the_same_samples(
            values in proptest::collection::btree_map("[ -~\n\u{e9}]{0,12}", -1e12f64..1e12, 1..8),
        ) {
            let registry = prometheus::Registry::new();
            let gauge = prometheus::GaugeVec::new(
                prometheus::Opts::new("roundtrip_value", "A value per label."), &["path"]).unwrap();
            registry.register(Box::new(gauge.clone())).unwrap();
            for (path, value) in &values {
                gauge.with_label_values(&[path.as_str()]).set(*value);
            }
            let mut encoded = Vec::new();
            prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut encoded).unwrap();
            let text = String::from_utf8(encoded).unwrap();
            let exposition = parse(&text);
            prop_assert!(exposition.errors.is_empty(), "{:?}", exposition.errors);
            prop_assert_eq!(exposition.samples.len(), values.len());
            for (path, value) in &values {
                prop_assert_eq!(exposition.sum("roundtrip_value", &[("path", path)]), Some(*value));
            }
        }
    }
}
