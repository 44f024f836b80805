//! Task 10: leak or fragmentation — diagnose from the allocator's own numbers, then fix
//! and measure again.
//!
//! Without `--url`, the lab runs its two synthetic services ([`crate::services`]) on
//! jemalloc, as children, in several variants: as written, and with each fix (a code
//! change, a `MALLOC_CONF` change, or both). Every variant's jemalloc `allocated` /
//! `active` / `resident` series and RSS go through the same verdict function
//! ([`crate::verdict::diagnose`]); the table shows the verdict per variant and how far
//! the fix moved RSS, measured.
//!
//! With `--url`, it samples a running allockit-server's `/metrics` for `--duration`
//! (jemalloc and process gauges, pinned arena chunks, cache bytes) and gives the verdict
//! on that series.

use std::path::Path;
use std::time::{Duration, Instant};

use allockit_probe::{ServerSample, http, metrics};

use super::services::{CodeFix, Service, ServiceKind, ServiceReport};
use super::verdict::{self, Diagnosis, MemorySample};
use crate::LabError;
use crate::allocator::{self, AllocatorKind};
use crate::chart::{Chart, ChartKind, LinePanel, Series};
use crate::child::Launch;
use crate::report::{self, CsvFile, Outcome, Table};

/// A service, a fix, and the `MALLOC_CONF` it runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// The synthetic service: the leaking one or the fragmenting one.
    pub kind: ServiceKind,
    /// Short name of the variant.
    pub name: &'static str,
    /// The change to the service's code this variant applies (none for "as written").
    pub fix: CodeFix,
    /// The jemalloc configuration (empty: defaults).
    pub malloc_conf: &'static str,
}

/// Purge freed pages at once instead of after 10 s.
pub const DECAY_NOW: &str = "dirty_decay_ms:0,muzzy_decay_ms:0";

/// The variants `diagnose` runs: each service as written first, then its fixes.
pub const VARIANTS: [Variant; 6] = [
    Variant { kind: ServiceKind::Leak, name: "as written", fix: CodeFix::None, malloc_conf: "" },
    Variant {
        kind: ServiceKind::Leak,
        name: "sessions expire",
        fix: CodeFix::ExpireSessions,
        malloc_conf: "",
    },
    Variant { kind: ServiceKind::Fragmentation, name: "as written", fix: CodeFix::None, malloc_conf: "" },
    Variant {
        kind: ServiceKind::Fragmentation,
        name: "decay only",
        fix: CodeFix::None,
        malloc_conf: DECAY_NOW,
    },
    Variant {
        kind: ServiceKind::Fragmentation,
        name: "segregated",
        fix: CodeFix::SegregateLongLived,
        malloc_conf: "",
    },
    Variant {
        kind: ServiceKind::Fragmentation,
        name: "segregated + decay",
        fix: CodeFix::SegregateLongLived,
        malloc_conf: DECAY_NOW,
    },
];

/// Sizes of the synthetic runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagnoseOptions {
    /// Ticks per run (one sample each).
    pub ticks: usize,
    /// Tick length, milliseconds: the sampling period of the memory series.
    pub tick_ms: u64,
    /// Requests the service handles per tick (each allocates and mostly frees).
    pub requests_per_tick: usize,
    /// Objects in the fragmenting burst.
    pub backlog_objects: usize,
}

impl DiagnoseOptions {
    /// Task 10 in full: 80 ticks of 50 ms per variant.
    pub fn full() -> Self {
        DiagnoseOptions { ticks: 80, tick_ms: 50, requests_per_tick: 400, backlog_objects: 800_000 }
    }

    /// The test-suite version: 24 ticks of 25 ms.
    pub fn quick() -> Self {
        DiagnoseOptions { ticks: 24, tick_ms: 25, requests_per_tick: 400, backlog_objects: 300_000 }
    }
}

/// Where the series came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A synthetic service variant.
    Synthetic(Variant),
    /// A running server's `/metrics`.
    Url(String),
}

/// One diagnosed series.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosedRun {
    /// Where it came from.
    pub source: Source,
    /// The memory series, one sample per tick (synthetic) or per `--interval` (a URL).
    pub samples: Vec<MemorySample>,
    /// What the series says (leak, fragmentation, healthy) and the evidence for it.
    pub diagnosis: Diagnosis,
    /// jemalloc's `opt.dirty_decay_ms` in the child (synthetic runs).
    pub dirty_decay_ms: Option<i64>,
    /// The kernel's peak RSS of the child (synthetic runs).
    pub peak_rss_bytes: Option<u64>,
}

