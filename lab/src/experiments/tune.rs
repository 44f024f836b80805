//! Self-assessment: tuning real allocators and watching the curves move.
//!
//! A child ([`TuneWorkload`]) runs several threads through cycles of growth and release:
//! each thread allocates request-like blocks (mostly small, some buffers, a few above
//! glibc's mmap threshold), touching every byte, until its live set reaches a target, then
//! frees most of them in random order; after the last cycle it frees everything and idles
//! for a decay wait. Every `malloc` and `free` is timed into an HDR histogram; the child
//! reports the p99 and its throughput as JSON, the parent samples its RSS from
//! `/proc/<pid>/statm`.
//!
//! Settings: glibc with `MALLOC_ARENA_MAX` = 1, 2, 8 and unset; jemalloc (`LD_PRELOAD`)
//! with `MALLOC_CONF` unset, `narenas:1`, `narenas:4`, `dirty_decay_ms`/`muzzy_decay_ms`
//! at 0, 1000 and 10000, `background_thread:true`, and `background_thread:true` with 1 s
//! decay. The verdict per knob is computed from the figures against the knob's baseline
//! (the allocator's defaults).

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind, Availability};
use crate::chart::{Bar, Chart, ChartKind, LinePanel, Series};
use crate::child::{ChildTask, Launch};
use crate::process::{self, RssSample};
use crate::report::{self, CsvFile, Outcome, Table};

/// The multi-threaded workload a child runs under each setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuneWorkload {
    /// Worker threads.
    pub threads: usize,
    /// Growth-and-release cycles per thread.
    pub cycles: usize,
    /// Live bytes each thread grows to in every cycle.
    pub live_bytes_per_thread: usize,
    /// Percent of the live blocks freed in each release phase.
    pub release_percent: u32,
    /// Milliseconds to idle after freeing everything, before the last RSS reading.
    pub decay_wait_ms: u64,
    /// Seed of the sizes and free order.
    pub seed: u64,
}

impl TuneWorkload {
    /// The documented run: 4 threads, 6 cycles to 48 MiB each, a 3 s wait.
    pub fn full() -> Self {
        TuneWorkload {
            threads: 4,
            cycles: 6,
            live_bytes_per_thread: 48 << 20,
            release_percent: 80,
            decay_wait_ms: 3000,
            seed: 16,
        }
    }

    /// The test-suite version.
    pub fn quick() -> Self {
        TuneWorkload {
            threads: 4,
            cycles: 2,
            live_bytes_per_thread: 4 << 20,
            release_percent: 80,
            decay_wait_ms: 300,
            seed: 16,
        }
    }
}

/// What the child reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TuneReport {
    /// `malloc` and `free` calls timed.
    pub ops: u64,
    /// Seconds the threads ran.
    pub elapsed_secs: f64,
    /// Median ns per operation.
    pub p50_ns: u64,
    /// 99th percentile ns per operation.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// The slowest operation.
    pub max_ns: u64,
    /// RSS right after everything was freed.
    pub rss_after_free: u64,
    /// RSS after the decay wait.
    pub rss_end: u64,
}

impl TuneReport {
    /// Operations per second over all threads.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed_secs.max(f64::MIN_POSITIVE)
    }
}

fn block_size(rng: &mut StdRng) -> usize {
    match rng.random_range(0..100) {
        0..60 => rng.random_range(16..=256),
        60..90 => rng.random_range(257..=4096),
        90..99 => rng.random_range(4097..=32_768),
        _ => rng.random_range(32_769..=262_144),
    }
}

fn new_histogram() -> Result<Histogram<u64>, LabError> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| LabError::InvalidArgument { flag: "histogram", reason: e.to_string() })
}

fn timed_free(address: usize, histogram: &mut Histogram<u64>) {
    let started = Instant::now();
    // SAFETY: every address in a live set came from `malloc` in `grow` and is freed once.
    unsafe { libc::free(address as *mut libc::c_void) };
    histogram.saturating_record(started.elapsed().as_nanos() as u64);
}

