//! Task 11: where the live bytes were allocated — a jemalloc heap profile.
//!
//! A child runs a small workload on jemalloc with heap profiling on
//! (`MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19`: one sample per 512 KiB
//! allocated on average, cheap enough for production). Three allocation sites retain
//! different amounts on purpose: a session table (the most), an index of strings, and
//! request buffers that are all freed again (allocated a lot, live nothing). The child
//! writes a dump with `prof.dump`; the parent symbolizes it with `jeprof --text --cum`
//! (Debian `libjemalloc-dev`) and converts it to pprof's protobuf format with
//! `pprof_util` (the conversion layer of the `jemalloc_pprof` crate; `jemalloc_pprof`
//! itself reads the profile through `tikv-jemalloc-ctl`, which needs jemalloc linked
//! into the binary — the lab's binary must stay on the system allocator so that
//! `LD_PRELOAD` can swap it).
//!
//! With `--url`, the dump comes from a running server's admin route
//! (`GET /admin/heap-profile`, jemalloc's raw profile) and is symbolized against
//! `--server-bin`.
//!
//! The profile is sampled: small sites may be missing and byte counts are estimates
//! (jeprof scales each sample by the sampling rate). For the built-in workload the child
//! also reports each site's true live bytes — every allocation the site still holds,
//! Vec buffers included, at jemalloc's size class (`malloc_usable_size`) — so the
//! profile's error can be measured, and two studies run beside the profile:
//! [`sweep`] repeats the workload at several `lg_prof_sample` settings against
//! profiling off (error, samples, overhead) and [`leak_watch`] takes two dumps of a
//! growing and a churning site and diffs them with `jeprof --base`. The call graph is
//! rendered with `jeprof --pdf` (graphviz's `dot -Tps2`, then ghostscript's `ps2pdf`).

pub mod leak_watch;
pub mod sweep;

pub use leak_watch::{
    LEAK_SITES, LEAK_WATCH_CONF, LeakWatch, LeakWatchOutcome, LeakWatchRun, SiteTrend, Trend, trend,
};
pub use sweep::{SWEEP_LG_PROF_SAMPLE, SamplingRun, Sweep, SweepOptions, SweepRow};

use std::ffi::{OsStr, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use allockit_probe::http::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind};
use crate::chart::{Bar, Chart, ChartKind};
use crate::child::{ChildTask, Launch};
use crate::process::TempDir;
use crate::report::{self, CsvFile, Outcome, Table};
use crate::scale::{AtScale, Scale};

/// jemalloc's configuration for the profiled child.
pub const PROFILING_CONF: &str = "prof:true,prof_active:true,lg_prof_sample:19";

/// jemalloc's configuration for a child profiled at `lg_prof_sample` (one sample per
/// 2^`lg_prof_sample` bytes allocated on average).
pub fn profiling_conf(lg_prof_sample: u32) -> String {
    format!("prof:true,prof_active:true,lg_prof_sample:{lg_prof_sample}")
}

/// The allocation sites of the profiled workload, most live bytes first.
pub const SITES: [&str; 3] = ["retain_session_table", "retain_index_strings", "churn_request_buffers"];

/// The workload a profiled child runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfiledWorkload {
    /// Where to write the heap profile; `None` runs the workload without profiling (the
    /// baseline of [`sweep`]'s overhead).
    pub dump_path: Option<PathBuf>,
    /// Bytes the session table keeps live (4 KiB entries).
    pub session_bytes: usize,
    /// Bytes the string index keeps live (64–256 B strings).
    pub index_bytes: usize,
    /// Bytes of request buffers allocated and freed again.
    pub churn_bytes: usize,
}

impl ProfiledWorkload {
    /// Task 11 in full (set `dump_path` to profile it).
    pub fn full() -> Self {
        ProfiledWorkload {
            dump_path: None,
            session_bytes: 96 << 20,
            index_bytes: 32 << 20,
            churn_bytes: 512 << 20,
        }
    }

    /// The test-suite version (set `dump_path` to profile it).
    pub fn quick() -> Self {
        ProfiledWorkload {
            dump_path: None,
            session_bytes: 48 << 20,
            index_bytes: 16 << 20,
            churn_bytes: 128 << 20,
        }
    }
}

