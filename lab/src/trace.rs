//! The mixed allocation trace of tasks 7 and 8, and its replay on allockit's heaps.
//!
//! A trace is generated once from a seed and replayed, operation for operation, on every
//! heap compared, so that the heaps see the same requests and random-number generation
//! stays outside the timed loop. The mix is meant to look like a program's heap, not a
//! benchmark's:
//!
//! * **sizes**, log-uniform within four bands: 55% 8–128 B (small structs, strings),
//!   30% 129 B–1 KiB, 12% 1–8 KiB (buffers), 3% 8–32 KiB (large buffers; above 16 KiB
//!   they take [`allockit::sizeclass`]'s large path);
//! * **lifetimes**, counted in allocations: 70% short (freed within the next 100
//!   allocations: temporaries), 25% medium (within the next 1/20 of the run: sessions,
//!   caches), 5% long (from a quarter of the run to twice its length: most survive to the
//!   end, as configuration and warm caches do);
//! * **free order**: by time of death, which is random with respect to allocation order;
//!   whatever is live at the end is freed in random order.
//!
//! Every allocation asks for alignment 8. The replay writes the first and the last byte of
//! every block it gets (memory handed out is used) and checks nothing else: the heaps'
//! own tests check their invariants. Generation is O(n log n) (a heap of deaths); a
//! replay is n operations on the heap under test.

use std::alloc::Layout;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ptr::NonNull;
use std::time::Instant;

use allockit::freelist::FreeList;
use allockit::heap::Heap;
use allockit::sizeclass::SizeClass;
use allockit::source::SpanSource;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::LabError;

/// The size and seed of a generated trace: the same shape gives the same operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceShape {
    /// Allocations in the trace (each is freed once, so the trace has twice as many
    /// operations).
    pub allocations: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

/// The alignment every allocation of the trace asks for.
pub const ALIGN: usize = 8;

/// One step of a trace. A slot names a block from its allocation to its free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Allocate `size` bytes into `slot`.
    Alloc {
        /// The index the heap under test keeps the block's pointer at until its free.
        slot: u32,
        /// Bytes requested.
        size: u32,
    },
    /// Free the block in `slot` (allocated with `size` bytes).
    Free {
        /// The index of the block to free (filled by an earlier `Alloc`).
        slot: u32,
        /// Bytes it was allocated with.
        size: u32,
    },
}

/// A generated trace: every allocation freed exactly once, in an order that leaves holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// What it was generated from.
    pub shape: TraceShape,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// Slots used (the most blocks ever live at once).
    pub slots: usize,
    /// The most bytes ever live at once (requested sizes).
    pub peak_live_bytes: u64,
}

/// A size from the trace's four bands.
fn request_size(rng: &mut StdRng) -> u32 {
    let (low, high): (f64, f64) = match rng.random_range(0..100) {
        0..55 => (8.0, 128.0),
        55..85 => (129.0, 1024.0),
        85..97 => (1025.0, 8192.0),
        _ => (8193.0, 32768.0),
    };
    let exponent = rng.random_range(low.ln()..=high.ln());
    (exponent.exp().round() as u32).clamp(low as u32, high as u32)
}

/// How many allocations later a block dies.
fn lifetime(rng: &mut StdRng, allocations: usize) -> usize {
    match rng.random_range(0..100) {
        0..70 => rng.random_range(1..=100),
        70..95 => rng.random_range(1..=(allocations / 20).max(2)),
        _ => rng.random_range(allocations / 4..=allocations * 2),
    }
}

