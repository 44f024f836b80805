//! Self-assessment: how `malloc(24)` is served without a system call, and what the rare
//! paths ask of the kernel.
//!
//! A child ([`MallocPath`]) runs a fixed sequence of phases, each between two marker
//! system calls (`write(-1, "allockit-mark:<phase>:begin")`, which fails with `EBADF` and
//! does nothing else) so that a trace can be cut into phases:
//!
//! * `steady`: a million `malloc(24)`/`free` pairs after a warm-up;
//! * `heap-growth`: blocks of 4000 B kept until the heap's top must grow (`brk` on glibc);
//! * `heap-release`: all of them freed (glibc trims the top: `brk` down);
//! * `large-first`: `malloc(1 MiB)` + `free`, above glibc's initial mmap threshold (128 KiB);
//! * `large-second`: the same request again, after the free raised the dynamic threshold;
//! * `large-again`: the same pair repeated;
//! * `thread-first`, `thread-second`: a new thread's first and second `malloc(24)`.
//!
//! The parent runs the child twice per setting: once under `strace -f` (every system call,
//! cut into phases by the markers, counted per thread) and once without it, for the times
//! (a traced system call costs microseconds of ptrace round trips): three untraced runs
//! per setting, alternating, keeping the one with the fastest steady phase. Settings: glibc,
//! glibc with `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` (no tcache: the fastbins serve),
//! jemalloc and allockit-malloc (`LD_PRELOAD`). On glibc the child also reads
//! `mallinfo2()`: the bytes in fastbins after each of a series of frees show how many frees
//! the tcache absorbed, and the count of mmapped chunks shows which large requests mmap
//! served.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind, Availability, Located};
use crate::chart::{Bar, Chart, ChartKind};
use crate::child::{ChildTask, Envelope, Launch};
use crate::process::TempDir;
use crate::report::{self, CsvFile, Outcome, Table};

/// The child's phases, in the order it runs them.
pub const PHASES: [&str; 8] = [
    "steady",
    "heap-growth",
    "heap-release",
    "large-first",
    "large-second",
    "large-again",
    "thread-first",
    "thread-second",
];

/// What the child does in each phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MallocPath {
    /// `malloc(24)`/`free` pairs before the steady phase.
    pub warmup_pairs: usize,
    /// `malloc(24)`/`free` pairs in the steady phase.
    pub steady_pairs: usize,
    /// Blocks kept in the heap-growth phase.
    pub growth_blocks: usize,
    /// Bytes per heap-growth block (below every mmap threshold).
    pub growth_size: usize,
    /// Bytes of the large request (above glibc's initial 128 KiB mmap threshold).
    pub large_size: usize,
    /// Pairs in the `large-again` phase.
    pub large_repeats: usize,
}

impl MallocPath {
    /// The documented run.
    pub fn full() -> Self {
        MallocPath {
            warmup_pairs: 10_000,
            steady_pairs: 1_000_000,
            growth_blocks: 4096,
            growth_size: 4000,
            large_size: 1 << 20,
            large_repeats: 1000,
        }
    }

    /// The test-suite version: the same million steady pairs (no system call, so cheap
    /// under strace too), a smaller heap growth.
    pub fn quick() -> Self {
        MallocPath { growth_blocks: 1024, large_repeats: 100, ..MallocPath::full() }
    }
}

/// The time one phase took in the child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// The phase (one of [`PHASES`]).
    pub phase: String,
    /// Operations (pairs, or single mallocs/frees) in the phase.
    pub ops: u64,
    /// Nanoseconds for all of them.
    pub total_ns: u64,
    /// Operations after which the program break had moved (glibc's `sbrk(0)`).
    pub break_moves: u64,
    /// Nanoseconds of those operations.
    pub break_move_ns: u64,
}

impl PhaseTiming {
    /// Mean nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.total_ns as f64 / self.ops.max(1) as f64
    }

    /// Mean nanoseconds of an operation that moved the break, and of one that did not.
    pub fn break_split(&self) -> Option<(f64, f64)> {
        if self.break_moves == 0 || self.break_moves >= self.ops {
            return None;
        }
        let moved = self.break_move_ns as f64 / self.break_moves as f64;
        let rest = (self.total_ns - self.break_move_ns) as f64 / (self.ops - self.break_moves) as f64;
        Some((moved, rest))
    }
}

/// glibc's own account of its heap (`mallinfo2`), read in the child when glibc serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlibcEvidence {
    /// Of ten frees of 24-byte blocks in a row (in a fresh thread), how many left the fastbins' byte count
    /// unchanged (went to the tcache) before the first that raised it.
    pub frees_absorbed_before_fastbin: u32,
    /// Bytes that the first free reaching a fastbin added to them (the chunk size).
    pub fastbin_chunk_bytes: u64,
    /// Chunks served by mmap while the first large block was live.
    pub mmapped_chunks_first: u64,
    /// Chunks served by mmap while the second same-size block was live.
    pub mmapped_chunks_second: u64,
}