/// What the profiled child did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfiledRun {
    /// Payload bytes of the session table's entries at the dump (`Vec::len`).
    pub session_bytes: usize,
    /// Payload bytes of the string index at the dump (`String::len`).
    pub index_bytes: usize,
    /// Bytes of request buffers allocated (all freed before the dump).
    pub churn_bytes: usize,
    /// Each site's true live bytes at the dump, in [`SITES`] order: every allocation the
    /// site still holds (the outer `Vec` buffer too) at its size class, as jemalloc's
    /// `malloc_usable_size` reports it — what a heap profile estimates.
    pub true_live_bytes: [usize; 3],
    /// Allocations the workload made (a `Vec` buffer's regrowths included).
    pub allocations: usize,
    /// Wall-clock nanoseconds the three sites took, without the dump.
    pub workload_ns: u64,
    /// CPU nanoseconds the process spent on the three sites (user and system): unlike the
    /// wall clock, it does not count the time other processes of a loaded machine ran.
    pub workload_cpu_ns: u64,
    /// `opt.prof` as jemalloc read it.
    pub profiling: bool,
    /// `opt.lg_prof_sample` as jemalloc read it.
    pub lg_prof_sample: usize,
}

impl ProfiledRun {
    /// Allocations per CPU second over the three sites.
    pub fn allocations_per_sec(&self) -> f64 {
        self.allocations as f64 / (self.workload_cpu_ns.max(1) as f64 / 1e9)
    }
}

impl ChildTask for ProfiledWorkload {
    const NAME: &'static str = "profile-workload";
    type Output = ProfiledRun;

    fn run(self) -> Result<ProfiledRun, LabError> {
        let jemalloc = crate::jemalloc::Jemalloc::loaded()?;
        let profiling = jemalloc.read_bool("opt.prof")?;
        if self.dump_path.is_some() && !profiling {
            return Err(LabError::Profile(format!(
                "heap profiling is off; run with MALLOC_CONF={PROFILING_CONF}"
            )));
        }
        let (start, start_cpu) = (Instant::now(), process_cpu_ns()?);
        let sessions = retain_session_table(self.session_bytes);
        let index = retain_index_strings(self.index_bytes);
        let churned = churn_request_buffers(self.churn_bytes);
        let workload_cpu_ns = process_cpu_ns()? - start_cpu;
        let workload_ns = start.elapsed().as_nanos() as u64;
        if let Some(path) = &self.dump_path {
            jemalloc.dump_profile(path)?;
        }
        let run = ProfiledRun {
            session_bytes: sessions.iter().map(Vec::len).sum(),
            index_bytes: index.iter().map(String::len).sum(),
            churn_bytes: self.churn_bytes,
            true_live_bytes: [
                table_live_bytes(&sessions),
                vec_live_bytes(&index) + index.iter().map(string_live_bytes).sum::<usize>(),
                0,
            ],
            allocations: sessions.len() + 1 + index.len() + doubling_allocations(index.capacity()) + churned,
            workload_ns,
            workload_cpu_ns,
            profiling,
            lg_prof_sample: jemalloc.read_usize("opt.lg_prof_sample")?,
        };
        drop((sessions, index));
        Ok(run)
    }
}