impl DiagnosedRun {
    /// RSS at the end of the run.
    pub fn final_rss(&self) -> f64 {
        self.samples.last().and_then(|s| s.rss).unwrap_or(0.0)
    }
}

/// Task 10's result.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnoseOutcome {
    /// Every run, in order.
    pub runs: Vec<DiagnosedRun>,
}

impl DiagnoseOutcome {
    /// The run of a synthetic variant.
    pub fn run_of(&self, kind: ServiceKind, name: &str) -> Option<&DiagnosedRun> {
        self.runs
            .iter()
            .find(|run| matches!(run.source, Source::Synthetic(v) if v.kind == kind && v.name == name))
    }
}

fn samples_from_service(report: &ServiceReport) -> Vec<MemorySample> {
    report
        .samples
        .iter()
        .map(|s| MemorySample {
            t_secs: s.t_secs,
            allocated: s.jemalloc.allocated as f64,
            active: s.jemalloc.active as f64,
            resident: s.jemalloc.resident as f64,
            rss: Some(s.rss as f64),
            ..MemorySample::default()
        })
        .collect()
}

/// Runs every variant of both synthetic services on jemalloc and diagnoses each.
pub fn run_synthetic(exe: &Path, options: &DiagnoseOptions) -> Result<DiagnoseOutcome, LabError> {
    let jemalloc = allocator::locate(AllocatorKind::Jemalloc);
    let mut runs = Vec::new();
    for variant in VARIANTS {
        let service = Service {
            kind: variant.kind,
            fix: variant.fix,
            ticks: options.ticks,
            tick_ms: options.tick_ms,
            requests_per_tick: options.requests_per_tick,
            backlog_objects: options.backlog_objects,
            survivor_one_in: 20,
            seed: 10,
        };
        let mut launch = Launch::new(exe, &jemalloc);
        if !variant.malloc_conf.is_empty() {
            launch.env.push(("MALLOC_CONF".to_owned(), variant.malloc_conf.to_owned()));
        }
        let (report, sampled) = launch.run(&service)?;
        let samples = samples_from_service(&report);
        runs.push(DiagnosedRun {
            source: Source::Synthetic(variant),
            diagnosis: verdict::diagnose(&samples)?,
            samples,
            dirty_decay_ms: Some(report.dirty_decay_ms),
            peak_rss_bytes: Some(sampled.peak_rss_bytes),
        });
    }
    Ok(DiagnoseOutcome { runs })
}

/// Reads one [`MemorySample`] (without its time) from a `/metrics` exposition.
pub fn sample_from_metrics(text: &str, url: &str) -> Result<MemorySample, LabError> {
    let server = ServerSample::from_text(text);
    let required = |value: Option<f64>, metric: &'static str| {
        value.ok_or(LabError::MissingMetric { url: url.to_owned(), metric })
    };
    Ok(MemorySample {
        t_secs: 0.0,
        allocated: required(server.jemalloc_allocated_bytes, metrics::JEMALLOC_ALLOCATED_BYTES)?,
        active: required(server.jemalloc_active_bytes, metrics::JEMALLOC_ACTIVE_BYTES)?,
        resident: required(server.jemalloc_resident_bytes, metrics::JEMALLOC_RESIDENT_BYTES)?,
        rss: server.rss_bytes,
        pinned_chunks: server.arena_chunks_pinned,
        pinned_bytes: server.pinned_bytes(),
        cache_bytes: server.cache_bytes,
    })
}

/// Samples `url` (a `/metrics` endpoint) every `interval` for `duration` and diagnoses it.
pub fn run_url(url: &str, duration: Duration, interval: Duration) -> Result<DiagnoseOutcome, LabError> {
    if interval.is_zero() {
        return Err(LabError::InvalidArgument { flag: "--interval", reason: "must be positive".into() });
    }
    let timeout = interval.max(Duration::from_secs(2));
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        let t_secs = started.elapsed().as_secs_f64();
        let response = http::get(url, timeout).map_err(|error| LabError::from_request("--url", error))?;
        let mut sample = sample_from_metrics(&String::from_utf8_lossy(&response.body), url)?;
        sample.t_secs = t_secs;
        samples.push(sample);
        let next = interval * samples.len() as u32;
        if next > duration {
            break;
        }
        std::thread::sleep(next.saturating_sub(started.elapsed()));
    }
    let diagnosis = verdict::diagnose(&samples)?;
    Ok(DiagnoseOutcome {
        runs: vec![DiagnosedRun {
            source: Source::Url(url.to_owned()),
            samples,
            diagnosis,
            dirty_decay_ms: None,
            peak_rss_bytes: None,
        }],
    })
}

