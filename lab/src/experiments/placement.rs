//! Task 7: placement policies — first, next and best fit on one heap, one workload.
//!
//! allockit's boundary-tag [`allockit::freelist`] runs the three classic policies over one
//! core, and offers two orders for its free list (LIFO, the default, and FIFO). The lab
//! generates one seeded mixed trace ([`crate::trace`]: varied sizes, random free order)
//! and replays it on each policy, each heap on a chunk source of its own:
//!
//! * once with sampling: live bytes, footprint, free bytes and the largest free block,
//!   `samples` times over the run — fragmentation and footprint over time;
//! * `rounds` times timed, the policies alternating round by round so that background
//!   load falls on all of them alike. Each policy's throughput is the median round with
//!   the range over the rounds; its speed against first fit is the median and range of the
//!   per-round ratios (a round's policies ran back to back, under the same load). The
//!   verdict orders two policies only where their ranges do not overlap, over at least
//!   three rounds. The sampled run comes first and leaves the chunk source's pages
//!   committed, so the timed rounds measure the policy, not page faults.
//!
//! **Where the time goes.** Every round also counts the free-list entries the searches
//! looked at ([`allockit::freelist::FreeStats::searched_blocks`]; the same in every round,
//! since the replay is deterministic), the replaying thread's CPU time and how often the
//! kernel preempted it. Blocks searched per allocation is the work a policy does; CPU
//! nanoseconds per searched block is what each step cost, which is a cache question: each
//! step reads the header of a block that may lie anywhere in the heap. Both wall-clock and
//! CPU-time ratios are printed, so a reader can tell time lost to other processes (wall
//! only) from steps made slower by them (CPU time too).
//!
//! Peak footprint is the most the heap ever held from its chunk source; heap efficiency is
//! peak live bytes / peak footprint. The footprint moves by whole segments (256 KiB on the
//! default chunk source), so footprints within a segment of each other are a tie.
//! External fragmentation is 1 − largest free block / free bytes; it counts the free space
//! at the end of each segment too, which serves requests like any other free block.
//!
//! One trace, one seed: other seeds move the numbers by some percent (`--seed`). The
//! footprints and search counts are the same in every run; throughput, and the ratios of
//! throughputs, move with the machine's load (see the ranges).

use std::fmt::Write as _;
use std::sync::Arc;

use allockit::freelist::{FreeList, FreeOrder, Placement};
use allockit::source::{ChunkConfig, ChunkSource};

use crate::LabError;
use crate::chart::{Chart, ChartKind, LinePanel, Series};
use crate::report::{self, CsvFile, Outcome, Table};
use crate::trace::{self, HeapSample, Round, Slots, Spread, Trace, TraceShape};

/// A placement policy and the order of the free list it searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Which free block serves a request.
    pub placement: Placement,
    /// Where freed blocks join the free list.
    pub order: FreeOrder,
}

impl Policy {
    /// The policies compared: the three fits over the default LIFO list, and first fit over
    /// a FIFO list.
    pub const COMPARED: [Policy; 4] = [
        Policy { placement: Placement::FirstFit, order: FreeOrder::Lifo },
        Policy { placement: Placement::NextFit, order: FreeOrder::Lifo },
        Policy { placement: Placement::BestFit, order: FreeOrder::Lifo },
        Policy { placement: Placement::FirstFit, order: FreeOrder::Fifo },
    ];

    /// `first-fit`, `next-fit`, `best-fit`, `first-fit FIFO`.
    pub fn label(self) -> String {
        match self.order {
            FreeOrder::Lifo => self.placement.name().to_owned(),
            FreeOrder::Fifo => format!("{} FIFO", self.placement.name()),
        }
    }

    /// A heap with this policy on `source`.
    pub fn heap(self, source: Arc<ChunkSource>) -> FreeList {
        FreeList::with_source(source, self.placement).with_order(self.order)
    }
}

/// A chunk source for one contender: like the default, but it keeps every idle chunk
/// committed, so that a heap replayed again on it reuses warm pages.
pub fn warm_chunk_source() -> Result<Arc<ChunkSource>, LabError> {
    Ok(ChunkSource::new(ChunkConfig { retain_idle_bytes: 1 << 30, ..ChunkConfig::default() })?)
}

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementOptions {
    /// Size and seed of the one trace every policy replays.
    pub trace: TraceShape,
    /// Timed replays per policy (the median is reported).
    pub rounds: usize,
    /// Samples over the sampled replay.
    pub samples: usize,
}

