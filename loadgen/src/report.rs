//! What a run produces: the [`RunReport`] (serialised as the `--json` file), its summary
//! table, and the per-second [`SeriesRow`]s (the `--csv` file and the charts).
//!
//! Every count the report shows is a count of the measured window: requests whose intended
//! send time falls after the warm-up. Nothing is dropped silently: requests that were late,
//! skipped at `--max-in-flight`, or never sent (due in the window, still waiting for a free
//! connection when the drain after the end ran out: see [`crate::timetable`]) are counted beside the
//! percentiles, and count against `--max-error-rate` (see [`RunReport::error_rate`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::recorder::LatencySummary;
use crate::scrape::ServerSample;
use crate::workload::WorkloadSpec;

/// Which part of the run a series row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first request (the server's baseline).
    Start,
    /// Warm-up, excluded from the totals.
    Warmup,
    /// The measured window: its requests make the totals and percentiles.
    Measure,
    /// After the schedule ended, while the last responses arrive.
    Drain,
}

impl Phase {
    /// The name used in CSV and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
            Phase::Drain => "drain",
        }
    }

    /// The phase of the interval that starts `start` after the schedule's start, in a run
    /// whose warm-up lasts `warmup` and whose schedule ends at `end`: the phase its first
    /// instant belongs to (an interval ending exactly as the warm-up ends is warm-up).
    pub fn of_interval(start: Duration, warmup: Duration, end: Duration) -> Phase {
        if start < warmup {
            Phase::Warmup
        } else if start < end {
            Phase::Measure
        } else {
            Phase::Drain
        }
    }
}

/// One second of the run (the last row may cover less; after a day, rows cover more: see
/// [`Series`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Seconds since the start of the schedule, at the end of the interval.
    pub elapsed_s: f64,
    /// Seconds the row covers.
    pub interval_s: f64,
    /// The phase at the start of the interval.
    pub phase: Phase,
    /// Responses received in the interval.
    pub responses: u64,
    /// Non-2xx responses and failed requests in the interval.
    pub errors: u64,
    /// Responses per second over the interval.
    pub achieved_rps: f64,
    /// Median corrected latency of the interval's responses.
    pub p50_ms: Option<f64>,
    /// 99th percentile corrected latency of the interval's responses.
    pub p99_ms: Option<f64>,
    /// Largest corrected latency of the interval's responses.
    pub max_ms: Option<f64>,
    /// 99th percentile service time of the interval's responses.
    pub service_p99_ms: Option<f64>,
    /// Requests due and not yet sent at the end of the interval.
    pub backlog: u64,
    /// Requests sent and awaiting a response at the end of the interval.
    pub awaiting_response: u64,
    /// The server's figures scraped at the end of the interval.
    pub server: ServerSample,
}

impl SeriesRow {
    /// The row before any request: the server's baseline `server` at second 0, nothing
    /// sent or received.
    pub fn start(server: ServerSample) -> Self {
        SeriesRow {
            elapsed_s: 0.0,
            interval_s: 0.0,
            phase: Phase::Start,
            responses: 0,
            errors: 0,
            achieved_rps: 0.0,
            p50_ms: None,
            p99_ms: None,
            max_ms: None,
            service_p99_ms: None,
            backlog: 0,
            awaiting_response: 0,
            server,
        }
    }
}

/// The per-second series with bounded memory: once it holds `limit` rows, adjacent rows are
/// merged pairwise and each later row covers twice as many seconds, so a run of any length
/// keeps at most `limit` rows (86,400 by default: a day at one row per second).
///
/// A merged row sums counts, averages the rate over its interval, keeps the *larger*
/// latency percentiles of the two (a conservative bound, not an exact percentile) and the
/// later backlog and server figures. Merging costs O(`limit`) once per doubling.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    rows: Vec<SeriesRow>,
    limit: usize,
    /// Incoming rows merged into one stored row.
    rows_per_row: u64,
    /// The stored row being filled, and how many incoming rows it holds.
    pending: Option<(SeriesRow, u64)>,
}

impl Series {
    /// Rows kept by default.
    pub const DEFAULT_LIMIT: usize = 86_400;