/// The CPU time this process has used, in nanoseconds (`CLOCK_PROCESS_CPUTIME_ID`).
fn process_cpu_ns() -> Result<u64, LabError> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to ours.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) } != 0 {
        return Err(LabError::Profile(format!(
            "clock_gettime(CLOCK_PROCESS_CPUTIME_ID): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}

/// The bytes jemalloc holds for `vec`'s buffer: its size class (spare capacity and
/// rounding included), which is what a heap profile counts; 0 when it allocated nothing.
///
/// Only meaningful in a child that runs on jemalloc (the lab binary has no
/// `#[global_allocator]`, so `Vec` and `String` allocate with the preloaded `malloc`).
fn vec_live_bytes<T>(vec: &Vec<T>) -> usize {
    buffer_usable_size(vec.as_ptr(), vec.capacity(), size_of::<T>())
}

/// [`vec_live_bytes`] of a table of buffers: its own buffer and every entry's.
pub(crate) fn table_live_bytes(table: &Vec<Vec<u8>>) -> usize {
    vec_live_bytes(table) + table.iter().map(vec_live_bytes).sum::<usize>()
}

/// [`vec_live_bytes`] for a `String`.
fn string_live_bytes(string: &String) -> usize {
    buffer_usable_size(string.as_ptr(), string.capacity(), 1)
}

fn buffer_usable_size<T>(start: *const T, elements: usize, element_size: usize) -> usize {
    if elements == 0 || element_size == 0 {
        return 0;
    }
    // SAFETY: a non-empty buffer of sized elements owned by a live `Vec`, `String` or
    // slice of one points at the start of a live allocation made by the global allocator,
    // which is the process's `malloc` (the lab has no `#[global_allocator]`, and every
    // element type here has an alignment `malloc` already guarantees);
    // `malloc_usable_size` only reads that allocation's metadata.
    unsafe { libc::malloc_usable_size(start.cast_mut().cast::<c_void>()) }
}

/// The allocations a `Vec` of 24-byte elements made growing by doubling from 4 to `capacity`.
fn doubling_allocations(capacity: usize) -> usize {
    if capacity < 4 { usize::from(capacity > 0) } else { (capacity / 4).ilog2() as usize + 1 }
}

// The sites end with `black_box` on their result so that the compiler cannot turn the
// last call into a tail jump, which would drop the site's own frame from every stack.

/// The biggest live site: 4 KiB session buffers.
#[inline(never)]
fn retain_session_table(bytes: usize) -> Vec<Vec<u8>> {
    let table: Vec<Vec<u8>> = (0..bytes / 4096).map(|i| vec![i as u8; 4096]).collect();
    std::hint::black_box(&table);
    table
}

/// The second site: many small strings.
#[inline(never)]
fn retain_index_strings(bytes: usize) -> Vec<String> {
    let mut total = 0;
    let mut strings = Vec::new();
    let mut i = 0usize;
    while total < bytes {
        let len = 64 + (i * 37) % 193;
        strings.push("k".repeat(len));
        total += len;
        i += 1;
    }
    std::hint::black_box(&strings);
    strings
}

/// Allocates a lot and keeps nothing: absent from a live-bytes profile. Returns the
/// number of buffers it allocated.
#[inline(never)]
fn churn_request_buffers(bytes: usize) -> usize {
    let buffers = bytes / 16384;
    for i in 0..buffers {
        std::hint::black_box(vec![i as u8; 16384]);
    }
    std::hint::black_box(buffers)
}

/// One line of `jeprof --text --cum`.
#[derive(Debug, Clone, PartialEq)]
pub struct JeprofRow {
    /// Bytes allocated directly in this function.
    pub flat_bytes: f64,
    /// Bytes allocated in this function and everything it called.
    pub cum_bytes: f64,
    /// Share of the total for `cum_bytes`, in percent.
    pub cum_percent: f64,
    /// The (demangled) function.
    pub function: String,
}

/// Parses `jeprof --text` output (sizes in MB).
pub fn parse_jeprof_text(text: &str) -> (Option<f64>, Vec<JeprofRow>) {
    const MB: f64 = 1024.0 * 1024.0;
    let mut total = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Total:") {
            total = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).map(|v| v * MB);
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 {
            continue;
        }
        let number = |i: usize| fields[i].trim_end_matches('%').parse::<f64>().ok();
        if let (Some(flat), Some(_), Some(_), Some(cum), Some(cum_percent)) =
            (number(0), number(1), number(2), number(3), number(4))
        {
            rows.push(JeprofRow {
                flat_bytes: flat * MB,
                cum_bytes: cum * MB,
                cum_percent,
                function: strip_rust_hash(&fields[5..].join(" ")),
            });
        }
    }
    (total, rows)
}

/// Drops the `::h0123456789abcdef` suffix of legacy-mangled Rust symbols.
fn strip_rust_hash(function: &str) -> String {
    match function.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            path.to_owned()
        }
        _ => function.to_owned(),
    }
}

/// The numbers in a raw heap profile, without symbols.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DumpSummary {
    /// Average bytes between samples (2^lg_prof_sample).
    pub sample_period: f64,
    /// Distinct stacks with live samples.
    pub stacks: usize,
    /// Live sampled objects over all stacks (the `t*: N:` counts after each `@` line):
    /// what the estimates rest on.
    pub samples: u64,
    /// Estimated live bytes over all stacks (samples scaled as jeprof does).
    pub estimated_live_bytes: f64,
}

fn profile_error(e: impl std::fmt::Display) -> LabError {
    LabError::Profile(e.to_string())
}

/// The executable mappings listed after `MAPPED_LIBRARIES:` in a jemalloc dump.
pub fn dump_mappings(dump: &str) -> Vec<pprof_util::Mapping> {
    let Some((_, maps)) = dump.split_once("MAPPED_LIBRARIES:") else { return Vec::new() };
    maps.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (range, perms, offset, path) =
                (fields.first()?, fields.get(1)?, fields.get(2)?, fields.get(5)?);
            if !perms.contains('x') || !path.starts_with('/') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let offset = usize::from_str_radix(offset, 16).ok()?;
            Some(pprof_util::Mapping {
                memory_start: usize::from_str_radix(start, 16).ok()?,
                memory_end: usize::from_str_radix(end, 16).ok()?,
                memory_offset: offset,
                file_offset: offset as u64,
                pathname: PathBuf::from(path),
                build_id: None,
            })
        })
        .collect()
}

/// A dump's mean bytes between samples (2^lg_prof_sample), from its `heap_v2/N` header.
pub fn sample_period(dump: &str) -> Result<f64, LabError> {
    let first = dump.lines().next().unwrap_or_default();
    first
        .strip_prefix("heap_v2/")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| LabError::Profile(format!("not a jemalloc heap profile (first line {first:?})")))
}

