//! Two small synthetic services with a memory problem each, run by `diagnose` as children
//! of the lab on jemalloc (`LD_PRELOAD`), reading jemalloc's own statistics every tick.
//!
//! * **Leaking service**: every request registers a ~1 KiB session record in a registry
//!   that nothing ever prunes. The fix is the fix of the bug: sessions expire (the
//!   registry keeps the last two ticks' worth).
//! * **Fragmenting service**: a burst of load fills a backlog of small objects (48–256 B);
//!   one object in twenty is a long-lived session, the rest are freed when the backlog
//!   drains. The survivors are scattered over nearly every slab, so jemalloc cannot give
//!   those pages back: live bytes drop by 95%, RSS does not. The fix is lifetime
//!   segregation — long-lived objects come from their own arena (`arenas.create`,
//!   `mallocx(MALLOCX_ARENA | MALLOCX_TCACHE_NONE)`), so the short-lived slabs empty
//!   completely — combined with `dirty_decay_ms:0` so the emptied pages leave at once.
//!   `dirty_decay_ms` alone cannot help: a page with one survivor is not dirty, it is
//!   active.
//!
//! Both serve a steady trickle of ordinary requests (short-lived buffers) throughout, and
//! run on a fixed timetable of ticks so every variant covers the same phases.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::child::ChildTask;
use crate::jemalloc::{Jemalloc, JemallocStats, MALLOCX_TCACHE_NONE, mallocx_arena};
use crate::process;

/// Which synthetic service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// Sessions registered and never pruned.
    Leak,
    /// Long-lived survivors scattered among short-lived objects.
    Fragmentation,
}

impl ServiceKind {
    /// How tables and the diagnosis name it (`leaking service`).
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Leak => "leaking service",
            ServiceKind::Fragmentation => "fragmenting service",
        }
    }
}

/// A change to the service's code (configuration changes go through `MALLOC_CONF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeFix {
    /// The service as written.
    None,
    /// Sessions expire: the registry is bounded.
    ExpireSessions,
    /// Long-lived objects are allocated on a dedicated jemalloc arena.
    SegregateLongLived,
}

/// A run of a synthetic service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The leaking or the fragmenting service; both run the same request loop.
    pub kind: ServiceKind,
    /// Which code fix is applied.
    pub fix: CodeFix,
    /// Ticks to run; one sample per tick.
    pub ticks: usize,
    /// Tick length in milliseconds.
    pub tick_ms: u64,
    /// Ordinary requests served per tick.
    pub requests_per_tick: usize,
    /// Objects in the fragmenting service's backlog burst.
    pub backlog_objects: usize,
    /// One backlog object in this many is long-lived.
    pub survivor_one_in: u64,
    /// Seed of sizes and survivor choice.
    pub seed: u64,
}

/// One tick's reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServiceSample {
    /// Seconds since the service started.
    pub t_secs: f64,
    /// jemalloc's counters.
    pub jemalloc: JemallocStats,
    /// The process's RSS.
    pub rss: u64,
}

/// What a service run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// One sample per tick.
    pub samples: Vec<ServiceSample>,
    /// `opt.dirty_decay_ms` as jemalloc read it (proof that `MALLOC_CONF` was applied).
    pub dirty_decay_ms: i64,
    /// `opt.narenas`.
    pub narenas: u64,
}

impl ChildTask for Service {
    const NAME: &'static str = "service";
    type Output = ServiceReport;

