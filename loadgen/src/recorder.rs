//! Where request outcomes and latencies go: HdrHistograms and counters, never vectors of
//! samples, so a run of any length uses the same memory.
//!
//! Each request yields a [`Sample`] with three durations:
//! * *corrected latency*: from the intended send time (or the actual send, if the timer
//!   sent it a little early) to the end of the response: what a user of an open system
//!   waits; the coordinated-omission correction of wrk2,
//! * *service time*: from the actual send to the end of the response (what the server took),
//! * *send delay*: from the intended to the actual send (how far behind the generator was).
//!
//! A [`Recorder`] keeps two [`Stats`]: one for the current reporting interval (all phases,
//! drained every second into the time series) and one for the measured window (warm-up
//! excluded, drained into the run's totals). The engine keeps one recorder per shard behind
//! an uncontended mutex; the sampler merges them.
//!
//! Histograms record whole microseconds from 1 µs to one hour with three significant digits
//! (0.1 % precision); longer values are clamped to one hour. Each histogram is a fixed
//! array of about 190 KB allocated up front. Recording is O(1) and allocates nothing,
//! except the first time a new HTTP status is counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The largest latency a histogram holds, in microseconds (one hour).
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits kept for every value.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Why a request produced no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The connection could not be (re-)established.
    Connect,
    /// The connection broke while sending or receiving.
    Io,
    /// No complete response within `--timeout`.
    Timeout,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete HTTP response with this status.
    Response(u16),
    /// No complete response; the failure says where it broke.
    Failed(Failure),
}

/// One finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Whether the request was scheduled in the measured window.
    pub measured: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// From the earlier of the intended and the actual send time to the response end.
    pub corrected: Duration,
    /// Actual send time to response end.
    pub service: Duration,
    /// Intended to actual send time (zero when sent early).
    pub send_delay: Duration,
}

impl Sample {
    /// A sample from its three instants. Latency runs from the earlier of the intended and
    /// the actual send: a late send is charged its wait, an early one (timer granularity)
    /// is never measured as shorter than its service time.
    pub fn timed(
        measured: bool,
        outcome: Outcome,
        intended_at: Instant,
        sent_at: Instant,
        done_at: Instant,
    ) -> Self {
        Self {
            measured,
            outcome,
            corrected: done_at.saturating_duration_since(intended_at.min(sent_at)),
            service: done_at.saturating_duration_since(sent_at),
            send_delay: sent_at.saturating_duration_since(intended_at),
        }
    }
}

/// Counts of outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with any other status, by status. Statuses seen once keep an entry (maybe
    /// zero after a clear) so that recording never allocates twice for the same status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without a response, indexed by [`Failure`] discriminant.
    failures: [u64; 3],
}

impl Tally {
    /// Counts one outcome (allocates only the first time a status is seen).
    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Response(status) if (200..300).contains(&status) => self.ok += 1,
            Outcome::Response(status) => *self.statuses.entry(status).or_insert(0) += 1,
            Outcome::Failed(failure) => self.failures[failure as usize] += 1,
        }
    }

    /// Requests that ended in a failure of this kind.
    pub fn failures(&self, failure: Failure) -> u64 {
        self.failures[failure as usize]
    }

    /// Requests that got a complete HTTP response, whatever its status.
    pub fn responses(&self) -> u64 {
        self.ok + self.statuses.values().sum::<u64>()
    }

    /// Requests that got no response.
    pub fn failed(&self) -> u64 {
        self.failures.iter().sum()
    }

    /// Requests that ended badly: a non-2xx status or no response.
    pub fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failed()
    }

    /// Every request counted: responses of any status plus failures.
    pub fn total(&self) -> u64 {
        self.responses() + self.failed()
    }

    fn add(&mut self, other: &Tally) {
        self.ok += other.ok;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_insert(0) += count;
        }
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            *mine += theirs;
        }
    }

    fn clear(&mut self) {
        self.ok = 0;
        self.statuses.values_mut().for_each(|count| *count = 0);
        self.failures = [0; 3];
    }
}

/// Latency histograms and outcome counts for a set of requests.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Intended send to response end, µs, responses only.
    pub corrected: Histogram<u64>,
    /// Actual send to response end, µs, responses only.
    pub service: Histogram<u64>,
    /// Intended to actual send, µs, every request that was sent (not those whose connection
    /// could not be opened).
    pub send_delay: Histogram<u64>,
    /// Outcome counts.
    pub tally: Tally,
}