/// Summarizes a dump and converts it to gzipped pprof protobuf.
pub fn convert_dump(dump: &[u8]) -> Result<(DumpSummary, Vec<u8>), LabError> {
    let text = String::from_utf8_lossy(dump);
    let sample_period = sample_period(&text)?;
    let mappings = dump_mappings(&text);
    let profile = pprof_util::parse_jeheap(dump, Some(&mappings)).map_err(profile_error)?;
    let summary = DumpSummary {
        sample_period,
        stacks: profile.stacks.len(),
        samples: count_samples(&text),
        estimated_live_bytes: profile.stacks.iter().map(|(stack, _)| stack.weight).sum(),
    };
    let pprof = profile.to_pprof(("inuse_space", "bytes"), ("space", "bytes"), None);
    Ok((summary, pprof))
}

/// The live sampled objects in a jemalloc dump: the sum of the object counts on the
/// `t*:` line that follows each stack (`@ ...`); the header's own `t*:` line (the
/// process total) is not counted twice.
pub fn count_samples(dump: &str) -> u64 {
    let mut after_stack = false;
    let mut samples = 0;
    for line in dump.lines() {
        let line = line.trim();
        if line.starts_with('@') {
            after_stack = true;
        } else if let Some(rest) = line.strip_prefix("t*:").filter(|_| after_stack) {
            after_stack = false;
            samples += rest.split(':').next().and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0);
        }
    }
    samples
}

/// What the built-in workload kept live, and the two studies run beside its profile.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadFindings {
    /// The profiled run (`lg_prof_sample:19`) with each site's true live bytes.
    pub run: ProfiledRun,
    /// The same workload at several sampling rates against profiling off.
    pub sweep: Sweep,
    /// A growing site and a churning one, two dumps apart.
    pub leak_watch: LeakWatchOutcome,
}

/// Where the profile came from.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileSource {
    /// The built-in workload: what it kept live, and the studies.
    Workload(Box<WorkloadFindings>),
    /// A server's admin route.
    Url(String),
}

/// `jeprof --pdf`'s call graph, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum CallGraph {
    /// The PDF (`%PDF-...`).
    Pdf(Vec<u8>),
    /// A tool of the pipeline (jeprof, graphviz's `dot`, ghostscript's `ps2pdf`) is missing.
    Missing {
        /// The missing programs.
        tools: Vec<&'static str>,
        /// The command that installs them.
        install: String,
    },
}

/// jeprof's view, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Symbolized {
    /// `jeprof --text --cum` ran.
    Jeprof {
        /// Total live bytes jeprof estimated.
        total_bytes: Option<f64>,
        /// Its rows, most cumulative bytes first.
        rows: Vec<JeprofRow>,
    },
    /// jeprof is not installed.
    JeprofMissing {
        /// The command that installs it.
        install: String,
    },
}

/// Task 11's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileOutcome {
    /// Where the profile came from.
    pub source: ProfileSource,
    /// The binary the addresses belong to.
    pub binary: PathBuf,
    /// The raw dump (jeprof format).
    pub dump: Vec<u8>,
    /// The dump's sample period, stack count and estimated live bytes, read without
    /// symbols (so available even where jeprof is not).
    pub summary: DumpSummary,
    /// The gzipped pprof protobuf.
    pub pprof: Vec<u8>,
    /// The symbolized top sites.
    pub symbolized: Symbolized,
    /// The call graph as `jeprof --pdf` draws it.
    pub call_graph: CallGraph,
}

impl ProfileOutcome {
    /// jeprof's cumulative bytes for the first row whose function contains `site`.
    pub fn site_bytes(&self, site: &str) -> Option<f64> {
        match &self.symbolized {
            Symbolized::Jeprof { rows, .. } => {
                rows.iter().find(|r| r.function.contains(site)).map(|r| r.cum_bytes)
            }
            Symbolized::JeprofMissing { .. } => None,
        }
    }
}

const INSTALL_JEPROF: &str = "sudo apt-get install -y libjemalloc-dev";

/// Runs `jeprof ARGS...`: its stdout, or `None` when jeprof is not installed.
fn jeprof(args: &[&OsStr]) -> Result<Option<Vec<u8>>, LabError> {
    let output = match Command::new("jeprof").args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(LabError::Spawn { command: "jeprof".into(), cause }),
    };
    if !output.status.success() {
        let command: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        return Err(LabError::ChildFailed {
            command: format!("jeprof {}", command.join(" ")),
            status: output.status.to_string(),
            stderr_tail: String::from_utf8_lossy(&output.stderr[output.stderr.len().saturating_sub(2000)..])
                .into_owned(),
        });
    }
    Ok(Some(output.stdout))
}

