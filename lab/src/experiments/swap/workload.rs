//! The child of Task 9: a small service with a bounded live set, run under one allocator.
//!
//! Every worker thread goes through these phases, in step with the others (a barrier
//! between phases, where the coordinating thread takes its readings while the workers
//! wait):
//!
//! 1. **Warm-up.** The thread fills its live set — every slot of its cache and of its ring
//!    of long-lived objects — then serves `warmup_requests` requests, so that the
//!    allocator's caches and free lists have settled before anything is measured.
//! 2. **Steady.** `requests_per_thread` requests, timed. Each request allocates short-lived
//!    objects (8 B – 64 KiB, mostly small) freed when it ends, grows a response buffer by
//!    appending, replaces a random cache slot in half the requests (a medium-lived object),
//!    replaces the *oldest* long-lived object every 64 requests (a session that expires),
//!    and every 8 requests hands a message to the next thread, which frees it (a remote
//!    free). Replacement keeps the number of live objects constant, so the live set has a
//!    plateau: [`LiveCheckpoint`]s record it, and the RSS figures are read on it.
//! 3. **Free.** Every thread frees its whole live set and the messages sent to it.
//! 4. **Idle.** An idle service: for `idle_ms` each thread serves one small request (the
//!    short-lived objects and response buffer only) every `heartbeat_ms`. The idle phase is
//!    there for the allocators that give memory back *later*: jemalloc's `dirty_decay_ms`
//!    (10 s by default) and mimalloc's decommit delays run only when a thread calls the
//!    allocator (no background thread by default), so a process that never called `malloc`
//!    again would keep every page; the heartbeat is the least activity a real service has.
//! 5. **Exit.** The worker threads end (each allocator's thread-exit hook runs: glibc and
//!    jemalloc flush the thread's cache, mimalloc and allockit-malloc purge or abandon the
//!    thread's pages, tcmalloc returns the thread cache to its central lists) and the
//!    process lingers `exit_linger_ms` before its last reading.
//!
//! A sampler thread reads the process's own RSS every `sample_ms`, labelled with the phase;
//! the coordinating thread reads it once more at the end of each phase.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::child::ChildTask;
use crate::process;

/// The allocation-heavy service a child runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Worker threads.
    pub threads: usize,
    /// Requests each thread serves after filling its live set, before the steady phase.
    pub warmup_requests: usize,
    /// Requests each thread serves in the timed steady phase.
    pub requests_per_thread: usize,
    /// Slots of each thread's cache (medium-lived objects, 64 B – 2 KiB).
    pub cache_slots: usize,
    /// Long-lived objects each thread keeps (256 B – 4 KiB), the oldest replaced every 64
    /// requests.
    pub long_lived_slots: usize,
    /// Milliseconds of the idle phase after everything was freed.
    pub idle_ms: u64,
    /// Milliseconds between two requests of the idle phase (per thread).
    pub heartbeat_ms: u64,
    /// Milliseconds to linger after the worker threads ended, before the last reading.
    pub exit_linger_ms: u64,
    /// Milliseconds between two RSS readings of the child's own sampler.
    pub sample_ms: u64,
    /// Seed of the request mix.
    pub seed: u64,
}

/// Capacity of each thread's inbox; a message that does not fit is freed by its sender.
const INBOX_CAPACITY: usize = 64;
/// Live-set checkpoints per thread over the steady phase (plus one at its start).
const CHECKPOINTS: usize = 16;

impl Workload {
    /// Task 9 in full: four threads, 250,000 steady requests each, then 12 s idle — longer
    /// than jemalloc's default `dirty_decay_ms` of 10 s, the longest purge delay of the five.
    pub fn full() -> Workload {
        Workload {
            threads: 4,
            warmup_requests: 50_000,
            requests_per_thread: 250_000,
            cache_slots: 4096,
            long_lived_slots: 1024,
            idle_ms: 12_000,
            heartbeat_ms: 100,
            exit_linger_ms: 500,
            sample_ms: 20,
            seed: 9,
        }
    }

    /// The test-suite version.
    pub fn quick() -> Workload {
        Workload {
            threads: 2,
            warmup_requests: 2_000,
            requests_per_thread: 40_000,
            cache_slots: 1024,
            long_lived_slots: 256,
            idle_ms: 400,
            heartbeat_ms: 100,
            exit_linger_ms: 100,
            sample_ms: 10,
            seed: 9,
        }
    }