impl Stats {
    /// Empty statistics: three histograms of 1 µs to 1 h at 3 significant digits (about
    /// 370 KB together).
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            corrected: empty_histogram()?,
            service: empty_histogram()?,
            send_delay: empty_histogram()?,
            tally: Tally::default(),
        })
    }

    /// Records one request. O(1); allocates only for a status never seen before.
    pub fn record(&mut self, sample: &Sample) {
        self.tally.count(sample.outcome);
        match sample.outcome {
            Outcome::Response(_) => {
                self.send_delay.saturating_record(micros(sample.send_delay));
                self.corrected.saturating_record(micros(sample.corrected));
                self.service.saturating_record(micros(sample.service));
            }
            Outcome::Failed(Failure::Io | Failure::Timeout) => {
                self.send_delay.saturating_record(micros(sample.send_delay));
            }
            Outcome::Failed(Failure::Connect) => {}
        }
    }

    /// Adds `other` into `self`. O(histogram size).
    pub fn add(&mut self, other: &Stats) -> Result<(), Error> {
        let merge = |into: &mut Histogram<u64>, from: &Histogram<u64>| {
            into.add(from).map_err(|error| Error::Histogram(format!("{error:?}")))
        };
        merge(&mut self.corrected, &other.corrected)?;
        merge(&mut self.service, &other.service)?;
        merge(&mut self.send_delay, &other.send_delay)?;
        self.tally.add(&other.tally);
        Ok(())
    }

    /// Empties the statistics, keeping their memory.
    pub fn clear(&mut self) {
        self.corrected.reset();
        self.service.reset();
        self.send_delay.reset();
        self.tally.clear();
    }

    /// Bytes held by the histograms' counter arrays (constant for the life of the value).
    pub fn histogram_bytes(&self) -> usize {
        [&self.corrected, &self.service, &self.send_delay]
            .iter()
            .map(|histogram| histogram.distinct_values() * size_of::<u64>())
            .sum()
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One shard's statistics: the current interval and the measured window since last drained.
#[derive(Debug, Clone)]
pub struct Recorder {
    interval: Stats,
    measured: Stats,
}

impl Recorder {
    /// An empty recorder: one [`Stats`] for the current interval, one for the measured
    /// window.
    pub fn new() -> Result<Self, Error> {
        Ok(Self { interval: Stats::new()?, measured: Stats::new()? })
    }

    /// Records one request into the interval and, if measured, into the window. O(1).
    pub fn record(&mut self, sample: &Sample) {
        self.interval.record(sample);
        if sample.measured {
            self.measured.record(sample);
        }
    }

    /// Moves everything recorded so far into `interval` and `measured`, leaving this
    /// recorder empty.
    pub fn drain_into(&mut self, interval: &mut Stats, measured: &mut Stats) -> Result<(), Error> {
        interval.add(&self.interval)?;
        measured.add(&self.measured)?;
        self.interval.clear();
        self.measured.clear();
        Ok(())
    }

    /// Bytes held by the histograms.
    pub fn histogram_bytes(&self) -> usize {
        self.interval.histogram_bytes() + self.measured.histogram_bytes()
    }
}

/// `histogram` in HdrHistogram's V2 deflate encoding, as base64: the form of one interval
/// in an interval log, which HdrHistogram's own tools decode (lossless: every count kept).
pub fn encode_histogram(histogram: &Histogram<u64>) -> Result<String, Error> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|error| Error::Histogram(format!("cannot encode: {error}")))?;
    Ok(BASE64.encode(bytes))
}

/// The histogram [`encode_histogram`] (or any HdrHistogram V2 encoder) wrote; the message
/// says why not.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = BASE64.decode(text.trim()).map_err(|error| format!("not base64: {error}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|error| format!("not an HdrHistogram V2 encoding: {error:?}"))
}

/// An empty histogram of the recorder's range and precision (1 µs to one hour, 3
/// significant digits).
pub fn empty_histogram() -> Result<Histogram<u64>, Error> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
        .map_err(|error| Error::Histogram(error.to_string()))
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Latencies in the histogram (one per response).
    pub count: u64,
    /// Arithmetic mean: pulled up by the tail, so read it beside the median.
    pub mean_ms: f64,
    /// Median: half the responses took longer.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value (HdrHistogram's 3 significant digits: within 0.1 %).
    pub max_ms: f64,
}