/// What the child reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MallocPathReport {
    /// One entry per phase, in [`PHASES`] order.
    pub phases: Vec<PhaseTiming>,
    /// The fastest of the steady phase's rounds, in ns per `malloc(24)`/`free` pair.
    pub steady_ns_per_pair: f64,
    /// `mallinfo2` evidence, on glibc only.
    pub glibc: Option<GlibcEvidence>,
}

/// The steady phase is timed in this many rounds and the fastest is reported: the cost of
/// the path itself, without the rounds a loaded machine preempted or slowed.
pub const STEADY_ROUNDS: usize = 10;

/// Timed child runs per setting, alternating between the settings; the run with
/// the fastest steady phase is kept, so a burst of load hits no single setting alone.
pub const TIMED_RUNS: usize = 3;

const MARK_PREFIX: &str = "allockit-mark:";

/// A marker the trace can see: a `write` to fd -1, which fails with `EBADF`. It builds
/// the text on the stack: an allocation here would itself be traced inside the phase (and
/// in a new thread would create the arena before the phase began).
fn mark(phase: &str, edge: &str) {
    let mut text = [0u8; 96];
    let mut len = 0;
    for part in [MARK_PREFIX, phase, ":", edge] {
        let end = (len + part.len()).min(text.len());
        text[len..end].copy_from_slice(&part.as_bytes()[..end - len]);
        len = end;
    }
    // SAFETY: the pointer and length describe the initialized part of `text`, alive for
    // the call; fd -1 is never open, so the kernel reads nothing and returns EBADF.
    unsafe {
        libc::write(-1, text.as_ptr().cast::<c_void>(), len);
    }
}

fn current_break() -> usize {
    // SAFETY: sbrk(0) only reads the current program break (glibc caches it; no change).
    unsafe { libc::sbrk(0) as usize }
}

fn fastbin_bytes() -> u64 {
    // SAFETY: mallinfo2 only reads glibc's arena statistics.
    unsafe { libc::mallinfo2().fsmblks as u64 }
}

fn mmapped_chunks() -> u64 {
    // SAFETY: as above.
    unsafe { libc::mallinfo2().hblks as u64 }
}

fn malloc(size: usize) -> *mut c_void {
    // SAFETY: malloc has no preconditions; the result is checked by the callers.
    black_box(unsafe { libc::malloc(size) })
}

fn free(pointer: *mut c_void) {
    // SAFETY: every pointer given here came from `malloc` above and is freed once.
    unsafe { libc::free(black_box(pointer)) }
}

fn alloc_checked(size: usize) -> Result<*mut c_void, LabError> {
    let pointer = malloc(size);
    if pointer.is_null() {
        return Err(LabError::InvalidArgument {
            flag: "size",
            reason: format!("malloc({size}) returned NULL"),
        });
    }
    // SAFETY: the block holds `size` ≥ 1 bytes; one byte is written so the page is touched.
    unsafe { pointer.cast::<u8>().write_volatile(1) };
    Ok(pointer)
}

struct Phase {
    name: &'static str,
    started: Instant,
}

impl Phase {
    fn begin(name: &'static str) -> Phase {
        mark(name, "begin");
        Phase { name, started: Instant::now() }
    }

    fn end(self, ops: u64, break_moves: u64, break_move_ns: u64) -> PhaseTiming {
        let total_ns = self.started.elapsed().as_nanos() as u64;
        mark(self.name, "end");
        PhaseTiming { phase: self.name.to_owned(), ops, total_ns, break_moves, break_move_ns }
    }
}

/// Which layer takes the frees of 24-byte blocks: (frees that left the fastbins' bytes
/// unchanged before the first that raised them, the bytes that one added). Runs in a fresh
/// thread, whose new arena has empty bins and whose tcache holds at most the one chunk
/// its earlier pair freed: ten blocks drain it and come from the top, so nothing stashes
/// chunks from a bin into the tcache (as a malloc served from a fastbin would) meanwhile.
fn tcache_absorption() -> (u32, u64) {
    let mut blocks = [std::ptr::null_mut(); 10];
    for block in &mut blocks {
        *block = malloc(24);
    }
    let mut absorbed = 0;
    let mut chunk = 0;
    for block in blocks {
        let before = fastbin_bytes();
        free(block);
        let grown = fastbin_bytes().saturating_sub(before);
        if grown > 0 && chunk == 0 {
            chunk = grown;
        } else if chunk == 0 {
            absorbed += 1;
        }
    }
    (absorbed, chunk)
}

/// What the new thread hands back.
struct ThreadOut {
    on_glibc: bool,
    timings: [Option<PhaseTiming>; 2],
    frees: Option<(u32, u64)>,
}