    /// An empty series keeping at most `limit` rows (at least 2).
    pub fn with_limit(limit: usize) -> Self {
        // Reserved whole, so that the vector never doubles past the limit (pages not yet
        // written are not resident).
        let limit = limit.max(2);
        Self { rows: Vec::with_capacity(limit), limit, rows_per_row: 1, pending: None }
    }

    /// Appends one row, merging the oldest pairs of rows once the series is at its limit.
    pub fn push(&mut self, row: SeriesRow) {
        let (merged, count) = match self.pending.take() {
            Some((pending, count)) => (merge_rows(&pending, &row), count + 1),
            None => (row, 1),
        };
        if count < self.rows_per_row {
            self.pending = Some((merged, count));
            return;
        }
        self.rows.push(merged);
        if self.rows.len() >= self.limit {
            // Merged in place: pair i lands in row i, so no second vector is needed.
            let pairs = self.rows.len().div_ceil(2);
            for pair in 0..pairs {
                let first = 2 * pair;
                let merged = match self.rows.get(first + 1) {
                    Some(second) => merge_rows(&self.rows[first], second),
                    None => self.rows[first].clone(),
                };
                self.rows[pair] = merged;
            }
            self.rows.truncate(pairs);
            self.rows_per_row *= 2;
        }
    }

    /// The rows, the partly filled last one included.
    pub fn into_rows(mut self) -> Vec<SeriesRow> {
        self.rows.extend(self.pending.take().map(|(row, _)| row));
        self.rows
    }

    /// The number of rows so far.
    pub fn len(&self) -> usize {
        self.rows.len() + usize::from(self.pending.is_some())
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Series {
    fn default() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }
}

/// `earlier` and `later` as one row covering both intervals.
pub(crate) fn merge_rows(earlier: &SeriesRow, later: &SeriesRow) -> SeriesRow {
    let interval_s = earlier.interval_s + later.interval_s;
    let responses = earlier.responses + later.responses;
    let larger = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    SeriesRow {
        elapsed_s: later.elapsed_s,
        interval_s,
        phase: earlier.phase,
        responses,
        errors: earlier.errors + later.errors,
        achieved_rps: if interval_s > 0.0 { responses as f64 / interval_s } else { 0.0 },
        p50_ms: larger(earlier.p50_ms, later.p50_ms),
        p99_ms: larger(earlier.p99_ms, later.p99_ms),
        max_ms: larger(earlier.max_ms, later.max_ms),
        service_p99_ms: larger(earlier.service_p99_ms, later.service_p99_ms),
        backlog: later.backlog,
        awaiting_response: later.awaiting_response,
        server: later.server,
    }
}

/// Request counts of the measured window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests the schedule placed in the window.
    pub scheduled: u64,
    /// Requests a connection tried to send.
    pub attempted: u64,
    /// Complete HTTP responses, any status.
    pub responses: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Sends that went out after their intended time because every connection was busy.
    pub late: u64,
    /// Sends skipped at `--max-in-flight`.
    pub skipped: u64,
    /// Requests due before the end that no connection got to send, even in the drain after
    /// it (bounded by the request timeout).
    pub unsent: u64,
}

/// Errors of the measured window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Non-2xx responses by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Connections that could not be (re-)established.
    pub connect: u64,
    /// Connections that broke mid-request.
    pub io: u64,
    /// Requests without a complete response within `--timeout`.
    pub timeout: u64,
}

impl ErrorCounts {
    /// Every error: non-2xx responses and requests without a response.
    pub fn total(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.connect + self.io + self.timeout
    }
}

/// The latency histograms of the measured window, each in HdrHistogram's V2 deflate encoding
/// as base64 ([`crate::recorder::encode_histogram`]): what `loadgen merge` adds up exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedHistograms {
    /// Corrected latency, µs.
    pub corrected: String,
    /// Service time, µs.
    pub service: String,
    /// Send delay, µs.
    pub send_delay: String,
}

