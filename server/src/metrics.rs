//! The Prometheus metrics of the server: every name of the DESIGN.md metric contract.
//!
//! Counters and histograms on the request path are updated where the event happens
//! (lock-free atomics). Gauges and counters whose source of truth lives elsewhere (the
//! chunk source, jemalloc, the cache, the pools, the heap counters) are brought up to date
//! on each scrape, after advancing jemalloc's statistics epoch.

use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use allockit_probe::metrics as contract;

use crate::config::Mode;

/// Buckets of `allockit_alloc_duration_seconds`: 10 ns to 1 ms, fine where allocations are
/// (5 ns steps to 50 ns, 10 ns to 100 ns, 20 ns to 200 ns) so that a p99 interpolated within
/// a bucket (`histogram_quantile`) is not a guess across a 2 × wide one. Every edge of the
/// earlier 1-2-5 series (10, 20, 50, 100, 200, 500 ns, ...) is still an edge.
const ALLOC_BUCKETS: &[f64] = &[
    10e-9, 15e-9, 20e-9, 25e-9, 30e-9, 35e-9, 40e-9, 45e-9, 50e-9, 60e-9, 70e-9, 80e-9, 90e-9, 100e-9,
    120e-9, 140e-9, 160e-9, 180e-9, 200e-9, 250e-9, 300e-9, 400e-9, 500e-9, 700e-9, 1e-6, 1.5e-6, 2e-6, 3e-6,
    5e-6, 7e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3,
];

/// Buckets of `allockit_http_request_duration_seconds`: 50 µs to 5 s.
const HTTP_BUCKETS: &[f64] = &[
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5,
    5.0,
];

/// Buckets of `allockit_arena_reset_duration_seconds`: 10 ns to 100 µs.
const RESET_BUCKETS: &[f64] =
    &[10e-9, 20e-9, 50e-9, 100e-9, 200e-9, 500e-9, 1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 100e-6];

/// Buckets of `allockit_arena_request_bytes`: 256 B to 16 MiB.
const REQUEST_BYTES_BUCKETS: &[f64] =
    &[256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0, 16_777_216.0];

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    scrape: Mutex<LastTotals>,

    jemalloc_allocated: IntGauge,
    jemalloc_active: IntGauge,
    jemalloc_resident: IntGauge,
    jemalloc_mapped: IntGauge,
    jemalloc_retained: IntGauge,
    jemalloc_metadata: IntGauge,
    jemalloc_arena_allocated: IntGaugeVec,
    jemalloc_arena_resident: IntGaugeVec,
    jemalloc_arena_dirty: IntGaugeVec,
    cache_region_bytes: IntGaugeVec,

    /// `allockit_arena_resets_total`.
    pub arena_resets: IntCounter,
    /// `allockit_arena_allocations_total`.
    pub arena_allocations: IntCounter,
    /// `allockit_arena_allocated_bytes_total`.
    pub arena_allocated_bytes: IntCounter,
    /// `allockit_arena_request_bytes`.
    pub arena_request_bytes: Histogram,
    arena_chunks: IntGaugeVec,
    arena_committed_bytes: IntGauge,
    region_reserved_bytes: IntGauge,
    /// `allockit_arena_reset_duration_seconds`.
    pub arena_reset_duration: Histogram,
    /// `allockit_arena_limit_exceeded_total`.
    pub arena_limit_exceeded: IntCounter,

    pool_objects: IntGaugeVec,
    pool_allocations: IntCounterVec,
    pool_frees: IntCounterVec,
    pool_exhausted: IntCounterVec,

    cache_entries: IntGauge,
    cache_bytes: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_evictions: IntCounter,

    request_heap_allocations: IntCounter,
    request_heap_bytes: IntCounter,
    connection_heap_allocations: IntCounter,
    connection_heap_bytes: IntCounter,

    /// `allockit_alloc_duration_seconds{allocator}`.
    pub alloc_duration: HistogramVec,

    /// `allockit_http_requests_total{route,status}`.
    pub http_requests: IntCounterVec,
    /// `allockit_http_request_duration_seconds{route}`.
    pub http_duration: HistogramVec,
    /// `allockit_http_in_flight_requests`.
    pub http_in_flight: IntGauge,

    lifetime_mode: IntGaugeVec,
}