/// The two phases a new thread runs: its first `malloc(24)` and its second; then, on
/// glibc, [`tcache_absorption`].
extern "C" fn thread_phases(out: *mut c_void) -> *mut c_void {
    // SAFETY: `out` points to the caller's `ThreadOut`, which outlives the thread (the
    // caller joins it before reading).
    let out = unsafe { &mut *out.cast::<ThreadOut>() };
    for (slot, name) in out.timings.iter_mut().zip(["thread-first", "thread-second"]) {
        let phase = Phase::begin(name);
        let pointer = malloc(24);
        let timing = phase.end(1, 0, 0);
        free(pointer);
        *slot = Some(timing);
    }
    if out.on_glibc {
        out.frees = Some(tcache_absorption());
    }
    std::ptr::null_mut()
}

impl ChildTask for MallocPath {
    const NAME: &'static str = "malloc-path";
    type Output = MallocPathReport;

    fn run(self) -> Result<MallocPathReport, LabError> {
        let on_glibc = allocator::active_allocator().0 == Some(AllocatorKind::Glibc);
        let mut phases = Vec::new();
        for _ in 0..self.warmup_pairs {
            free(malloc(24));
        }

        let rounds = STEADY_ROUNDS.min(self.steady_pairs.max(1));
        let per_round = self.steady_pairs / rounds;
        let mut steady_round_ns = Vec::with_capacity(rounds);
        let phase = Phase::begin("steady");
        for round in 0..rounds {
            let pairs =
                if round + 1 == rounds { self.steady_pairs - per_round * (rounds - 1) } else { per_round };
            let started = Instant::now();
            for _ in 0..pairs {
                free(malloc(24));
            }
            steady_round_ns.push(started.elapsed().as_nanos() as f64 / pairs.max(1) as f64);
        }
        phases.push(phase.end(self.steady_pairs as u64, 0, 0));

        let mut blocks = Vec::with_capacity(self.growth_blocks);
        let (mut moves, mut move_ns) = (0, 0);
        // The first sbrk(0) of a process whose malloc never called brk (jemalloc,
        // allockit) asks the kernel (`brk(NULL)`); make it here, outside the phase.
        current_break();
        let phase = Phase::begin("heap-growth");
        for _ in 0..self.growth_blocks {
            let before = current_break();
            let started = Instant::now();
            let block = alloc_checked(self.growth_size)?;
            let ns = started.elapsed().as_nanos() as u64;
            if current_break() != before {
                moves += 1;
                move_ns += ns;
            }
            blocks.push(block);
        }
        phases.push(phase.end(self.growth_blocks as u64, moves, move_ns));

        let (mut moves, mut move_ns) = (0, 0);
        let phase = Phase::begin("heap-release");
        for block in blocks.drain(..).rev() {
            let before = current_break();
            let started = Instant::now();
            free(block);
            let ns = started.elapsed().as_nanos() as u64;
            if current_break() != before {
                moves += 1;
                move_ns += ns;
            }
        }
        phases.push(phase.end(self.growth_blocks as u64, moves, move_ns));

        let mut mmapped = [0u64; 2];
        for (index, name) in ["large-first", "large-second"].into_iter().enumerate() {
            let phase = Phase::begin(name);
            let block = alloc_checked(self.large_size)?;
            if on_glibc {
                mmapped[index] = mmapped_chunks();
            }
            free(block);
            phases.push(phase.end(1, 0, 0));
        }
        let phase = Phase::begin("large-again");
        for _ in 0..self.large_repeats {
            free(alloc_checked(self.large_size)?);
        }
        phases.push(phase.end(self.large_repeats as u64, 0, 0));

        let mut out = ThreadOut { on_glibc, timings: [None, None], frees: None };
        // SAFETY: a zeroed pthread_t is a valid value to be overwritten by pthread_create.
        let mut thread: libc::pthread_t = unsafe { std::mem::zeroed() };
        // SAFETY: `thread_phases` matches the start routine's signature, `out` outlives the
        // thread (joined below), and default attributes (NULL) are valid.
        let created = unsafe {
            libc::pthread_create(
                &mut thread,
                std::ptr::null(),
                thread_phases,
                (&mut out as *mut ThreadOut).cast::<c_void>(),
            )
        };
        if created != 0 {
            return Err(LabError::InvalidArgument {
                flag: "thread",
                reason: format!("pthread_create failed with {created}"),
            });
        }
        // SAFETY: `thread` was created above and is joined exactly once.
        unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
        phases.extend(out.timings.into_iter().flatten());
        let glibc_frees = out.frees;

        let glibc = glibc_frees.map(|(absorbed, chunk)| GlibcEvidence {
            frees_absorbed_before_fastbin: absorbed,
            fastbin_chunk_bytes: chunk,
            mmapped_chunks_first: mmapped[0],
            mmapped_chunks_second: mmapped[1],
        });
        let steady_ns_per_pair = steady_round_ns.iter().copied().fold(f64::INFINITY, f64::min);
        let steady_ns_per_pair = if steady_ns_per_pair.is_finite() { steady_ns_per_pair } else { 0.0 };
        Ok(MallocPathReport { phases, steady_ns_per_pair, glibc })
    }
}