/// How a merged report was made (`loadgen merge`); absent from a single run's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeInfo {
    /// The run reports merged, as given on the command line.
    pub files: Vec<String>,
    /// Seconds during which every instance's measured window was open (zero when some two
    /// windows do not meet); the merged `measured_s` is the union of the windows.
    pub overlap_s: f64,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The loadgen version that wrote the report (`loadgen merge` only merges equal ones).
    pub loadgen_version: String,
    /// A name for the run (the demo's mode; empty otherwise).
    pub label: String,
    /// HTTP method of every request (`POST` unless `--method`).
    pub method: String,
    /// Full URL every request went to, the path included.
    pub url: String,
    /// The body workload, if requests carry one.
    pub workload: Option<WorkloadSpec>,
    /// Scheduled rate, requests per second.
    pub target_rps: f64,
    /// Keep-alive connections.
    pub connections: usize,
    /// The `--max-in-flight` limit, if any.
    pub max_in_flight: Option<u64>,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Planned measured duration, seconds.
    pub duration_s: f64,
    /// Measured duration actually run (shorter if interrupted), seconds; for a merged report,
    /// the union of the instances' measured windows.
    pub measured_s: f64,
    /// Wall-clock start of the schedule (second 0 of the series), seconds since the unix
    /// epoch; the measured window starts `warmup_s` later. For a merged report, the earliest.
    pub start_unix_s: f64,
    /// Whether the run was stopped early.
    pub interrupted: bool,
    /// What the schedule asked for and what happened to it, measured window only.
    pub requests: RequestCounts,
    /// Failed requests by cause, measured window only.
    pub errors: ErrorCounts,
    /// Responses per second over the measured window.
    pub achieved_rps: f64,
    /// Corrected latency (intended send to response end).
    pub latency: Option<LatencySummary>,
    /// Service time (actual send to response end).
    pub service_time: Option<LatencySummary>,
    /// Send delay (intended to actual send).
    pub send_delay: Option<LatencySummary>,
    /// The metrics URL scraped, if any.
    pub metrics_url: Option<String>,
    /// Why the last scrape failed, if it did.
    pub scrape_error: Option<String>,
    /// The measured window's histograms, losslessly (absent only from reports of loadgen
    /// builds that predate `loadgen merge`).
    pub histograms: Option<EncodedHistograms>,
    /// Set when this report merges several runs.
    pub merged: Option<MergeInfo>,
    /// One row per second.
    pub series: Vec<SeriesRow>,
}

impl RunReport {
    /// The share of scheduled requests that did not end in a 2xx response: errors, skipped
    /// and unsent requests. Zero when nothing was scheduled.
    pub fn error_rate(&self) -> f64 {
        let failed = self.errors.total() + self.requests.skipped + self.requests.unsent;
        if self.requests.scheduled == 0 { 0.0 } else { failed as f64 / self.requests.scheduled as f64 }
    }

    /// The share of sent requests that left after their intended time. Zero when nothing
    /// was sent.
    pub fn late_share(&self) -> f64 {
        if self.requests.attempted == 0 {
            0.0
        } else {
            self.requests.late as f64 / self.requests.attempted as f64
        }
    }

    /// Whether the generator fell behind its own schedule: more than a tenth of the scheduled
    /// requests never left, or most of those sent left late. The run then measured how far
    /// behind loadgen (or the server) fell, not the server at the target rate.
    pub fn could_not_keep_up(&self) -> bool {
        let scheduled = self.requests.scheduled as f64;
        self.requests.scheduled > 0
            && (self.requests.unsent as f64 > 0.1 * scheduled || self.late_share() > 0.5)
    }

    /// The first scrape that returned the server's RSS (the baseline before load).
    pub fn server_at_start(&self) -> Option<&ServerSample> {
        self.series.iter().map(|row| &row.server).find(|server| server.rss_bytes.is_some())
    }

    /// The last scrape that returned the server's RSS.
    pub fn server_at_end(&self) -> Option<&ServerSample> {
        self.series.iter().rev().map(|row| &row.server).find(|server| server.rss_bytes.is_some())
    }