/// Totals from other sources as of the last scrape, so counters advance by the difference.
#[derive(Debug, Default)]
struct LastTotals {
    pool_allocations: u64,
    pool_frees: u64,
    pool_exhausted: u64,
    cache_hits: u64,
    cache_misses: u64,
    cache_evictions: u64,
    heap_allocations: u64,
    heap_bytes: u64,
    connection_heap_allocations: u64,
    connection_heap_bytes: u64,
}

/// Values read from their sources for one scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    /// jemalloc's process-wide totals, read after advancing its epoch.
    pub jemalloc: crate::jemalloc::Stats,
    /// The cache arena's statistics.
    pub cache_arena: crate::jemalloc::ArenaStats,
    /// jemalloc's merged statistics of every arena (`arena="all"`).
    pub all_arenas: crate::jemalloc::ArenaStats,
    /// The cache arena's regions: reserved and committed bytes.
    pub cache_region: crate::cache_region::CacheRegionStats,
    /// The request arenas' chunk source: chunks by state and reserved bytes.
    pub chunks: allockit::ChunkStats,
    /// The pools, summed over workers.
    pub pool_live: usize,
    /// Free pool blocks, summed over workers.
    pub pool_free: usize,
    /// Pool allocations, summed over workers.
    pub pool_allocations: u64,
    /// Pool frees, summed over workers.
    pub pool_frees: u64,
    /// Refused pool allocations, summed over workers.
    pub pool_exhausted: u64,
    /// The profile cache's entries, bytes and lookup counters.
    pub cache: crate::cache::CacheStats,
    /// General-heap allocations made while a handler was armed (zero in the arena modes).
    pub heap_allocations: u64,
    /// Bytes of those allocations.
    pub heap_bytes: u64,
    /// General-heap allocations made while hyper drives connections.
    pub connection_heap_allocations: u64,
    /// Bytes of those allocations.
    pub connection_heap_bytes: u64,
    /// The active mode.
    pub mode: Option<Mode>,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let metric =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