/// One system call in an `strace -f` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedCall {
    /// The thread that made it.
    pub tid: u32,
    /// Its name.
    pub name: String,
    /// The arguments as strace printed them, without the parentheses.
    pub args: String,
    /// The return value as printed (`0x55…`, `-1 EBADF (…)`), empty when unfinished.
    pub ret: String,
}

/// Parses one line of `strace -f -o FILE` output; `None` for exits, signals and the
/// `<... resumed>` halves of interrupted calls (the call was counted where it started).
pub fn parse_strace_line(line: &str) -> Option<TracedCall> {
    let (tid, rest) = line.trim_start().split_once(char::is_whitespace)?;
    let tid = tid.parse().ok()?;
    let rest = rest.trim_start();
    if rest.starts_with('<') || rest.starts_with("+++") || rest.starts_with("---") {
        return None;
    }
    let open = rest.find('(')?;
    let name = &rest[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let body = &rest[open + 1..];
    let (args, ret) = match body.rfind(" = ") {
        Some(equals) => {
            (body[..equals].trim_end().strip_suffix(')').unwrap_or(body), body[equals + 3..].trim())
        }
        None => (body.trim_end_matches(" <unfinished ...>").trim_end_matches(')'), ""),
    };
    Some(TracedCall { tid, name: name.to_owned(), args: args.to_owned(), ret: ret.to_owned() })
}

/// The system calls one phase made, from the trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseCalls {
    /// Count per system call name (the markers excluded).
    pub counts: BTreeMap<String, u64>,
    /// How far each `brk` moved the break (bytes; negative when the heap shrank).
    pub brk_deltas: Vec<i64>,
    /// Lengths of `mmap` calls, with whether each was `PROT_NONE` (a reservation).
    pub mmaps: Vec<(u64, bool)>,
    /// Lengths of `munmap` calls.
    pub munmaps: Vec<u64>,
}

impl PhaseCalls {
    /// All system calls in the phase.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Calls of one name.
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// `brk×3, mmap×1`, or `none`.
    pub fn summary(&self) -> String {
        if self.counts.is_empty() {
            return "none".to_owned();
        }
        self.counts.iter().map(|(name, n)| format!("{name}×{n}")).collect::<Vec<_>>().join(", ")
    }

    /// What the memory calls asked for: `brk +132.0 KiB each (31)`, `mmap 1.0 MiB`.
    pub fn sizes(&self) -> String {
        let mut parts = Vec::new();
        if !self.brk_deltas.is_empty() {
            let sum: i64 = self.brk_deltas.iter().sum();
            let mean = sum as f64 / self.brk_deltas.len() as f64;
            parts.push(if self.brk_deltas.len() == 1 {
                format!("brk {}", report::signed_bytes(mean))
            } else {
                format!(
                    "brk {} per call (total {})",
                    report::signed_bytes(mean),
                    report::signed_bytes(sum as f64)
                )
            });
        }
        let list = |values: Vec<String>, total: u64| {
            if values.len() <= 3 {
                values.join(" + ")
            } else {
                format!("{} calls, {} in all", values.len(), report::bytes(total as f64))
            }
        };
        if !self.mmaps.is_empty() {
            parts.push(format!(
                "mmap {}",
                list(
                    self.mmaps
                        .iter()
                        .map(|(len, none)| {
                            format!("{}{}", report::bytes(*len as f64), if *none { " PROT_NONE" } else { "" })
                        })
                        .collect(),
                    self.mmaps.iter().map(|(len, _)| *len).sum()
                )
            ));
        }
        if !self.munmaps.is_empty() {
            parts.push(format!(
                "munmap {}",
                list(
                    self.munmaps.iter().map(|len| report::bytes(*len as f64)).collect(),
                    self.munmaps.iter().sum()
                )
            ));
        }
        if parts.is_empty() { "-".to_owned() } else { parts.join("; ") }
    }

    /// Bytes mapped minus bytes unmapped: what stays reserved.
    pub fn net_mapped(&self) -> i64 {
        self.mmaps.iter().map(|(len, _)| *len as i64).sum::<i64>()
            - self.munmaps.iter().map(|l| *l as i64).sum::<i64>()
    }
}

