//! Task 8: size classes vs one free list — what segregated fits buy in speed, and what they
//! cost in internal fragmentation, class by class.
//!
//! The trace of task 7 ([`crate::trace`], same shape and seed by default) runs on two
//! heaps, each on a chunk source of its own:
//!
//! * allockit's boundary-tag [`allockit::freelist`]: one list of free blocks of every size,
//!   searched. Twice: LIFO first fit, its default, and best fit, which on this trace
//!   keeps far fewer free blocks, so that each step of its search is cheaper (task 7);
//! * [`allockit::sizeclass`]: 40 classes, one free list per class, the class found by
//!   arithmetic, O(1) allocation and free; requests above 16 KiB take a large path (a
//!   best-fit free list).
//!
//! Each heap replays the trace once (which also warms its chunk source), then `rounds`
//! more times timed, the heaps alternating round by round. Throughput is the median round
//! with the range over the rounds; a speedup is the median and range of the per-round
//! ratios (the heaps of a round ran back to back, under the same load), on wall-clock and
//! on CPU time; the verdict orders two heaps only where their ranges do not overlap. Each
//! round also counts the free-list entries the heap's searches looked at: thousands per
//! allocation on the single list, none for a small request on the size-class heap.
//!
//! Internal fragmentation comes from the size-class heap's own counters
//! ([`allockit::sizeclass::ClassStats`]): per class, the bytes the requests asked for and
//! the bytes handed out (requests × class size). Each class's bound is its worst case, a
//! request one byte above the class below; the documented bound is under 20% of the block
//! for every request above 32 bytes.

use std::fmt::Write as _;
use std::sync::Arc;

use allockit::freelist::{FreeList, Placement};
use allockit::sizeclass::{CLASS_SIZES, SizeClass};
use allockit::source::ChunkSource;

use super::placement::{validate_trace, warm_chunk_source};
use crate::LabError;
use crate::chart::{Bar, Chart, ChartKind};
use crate::report::{self, CsvFile, Outcome, Table};
use crate::trace::{self, Round, Slots, Spread, Trace, TraceHeap, TraceShape};

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeClassesOptions {
    /// Size and seed of the trace (task 7's by default, so the two tasks compare).
    pub trace: TraceShape,
    /// Timed replays per heap (the median is reported).
    pub rounds: usize,
}

impl SizeClassesOptions {
    /// Task 8 in full: task 7's trace, five timed rounds.
    pub fn full() -> Self {
        SizeClassesOptions { trace: TraceShape { allocations: 200_000, seed: 7 }, rounds: 5 }
    }

    /// The test-suite version: 10,000 allocations, three timed rounds (the fewest that
    /// may order two heaps).
    pub fn quick() -> Self {
        SizeClassesOptions { trace: TraceShape { allocations: 10_000, seed: 7 }, rounds: 3 }
    }
}

/// The documented bound: no request above this many bytes wastes a fifth of its block.
pub const BOUND_ABOVE_BYTES: usize = 32;

/// The documented bound's share of the block, for requests above [`BOUND_ABOVE_BYTES`].
pub const DOCUMENTED_BOUND: f64 = 0.2;

/// The largest share of a block of class `class` that a request (alignment 8 or less)
/// can leave unused: a request one byte above the class below.
pub fn worst_case_waste(class: usize) -> f64 {
    let size = CLASS_SIZES[class];
    let smallest = if class == 0 { 1 } else { CLASS_SIZES[class - 1] + 1 };
    (size - smallest) as f64 / size as f64
}

/// What one class handed out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassWaste {
    /// Bytes per block.
    pub class_size: usize,
    /// Allocations served.
    pub requests: u64,
    /// Bytes those allocations asked for.
    pub requested_bytes: u64,
    /// Bytes handed out (requests × class size).
    pub handed_out_bytes: u64,
    /// The class's worst case ([`worst_case_waste`]).
    pub worst_case: f64,
}

impl ClassWaste {
    /// Internal fragmentation: the share of handed-out bytes nobody asked for.
    pub fn waste(&self) -> f64 {
        if self.handed_out_bytes == 0 {
            0.0
        } else {
            1.0 - self.requested_bytes as f64 / self.handed_out_bytes as f64
        }
    }
}