    fn run(self) -> Result<ServiceReport, LabError> {
        let jemalloc = Jemalloc::loaded()?;
        let mut state = State::new(&self, jemalloc)?;
        let started = Instant::now();
        let mut samples = Vec::with_capacity(self.ticks);
        for tick in 0..self.ticks {
            state.tick(&self, tick)?;
            let rss =
                process::own_resident_bytes().map_err(|e| LabError::file("read", "/proc/self/statm", e))?;
            samples.push(ServiceSample {
                t_secs: started.elapsed().as_secs_f64(),
                jemalloc: jemalloc.stats()?,
                rss,
            });
            let deadline = started + Duration::from_millis(self.tick_ms * (tick as u64 + 1));
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
        state.release(&self);
        Ok(ServiceReport {
            samples,
            dirty_decay_ms: jemalloc.read_usize("opt.dirty_decay_ms")? as isize as i64,
            narenas: jemalloc.read_u32("opt.narenas")? as u64,
        })
    }
}

/// A raw object of the fragmenting service's backlog.
struct BacklogObject {
    ptr: NonNull<u8>,
    survivor: bool,
}

struct State {
    jemalloc: Jemalloc,
    rng: StdRng,
    sessions: VecDeque<Vec<u8>>,
    backlog: Vec<BacklogObject>,
    survivors: Vec<NonNull<u8>>,
    survivor_flags: libc::c_int,
}

impl State {
    fn new(service: &Service, jemalloc: Jemalloc) -> Result<State, LabError> {
        let survivor_flags = match service.fix {
            CodeFix::SegregateLongLived => mallocx_arena(jemalloc.create_arena()?) | MALLOCX_TCACHE_NONE,
            CodeFix::None | CodeFix::ExpireSessions => 0,
        };
        Ok(State {
            jemalloc,
            rng: StdRng::seed_from_u64(service.seed),
            sessions: VecDeque::new(),
            backlog: Vec::new(),
            survivors: Vec::new(),
            survivor_flags,
        })
    }

    fn tick(&mut self, service: &Service, tick: usize) -> Result<(), LabError> {
        for _ in 0..service.requests_per_tick {
            self.serve_request(service);
        }
        if service.kind == ServiceKind::Fragmentation {
            let burst_ticks = (service.ticks / 4).max(1);
            if tick < burst_ticks {
                let per_tick = service.backlog_objects / burst_ticks;
                self.fill_backlog(service, per_tick)?;
            } else if tick == burst_ticks {
                self.drain_backlog();
            }
        }
        Ok(())
    }

    /// An ordinary request: a few short-lived buffers; in the leaking service it also
    /// registers a session.
    fn serve_request(&mut self, service: &Service) {
        let buffers: Vec<Vec<u8>> = (0..self.rng.random_range(4..12))
            .map(|i| vec![i as u8; self.rng.random_range(64..=2048)])
            .collect();
        std::hint::black_box(&buffers);
        if service.kind == ServiceKind::Leak {
            self.sessions.push_back(vec![7u8; self.rng.random_range(512..=1536)]);
            if service.fix == CodeFix::ExpireSessions {
                while self.sessions.len() > 2 * service.requests_per_tick {
                    self.sessions.pop_front();
                }
            }
        }
    }

    fn fill_backlog(&mut self, service: &Service, count: usize) -> Result<(), LabError> {
        self.backlog.reserve(count);
        for _ in 0..count {
            let size = self.rng.random_range(48..=256);
            let survivor = self.rng.random_range(0..service.survivor_one_in.max(1)) == 0;
            let ptr = if survivor {
                self.jemalloc.mallocx(size, self.survivor_flags)
            } else {
                // SAFETY: malloc has no preconditions; null is checked below.
                NonNull::new(unsafe { libc::malloc(size) }.cast::<u8>())
            };
            let ptr =
                ptr.ok_or(LabError::Mallctl { name: format!("malloc({size})"), errno: libc::ENOMEM })?;
            // SAFETY: `ptr` is a fresh allocation of `size` bytes.
            unsafe { ptr.as_ptr().write_bytes(0x5A, size) };
            self.backlog.push(BacklogObject { ptr, survivor });
        }
        Ok(())
    }

    fn drain_backlog(&mut self) {
        for object in std::mem::take(&mut self.backlog) {
            if object.survivor {
                self.survivors.push(object.ptr);
            } else {
                // SAFETY: backlog objects that are not survivors came from malloc and are
                // freed exactly once, here.
                unsafe { libc::free(object.ptr.as_ptr().cast()) };
            }
        }
    }

    fn release(&mut self, service: &Service) {
        self.drain_backlog();
        for ptr in std::mem::take(&mut self.survivors) {
            // SAFETY: survivors came from `mallocx` with `survivor_flags` and are freed once.
            unsafe { self.jemalloc.dallocx(ptr, self.survivor_flags) };
        }
        if service.kind == ServiceKind::Leak {
            self.sessions.clear();
        }
    }
}