fn parse_number(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Cuts a trace into phases at the markers; calls count only on the marking thread.
pub fn split_trace(trace: &str) -> BTreeMap<String, PhaseCalls> {
    let mut phases: BTreeMap<String, PhaseCalls> = BTreeMap::new();
    let mut open: Option<(u32, String)> = None;
    let mut last_break: Option<u64> = None;
    for call in trace.lines().filter_map(parse_strace_line) {
        if call.name == "write"
            && let Some(start) = call.args.find(MARK_PREFIX)
        {
            let marker = call.args[start + MARK_PREFIX.len()..].split('"').next().unwrap_or("");
            match marker.rsplit_once(':') {
                Some((phase, "begin")) => {
                    phases.entry(phase.to_owned()).or_default();
                    open = Some((call.tid, phase.to_owned()));
                }
                _ => open = None,
            }
            continue;
        }
        let new_break = (call.name == "brk").then(|| parse_number(&call.ret)).flatten();
        if let Some((tid, phase)) = &open
            && *tid == call.tid
        {
            let calls = phases.entry(phase.clone()).or_default();
            *calls.counts.entry(call.name.clone()).or_default() += 1;
            let length = call.args.split(',').nth(1).and_then(parse_number);
            match call.name.as_str() {
                "brk" => {
                    if let (Some(now), Some(before)) = (new_break, last_break)
                        && now != before
                    {
                        calls.brk_deltas.push(now as i64 - before as i64);
                    }
                }
                "mmap" => calls.mmaps.push((length.unwrap_or(0), call.args.contains("PROT_NONE"))),
                "munmap" => calls.munmaps.push(length.unwrap_or(0)),
                _ => {}
            }
        }
        if new_break.is_some() {
            last_break = new_break;
        }
    }
    phases
}

/// One setting's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingRun {
    /// `glibc`, `glibc, tcache_count=0`, `jemalloc`, `allockit`.
    pub label: String,
    /// The allocator that served.
    pub allocator: AllocatorKind,
    /// The untraced run's report (times, glibc evidence).
    pub timed: MallocPathReport,
    /// System calls per phase, from the traced run.
    pub calls: BTreeMap<String, PhaseCalls>,
}

impl SettingRun {
    /// The timing of `phase`.
    pub fn timing(&self, phase: &str) -> Option<&PhaseTiming> {
        self.timed.phases.iter().find(|p| p.phase == phase)
    }

    /// The system calls of `phase` (empty when the phase made none).
    pub fn calls(&self, phase: &str) -> PhaseCalls {
        self.calls.get(phase).cloned().unwrap_or_default()
    }
}

/// The experiment's result.
#[derive(Debug, Clone, PartialEq)]
pub struct MallocPathOutcome {
    /// What the child ran.
    pub options: MallocPath,
    /// One run per available setting, glibc first.
    pub runs: Vec<SettingRun>,
    /// Peers not installed, with the install command.
    pub missing: Vec<(AllocatorKind, String)>,
}

/// The glibc tunable that turns the tcache off.
pub const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";

/// Extra environment variables of a child.
type Environment = Vec<(String, String)>;

/// Runs the child under each setting, traced and untraced.
pub fn run(exe: &Path, options: &MallocPath) -> Result<MallocPathOutcome, LabError> {
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    let glibc = allocator::locate(AllocatorKind::Glibc);
    let mut settings: Vec<(String, Located, Environment)> = vec![
        ("glibc".to_owned(), glibc.clone(), Vec::new()),
        (
            "glibc, tcache_count=0".to_owned(),
            glibc,
            vec![("GLIBC_TUNABLES".to_owned(), TCACHE_OFF.to_owned())],
        ),
    ];
    for located in allocator::locate_each(&[AllocatorKind::Jemalloc, AllocatorKind::AllockitMalloc]) {
        match &located.availability {
            Availability::Missing { install } => missing.push((located.kind, install.clone())),
            _ => settings.push((located.kind.to_string(), located, Vec::new())),
        }
    }
    let dir = TempDir::new("malloc-path")?;
    let mut best: Vec<Option<MallocPathReport>> = vec![None; settings.len()];
    for _ in 0..TIMED_RUNS {
        for ((_, located, env), best) in settings.iter().zip(&mut best) {
            let mut launch = Launch::new(exe, located);
            launch.env = env.clone();
            let (timed, _) = launch.run(options)?;
            if best.as_ref().is_none_or(|b| timed.steady_ns_per_pair < b.steady_ns_per_pair) {
                *best = Some(timed);
            }
        }
    }
    for (index, ((label, located, env), timed)) in settings.into_iter().zip(best).enumerate() {
        let Some(timed) = timed else { continue };
        let trace_file = dir.path().join(format!("trace-{index}.txt"));
        let trace = traced_run(exe, &located, &env, options, &trace_file)?;
        runs.push(SettingRun { label, allocator: located.kind, timed, calls: split_trace(&trace) });
    }
    Ok(MallocPathOutcome { options: options.clone(), runs, missing })
}