/// The heaps compared: segregated size classes against one general free list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// The free list, LIFO first fit (its default).
    FreeListFirstFit,
    /// The free list, best fit: on this trace it keeps far fewer free blocks than first
    /// fit, in less memory, so each step of its search is cheaper (task 7).
    FreeListBestFit,
    /// The size-class heap.
    SizeClass,
}

impl Contender {
    /// Every contender, the free list's default first.
    pub const ALL: [Contender; 3] =
        [Contender::FreeListFirstFit, Contender::FreeListBestFit, Contender::SizeClass];

    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Contender::FreeListFirstFit => "freelist first-fit",
            Contender::FreeListBestFit => "freelist best-fit",
            Contender::SizeClass => "sizeclass",
        }
    }

    /// The free list's placement policy; `None` for the size-class heap.
    fn placement(self) -> Option<Placement> {
        match self {
            Contender::FreeListFirstFit => Some(Placement::FirstFit),
            Contender::FreeListBestFit => Some(Placement::BestFit),
            Contender::SizeClass => None,
        }
    }

    /// Replays `trace` once on a fresh heap of this kind over `source`, timed.
    fn replay_timed(
        self,
        source: &Arc<ChunkSource>,
        trace: &Trace,
        slots: &mut Slots,
    ) -> Result<Round, LabError> {
        let source = Arc::clone(source);
        match self.placement() {
            Some(placement) => {
                trace::replay_timed(&FreeList::with_source(source, placement), trace, slots, self.label())
            }
            None => trace::replay_timed(&SizeClass::with_source(source), trace, slots, self.label()),
        }
    }
}

/// One heap's speed and footprint.
#[derive(Debug, Clone, PartialEq)]
pub struct HeapTiming {
    /// Which heap replayed the trace.
    pub contender: Contender,
    /// The timed replays, in order.
    pub rounds: Vec<Round>,
    /// The most bytes the heap held from its source during the first replay.
    pub peak_footprint_bytes: u64,
    /// Free-list entries the heap's searches looked at during the first replay.
    pub searched_blocks: u64,
}

impl HeapTiming {
    /// Operations per second: median and range over the rounds.
    pub fn throughput(&self, trace_ops: usize) -> Spread {
        Spread::of(&self.rounds.iter().map(|round| round.ops_per_sec(trace_ops)).collect::<Vec<_>>())
    }

    /// The share of each round's wall-clock time the thread was on a CPU.
    pub fn cpu_share(&self) -> Spread {
        Spread::of(&self.rounds.iter().map(Round::cpu_share).collect::<Vec<_>>())
    }
}

/// Task 8's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeClassesOutcome {
    /// The trace shape and rounds of the run (for the report's header).
    pub options: SizeClassesOptions,
    /// Operations in the trace.
    pub trace_ops: usize,
    /// The most bytes live at once in the trace.
    pub peak_live_bytes: u64,
    /// One entry per [`Contender::ALL`], in order.
    pub heaps: Vec<HeapTiming>,
    /// Every class that served at least one request, smallest first.
    pub classes: Vec<ClassWaste>,
    /// Allocations that took the large path.
    pub large_requests: u64,
}

impl SizeClassesOutcome {
    /// The timing of `contender`.
    pub fn heap(&self, contender: Contender) -> Option<&HeapTiming> {
        self.heaps.iter().find(|h| h.contender == contender)
    }

    /// How many times faster `fast` replayed the trace than `slow`, round by round:
    /// median and range of the per-round ratios, on the time `secs` reads from a round.
    fn ratio(&self, slow: Contender, fast: Contender, secs: impl Fn(&Round) -> f64) -> Spread {
        match (self.heap(slow), self.heap(fast)) {
            (Some(slow), Some(fast)) => {
                let slow_secs: Vec<f64> = slow.rounds.iter().map(&secs).collect();
                let fast_secs: Vec<f64> = fast.rounds.iter().map(&secs).collect();
                Spread::of(&trace::per_round_ratios(&slow_secs, &fast_secs))
            }
            _ => Spread::default(),
        }
    }

