//! `loadgen merge`: the reports of several instances (one per machine, started together with
//! `--start-at`) as the report of one run.
//!
//! The merge is exact where a single run is: every report carries its measured window's
//! histograms losslessly ([`RunReport::histograms`]), and the merged percentiles come from
//! their sum, never from averaging percentiles. Counts and errors are summed; scheduled
//! rates and connections are summed (each instance ran its own timetable).
//!
//! Rates are taken over the *span* of the instances' measured windows, from the earliest
//! start to the latest end. Every counted request was scheduled inside that span, so the
//! rate is never overstated; with `--start-at` the windows coincide (to a few milliseconds)
//! and the span is the common window, so the merged rate is the sum of the instances' rates.
//! Dividing by the overlap instead would count requests sent outside it against a shorter
//! time. How long all windows were open together is reported beside it
//! ([`MergeInfo::overlap_s`]), and the summary says so.
//!
//! The per-second series are lined up on the wall clock (each report's `start_unix_s`):
//! rows ending in the same second are combined, counts and rates summed, backlogs summed,
//! the server's figures taken from the first report that has them (every instance scrapes
//! the same server) and, per second, the *larger* of the instances' percentiles: a bound,
//! as in a long run's compacted series; the exact per-second percentiles of all instances
//! come from adding their `--hdr-log` intervals.
//!
//! Reports merge only when written by the same loadgen version with the same method, URL,
//! workload, warm-up, duration and timeout; anything else is an error naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::error::Error;
use crate::recorder::{LatencySummary, decode_histogram, empty_histogram, encode_histogram};
use crate::report::{
    EncodedHistograms, ErrorCounts, MergeInfo, Phase, RequestCounts, RunReport, SeriesRow, merge_rows,
};

/// A run report read from a file, with its histograms decoded.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where it was read from.
    pub path: PathBuf,
    /// The report.
    pub report: RunReport,
    /// Corrected latency, service time and send delay, µs.
    pub histograms: [Histogram<u64>; 3],
}

impl Input {
    /// Reads and checks one report: a loadgen run report with histograms matching its counts.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|cause| Error::File { path: path.to_owned(), cause })?;
        let bad = |message: String| Error::Merge { path: path.to_owned(), message };
        let report: RunReport = serde_json::from_slice(&text)
            .map_err(|error| bad(format!("not a loadgen run report (the --json of a run): {error}")))?;
        Self::new(path, report)
    }

    /// Checks `report` (read from `path`) and decodes its histograms.
    pub fn new(path: &Path, report: RunReport) -> Result<Self, Error> {
        let bad = |message: String| Error::Merge { path: path.to_owned(), message };
        let Some(encoded) = &report.histograms else {
            return Err(bad(
                "the report carries no histograms (written by a loadgen that predates `loadgen merge`)"
                    .into(),
            ));
        };
        let decode = |name: &str, text: &str| {
            decode_histogram(text).map_err(|message| bad(format!("histograms.{name}: {message}")))
        };
        let histograms = [
            decode("corrected", &encoded.corrected)?,
            decode("service", &encoded.service)?,
            decode("send_delay", &encoded.send_delay)?,
        ];
        for (name, summary, histogram) in [
            ("latency", &report.latency, &histograms[0]),
            ("service_time", &report.service_time, &histograms[1]),
            ("send_delay", &report.send_delay, &histograms[2]),
        ] {
            let counted = summary.map_or(0, |summary| summary.count);
            if counted != histogram.len() {
                return Err(bad(format!(
                    "{name}.count is {counted} but its histogram holds {} values (was the file edited?)",
                    histogram.len()
                )));
            }
        }
        Ok(Self { path: path.to_owned(), report, histograms })
    }

    fn window(&self) -> (f64, f64) {
        let start = self.report.start_unix_s + self.report.warmup_s;
        (start, start + self.report.measured_s)
    }
}

/// Reads every file and merges them ([`merge`]).
pub fn merge_files(paths: &[PathBuf]) -> Result<RunReport, Error> {
    let inputs = paths.iter().map(|path| Input::read(path)).collect::<Result<Vec<_>, _>>()?;
    merge(&inputs)
}