/// Generates the trace of `shape`.
pub fn generate(shape: TraceShape) -> Trace {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let mut ops = Vec::with_capacity(2 * shape.allocations);
    let mut deaths: BinaryHeap<Reverse<(usize, u32, u32)>> = BinaryHeap::new();
    let mut free_slots: Vec<u32> = Vec::new();
    let mut slots = 0u32;
    let (mut live, mut peak_live_bytes) = (0u64, 0u64);
    for now in 0..shape.allocations {
        while let Some(&Reverse((death, slot, size))) = deaths.peek()
            && death <= now
        {
            deaths.pop();
            ops.push(Op::Free { slot, size });
            free_slots.push(slot);
            live -= u64::from(size);
        }
        let size = request_size(&mut rng);
        let slot = free_slots.pop().unwrap_or_else(|| {
            slots += 1;
            slots - 1
        });
        ops.push(Op::Alloc { slot, size });
        live += u64::from(size);
        peak_live_bytes = peak_live_bytes.max(live);
        deaths.push(Reverse((now + lifetime(&mut rng, shape.allocations), slot, size)));
    }
    let mut survivors: Vec<(u32, u32)> =
        deaths.into_iter().map(|Reverse((_, slot, size))| (slot, size)).collect();
    survivors.sort_unstable();
    survivors.shuffle(&mut rng);
    ops.extend(survivors.into_iter().map(|(slot, size)| Op::Free { slot, size }));
    Trace { shape, ops, slots: slots as usize, peak_live_bytes }
}

/// A heap the trace can run on.
pub trait TraceHeap: Heap {
    /// The heap's figures now.
    fn sample(&self, operation: usize) -> HeapSample;

    /// Free-list entries the heap's allocation searches have looked at so far: the work of
    /// its placement policy (0 for a heap that never searches).
    fn searched_blocks(&self) -> u64;
}

/// A heap's figures at one point of a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HeapSample {
    /// Operations replayed so far.
    pub operation: usize,
    /// Bytes live (requested sizes).
    pub live_bytes: u64,
    /// Bytes the heap holds from its source.
    pub footprint_bytes: u64,
    /// Bytes in free blocks (heaps with a free list only).
    pub free_bytes: u64,
    /// Free blocks (heaps with a free list only): what a search may have to walk.
    pub free_blocks: u64,
    /// The largest free block (heaps with a free list only).
    pub largest_free: u64,
}

impl HeapSample {
    /// External fragmentation, 1 − largest free / free bytes (0 when nothing is free).
    pub fn external_fragmentation(&self) -> f64 {
        if self.free_bytes == 0 { 0.0 } else { 1.0 - self.largest_free as f64 / self.free_bytes as f64 }
    }
}

impl<S: SpanSource> TraceHeap for FreeList<S> {
    fn sample(&self, operation: usize) -> HeapSample {
        let stats = self.stats();
        let free = self.free_stats();
        HeapSample {
            operation,
            live_bytes: stats.live_bytes as u64,
            footprint_bytes: stats.footprint_bytes as u64,
            free_bytes: free.free_bytes as u64,
            free_blocks: free.free_blocks as u64,
            largest_free: free.largest_free as u64,
        }
    }

    fn searched_blocks(&self) -> u64 {
        self.free_stats().searched_blocks
    }
}

impl<S: SpanSource> TraceHeap for SizeClass<S> {
    fn sample(&self, operation: usize) -> HeapSample {
        let stats = self.stats();
        HeapSample {
            operation,
            live_bytes: stats.live_bytes as u64,
            footprint_bytes: stats.footprint_bytes as u64,
            free_bytes: 0,
            free_blocks: 0,
            largest_free: 0,
        }
    }

    /// Small requests take the head of their class's list; only the large path searches.
    fn searched_blocks(&self) -> u64 {
        self.large().free_stats().searched_blocks
    }
}

/// The blocks of a replay, by slot; empty again when a whole trace has been replayed.
#[derive(Debug)]
pub struct Slots(Vec<Option<NonNull<u8>>>);

impl Slots {
    /// Room for every slot of `trace`.
    pub fn for_trace(trace: &Trace) -> Self {
        Slots(vec![None; trace.slots])
    }
}