/// Runs the child under `strace -f` and returns the trace.
fn traced_run(
    exe: &Path,
    located: &Located,
    env: &[(String, String)],
    options: &MallocPath,
    trace_file: &Path,
) -> Result<String, LabError> {
    let mut command = Command::new("strace");
    command.args(["-f", "-qq", "-s", "96", "-o"]).arg(trace_file);
    for (key, value) in env {
        command.arg("-E").arg(format!("{key}={value}"));
    }
    if let Some(preload) = located.preload() {
        command.arg("-E").arg(format!("LD_PRELOAD={}", preload.display()));
    }
    command
        .arg(exe)
        .args([crate::child::SUBCOMMAND, MallocPath::NAME, &serde_json::to_string(options)?])
        .env_remove("LD_PRELOAD")
        .env_remove("MALLOC_CONF")
        .env_remove("GLIBC_TUNABLES")
        .stdin(Stdio::null());
    let display = format!("strace -f {} child {}", exe.display(), MallocPath::NAME);
    let output = command.output().map_err(|cause| {
        if cause.kind() == std::io::ErrorKind::NotFound {
            LabError::ToolMissing { tool: "strace", install: "sudo apt-get install -y strace".to_owned() }
        } else {
            LabError::Spawn { command: display.clone(), cause }
        }
    })?;
    if !output.status.success() {
        return Err(LabError::ChildFailed {
            command: display,
            status: output.status.to_string(),
            stderr_tail: String::from_utf8_lossy(&output.stderr)
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        });
    }
    let envelope: Envelope<MallocPathReport> = serde_json::from_slice(&output.stdout)
        .map_err(|e| LabError::ChildOutput { command: display, reason: e.to_string() })?;
    if envelope.provenance.allocator != Some(located.kind) {
        return Err(LabError::PreloadIgnored {
            expected: located.kind.name().to_owned(),
            actual: envelope.provenance.library,
        });
    }
    std::fs::read_to_string(trace_file).map_err(|e| LabError::file("read", trace_file, e))
}

fn layer(run: &SettingRun) -> String {
    match (run.allocator, &run.timed.glibc) {
        (AllocatorKind::Glibc, Some(evidence)) if evidence.frees_absorbed_before_fastbin > 0 => format!(
            "tcache: {} frees in a row stayed out of the bins, the next put {} B into a fastbin",
            evidence.frees_absorbed_before_fastbin, evidence.fastbin_chunk_bytes
        ),
        (AllocatorKind::Glibc, Some(evidence)) => format!(
            "fastbins: every free went straight to a fastbin (+{} B each), no tcache",
            evidence.fastbin_chunk_bytes
        ),
        (AllocatorKind::Jemalloc, _) => "thread cache (tcache bin of the 32 B class)".to_owned(),
        (AllocatorKind::AllockitMalloc, _) => "thread's own heap: the page free list of its class".to_owned(),
        _ => "-".to_owned(),
    }
}

fn phase_what(phase: &str, options: &MallocPath) -> String {
    match phase {
        "steady" => format!("{} × malloc(24)/free", options.steady_pairs),
        "heap-growth" => format!("{} × malloc({}) kept", options.growth_blocks, options.growth_size),
        "heap-release" => format!("those {} blocks freed", options.growth_blocks),
        "large-first" => format!("malloc({}) + free, first", report::bytes(options.large_size as f64)),
        "large-second" => format!("malloc({}) + free, second", report::bytes(options.large_size as f64)),
        "large-again" => format!("{} more such pairs", options.large_repeats),
        "thread-first" => "new thread: first malloc(24)".to_owned(),
        "thread-second" => "same thread: second malloc(24)".to_owned(),
        other => other.to_owned(),
    }
}

impl MallocPathOutcome {
    fn run_of(&self, label: &str) -> Option<&SettingRun> {
        self.runs.iter().find(|r| r.label == label)
    }
}

fn ns(value: f64) -> String {
    if value >= 10_000.0 { format!("{:.1} µs", value / 1000.0) } else { format!("{value:.1} ns") }
}