/// The report of one run made of `inputs` (at least one): see the module documentation.
pub fn merge(inputs: &[Input]) -> Result<RunReport, Error> {
    let Some(first) = inputs.first() else {
        return Err(Error::InvalidArgument { flag: "FILE", message: "no report to merge".into() });
    };
    for input in &inputs[1..] {
        check_compatible(first, input)?;
    }
    let mut totals = [empty_histogram()?, empty_histogram()?, empty_histogram()?];
    for input in inputs {
        for (total, histogram) in totals.iter_mut().zip(&input.histograms) {
            total.add(histogram).map_err(|error| Error::Merge {
                path: input.path.clone(),
                message: format!("its histograms do not fit loadgen's range: {error:?}"),
            })?;
        }
    }
    let reports: Vec<&RunReport> = inputs.iter().map(|input| &input.report).collect();
    let sum = |field: fn(&RunReport) -> u64| reports.iter().map(|report| field(report)).sum::<u64>();
    let requests = RequestCounts {
        scheduled: sum(|report| report.requests.scheduled),
        attempted: sum(|report| report.requests.attempted),
        responses: sum(|report| report.requests.responses),
        ok: sum(|report| report.requests.ok),
        late: sum(|report| report.requests.late),
        skipped: sum(|report| report.requests.skipped),
        unsent: sum(|report| report.requests.unsent),
    };
    let mut by_status = BTreeMap::new();
    for report in &reports {
        for (status, count) in &report.errors.by_status {
            *by_status.entry(*status).or_insert(0) += count;
        }
    }
    let errors = ErrorCounts {
        by_status,
        connect: sum(|report| report.errors.connect),
        io: sum(|report| report.errors.io),
        timeout: sum(|report| report.errors.timeout),
    };
    let windows: Vec<(f64, f64)> = inputs.iter().map(Input::window).collect();
    let earliest = windows.iter().map(|window| window.0).fold(f64::INFINITY, f64::min);
    let latest = windows.iter().map(|window| window.1).fold(f64::NEG_INFINITY, f64::max);
    let last_start = windows.iter().map(|window| window.0).fold(f64::NEG_INFINITY, f64::max);
    let first_end = windows.iter().map(|window| window.1).fold(f64::INFINITY, f64::min);
    let measured_s = (latest - earliest).max(0.0);
    let start_unix_s = reports.iter().map(|report| report.start_unix_s).fold(f64::INFINITY, f64::min);
    let same_label = reports.iter().all(|report| report.label == first.report.label);
    Ok(RunReport {
        loadgen_version: first.report.loadgen_version.clone(),
        label: if same_label { first.report.label.clone() } else { String::new() },
        method: first.report.method.clone(),
        url: first.report.url.clone(),
        workload: first.report.workload.clone(),
        target_rps: reports.iter().map(|report| report.target_rps).sum(),
        connections: reports.iter().map(|report| report.connections).sum(),
        max_in_flight: reports.iter().map(|report| report.max_in_flight).sum(),
        timeout_s: first.report.timeout_s,
        warmup_s: first.report.warmup_s,
        duration_s: first.report.duration_s,
        measured_s,
        start_unix_s,
        interrupted: reports.iter().any(|report| report.interrupted),
        achieved_rps: if measured_s > 0.0 { requests.responses as f64 / measured_s } else { 0.0 },
        requests,
        errors,
        latency: LatencySummary::of(&totals[0]),
        service_time: LatencySummary::of(&totals[1]),
        send_delay: LatencySummary::of(&totals[2]),
        metrics_url: reports.iter().find_map(|report| report.metrics_url.clone()),
        scrape_error: reports.iter().find_map(|report| report.scrape_error.clone()),
        histograms: Some(EncodedHistograms {
            corrected: encode_histogram(&totals[0])?,
            service: encode_histogram(&totals[1])?,
            send_delay: encode_histogram(&totals[2])?,
        }),
        merged: Some(MergeInfo {
            files: inputs.iter().map(|input| input.path.display().to_string()).collect(),
            overlap_s: (first_end - last_start).max(0.0),
        }),
        series: merge_series(&reports, start_unix_s),
    })
}