/// Replays `ops` on `heap`. On error the blocks still in `slots` belong to `heap`, which
/// must then be dropped (it takes them with it).
#[inline(never)]
fn replay_ops<H: TraceHeap>(heap: &H, ops: &[Op], slots: &mut Slots, name: &str) -> Result<(), LabError> {
    for op in ops {
        match *op {
            Op::Alloc { slot, size } => {
                let size = size as usize;
                let layout = Layout::from_size_align(size, ALIGN).map_err(|e| LabError::InvalidArgument {
                    flag: "--allocations",
                    reason: e.to_string(),
                })?;
                let block = heap
                    .alloc(layout)
                    .map_err(|cause| LabError::HeapRefused { heap: name.to_owned(), cause })?;
                // SAFETY: the block holds `size` >= 8 writable bytes.
                unsafe {
                    block.as_ptr().write(slot as u8);
                    block.as_ptr().add(size - 1).write(size as u8);
                }
                slots.0[slot as usize] = Some(block);
            }
            Op::Free { slot, size } => {
                if let Some(block) = slots.0[slot as usize].take() {
                    let layout = Layout::from_size_align(size as usize, ALIGN).map_err(|e| {
                        LabError::InvalidArgument { flag: "--allocations", reason: e.to_string() }
                    })?;
                    // SAFETY: the block was allocated with this layout by this heap (the
                    // trace frees each slot once, after its allocation) and is not used
                    // after this.
                    unsafe { heap.free(block, layout) };
                }
            }
        }
    }
    Ok(())
}

/// One timed replay of a whole trace.
///
/// Wall-clock time is what a user waits; the thread's CPU time leaves out the time the
/// kernel gave the CPU to other processes (on a loaded machine, most of the difference),
/// and `preemptions` counts how often that happened. What load does to the CPU time itself
/// (other processes evicting this one's cache lines) shows in the CPU time per free-list
/// entry searched, which the experiments print beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    /// Wall-clock seconds.
    pub wall_secs: f64,
    /// Seconds of CPU time of the replaying thread (`CLOCK_THREAD_CPUTIME_ID`).
    pub cpu_secs: f64,
    /// Involuntary context switches of the replaying thread (`getrusage(RUSAGE_THREAD)`'s
    /// `ru_nivcsw`): times the kernel took the CPU away mid-replay.
    pub preemptions: u64,
    /// Free-list entries the heap's searches looked at during this replay.
    pub searched_blocks: u64,
}

impl Round {
    /// Operations per wall-clock second.
    pub fn ops_per_sec(&self, ops: usize) -> f64 {
        ops as f64 / self.wall_secs.max(f64::MIN_POSITIVE)
    }

    /// The share of the wall-clock time the thread was on a CPU (1 on an idle machine).
    pub fn cpu_share(&self) -> f64 {
        self.cpu_secs / self.wall_secs.max(f64::MIN_POSITIVE)
    }
}

/// The replaying thread's CPU time so far, in seconds.
fn thread_cpu_secs() -> Result<f64, LabError> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to ours.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        let cause = std::io::Error::last_os_error();
        return Err(LabError::SystemCall { call: "clock_gettime(CLOCK_THREAD_CPUTIME_ID)", cause });
    }
    Ok(now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9)
}

/// The replaying thread's involuntary context switches so far.
fn thread_preemptions() -> Result<u64, LabError> {
    // SAFETY: rusage is plain data; zeroed is a valid value for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into `usage`.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        let cause = std::io::Error::last_os_error();
        return Err(LabError::SystemCall { call: "getrusage(RUSAGE_THREAD)", cause });
    }
    Ok(usage.ru_nivcsw.max(0) as u64)
}

/// Replays the whole trace and measures it ([`Round`]).
pub fn replay_timed<H: TraceHeap>(
    heap: &H,
    trace: &Trace,
    slots: &mut Slots,
    name: &str,
) -> Result<Round, LabError> {
    // The clocks nest, wall clock innermost, so that the CPU time counts the replay and
    // the reading of the wall clock only.
    let searched_before = heap.searched_blocks();
    let switches_before = thread_preemptions()?;
    let cpu_before = thread_cpu_secs()?;
    let started = Instant::now();
    replay_ops(heap, &trace.ops, slots, name)?;
    let wall_secs = started.elapsed().as_secs_f64();
    let cpu_after = thread_cpu_secs()?;
    let switches_after = thread_preemptions()?;
    Ok(Round {
        wall_secs,
        cpu_secs: cpu_after - cpu_before,
        preemptions: switches_after.saturating_sub(switches_before),
        searched_blocks: heap.searched_blocks() - searched_before,
    })
}

/// Replays the whole trace, sampling the heap's figures `samples` times at even intervals
/// (and once at the start).
pub fn replay_sampled<H: TraceHeap>(
    heap: &H,
    trace: &Trace,
    slots: &mut Slots,
    samples: usize,
    name: &str,
) -> Result<Vec<HeapSample>, LabError> {
    let every = trace.ops.len().div_ceil(samples.max(1)).max(1);
    let mut taken = vec![heap.sample(0)];
    let mut done = 0;
    for ops in trace.ops.chunks(every) {
        replay_ops(heap, ops, slots, name)?;
        done += ops.len();
        taken.push(heap.sample(done));
    }
    Ok(taken)
}

