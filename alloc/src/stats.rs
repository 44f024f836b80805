//! The counters every allocator reports, in one shape.
//!
//! Plain numbers, no Prometheus types: the server turns them into metrics, the lab into
//! tables. Fields that do not apply to an allocator stay zero (an arena never frees one
//! object; a pool never resets).

/// A snapshot of an allocator's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful allocations, ever. Arenas count them only with the `count-allocations`
    /// feature (off by default: it would be the one counter on their fast path); without
    /// it, zero for arenas.
    pub allocations: u64,
    /// Frees, ever (for an arena: tip allocations rolled back).
    pub frees: u64,
    /// Bytes handed out, ever (block sizes for pools; used bytes, padding included, for
    /// arenas).
    pub allocated_bytes: u64,
    /// Bytes handed out and not yet freed (for an arena: since the last reset).
    pub live_bytes: usize,
    /// Bytes the allocator holds from its source (chunks, spans, buffer).
    pub footprint_bytes: usize,
    /// The most `live_bytes` ever reached (for an arena: in one reset cycle).
    pub high_water_bytes: usize,
    /// Chunks and spans held.
    pub chunks: usize,
    /// Resets, ever.
    pub resets: u64,
    /// Allocations refused (exhaustion or limit), ever.
    pub failures: u64,
}