impl Metrics {
    /// Registers every metric (and the process collector) in a new registry.
    pub fn new() -> Arc<Self> {
        let r = Registry::new();
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("the process collector registers once");
        let metrics = Self {
            jemalloc_allocated: gauge(
                &r,
                contract::JEMALLOC_ALLOCATED_BYTES,
                "Bytes allocated by the application (jemalloc stats.allocated).",
            ),
            jemalloc_active: gauge(
                &r,
                contract::JEMALLOC_ACTIVE_BYTES,
                "Bytes in active pages (jemalloc stats.active).",
            ),
            jemalloc_resident: gauge(
                &r,
                contract::JEMALLOC_RESIDENT_BYTES,
                "Bytes in resident pages mapped by jemalloc (stats.resident).",
            ),
            jemalloc_mapped: gauge(
                &r,
                contract::JEMALLOC_MAPPED_BYTES,
                "Bytes in active extents mapped by jemalloc (stats.mapped).",
            ),
            jemalloc_retained: gauge(
                &r,
                contract::JEMALLOC_RETAINED_BYTES,
                "Virtual bytes retained by jemalloc, returned to the OS (stats.retained).",
            ),
            jemalloc_metadata: gauge(
                &r,
                contract::JEMALLOC_METADATA_BYTES,
                "Bytes of jemalloc metadata (stats.metadata).",
            ),
            jemalloc_arena_allocated: gauge_vec(
                &r,
                contract::JEMALLOC_ARENA_ALLOCATED_BYTES,
                "Bytes allocated from a jemalloc arena (cache: the dedicated profile arena; all: every arena).",
                &["arena"],
            ),
            jemalloc_arena_resident: gauge_vec(
                &r,
                contract::JEMALLOC_ARENA_RESIDENT_BYTES,
                "Resident bytes of a jemalloc arena.",
                &["arena"],
            ),
            jemalloc_arena_dirty: gauge_vec(
                &r,
                contract::JEMALLOC_ARENA_DIRTY_BYTES,
                "Dirty bytes (pages freed, not yet returned to the OS) of a jemalloc arena.",
                &["arena"],
            ),
            cache_region_bytes: gauge_vec(
                &r,
                contract::CACHE_REGION_BYTES,
                "Regions reserved up front for the cache arena's extents (its extent hooks): reserved address space, and the bytes of it committed.",
                &["state"],
            ),

            arena_resets: counter(
                &r,
                contract::ARENA_RESETS_TOTAL,
                "Request arenas reset (one per request that used an arena).",
            ),
            arena_allocations: counter(
                &r,
                contract::ARENA_ALLOCATIONS_TOTAL,
                "Allocations served by request arenas.",
            ),
            arena_allocated_bytes: counter(
                &r,
                contract::ARENA_ALLOCATED_BYTES_TOTAL,
                "Bytes handed out by request arenas, padding included.",
            ),
            arena_request_bytes: histogram(
                &r,
                contract::ARENA_REQUEST_BYTES,
                "Arena bytes used by one request.",
                REQUEST_BYTES_BUCKETS,
            ),
            arena_chunks: gauge_vec(
                &r,
                contract::ARENA_CHUNKS,
                "Arena chunks by state: in_use (held by arenas), idle (committed, reusable), pinned (kept alive by escaping allocations).",
                &["state"],
            ),
            arena_committed_bytes: gauge(
                &r,
                contract::ARENA_COMMITTED_BYTES,
                "Bytes of arena chunks in use (pinned included) or idle: their pages may be resident.",
            ),
            region_reserved_bytes: gauge(
                &r,
                contract::REGION_RESERVED_BYTES,
                "Address space reserved for arena chunks.",
            ),
            arena_reset_duration: histogram(
                &r,
                contract::ARENA_RESET_DURATION_SECONDS,
                "Time to reset a request arena.",
                RESET_BUCKETS,
            ),
            arena_limit_exceeded: counter(
                &r,
                contract::ARENA_LIMIT_EXCEEDED_TOTAL,
                "Arena allocations refused by the per-request limit.",
            ),

            pool_objects: gauge_vec(
                &r,
                contract::POOL_OBJECTS,
                "Pool blocks by state (live: handed out; free: available without a new chunk).",
                &["pool", "state"],
            ),
            pool_allocations: counter_vec(
                &r,
                contract::POOL_ALLOCATIONS_TOTAL,
                "Pool allocations.",
                &["pool"],
            ),
            pool_frees: counter_vec(&r, contract::POOL_FREES_TOTAL, "Pool frees.", &["pool"]),
            pool_exhausted: counter_vec(
                &r,
                contract::POOL_EXHAUSTED_TOTAL,
                "Pool allocations refused because the pool was at its cap.",
                &["pool"],
            ),

            cache_entries: gauge(&r, contract::CACHE_ENTRIES, "Profiles in the cache."),
            cache_bytes: gauge(&r, contract::CACHE_BYTES, "Bytes of profile storage in the cache."),
            cache_hits: counter(&r, contract::CACHE_HITS_TOTAL, "Profile lookups that found the user."),
            cache_misses: counter(&r, contract::CACHE_MISSES_TOTAL, "Profile lookups that did not."),
            cache_evictions: counter(
                &r,
                contract::CACHE_EVICTIONS_TOTAL,
                "Profiles evicted to respect the cache bounds.",
            ),

            request_heap_allocations: counter(
                &r,
                contract::REQUEST_HEAP_ALLOCATIONS_TOTAL,
                "General-heap allocations made by request handlers' own work (zero in the arena modes).",
            ),
            request_heap_bytes: counter(
                &r,
                contract::REQUEST_HEAP_BYTES_TOTAL,
                "Bytes of those allocations.",
            ),
            connection_heap_allocations: counter(
                &r,
                contract::CONNECTION_HEAP_ALLOCATIONS_TOTAL,
                "General-heap allocations made while hyper drives client connections (request heads, header maps, buffers, HTTP/2 streams), outside the route handlers.",
            ),
            connection_heap_bytes: counter(
                &r,
                contract::CONNECTION_HEAP_BYTES_TOTAL,
                "Bytes of those allocations.",
            ),

            alloc_duration: histogram_vec(
                &r,
                contract::ALLOC_DURATION_SECONDS,
                "Sampled allocation latency by allocator (timer overhead subtracted).",
                &["allocator"],
                ALLOC_BUCKETS,
            ),

            http_requests: counter_vec(
                &r,
                contract::HTTP_REQUESTS_TOTAL,
                "HTTP requests by route and status.",
                &["route", "status"],
            ),
            http_duration: histogram_vec(
                &r,
                contract::HTTP_REQUEST_DURATION_SECONDS,
                "HTTP request handling time by route.",
                &["route"],
                HTTP_BUCKETS,
            ),
            http_in_flight: gauge(&r, contract::HTTP_IN_FLIGHT_REQUESTS, "HTTP requests being handled."),

            lifetime_mode: gauge_vec(
                &r,
                contract::LIFETIME_MODE,
                "The active lifetime mode (1 for the active one).",
                &["mode"],
            ),
            registry: r,
            scrape: Mutex::new(LastTotals::default()),
        };
        for label in ["arena", "pool", "cache", "heap"] {
            metrics.alloc_duration.with_label_values(&[label]);
        }
        for state in ["in_use", "idle", "pinned"] {
            metrics.arena_chunks.with_label_values(&[state]);
        }
        for state in ["reserved", "committed"] {
            metrics.cache_region_bytes.with_label_values(&[state]);
        }
        Arc::new(metrics)
    }