    /// How many times faster the size-class heap replayed the trace than `free_list`
    /// (wall clock, per-round ratios).
    pub fn speedup_over(&self, free_list: Contender) -> Spread {
        self.ratio(free_list, Contender::SizeClass, |round| round.wall_secs)
    }

    /// `contender`'s speed against the free list's first fit (wall clock, per round).
    pub fn speed_vs_first_fit(&self, contender: Contender) -> Spread {
        self.ratio(Contender::FreeListFirstFit, contender, |round| round.wall_secs)
    }

    /// The same on the replaying thread's CPU time.
    pub fn cpu_speed_vs_first_fit(&self, contender: Contender) -> Spread {
        self.ratio(Contender::FreeListFirstFit, contender, |round| round.cpu_secs)
    }

    /// Free-list entries looked at per allocation by `timing`'s heap.
    pub fn searched_per_allocation(&self, timing: &HeapTiming) -> f64 {
        timing.searched_blocks as f64 / self.options.trace.allocations.max(1) as f64
    }

    /// One verdict line per pair of heaps: an ordering only where the throughput ranges
    /// do not overlap.
    pub fn verdicts(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, a) in self.heaps.iter().enumerate() {
            for b in &self.heaps[i + 1..] {
                lines.push(trace::throughput_verdict(
                    (a.contender.label(), &a.throughput(self.trace_ops)),
                    (b.contender.label(), &b.throughput(self.trace_ops)),
                    self.options.rounds,
                ));
            }
        }
        lines
    }

    /// Internal fragmentation over every small allocation.
    pub fn overall_waste(&self) -> f64 {
        let requested: u64 = self.classes.iter().map(|c| c.requested_bytes).sum();
        let handed_out: u64 = self.classes.iter().map(|c| c.handed_out_bytes).sum();
        if handed_out == 0 { 0.0 } else { 1.0 - requested as f64 / handed_out as f64 }
    }
}

/// Generates the trace and runs every contender on it.
pub fn run(options: &SizeClassesOptions) -> Result<SizeClassesOutcome, LabError> {
    validate_trace(&options.trace, options.rounds)?;
    let trace = trace::generate(options.trace);
    let mut slots = Slots::for_trace(&trace);
    let sources = Contender::ALL.iter().map(|_| warm_chunk_source()).collect::<Result<Vec<_>, _>>()?;
    let mut heaps = Vec::new();
    let mut classes = Vec::new();
    let mut large_requests = 0;
    for (contender, source) in Contender::ALL.into_iter().zip(&sources) {
        let (peak_footprint_bytes, searched_blocks) = match contender.placement() {
            Some(placement) => {
                let heap = FreeList::with_source(Arc::clone(source), placement);
                trace::replay_timed(&heap, &trace, &mut slots, contender.label())?;
                let free = heap.free_stats();
                (free.peak_footprint_bytes as u64, free.searched_blocks)
            }
            None => {
                let heap = SizeClass::with_source(Arc::clone(source));
                let samples = trace::replay_sampled(&heap, &trace, &mut slots, 200, contender.label())?;
                classes = class_waste(&heap);
                large_requests = heap.large().stats().allocations;
                (samples.iter().map(|s| s.footprint_bytes).max().unwrap_or(0), heap.searched_blocks())
            }
        };
        heaps.push(HeapTiming { contender, rounds: Vec::new(), peak_footprint_bytes, searched_blocks });
    }
    for _ in 0..options.rounds {
        for (heap, source) in heaps.iter_mut().zip(&sources) {
            heap.rounds.push(heap.contender.replay_timed(source, &trace, &mut slots)?);
        }
    }
    Ok(SizeClassesOutcome {
        options: *options,
        trace_ops: trace.ops.len(),
        peak_live_bytes: trace.peak_live_bytes,
        heaps,
        classes,
        large_requests,
    })
}

