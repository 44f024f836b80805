//! Task 9: the same program on glibc, jemalloc, tcmalloc, mimalloc and allockit's own malloc.
//!
//! The lab binary (on the system allocator) re-executes itself once per allocator, with
//! that allocator in `LD_PRELOAD`, running [`Workload`] (its own module says what the
//! service does): warm-up, a steady phase on a live set of constant size, free everything,
//! then an idle phase long enough for every allocator's purge. The child reads its RSS per
//! phase; the parent reads the kernel's peak RSS (`ru_maxrss`) when the child exits. Every
//! allocator runs exactly the same requests (seeded).
//!
//! The comparison runs in **rounds**: each round runs every allocator once, and the order
//! rotates from one round to the next (round 2 starts with the allocator that was second in
//! round 1), so that a slow spell of a shared machine does not always hit the same
//! allocator. The report gives medians with their ranges (min–max), ratios to glibc as the
//! median of the per-round ratios, and claims an ordering ("faster than glibc", "lower
//! steady RSS") only where the ranges do not overlap, and only with three rounds or more.
//!
//! `swap -- CMD ARGS...` does the same for any dynamically linked program: wall time,
//! RSS over time and the kernel's peak RSS, and whether the preloaded library was really
//! mapped (a static binary or a program with its own allocator ignores `LD_PRELOAD`).

mod workload;

use std::path::Path;
use std::time::Duration;

pub use workload::{LiveCheckpoint, Phase, PhaseSample, Workload, WorkloadReport, run_workload};

use crate::LabError;
use crate::allocator::{self, AllocatorKind, Availability, Located};
use crate::chart::{Bar, Chart, ChartKind, LinePanel, Series};
use crate::child::Launch;
use crate::process::{self, ChildSpec, ExitOutcome, RssSample};
use crate::report::{self, CsvFile, Outcome, Table};
use crate::trace::{MIN_ROUNDS_TO_ORDER, Order, Spread};

/// What `swap` runs under each allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The built-in [`Workload`].
    Workload(Workload),
    /// Any program and its arguments.
    Command(Vec<String>),
}

/// One allocator's run in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapRun {
    /// The round (from 1).
    pub round: usize,
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
    /// RSS over time, read by the parent from `/proc/PID/statm`.
    pub rss: Vec<RssSample>,
    /// The kernel's peak RSS (`ru_maxrss`).
    pub peak_rss_bytes: u64,
    /// Whether the preload showed up in the process's memory map (commands only).
    pub preload_mapped: Option<bool>,
    /// The end of the process's standard error (its standard output is discarded).
    pub stderr_tail: String,
}

impl SwapRun {
    /// The peak RSS: the kernel's, or the workload's highest reading where that is higher.
    /// Both come from the kernel's RSS counters, which are kept per CPU and summed only
    /// approximately, so a reading on a plateau can come out a few hundred KiB above the
    /// kernel's peak.
    pub fn peak_rss(&self) -> u64 {
        let readings = self.workload.iter().flat_map(|w| {
            w.samples.iter().map(|s| s.rss_bytes).chain([
                w.rss_steady_end,
                w.rss_after_free,
                w.rss_after_idle,
                w.rss_after_exit,
            ])
        });
        readings.fold(self.peak_rss_bytes, u64::max)
    }
}

/// Options of a swap experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapOptions {
    /// The built-in workload or any command, run once per allocator and round.
    pub subject: Subject,
    /// How often RSS is read (by the parent from `/proc`, and by the workload itself).
    pub interval: Duration,
    /// Rounds; each runs every allocator once, in an order rotated from the last round's.
    pub rounds: usize,
}

impl SwapOptions {
    /// Task 9 in full: [`Workload::full`], three rounds.
    pub fn full() -> Self {
        SwapOptions::for_workload(Workload::full())
    }

    /// The test-suite version: [`Workload::quick`], two rounds (too few for an ordering,
    /// enough to see the order rotate).
    pub fn quick() -> Self {
        SwapOptions { rounds: 2, ..SwapOptions::for_workload(Workload::quick()) }
    }

    /// The built-in workload, RSS read every 20 ms, three rounds.
    pub fn for_workload(workload: Workload) -> Self {
        SwapOptions {
            subject: Subject::Workload(workload),
            interval: Duration::from_millis(20),
            rounds: MIN_ROUNDS_TO_ORDER,
        }
    }