impl PlacementOptions {
    /// Task 7 in full: 200,000 allocations, five timed rounds.
    pub fn full() -> Self {
        PlacementOptions { trace: TraceShape { allocations: 200_000, seed: 7 }, rounds: 5, samples: 200 }
    }

    /// The test-suite version: 10,000 allocations, three timed rounds (the fewest that
    /// may order two policies).
    pub fn quick() -> Self {
        PlacementOptions { trace: TraceShape { allocations: 10_000, seed: 7 }, rounds: 3, samples: 50 }
    }

    /// Refuses sizes that measure nothing, naming the flag.
    pub fn validate(&self) -> Result<(), LabError> {
        validate_trace(&self.trace, self.rounds)
    }
}

/// The checks `placement` and `size-classes` share.
pub(crate) fn validate_trace(trace: &TraceShape, rounds: usize) -> Result<(), LabError> {
    if trace.allocations < 100 {
        return Err(LabError::InvalidArgument {
            flag: "--allocations",
            reason: format!("{} is too few; need at least 100", trace.allocations),
        });
    }
    if u32::try_from(trace.allocations).is_err() {
        return Err(LabError::InvalidArgument {
            flag: "--allocations",
            reason: format!("{} exceeds {}", trace.allocations, u32::MAX),
        });
    }
    if rounds == 0 {
        return Err(LabError::InvalidArgument { flag: "--rounds", reason: "must be at least 1".into() });
    }
    Ok(())
}

/// One policy's results.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRun {
    /// The placement policy the free list ran with.
    pub policy: Policy,
    /// The sampled replay, from the start to the end of the trace.
    pub samples: Vec<HeapSample>,
    /// The most bytes the heap held from its source.
    pub peak_footprint_bytes: u64,
    /// Free-list entries the searches looked at during the sampled replay.
    pub searched_blocks: u64,
    /// The timed replays, in order.
    pub rounds: Vec<Round>,
}

impl PolicyRun {
    /// Operations per second: median and range over the rounds.
    pub fn throughput(&self, trace_ops: usize) -> Spread {
        Spread::of(&self.per_round(|round| round.ops_per_sec(trace_ops)))
    }

    /// Free-list entries looked at per allocation.
    pub fn searched_per_allocation(&self, allocations: usize) -> f64 {
        self.searched_blocks as f64 / allocations.max(1) as f64
    }

    /// CPU nanoseconds per free-list entry looked at, over the rounds: the cost of one
    /// step of the search (the rest of the replay's work included, so an upper bound).
    pub fn cpu_ns_per_searched_block(&self) -> Spread {
        Spread::of(
            &self
                .rounds
                .iter()
                .filter(|round| round.searched_blocks > 0)
                .map(|round| round.cpu_secs * 1e9 / round.searched_blocks as f64)
                .collect::<Vec<_>>(),
        )
    }

    /// The share of each round's wall-clock time the thread was on a CPU.
    pub fn cpu_share(&self) -> Spread {
        Spread::of(&self.per_round(Round::cpu_share))
    }

    /// Times the kernel preempted the replay, per round.
    pub fn preemptions(&self) -> Spread {
        Spread::of(&self.per_round(|round| round.preemptions as f64))
    }

    fn per_round(&self, figure: impl Fn(&Round) -> f64) -> Vec<f64> {
        self.rounds.iter().map(figure).collect()
    }

    /// Mean external fragmentation over the samples taken while blocks were live.
    pub fn mean_external_fragmentation(&self) -> f64 {
        self.mean_while_live(HeapSample::external_fragmentation)
    }

    /// Mean number of free blocks over the samples taken while blocks were live: the length
    /// of the list a search may walk.
    pub fn mean_free_blocks(&self) -> f64 {
        self.mean_while_live(|s| s.free_blocks as f64)
    }

    fn mean_while_live(&self, value: impl Fn(&HeapSample) -> f64) -> f64 {
        let live: Vec<f64> = self.samples.iter().filter(|s| s.live_bytes > 0).map(value).collect();
        if live.is_empty() { 0.0 } else { live.iter().sum::<f64>() / live.len() as f64 }
    }
}