/// Runs `jeprof --text --cum [EXTRA...] BINARY DUMP` (`EXTRA` such as `--base=FIRST` or
/// `--alloc_space`), or says how to install jeprof when it is missing.
pub fn symbolize_with(binary: &Path, dump: &Path, extra: &[&OsStr]) -> Result<Symbolized, LabError> {
    let mut args: Vec<&OsStr> = vec![OsStr::new("--text"), OsStr::new("--cum")];
    args.extend_from_slice(extra);
    args.extend([binary.as_os_str(), dump.as_os_str()]);
    Ok(match jeprof(&args)? {
        Some(stdout) => {
            let (total_bytes, rows) = parse_jeprof_text(&String::from_utf8_lossy(&stdout));
            Symbolized::Jeprof { total_bytes, rows }
        }
        None => Symbolized::JeprofMissing { install: INSTALL_JEPROF.to_owned() },
    })
}

/// Runs `jeprof --text --cum BINARY DUMP`, or says how to install jeprof when it is missing.
pub fn symbolize(binary: &Path, dump: &Path) -> Result<Symbolized, LabError> {
    symbolize_with(binary, dump, &[])
}

/// Whether `program` is an executable file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Draws the call graph with `jeprof --pdf BINARY DUMP`, whose pipeline is graphviz's
/// `dot -Tps2` into ghostscript's `ps2pdf`; says what to install when a tool is missing.
pub fn render_call_graph(binary: &Path, dump: &Path) -> Result<CallGraph, LabError> {
    let tools: Vec<&'static str> =
        ["jeprof", "dot", "ps2pdf"].into_iter().filter(|tool| !on_path(tool)).collect();
    if !tools.is_empty() {
        return Ok(CallGraph::Missing {
            tools,
            install: "sudo apt-get install -y libjemalloc-dev graphviz ghostscript (or scripts/install-deps)"
                .to_owned(),
        });
    }
    let pdf = jeprof(&[OsStr::new("--pdf"), binary.as_os_str(), dump.as_os_str()])?.unwrap_or_default();
    if !pdf.starts_with(b"%PDF") {
        return Err(LabError::Profile(format!(
            "jeprof --pdf {} {} printed {} bytes that are not a PDF",
            binary.display(),
            dump.display(),
            pdf.len()
        )));
    }
    Ok(CallGraph::Pdf(pdf))
}

/// Profiles the built-in workload at `scale` in a jemalloc child and symbolizes the dump.
pub fn run_workload(exe: &Path, scale: Scale) -> Result<ProfileOutcome, LabError> {
    let dir = TempDir::new("profile")?;
    let dump_path = dir.path().join("workload.heap");
    let workload = ProfiledWorkload { dump_path: Some(dump_path.clone()), ..ProfiledWorkload::at(scale) };
    let jemalloc = allocator::locate(AllocatorKind::Jemalloc);
    let mut launch = Launch::new(exe, &jemalloc);
    launch.env.push(("MALLOC_CONF".to_owned(), PROFILING_CONF.to_owned()));
    let (run, _) = launch.run(&workload)?;
    let dump = std::fs::read(&dump_path).map_err(|e| LabError::file("read", &dump_path, e))?;
    let (summary, pprof) = convert_dump(&dump)?;
    let symbolized = symbolize(exe, &dump_path)?;
    let call_graph = render_call_graph(exe, &dump_path)?;
    let sweep = sweep::run(exe, &SweepOptions::at(scale))?;
    let leak_watch = leak_watch::run(exe, &LeakWatch::at(scale))?;
    Ok(ProfileOutcome {
        source: ProfileSource::Workload(Box::new(WorkloadFindings { run, sweep, leak_watch })),
        binary: exe.to_path_buf(),
        dump,
        summary,
        pprof,
        symbolized,
        call_graph,
    })
}

/// How to fetch a heap profile from a server's admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProfile<'a> {
    /// The heap-profile route, e.g. `http://127.0.0.1:9091/admin/heap-profile`.
    pub url: &'a str,
    /// The server's binary, to symbolize the dump.
    pub server_bin: &'a Path,
    /// The admin listener's bearer token, if it needs one.
    pub token: Option<&'a str>,
    /// Turn sampling on (`POST /admin/profiling?active=true`) for this long before the
    /// dump, and off again after it; `None` takes the dump as sampling stands.
    pub sample_for: Option<Duration>,
}

/// The admin route that switches sampling, next to the heap-profile route.
fn profiling_switch(url: &str, active: bool) -> String {
    let base = url.strip_suffix("/admin/heap-profile").unwrap_or(url.trim_end_matches('/'));
    format!("{base}/admin/profiling?active={active}")
}

