//! Task 9: the same program on glibc, jemalloc, tcmalloc, mimalloc and allockit's own malloc.
//!
//! The lab binary (on the system allocator) re-executes itself once per allocator, with
//! that allocator in `LD_PRELOAD`, running [`Workload`]: several threads serving
//! synthetic requests with a representative mix of sizes and lifetimes —
//!
//! * short-lived request objects (8 B – 64 KiB, mostly small), all freed when the request
//!   ends, plus a response buffer that grows by appending (realloc);
//! * medium-lived cache entries that replace a random slot of a per-thread cache;
//! * long-lived objects kept until the end;
//! * messages handed to the next thread and freed there (remote frees, the case that
//!   separates per-thread caches from shared arenas);
//!
//! then frees everything and lingers, so the curve shows who gives memory back. The
//! parent samples each child's RSS over time; the child reports its own throughput.
//! Every allocator runs exactly the same requests (seeded).
//!
//! `swap -- CMD ARGS...` does the same for any dynamically linked program: wall time,
//! RSS over time and the kernel's peak RSS, and whether the preloaded library was really
//! mapped (a static binary or a program with its own allocator ignores `LD_PRELOAD`).
//!
//! One run per allocator: numbers from a loaded machine vary by several percent; rerun
//! before trusting a small difference.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind, Availability};
use crate::chart::{Bar, Chart, ChartKind, LinePanel, Series};
use crate::child::{ChildTask, Launch};
use crate::process::{self, ChildSpec, ExitOutcome, RssSample};
use crate::report::{self, CsvFile, Outcome, Table};

/// The allocation-heavy workload a child runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Worker threads.
    pub threads: usize,
    /// Requests each thread serves.
    pub requests_per_thread: usize,
    /// Slots of each thread's cache (medium-lived objects).
    pub cache_slots: usize,
    /// Milliseconds to stay alive after freeing everything.
    pub linger_ms: u64,
    /// Seed of the request mix.
    pub seed: u64,
}

impl Workload {
    /// Task 9 in full: four threads, 150,000 requests each.
    pub fn full() -> Workload {
        Workload { threads: 4, requests_per_thread: 150_000, cache_slots: 4096, linger_ms: 600, seed: 9 }
    }

    /// The test-suite version.
    pub fn quick() -> Workload {
        Workload { threads: 2, requests_per_thread: 8_000, cache_slots: 1024, linger_ms: 100, seed: 9 }
    }
}

/// What the workload did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Requests served over all threads.
    pub requests: u64,
    /// Allocations made (objects created plus growth steps of response buffers).
    pub allocations: u64,
    /// Bytes requested in those allocations.
    pub bytes: u64,
    /// Messages freed by a thread other than the one that allocated them.
    pub remote_frees: u64,
    /// Seconds the threads ran (without start-up and linger).
    pub elapsed_secs: f64,
}

impl WorkloadReport {
    /// Requests per second.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed_secs.max(f64::MIN_POSITIVE)
    }

    /// Allocations per second.
    pub fn allocations_per_sec(&self) -> f64 {
        self.allocations as f64 / self.elapsed_secs.max(f64::MIN_POSITIVE)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    allocations: u64,
    bytes: u64,
    remote_frees: u64,
}

impl ChildTask for Workload {
    const NAME: &'static str = "swap-workload";
    type Output = WorkloadReport;

    fn run(self) -> Result<WorkloadReport, LabError> {
        let report = run_workload(&self)?;
        std::thread::sleep(Duration::from_millis(self.linger_ms));
        Ok(report)
    }
}

