//! Command-line flags, each with an environment-variable fallback (`ALLOCKIT_*`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Where request memory comes from, and where long-lived profiles live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Request memory in a per-request arena; profiles on the dedicated jemalloc cache
    /// arena. The design this service demonstrates.
    Segregated,
    /// Request memory in the arena, and each new profile an escaping allocation in the
    /// request's arena: every cached profile pins a whole chunk (`--break-lifetimes`).
    Broken,
    /// Request memory on jemalloc, profiles on the cache arena: the control that shows
    /// what the arena buys (`--request-alloc heap`).
    Heap,
}

impl Mode {
    /// Every mode, in the order of the `allockit_lifetime_mode` metric.
    pub const ALL: [Mode; 3] = [Mode::Segregated, Mode::Broken, Mode::Heap];

    /// The metric label and admin-route spelling of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Segregated => "segregated",
            Mode::Broken => "broken",
            Mode::Heap => "heap",
        }
    }

    /// Parses the admin-route spelling.
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// The allocator behind request memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestAlloc {
    /// A per-request bump arena, reset when the request ends.
    Arena,
    /// jemalloc (the general heap).
    Heap,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses a duration such as `250ms`, `5s`, `2m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration like 250ms, 5s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{text}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// allockit-server: a request-scoped HTTP service. Each request works in its own arena,
/// the response buffer comes from a pool, and long-lived user profiles live in an LRU
/// cache on a dedicated jemalloc arena. `--break-lifetimes` shows what happens when
/// long-lived objects are put in request memory instead.
#[derive(Debug, Clone, Parser)]
#[command(name = "allockit-server", version)]
pub struct Config {
    /// Address of the main listener (bound once and shared by the workers; an address in
    /// use is an error). Port 0 picks
    /// a free port; the chosen addresses are printed as one JSON line on stdout.
    #[arg(long, env = "ALLOCKIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address of the admin listener (mode toggle, cache clear, heap profiles).
    #[arg(long, env = "ALLOCKIT_ADMIN_LISTEN", default_value = "127.0.0.1:9091")]
    pub admin_listen: SocketAddr,

    /// Bearer token for the admin routes. Required when --admin-listen is not loopback;
    /// when set, every admin request must carry `Authorization: Bearer <token>`.
    #[arg(long, env = "ALLOCKIT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Worker threads, each with its own current-thread runtime and listener
    /// (default: the number of available cores).
    #[arg(long, env = "ALLOCKIT_WORKERS")]
    pub workers: Option<usize>,

    /// Put each new cached profile in the request's arena as an escaping allocation (it
    /// pins its chunk): the lifetime bug this service demonstrates.
    /// As an environment variable: 1/0, yes/no, true/false, on/off.
    #[arg(
        long,
        env = "ALLOCKIT_BREAK_LIFETIMES",
        conflicts_with = "request_alloc",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub break_lifetimes: bool,

    /// Where request memory comes from: `arena` (default) or `heap` (jemalloc, the
    /// control for the arena's win).
    #[arg(long, env = "ALLOCKIT_REQUEST_ALLOC", value_enum, default_value = "arena")]
    pub request_alloc: RequestAlloc,

    /// Largest accepted request body, in bytes (413 beyond).
    #[arg(long, env = "ALLOCKIT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most events accepted in one batch (422 beyond).
    #[arg(long, env = "ALLOCKIT_MAX_EVENTS", default_value_t = 10_000)]
    pub max_events: usize,

    /// Most bytes one request's arena may hold (413 beyond).
    #[arg(long, env = "ALLOCKIT_ARENA_LIMIT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub arena_limit_bytes: usize,

    /// Arena chunk size in bytes (a power of two).
    #[arg(long, env = "ALLOCKIT_ARENA_CHUNK_BYTES", default_value_t = 64 * 1024)]
    pub arena_chunk_bytes: usize,

    /// Size of each reserved region of arena chunks, in bytes.
    #[arg(long, env = "ALLOCKIT_ARENA_REGION_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub arena_region_bytes: usize,

    /// Most regions the arena chunk source may reserve (address space only: 64 regions of
    /// 256 MiB reserve 16 GiB of addresses and commit nothing until used).
    #[arg(long, env = "ALLOCKIT_ARENA_MAX_REGIONS", default_value_t = 64)]
    pub arena_max_regions: usize,

    /// Idle arena chunks kept committed, in bytes; idle chunks beyond are decommitted.
    #[arg(long, env = "ALLOCKIT_ARENA_RETAIN_IDLE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub arena_retain_idle_bytes: usize,

    /// Most chunks each worker's response-buffer pool may hold.
    #[arg(long, env = "ALLOCKIT_POOL_MAX_CHUNKS", default_value_t = 64)]
    pub pool_max_chunks: usize,

    /// Most profiles in the cache.
    #[arg(long, env = "ALLOCKIT_CACHE_ENTRIES", default_value_t = 100_000)]
    pub cache_entries: usize,

    /// Most profile bytes in the cache.
    #[arg(long, env = "ALLOCKIT_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_bytes: usize,

    /// Size of each region reserved for the cache arena's extents, in bytes (a multiple of
    /// 2 MiB, at least 2 MiB). The first is reserved at start (address space only: pages are
    /// committed as jemalloc needs them); another is reserved when an extent does not fit,
    /// up to 64 regions.
    #[arg(long, env = "ALLOCKIT_CACHE_REGION_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub cache_region_bytes: usize,

    /// Most open client connections (beyond, a 503 and the connection closes). Capped at
    /// start to what the open-file limit allows (one descriptor per connection, plus
    /// headroom); the cap is logged.
    #[arg(long, env = "ALLOCKIT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a client may take to send a request's headers (then 408 and close).
    #[arg(long, env = "ALLOCKIT_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a client may take to send a request's body, from the end of its headers
    /// (then 408 and close). Request memory grows only as the body's bytes arrive.
    #[arg(long, env = "ALLOCKIT_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// After SIGTERM, how long to keep serving (with `/readyz` answering 503 `draining`,
    /// on new and kept-alive connections) so that load balancers stop sending traffic,
    /// before the listeners close and in-flight requests are drained.
    #[arg(long, env = "ALLOCKIT_DRAIN_DELAY", default_value = "1s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// How long shutdown waits for in-flight requests (after --drain-delay).
    #[arg(long, env = "ALLOCKIT_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Time one allocation in this many, per allocator, for the latency histograms.
    #[arg(long, env = "ALLOCKIT_LATENCY_SAMPLE_EVERY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub latency_sample_every: u32,

    /// Log filter (tracing's EnvFilter syntax, e.g. `info` or `allockit_server=debug`).
    #[arg(long, env = "ALLOCKIT_LOG", default_value = "info")]
    pub log: String,

    /// `text` for people reading stderr, `json` (one object a line) for log collectors.
    #[arg(long, env = "ALLOCKIT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// The starting mode selected by the flags.
    pub fn mode(&self) -> Mode {
        match (self.break_lifetimes, self.request_alloc) {
            (true, _) => Mode::Broken,
            (false, RequestAlloc::Heap) => Mode::Heap,
            (false, RequestAlloc::Arena) => Mode::Segregated,
        }
    }

    /// Worker threads to start.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
    }

    /// Checks what clap cannot: the admin token rule and the arena geometry.
    pub fn validate(&self) -> Result<(), String> {
        if !self.admin_listen.ip().is_loopback() && self.admin_token.is_none() {
            return Err(format!(
                "--admin-listen {} is not a loopback address: set --admin-token (or ALLOCKIT_ADMIN_TOKEN)",
                self.admin_listen
            ));
        }
        if self.admin_token.as_deref().is_some_and(str::is_empty) {
            return Err("--admin-token must not be empty".into());
        }
        if !self.arena_chunk_bytes.is_power_of_two() {
            return Err(format!("--arena-chunk-bytes {} must be a power of two", self.arena_chunk_bytes));
        }
        if self.workers == Some(0) {
            return Err("--workers must be at least 1".into());
        }
        let huge_page = crate::cache_region::MIN_REGION_BYTES;
        if self.cache_region_bytes < huge_page || !self.cache_region_bytes.is_multiple_of(huge_page) {
            return Err(format!(
                "--cache-region-bytes {} must be a multiple of 2 MiB ({huge_page}), at least 2 MiB",
                self.cache_region_bytes
            ));
        }
        if self.cache_entries == 0 {
            return Err("--cache-entries must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_public_admin_listener_needs_a_token() {
        let config = Config::parse_from(["allockit-server", "--admin-listen", "0.0.0.0:9091"]);
        assert!(config.validate().unwrap_err().contains("--admin-token"));
        let config = Config::parse_from([
            "allockit-server",
            "--admin-listen",
            "0.0.0.0:9091",
            "--admin-token",
            "s3cret",
        ]);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_cache_region_is_a_whole_number_of_huge_pages() {
        let config = |bytes: &str| Config::parse_from(["allockit-server", "--cache-region-bytes", bytes]);
        assert_eq!(Config::parse_from(["allockit-server"]).cache_region_bytes, 1 << 30);
        assert!(config("4194304").validate().is_ok());
        for refused in ["0", "1048576", "3145728"] {
            assert!(config(refused).validate().unwrap_err().contains("--cache-region-bytes"), "{refused}");
        }
    }

    #[test]
    fn break_lifetimes_and_heap_requests_conflict() {
        let error =
            Config::try_parse_from(["allockit-server", "--break-lifetimes", "--request-alloc", "heap"])
                .unwrap_err();
        assert!(error.to_string().contains("--request-alloc"));
        assert_eq!(Config::parse_from(["allockit-server", "--break-lifetimes"]).mode(), Mode::Broken);
        assert_eq!(Config::parse_from(["allockit-server", "--request-alloc", "heap"]).mode(), Mode::Heap);
    }
}