    /// The summary table printed at the end of a run.
    pub fn render_summary(&self) -> String {
        let mut out = String::new();
        let label = if self.label.is_empty() { String::new() } else { format!("[{}] ", self.label) };
        let _ = writeln!(
            out,
            "{label}{} {}, {} connections, {:.1} s measured{}{}",
            self.method,
            self.url,
            self.connections,
            self.measured_s,
            if self.warmup_s > 0.0 {
                format!(" ({:.1} s warm-up excluded)", self.warmup_s)
            } else {
                String::new()
            },
            if self.interrupted { ", interrupted" } else { "" },
        );
        let _ = writeln!(
            out,
            "  rate       target {:.1}/s, achieved {:.1}/s",
            self.target_rps, self.achieved_rps
        );
        let _ = writeln!(
            out,
            "  requests   {} scheduled, {} attempted, {} responses ({} 2xx)",
            self.requests.scheduled, self.requests.attempted, self.requests.responses, self.requests.ok
        );
        let _ = writeln!(out, "  errors     {}", self.describe_errors());
        let _ = writeln!(
            out,
            "  schedule   {} late ({:.2}% of sent), {} skipped at --max-in-flight, {} never sent",
            self.requests.late,
            100.0 * self.late_share(),
            self.requests.skipped,
            self.requests.unsent
        );
        let _ = writeln!(
            out,
            "  latency ms {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "p50", "p90", "p99", "p99.9", "max", "mean"
        );
        for (name, summary) in
            [("corrected", &self.latency), ("service", &self.service_time), ("send delay", &self.send_delay)]
        {
            match summary {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "  {name:<10} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
                        s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms
                    );
                }
                None => {
                    let _ = writeln!(out, "  {name:<10} {:>10}", "-");
                }
            }
        }
        let _ = writeln!(out, "  server     {}", self.describe_server());
        for note in self.notes() {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }

    fn describe_errors(&self) -> String {
        let errors = &self.errors;
        if errors.total() == 0 {
            return "none".to_owned();
        }
        let mut parts: Vec<String> = errors
            .by_status
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(status, count)| format!("HTTP {status} ×{count}"))
            .collect();
        for (name, count) in [("connect", errors.connect), ("io", errors.io), ("timeout", errors.timeout)] {
            if count > 0 {
                parts.push(format!("{name} ×{count}"));
            }
        }
        format!("{} ({:.3}% of scheduled): {}", errors.total(), 100.0 * self.error_rate(), parts.join(", "))
    }

    fn describe_server(&self) -> String {
        let (Some(first), Some(last)) = (self.server_at_start(), self.server_at_end()) else {
            return match (&self.metrics_url, &self.scrape_error) {
                (None, _) => "not scraped".to_owned(),
                (Some(url), Some(error)) => format!("no figures from {url}: {error}"),
                (Some(url), None) => format!("{url} exports none of the memory metrics"),
            };
        };
        let mut parts = vec![format!("RSS {} → {}", mebibytes(first.rss_bytes), mebibytes(last.rss_bytes))];
        if last.arena_chunks_pinned.is_some() {
            parts.push(format!(
                "pinned chunks {} → {}",
                count(first.arena_chunks_pinned),
                count(last.arena_chunks_pinned)
            ));
        }
        if last.cache_bytes.is_some() {
            parts.push(format!(
                "cache {} in {} entries",
                mebibytes(last.cache_bytes),
                count(last.cache_entries)
            ));
        }
        parts.join(", ")
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(merged) = &self.merged {
            notes.push(format!(
                "merged from {} runs: counts and histograms added; rates over the span of their \
                 measured windows ({:.1} s, earliest start to latest end), all of which were open \
                 together for {:.1} s",
                merged.files.len(),
                self.measured_s,
                merged.overlap_s
            ));
        }
        if self.could_not_keep_up() {
            notes.push(format!(
                "loadgen could not keep up with --rps {:.1}: it sent {} of {} scheduled requests \
                 ({:.1}/s), {:.1}% of them late; the latencies measure the backlog, not the server \
                 at that rate (the server or loadgen itself is saturated: lower --rps, or raise \
                 --connections)",
                self.target_rps,
                self.requests.attempted,
                self.requests.scheduled,
                self.requests.attempted as f64 / self.measured_s.max(f64::MIN_POSITIVE),
                100.0 * self.late_share(),
            ));
        } else if self.late_share() > 0.01 {
            notes.push(format!(
                "{:.1}% of sends were late: every connection was busy when they were due \
                 (raise --connections, or the server is saturated)",
                100.0 * self.late_share()
            ));
        }
        if self.requests.unsent > 0 {
            notes.push(format!(
                "{} requests were due but never sent (still waiting when the drain after the end ran out)",
                self.requests.unsent
            ));
        }
        if self.requests.skipped > 0 {
            notes.push(format!(
                "{} sends were skipped at --max-in-flight; percentiles cover sent requests only",
                self.requests.skipped
            ));
        }
        notes
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        write_json(path, self)
    }

    /// Writes the per-second series as CSV (absent figures are empty cells).
    pub fn write_csv(&self, path: &Path) -> Result<(), Error> {
        // Streamed row by row, like the JSON: a day-long series is tens of megabytes.
        let file_error = |cause| Error::File { path: path.to_owned(), cause };
        let mut file = io::BufWriter::new(fs::File::create(path).map_err(file_error)?);
        let mut line = csv_header();
        file.write_all(line.as_bytes()).map_err(file_error)?;
        for row in &self.series {
            line.clear();
            csv_row(row, &mut line);
            file.write_all(line.as_bytes()).map_err(file_error)?;
        }
        file.flush().map_err(file_error)
    }
}