    /// A command, RSS read every 20 ms, three rounds.
    pub fn for_command(command: Vec<String>) -> Self {
        SwapOptions {
            subject: Subject::Command(command),
            interval: Duration::from_millis(20),
            rounds: MIN_ROUNDS_TO_ORDER,
        }
    }
}

/// The order in which round `round` (from 1) runs `allocators`: the list rotated left by
/// `round - 1`, so every allocator takes every position in turn.
pub fn round_order<T: Clone>(allocators: &[T], round: usize) -> Vec<T> {
    let mut order = allocators.to_vec();
    if !order.is_empty() {
        let shift = round.saturating_sub(1) % order.len();
        order.rotate_left(shift);
    }
    order
}

/// Runs the subject under each available allocator, `options.rounds` times.
pub fn run(exe: &Path, options: &SwapOptions) -> Result<SwapOutcome, LabError> {
    if let Subject::Command(command) = &options.subject
        && command.is_empty()
    {
        return Err(LabError::InvalidArgument { flag: "--", reason: "no command given after `--`".into() });
    }
    if options.rounds == 0 {
        return Err(LabError::InvalidArgument { flag: "--rounds", reason: "must be at least 1".into() });
    }
    if let Subject::Workload(workload) = &options.subject {
        workload.validate()?;
    }
    let mut available = Vec::new();
    let mut missing = Vec::new();
    for located in allocator::locate_each(&AllocatorKind::WITH_ALLOCKIT) {
        match &located.availability {
            Availability::Missing { install } => missing.push((located.kind, install.clone())),
            _ => available.push(located),
        }
    }
    let mut runs = Vec::new();
    for round in 1..=options.rounds {
        for located in round_order(&available, round) {
            runs.push(run_once(exe, options, &located, round)?);
        }
    }
    Ok(SwapOutcome { subject: options.subject.clone(), rounds: options.rounds, runs, missing })
}

fn run_once(exe: &Path, options: &SwapOptions, located: &Located, round: usize) -> Result<SwapRun, LabError> {
    let library = located.preload().map_or_else(|| "libc".to_owned(), |p| p.display().to_string());
    let (workload, sampled) = match &options.subject {
        Subject::Workload(workload) => {
            let workload = Workload {
                sample_ms: u64::try_from(options.interval.as_millis()).unwrap_or(u64::MAX).max(1),
                ..workload.clone()
            };
            let mut launch = Launch::new(exe, located);
            launch.interval = options.interval;
            let (report, sampled) = launch.run(&workload)?;
            (Some(report), sampled)
        }
        Subject::Command(command) => {
            let mut spec = ChildSpec::new(&command[0], command[1..].to_vec());
            spec.preload = located.preload().map(Path::to_path_buf);
            spec.interval = options.interval;
            (None, process::run_sampled(&spec)?)
        }
    };
    Ok(SwapRun {
        round,
        allocator: located.kind,
        library,
        workload,
        exit: sampled.exit,
        wall_secs: sampled.wall_secs,
        rss: sampled.rss,
        peak_rss_bytes: sampled.peak_rss_bytes,
        preload_mapped: sampled.preload_mapped,
        stderr_tail: sampled.stderr_tail,
    })
}

/// One allocator's figures over the rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocatorSummary {
    /// The allocator.
    pub allocator: AllocatorKind,
    /// Runs that went into the figures.
    pub runs: usize,
    /// Steady-phase requests per second (built-in workload).
    pub requests_per_sec: Option<Spread>,
    /// Per-round ratio of `requests_per_sec` to glibc's in the same round.
    pub throughput_vs_glibc: Option<Spread>,
    /// Seconds from spawn to exit.
    pub wall_secs: Spread,
    /// Per-round ratio of `wall_secs` to glibc's in the same round.
    pub wall_vs_glibc: Option<Spread>,
    /// Steady-state RSS: median of the readings over the second half of the steady phase.
    pub steady_rss: Option<Spread>,
    /// The second half's median RSS over the first half's, minus one (the plateau: near 0).
    pub steady_drift: Option<Spread>,
    /// Peak RSS ([`SwapRun::peak_rss`]).
    pub peak_rss: Spread,
    /// RSS right after everything was freed.
    pub after_free: Option<Spread>,
    /// RSS at the end of the idle phase (after every allocator's decay period).
    pub after_decay: Option<Spread>,
    /// RSS after the worker threads ended.
    pub after_exit: Option<Spread>,
    /// RSS before the workload allocated anything.
    pub at_start: Option<Spread>,
}