/// Refuses to merge `other` with `first` unless they ran the same load the same way.
fn check_compatible(first: &Input, other: &Input) -> Result<(), Error> {
    let (a, b) = (&first.report, &other.report);
    let settings: [(&str, String, String); 7] = [
        ("loadgen version", a.loadgen_version.clone(), b.loadgen_version.clone()),
        ("method", a.method.clone(), b.method.clone()),
        ("URL", a.url.clone(), b.url.clone()),
        ("workload", format!("{:?}", a.workload), format!("{:?}", b.workload)),
        ("warm-up", format!("{} s", a.warmup_s), format!("{} s", b.warmup_s)),
        ("duration", format!("{} s", a.duration_s), format!("{} s", b.duration_s)),
        ("timeout", format!("{} s", a.timeout_s), format!("{} s", b.timeout_s)),
    ];
    for (name, mine, theirs) in settings {
        if mine != theirs {
            return Err(Error::Merge {
                path: other.path.clone(),
                message: format!(
                    "its {name} is {theirs}, but {} has {mine}; only runs of the same settings merge",
                    first.path.display()
                ),
            });
        }
    }
    Ok(())
}

/// The reports' series on one wall-clock grid (see the module documentation).
fn merge_series(reports: &[&RunReport], origin: f64) -> Vec<SeriesRow> {
    // The grid: one second, or the coarsest row of any report (a compacted long run).
    let width = reports
        .iter()
        .flat_map(|report| {
            let rows = report.series.iter().filter(|row| row.phase != Phase::Start);
            // A run's last row covers what is left of its last second.
            rows.clone().take(rows.count().saturating_sub(1))
        })
        .map(|row| row.interval_s.round())
        .fold(1.0, f64::max);
    let mut start_row = None;
    // Grid slot -> (combined row, its latest wall-clock end).
    let mut slots: BTreeMap<i64, (SeriesRow, f64)> = BTreeMap::new();
    for report in reports {
        let mut own: BTreeMap<i64, (SeriesRow, f64)> = BTreeMap::new();
        for row in &report.series {
            if row.phase == Phase::Start {
                if start_row.as_ref().is_none_or(|start: &SeriesRow| start.server.rss_bytes.is_none()) {
                    start_row = Some(row.clone());
                }
                continue;
            }
            let end = report.start_unix_s + row.elapsed_s;
            let slot = ((end - origin) / width).round() as i64;
            own.entry(slot)
                .and_modify(|(earlier, latest)| {
                    *earlier = merge_rows(earlier, row);
                    *latest = latest.max(end);
                })
                .or_insert_with(|| (row.clone(), end));
        }
        for (slot, (row, end)) in own {
            slots
                .entry(slot)
                .and_modify(|(combined, latest)| {
                    *combined = concurrent_rows(combined, &row);
                    *latest = latest.max(end);
                })
                .or_insert((row, end));
        }
    }
    start_row
        .into_iter()
        .chain(slots.into_values().map(|(mut row, end)| {
            row.elapsed_s = end - origin;
            row
        }))
        .collect()
}