/// The median of `values` (of an even count, the mean of the two middle values; 0 when
/// empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => 0.0,
        count if count % 2 == 1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}

/// A figure measured once per round: its median and its range.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    /// The median round ([`median`]).
    pub median: f64,
    /// The lowest round.
    pub min: f64,
    /// The highest round.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (all 0 when empty).
    pub fn of(values: &[f64]) -> Spread {
        Spread::try_of(values).unwrap_or_default()
    }

    /// The spread of `values`; `None` when there are none.
    pub fn try_of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { median: median(values), min, max })
    }

    /// Whether the two ranges share a value: where they do, the rounds do not order the two.
    pub fn overlaps(&self, other: &Spread) -> bool {
        self.min <= other.max && other.min <= self.max
    }

    /// The same spread in other units (every figure × `factor`).
    pub fn scaled(self, factor: f64) -> Spread {
        Spread { median: self.median * factor, min: self.min * factor, max: self.max * factor }
    }

    /// `median (min–max)`, each with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        self.text(|value| format!("{value:.decimals$}"))
    }

    /// `median (min–max)`, each formatted by `format`.
    pub fn text(&self, format: impl Fn(f64) -> String) -> String {
        format!("{} ({}–{})", format(self.median), format(self.min), format(self.max))
    }

    /// `median× (min–max)`, for ratios.
    pub fn show_ratio(&self) -> String {
        format!("{} ({:.2}–{:.2})", crate::report::ratio(self.median), self.min, self.max)
    }
}

/// The fewest rounds from which a comparison claims an ordering.
pub const MIN_ROUNDS_TO_ORDER: usize = 3;

/// How two contenders compare on a figure measured per round, higher being better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Fewer than [`MIN_ROUNDS_TO_ORDER`] rounds: no claim either way.
    TooFewRounds,
    /// The ranges overlap: the rounds do not order the two.
    Overlap,
    /// Higher in every round: the first's lowest round is above the second's highest.
    Higher,
    /// Lower in every round.
    Lower,
}

impl Order {
    /// How `a` compares with `b`, over `rounds` alternating rounds.
    pub fn of(a: &Spread, b: &Spread, rounds: usize) -> Order {
        if rounds < MIN_ROUNDS_TO_ORDER {
            Order::TooFewRounds
        } else if a.overlaps(b) {
            Order::Overlap
        } else if a.min > b.max {
            Order::Higher
        } else {
            Order::Lower
        }
    }
}

/// The verdict line of a throughput comparison: `a` against `b` (operations per second,
/// one value per round), an ordering only where the ranges do not overlap.
pub fn throughput_verdict(a: (&str, &Spread), b: (&str, &Spread), rounds: usize) -> String {
    let ((a_name, a_ops), (b_name, b_ops)) = (a, b);
    let (a_m, b_m) = (a_ops.scaled(1e-6), b_ops.scaled(1e-6));
    let ranges = format!(
        "{:.2}–{:.2} vs {:.2}–{:.2} M ops/s over {rounds} rounds",
        a_m.min, a_m.max, b_m.min, b_m.max
    );
    match Order::of(a_ops, b_ops, rounds) {
        Order::TooFewRounds => format!(
            "verdict: {a_name} vs {b_name}: no ordering, {rounds} round(s) (an ordering needs at least \
             {MIN_ROUNDS_TO_ORDER})"
        ),
        Order::Overlap => {
            format!("verdict: {a_name} vs {b_name}: no ordering, the ranges overlap ({ranges})")
        }
        Order::Higher => {
            format!(
                "verdict: {a_name} is faster than {b_name} in every round: {ranges}, the ranges do not overlap"
            )
        }
        Order::Lower => {
            format!(
                "verdict: {a_name} is slower than {b_name} in every round: {ranges}, the ranges do not overlap"
            )
        }
    }
}