/// Task 9's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapOutcome {
    /// The built-in workload or the command given after `--`, the same under every
    /// allocator.
    pub subject: Subject,
    /// Rounds run.
    pub rounds: usize,
    /// Every run, in the order they ran (round by round).
    pub runs: Vec<SwapRun>,
    /// Allocators not installed, with their install command.
    pub missing: Vec<(AllocatorKind, String)>,
}

/// The median RSS of the readings in `samples`; `None` when there are none.
fn median_rss<'a>(samples: impl Iterator<Item = &'a PhaseSample>) -> Option<f64> {
    let values: Vec<f64> = samples.map(|s| s.rss_bytes as f64).collect();
    Spread::try_of(&values).map(|s| s.median)
}

/// The steady phase's second-half median RSS over its first-half median, minus one.
fn steady_drift(report: &WorkloadReport) -> Option<f64> {
    let half = (report.steady_start_secs + report.steady_end_secs) / 2.0;
    let first = median_rss(report.samples_of(Phase::Steady).filter(|s| s.t_secs < half))?;
    let second = median_rss(report.samples_of(Phase::Steady).filter(|s| s.t_secs >= half))?;
    Some(second / first.max(1.0) - 1.0)
}

impl SwapOutcome {
    /// The runs of one allocator, in round order.
    pub fn runs_of(&self, kind: AllocatorKind) -> impl Iterator<Item = &SwapRun> {
        self.runs.iter().filter(move |run| run.allocator == kind)
    }

    fn run_in(&self, kind: AllocatorKind, round: usize) -> Option<&SwapRun> {
        self.runs.iter().find(|run| run.allocator == kind && run.round == round)
    }

    /// The order the allocators ran in, per round.
    pub fn orders(&self) -> Vec<Vec<AllocatorKind>> {
        (1..=self.rounds)
            .map(|round| self.runs.iter().filter(|run| run.round == round).map(|run| run.allocator).collect())
            .collect()
    }

    /// Per-round ratios of `figure` to glibc's figure in the same round.
    fn ratios(&self, kind: AllocatorKind, figure: impl Fn(&SwapRun) -> Option<f64>) -> Option<Spread> {
        let ratios: Vec<f64> = self
            .runs_of(kind)
            .filter_map(|run| {
                let base = figure(self.run_in(AllocatorKind::Glibc, run.round)?)?;
                Some(figure(run)? / base.max(f64::MIN_POSITIVE))
            })
            .collect();
        Spread::try_of(&ratios)
    }

    fn spread(&self, kind: AllocatorKind, figure: impl Fn(&SwapRun) -> Option<f64>) -> Option<Spread> {
        Spread::try_of(&self.runs_of(kind).filter_map(figure).collect::<Vec<_>>())
    }

    /// One summary per allocator that ran, glibc first.
    pub fn summaries(&self) -> Vec<AllocatorSummary> {
        let rps = |run: &SwapRun| run.workload.as_ref().map(WorkloadReport::requests_per_sec);
        let wall = |run: &SwapRun| Some(run.wall_secs);
        AllocatorKind::WITH_ALLOCKIT
            .into_iter()
            .filter_map(|kind| {
                Some(AllocatorSummary {
                    allocator: kind,
                    runs: self.runs_of(kind).count(),
                    requests_per_sec: self.spread(kind, rps),
                    throughput_vs_glibc: self.ratios(kind, rps),
                    wall_secs: self.spread(kind, wall)?,
                    wall_vs_glibc: self.ratios(kind, wall),
                    steady_rss: self.spread(kind, |r| r.workload.as_ref().map(|w| w.steady_rss() as f64)),
                    steady_drift: self.spread(kind, |r| r.workload.as_ref().and_then(steady_drift)),
                    peak_rss: self.spread(kind, |r| Some(r.peak_rss() as f64))?,
                    after_free: self.spread(kind, |r| r.workload.as_ref().map(|w| w.rss_after_free as f64)),
                    after_decay: self.spread(kind, |r| r.workload.as_ref().map(|w| w.rss_after_idle as f64)),
                    after_exit: self.spread(kind, |r| r.workload.as_ref().map(|w| w.rss_after_exit as f64)),
                    at_start: self.spread(kind, |r| r.workload.as_ref().map(|w| w.rss_at_start as f64)),
                })
            })
            .collect()
    }