/// Runs the workload in this process and frees everything it allocated.
pub fn run_workload(workload: &Workload) -> Result<WorkloadReport, LabError> {
    if workload.threads == 0 {
        return Err(LabError::InvalidArgument { flag: "--threads", reason: "must be at least 1".into() });
    }
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..workload.threads).map(|_| mpsc::sync_channel(256)).unzip();
    let started = Instant::now();
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(id, inbox)| {
                let outbox = senders[(id + 1) % workload.threads].clone();
                scope.spawn(move || serve_requests(workload, id as u64, &inbox, &outbox))
            })
            .collect();
        drop(senders);
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect::<Vec<Counts>>()
    });
    let elapsed_secs = started.elapsed().as_secs_f64();
    let total = counts.iter().fold(Counts::default(), |a, c| Counts {
        requests: a.requests + c.requests,
        allocations: a.allocations + c.allocations,
        bytes: a.bytes + c.bytes,
        remote_frees: a.remote_frees + c.remote_frees,
    });
    Ok(WorkloadReport {
        requests: total.requests,
        allocations: total.allocations,
        bytes: total.bytes,
        remote_frees: total.remote_frees,
        elapsed_secs,
    })
}

/// A request object's size: mostly small, some buffers, a few large bodies.
fn request_object_size(rng: &mut StdRng) -> usize {
    match rng.random_range(0..100) {
        0..60 => rng.random_range(8..=64),
        60..90 => rng.random_range(65..=512),
        90..99 => rng.random_range(513..=4096),
        _ => rng.random_range(4097..=65536),
    }
}

fn filled(size: usize, tag: u64, counts: &mut Counts) -> Vec<u8> {
    counts.allocations += 1;
    counts.bytes += size as u64;
    vec![tag as u8 | 1; size]
}

fn serve_requests(
    workload: &Workload,
    id: u64,
    inbox: &Receiver<Vec<u8>>,
    outbox: &SyncSender<Vec<u8>>,
) -> Counts {
    let mut rng = StdRng::seed_from_u64(workload.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id);
    let mut counts = Counts::default();
    let mut cache: Vec<Vec<u8>> = (0..workload.cache_slots).map(|_| Vec::new()).collect();
    let mut long_lived: Vec<Vec<u8>> = Vec::new();
    let mut request_objects: Vec<Vec<u8>> = Vec::with_capacity(64);
    let chunk = [b'x'; 128];
    for request in 0..workload.requests_per_thread as u64 {
        for _ in 0..rng.random_range(8..32) {
            let size = request_object_size(&mut rng);
            request_objects.push(filled(size, request, &mut counts));
        }
        let mut response: Vec<u8> = Vec::new();
        let mut capacity = 0;
        for _ in 0..rng.random_range(4..24) {
            response.extend_from_slice(&chunk[..rng.random_range(16..=128)]);
            if response.capacity() != capacity {
                capacity = response.capacity();
                counts.allocations += 1;
                counts.bytes += capacity as u64;
            }
        }
        std::hint::black_box(&response);
        if !cache.is_empty() && rng.random_bool(0.5) {
            let slot = rng.random_range(0..cache.len());
            cache[slot] = filled(rng.random_range(64..=2048), request, &mut counts);
        }
        if request.is_multiple_of(64) {
            long_lived.push(filled(rng.random_range(256..=4096), request, &mut counts));
        }
        if request.is_multiple_of(8) {
            let message = filled(rng.random_range(128..=2048), request, &mut counts);
            match outbox.try_send(message) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
        while let Ok(message) = inbox.try_recv() {
            std::hint::black_box(&message);
            counts.remote_frees += 1;
        }
        request_objects.clear();
        counts.requests += 1;
    }
    std::hint::black_box((&cache, &long_lived));
    counts
}

/// What `swap` runs under each allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The built-in [`Workload`].
    Workload(Workload),
    /// Any program and its arguments.
    Command(Vec<String>),
}

/// One allocator's run.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapRun {
    /// The allocator put under the subject (glibc's is the one already in the process).
    pub allocator: AllocatorKind,
    /// The preloaded library, or `libc`.
    pub library: String,
    /// The workload's own report (built-in workload only).
    pub workload: Option<WorkloadReport>,
    /// How the process ended.
    pub exit: ExitOutcome,
    /// Seconds from spawn to exit.
    pub wall_secs: f64,
    /// RSS over time.
    pub rss: Vec<RssSample>,
    /// The kernel's peak RSS.
    pub peak_rss_bytes: u64,
    /// Whether the preload showed up in the process's memory map (commands only).
    pub preload_mapped: Option<bool>,
    /// The end of the process's standard error (its standard output is discarded).
    pub stderr_tail: String,
}