    /// Brings the sourced metrics up to date from `snapshot` and renders the registry in
    /// the Prometheus text format.
    pub fn render(&self, snapshot: &Snapshot) -> Vec<u8> {
        let mut last = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let j = &snapshot.jemalloc;
        self.jemalloc_allocated.set(j.allocated as i64);
        self.jemalloc_active.set(j.active as i64);
        self.jemalloc_resident.set(j.resident as i64);
        self.jemalloc_mapped.set(j.mapped as i64);
        self.jemalloc_retained.set(j.retained as i64);
        self.jemalloc_metadata.set(j.metadata as i64);
        for (label, stats) in [("cache", &snapshot.cache_arena), ("all", &snapshot.all_arenas)] {
            self.jemalloc_arena_allocated.with_label_values(&[label]).set(stats.allocated as i64);
            self.jemalloc_arena_resident.with_label_values(&[label]).set(stats.resident as i64);
            self.jemalloc_arena_dirty.with_label_values(&[label]).set(stats.dirty_bytes as i64);
        }
        let region = &snapshot.cache_region;
        self.cache_region_bytes.with_label_values(&["reserved"]).set(region.reserved as i64);
        self.cache_region_bytes.with_label_values(&["committed"]).set(region.committed as i64);
        let c = &snapshot.chunks;
        self.arena_chunks.with_label_values(&["in_use"]).set(c.chunks_in_use as i64);
        self.arena_chunks.with_label_values(&["idle"]).set(c.chunks_idle as i64);
        self.arena_chunks.with_label_values(&["pinned"]).set(c.chunks_pinned as i64);
        self.arena_committed_bytes.set(c.committed_bytes as i64);
        self.region_reserved_bytes.set(c.reserved_bytes as i64);

        self.pool_objects.with_label_values(&["response", "live"]).set(snapshot.pool_live as i64);
        self.pool_objects.with_label_values(&["response", "free"]).set(snapshot.pool_free as i64);
        advance(
            &self.pool_allocations.with_label_values(&["response"]),
            &mut last.pool_allocations,
            snapshot.pool_allocations,
        );
        advance(&self.pool_frees.with_label_values(&["response"]), &mut last.pool_frees, snapshot.pool_frees);
        advance(
            &self.pool_exhausted.with_label_values(&["response"]),
            &mut last.pool_exhausted,
            snapshot.pool_exhausted,
        );

        let cache = &snapshot.cache;
        self.cache_entries.set(cache.entries as i64);
        self.cache_bytes.set(cache.bytes as i64);
        advance(&self.cache_hits, &mut last.cache_hits, cache.hits);
        advance(&self.cache_misses, &mut last.cache_misses, cache.misses);
        advance(&self.cache_evictions, &mut last.cache_evictions, cache.evictions);
        advance(&self.request_heap_allocations, &mut last.heap_allocations, snapshot.heap_allocations);
        advance(&self.request_heap_bytes, &mut last.heap_bytes, snapshot.heap_bytes);
        advance(
            &self.connection_heap_allocations,
            &mut last.connection_heap_allocations,
            snapshot.connection_heap_allocations,
        );
        advance(&self.connection_heap_bytes, &mut last.connection_heap_bytes, snapshot.connection_heap_bytes);

        for mode in Mode::ALL {
            self.lifetime_mode
                .with_label_values(&[mode.as_str()])
                .set(i64::from(snapshot.mode == Some(mode)));
        }

        let mut text = Vec::with_capacity(32 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("encoding into a Vec cannot fail");
        text
    }
}

/// Moves a counter forward to a total read from elsewhere.
fn advance(counter: &IntCounter, last: &mut u64, total: u64) {
    if total > *last {
        counter.inc_by(total - *last);
        *last = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 30-100 ns allocation's p99 falls in a bucket at most 20 ns wide (a 2 × wide one made
    /// the interpolated p99 meaningless), and every earlier edge is still an edge, so a query
    /// on one of them (`le="1e-07"`) keeps working.
    #[test]
    fn allocation_buckets_are_fine_below_200_ns_and_keep_the_earlier_edges() {
        assert!(ALLOC_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]), "strictly increasing");
        assert_eq!((ALLOC_BUCKETS[0], ALLOC_BUCKETS[ALLOC_BUCKETS.len() - 1]), (10e-9, 1e-3));
        for pair in ALLOC_BUCKETS.windows(2).filter(|pair| pair[1] <= 200e-9 * (1.0 + 1e-9)) {
            assert!(pair[1] - pair[0] <= 20e-9 * (1.0 + 1e-9), "bucket {:?} is wider than 20 ns", pair);
        }
        let earlier = [
            10e-9, 20e-9, 50e-9, 100e-9, 200e-9, 500e-9, 1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6,
            200e-6, 500e-6, 1e-3,
        ];
        for edge in earlier {
            assert!(
                ALLOC_BUCKETS.iter().any(|b| (b - edge).abs() <= edge * 1e-9),
                "the earlier edge {edge:e} is gone"
            );
        }
    }