    /// The verdict per allocator against glibc: an ordering only where the ranges do not
    /// overlap over at least [`MIN_ROUNDS_TO_ORDER`] rounds.
    pub fn verdicts(&self) -> Vec<String> {
        let summaries = self.summaries();
        let Some(base) = summaries.iter().find(|s| s.allocator == AllocatorKind::Glibc) else {
            return vec!["glibc did not run, so there is no baseline to compare with".to_owned()];
        };
        if self.rounds < MIN_ROUNDS_TO_ORDER {
            return vec![format!(
                "{} round(s): no ordering claimed ({MIN_ROUNDS_TO_ORDER} or more alternating rounds are needed)",
                self.rounds
            )];
        }
        let mib = |v: f64| report::bytes(v);
        let range = |s: &Spread, f: &dyn Fn(f64) -> String| format!("{}–{}", f(s.min), f(s.max));
        let compare = |what: &str,
                       above: &str,
                       below: &str,
                       own: &Spread,
                       glibc: &Spread,
                       f: &dyn Fn(f64) -> String| {
            let ranges = format!("{} vs glibc's {}", range(own, f), range(glibc, f));
            match Order::of(own, glibc, self.rounds) {
                Order::Higher => format!("{above} ({what} {ranges})"),
                Order::Lower => format!("{below} ({what} {ranges})"),
                Order::Overlap | Order::TooFewRounds => {
                    format!("{what}: ranges overlap: no ordering ({ranges})")
                }
            }
        };
        let per_second = |v: f64| format!("{v:.0}/s");
        let seconds = |v: f64| format!("{v:.3} s");
        summaries
            .iter()
            .filter(|s| s.allocator != AllocatorKind::Glibc)
            .map(|s| {
                let mut parts = Vec::new();
                match (&s.requests_per_sec, &base.requests_per_sec) {
                    (Some(own), Some(glibc)) => parts.push(compare(
                        "requests",
                        "faster than glibc",
                        "slower than glibc",
                        own,
                        glibc,
                        &per_second,
                    )),
                    _ => parts.push(compare(
                        "wall time",
                        "slower than glibc",
                        "faster than glibc",
                        &s.wall_secs,
                        &base.wall_secs,
                        &seconds,
                    )),
                }
                match (&s.steady_rss, &base.steady_rss) {
                    (Some(own), Some(glibc)) => parts.push(compare(
                        "steady RSS",
                        "higher steady RSS",
                        "lower steady RSS",
                        own,
                        glibc,
                        &mib,
                    )),
                    _ => parts.push(compare(
                        "peak RSS",
                        "higher peak RSS",
                        "lower peak RSS",
                        &s.peak_rss,
                        &base.peak_rss,
                        &mib,
                    )),
                }
                if let (Some(own), Some(glibc)) = (&s.after_decay, &base.after_decay) {
                    parts.push(compare(
                        "RSS after decay",
                        "holds more after decay",
                        "holds less after decay",
                        own,
                        glibc,
                        &mib,
                    ));
                }
                format!("{} vs glibc over {} rounds: {}", s.allocator, self.rounds, parts.join("; "))
            })
            .collect()
    }

    fn subject_text(&self) -> String {
        match &self.subject {
            Subject::Workload(w) => format!(
                "the built-in workload ({} threads; each: a live set of {} cache slots and {} long-lived objects, {} warm-up and {} steady requests, then everything freed and {} ms idle with one request every {} ms)",
                w.threads,
                w.cache_slots,
                w.long_lived_slots,
                w.warmup_requests,
                w.requests_per_thread,
                w.idle_ms,
                w.heartbeat_ms
            ),
            Subject::Command(command) => format!("`{}`", shell_words(command)),
        }
    }