    /// Refuses a workload the child could not run, naming the flag that shapes it.
    pub fn validate(&self) -> Result<(), LabError> {
        if self.threads == 0 {
            return Err(LabError::InvalidArgument { flag: "--threads", reason: "must be at least 1".into() });
        }
        if self.requests_per_thread < CHECKPOINTS {
            return Err(LabError::InvalidArgument {
                flag: "--requests",
                reason: format!("must be at least {CHECKPOINTS} (one per live-set checkpoint)"),
            });
        }
        if self.heartbeat_ms == 0 || self.sample_ms == 0 {
            return Err(LabError::InvalidArgument {
                flag: "--interval-ms",
                reason: "the heartbeat and sampling intervals must be at least 1 ms".into(),
            });
        }
        Ok(())
    }
}

/// A phase of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Filling the live set and serving the warm-up requests.
    Warmup,
    /// The timed requests on a full live set.
    Steady,
    /// Freeing everything.
    Free,
    /// Idle, one small request per thread every heartbeat.
    Idle,
    /// The worker threads have ended.
    Exit,
}

impl Phase {
    fn from_index(index: u8) -> Phase {
        match index {
            0 => Phase::Warmup,
            1 => Phase::Steady,
            2 => Phase::Free,
            3 => Phase::Idle,
            _ => Phase::Exit,
        }
    }

    /// The phase's name in tables and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Steady => "steady",
            Phase::Free => "free",
            Phase::Idle => "idle",
            Phase::Exit => "exit",
        }
    }
}

/// One RSS reading taken inside the child.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhaseSample {
    /// Seconds since the workload started.
    pub t_secs: f64,
    /// The phase the workload was in.
    pub phase: Phase,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// The live set, summed over the threads, after the same number of steady requests in
/// every thread (deterministic: it depends on the seed only, not on timing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCheckpoint {
    /// Steady requests each thread had served.
    pub request: u64,
    /// Objects held in caches and long-lived rings.
    pub objects: u64,
    /// Their bytes (requested sizes). Messages in flight are not counted: at most
    /// 64 × 2 KiB per thread.
    pub bytes: u64,
}

/// What the workload did and the memory it held in each phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Requests served in the steady phase, over all threads.
    pub requests: u64,
    /// Allocations made in the steady phase (objects plus growth steps of response buffers).
    pub allocations: u64,
    /// Bytes requested in those allocations.
    pub bytes: u64,
    /// Messages freed by a thread other than the one that allocated them (all phases).
    pub remote_frees: u64,
    /// Seconds of the steady phase.
    pub elapsed_secs: f64,
    /// Requests served in the idle phase.
    pub idle_requests: u64,
    /// Seconds since the start at which the steady phase began and ended, everything was
    /// freed, and the idle phase ended.
    pub steady_start_secs: f64,
    /// See `steady_start_secs`.
    pub steady_end_secs: f64,
    /// See `steady_start_secs`.
    pub freed_secs: f64,
    /// See `steady_start_secs`.
    pub idle_end_secs: f64,
    /// RSS before the workload allocated anything: the binary, its libraries and the
    /// allocator's own start-up.
    pub rss_at_start: u64,
    /// RSS at the end of the steady phase.
    pub rss_steady_end: u64,
    /// RSS right after every thread freed everything.
    pub rss_after_free: u64,
    /// RSS at the end of the idle phase.
    pub rss_after_idle: u64,
    /// RSS `exit_linger_ms` after the worker threads ended.
    pub rss_after_exit: u64,
    /// The live set over the steady phase.
    pub live: Vec<LiveCheckpoint>,
    /// RSS over time, read by the child itself.
    pub samples: Vec<PhaseSample>,
}

impl WorkloadReport {
    /// Steady-phase requests per second.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed_secs.max(f64::MIN_POSITIVE)
    }

    /// Steady-phase allocations per second.
    pub fn allocations_per_sec(&self) -> f64 {
        self.allocations as f64 / self.elapsed_secs.max(f64::MIN_POSITIVE)
    }

    /// The steady-state RSS: the median of the readings over the second half of the
    /// steady phase (the reading at its end when the phase was too short for any).
    pub fn steady_rss(&self) -> u64 {
        let half = (self.steady_start_secs + self.steady_end_secs) / 2.0;
        let mut late: Vec<u64> = self
            .samples
            .iter()
            .filter(|s| s.phase == Phase::Steady && s.t_secs >= half)
            .map(|s| s.rss_bytes)
            .collect();
        if late.is_empty() {
            return self.rss_steady_end;
        }
        late.sort_unstable();
        let middle = late.len() / 2;
        if late.len() % 2 == 1 { late[middle] } else { late[middle - 1] / 2 + late[middle] / 2 }
    }

    /// The readings of one phase.
    pub fn samples_of(&self, phase: Phase) -> impl Iterator<Item = &PhaseSample> {
        self.samples.iter().filter(move |s| s.phase == phase)
    }
}