/// The classes of `heap` that served at least one request.
fn class_waste(heap: &SizeClass) -> Vec<ClassWaste> {
    heap.class_stats()
        .iter()
        .enumerate()
        .filter(|(_, class)| class.requests > 0)
        .map(|(i, class)| ClassWaste {
            class_size: class.class_size,
            requests: class.requests,
            requested_bytes: class.requested_bytes,
            handed_out_bytes: class.handed_out_bytes(),
            worst_case: worst_case_waste(i),
        })
        .collect()
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

impl Outcome for SizeClassesOutcome {
    fn slug(&self) -> &'static str {
        "size-classes"
    }

    fn title(&self) -> String {
        "Task 8: size classes vs one free list".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let worst = self.classes.iter().max_by(|a, b| a.waste().total_cmp(&b.waste()));
        let mut findings: Vec<String> = self
            .heaps
            .iter()
            .map(|heap| {
                format!(
                    "{}: {} M operations/s, {:.2} blocks searched per allocation, peak footprint {} for {} live \
                     at the peak",
                    heap.contender.label(),
                    heap.throughput(self.trace_ops).scaled(1e-6).show(2),
                    self.searched_per_allocation(heap),
                    report::bytes(heap.peak_footprint_bytes as f64),
                    report::bytes(self.peak_live_bytes as f64),
                )
            })
            .collect();
        findings.push(format!(
            "sizeclass was {} faster than the free list's first fit and {} faster than its best fit \
             (the trace of task 7, {} operations, seed {}; median (range) of per-round ratios over {} \
             alternating rounds)",
            self.speedup_over(Contender::FreeListFirstFit).show_ratio(),
            self.speedup_over(Contender::FreeListBestFit).show_ratio(),
            self.trace_ops,
            self.options.trace.seed,
            self.options.rounds,
        ));
        findings.push(format!(
            "internal fragmentation over all small requests: {} of the bytes handed out",
            percent(self.overall_waste())
        ));
        if let Some(worst) = worst {
            findings.push(format!(
                "the most wasteful class was {} B at {} (its worst case {}); {} requests above 16 KiB took the \
                 large path",
                worst.class_size,
                percent(worst.waste()),
                percent(worst.worst_case),
                self.large_requests,
            ));
        }
        findings.extend(self.verdicts());
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let mut heaps = Table::new(
            format!(
                "The trace of task 7: {} operations (seed {}); median (min–max) over {} alternating rounds, \
                 speed ratios per round",
                self.trace_ops, self.options.trace.seed, self.options.rounds
            ),
            &[
                "heap",
                "searched/alloc",
                "M ops/s",
                "speed vs first fit",
                "CPU-time speed vs first fit",
                "CPU share",
                "peak footprint",
                "efficiency",
            ],
        );
        for timing in &self.heaps {
            heaps.push(vec![
                timing.contender.label().to_owned(),
                format!("{:.2}", self.searched_per_allocation(timing)),
                timing.throughput(self.trace_ops).scaled(1e-6).show(2),
                self.speed_vs_first_fit(timing.contender).show_ratio(),
                self.cpu_speed_vs_first_fit(timing.contender).show_ratio(),
                timing.cpu_share().scaled(100.0).show(0),
                report::bytes(timing.peak_footprint_bytes as f64),
                percent(self.peak_live_bytes as f64 / timing.peak_footprint_bytes.max(1) as f64),
            ]);
        }
        let mut classes = Table::new(
            "Internal fragmentation per size class (requested vs handed-out bytes)",
            &["class", "requests", "requested", "handed out", "waste", "worst case"],
        );
        for class in &self.classes {
            classes.push(vec![
                format!("{} B", class.class_size),
                class.requests.to_string(),
                report::bytes(class.requested_bytes as f64),
                report::bytes(class.handed_out_bytes as f64),
                percent(class.waste()),
                percent(class.worst_case),
            ]);
        }
        vec![heaps, classes]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut rounds = Table::new(
            "",
            &["heap", "round", "operations", "seconds", "cpu_seconds", "preemptions", "searched_blocks"],
        );
        for timing in &self.heaps {
            for (index, round) in timing.rounds.iter().enumerate() {
                rounds.push(vec![
                    timing.contender.label().to_owned(),
                    index.to_string(),
                    self.trace_ops.to_string(),
                    format!("{:.6}", round.wall_secs),
                    format!("{:.6}", round.cpu_secs),
                    round.preemptions.to_string(),
                    round.searched_blocks.to_string(),
                ]);
            }
        }
        let mut classes = Table::new(
            "",
            &["class_size", "requests", "requested_bytes", "handed_out_bytes", "waste", "worst_case_waste"],
        );
        for class in &self.classes {
            classes.push(vec![
                class.class_size.to_string(),
                class.requests.to_string(),
                class.requested_bytes.to_string(),
                class.handed_out_bytes.to_string(),
                format!("{:.6}", class.waste()),
                format!("{:.6}", class.worst_case),
            ]);
        }
        vec![
            CsvFile { file_name: "size-classes.csv".into(), table: classes },
            CsvFile { file_name: "size-classes-rounds.csv".into(), table: rounds },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        vec![
            Chart {
                file_name: "size-classes.png".into(),
                caption: "Internal fragmentation per size class on the trace".into(),
                kind: ChartKind::Bars {
                    title: "Waste per size class (% of the bytes handed out)".into(),
                    y_label: "% wasted".into(),
                    bars: self
                        .classes
                        .iter()
                        .map(|c| Bar { label: c.class_size.to_string(), value: 100.0 * c.waste() })
                        .collect(),
                    log_y: false,
                },
            },
            Chart {
                file_name: "size-classes-throughput.png".into(),
                caption: "Throughput on the same trace, median round".into(),
                kind: ChartKind::Bars {
                    title: "Million operations per second (same trace, same run; log scale)".into(),
                    y_label: "M ops/s".into(),
                    bars: self
                        .heaps
                        .iter()
                        .map(|h| Bar {
                            label: h.contender.label().to_owned(),
                            value: h.throughput(self.trace_ops).median / 1e6,
                        })
                        .collect(),
                    log_y: true,
                },
            },
        ]
    }

    fn explanation(&self) -> String {
        let mut text = String::from("### Why segregated lists supersede linear scans\n\n");
        let _ = write!(
            text,
            "A single free list must be *searched*: first fit walks until a block is large enough, \
             best fit walks all of it, and the walk grows with the number of free blocks — \
             fragmentation makes every allocation slower. A size-class heap never searches: the \
             request's size picks its class by arithmetic (a leading-zero count, a shift, an add), \
             the class's list holds only blocks of exactly that size, so its head always fits, and \
             a free pushes the block back without looking at its neighbours. Both operations are a \
             handful of instructions whatever the heap holds, which is why jemalloc's bins, \
             tcmalloc's size classes and mimalloc's pages all work this way for small objects.\n\n\
             The price is internal fragmentation: a request is rounded up to its class. With four \
             classes per doubling, a request one byte above a class boundary wastes up to a fifth \
             of its block (the \"worst case\" column); requests spread over a class waste about \
             half of that. Over this trace the small requests wasted {} of the bytes handed out. \
             The other price is that a class keeps its blocks: memory freed by one class cannot \
             serve another, so the footprint also holds partly used slabs of every class the \
             program ever used.\n\n\
             **Reading the speedup.** The searched/alloc column is the work each heap does per \
             allocation and does not change from run to run; the speedup does. A size-class \
             round lasts a few milliseconds, about one time slice of the scheduler, so on a \
             loaded machine one slice given to another process moves its wall-clock time by \
             tens of percent: the wall-clock range is wide. The CPU-time ratio leaves that out \
             and is steadier, but it still moves with the cost of each step of the free list's \
             search, which rises when other processes on the same core evict its blocks from \
             the caches (task 7).\n",
            percent(self.overall_waste()),
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_of_a_class_is_one_byte_above_the_class_below() {
        assert_eq!(worst_case_waste(0), 7.0 / 8.0);
        assert_eq!(worst_case_waste(8), (80.0 - 65.0) / 80.0);
        let first_above = CLASS_SIZES.iter().position(|&size| size > BOUND_ABOVE_BYTES).unwrap_or(0);
        assert_eq!(CLASS_SIZES[first_above], 40);
        assert!((first_above..CLASS_SIZES.len()).all(|class| worst_case_waste(class) < DOCUMENTED_BOUND));
        assert!(worst_case_waste(first_above - 1) > DOCUMENTED_BOUND, "25 bytes in the 32-byte class");
    }

    #[test]
    fn no_rounds_is_refused_naming_the_flag() {
        let options = SizeClassesOptions { rounds: 0, ..SizeClassesOptions::quick() };
        assert!(run(&options).unwrap_err().to_string().contains("--rounds"));
    }
}