/// The CSV columns of the server's figures, in the order of [`server_values`].
pub const SERVER_COLUMNS: [&str; 9] = [
    "server_rss_bytes",
    "jemalloc_allocated_bytes",
    "jemalloc_resident_bytes",
    "arena_chunks_in_use",
    "arena_chunks_idle",
    "arena_chunks_pinned",
    "arena_committed_bytes",
    "cache_bytes",
    "cache_entries",
];

/// A sample's figures in [`SERVER_COLUMNS`] order.
pub fn server_values(server: &ServerSample) -> [Option<f64>; 9] {
    [
        server.rss_bytes,
        server.jemalloc_allocated_bytes,
        server.jemalloc_resident_bytes,
        server.arena_chunks_in_use,
        server.arena_chunks_idle,
        server.arena_chunks_pinned,
        server.arena_committed_bytes,
        server.cache_bytes,
        server.cache_entries,
    ]
}

/// The series as CSV text, one header line then one line per row.
pub fn render_csv(series: &[SeriesRow]) -> String {
    let mut out = csv_header();
    for row in series {
        csv_row(row, &mut out);
    }
    out
}

/// The CSV header line, newline included.
fn csv_header() -> String {
    let mut out = String::from(
        "elapsed_s,interval_s,phase,responses,errors,achieved_rps,p50_ms,p99_ms,max_ms,service_p99_ms,backlog,\
         awaiting_response",
    );
    for column in SERVER_COLUMNS {
        out.push(',');
        out.push_str(column);
    }
    out.push('\n');
    out
}

/// Appends one row's CSV line, newline included.
fn csv_row(row: &SeriesRow, out: &mut String) {
    let cell = |value: Option<f64>| value.map_or_else(String::new, |value| value.to_string());
    let _ = write!(
        out,
        "{:.3},{:.3},{},{},{},{:.3},{},{},{},{},{},{}",
        row.elapsed_s,
        row.interval_s,
        row.phase.name(),
        row.responses,
        row.errors,
        row.achieved_rps,
        cell(row.p50_ms),
        cell(row.p99_ms),
        cell(row.max_ms),
        cell(row.service_p99_ms),
        row.backlog,
        row.awaiting_response
    );
    for value in server_values(&row.server) {
        out.push(',');
        out.push_str(&cell(value));
    }
    out.push('\n');
}