impl SwapRun {
    fn mean_rss(&self) -> f64 {
        if self.rss.is_empty() {
            0.0
        } else {
            self.rss.iter().map(|s| s.rss_bytes as f64).sum::<f64>() / self.rss.len() as f64
        }
    }

    /// The last RSS sample: for the built-in workload, after everything was freed.
    pub fn final_rss(&self) -> u64 {
        self.rss.last().map_or(0, |s| s.rss_bytes)
    }
}

/// Task 9's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapOutcome {
    /// The built-in workload or the command given after `--`, the same under every
    /// allocator.
    pub subject: Subject,
    /// One run per available allocator, glibc first.
    pub runs: Vec<SwapRun>,
    /// Allocators not installed, with their install command.
    pub missing: Vec<(AllocatorKind, String)>,
}

/// Options of a swap experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapOptions {
    /// The built-in workload or any command, run once per allocator.
    pub subject: Subject,
    /// How often the child's RSS is read from `/proc` (shorter catches brief peaks; the
    /// kernel's peak RSS is reported beside the series anyway).
    pub interval: Duration,
}

impl SwapOptions {
    /// The built-in workload, RSS sampled every 20 ms.
    pub fn for_workload(workload: Workload) -> Self {
        SwapOptions { subject: Subject::Workload(workload), interval: Duration::from_millis(20) }
    }

    /// A command, RSS sampled every 20 ms.
    pub fn for_command(command: Vec<String>) -> Self {
        SwapOptions { subject: Subject::Command(command), interval: Duration::from_millis(20) }
    }
}

/// Runs the subject once under each available allocator.
pub fn run(exe: &Path, options: &SwapOptions) -> Result<SwapOutcome, LabError> {
    if let Subject::Command(command) = &options.subject
        && command.is_empty()
    {
        return Err(LabError::InvalidArgument { flag: "--", reason: "no command given after `--`".into() });
    }
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    for located in allocator::locate_each(&AllocatorKind::WITH_ALLOCKIT) {
        if let Availability::Missing { install } = &located.availability {
            missing.push((located.kind, install.clone()));
            continue;
        }
        let library = located.preload().map_or_else(|| "libc".to_owned(), |p| p.display().to_string());
        let (workload, sampled) = match &options.subject {
            Subject::Workload(workload) => {
                let mut launch = Launch::new(exe, &located);
                launch.interval = options.interval;
                let (report, sampled) = launch.run(workload)?;
                (Some(report), sampled)
            }
            Subject::Command(command) => {
                let mut spec = ChildSpec::new(&command[0], command[1..].to_vec());
                spec.preload = located.preload().map(Path::to_path_buf);
                spec.interval = options.interval;
                (None, process::run_sampled(&spec)?)
            }
        };
        runs.push(SwapRun {
            allocator: located.kind,
            library,
            workload,
            exit: sampled.exit,
            wall_secs: sampled.wall_secs,
            rss: sampled.rss,
            peak_rss_bytes: sampled.peak_rss_bytes,
            preload_mapped: sampled.preload_mapped,
            stderr_tail: sampled.stderr_tail,
        });
    }
    Ok(SwapOutcome { subject: options.subject.clone(), runs, missing })
}

impl SwapOutcome {
    fn baseline(&self) -> Option<&SwapRun> {
        self.runs.iter().find(|run| run.allocator == AllocatorKind::Glibc)
    }