const MIB: f64 = 1024.0 * 1024.0;

fn run_label(run: &DiagnosedRun) -> (String, String, String) {
    match &run.source {
        Source::Synthetic(v) => {
            let fix = match (v.fix, v.malloc_conf.is_empty()) {
                (CodeFix::None, true) => "none".to_owned(),
                (CodeFix::None, false) => format!("MALLOC_CONF={}", v.malloc_conf),
                (CodeFix::ExpireSessions, _) => "code: sessions expire".to_owned(),
                (CodeFix::SegregateLongLived, true) => "code: long-lived on own arena".to_owned(),
                (CodeFix::SegregateLongLived, false) => {
                    format!("code: long-lived on own arena; MALLOC_CONF={}", v.malloc_conf)
                }
            };
            (v.kind.name().to_owned(), v.name.to_owned(), fix)
        }
        Source::Url(url) => ("server".to_owned(), url.clone(), "-".to_owned()),
    }
}

impl Outcome for DiagnoseOutcome {
    fn slug(&self) -> &'static str {
        "diagnose"
    }

    fn title(&self) -> String {
        "Task 10: leak or fragmentation".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        self.runs
            .iter()
            .map(|run| {
                let (service, variant, _) = run_label(run);
                format!(
                    "{service}, {variant}: {} — {}",
                    run.diagnosis.verdict,
                    run.diagnosis.reasons.join("; ")
                )
            })
            .collect()
    }

    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            "Verdicts, and what each fix did to memory (values at the end of the run)",
            &[
                "service",
                "variant",
                "fix",
                "verdict",
                "allocated",
                "active",
                "resident",
                "RSS",
                "RSS vs as written",
            ],
        );
        for run in &self.runs {
            let (service, variant, fix) = run_label(run);
            let baseline = match run.source {
                Source::Synthetic(v) => self.runs.iter().find(
                    |r| matches!(r.source, Source::Synthetic(b) if b.kind == v.kind && b.fix == CodeFix::None && b.malloc_conf.is_empty()),
                ),
                Source::Url(_) => None,
            };
            let moved = match baseline {
                Some(base) if base != run => {
                    let delta = run.final_rss() - base.final_rss();
                    format!(
                        "{} ({:+.0}%)",
                        report::signed_bytes(delta),
                        100.0 * delta / base.final_rss().max(1.0)
                    )
                }
                _ => "-".to_owned(),
            };
            let e = &run.diagnosis.evidence;
            table.push(vec![
                service,
                variant,
                fix,
                run.diagnosis.verdict.to_string().to_uppercase(),
                report::bytes(e.live_end),
                report::bytes(e.active_end),
                report::bytes(e.resident_end),
                e.rss_end.map_or("-".to_owned(), report::bytes),
                moved,
            ]);
        }
        let mut evidence = Table::new(
            "Evidence",
            &["service", "variant", "live growth", "slope/s", "R²", "live peak", "stranded", "decay ms"],
        );
        for run in &self.runs {
            let (service, variant, _) = run_label(run);
            let e = &run.diagnosis.evidence;
            evidence.push(vec![
                service,
                variant,
                report::signed_bytes(e.unexplained_growth),
                report::signed_bytes(e.live_slope),
                format!("{:.2}", e.live_fit),
                report::bytes(e.live_peak),
                report::bytes(e.stranded_end),
                run.dirty_decay_ms.map_or("-".to_owned(), |d| d.to_string()),
            ]);
        }
        vec![table, evidence]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut series = Table::new(
            "",
            &[
                "service",
                "variant",
                "t_secs",
                "allocated_bytes",
                "active_bytes",
                "resident_bytes",
                "rss_bytes",
                "pinned_chunks",
                "cache_bytes",
            ],
        );
        let mut verdicts = Table::new(
            "",
            &[
                "service",
                "variant",
                "fix",
                "verdict",
                "live_start_bytes",
                "live_end_bytes",
                "live_peak_bytes",
                "unexplained_growth_bytes",
                "live_slope_bytes_per_sec",
                "live_fit_r2",
                "resident_end_bytes",
                "active_end_bytes",
                "stranded_end_bytes",
                "rss_end_bytes",
            ],
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.0}"));
        for run in &self.runs {
            let (service, variant, fix) = run_label(run);
            for s in &run.samples {
                series.push(vec![
                    service.clone(),
                    variant.clone(),
                    format!("{:.4}", s.t_secs),
                    format!("{:.0}", s.allocated),
                    format!("{:.0}", s.active),
                    format!("{:.0}", s.resident),
                    opt(s.rss),
                    opt(s.pinned_chunks),
                    opt(s.cache_bytes),
                ]);
            }
            let e = &run.diagnosis.evidence;
            verdicts.push(vec![
                service,
                variant,
                fix,
                run.diagnosis.verdict.to_string(),
                format!("{:.0}", e.live_start),
                format!("{:.0}", e.live_end),
                format!("{:.0}", e.live_peak),
                format!("{:.0}", e.unexplained_growth),
                format!("{:.0}", e.live_slope),
                format!("{:.4}", e.live_fit),
                format!("{:.0}", e.resident_end),
                format!("{:.0}", e.active_end),
                format!("{:.0}", e.stranded_end),
                opt(e.rss_end),
            ]);
        }
        vec![
            CsvFile { file_name: "diagnose.csv".into(), table: series },
            CsvFile { file_name: "diagnose-verdicts.csv".into(), table: verdicts },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        let panels = self
            .runs
            .iter()
            .map(|run| {
                let (service, variant, _) = run_label(run);
                let curve = |name: &str, value: &dyn Fn(&MemorySample) -> Option<f64>| Series {
                    name: name.to_owned(),
                    points: run
                        .samples
                        .iter()
                        .filter_map(|s| value(s).map(|v| (s.t_secs, v / MIB)))
                        .collect(),
                };
                let mut series = vec![
                    curve("allocated", &|s| Some(s.allocated)),
                    curve("active", &|s| Some(s.active)),
                    curve("resident", &|s| Some(s.resident)),
                    curve("RSS", &|s| s.rss),
                ];
                series.retain(|s| !s.points.is_empty());
                LinePanel {
                    title: format!("{service}, {variant}: {}", run.diagnosis.verdict),
                    x_label: "seconds".into(),
                    y_label: "MiB".into(),
                    series,
                }
            })
            .collect();
        vec![Chart {
            file_name: "diagnose.png".into(),
            caption: "jemalloc allocated / active / resident and RSS over time, per run".into(),
            kind: ChartKind::Lines(panels),
        }]
    }

    fn explanation(&self) -> String {
        if self.runs.iter().all(|r| matches!(r.source, Source::Url(_))) {
            return verdict_rules();
        }
        let mut text = verdict_rules();
        text.push_str(
            "\nThe fixes, measured. The leak is fixed in the code: when sessions expire, live bytes \
             and RSS stay flat, and no allocator setting could have done that. The fragmentation \
             is different: `dirty_decay_ms:0` alone barely moves RSS, because the pages are not \
             free — each holds a survivor, so they are *active*, and decay only returns free \
             pages. Segregating the long-lived objects onto their own arena makes the burst's \
             slabs empty out completely; with the default 10 s decay they then sit as dirty \
             pages (resident but not active: reusable, and returned after the decay time), and \
             with `dirty_decay_ms:0` they leave at once. `narenas` matters for multi-threaded \
             services (fewer arenas, fewer half-empty slabs per size class); these services are \
             single-threaded, so it is not varied here.\n",
        );
        text
    }
}

fn verdict_rules() -> String {
    format!(
        "How the verdict is reached (one function for the synthetic services and for `--url`): \
         **leak** when live bytes (jemalloc `allocated`, minus a bounded cache's growth) grow by \
         at least {} and {:.0}%, fit a straight line with R² ≥ {}, end within 10% of their peak, \
         and resident memory grows at least half as much; **fragmentation** when pages that hold \
         live objects but are mostly empty (`active − allocated`, plus request-arena chunks pinned \
         by escaping allocations on allockit-server) reach {} and exceed the live bytes; \
         **healthy** otherwise. Resident memory that is not active is free pages kept for reuse \
         and is reported, not blamed.\n",
        report::bytes(verdict::LEAK_MIN_GROWTH_BYTES),
        verdict::LEAK_MIN_GROWTH_SHARE * 100.0,
        verdict::LEAK_MIN_FIT,
        report::bytes(verdict::FRAGMENTATION_MIN_BYTES),
    )
}
