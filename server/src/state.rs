//! State shared by every worker and the admin listener ([`Shared`]), and one worker's own
//! state ([`Worker`]).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use allockit::ChunkSource;
use hyper::StatusCode;

use crate::cache::ProfileCache;
use crate::cache_region::CacheRegions;
use crate::config::{Config, Mode};
use crate::global_alloc::HeapCounters;
use crate::jemalloc::{self, ArenaStats};
use crate::metrics::{Metrics, Snapshot};
use crate::response_pool::PoolCounters;
use crate::worker_memory::WorkerMemory;
use crate::workload::Limits;

/// State shared by every worker and the admin listener.
#[derive(Debug)]
pub struct Shared {
    /// The flags the server started with (the mode among them only as the starting mode).
    pub config: Config,
    /// Batch limits derived from the flags, checked before a batch is parsed.
    pub limits: Limits,
    pub(crate) mode: AtomicU8,
    /// The long-lived profiles, on the dedicated jemalloc arena.
    pub cache: ProfileCache,
    /// The regions the cache arena's extent hooks carve its pages from.
    pub cache_regions: &'static CacheRegions,
    /// Every Prometheus metric; request-path counters are updated in place, the rest on
    /// each scrape.
    pub metrics: Arc<Metrics>,
    /// General-heap allocations made by request work.
    pub heap: HeapCounters,
    /// General-heap allocations made while hyper drives client connections.
    pub connection_heap: Arc<HeapCounters>,
    /// The effective connection limit: `--max-connections`, capped by the descriptors.
    pub connection_limit: usize,
    /// Where request arenas get their chunks.
    pub arena_source: Arc<ChunkSource>,
    /// Where response pools get their chunks.
    pub pool_source: Arc<ChunkSource>,
    pub(crate) pools: Mutex<Vec<Arc<PoolCounters>>>,
    pub(crate) connections: AtomicUsize,
    /// Open connections per worker, and a signal when any of them changes: a worker
    /// accepts only while it holds no more than one connection above the least loaded one.
    pub(crate) worker_load: Vec<AtomicUsize>,
    pub(crate) balance: tokio::sync::Notify,
    pub(crate) draining: AtomicBool,
}

impl Shared {
    /// The mode a request starting now runs in (the admin listener can switch it).
    pub fn mode(&self) -> Mode {
        Mode::ALL[usize::from(self.mode.load(Ordering::Relaxed))]
    }

    /// Switches the mode for requests that start from now on.
    pub fn set_mode(&self, mode: Mode) {
        let index = Mode::ALL.iter().position(|m| *m == mode).expect("every mode is listed");
        self.mode.store(index as u8, Ordering::Relaxed);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Open client connections on each worker.
    pub fn worker_connections(&self) -> std::vec::Vec<usize> {
        self.worker_load.iter().map(|load| load.load(Ordering::Relaxed)).collect()
    }

    /// True if worker `index` may accept: it holds at most one connection more than the
    /// least loaded worker. All workers wait on one accept queue and are all woken by a new
    /// connection; without this, the first to wake takes a whole burst, and keep-alive
    /// clients then stay on one core.
    pub(crate) fn may_accept(&self, index: usize) -> bool {
        let least = self.worker_load.iter().map(|load| load.load(Ordering::Relaxed)).min().unwrap_or(0);
        self.worker_load[index].load(Ordering::Relaxed) <= least + 1
    }

    /// Reads every source and renders `/metrics`.
    pub fn render_metrics(&self) -> Vec<u8> {
        let mut snapshot = Snapshot { mode: Some(self.mode()), ..Snapshot::default() };
        match jemalloc::Stats::read() {
            Ok(stats) => snapshot.jemalloc = stats,
            Err(error) => tracing::warn!(%error, "jemalloc statistics unavailable"),
        }
        /// jemalloc's pseudo-index for all arenas merged (MALLCTL_ARENAS_ALL).
        const ALL_ARENAS: u32 = 4096;
        snapshot.cache_arena = ArenaStats::read(self.cache.arena().index()).unwrap_or_default();
        snapshot.all_arenas = ArenaStats::read(ALL_ARENAS).unwrap_or_default();
        snapshot.chunks = self.arena_source.stats();
        for pool in self.pools.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            snapshot.pool_live += pool.live.load(Ordering::Relaxed);
            snapshot.pool_free += pool.free.load(Ordering::Relaxed);
            snapshot.pool_allocations += pool.allocations.load(Ordering::Relaxed);
            snapshot.pool_frees += pool.frees.load(Ordering::Relaxed);
            snapshot.pool_exhausted += pool.exhausted.load(Ordering::Relaxed);
        }
        snapshot.cache = self.cache.stats();
        snapshot.cache_region = self.cache_regions.stats();
        snapshot.heap_allocations = self.heap.allocations();
        snapshot.heap_bytes = self.heap.bytes();
        snapshot.connection_heap_allocations = self.connection_heap.allocations();
        snapshot.connection_heap_bytes = self.connection_heap.bytes();
        self.metrics.render(&snapshot)
    }

    pub(crate) fn count_connection_status(&self, status: StatusCode) {
        self.metrics.http_requests.with_label_values(&["connection", status.as_str()]).inc();
    }
}

/// One worker: shared state and its own request memory.
#[derive(Debug)]
pub struct Worker {
    /// State shared with the other workers.
    pub shared: Arc<Shared>,
    /// This worker's arenas, pool and samplers.
    pub memory: WorkerMemory,
}