impl Outcome for MallocPathOutcome {
    fn slug(&self) -> &'static str {
        "malloc-path"
    }

    fn title(&self) -> String {
        "Self-assessment: the malloc fast path and its rare paths".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let mut findings = Vec::new();
        for run in &self.runs {
            let steady = run.calls("steady");
            if let Some(t) = run.timing("steady") {
                findings.push(format!(
                    "{}: {} system calls over {} malloc(24)/free pairs after warm-up, {} per pair; served by {}.",
                    run.label,
                    steady.total(),
                    t.ops,
                    ns(run.timed.steady_ns_per_pair),
                    layer(run)
                ));
            }
        }
        if let (Some(on), Some(off)) = (self.run_of("glibc"), self.run_of("glibc, tcache_count=0")) {
            let (a, b) = (on.timed.steady_ns_per_pair, off.timed.steady_ns_per_pair);
            findings.push(format!(
                "Without the tcache the fastbins serve malloc(24): {} per pair against {} ({} the tcache's time).",
                ns(b),
                ns(a),
                report::ratio(b / a.max(f64::MIN_POSITIVE))
            ));
        }
        if let Some(glibc) = self.run_of("glibc") {
            let growth = glibc.calls("heap-growth");
            if let Some(t) = glibc.timing("heap-growth") {
                let split = t.break_split().map_or(String::new(), |(moved, rest)| {
                    format!(
                        "; a malloc that moved the break took {} against {} for one that did not",
                        ns(moved),
                        ns(rest)
                    )
                });
                findings.push(format!(
                    "glibc heap growth: {} × malloc({}) made {} brk calls ({}){split}.",
                    t.ops,
                    self.options.growth_size,
                    growth.count("brk"),
                    growth.sizes()
                ));
            }
            let release = glibc.calls("heap-release");
            findings.push(format!(
                "glibc heap release: freeing them last-first made {} ({}): each free merged into the top chunk, which then held more than M_TRIM_THRESHOLD (128 KiB) free, so glibc gave the excess back at once{}.",
                release.summary(),
                release.sizes(),
                glibc.timing("heap-release").map_or(String::new(), |t| format!(", {} per free", ns(t.ns_per_op())))
            ));
            let (first, second, again) =
                (glibc.calls("large-first"), glibc.calls("large-second"), glibc.calls("large-again"));
            let evidence = glibc.timed.glibc.map_or(String::new(), |e| {
                format!(
                    " (mallinfo2: {} mmapped chunk(s) while the first was live, {} while the second was)",
                    e.mmapped_chunks_first, e.mmapped_chunks_second
                )
            });
            findings.push(format!(
                "glibc large request, {}: first {} ({}, {}); after its free raised the mmap threshold, the second made {} mmap ({}, {}); {} more pairs made {} system calls{evidence}.",
                report::bytes(self.options.large_size as f64),
                first.summary(),
                first.sizes(),
                glibc.timing("large-first").map_or("-".into(), |t| ns(t.ns_per_op())),
                second.count("mmap"),
                second.summary(),
                glibc.timing("large-second").map_or("-".into(), |t| ns(t.ns_per_op())),
                self.options.large_repeats,
                again.total(),
            ));
        }
        for run in &self.runs {
            if run.label == "glibc, tcache_count=0" {
                continue;
            }
            let first = run.calls("thread-first");
            let second = run.calls("thread-second");
            findings.push(format!(
                "{}: a new thread's first malloc(24) made {} ({}; net {} mapped) in {}; its second made {} system calls in {}.",
                run.label,
                first.summary(),
                first.sizes(),
                report::signed_bytes(first.net_mapped() as f64),
                run.timing("thread-first").map_or("-".into(), |t| ns(t.ns_per_op())),
                second.total(),
                run.timing("thread-second").map_or("-".into(), |t| ns(t.ns_per_op())),
            ));
        }
        for (kind, install) in &self.missing {
            findings.push(format!("{kind} is not installed and was skipped; install it with `{install}`"));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let mut steady = Table::new(
            "malloc(24)/free after warm-up: system calls (strace -f) and the layer that serves it",
            &[
                "setting",
                "pairs",
                "system calls",
                "ns per pair (fastest of 10 rounds × 3 runs)",
                "served by (measured on glibc: mallinfo2)",
            ],
        );
        for run in &self.runs {
            if let Some(t) = run.timing("steady") {
                steady.push(vec![
                    run.label.clone(),
                    t.ops.to_string(),
                    run.calls("steady").total().to_string(),
                    format!("{:.1}", run.timed.steady_ns_per_pair),
                    layer(run),
                ]);
            }
        }
        let mut rare = Table::new(
            "Rare paths: the system calls each phase made (strace -f, this thread only) and its cost (untraced run)",
            &["setting", "phase", "what", "system calls", "sizes", "ns per op", "ns when the break moved"],
        );
        for run in &self.runs {
            for phase in PHASES.iter().skip(1) {
                let calls = run.calls(phase);
                let timing = run.timing(phase);
                rare.push(vec![
                    run.label.clone(),
                    (*phase).to_owned(),
                    phase_what(phase, &self.options),
                    calls.summary(),
                    calls.sizes(),
                    timing.map_or("-".into(), |t| format!("{:.0}", t.ns_per_op())),
                    timing
                        .and_then(PhaseTiming::break_split)
                        .map_or("-".into(), |(moved, _)| format!("{moved:.0}")),
                ]);
            }
        }
        vec![steady, rare]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut table = Table::new(
            "",
            &[
                "setting",
                "phase",
                "ops",
                "total_ns",
                "syscalls",
                "brk",
                "mmap",
                "munmap",
                "brk_bytes",
                "mmap_bytes",
                "break_moves",
                "break_move_ns",
            ],
        );
        for run in &self.runs {
            for phase in PHASES {
                let calls = run.calls(phase);
                let Some(t) = run.timing(phase) else { continue };
                table.push(vec![
                    run.label.clone(),
                    phase.to_owned(),
                    t.ops.to_string(),
                    t.total_ns.to_string(),
                    calls.total().to_string(),
                    calls.count("brk").to_string(),
                    calls.count("mmap").to_string(),
                    calls.count("munmap").to_string(),
                    calls.brk_deltas.iter().sum::<i64>().to_string(),
                    calls.mmaps.iter().map(|(l, _)| *l).sum::<u64>().to_string(),
                    t.break_moves.to_string(),
                    t.break_move_ns.to_string(),
                ]);
            }
        }
        vec![CsvFile { file_name: "malloc-path.csv".into(), table }]
    }

    fn charts(&self) -> Vec<Chart> {
        vec![Chart {
            file_name: "malloc-path.png".into(),
            caption: "ns per malloc(24)/free pair after warm-up, per setting".into(),
            kind: ChartKind::Bars {
                title: "malloc(24)/free fast path (ns per pair)".into(),
                y_label: "ns per pair".into(),
                bars: self
                    .runs
                    .iter()
                    .filter_map(|run| {
                        run.timing("steady")
                            .map(|_| Bar { label: run.label.clone(), value: run.timed.steady_ns_per_pair })
                    })
                    .collect(),
                log_y: false,
            },
        }]
    }

    fn explanation(&self) -> String {
        "How to read it. A `malloc(24)` needs a 32-byte chunk; on glibc the thread's tcache keeps \
         up to `tcache_count` (7 by default) freed chunks per size in a singly linked list, so a \
         free followed by a malloc of the same size is a push and a pop with no lock; with \
         `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` the same pair goes to the arena's fastbins \
         (an atomic list per size up to 128 B) and costs more. No layer of the fast path enters \
         the kernel: the system-call column of the first table is the count strace saw between \
         the phase's markers. The kernel is asked only when the arena runs out: the main arena \
         grows its top with `brk` (by the request plus `M_TOP_PAD`, 128 KiB, rounded to pages) and \
         trims it when more than `M_TRIM_THRESHOLD` is free at the top; a request above \
         `M_MMAP_THRESHOLD` (128 KiB at start) gets its own `mmap`, and freeing such a chunk raises \
         the threshold to its size (and the trim threshold to twice that), so the same request \
         later comes from the heap; a thread that finds no free arena creates one with a heap \
         reserved as `PROT_NONE` (an aligned 64 MiB `HEAP_MAX_SIZE` window cut out of a larger \
         mapping) and made writable piece by piece with `mprotect`. jemalloc and allockit-malloc \
         take their memory with `mmap` (extents, segments) and keep freed ones for reuse.\n\nTimes come from runs without strace (three per setting, alternating \
         between the settings; the run with the fastest steady phase is shown, and the steady \
         figure is its fastest of ten rounds); system calls from a run under \
         `strace -f` (a traced call costs far more).\n"
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_lines_are_parsed_and_resumed_halves_skipped() {
        let call =
            parse_strace_line("1234  brk(0x55d000021000)                    = 0x55d000021000").unwrap();
        assert_eq!((call.tid, call.name.as_str(), call.ret.as_str()), (1234, "brk", "0x55d000021000"));
        assert!(parse_strace_line("1234  <... futex resumed>) = 0").is_none());
        assert!(parse_strace_line("1234  +++ exited with 0 +++").is_none());
        let unfinished = parse_strace_line("77 futex(0x7f, FUTEX_WAIT, 2, NULL <unfinished ...>").unwrap();
        assert_eq!(unfinished.name, "futex");
    }

    #[test]
    fn traces_are_cut_at_markers_per_thread() {
        let trace = "\
10 brk(NULL) = 0x1000
10 write(-1, \"allockit-mark:heap-growth:begin\", 31) = -1 EBADF (Bad file descriptor)
11 mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
10 brk(0x22000) = 0x22000
10 brk(0x43000) = 0x43000
10 write(-1, \"allockit-mark:heap-growth:end\", 29) = -1 EBADF (Bad file descriptor)
10 write(-1, \"allockit-mark:large-first:begin\", 31) = -1 EBADF (Bad file descriptor)
10 mmap(NULL, 1052672, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
10 munmap(0x7f0000100000, 1052672) = 0
10 write(-1, \"allockit-mark:large-first:end\", 29) = -1 EBADF (Bad file descriptor)
10 write(-1, \"allockit-mark:steady:begin\", 26) = -1 EBADF (Bad file descriptor)
10 write(-1, \"allockit-mark:steady:end\", 24) = -1 EBADF (Bad file descriptor)
";
        let phases = split_trace(trace);
        let growth = &phases["heap-growth"];
        assert_eq!(growth.count("brk"), 2);
        assert_eq!(growth.total(), 2, "the other thread's mmap is not counted");
        assert_eq!(growth.brk_deltas, vec![0x21000, 0x21000]);
        let large = &phases["large-first"];
        assert_eq!(large.mmaps, vec![(1_052_672, false)]);
        assert_eq!(large.munmaps, vec![1_052_672]);
        assert_eq!(large.net_mapped(), 0);
        assert_eq!(phases["steady"].total(), 0);
    }
}