/// `numerators[i] / denominators[i]` round by round (rounds whose denominator is 0 are
/// left out).
pub fn per_round_ratios(numerators: &[f64], denominators: &[f64]) -> Vec<f64> {
    numerators.iter().zip(denominators).filter(|(_, d)| **d > 0.0).map(|(n, d)| n / d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_median_and_the_range_and_orders_only_apart() {
        let spread = Spread::of(&[3.0, 1.0, 2.0, 5.0, 4.0]);
        assert_eq!(spread, Spread { median: 3.0, min: 1.0, max: 5.0 });
        assert_eq!(spread.show(1), "3.0 (1.0–5.0)");
        let apart = Spread::of(&[6.0, 7.0, 8.0]);
        let touching = Spread::of(&[5.0, 9.0, 7.0]);
        assert!(!spread.overlaps(&apart) && spread.overlaps(&touching));
        assert_eq!(Order::of(&apart, &spread, 3), Order::Higher);
        assert_eq!(Order::of(&spread, &apart, 3), Order::Lower);
        assert_eq!(Order::of(&touching, &spread, 3), Order::Overlap);
        assert_eq!(Order::of(&apart, &spread, 2), Order::TooFewRounds);
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(per_round_ratios(&[4.0, 9.0, 1.0], &[2.0, 3.0, 0.0]), [2.0, 3.0]);
    }

    #[test]
    fn every_allocation_is_freed_exactly_once_after_it_was_made() {
        let trace = generate(TraceShape { allocations: 5000, seed: 7 });
        assert_eq!(trace.ops.len(), 10_000);
        let mut live: Vec<Option<u32>> = vec![None; trace.slots];
        let (mut bytes, mut peak) = (0u64, 0u64);
        for op in &trace.ops {
            match *op {
                Op::Alloc { slot, size } => {
                    assert!(live[slot as usize].replace(size).is_none(), "slot {slot} reused while live");
                    assert!((8..=32768).contains(&size), "{size}");
                    bytes += u64::from(size);
                    peak = peak.max(bytes);
                }
                Op::Free { slot, size } => {
                    assert_eq!(live[slot as usize].take(), Some(size), "slot {slot} freed while empty");
                    bytes -= u64::from(size);
                }
            }
        }
        assert!(live.iter().all(Option::is_none));
        assert_eq!(peak, trace.peak_live_bytes);
    }

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        let shape = TraceShape { allocations: 2000, seed: 3 };
        assert_eq!(generate(shape), generate(shape));
        assert_ne!(generate(shape).ops, generate(TraceShape { seed: 4, ..shape }).ops);
    }

    #[test]
    fn frees_do_not_follow_allocation_order() {
        let trace = generate(TraceShape { allocations: 5000, seed: 11 });
        let mut allocated_at = vec![0usize; trace.slots];
        let mut inversions = 0;
        let mut last_freed_birth = 0;
        for (i, op) in trace.ops.iter().enumerate() {
            match *op {
                Op::Alloc { slot, .. } => allocated_at[slot as usize] = i,
                Op::Free { slot, .. } => {
                    let birth = allocated_at[slot as usize];
                    if birth < last_freed_birth {
                        inversions += 1;
                    }
                    last_freed_birth = birth;
                }
            }
        }
        assert!(inversions > 1000, "{inversions} frees came before those of younger blocks");
    }

    #[test]
    fn a_replay_leaves_every_heap_empty() {
        let trace = generate(TraceShape { allocations: 3000, seed: 5 });
        let mut slots = Slots::for_trace(&trace);
        let freelist = FreeList::new(allockit::freelist::Placement::BestFit);
        let samples = replay_sampled(&freelist, &trace, &mut slots, 10, "freelist").unwrap();
        assert_eq!(samples.len(), 11);
        assert_eq!(samples.last().map(|s| (s.operation, s.live_bytes)), Some((trace.ops.len(), 0)));
        assert!(samples.iter().any(|s| s.live_bytes > 0 && s.footprint_bytes >= s.live_bytes));
        freelist.check().unwrap();
        let sizeclass = SizeClass::new();
        replay_timed(&sizeclass, &trace, &mut slots, "sizeclass").unwrap();
        assert_eq!(sizeclass.stats().live_bytes, 0);
        assert_eq!(sizeclass.stats().allocations, 3000);
    }
}