    fn subject_text(&self) -> String {
        match &self.subject {
            Subject::Workload(w) => format!(
                "the built-in workload ({} threads × {} requests, cache of {} slots per thread)",
                w.threads, w.requests_per_thread, w.cache_slots
            ),
            Subject::Command(command) => format!("`{}`", shell_words(command)),
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The command line as a shell would need it typed: arguments with spaces or quotes are
/// single-quoted.
fn shell_words(command: &[String]) -> String {
    command
        .iter()
        .map(|arg| {
            if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Outcome for SwapOutcome {
    fn slug(&self) -> &'static str {
        "swap"
    }

    fn title(&self) -> String {
        "Task 9: swapping the allocator under one binary".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let mut findings =
            vec![format!("Ran {} under each allocator through LD_PRELOAD.", self.subject_text())];
        let base = self.baseline();
        for run in &self.runs {
            match (&run.workload, base.and_then(|b| b.workload)) {
                (Some(w), Some(b)) => findings.push(format!(
                    "{}: {:.0} requests/s ({} glibc's throughput), peak RSS {} ({} glibc's), RSS after freeing everything {}",
                    run.allocator,
                    w.requests_per_sec(),
                    report::ratio(w.requests_per_sec() / b.requests_per_sec()),
                    report::bytes(run.peak_rss_bytes as f64),
                    report::ratio(run.peak_rss_bytes as f64 / base.map_or(1, |b| b.peak_rss_bytes).max(1) as f64),
                    report::bytes(run.final_rss() as f64),
                )),
                _ => {
                    let base_wall = base.map_or(run.wall_secs, |b| b.wall_secs);
                    let mapped = match run.preload_mapped {
                        Some(false) => " — the preloaded library was NOT mapped, so this ran on the program's own allocator",
                        _ => "",
                    };
                    let stderr = match run.stderr_tail.lines().last() {
                        Some(line) if !run.exit.success() => format!("; its stderr ends with: {}", line.trim()),
                        _ => String::new(),
                    };
                    findings.push(format!(
                        "{}: {} in {:.2} s ({} glibc's time), peak RSS {}{mapped}{stderr}",
                        run.allocator,
                        run.exit,
                        run.wall_secs,
                        report::ratio(run.wall_secs / base_wall.max(f64::MIN_POSITIVE)),
                        report::bytes(run.peak_rss_bytes as f64),
                    ));
                }
            }
        }
        for (kind, install) in &self.missing {
            findings.push(format!("{kind} is not installed and was skipped; install it with `{install}`"));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let base = self.baseline();
        let mut table = match &self.subject {
            Subject::Workload(_) => Table::new(
                "Throughput and memory per allocator",
                &[
                    "allocator",
                    "requests/s",
                    "allocations/s",
                    "throughput vs glibc",
                    "wall s",
                    "peak RSS",
                    "mean RSS",
                    "RSS after free",
                ],
            ),
            Subject::Command(_) => Table::new(
                "Wall time and memory per allocator",
                &["allocator", "exit", "wall s", "time vs glibc", "peak RSS", "mean RSS", "preload mapped"],
            ),
        };
        for run in &self.runs {
            let row = match &run.workload {
                Some(w) => {
                    let speedup =
                        base.and_then(|b| b.workload).map(|b| w.requests_per_sec() / b.requests_per_sec());
                    vec![
                        run.allocator.to_string(),
                        format!("{:.0}", w.requests_per_sec()),
                        format!("{:.0}", w.allocations_per_sec()),
                        speedup.map_or("-".to_owned(), report::ratio),
                        format!("{:.2}", run.wall_secs),
                        report::bytes(run.peak_rss_bytes as f64),
                        report::bytes(run.mean_rss()),
                        report::bytes(run.final_rss() as f64),
                    ]
                }
                None => vec![
                    run.allocator.to_string(),
                    run.exit.to_string(),
                    format!("{:.3}", run.wall_secs),
                    base.map_or("-".to_owned(), |b| {
                        report::ratio(run.wall_secs / b.wall_secs.max(f64::MIN_POSITIVE))
                    }),
                    report::bytes(run.peak_rss_bytes as f64),
                    report::bytes(run.mean_rss()),
                    match run.preload_mapped {
                        Some(true) => "yes".to_owned(),
                        Some(false) => "NO".to_owned(),
                        None => "-".to_owned(),
                    },
                ],
            };
            table.push(row);
        }
        vec![table]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut summary = Table::new(
            "",
            &[
                "allocator",
                "library",
                "exit",
                "wall_secs",
                "workload_secs",
                "requests",
                "allocations",
                "requests_per_sec",
                "allocations_per_sec",
                "peak_rss_bytes",
                "mean_rss_bytes",
                "final_rss_bytes",
            ],
        );
        let mut series = Table::new("", &["allocator", "t_secs", "rss_bytes"]);
        for run in &self.runs {
            let w = run.workload;
            summary.push(vec![
                run.allocator.to_string(),
                run.library.clone(),
                run.exit.to_string(),
                format!("{:.4}", run.wall_secs),
                w.map_or(String::new(), |w| format!("{:.4}", w.elapsed_secs)),
                w.map_or(String::new(), |w| w.requests.to_string()),
                w.map_or(String::new(), |w| w.allocations.to_string()),
                w.map_or(String::new(), |w| format!("{:.1}", w.requests_per_sec())),
                w.map_or(String::new(), |w| format!("{:.1}", w.allocations_per_sec())),
                run.peak_rss_bytes.to_string(),
                format!("{:.0}", run.mean_rss()),
                run.final_rss().to_string(),
            ]);
            for sample in &run.rss {
                series.push(vec![
                    run.allocator.to_string(),
                    format!("{:.4}", sample.t_secs),
                    sample.rss_bytes.to_string(),
                ]);
            }
        }
        vec![
            CsvFile { file_name: "swap.csv".into(), table: summary },
            CsvFile { file_name: "swap-rss.csv".into(), table: series },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        let series = self
            .runs
            .iter()
            .map(|run| Series {
                name: run.allocator.to_string(),
                points: run.rss.iter().map(|s| (s.t_secs, s.rss_bytes as f64 / MIB)).collect(),
            })
            .collect();
        let mut charts = vec![Chart {
            file_name: "swap-rss.png".into(),
            caption: "RSS over time under each allocator".into(),
            kind: ChartKind::Lines(vec![LinePanel {
                title: "RSS over time, one curve per allocator".into(),
                x_label: "seconds since start".into(),
                y_label: "RSS (MiB)".into(),
                series,
            }]),
        }];
        if matches!(self.subject, Subject::Workload(_)) {
            charts.push(Chart {
                file_name: "swap-throughput.png".into(),
                caption: "Requests per second under each allocator".into(),
                kind: ChartKind::Bars {
                    title: "Workload throughput (requests/s)".into(),
                    y_label: "requests per second".into(),
                    bars: self
                        .runs
                        .iter()
                        .filter_map(|run| {
                            run.workload.map(|w| Bar {
                                label: run.allocator.to_string(),
                                value: w.requests_per_sec(),
                            })
                        })
                        .collect(),
                    log_y: false,
                },
            });
        }
        charts
    }

    fn explanation(&self) -> String {
        "How the four differ. **glibc** (ptmalloc2) keeps boundary-tagged chunks in bins per \
         arena, with a small per-thread cache (tcache, 7 chunks per size); threads share a \
         limited number of arenas and contend on their locks, and memory inside a heap goes \
         back to the kernel only when the top of a heap is free (or on `malloc_trim`). \
         **jemalloc** segregates small sizes into slabs of one size class, gives each thread a \
         cache and spreads threads over 4 × CPUs arenas; freed pages go back to the kernel \
         gradually after a decay time (`dirty_decay_ms`, 10 s by default). **tcmalloc** \
         (gperftools) has per-thread caches over central free lists per size class and a page \
         heap that returns spans slowly (`TCMALLOC_RELEASE_RATE`). **mimalloc** shards free \
         lists per page, with a separate list for frees from other threads, and gives each \
         thread its own segments, which keeps both local and remote frees cheap. **allockit** \
         (this workspace's `allockit-malloc`, docs/malloc.md) follows mimalloc's template with \
         allockit's own size classes and OS layer: per-thread heaps, pages per size class with a \
         list for remote frees, and empty pages decommitted after a delay. Which of them \
         gives memory back once the workload has freed everything is the last column, \
         measured.\n\n\
         Read the table as ratios to glibc measured in the same run; one run per allocator on \
         a shared machine varies by several percent.\n"
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_like_a_shell_needs_them() {
        let command: Vec<String> =
            ["python3", "-c", "d = {i: 'x'}", ""].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(shell_words(&command), r#"python3 -c 'd = {i: '\''x'\''}' ''"#);
    }
}