    /// The live set over the steady phase, as one sentence (from the first run: every run
    /// serves the same seeded requests).
    fn live_set_text(&self) -> Option<String> {
        let live = &self.runs.first()?.workload.as_ref()?.live;
        let objects_min = live.iter().map(|c| c.objects).min()?;
        let objects_max = live.iter().map(|c| c.objects).max()?;
        let bytes_min = live.iter().map(|c| c.bytes).min()?;
        let bytes_max = live.iter().map(|c| c.bytes).max()?;
        let objects = if objects_min == objects_max {
            format!("{objects_min} objects at every checkpoint")
        } else {
            format!("{objects_min}–{objects_max} objects")
        };
        Some(format!(
            "Live set over the steady phase ({} checkpoints, counted by the workload): {objects}, {}–{} ({:.1}% apart): the plateau the steady RSS is read on.",
            live.len(),
            report::bytes(bytes_min as f64),
            report::bytes(bytes_max as f64),
            (bytes_max as f64 / bytes_min.max(1) as f64 - 1.0) * 100.0,
        ))
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

fn bytes_spread(spread: Option<&Spread>) -> String {
    spread.map_or("-".to_owned(), |s| s.text(report::bytes))
}

fn ratio_spread(spread: Option<&Spread>) -> String {
    spread.map_or("-".to_owned(), |s| s.text(report::ratio))
}

impl Outcome for SwapOutcome {
    fn slug(&self) -> &'static str {
        "swap"
    }

    fn title(&self) -> String {
        "Task 9: swapping the allocator under one binary".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let orders = self.orders();
        let order_text = orders
            .iter()
            .enumerate()
            .map(|(i, order)| {
                let names: Vec<&str> = order.iter().map(|kind| kind.name()).collect();
                format!("round {}: {}", i + 1, names.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let mut findings = vec![format!(
            "Ran {} under each allocator through LD_PRELOAD, {} round(s), the order rotated per round ({order_text}).",
            self.subject_text(),
            self.rounds
        )];
        findings.extend(self.live_set_text());
        let starts: Vec<String> = self
            .summaries()
            .iter()
            .filter_map(|s| s.at_start.map(|r| format!("{} {}", s.allocator, report::bytes(r.median))))
            .collect();
        if !starts.is_empty() {
            findings.push(format!(
                "RSS before the workload allocated anything (the binary, its libraries, the allocator's start-up): {}.",
                starts.join(", ")
            ));
        }
        let drifts: Vec<String> = self
            .summaries()
            .iter()
            .filter_map(|s| s.steady_drift.map(|d| format!("{} {:+.1}%", s.allocator, d.median * 100.0)))
            .collect();
        if !drifts.is_empty() {
            findings.push(format!(
                "RSS over the steady phase, second half's median against the first half's (median over the rounds): {}.",
                drifts.join(", ")
            ));
        }
        findings.extend(self.verdicts());
        for run in &self.runs {
            let mapped = match run.preload_mapped {
                Some(false) => {
                    Some("the preloaded library was NOT mapped, so this ran on the program's own allocator")
                }
                _ => None,
            };
            let stderr = match run.stderr_tail.lines().last() {
                Some(line) if !run.exit.success() => Some(format!("its stderr ends with: {}", line.trim())),
                _ => None,
            };
            if mapped.is_some() || stderr.is_some() {
                let details: Vec<String> =
                    [mapped.map(str::to_owned), stderr].into_iter().flatten().collect();
                findings.push(format!(
                    "{}, round {}: {}; {}",
                    run.allocator,
                    run.round,
                    run.exit,
                    details.join("; ")
                ));
            }
        }
        for (kind, install) in &self.missing {
            findings.push(format!("{kind} is not installed and was skipped; install it with `{install}`"));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let summaries = self.summaries();
        let caption = format!("Medians over {} round(s), with the range (min–max)", self.rounds);
        let mut summary = match &self.subject {
            Subject::Workload(_) => Table::new(
                caption,
                &[
                    "allocator",
                    "requests/s",
                    "vs glibc",
                    "steady RSS",
                    "peak RSS",
                    "RSS after free",
                    "RSS after decay",
                    "RSS after exit",
                ],
            ),
            Subject::Command(_) => {
                Table::new(caption, &["allocator", "wall s", "time vs glibc", "peak RSS", "preload mapped"])
            }
        };
        for s in &summaries {
            let row = match &self.subject {
                Subject::Workload(_) => vec![
                    s.allocator.to_string(),
                    s.requests_per_sec.map_or("-".to_owned(), |r| r.text(|v| format!("{v:.0}"))),
                    ratio_spread(s.throughput_vs_glibc.as_ref()),
                    bytes_spread(s.steady_rss.as_ref()),
                    bytes_spread(Some(&s.peak_rss)),
                    bytes_spread(s.after_free.as_ref()),
                    bytes_spread(s.after_decay.as_ref()),
                    bytes_spread(s.after_exit.as_ref()),
                ],
                Subject::Command(_) => {
                    let mapped: Vec<Option<bool>> =
                        self.runs_of(s.allocator).map(|r| r.preload_mapped).collect();
                    vec![
                        s.allocator.to_string(),
                        s.wall_secs.text(|v| format!("{v:.3}")),
                        ratio_spread(s.wall_vs_glibc.as_ref()),
                        bytes_spread(Some(&s.peak_rss)),
                        if mapped.iter().all(Option::is_none) {
                            "-".to_owned()
                        } else if mapped.iter().all(|m| *m == Some(true)) {
                            "yes".to_owned()
                        } else {
                            "NO".to_owned()
                        },
                    ]
                }
            };
            summary.push(row);
        }
        let mut each = match &self.subject {
            Subject::Workload(_) => Table::new(
                "Every run, in the order run",
                &[
                    "round",
                    "allocator",
                    "requests/s",
                    "steady RSS",
                    "peak RSS",
                    "after free",
                    "after decay",
                    "after exit",
                ],
            ),
            Subject::Command(_) => Table::new(
                "Every run, in the order run",
                &["round", "allocator", "exit", "wall s", "peak RSS"],
            ),
        };
        for run in &self.runs {
            let row = match &run.workload {
                Some(w) => vec![
                    run.round.to_string(),
                    run.allocator.to_string(),
                    format!("{:.0}", w.requests_per_sec()),
                    report::bytes(w.steady_rss() as f64),
                    report::bytes(run.peak_rss() as f64),
                    report::bytes(w.rss_after_free as f64),
                    report::bytes(w.rss_after_idle as f64),
                    report::bytes(w.rss_after_exit as f64),
                ],
                None => vec![
                    run.round.to_string(),
                    run.allocator.to_string(),
                    run.exit.to_string(),
                    format!("{:.3}", run.wall_secs),
                    report::bytes(run.peak_rss() as f64),
                ],
            };
            each.push(row);
        }
        vec![summary, each]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut summary = Table::new(
            "",
            &[
                "round",
                "allocator",
                "library",
                "exit",
                "wall_secs",
                "steady_secs",
                "requests",
                "allocations",
                "requests_per_sec",
                "allocations_per_sec",
                "steady_rss_bytes",
                "peak_rss_bytes",
                "kernel_peak_rss_bytes",
                "after_free_rss_bytes",
                "after_decay_rss_bytes",
                "after_exit_rss_bytes",
                "start_rss_bytes",
            ],
        );
        let mut series = Table::new("", &["allocator", "round", "t_secs", "phase", "rss_bytes"]);
        let mut live =
            Table::new("", &["allocator", "round", "steady_requests", "live_objects", "live_bytes"]);
        for run in &self.runs {
            let w = run.workload.as_ref();
            let figure = |f: &dyn Fn(&WorkloadReport) -> String| w.map_or(String::new(), f);
            summary.push(vec![
                run.round.to_string(),
                run.allocator.to_string(),
                run.library.clone(),
                run.exit.to_string(),
                format!("{:.4}", run.wall_secs),
                figure(&|w| format!("{:.4}", w.elapsed_secs)),
                figure(&|w| w.requests.to_string()),
                figure(&|w| w.allocations.to_string()),
                figure(&|w| format!("{:.1}", w.requests_per_sec())),
                figure(&|w| format!("{:.1}", w.allocations_per_sec())),
                figure(&|w| w.steady_rss().to_string()),
                run.peak_rss().to_string(),
                run.peak_rss_bytes.to_string(),
                figure(&|w| w.rss_after_free.to_string()),
                figure(&|w| w.rss_after_idle.to_string()),
                figure(&|w| w.rss_after_exit.to_string()),
                figure(&|w| w.rss_at_start.to_string()),
            ]);
            match w {
                Some(w) => {
                    for sample in &w.samples {
                        series.push(vec![
                            run.allocator.to_string(),
                            run.round.to_string(),
                            format!("{:.4}", sample.t_secs),
                            sample.phase.name().to_owned(),
                            sample.rss_bytes.to_string(),
                        ]);
                    }
                    for checkpoint in &w.live {
                        live.push(vec![
                            run.allocator.to_string(),
                            run.round.to_string(),
                            checkpoint.request.to_string(),
                            checkpoint.objects.to_string(),
                            checkpoint.bytes.to_string(),
                        ]);
                    }
                }
                None => {
                    for sample in &run.rss {
                        series.push(vec![
                            run.allocator.to_string(),
                            run.round.to_string(),
                            format!("{:.4}", sample.t_secs),
                            String::new(),
                            sample.rss_bytes.to_string(),
                        ]);
                    }
                }
            }
        }
        let mut files = vec![
            CsvFile { file_name: "swap.csv".into(), table: summary },
            CsvFile { file_name: "swap-rss.csv".into(), table: series },
        ];
        if matches!(self.subject, Subject::Workload(_)) {
            files.push(CsvFile { file_name: "swap-live.csv".into(), table: live });
        }
        files
    }

    fn charts(&self) -> Vec<Chart> {
        let workload = matches!(self.subject, Subject::Workload(_));
        let panels = (1..=self.rounds)
            .map(|round| LinePanel {
                title: format!("Round {round}: RSS over time, one curve per allocator"),
                x_label: if workload { "seconds since the workload started" } else { "seconds since start" }
                    .into(),
                y_label: "RSS (MiB)".into(),
                // In the same order in every panel, so an allocator keeps its colour.
                series: AllocatorKind::WITH_ALLOCKIT
                    .iter()
                    .filter_map(|&kind| self.run_in(kind, round))
                    .map(|run| Series {
                        name: run.allocator.to_string(),
                        points: match &run.workload {
                            Some(w) => {
                                w.samples.iter().map(|s| (s.t_secs, s.rss_bytes as f64 / MIB)).collect()
                            }
                            None => run.rss.iter().map(|s| (s.t_secs, s.rss_bytes as f64 / MIB)).collect(),
                        },
                    })
                    .collect(),
            })
            .collect();
        let mut charts = vec![Chart {
            file_name: "swap-rss.png".into(),
            caption: if workload {
                "RSS over time under each allocator, one panel per round: warm-up, steady plateau, free, idle"
            } else {
                "RSS over time under each allocator, one panel per round"
            }
            .into(),
            kind: ChartKind::Lines(panels),
        }];
        if workload {
            charts.push(Chart {
                file_name: "swap-throughput.png".into(),
                caption: "Steady-phase requests per second under each allocator (median over the rounds)"
                    .into(),
                kind: ChartKind::Bars {
                    title: "Workload throughput (requests/s, median)".into(),
                    y_label: "requests per second".into(),
                    bars: self
                        .summaries()
                        .iter()
                        .filter_map(|s| {
                            s.requests_per_sec
                                .map(|r| Bar { label: s.allocator.to_string(), value: r.median })
                        })
                        .collect(),
                    log_y: false,
                },
            });
        }
        charts
    }

    fn explanation(&self) -> String {
        "How the five differ. **glibc** (ptmalloc2) keeps boundary-tagged chunks in bins per \
         arena, with a small per-thread cache (tcache, 7 chunks per size); threads share a \
         limited number of arenas and contend on their locks, and memory inside a heap goes \
         back to the kernel only when the top of a heap is free (or on `malloc_trim`). \
         **jemalloc** segregates small sizes into slabs of one size class, gives each thread a \
         cache and spreads threads over 4 × CPUs arenas; freed pages go back to the kernel \
         gradually over `dirty_decay_ms` (10 s by default), but only when a thread calls into \
         jemalloc unless `background_thread` is on. **tcmalloc** (gperftools) has per-thread \
         caches over central free lists per size class and a page heap that returns spans \
         as pages are freed (`TCMALLOC_RELEASE_RATE`), not on a timer. **mimalloc** shards \
         free lists per page, with a separate list for frees from other threads, gives each \
         thread its own segments, and decommits empty pages after a short delay (25 ms, and \
         500 ms for whole segments, in Debian's 2.0). **allockit** (this workspace's \
         `allockit-malloc`, docs/malloc.md) follows mimalloc's template with allockit's own \
         size classes and OS layer: per-thread heaps, pages per size class with a list for \
         remote frees, and empty pages decommitted after a delay.\n\n\
         Steady RSS is the median over the second half of the steady phase, where the live \
         set is constant; peak RSS is the kernel's (`ru_maxrss`, or the highest reading where \
         that is higher); \"after free\" is read \
         right after every thread freed its live set; \"after decay\" at the end of the idle \
         phase, which is longer than every allocator's purge delay but, like a real idle \
         service, still calls the allocator (one small request per thread every heartbeat) — \
         the allocators that purge only inside their own calls get that chance and no more; \
         \"after exit\" once the worker threads have ended and their thread-exit hooks ran. \
         Orderings are claimed only where the ranges over the rounds do not overlap.\n"
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

    #[test]
    fn every_allocator_takes_every_position_as_the_rounds_rotate() {
        let kinds = AllocatorKind::WITH_ALLOCKIT;
        let orders: Vec<Vec<AllocatorKind>> =
            (1..=kinds.len()).map(|round| round_order(&kinds, round)).collect();
        assert_eq!(orders[0], kinds);
        for kind in kinds {
            let mut positions: Vec<usize> =
                orders.iter().map(|order| order.iter().position(|k| *k == kind).unwrap()).collect();
            positions.sort_unstable();
            assert_eq!(positions, (0..kinds.len()).collect::<Vec<_>>(), "{kind}");
        }
    }

    /// A run whose steady phase served `rps` requests per second at `steady_mib` of RSS.
    fn fake_run(allocator: AllocatorKind, round: usize, rps: f64, steady_mib: u64) -> SwapRun {
        let rss = steady_mib << 20;
        let sample = |t_secs, phase| PhaseSample { t_secs, phase, rss_bytes: rss };
        SwapRun {
            round,
            allocator,
            library: "libc".into(),
            workload: Some(WorkloadReport {
                requests: rps as u64,
                allocations: 0,
                bytes: 0,
                remote_frees: 0,
                elapsed_secs: 1.0,
                idle_requests: 0,
                steady_start_secs: 0.0,
                steady_end_secs: 1.0,
                freed_secs: 1.0,
                idle_end_secs: 2.0,
                rss_at_start: 1 << 20,
                rss_steady_end: rss,
                rss_after_free: rss,
                rss_after_idle: rss,
                rss_after_exit: rss,
                live: Vec::new(),
                samples: vec![sample(0.25, Phase::Steady), sample(0.75, Phase::Steady)],
            }),
            exit: ExitOutcome::Code(0),
            wall_secs: 2.0,
            rss: Vec::new(),
            peak_rss_bytes: rss,
            preload_mapped: None,
            stderr_tail: String::new(),
        }
    }

    #[test]
    fn an_ordering_is_claimed_only_where_the_ranges_over_three_rounds_do_not_overlap() {
        let figures = [
            (AllocatorKind::Glibc, [100.0, 110.0, 120.0], [30, 31, 32]),
            (AllocatorKind::Jemalloc, [130.0, 140.0, 150.0], [30, 40, 41]),
            (AllocatorKind::Mimalloc, [90.0, 115.0, 160.0], [20, 21, 22]),
        ];
        let runs = (1..=3)
            .flat_map(|round| {
                figures
                    .iter()
                    .map(move |(kind, rps, mib)| fake_run(*kind, round, rps[round - 1], mib[round - 1]))
            })
            .collect();
        let mut outcome = SwapOutcome {
            subject: Subject::Workload(Workload::quick()),
            rounds: 3,
            runs,
            missing: Vec::new(),
        };
        let verdicts = outcome.verdicts();
        let jemalloc = verdicts.iter().find(|v| v.starts_with("jemalloc")).unwrap();
        assert!(jemalloc.contains("faster than glibc"), "{jemalloc}");
        assert!(jemalloc.contains("steady RSS: ranges overlap: no ordering"), "{jemalloc}");
        let mimalloc = verdicts.iter().find(|v| v.starts_with("mimalloc")).unwrap();
        assert!(mimalloc.contains("requests: ranges overlap: no ordering"), "{mimalloc}");
        assert!(mimalloc.contains("lower steady RSS"), "{mimalloc}");
        let jemalloc =
            outcome.summaries().into_iter().find(|s| s.allocator == AllocatorKind::Jemalloc).unwrap();
        let ratio = jemalloc.throughput_vs_glibc.unwrap();
        assert_eq!((ratio.min, ratio.median, ratio.max), (1.25, 140.0 / 110.0, 1.3));

        outcome.rounds = 2;
        outcome.runs.retain(|run| run.round <= 2);
        assert!(
            outcome.verdicts().iter().all(|v| v.contains("no ordering claimed")),
            "{:?}",
            outcome.verdicts()
        );
    }

    #[test]
    fn medians_of_even_counts_average_the_middle_and_ranges_overlap_when_they_touch() {
        let spread = Spread::try_of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(spread, Spread { median: 2.5, min: 1.0, max: 4.0 });
        assert!(Spread::try_of(&[]).is_none());
        let low = Spread { median: 1.0, min: 0.5, max: 2.0 };
        let high = Spread { median: 3.0, min: 2.0, max: 4.0 };
        let higher = Spread { median: 5.0, min: 4.5, max: 6.0 };
        assert_eq!(Order::of(&high, &low, 3), Order::Overlap);
        assert_eq!(Order::of(&higher, &low, 3), Order::Higher);
        assert_eq!(Order::of(&low, &higher, 3), Order::Lower);
        assert_eq!(Order::of(&higher, &low, 2), Order::TooFewRounds);
    }
}