/// `method url` on the server's admin listener with its bearer token; a URL that is not
/// plain `http://` is a bad `--url`, a non-2xx answer an error.
fn admin_request(
    method: &str,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Response, LabError> {
    Request::new(method, url)
        .map(|request| request.bearer(token).timeout(timeout))
        .and_then(|request| request.send())
        .and_then(Response::error_for_status)
        .map_err(|error| LabError::from_request("--url", error))
}

/// Fetches a heap profile from a server's admin route and symbolizes it against the
/// server's binary.
pub fn run_url(server: &ServerProfile<'_>) -> Result<ProfileOutcome, LabError> {
    if !server.server_bin.is_file() {
        return Err(LabError::InvalidArgument {
            flag: "--server-bin",
            reason: format!("{} is not a file", server.server_bin.display()),
        });
    }
    let timeout = Duration::from_secs(30);
    if let Some(window) = server.sample_for {
        admin_request("POST", &profiling_switch(server.url, true), server.token, timeout)?;
        std::thread::sleep(window);
    }
    let fetched = admin_request("GET", server.url, server.token, timeout);
    if server.sample_for.is_some() {
        admin_request("POST", &profiling_switch(server.url, false), server.token, timeout)?;
    }
    let response = fetched?;
    let dir = TempDir::new("profile-url")?;
    let dump_path = dir.path().join("server.heap");
    std::fs::write(&dump_path, &response.body).map_err(|e| LabError::file("write", &dump_path, e))?;
    let (summary, pprof) = convert_dump(&response.body)?;
    let symbolized = symbolize(server.server_bin, &dump_path)?;
    let call_graph = render_call_graph(server.server_bin, &dump_path)?;
    Ok(ProfileOutcome {
        source: ProfileSource::Url(server.url.to_owned()),
        binary: server.server_bin.to_path_buf(),
        dump: response.body,
        summary,
        pprof,
        symbolized,
        call_graph,
    })
}

const TOP_ROWS: usize = 15;

/// How far `estimate` is from `truth`, in percent of `truth`.
pub fn error_percent(estimate: f64, truth: f64) -> f64 {
    (estimate - truth) / truth * 100.0
}

/// Splits jeprof's rows into the entry frames every sample passes through (`main`,
/// `_start`, the runtime's closures: at least 99% of the total) and the qualified
/// functions below them (names that start with a `crate::` path; jeprof reports inlined
/// generic code by a bare or truncated name, such as `fold (inline)` or
/// `::from_iter (inline)`, which says nothing about the site).
pub fn split_entry_frames(rows: &[JeprofRow], total: f64) -> (Vec<&JeprofRow>, Vec<&JeprofRow>) {
    let (entry, rest): (Vec<&JeprofRow>, Vec<&JeprofRow>) =
        rows.iter().partition(|row| row.cum_bytes >= 0.99 * total);
    let qualified = |name: &str| name.split_once("::").is_some_and(|(head, _)| !head.is_empty());
    (entry, rest.into_iter().filter(|row| qualified(&row.function)).collect())
}

impl Outcome for ProfileOutcome {
    fn slug(&self) -> &'static str {
        "profile"
    }

    fn title(&self) -> String {
        "Task 11: heap profile, top allocation sites by live bytes".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let mut findings = vec![format!(
            "the dump holds {} live samples on {} stacks, one sample per {} allocated on average; estimated live \
             bytes {}",
            self.summary.samples,
            self.summary.stacks,
            report::bytes(self.summary.sample_period),
            report::bytes(self.summary.estimated_live_bytes),
        )];
        if let ProfileSource::Workload(found) = &self.source {
            let run = &found.run;
            for (i, (site, payload)) in SITES.iter().zip([run.session_bytes, run.index_bytes]).enumerate() {
                let truth = run.true_live_bytes[i] as f64;
                let profiled = self.site_bytes(site).map_or("the profile does not show it".to_owned(), |b| {
                    format!(
                        "the profile estimates {}, {:+.1}% off",
                        report::bytes(b),
                        error_percent(b, truth)
                    )
                });
                findings.push(format!(
                    "{site}: {} truly live (every allocation it holds, the outer Vec's buffer too, at jemalloc's \
                     size class; its payload is {}); {profiled}",
                    report::bytes(truth),
                    report::bytes(payload as f64)
                ));
            }
            findings.push(format!(
                "churn_request_buffers allocated {} and freed all of it: a live-bytes profile rightly ignores it \
                 (estimate {})",
                report::bytes(run.churn_bytes as f64),
                report::bytes(self.site_bytes(SITES[2]).unwrap_or(0.0))
            ));
            findings.extend(found.sweep.findings());
            findings.extend(found.leak_watch.findings());
        }
        match &self.call_graph {
            CallGraph::Pdf(pdf) => findings.push(format!(
                "jeprof --pdf drew the call graph into profile.pdf ({})",
                report::bytes(pdf.len() as f64)
            )),
            CallGraph::Missing { tools, install } => findings
                .push(format!("no call graph PDF: {} missing; install with `{install}`", tools.join(", "))),
        }
        if self.summary.stacks == 0 {
            findings.push(
                "the profile holds no samples: was sampling active? (POST /admin/profiling?active=true on the \
                 server's admin listener, or pass --sample-for SECS)"
                    .to_owned(),
            );
        }
        if let Symbolized::JeprofMissing { install } = &self.symbolized {
            findings.push(format!(
                "jeprof is not installed, so the dump is not symbolized; install it with `{install}`"
            ));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let Symbolized::Jeprof { total_bytes, rows } = &self.symbolized else { return Vec::new() };
        let mut tables = Vec::new();
        if let ProfileSource::Workload(found) = &self.source {
            let run = &found.run;
            let mut truth = Table::new(
                format!(
                    "True live bytes per site (every allocation the site holds at jemalloc's size class, \
                     malloc_usable_size) against the profile's estimate (lg_prof_sample:{})",
                    run.lg_prof_sample
                ),
                &["site", "payload (len)", "true live", "profile estimate", "error"],
            );
            for (i, (site, payload)) in SITES.iter().zip([run.session_bytes, run.index_bytes, 0]).enumerate()
            {
                let live = run.true_live_bytes[i] as f64;
                let estimate = self.site_bytes(site);
                truth.push(vec![
                    (*site).to_owned(),
                    report::bytes(payload as f64),
                    report::bytes(live),
                    estimate.map_or("absent".to_owned(), report::bytes),
                    match estimate {
                        Some(estimate) if live > 0.0 => format!("{:+.1}%", error_percent(estimate, live)),
                        _ => "-".to_owned(),
                    },
                ]);
            }
            tables.push(truth);
            tables.push(found.sweep.table());
            tables.push(found.leak_watch.table());
        }
        let total = total_bytes.unwrap_or_else(|| rows.iter().map(|r| r.cum_bytes).fold(0.0, f64::max));
        let binary = self.binary.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let (entry, sites) = split_entry_frames(rows, total);
        let mut cumulative = Table::new(
            format!(
                "jeprof --text --cum {binary}: total {}. Top functions by live bytes allocated in them or their callees \
                 (qualified names only: the {} entry frames every sample passes through and the unnamed inline \
                 frames of generic code are left out; profile.csv has every row)",
                report::bytes(total),
                entry.len()
            ),
            &["live (cum)", "cum %", "flat", "function"],
        );
        for row in sites.iter().take(TOP_ROWS) {
            cumulative.push(vec![
                report::bytes(row.cum_bytes),
                format!("{:.1}%", row.cum_percent),
                report::bytes(row.flat_bytes),
                row.function.clone(),
            ]);
        }
        let mut flat: Vec<&JeprofRow> = rows.iter().filter(|r| r.flat_bytes > 0.0).collect();
        flat.sort_by(|a, b| b.flat_bytes.total_cmp(&a.flat_bytes));
        let mut callers =
            Table::new("Functions that called the allocator (flat live bytes)", &["live (flat)", "function"]);
        for row in flat.iter().take(TOP_ROWS) {
            callers.push(vec![report::bytes(row.flat_bytes), row.function.clone()]);
        }
        tables.extend([cumulative, callers]);
        tables
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut table = Table::new("", &["function", "flat_bytes", "cum_bytes", "cum_percent"]);
        if let Symbolized::Jeprof { rows, .. } = &self.symbolized {
            for row in rows {
                table.push(vec![
                    row.function.clone(),
                    format!("{:.0}", row.flat_bytes),
                    format!("{:.0}", row.cum_bytes),
                    format!("{:.2}", row.cum_percent),
                ]);
            }
        }
        vec![CsvFile { file_name: "profile.csv".into(), table }]
    }

    fn charts(&self) -> Vec<Chart> {
        let ProfileSource::Workload(_) = self.source else { return Vec::new() };
        vec![Chart {
            file_name: "profile.png".into(),
            caption: "Live bytes per allocation site, as the sampled profile estimates them".into(),
            kind: ChartKind::Bars {
                title: "Live MiB per allocation site (heap profile)".into(),
                y_label: "MiB live".into(),
                bars: SITES
                    .iter()
                    .map(|site| Bar {
                        label: (*site).to_owned(),
                        value: self.site_bytes(site).unwrap_or(0.0) / (1024.0 * 1024.0),
                    })
                    .collect(),
                log_y: false,
            },
        }]
    }

    fn explanation(&self) -> String {
        format!(
            "jemalloc samples allocations, not objects: with `lg_prof_sample:19` it records the \
             stack of roughly one allocation per 512 KiB allocated, and un-biases each sample by \
             the sampling probability, so large live sites are found with little overhead and \
             small ones may be missed. `--cum` sorts by the bytes allocated in a function and \
             everything it called, which is what points at the code that owns the memory; the \
             `flat` column is the function that called `malloc` (usually an `alloc::` internal \
             in Rust). The raw dump is written as `profile.heap` (for `jeprof --svg BINARY \
             profile.heap`), its call graph as `profile.pdf` (`jeprof --pdf BINARY profile.heap`) \
             and the pprof version as `profile.pb.gz` (for `pprof -top BINARY \
             profile.pb.gz`; addresses are file offsets of `{}`).\n\n\
             The sampling rate trades accuracy for cost. Each sample costs a stack walk and a \
             record, so the cost follows the number of samples taken (the bytes allocated \
             divided by 2^lg_prof_sample), while a site's estimate with n live samples is off \
             by about 1/√n (100 samples: ~10%). The sweep table measures both: a fine rate \
             samples nearly every allocation of a page or more and slows the program down \
             measurably; jemalloc's default of 19 (512 KiB) keeps the samples, and so the \
             cost, small enough for production, and still ranks the big sites, at the price \
             of errors of tens of percent on a site with a few dozen samples.\n\n\
             A leak is a site whose live bytes grow between two dumps by (nearly) what it \
             allocated in between; a busy but healthy site allocates a lot and frees it, so its \
             live bytes stay put. `jeprof --base=FIRST BINARY SECOND` subtracts the first dump \
             from the second (live bytes), and with `--alloc_space` (which needs \
             `prof_accum:true`) it gives the bytes each site allocated in between; the verdict \
             divides the first by the second. The two dumps are written as `leak-first.heap` \
             and `leak-second.heap`.\n",
            self.binary.display()
        )
    }

    fn extra_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![
            ("profile.heap".to_owned(), self.dump.clone()),
            ("profile.pb.gz".to_owned(), self.pprof.clone()),
        ];
        if let CallGraph::Pdf(pdf) = &self.call_graph {
            files.push(("profile.pdf".to_owned(), pdf.clone()));
        }
        if let ProfileSource::Workload(found) = &self.source {
            files.push(("leak-first.heap".to_owned(), found.leak_watch.dumps[0].clone()));
            files.push(("leak-second.heap".to_owned(), found.leak_watch.dumps[1].clone()));
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampling_switch_sits_next_to_the_heap_profile_route() {
        assert_eq!(
            profiling_switch("http://127.0.0.1:9091/admin/heap-profile", true),
            "http://127.0.0.1:9091/admin/profiling?active=true"
        );
    }

    #[test]
    fn jeprof_text_rows_are_parsed_and_rust_hashes_dropped() {
        let text = "Using local file ./bin.\nTotal: 64.5 MB\n\
            \x20    0.0   0.0%   0.0%     64.5 100.0% __libc_start_main\n\
            \x20   48.0  74.4%  74.4%     48.0  74.4% allockit_lab::profile::retain_session_table::h0123456789abcdef\n";
        let (total, rows) = parse_jeprof_text(text);
        assert_eq!(total, Some(64.5 * 1024.0 * 1024.0));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].function, "allockit_lab::profile::retain_session_table");
        assert_eq!(rows[1].cum_bytes, 48.0 * 1024.0 * 1024.0);
    }

    #[test]
    fn dumps_are_summarized_and_converted_to_gzipped_pprof() {
        let dump = "heap_v2/524288\n  t*: 3: 1572864 [0: 0]\n\
            @ 0x5555555551a0 0x555555555300\n  t*: 3: 1572864 [0: 0]\n\n\
            MAPPED_LIBRARIES:\n555555554000-555555556000 r-xp 00000000 08:01 42 /bin/app\n";
        let (summary, pprof) = convert_dump(dump.as_bytes()).unwrap();
        assert_eq!(summary.sample_period, 524288.0);
        assert_eq!(summary.stacks, 1);
        assert_eq!(summary.samples, 3, "the header's process total is not a stack's samples");
        assert!(summary.estimated_live_bytes >= 1572864.0);
        assert_eq!(&pprof[..2], &[0x1f, 0x8b]);
        assert_eq!(dump_mappings(dump)[0].pathname, PathBuf::from("/bin/app"));
    }

    #[test]
    fn text_that_is_not_a_heap_profile_is_rejected() {
        assert!(matches!(convert_dump(b"<html>nope</html>"), Err(LabError::Profile(_))));
    }
}