/// Writes any serialisable value as pretty JSON, streamed to the file (a day-long run's
/// series would be tens of megabytes as one string).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let file_error = |cause| Error::File { path: path.to_owned(), cause };
    let mut file = io::BufWriter::new(fs::File::create(path).map_err(file_error)?);
    serde_json::to_writer_pretty(&mut file, value).map_err(|error| {
        if error.is_io() { file_error(io::Error::from(error)) } else { Error::Json(error) }
    })?;
    file.write_all(b"\n").map_err(file_error)?;
    file.flush().map_err(file_error)
}

/// Writes `bytes` to `path`, naming the file in any error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file_error = |cause| Error::File { path: path.to_owned(), cause };
    let mut file = fs::File::create(path).map_err(file_error)?;
    file.write_all(bytes).map_err(file_error)?;
    file.flush().map_err(file_error)
}

/// `12.3 MiB`, or `-` when absent.
pub fn mebibytes(bytes: Option<f64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |bytes| format!("{:.1} MiB", bytes / (1024.0 * 1024.0)))
}

/// A count without decimals, or `-` when absent.
pub fn count(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(second: u64, responses: u64, p99_ms: f64) -> SeriesRow {
        SeriesRow {
            elapsed_s: second as f64,
            interval_s: 1.0,
            phase: Phase::Measure,
            responses,
            errors: 1,
            achieved_rps: responses as f64,
            p50_ms: Some(p99_ms / 2.0),
            p99_ms: Some(p99_ms),
            max_ms: Some(p99_ms),
            service_p99_ms: None,
            backlog: second,
            awaiting_response: 0,
            server: ServerSample { rss_bytes: Some(second as f64), ..ServerSample::default() },
        }
    }

    #[test]
    fn a_short_series_keeps_every_row() {
        let mut series = Series::with_limit(8);
        for second in 1..=5 {
            series.push(row(second, 10, 1.0));
        }
        assert_eq!(series.into_rows(), (1..=5).map(|second| row(second, 10, 1.0)).collect::<Vec<_>>());
    }

    #[test]
    fn a_day_long_series_fits_loadgens_memory_budget_however_long_the_run() {
        // Two days of one-second rows: the series merges pairs at its limit and never holds
        // more than the limit's worth of rows, reserved once.
        let mut series = Series::default();
        let mut pushed = 0;
        for second in 0..2 * Series::DEFAULT_LIMIT as u64 + 17 {
            series.push(row(second + 1, 10, 1.0));
            pushed += 1;
            assert!(series.rows.len() < Series::DEFAULT_LIMIT, "after {pushed} rows");
        }
        assert_eq!(
            series.rows.capacity(),
            Series::DEFAULT_LIMIT,
            "the vector never grew past its reservation"
        );
        let bytes = series.rows.capacity() * std::mem::size_of::<SeriesRow>();
        // 64 MiB is loadgen's budget; the histograms and the runtime take under 16 MiB.
        assert!(bytes < 40 << 20, "the series alone may take {bytes} bytes");
        let rows = series.into_rows();
        assert_eq!(
            rows.iter().map(|row| row.responses).sum::<u64>(),
            10 * pushed,
            "no response lost in the merges"
        );
    }

    #[test]
    fn a_long_series_stays_within_its_limit_and_keeps_totals_and_worst_latency() {
        let mut series = Series::with_limit(8);
        for second in 1..=1000 {
            series.push(row(second, second, if second == 777 { 900.0 } else { 1.0 }));
            assert!(series.len() <= 8, "{} rows after {second} s", series.len());
        }
        let rows = series.into_rows();
        assert_eq!(rows.iter().map(|row| row.responses).sum::<u64>(), (1..=1000).sum::<u64>());
        assert_eq!(rows.iter().map(|row| row.errors).sum::<u64>(), 1000);
        assert_eq!(rows.iter().map(|row| row.interval_s).sum::<f64>(), 1000.0);
        assert_eq!(rows.last().unwrap().elapsed_s, 1000.0);
        assert_eq!(rows.last().unwrap().server.rss_bytes, Some(1000.0), "the latest scrape is kept");
        assert!(rows.iter().any(|row| row.p99_ms == Some(900.0)), "the stall survives merging");
        let merged = &rows[0];
        assert!((merged.achieved_rps - merged.responses as f64 / merged.interval_s).abs() < 1e-9);
    }
}
