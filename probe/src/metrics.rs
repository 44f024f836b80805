//! Every metric name of the contract in `DESIGN.md` ("Metric contract"), one constant each:
//! the server registers its metrics under these names, and loadgen, the lab and the tests
//! read them through the same constants, so a rename is one edit here and a compile error
//! wherever a name is used (the dashboards' JSON is checked against a live server instead).
//!
//! Names follow `promtool check metrics`: base units (bytes, seconds), `_total` only on
//! counters. Labels are given in each constant's doc; [`SERVER_CONTRACT`] and
//! [`LOADGEN_CONTRACT`] list every name with its type.

/// A Prometheus metric type, as the exposition's `# TYPE` line writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// Only goes up (resets on restart); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count` series under one name.
    Histogram,
}

impl MetricType {
    /// The word of the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

// --- the global allocator: jemalloc, its epoch advanced on every scrape ---

/// Bytes in live allocations (jemalloc `stats.allocated`).
pub const JEMALLOC_ALLOCATED_BYTES: &str = "jemalloc_allocated_bytes";
/// Bytes in pages holding live allocations (`stats.active`): above allocated by the
/// fragmentation inside those pages.
pub const JEMALLOC_ACTIVE_BYTES: &str = "jemalloc_active_bytes";
/// Bytes jemalloc holds resident (`stats.resident`): active pages, dirty pages not yet
/// purged, and metadata.
pub const JEMALLOC_RESIDENT_BYTES: &str = "jemalloc_resident_bytes";
/// Bytes in extents mapped by jemalloc (`stats.mapped`).
pub const JEMALLOC_MAPPED_BYTES: &str = "jemalloc_mapped_bytes";
/// Bytes of virtual memory jemalloc retained rather than unmapped (`stats.retained`).
pub const JEMALLOC_RETAINED_BYTES: &str = "jemalloc_retained_bytes";
/// Bytes of jemalloc's own metadata (`stats.metadata`).
pub const JEMALLOC_METADATA_BYTES: &str = "jemalloc_metadata_bytes";
/// Per arena (`arena` label; `arena="cache"` is the cache's dedicated arena): bytes in live
/// allocations.
pub const JEMALLOC_ARENA_ALLOCATED_BYTES: &str = "jemalloc_arena_allocated_bytes";
/// Per arena (`arena`): resident bytes, the arena's share of what the process holds in RAM
/// (its dirty pages included until they are purged).
pub const JEMALLOC_ARENA_RESIDENT_BYTES: &str = "jemalloc_arena_resident_bytes";
/// Per arena (`arena`): bytes in dirty pages (freed, not yet purged), in bytes rather than
/// the pages jemalloc counts them in.
pub const JEMALLOC_ARENA_DIRTY_BYTES: &str = "jemalloc_arena_dirty_bytes";

/// Regions allockit reserved up front for the cache arena's extents (extent hooks), by
/// `state="reserved|committed"`.
pub const CACHE_REGION_BYTES: &str = "allockit_cache_region_bytes";

// --- the process (the prometheus crate's `process` collector) ---

/// The process's resident set size: what the operating system charges the server.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// The process's virtual memory size.
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
/// User plus system CPU time.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
/// Open file descriptors.
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
/// The descriptor limit.
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
/// Start time, seconds since the Unix epoch.
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";
/// OS threads.
pub const PROCESS_THREADS: &str = "process_threads";

// --- the request arena ---

/// Arena resets (one per finished request).
pub const ARENA_RESETS_TOTAL: &str = "allockit_arena_resets_total";
/// Allocations served by request arenas.
pub const ARENA_ALLOCATIONS_TOTAL: &str = "allockit_arena_allocations_total";
/// Bytes handed out by request arenas.
pub const ARENA_ALLOCATED_BYTES_TOTAL: &str = "allockit_arena_allocated_bytes_total";
/// Histogram of the bytes one request allocated in its arena.
pub const ARENA_REQUEST_BYTES: &str = "allockit_arena_request_bytes";
/// Arena chunks by `state="in_use|idle|pinned"` (and `worker`): pinned chunks are held by an
/// escaping allocation after their arena was reset.
pub const ARENA_CHUNKS: &str = "allockit_arena_chunks";
/// Bytes of every chunk taken from the chunk source, pinned ones included.
pub const ARENA_COMMITTED_BYTES: &str = "allockit_arena_committed_bytes";
/// Bytes of address space the arenas' regions reserved.
pub const REGION_RESERVED_BYTES: &str = "allockit_region_reserved_bytes";
/// Histogram of the time one arena reset takes.
pub const ARENA_RESET_DURATION_SECONDS: &str = "allockit_arena_reset_duration_seconds";
/// Requests refused because their arena hit its limit.
pub const ARENA_LIMIT_EXCEEDED_TOTAL: &str = "allockit_arena_limit_exceeded_total";

// --- the hot-type pool (`pool` label) ---

/// Pool objects by `pool` and `state="live|free"`.
pub const POOL_OBJECTS: &str = "allockit_pool_objects";
/// Objects taken from the pool.
pub const POOL_ALLOCATIONS_TOTAL: &str = "allockit_pool_allocations_total";
/// Objects given back to the pool.
pub const POOL_FREES_TOTAL: &str = "allockit_pool_frees_total";
/// Takes the pool could not serve.
pub const POOL_EXHAUSTED_TOTAL: &str = "allockit_pool_exhausted_total";

// --- the long-lived cache ---

/// Profiles in the cache.
pub const CACHE_ENTRIES: &str = "allockit_cache_entries";
/// Bytes the cached profiles hold.
pub const CACHE_BYTES: &str = "allockit_cache_bytes";
/// Lookups that found the profile.
pub const CACHE_HITS_TOTAL: &str = "allockit_cache_hits_total";
/// Lookups that created it.
pub const CACHE_MISSES_TOTAL: &str = "allockit_cache_misses_total";
/// Profiles evicted by the entry or byte bound.
pub const CACHE_EVICTIONS_TOTAL: &str = "allockit_cache_evictions_total";

// --- the general heap on the request path (a counting global allocator) ---

/// General-heap allocations made while a request's handler ran: zero in the default mode
/// is the proof that request work avoids the general heap.
pub const REQUEST_HEAP_ALLOCATIONS_TOTAL: &str = "allockit_request_heap_allocations_total";
/// Bytes of those allocations.
pub const REQUEST_HEAP_BYTES_TOTAL: &str = "allockit_request_heap_bytes_total";
/// General-heap allocations of the per-connection work hyper does (header maps, buffers),
/// counted apart from the handler's.
pub const CONNECTION_HEAP_ALLOCATIONS_TOTAL: &str = "allockit_connection_heap_allocations_total";
/// Bytes of those allocations.
pub const CONNECTION_HEAP_BYTES_TOTAL: &str = "allockit_connection_heap_bytes_total";

/// Histogram of sampled allocation latency by `allocator="arena|pool|cache|heap"`, buckets
/// from 10 ns to 1 ms.
pub const ALLOC_DURATION_SECONDS: &str = "allockit_alloc_duration_seconds";

// --- HTTP ---

/// Requests by `route` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "allockit_http_requests_total";
/// Histogram of request duration by `route`, 50 µs to 5 s.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "allockit_http_request_duration_seconds";
/// Requests being served now.
pub const HTTP_IN_FLIGHT_REQUESTS: &str = "allockit_http_in_flight_requests";

/// 1 for the active `mode="segregated|broken|heap"`, 0 for the others.
pub const LIFETIME_MODE: &str = "allockit_lifetime_mode";

// --- loadgen's own (with `--metrics-addr`) ---

/// Requests loadgen finished, by `outcome` (skipped sends included).
pub const LOADGEN_REQUESTS_TOTAL: &str = "loadgen_requests_total";
/// Histogram of the coordinated-omission-corrected latency.
pub const LOADGEN_LATENCY_SECONDS: &str = "loadgen_latency_seconds";
/// The scheduled rate, requests per second.
pub const LOADGEN_TARGET_RPS: &str = "loadgen_target_rps";
/// Requests sent and awaiting a response.
pub const LOADGEN_IN_FLIGHT_REQUESTS: &str = "loadgen_in_flight_requests";

/// Every name the server exports, with its type (the process collector's included).
pub const SERVER_CONTRACT: &[(&str, MetricType)] = &[
    (JEMALLOC_ALLOCATED_BYTES, MetricType::Gauge),
    (JEMALLOC_ACTIVE_BYTES, MetricType::Gauge),
    (JEMALLOC_RESIDENT_BYTES, MetricType::Gauge),
    (JEMALLOC_MAPPED_BYTES, MetricType::Gauge),
    (JEMALLOC_RETAINED_BYTES, MetricType::Gauge),
    (JEMALLOC_METADATA_BYTES, MetricType::Gauge),
    (JEMALLOC_ARENA_ALLOCATED_BYTES, MetricType::Gauge),
    (JEMALLOC_ARENA_RESIDENT_BYTES, MetricType::Gauge),
    (JEMALLOC_ARENA_DIRTY_BYTES, MetricType::Gauge),
    (CACHE_REGION_BYTES, MetricType::Gauge),
    (PROCESS_RESIDENT_MEMORY_BYTES, MetricType::Gauge),
    (PROCESS_VIRTUAL_MEMORY_BYTES, MetricType::Gauge),
    (PROCESS_CPU_SECONDS_TOTAL, MetricType::Counter),
    (PROCESS_OPEN_FDS, MetricType::Gauge),
    (PROCESS_MAX_FDS, MetricType::Gauge),
    (PROCESS_START_TIME_SECONDS, MetricType::Gauge),
    (PROCESS_THREADS, MetricType::Gauge),
    (ARENA_RESETS_TOTAL, MetricType::Counter),
    (ARENA_ALLOCATIONS_TOTAL, MetricType::Counter),
    (ARENA_ALLOCATED_BYTES_TOTAL, MetricType::Counter),
    (ARENA_REQUEST_BYTES, MetricType::Histogram),
    (ARENA_CHUNKS, MetricType::Gauge),
    (ARENA_COMMITTED_BYTES, MetricType::Gauge),
    (REGION_RESERVED_BYTES, MetricType::Gauge),
    (ARENA_RESET_DURATION_SECONDS, MetricType::Histogram),
    (ARENA_LIMIT_EXCEEDED_TOTAL, MetricType::Counter),
    (POOL_OBJECTS, MetricType::Gauge),
    (POOL_ALLOCATIONS_TOTAL, MetricType::Counter),
    (POOL_FREES_TOTAL, MetricType::Counter),
    (POOL_EXHAUSTED_TOTAL, MetricType::Counter),
    (CACHE_ENTRIES, MetricType::Gauge),
    (CACHE_BYTES, MetricType::Gauge),
    (CACHE_HITS_TOTAL, MetricType::Counter),
    (CACHE_MISSES_TOTAL, MetricType::Counter),
    (CACHE_EVICTIONS_TOTAL, MetricType::Counter),
    (REQUEST_HEAP_ALLOCATIONS_TOTAL, MetricType::Counter),
    (REQUEST_HEAP_BYTES_TOTAL, MetricType::Counter),
    (CONNECTION_HEAP_ALLOCATIONS_TOTAL, MetricType::Counter),
    (CONNECTION_HEAP_BYTES_TOTAL, MetricType::Counter),
    (ALLOC_DURATION_SECONDS, MetricType::Histogram),
    (HTTP_REQUESTS_TOTAL, MetricType::Counter),
    (HTTP_REQUEST_DURATION_SECONDS, MetricType::Histogram),
    (HTTP_IN_FLIGHT_REQUESTS, MetricType::Gauge),
    (LIFETIME_MODE, MetricType::Gauge),
];

/// Every name loadgen exports with `--metrics-addr` (beside the process collector's).
pub const LOADGEN_CONTRACT: &[(&str, MetricType)] = &[
    (LOADGEN_REQUESTS_TOTAL, MetricType::Counter),
    (LOADGEN_LATENCY_SECONDS, MetricType::Histogram),
    (LOADGEN_TARGET_RPS, MetricType::Gauge),
    (LOADGEN_IN_FLIGHT_REQUESTS, MetricType::Gauge),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_only_counters_end_in_total_and_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (name, kind) in SERVER_CONTRACT.iter().chain(LOADGEN_CONTRACT) {
            assert!(seen.insert(*name), "{name} is listed twice");
            assert_eq!(name.ends_with("_total"), *kind == MetricType::Counter, "{name} is a {kind:?}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is not a plain snake_case metric name"
            );
        }
    }
}