fn worker(workload: &TuneWorkload, id: u64) -> Result<Histogram<u64>, LabError> {
    let mut rng = StdRng::seed_from_u64(workload.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut histogram = new_histogram()?;
    let mut live: Vec<(usize, usize)> = Vec::new();
    let mut live_bytes = 0;
    for _ in 0..workload.cycles {
        while live_bytes < workload.live_bytes_per_thread {
            let size = block_size(&mut rng);
            let started = Instant::now();
            // SAFETY: malloc has no preconditions; NULL is checked below.
            let pointer = unsafe { libc::malloc(size) };
            histogram.saturating_record(started.elapsed().as_nanos() as u64);
            if pointer.is_null() {
                return Err(LabError::InvalidArgument {
                    flag: "size",
                    reason: format!("malloc({size}) failed"),
                });
            }
            // SAFETY: the block holds `size` bytes; touching them all makes them resident.
            unsafe { std::ptr::write_bytes(pointer.cast::<u8>(), id as u8 | 1, size) };
            live.push((pointer as usize, size));
            live_bytes += size;
        }
        let keep = live.len() * (100 - workload.release_percent.min(100) as usize) / 100;
        while live.len() > keep {
            let (address, size) = live.swap_remove(rng.random_range(0..live.len()));
            timed_free(address, &mut histogram);
            live_bytes -= size;
        }
    }
    for (address, _) in live.drain(..) {
        timed_free(address, &mut histogram);
    }
    Ok(histogram)
}

impl ChildTask for TuneWorkload {
    const NAME: &'static str = "tune-workload";
    type Output = TuneReport;

    fn run(self) -> Result<TuneReport, LabError> {
        if self.threads == 0 {
            return Err(LabError::InvalidArgument { flag: "threads", reason: "must be at least 1".into() });
        }
        let started = Instant::now();
        let workload = &self;
        let histograms = std::thread::scope(|scope| {
            let handles: Vec<_> =
                (0..self.threads as u64).map(|id| scope.spawn(move || worker(workload, id))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(LabError::InvalidArgument { flag: "thread", reason: "a worker panicked".into() })
                    })
                })
                .collect::<Result<Vec<_>, LabError>>()
        })?;
        let elapsed_secs = started.elapsed().as_secs_f64();
        let mut all = new_histogram()?;
        for histogram in &histograms {
            all.add(histogram)
                .map_err(|e| LabError::InvalidArgument { flag: "histogram", reason: e.to_string() })?;
        }
        drop(histograms);
        let rss_after_free = process::own_resident_bytes().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(self.decay_wait_ms));
        let rss_end = process::own_resident_bytes().unwrap_or(0);
        Ok(TuneReport {
            ops: all.len(),
            elapsed_secs,
            p50_ns: all.value_at_quantile(0.5),
            p99_ns: all.value_at_quantile(0.99),
            p999_ns: all.value_at_quantile(0.999),
            max_ns: all.max(),
            rss_after_free,
            rss_end,
        })
    }
}

/// Which knob a setting turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    /// An allocator's defaults: the baseline of its knobs.
    Default,
    /// glibc's `MALLOC_ARENA_MAX`.
    ArenaMax,
    /// jemalloc's `narenas`.
    Narenas,
    /// jemalloc's `dirty_decay_ms` and `muzzy_decay_ms`.
    Decay,
    /// jemalloc's `background_thread`.
    BackgroundThread,
}

/// One setting: an allocator and the environment that tunes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `MALLOC_ARENA_MAX=1`, `jemalloc narenas:1`, ...
    pub label: String,
    /// The allocator.
    pub allocator: AllocatorKind,
    /// The knob turned.
    pub knob: Knob,
    /// The environment variable and value, if any.
    pub env: Option<(String, String)>,
}

impl Setting {
    fn new(label: &str, allocator: AllocatorKind, knob: Knob, env: Option<(&str, &str)>) -> Setting {
        Setting {
            label: label.to_owned(),
            allocator,
            knob,
            env: env.map(|(k, v)| (k.to_owned(), v.to_owned())),
        }
    }
}