/// Two instances' rows of the same second as one.
fn concurrent_rows(a: &SeriesRow, b: &SeriesRow) -> SeriesRow {
    let larger = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    SeriesRow {
        elapsed_s: a.elapsed_s.max(b.elapsed_s),
        interval_s: a.interval_s.max(b.interval_s),
        phase: a.phase,
        responses: a.responses + b.responses,
        errors: a.errors + b.errors,
        achieved_rps: a.achieved_rps + b.achieved_rps,
        p50_ms: larger(a.p50_ms, b.p50_ms),
        p99_ms: larger(a.p99_ms, b.p99_ms),
        max_ms: larger(a.max_ms, b.max_ms),
        service_p99_ms: larger(a.service_p99_ms, b.service_p99_ms),
        backlog: a.backlog + b.backlog,
        awaiting_response: a.awaiting_response + b.awaiting_response,
        server: if a.server.rss_bytes.is_some() { a.server } else { b.server },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{Outcome, Sample, Stats};
    use crate::scrape::ServerSample;

    fn row(elapsed_s: f64, responses: u64, p99_ms: f64) -> SeriesRow {
        SeriesRow {
            elapsed_s,
            interval_s: 1.0,
            phase: Phase::Measure,
            responses,
            errors: 0,
            achieved_rps: responses as f64,
            p50_ms: Some(p99_ms / 2.0),
            p99_ms: Some(p99_ms),
            max_ms: Some(p99_ms),
            service_p99_ms: Some(p99_ms),
            backlog: 1,
            awaiting_response: 0,
            server: ServerSample::default(),
        }
    }

    /// A run of `rps` for three seconds starting at `start_unix_s`, every latency `millis`.
    fn input(name: &str, start_unix_s: f64, rps: u64, millis: u64) -> Input {
        let mut stats = Stats::new().unwrap();
        for _ in 0..3 * rps {
            let at = std::time::Instant::now();
            let done = at + std::time::Duration::from_millis(millis);
            stats.record(&Sample::timed(true, Outcome::Response(200), at, at, done));
        }
        let summary = |histogram| LatencySummary::of(histogram);
        let report = RunReport {
            loadgen_version: "0.1.0".into(),
            label: String::new(),
            method: "GET".into(),
            url: "http://h/".into(),
            workload: None,
            target_rps: rps as f64,
            connections: 2,
            max_in_flight: None,
            timeout_s: 10.0,
            warmup_s: 0.0,
            duration_s: 3.0,
            measured_s: 3.0,
            start_unix_s,
            interrupted: false,
            requests: RequestCounts {
                scheduled: 3 * rps,
                attempted: 3 * rps,
                responses: 3 * rps,
                ok: 3 * rps,
                ..RequestCounts::default()
            },
            errors: ErrorCounts::default(),
            achieved_rps: rps as f64,
            latency: summary(&stats.corrected),
            service_time: summary(&stats.service),
            send_delay: summary(&stats.send_delay),
            metrics_url: None,
            scrape_error: None,
            histograms: Some(EncodedHistograms {
                corrected: encode_histogram(&stats.corrected).unwrap(),
                service: encode_histogram(&stats.service).unwrap(),
                send_delay: encode_histogram(&stats.send_delay).unwrap(),
            }),
            merged: None,
            series: vec![
                SeriesRow::start(ServerSample::default()),
                row(1.0, rps, millis as f64),
                row(2.0, rps, millis as f64),
                row(3.0, rps, millis as f64),
            ],
        };
        Input::new(Path::new(name), report).unwrap()
    }

    #[test]
    fn windows_that_do_not_coincide_are_spanned_and_their_overlap_reported() {
        let merged = merge(&[input("a", 1000.0, 10, 5), input("b", 1001.0, 30, 50)]).unwrap();
        assert_eq!(merged.requests.responses, 120);
        assert_eq!((merged.measured_s, merged.start_unix_s), (4.0, 1000.0), "from 1000 s to 1004 s");
        assert_eq!(merged.achieved_rps, 30.0, "120 responses over the 4 s span");
        assert_eq!(merged.merged.as_ref().unwrap().overlap_s, 2.0);
        assert_eq!(merged.target_rps, 40.0);
        let latency = merged.latency.unwrap();
        // 30 of 120 at 5 ms, 90 at 50 ms: the median is 50 ms, which averaging p50s (27.5)
        // would never give.
        assert!((latency.p50_ms - 50.0).abs() < 0.05 && (latency.p90_ms - 50.0).abs() < 0.05);
        assert_eq!(latency.count, 120);
        // The series on one wall-clock grid: seconds 1 to 4 after 1000 s.
        let rows: Vec<(f64, u64, Option<f64>)> =
            merged.series[1..].iter().map(|row| (row.elapsed_s, row.responses, row.p99_ms)).collect();
        assert_eq!(
            rows,
            [(1.0, 10, Some(5.0)), (2.0, 40, Some(50.0)), (3.0, 40, Some(50.0)), (4.0, 30, Some(50.0))]
        );
        assert_eq!(merged.series[0].phase, Phase::Start);
    }

    #[test]
    fn runs_of_other_settings_or_versions_are_refused_naming_the_file() {
        let mut newer = input("newer.json", 1000.0, 10, 5);
        newer.report.loadgen_version = "9.0.0".into();
        let error = merge(&[input("a.json", 1000.0, 10, 5), newer]).unwrap_err().to_string();
        assert!(
            error.starts_with("newer.json: its loadgen version is 9.0.0, but a.json has 0.1.0"),
            "{error}"
        );
        let mut posted = input("post.json", 1000.0, 10, 5);
        posted.report.method = "POST".into();
        let error = merge(&[input("a.json", 1000.0, 10, 5), posted]).unwrap_err().to_string();
        assert!(error.starts_with("post.json: its method is POST"), "{error}");
    }
}