impl ChildTask for Workload {
    const NAME: &'static str = "swap-workload";
    type Output = WorkloadReport;

    fn run(self) -> Result<WorkloadReport, LabError> {
        run_workload(&self)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    allocations: u64,
    bytes: u64,
    remote_frees: u64,
}

/// What one worker hands back.
#[derive(Debug, Default)]
struct WorkerResult {
    steady: Counts,
    remote_frees: u64,
    idle_requests: u64,
    live: Vec<(u64, u64, u64)>,
}

/// The moments the coordinator writes down, in seconds since the start.
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    steady_start: f64,
    steady_end: f64,
    freed: f64,
    idle_end: f64,
    rss_steady_end: u64,
    rss_after_free: u64,
    rss_after_idle: u64,
}

/// Everything the threads share.
struct Shared<'a> {
    workload: &'a Workload,
    /// Between phases: every worker and the coordinator, twice (see [`Shared::end_phase`]).
    barrier: Barrier,
    phase: AtomicU8,
    sampling: AtomicBool,
}

impl Shared<'_> {
    /// A worker's end of a phase: it waits until every worker got there, then until the
    /// coordinator has written down the time and the RSS, so that no worker's next phase
    /// (freeing, a heartbeat, its thread's exit) runs while the coordinator reads.
    fn end_phase(&self) {
        self.barrier.wait();
        self.barrier.wait();
    }

    /// The coordinator's end of a phase: once every worker got there, `record` runs and
    /// the phase becomes `next`; then the workers go on.
    fn end_phase_recording(&self, next: Phase, record: impl FnOnce()) {
        self.barrier.wait();
        record();
        self.phase.store(next as u8, Ordering::Release);
        self.barrier.wait();
    }
}

/// Runs the workload in this process: all five phases, freeing everything it allocated.
pub fn run_workload(workload: &Workload) -> Result<WorkloadReport, LabError> {
    workload.validate()?;
    let shared = Shared {
        workload,
        barrier: Barrier::new(workload.threads + 1),
        phase: AtomicU8::new(Phase::Warmup as u8),
        sampling: AtomicBool::new(true),
    };
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..workload.threads).map(|_| mpsc::sync_channel(INBOX_CAPACITY)).unzip();
    let rss_at_start = own_rss();
    let started = Instant::now();
    let (results, marks, rss_after_exit, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_own_rss(&shared, started));
        let workers: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(id, inbox)| {
                let outbox = senders[(id + 1) % workload.threads].clone();
                let shared = &shared;
                scope.spawn(move || serve(shared, id as u64, &inbox, &outbox))
            })
            .collect();
        drop(senders);
        let marks = coordinate(&shared, started);
        let results: Vec<Option<WorkerResult>> = workers.into_iter().map(|h| h.join().ok()).collect();
        std::thread::sleep(Duration::from_millis(workload.exit_linger_ms));
        let rss_after_exit = own_rss();
        shared.sampling.store(false, Ordering::Release);
        (results, marks, rss_after_exit, sampler.join().unwrap_or_default())
    });
    let results: Vec<WorkerResult> =
        results.into_iter().collect::<Option<_>>().ok_or_else(|| LabError::ChildOutput {
            command: Workload::NAME.to_owned(),
            reason: "a worker thread panicked".into(),
        })?;
    let mut report = WorkloadReport {
        requests: 0,
        allocations: 0,
        bytes: 0,
        remote_frees: 0,
        elapsed_secs: marks.steady_end - marks.steady_start,
        idle_requests: 0,
        steady_start_secs: marks.steady_start,
        steady_end_secs: marks.steady_end,
        freed_secs: marks.freed,
        idle_end_secs: marks.idle_end,
        rss_at_start,
        rss_steady_end: marks.rss_steady_end,
        rss_after_free: marks.rss_after_free,
        rss_after_idle: marks.rss_after_idle,
        rss_after_exit,
        live: Vec::new(),
        samples,
    };
    for result in &results {
        report.requests += result.steady.requests;
        report.allocations += result.steady.allocations;
        report.bytes += result.steady.bytes;
        report.remote_frees += result.remote_frees;
        report.idle_requests += result.idle_requests;
        for (i, &(request, objects, bytes)) in result.live.iter().enumerate() {
            match report.live.get_mut(i) {
                Some(checkpoint) => {
                    checkpoint.objects += objects;
                    checkpoint.bytes += bytes;
                }
                None => report.live.push(LiveCheckpoint { request, objects, bytes }),
            }
        }
    }
    Ok(report)
}