/// Every setting the experiment runs, glibc's first.
pub fn settings() -> Vec<Setting> {
    use AllocatorKind::{Glibc, Jemalloc};
    let arena = |n: &str| {
        Setting::new(
            &format!("glibc MALLOC_ARENA_MAX={n}"),
            Glibc,
            Knob::ArenaMax,
            Some(("MALLOC_ARENA_MAX", n)),
        )
    };
    let conf = |value: &str, knob: Knob| {
        Setting::new(&format!("jemalloc {value}"), Jemalloc, knob, Some(("MALLOC_CONF", value)))
    };
    vec![
        Setting::new("glibc default", Glibc, Knob::Default, None),
        arena("1"),
        arena("2"),
        arena("8"),
        Setting::new("jemalloc default", Jemalloc, Knob::Default, None),
        conf("narenas:1", Knob::Narenas),
        conf("narenas:4", Knob::Narenas),
        conf("dirty_decay_ms:0,muzzy_decay_ms:0", Knob::Decay),
        conf("dirty_decay_ms:1000,muzzy_decay_ms:1000", Knob::Decay),
        conf("dirty_decay_ms:10000,muzzy_decay_ms:10000", Knob::Decay),
        conf("background_thread:true", Knob::BackgroundThread),
        conf("background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000", Knob::BackgroundThread),
    ]
}

/// One setting's run.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneRun {
    /// The setting.
    pub setting: Setting,
    /// The child's report.
    pub report: TuneReport,
    /// RSS over time.
    pub rss: Vec<RssSample>,
    /// The kernel's peak RSS.
    pub peak_rss_bytes: u64,
}

impl TuneRun {
    /// Mean RSS over the samples.
    pub fn mean_rss(&self) -> f64 {
        if self.rss.is_empty() {
            return 0.0;
        }
        self.rss.iter().map(|s| s.rss_bytes as f64).sum::<f64>() / self.rss.len() as f64
    }
}

/// The experiment's result.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneOutcome {
    /// What each child ran.
    pub workload: TuneWorkload,
    /// One run per setting whose allocator is installed.
    pub runs: Vec<TuneRun>,
    /// Allocators not installed, with their install command.
    pub missing: Vec<(AllocatorKind, String)>,
}

/// Runs the workload under every setting.
pub fn run(exe: &Path, workload: &TuneWorkload) -> Result<TuneOutcome, LabError> {
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    let located = allocator::locate_each(&[AllocatorKind::Glibc, AllocatorKind::Jemalloc]);
    for setting in settings() {
        let Some(found) = located.iter().find(|l| l.kind == setting.allocator) else { continue };
        if let Availability::Missing { install } = &found.availability {
            if !missing.iter().any(|(kind, _)| *kind == found.kind) {
                missing.push((found.kind, install.clone()));
            }
            continue;
        }
        let mut launch = Launch::new(exe, found);
        launch.env = setting.env.iter().cloned().collect();
        launch.interval = Duration::from_millis(if workload.decay_wait_ms >= 1000 { 25 } else { 10 });
        let (report, sampled) = launch.run(workload)?;
        runs.push(TuneRun { setting, report, rss: sampled.rss, peak_rss_bytes: sampled.peak_rss_bytes });
    }
    Ok(TuneOutcome { workload: workload.clone(), runs, missing })
}

/// Changes smaller than this fraction are called noise in the verdicts.
const NOISE: f64 = 0.05;

fn percent_change(value: f64, base: f64) -> f64 {
    (value - base) / base.max(f64::MIN_POSITIVE)
}

/// "cut peak RSS by 12% (80.0 MiB against 91.0 MiB)" or "left peak RSS unchanged (...)".
fn rss_phrase(what: &str, value: f64, base: f64) -> String {
    let change = percent_change(value, base);
    let figures = format!("{} against {}", report::bytes(value), report::bytes(base));
    if change <= -NOISE {
        format!("cut {what} by {:.0}% ({figures})", -change * 100.0)
    } else if change >= NOISE {
        format!("raised {what} by {:.0}% ({figures})", change * 100.0)
    } else {
        format!("left {what} within {:.0}% ({figures})", NOISE * 100.0)
    }
}

fn ratio_phrase(what: &str, value: f64, base: f64, unit: &str) -> String {
    let ratio = value / base.max(f64::MIN_POSITIVE);
    let figures = format!("{value:.0} {unit} against {base:.0} {unit}");
    if ratio >= 1.0 + NOISE {
        format!("raised {what} {} ({figures})", report::ratio(ratio))
    } else if ratio <= 1.0 - NOISE {
        format!("lowered {what} to {} ({figures})", report::ratio(ratio))
    } else {
        format!("left {what} within {:.0}% ({figures})", NOISE * 100.0)
    }
}