    /// The server registers what the contract lists and nothing else, under the type it
    /// lists (dashboards and loadgen read these names through allockit-probe's constants).
    #[test]
    fn the_registry_and_the_contract_list_the_same_metrics_and_types() {
        let metrics = Metrics::new();
        // A labelled metric is exported once it has a series: give the request-path ones one,
        // and let a scrape set the sourced ones.
        metrics.http_requests.with_label_values(&["/", "200"]).inc();
        metrics.http_duration.with_label_values(&["/"]).observe(1e-3);
        metrics.render(&Snapshot::default());
        let families = metrics.registry.gather();
        let unregistered: Vec<&str> = contract::SERVER_CONTRACT
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !families.iter().any(|family| family.name() == *name))
            .collect();
        assert!(unregistered.is_empty(), "in the contract, never registered: {unregistered:?}");
        for family in &families {
            let name = family.name();
            let (_, kind) = contract::SERVER_CONTRACT
                .iter()
                .find(|(listed, _)| *listed == name)
                .unwrap_or_else(|| panic!("{name} is registered but not in allockit_probe::metrics"));
            let registered = match family.get_field_type() {
                prometheus::proto::MetricType::COUNTER => contract::MetricType::Counter,
                prometheus::proto::MetricType::GAUGE => contract::MetricType::Gauge,
                prometheus::proto::MetricType::HISTOGRAM => contract::MetricType::Histogram,
                other => panic!("{name} is registered as {other:?}"),
            };
            assert_eq!(registered, *kind, "{name}");
        }
    }
}