/// Task 7's result.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementOutcome {
    /// The trace shape, rounds and sample count of the run (for the report's header).
    pub options: PlacementOptions,
    /// Operations in the trace.
    pub trace_ops: usize,
    /// The most bytes live at once in the trace.
    pub peak_live_bytes: u64,
    /// One entry per [`Policy::COMPARED`], in order.
    pub runs: Vec<PolicyRun>,
}

impl PlacementOutcome {
    /// The run of `policy`.
    pub fn run_of(&self, policy: Policy) -> Option<&PolicyRun> {
        self.runs.iter().find(|run| run.policy == policy)
    }

    fn first_fit(&self) -> Option<&PolicyRun> {
        self.runs.first()
    }

    /// How many times first fit's time `run` took, round by round (wall clock): median
    /// and range of the per-round ratios.
    pub fn speed_vs_first_fit(&self, run: &PolicyRun) -> Spread {
        self.ratio_to_first_fit(run, |round| round.wall_secs)
    }

    /// The same ratio on the replaying thread's CPU time: what is left when the time the
    /// machine gave to other processes is taken out.
    pub fn cpu_speed_vs_first_fit(&self, run: &PolicyRun) -> Spread {
        self.ratio_to_first_fit(run, |round| round.cpu_secs)
    }

    fn ratio_to_first_fit(&self, run: &PolicyRun, secs: impl Fn(&Round) -> f64) -> Spread {
        let Some(first) = self.first_fit() else { return Spread::default() };
        let first_secs: Vec<f64> = first.rounds.iter().map(&secs).collect();
        let run_secs: Vec<f64> = run.rounds.iter().map(&secs).collect();
        Spread::of(&trace::per_round_ratios(&first_secs, &run_secs))
    }

    /// One verdict line per pair of policies: an ordering only where the throughput
    /// ranges do not overlap.
    pub fn verdicts(&self) -> Vec<String> {
        let rounds = self.options.rounds;
        let mut lines = Vec::new();
        for (i, a) in self.runs.iter().enumerate() {
            for b in &self.runs[i + 1..] {
                lines.push(trace::throughput_verdict(
                    (&a.policy.label(), &a.throughput(self.trace_ops)),
                    (&b.policy.label(), &b.throughput(self.trace_ops)),
                    rounds,
                ));
            }
        }
        lines
    }

    /// Peak live bytes / peak footprint of a run.
    pub fn efficiency(&self, run: &PolicyRun) -> f64 {
        self.peak_live_bytes as f64 / run.peak_footprint_bytes.max(1) as f64
    }
}

/// Generates the trace and runs every policy on it.
pub fn run(options: &PlacementOptions) -> Result<PlacementOutcome, LabError> {
    options.validate()?;
    let trace = trace::generate(options.trace);
    let mut slots = Slots::for_trace(&trace);
    let mut runs = Vec::new();
    let mut sources = Vec::new();
    for policy in Policy::COMPARED {
        let source = warm_chunk_source()?;
        let heap = policy.heap(Arc::clone(&source));
        let samples = trace::replay_sampled(&heap, &trace, &mut slots, options.samples, &policy.label())?;
        let free = heap.free_stats();
        runs.push(PolicyRun {
            policy,
            samples,
            peak_footprint_bytes: free.peak_footprint_bytes as u64,
            searched_blocks: free.searched_blocks,
            rounds: Vec::new(),
        });
        sources.push(source);
    }
    time_rounds(&trace, &mut slots, options.rounds, &mut runs, &sources)?;
    Ok(PlacementOutcome {
        options: *options,
        trace_ops: trace.ops.len(),
        peak_live_bytes: trace.peak_live_bytes,
        runs,
    })
}