impl TuneOutcome {
    fn baseline(&self, allocator: AllocatorKind) -> Option<&TuneRun> {
        self.runs.iter().find(|r| r.setting.allocator == allocator && r.setting.knob == Knob::Default)
    }

    fn run_of(&self, label: &str) -> Option<&TuneRun> {
        self.runs.iter().find(|r| r.setting.label == label)
    }

    fn verdict(&self, run: &TuneRun, base: &TuneRun) -> String {
        let peak = rss_phrase("peak RSS", run.peak_rss_bytes as f64, base.peak_rss_bytes as f64);
        let end = rss_phrase("RSS at the end", run.report.rss_end as f64, base.report.rss_end as f64);
        let p99 = ratio_phrase("p99", run.report.p99_ns as f64, base.report.p99_ns as f64, "ns");
        let throughput =
            report::ratio(run.report.ops_per_sec() / base.report.ops_per_sec().max(f64::MIN_POSITIVE));
        let peak_change = percent_change(run.peak_rss_bytes as f64, base.peak_rss_bytes as f64);
        let end_change = percent_change(run.report.rss_end as f64, base.report.rss_end as f64);
        let p99_ratio = run.report.p99_ns as f64 / (base.report.p99_ns as f64).max(1.0);
        let threads = self.workload.threads;
        let why = match run.setting.knob {
            Knob::ArenaMax | Knob::Narenas => {
                let arenas: usize = run
                    .setting
                    .env
                    .as_ref()
                    .and_then(|(_, v)| v.trim_start_matches("narenas:").parse().ok())
                    .unwrap_or(0);
                if arenas > threads {
                    format!(
                        "{arenas} arenas for {threads} worker threads and the main thread: no thread needs to share, as with the default (8 × the CPUs for glibc, 4 × for jemalloc), so the knob does not bind and these differences are this run's noise"
                    )
                } else {
                    let mut reasons = Vec::new();
                    if peak_change <= -NOISE {
                        reasons.push(
                            "fewer arenas leave less free memory stranded in arenas other threads cannot use",
                        );
                    } else if peak_change >= NOISE {
                        reasons.push("threads sharing an arena interleave their blocks, so the releases leave holes that keep pages resident");
                    }
                    if end_change >= NOISE {
                        reasons
                            .push("more of the memory freed at the end stayed resident in the shared arenas");
                    } else if end_change <= -NOISE {
                        reasons.push("less of the memory freed at the end stayed resident in the arenas");
                    }
                    if p99_ratio >= 1.0 + NOISE {
                        reasons.push("threads sharing an arena wait for its lock");
                    } else if p99_ratio <= 1.0 - NOISE {
                        reasons.push("the per-thread cache absorbs most calls, so sharing an arena did not lengthen the tail here");
                    }
                    let sharing = format!(
                        "{arenas} arena(s) for {threads} worker threads and the main thread: some share"
                    );
                    if reasons.is_empty() {
                        format!("{sharing}, and no figure moved beyond noise")
                    } else {
                        format!("{sharing}; {}", reasons.join("; "))
                    }
                }
            }
            Knob::Decay => {
                if end_change <= -NOISE {
                    "freed pages went back (madvise) within the decay time instead of staying dirty, so RSS follows the live set".to_owned()
                } else if end_change >= NOISE {
                    "a longer decay keeps freed pages dirty for reuse, so RSS stays at the high-water mark"
                        .to_owned()
                } else {
                    format!(
                        "without a background thread jemalloc purges only when the program calls it, so an idle wait of {} ms returned no more than the default did",
                        self.workload.decay_wait_ms
                    )
                }
            }
            Knob::BackgroundThread => {
                if end_change <= -NOISE {
                    format!(
                        "the background thread purged dirty pages while the program was idle for {} ms; without it nothing runs jemalloc's decay when no thread calls malloc or free",
                        self.workload.decay_wait_ms
                    )
                } else {
                    format!(
                        "with a background thread the application's own calls leave purging to it, and it follows the decay curve: RSS right after the frees was {} against {} without it, and {} ms of idling was too short for the curve to return much",
                        report::bytes(run.report.rss_after_free as f64),
                        report::bytes(base.report.rss_after_free as f64),
                        self.workload.decay_wait_ms
                    )
                }
            }
            Knob::Default => String::new(),
        };
        format!(
            "{}: {peak}, {end}, {p99}, throughput {throughput} of {}'s — {why}.",
            run.setting.label, base.setting.label
        )
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Outcome for TuneOutcome {
    fn slug(&self) -> &'static str {
        "tune"
    }

    fn title(&self) -> String {
        "Self-assessment: tuning glibc and jemalloc".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let w = &self.workload;
        let mut findings = vec![format!(
            "Workload: {} threads × {} cycles of growth to {} live each and release of {}%, then everything freed and {} ms idle.",
            w.threads,
            w.cycles,
            report::bytes(w.live_bytes_per_thread as f64),
            w.release_percent,
            w.decay_wait_ms
        )];
        for run in &self.runs {
            if run.setting.knob == Knob::Default {
                continue;
            }
            if let Some(base) = self.baseline(run.setting.allocator) {
                findings.push(self.verdict(run, base));
            }
        }
        if let (Some(zero), Some(long)) = (
            self.run_of("jemalloc dirty_decay_ms:0,muzzy_decay_ms:0"),
            self.run_of("jemalloc dirty_decay_ms:10000,muzzy_decay_ms:10000"),
        ) {
            findings.push(format!(
                "Decay 0 against 10000 ms: mean RSS {} against {}, RSS at the end {} against {}, p99 {} ns against {} ns.",
                report::bytes(zero.mean_rss()),
                report::bytes(long.mean_rss()),
                report::bytes(zero.report.rss_end as f64),
                report::bytes(long.report.rss_end as f64),
                zero.report.p99_ns,
                long.report.p99_ns
            ));
        }
        for (kind, install) in &self.missing {
            findings.push(format!(
                "{kind} is not installed and its settings were skipped; install it with `{install}`"
            ));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            "Per setting: memory, tail latency and throughput of the same workload",
            &[
                "setting",
                "peak RSS",
                "mean RSS",
                "RSS after free",
                "RSS at end",
                "p50 ns",
                "p99 ns",
                "p99.9 ns",
                "Mops/s",
            ],
        );
        for run in &self.runs {
            table.push(vec![
                run.setting.label.clone(),
                report::bytes(run.peak_rss_bytes as f64),
                report::bytes(run.mean_rss()),
                report::bytes(run.report.rss_after_free as f64),
                report::bytes(run.report.rss_end as f64),
                run.report.p50_ns.to_string(),
                run.report.p99_ns.to_string(),
                run.report.p999_ns.to_string(),
                format!("{:.2}", run.report.ops_per_sec() / 1e6),
            ]);
        }
        vec![table]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut summary = Table::new(
            "",
            &[
                "setting",
                "allocator",
                "env",
                "peak_rss_bytes",
                "mean_rss_bytes",
                "rss_after_free_bytes",
                "rss_end_bytes",
                "p50_ns",
                "p99_ns",
                "p999_ns",
                "max_ns",
                "ops",
                "elapsed_secs",
            ],
        );
        let mut series = Table::new("", &["setting", "t_secs", "rss_bytes"]);
        for run in &self.runs {
            summary.push(vec![
                run.setting.label.clone(),
                run.setting.allocator.to_string(),
                run.setting.env.as_ref().map_or(String::new(), |(k, v)| format!("{k}={v}")),
                run.peak_rss_bytes.to_string(),
                format!("{:.0}", run.mean_rss()),
                run.report.rss_after_free.to_string(),
                run.report.rss_end.to_string(),
                run.report.p50_ns.to_string(),
                run.report.p99_ns.to_string(),
                run.report.p999_ns.to_string(),
                run.report.max_ns.to_string(),
                run.report.ops.to_string(),
                format!("{:.4}", run.report.elapsed_secs),
            ]);
            for sample in &run.rss {
                series.push(vec![
                    run.setting.label.clone(),
                    format!("{:.4}", sample.t_secs),
                    sample.rss_bytes.to_string(),
                ]);
            }
        }
        vec![
            CsvFile { file_name: "tune.csv".into(), table: summary },
            CsvFile { file_name: "tune-rss.csv".into(), table: series },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        let panel = |title: &str, keep: &dyn Fn(&TuneRun) -> bool| LinePanel {
            title: title.to_owned(),
            x_label: "seconds since start".into(),
            y_label: "RSS (MiB)".into(),
            series: self
                .runs
                .iter()
                .filter(|r| keep(r))
                .map(|run| Series {
                    name: run.setting.label.clone(),
                    points: run.rss.iter().map(|s| (s.t_secs, s.rss_bytes as f64 / MIB)).collect(),
                })
                .collect(),
        };
        let mut panels =
            vec![panel("glibc: MALLOC_ARENA_MAX", &|r| r.setting.allocator == AllocatorKind::Glibc)];
        if self.runs.iter().any(|r| r.setting.allocator == AllocatorKind::Jemalloc) {
            panels.push(panel("jemalloc: narenas", &|r| {
                r.setting.allocator == AllocatorKind::Jemalloc
                    && matches!(r.setting.knob, Knob::Default | Knob::Narenas)
            }));
            panels.push(panel("jemalloc: decay and background thread", &|r| {
                r.setting.allocator == AllocatorKind::Jemalloc && r.setting.knob != Knob::Narenas
            }));
        }
        vec![
            Chart {
                file_name: "tune-rss.png".into(),
                caption: "RSS over time per setting".into(),
                kind: ChartKind::Lines(panels),
            },
            Chart {
                file_name: "tune-p99.png".into(),
                caption: "p99 ns per malloc or free, per setting".into(),
                kind: ChartKind::Bars {
                    title: "p99 per operation (ns)".into(),
                    y_label: "ns".into(),
                    bars: self
                        .runs
                        .iter()
                        .map(|r| Bar {
                            label: r
                                .setting
                                .label
                                .replace("jemalloc ", "je ")
                                .replace("glibc MALLOC_ARENA_MAX=", "arenas="),
                            value: r.report.p99_ns as f64,
                        })
                        .collect(),
                    log_y: true,
                },
            },
        ]
    }

    fn explanation(&self) -> String {
        "The knobs. **`MALLOC_ARENA_MAX`** caps glibc's arenas (default 8 × CPUs on 64-bit): \
         with fewer arenas than threads, threads share arenas, so free memory in one arena is \
         reusable by more threads (lower RSS) but they take turns on its lock (longer tail). \
         **`narenas`** is the same knob in jemalloc (default 4 × CPUs), though its thread caches \
         absorb most calls before the arena lock. **`dirty_decay_ms`/`muzzy_decay_ms`** set how \
         long freed pages stay dirty (then muzzy, `MADV_FREE`) before jemalloc purges them: 0 \
         purges at once (RSS follows the live set, every purge a system call), 10000 keeps them \
         ten seconds for reuse. Without **`background_thread`** the purging is done by the \
         application's own threads when they call into jemalloc, so an idle process keeps its \
         dirty pages; with it a jemalloc thread purges on schedule.\n\n\
         One run per setting on a shared machine: differences within a few percent are noise \
         (the verdicts call anything under 5% unchanged).\n"
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_carry_the_direction_and_the_numbers() {
        assert!(rss_phrase("peak RSS", 80.0 * MIB, 100.0 * MIB).starts_with("cut peak RSS by 20%"));
        assert!(rss_phrase("peak RSS", 101.0 * MIB, 100.0 * MIB).starts_with("left peak RSS within 5%"));
        assert!(ratio_phrase("p99", 300.0, 100.0, "ns").starts_with("raised p99 3.00×"));
    }

    #[test]
    fn every_knob_has_its_baseline_among_the_settings() {
        let all = settings();
        for allocator in [AllocatorKind::Glibc, AllocatorKind::Jemalloc] {
            assert_eq!(all.iter().filter(|s| s.allocator == allocator && s.knob == Knob::Default).count(), 1);
        }
        assert_eq!(all.iter().filter(|s| s.knob == Knob::ArenaMax).count(), 3);
    }
}