impl LatencySummary {
    /// The summary of `histogram` (µs values), or `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, corrected_ms: u64, service_ms: u64, measured: bool) -> Sample {
        Sample {
            measured,
            outcome: Outcome::Response(status),
            corrected: Duration::from_millis(corrected_ms),
            service: Duration::from_millis(service_ms),
            send_delay: Duration::from_millis(corrected_ms - service_ms),
        }
    }

    #[test]
    fn a_late_send_is_charged_its_wait_and_an_early_one_only_its_service_time() {
        let intended = Instant::now();
        let ms = Duration::from_millis;
        let late =
            Sample::timed(true, Outcome::Response(200), intended, intended + ms(30), intended + ms(35));
        assert_eq!((late.corrected, late.service, late.send_delay), (ms(35), ms(5), ms(30)));
        let early = Sample::timed(true, Outcome::Response(200), intended + ms(1), intended, intended + ms(5));
        assert_eq!((early.corrected, early.service, early.send_delay), (ms(5), ms(5), Duration::ZERO));
    }

    #[test]
    fn outcomes_are_counted_by_status_and_by_failure_kind() {
        let mut tally = Tally::default();
        for outcome in [
            Outcome::Response(200),
            Outcome::Response(204),
            Outcome::Response(404),
            Outcome::Response(503),
            Outcome::Response(503),
            Outcome::Failed(Failure::Timeout),
            Outcome::Failed(Failure::Connect),
        ] {
            tally.count(outcome);
        }
        assert_eq!(tally.ok, 2);
        assert_eq!(tally.statuses, BTreeMap::from([(404, 1), (503, 2)]));
        assert_eq!((tally.failures(Failure::Timeout), tally.failures(Failure::Connect)), (1, 1));
        assert_eq!((tally.responses(), tally.errors(), tally.total()), (5, 5, 7));
    }

    #[test]
    fn failures_count_but_do_not_enter_the_latency_histograms() {
        let mut stats = Stats::new().unwrap();
        stats.record(&Sample {
            measured: true,
            outcome: Outcome::Failed(Failure::Io),
            corrected: Duration::from_secs(2),
            service: Duration::from_secs(2),
            send_delay: Duration::ZERO,
        });
        assert!(stats.corrected.is_empty() && stats.service.is_empty());
        assert_eq!(stats.send_delay.len(), 1);
        assert_eq!(stats.tally.failed(), 1);
    }

    #[test]
    fn warmup_samples_reach_the_interval_but_not_the_measured_window() {
        let mut recorder = Recorder::new().unwrap();
        recorder.record(&response(200, 5, 5, false));
        recorder.record(&response(200, 7, 6, true));
        let (mut interval, mut measured) = (Stats::new().unwrap(), Stats::new().unwrap());
        recorder.drain_into(&mut interval, &mut measured).unwrap();
        assert_eq!((interval.tally.ok, measured.tally.ok), (2, 1));
        assert!(measured.corrected.equivalent(measured.corrected.max(), 7000));
        let (mut again, mut measured_again) = (Stats::new().unwrap(), Stats::new().unwrap());
        recorder.drain_into(&mut again, &mut measured_again).unwrap();
        assert_eq!(again.tally.total() + measured_again.tally.total(), 0, "draining empties the recorder");
    }

    #[test]
    fn summaries_report_percentiles_in_milliseconds_within_histogram_precision() {
        let mut stats = Stats::new().unwrap();
        for millis in 1..=1000 {
            stats.record(&response(200, millis, 1, true));
        }
        let summary = LatencySummary::of(&stats.corrected).unwrap();
        assert_eq!(summary.count, 1000);
        for (value, expected) in [
            (summary.p50_ms, 500.0),
            (summary.p99_ms, 990.0),
            (summary.max_ms, 1000.0),
            (summary.mean_ms, 500.5),
        ] {
            assert!((value - expected).abs() <= expected * 0.002, "{value} vs {expected}");
        }
        assert_eq!(LatencySummary::of(&Stats::new().unwrap().service), None);
    }

    #[test]
    fn histograms_survive_encoding_count_for_count() {
        let mut stats = Stats::new().unwrap();
        for millis in [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597] {
            stats.record(&response(200, millis, 1, true));
        }
        let text = encode_histogram(&stats.corrected).unwrap();
        let decoded = decode_histogram(&text).unwrap();
        assert_eq!(decoded, stats.corrected);
        assert_eq!(decode_histogram(&encode_histogram(&stats.service).unwrap()).unwrap().len(), 17);
        assert!(decode_histogram("not base64!").unwrap_err().contains("base64"));
        assert!(decode_histogram("aGVsbG8=").unwrap_err().contains("V2"));
    }

    #[test]
    fn latencies_beyond_an_hour_are_clamped_not_lost() {
        let mut stats = Stats::new().unwrap();
        stats.record(&response(200, 2 * 3_600_000, 1, true));
        assert_eq!(stats.corrected.len(), 1);
        assert!(stats.corrected.max() >= HIGHEST_MICROS);
    }
}