fn time_rounds(
    trace: &Trace,
    slots: &mut Slots,
    rounds: usize,
    runs: &mut [PolicyRun],
    sources: &[Arc<ChunkSource>],
) -> Result<(), LabError> {
    for _ in 0..rounds {
        for (run, source) in runs.iter_mut().zip(sources) {
            let heap = run.policy.heap(Arc::clone(source));
            run.rounds.push(trace::replay_timed(&heap, trace, slots, &run.policy.label())?);
        }
    }
    Ok(())
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

impl Outcome for PlacementOutcome {
    fn slug(&self) -> &'static str {
        "placement"
    }

    fn title(&self) -> String {
        "Task 7: placement policies (first, next, best fit)".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let Some(first) = self.first_fit() else { return Vec::new() };
        let allocations = self.options.trace.allocations;
        let mut findings = vec![format!(
            "one trace (seed {}): {} operations, {} live at the peak; {} alternating timed rounds",
            self.options.trace.seed,
            self.trace_ops,
            report::bytes(self.peak_live_bytes as f64),
            self.options.rounds,
        )];
        for run in &self.runs {
            findings.push(format!(
                "{}: peak footprint {} ({} heap efficiency, {} first fit's), mean external fragmentation {}, \
                 {:.0} free blocks on average, {:.1} blocks searched per allocation ({} first fit's), \
                 {} M operations/s, {} first fit's speed (CPU time: {})",
                run.policy.label(),
                report::bytes(run.peak_footprint_bytes as f64),
                percent(self.efficiency(run)),
                report::ratio(run.peak_footprint_bytes as f64 / first.peak_footprint_bytes.max(1) as f64),
                percent(run.mean_external_fragmentation()),
                run.mean_free_blocks(),
                run.searched_per_allocation(allocations),
                report::ratio(run.searched_blocks as f64 / first.searched_blocks.max(1) as f64),
                run.throughput(self.trace_ops).scaled(1e-6).show(2),
                self.speed_vs_first_fit(run).show_ratio(),
                self.cpu_speed_vs_first_fit(run).show_ratio(),
            ));
        }
        findings.extend(self.verdicts());
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let Some(first) = self.first_fit() else { return Vec::new() };
        let mut memory = Table::new(
            format!(
                "Memory: {} operations (seed {}), peak live {}",
                self.trace_ops,
                self.options.trace.seed,
                report::bytes(self.peak_live_bytes as f64),
            ),
            &[
                "policy",
                "peak footprint",
                "efficiency",
                "footprint vs first fit",
                "mean ext. frag.",
                "mean free blocks",
            ],
        );
        let mut time = Table::new(
            format!(
                "Time: median (min–max) over {} alternating rounds; speed ratios are per-round ratios to first fit",
                self.options.rounds
            ),
            &[
                "policy",
                "searched/alloc",
                "M ops/s",
                "speed vs first fit",
                "CPU-time speed vs first fit",
                "CPU ns/searched block",
                "CPU share",
                "preemptions/round",
            ],
        );
        let allocations = self.options.trace.allocations;
        for run in &self.runs {
            memory.push(vec![
                run.policy.label(),
                report::bytes(run.peak_footprint_bytes as f64),
                percent(self.efficiency(run)),
                report::ratio(run.peak_footprint_bytes as f64 / first.peak_footprint_bytes.max(1) as f64),
                percent(run.mean_external_fragmentation()),
                format!("{:.0}", run.mean_free_blocks()),
            ]);
            time.push(vec![
                run.policy.label(),
                format!("{:.1}", run.searched_per_allocation(allocations)),
                run.throughput(self.trace_ops).scaled(1e-6).show(2),
                self.speed_vs_first_fit(run).show_ratio(),
                self.cpu_speed_vs_first_fit(run).show_ratio(),
                run.cpu_ns_per_searched_block().show(2),
                run.cpu_share().scaled(100.0).show(0),
                run.preemptions().show(0),
            ]);
        }
        vec![memory, time]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut rounds = Table::new(
            "",
            &[
                "policy",
                "round",
                "operations",
                "seconds",
                "ops_per_sec",
                "cpu_seconds",
                "preemptions",
                "searched_blocks",
            ],
        );
        let mut samples = Table::new(
            "",
            &[
                "policy",
                "operation",
                "live_bytes",
                "footprint_bytes",
                "free_bytes",
                "free_blocks",
                "largest_free_bytes",
                "external_fragmentation",
            ],
        );
        for run in &self.runs {
            for (index, round) in run.rounds.iter().enumerate() {
                rounds.push(vec![
                    run.policy.label(),
                    index.to_string(),
                    self.trace_ops.to_string(),
                    format!("{:.6}", round.wall_secs),
                    format!("{:.0}", round.ops_per_sec(self.trace_ops)),
                    format!("{:.6}", round.cpu_secs),
                    round.preemptions.to_string(),
                    round.searched_blocks.to_string(),
                ]);
            }
            for s in &run.samples {
                samples.push(vec![
                    run.policy.label(),
                    s.operation.to_string(),
                    s.live_bytes.to_string(),
                    s.footprint_bytes.to_string(),
                    s.free_bytes.to_string(),
                    s.free_blocks.to_string(),
                    s.largest_free.to_string(),
                    format!("{:.6}", s.external_fragmentation()),
                ]);
            }
        }
        vec![
            CsvFile { file_name: "placement.csv".into(), table: rounds },
            CsvFile { file_name: "placement-samples.csv".into(), table: samples },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let mut footprint: Vec<Series> = self
            .runs
            .iter()
            .map(|run| Series {
                name: run.policy.label(),
                points: run.samples.iter().map(|s| (s.operation as f64, mib(s.footprint_bytes))).collect(),
            })
            .collect();
        if let Some(run) = self.runs.first() {
            footprint.push(Series {
                name: "live bytes".into(),
                points: run.samples.iter().map(|s| (s.operation as f64, mib(s.live_bytes))).collect(),
            });
        }
        let fragmentation = self
            .runs
            .iter()
            .map(|run| Series {
                name: run.policy.label(),
                points: run
                    .samples
                    .iter()
                    .map(|s| (s.operation as f64, 100.0 * s.external_fragmentation()))
                    .collect(),
            })
            .collect();
        vec![Chart {
            file_name: "placement.png".into(),
            caption: "Footprint and external fragmentation over the trace, per placement policy".into(),
            kind: ChartKind::Lines(vec![
                LinePanel {
                    title: "Heap footprint vs live bytes".into(),
                    x_label: "operations".into(),
                    y_label: "MiB".into(),
                    series: footprint,
                },
                LinePanel {
                    title: "External fragmentation (1 - largest free / free)".into(),
                    x_label: "operations".into(),
                    y_label: "%".into(),
                    series: fragmentation,
                },
            ]),
        }]
    }

    fn explanation(&self) -> String {
        let mut text = String::from("### First, next and best fit\n\n");
        let _ = write!(
            text,
            "All four heaps are the same boundary-tag free list; only the choice of free block \
             differs. **First fit** takes the first block on the list that is large enough. Over a \
             LIFO list (freed blocks pushed at the head) that is the most recently freed block \
             that fits: cheap, warm in cache, but a small request readily splits a large, recently \
             freed block, and the leftovers crowd the front of the list. **Next fit** resumes each \
             search where the last one stopped (a roving pointer): it does not rescan the front \
             of the list each time, but allocations spread over the whole heap, so long-lived blocks land everywhere and \
             pin it. **Best fit** walks the whole list for the smallest block that fits \
             (stopping early only at an exact fit): it splits least and keeps large blocks whole \
             for large requests, which tends to keep its footprint lowest. **First fit over a \
             FIFO list** (freed blocks appended at the tail) tries the oldest free blocks first; \
             Johnstone and Wilson (1998) found it about as tight as address-ordered first fit, \
             with O(1) insertion.\n\n\
             The time of a search is the number of free blocks it looks at times the cost of \
             looking at one, and the two columns of the time table say which of the two differs. \
             Blocks searched per allocation is fixed by the trace and the policy (the same in \
             every round and every run). The cost per block is not: each step reads the header \
             and links of a block that may lie anywhere in the heap, so it costs a cache hit \
             when the list is short and compact and a cache or TLB miss when it is long and \
             spread over a large footprint. That cost depends on what else the machine runs: \
             another process on the same core evicts the list between two time slices, and a \
             spread-out list suffers from it more than a compact one. This is why the speed \
             ratios move from run to run on a shared machine while the search counts do not. \
             The CPU-time ratio leaves out the time the kernel gave to other processes (the \
             CPU share column); what moves it is the cost per step.\n\n\
             On this trace of {ops} operations the footprint column is each policy's memory \
             cost and the speed column its time cost, both relative to LIFO first fit in the \
             same rounds. Every one of them is linear in the number of free blocks: the \
             segregated heap of task 8 removes the search altogether.\n",
            ops = self.trace_ops,
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_labelled_by_fit_and_list_order() {
        let labels: Vec<String> = Policy::COMPARED.iter().map(|p| p.label()).collect();
        assert_eq!(labels, ["first-fit", "next-fit", "best-fit", "first-fit FIFO"]);
    }

    #[test]
    fn too_small_a_trace_or_no_rounds_is_refused_naming_the_flag() {
        let mut options = PlacementOptions::quick();
        options.trace.allocations = 10;
        assert!(run(&options).unwrap_err().to_string().contains("--allocations"));
        let options = PlacementOptions { rounds: 0, ..PlacementOptions::quick() };
        assert!(run(&options).unwrap_err().to_string().contains("--rounds"));
    }
}