fn own_rss() -> u64 {
    process::own_resident_bytes().unwrap_or(0)
}

/// The coordinator's side of the phases: at the end of each it writes down the time and
/// the RSS while the workers wait.
fn coordinate(shared: &Shared<'_>, started: Instant) -> Marks {
    let now = || started.elapsed().as_secs_f64();
    let mut marks = Marks::default();
    // The live sets are full and warmed up.
    shared.end_phase_recording(Phase::Steady, || marks.steady_start = now());
    // Every steady request served.
    shared.end_phase_recording(Phase::Free, || {
        marks.steady_end = now();
        marks.rss_steady_end = own_rss();
    });
    // Everything freed.
    shared.end_phase_recording(Phase::Idle, || {
        marks.freed = now();
        marks.rss_after_free = own_rss();
    });
    // The idle phase is over; the workers end once this reading is taken.
    shared.end_phase_recording(Phase::Exit, || {
        marks.idle_end = now();
        marks.rss_after_idle = own_rss();
    });
    marks
}

fn sample_own_rss(shared: &Shared<'_>, started: Instant) -> Vec<PhaseSample> {
    let interval = Duration::from_millis(shared.workload.sample_ms);
    let mut samples = Vec::new();
    while shared.sampling.load(Ordering::Acquire) {
        let phase = Phase::from_index(shared.phase.load(Ordering::Acquire));
        if let Ok(rss_bytes) = process::own_resident_bytes() {
            samples.push(PhaseSample { t_secs: started.elapsed().as_secs_f64(), phase, rss_bytes });
        }
        std::thread::sleep(interval);
    }
    samples
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

/// A thread's retained objects: the cache and the ring of long-lived objects, with their
/// count and bytes kept up to date.
struct LiveSet {
    cache: Vec<Vec<u8>>,
    long_lived: Vec<Vec<u8>>,
    oldest: usize,
    objects: u64,
    bytes: u64,
}

impl LiveSet {
    fn fill(workload: &Workload, rng: &mut StdRng, counts: &mut Counts) -> LiveSet {
        let cache: Vec<Vec<u8>> =
            (0..workload.cache_slots).map(|_| filled(rng.random_range(64..=2048), 0, counts)).collect();
        let long_lived: Vec<Vec<u8>> =
            (0..workload.long_lived_slots).map(|_| filled(rng.random_range(256..=4096), 0, counts)).collect();
        let objects = (cache.len() + long_lived.len()) as u64;
        let bytes = cache.iter().chain(&long_lived).map(|o| o.len() as u64).sum();
        LiveSet { cache, long_lived, oldest: 0, objects, bytes }
    }

    fn replace_cache_slot(&mut self, slot: usize, object: Vec<u8>) {
        self.bytes = self.bytes + object.len() as u64 - self.cache[slot].len() as u64;
        self.cache[slot] = object;
    }

    /// Frees everything in the reverse order of [`LiveSet::fill`], as a scope's destructors
    /// would: the long-lived objects, then the cache's objects, then the cache's slot array
    /// (96 KiB at 4096 slots). The order matters to glibc, which consolidates its free
    /// chunks and trims a heap only when a chunk of 64 KiB or more is freed
    /// (`FASTBIN_CONSOLIDATION_THRESHOLD`): the slot array's free, coming last, lets it
    /// give back the heap the objects occupied.
    fn free_all(self) {
        let LiveSet { cache, long_lived, .. } = self;
        drop(long_lived);
        drop(cache);
    }

    fn replace_oldest(&mut self, object: Vec<u8>) {
        if self.long_lived.is_empty() {
            return;
        }
        self.bytes = self.bytes + object.len() as u64 - self.long_lived[self.oldest].len() as u64;
        self.long_lived[self.oldest] = object;
        self.oldest = (self.oldest + 1) % self.long_lived.len();
    }
}

/// Short-lived request objects and a growing response buffer, all freed on return.
fn serve_short_lived(rng: &mut StdRng, request: u64, scratch: &mut Vec<Vec<u8>>, counts: &mut Counts) {
    const CHUNK: [u8; 128] = [b'x'; 128];
    for _ in 0..rng.random_range(8..32) {
        let size = request_object_size(rng);
        scratch.push(filled(size, request, counts));
    }
    let mut response: Vec<u8> = Vec::new();
    let mut capacity = 0;
    for _ in 0..rng.random_range(4..24) {
        response.extend_from_slice(&CHUNK[..rng.random_range(16..=128)]);
        if response.capacity() != capacity {
            capacity = response.capacity();
            counts.allocations += 1;
            counts.bytes += capacity as u64;
        }
    }
    std::hint::black_box(&response);
    std::hint::black_box(&scratch);
    scratch.clear();
}

/// One request of the warm-up or steady phase.
fn serve_request(
    request: u64,
    rng: &mut StdRng,
    live: &mut LiveSet,
    scratch: &mut Vec<Vec<u8>>,
    (inbox, outbox): (&Receiver<Vec<u8>>, &SyncSender<Vec<u8>>),
    counts: &mut Counts,
) {
    serve_short_lived(rng, request, scratch, counts);
    if !live.cache.is_empty() && rng.random_bool(0.5) {
        let slot = rng.random_range(0..live.cache.len());
        let object = filled(rng.random_range(64..=2048), request, counts);
        live.replace_cache_slot(slot, object);
    }
    if request.is_multiple_of(64) {
        let object = filled(rng.random_range(256..=4096), request, counts);
        live.replace_oldest(object);
    }
    if request.is_multiple_of(8) {
        let message = filled(rng.random_range(128..=2048), request, counts);
        match outbox.try_send(message) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
    counts.remote_frees += drain(inbox);
    counts.requests += 1;
}

/// Frees every message waiting in `inbox`; returns how many.
fn drain(inbox: &Receiver<Vec<u8>>) -> u64 {
    let mut freed = 0;
    while let Ok(message) = inbox.try_recv() {
        std::hint::black_box(&message);
        freed += 1;
    }
    freed
}

fn serve(
    shared: &Shared<'_>,
    id: u64,
    inbox: &Receiver<Vec<u8>>,
    outbox: &SyncSender<Vec<u8>>,
) -> WorkerResult {
    let workload = shared.workload;
    let mut rng = StdRng::seed_from_u64(workload.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id);
    let mut scratch: Vec<Vec<u8>> = Vec::with_capacity(32);
    let mut warmup = Counts::default();
    let mut live = LiveSet::fill(workload, &mut rng, &mut warmup);
    for request in 0..workload.warmup_requests as u64 {
        serve_request(request, &mut rng, &mut live, &mut scratch, (inbox, outbox), &mut warmup);
    }
    shared.end_phase(); // warm-up over

    let steady_requests = workload.requests_per_thread as u64;
    let every = steady_requests / CHECKPOINTS as u64;
    let mut steady = Counts::default();
    let mut checkpoints = vec![(0, live.objects, live.bytes)];
    for request in 0..steady_requests {
        let tag = workload.warmup_requests as u64 + request;
        serve_request(tag, &mut rng, &mut live, &mut scratch, (inbox, outbox), &mut steady);
        if (request + 1).is_multiple_of(every) {
            checkpoints.push((request + 1, live.objects, live.bytes));
        }
    }
    shared.end_phase(); // steady phase over: no thread sends any more

    let remote_frees = warmup.remote_frees + steady.remote_frees + drain(inbox);
    live.free_all();
    scratch.shrink_to_fit();
    shared.end_phase(); // everything freed

    let mut idle = Counts::default();
    let heartbeat = Duration::from_millis(workload.heartbeat_ms);
    let idle_end = Instant::now() + Duration::from_millis(workload.idle_ms);
    let mut next = Instant::now();
    let mut request = 0u64;
    while next < idle_end {
        serve_short_lived(&mut rng, request, &mut scratch, &mut idle);
        request += 1;
        next += heartbeat;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    shared.end_phase(); // idle phase over
    WorkerResult { steady, remote_frees, idle_requests: request, live: checkpoints }
}
