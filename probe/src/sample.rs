//! One reading of a running server: the memory figures of the metric contract that
//! loadgen's per-second series, the soak's checks and the lab's diagnosis work from.

use serde::{Deserialize, Serialize};

use crate::exposition::{self, Exposition};
use crate::metrics;

/// The server-side memory figures of one scrape, each `None` when the server does not
/// export it (any HTTP server can be a target; only allockit-server exports all of them).
/// Figures are summed over the labels they are not selected by (e.g. `worker`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// [`metrics::PROCESS_RESIDENT_MEMORY_BYTES`]: what the OS charges the process.
    pub rss_bytes: Option<f64>,
    /// [`metrics::JEMALLOC_ALLOCATED_BYTES`]: live allocations.
    pub jemalloc_allocated_bytes: Option<f64>,
    /// [`metrics::JEMALLOC_ACTIVE_BYTES`]: pages holding live allocations.
    #[serde(default)]
    pub jemalloc_active_bytes: Option<f64>,
    /// [`metrics::JEMALLOC_RESIDENT_BYTES`]: what jemalloc keeps resident.
    pub jemalloc_resident_bytes: Option<f64>,
    /// [`metrics::ARENA_CHUNKS`] with `state="in_use"`: chunks of arenas serving a request.
    pub arena_chunks_in_use: Option<f64>,
    /// `state="idle"`: chunks kept for the next request.
    pub arena_chunks_idle: Option<f64>,
    /// `state="pinned"`: chunks retired at a reset because an escaping allocation holds them.
    pub arena_chunks_pinned: Option<f64>,
    /// [`metrics::ARENA_COMMITTED_BYTES`]: every chunk taken from the chunk source.
    pub arena_committed_bytes: Option<f64>,
    /// [`metrics::CACHE_BYTES`]: bytes the cached profiles hold.
    pub cache_bytes: Option<f64>,
    /// [`metrics::CACHE_ENTRIES`]: cached profiles.
    pub cache_entries: Option<f64>,
}

impl ServerSample {
    /// Extracts the figures from a parsed exposition.
    pub fn from_exposition(exposition: &Exposition<'_>) -> Self {
        let total = |name| exposition.sum(name, &[]);
        let chunks = |state| exposition.sum(metrics::ARENA_CHUNKS, &[("state", state)]);
        Self {
            rss_bytes: total(metrics::PROCESS_RESIDENT_MEMORY_BYTES),
            jemalloc_allocated_bytes: total(metrics::JEMALLOC_ALLOCATED_BYTES),
            jemalloc_active_bytes: total(metrics::JEMALLOC_ACTIVE_BYTES),
            jemalloc_resident_bytes: total(metrics::JEMALLOC_RESIDENT_BYTES),
            arena_chunks_in_use: chunks("in_use"),
            arena_chunks_idle: chunks("idle"),
            arena_chunks_pinned: chunks("pinned"),
            arena_committed_bytes: total(metrics::ARENA_COMMITTED_BYTES),
            cache_bytes: total(metrics::CACHE_BYTES),
            cache_entries: total(metrics::CACHE_ENTRIES),
        }
    }

    /// Parses `text` (a `/metrics` body) and extracts the figures; malformed lines are
    /// skipped (see [`exposition::parse`]).
    pub fn from_text(text: &str) -> Self {
        Self::from_exposition(&exposition::parse(text))
    }

    /// Every arena chunk, whatever its state; `None` when the server exports no chunk state.
    pub fn arena_chunks(&self) -> Option<f64> {
        [self.arena_chunks_in_use, self.arena_chunks_idle, self.arena_chunks_pinned]
            .into_iter()
            .flatten()
            .reduce(|total, chunks| total + chunks)
    }

    /// Bytes held by pinned chunks. Committed bytes count every chunk taken from the chunk
    /// source, pinned ones included, so committed ÷ all chunks is the chunk size and the
    /// pinned chunks hold pinned × that. `None` without the three figures or without chunks.
    pub fn pinned_bytes(&self) -> Option<f64> {
        match (self.arena_chunks_pinned, self.arena_chunks(), self.arena_committed_bytes) {
            (Some(pinned), Some(all), Some(committed)) if all > 0.0 => Some(committed * pinned / all),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_summed_over_workers_and_absent_ones_are_none() {
        let sample = ServerSample::from_text(
            "process_resident_memory_bytes 5e7\n\
             allockit_arena_chunks{state=\"in_use\",worker=\"0\"} 1\n\
             allockit_arena_chunks{state=\"pinned\",worker=\"0\"} 3\n\
             allockit_arena_chunks{state=\"pinned\",worker=\"1\"} 4\n\
             allockit_arena_committed_bytes 524288\n",
        );
        assert_eq!(sample.rss_bytes, Some(5e7));
        assert_eq!(sample.arena_chunks_pinned, Some(7.0));
        assert_eq!(sample.arena_chunks_idle, None);
        assert_eq!(sample.arena_chunks(), Some(8.0));
        assert_eq!(sample.pinned_bytes(), Some(7.0 * 65536.0));
        assert_eq!(sample.jemalloc_allocated_bytes, None);
    }

    #[test]
    fn a_server_without_the_contract_gives_an_empty_sample() {
        assert_eq!(ServerSample::from_text("up 1\n"), ServerSample::default());
        assert_eq!(ServerSample::default().pinned_bytes(), None);
    }
}
