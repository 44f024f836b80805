//! What a run produces: the [`RunReport`] (serialised as the `--json` file), its summary
//! table, and the per-second [`SeriesRow`]s (the `--csv` file and the charts).
//!
//! Every count the report shows is a count of the measured window: requests whose intended
//! send time falls after the warm-up. Nothing is dropped silently: requests that were late,
//! skipped at `--max-in-flight`, or never sent before the end are counted beside the
//! percentiles, and count against `--max-error-rate` (see [`RunReport::error_rate`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::recorder::LatencySummary;
use crate::scrape::ServerSample;
use crate::workload::WorkloadSpec;

/// Which part of the run a series row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first request (the server's baseline).
    Start,
    /// Warm-up, excluded from the totals.
    Warmup,
    /// The measured window.
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
}

/// One second of the run (the last row may cover less).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesRow {
    /// Seconds since the start of the schedule.
    pub elapsed_s: f64,
    /// The phase at the end of the interval.
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

/// Request counts of the measured window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    /// Requests due before the end that no connection got to send.
    pub unsent: u64,
}

/// Errors of the measured window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    /// Every error.
    pub fn total(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.connect + self.io + self.timeout
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// A name for the run (the demo's mode; empty otherwise).
    pub label: String,
    /// Method sent.
    pub method: String,
    /// URL sent to.
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
    /// Measured duration actually run (shorter if interrupted), seconds.
    pub measured_s: f64,
    /// Whether the run was stopped early.
    pub interrupted: bool,
    /// Request counts.
    pub requests: RequestCounts,
    /// Error counts.
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
        let percent = |part: u64| {
            if self.requests.scheduled == 0 {
                0.0
            } else {
                100.0 * part as f64 / self.requests.scheduled as f64
            }
        };
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
            "  schedule   {} late ({:.2}%), {} skipped at --max-in-flight, {} never sent",
            self.requests.late,
            percent(self.requests.late),
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
        let scheduled = self.requests.scheduled.max(1) as f64;
        if self.requests.late as f64 / scheduled > 0.01 {
            notes.push(format!(
                "{:.1}% of sends were late: every connection was busy when they were due \
                 (raise --connections, or the server is saturated)",
                100.0 * self.requests.late as f64 / scheduled
            ));
        }
        if self.requests.unsent > 0 {
            notes.push(format!("{} requests were due but never sent before the end", self.requests.unsent));
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
        write_file(path, render_csv(&self.series).as_bytes())
    }
}

/// The series as CSV text, one header line then one line per row.
pub fn render_csv(series: &[SeriesRow]) -> String {
    let mut out = String::from(
        "elapsed_s,phase,responses,errors,achieved_rps,p50_ms,p99_ms,max_ms,service_p99_ms,backlog,awaiting_response",
    );
    for column in ServerSample::COLUMNS {
        out.push(',');
        out.push_str(column);
    }
    out.push('\n');
    let cell = |value: Option<f64>| value.map_or_else(String::new, |value| value.to_string());
    for row in series {
        let _ = write!(
            out,
            "{:.3},{},{},{},{:.3},{},{},{},{},{},{}",
            row.elapsed_s,
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
        for value in row.server.values() {
            out.push(',');
            out.push_str(&cell(value));
        }
        out.push('\n');
    }
    out
}

/// Writes any serialisable value as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    write_file(path, &text)
}

/// Writes `bytes` to `path`, naming the file in any error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file_error = |source| Error::File { path: path.to_owned(), source };
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
