//! Leak or fragmentation? One function that reads a memory time series and says which,
//! with the numbers that justify it. Used on the synthetic services and on a live
//! allockit-server's `/metrics` alike.
//!
//! The two failures look the same from outside (RSS climbs or stays high) and differ in
//! what the allocator says is *live*:
//!
//! * **Leak**: live bytes (jemalloc `allocated`, minus the growth of a bounded cache
//!   when the service reports one) grow steadily — a straight line fits them (R² ≥ 0.8) —
//!   by at least 1 MiB and 10%, never fall back (the last value is within 10% of the
//!   peak), and resident memory grows at least half as much. The program holds the
//!   memory; the allocator is blameless.
//! * **Fragmentation**: pages that hold live objects are mostly empty. jemalloc's
//!   `active` counts pages of slabs and extents with at least one live object; `active −
//!   allocated` is memory pinned by a few survivors per page. For allockit-server the
//!   request-arena chunks pinned by escaping cache entries are the same failure one level
//!   up, and are added in. Fragmentation is declared when that pinned-but-empty memory is
//!   at least 16 MiB and at least as large as everything live.
//! * Otherwise **healthy**. Resident memory that is neither live nor active is free pages
//!   the allocator keeps for reuse (jemalloc returns them after `dirty_decay_ms`); it is
//!   reported, not blamed.
//!
//! Limits: a cache that is still warming up grows like a leak unless its size is
//! reported; a window shorter than the leak's rate hides it; at least three samples are
//! needed. O(n) in the number of samples.

use allockit_probe::Trend;
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::report;

/// One observation of a process's memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since the first sample.
    pub t_secs: f64,
    /// Bytes in live allocations (jemalloc `stats.allocated`).
    pub allocated: f64,
    /// Bytes in pages holding live allocations (jemalloc `stats.active`).
    pub active: f64,
    /// Bytes the allocator holds resident (jemalloc `stats.resident`).
    pub resident: f64,
    /// The process's resident set size, when known.
    pub rss: Option<f64>,
    /// Request-arena chunks pinned by escaping allocations (allockit-server).
    pub pinned_chunks: Option<f64>,
    /// Bytes in those pinned chunks, when the chunk size can be derived.
    pub pinned_bytes: Option<f64>,
    /// Bytes in the service's bounded cache (allockit-server).
    pub cache_bytes: Option<f64>,
}

impl MemorySample {
    /// Memory held by pages and chunks that have live data but are mostly empty.
    pub fn stranded(&self) -> f64 {
        (self.active - self.allocated).max(0.0) + self.pinned_bytes.unwrap_or(0.0)
    }
}

/// What a memory series shows: a leak, fragmentation, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Live memory grows and is never freed.
    Leak,
    /// Live memory is small next to the pages that hold it.
    Fragmentation,
    /// Neither: live memory is flat and the pages holding it are mostly in use.
    Healthy,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Leak => "leak",
            Verdict::Fragmentation => "fragmentation",
            Verdict::Healthy => "healthy",
        })
    }
}

/// The numbers behind a verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Seconds covered.
    pub window_secs: f64,
    /// Samples read.
    pub samples: usize,
    /// Live bytes at the start (median of the first three samples).
    pub live_start: f64,
    /// Live bytes at the end (median of the last three samples).
    pub live_end: f64,
    /// Largest live bytes seen.
    pub live_peak: f64,
    /// Growth of live bytes not explained by the bounded cache.
    pub unexplained_growth: f64,
    /// Least-squares slope of live bytes (minus cache), bytes per second.
    pub live_slope: f64,
    /// How well a straight line fits live bytes (R², 0 to 1).
    pub live_fit: f64,
    /// Allocator-resident bytes at the start.
    pub resident_start: f64,
    /// Allocator-resident bytes at the end.
    pub resident_end: f64,
    /// Active bytes at the end.
    pub active_end: f64,
    /// Pinned-but-mostly-empty bytes at the end (see [`MemorySample::stranded`]).
    pub stranded_end: f64,
    /// Process RSS at the end, when known.
    pub rss_end: Option<f64>,
    /// Pinned arena chunks at the end, when reported.
    pub pinned_chunks_end: Option<f64>,
    /// Cache bytes at the end, when reported.
    pub cache_end: Option<f64>,
}

/// A verdict, its evidence, and the sentences that explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Leak, fragmentation or healthy.
    pub verdict: Verdict,
    /// The figures the rules were applied to (slopes, growths, stranded bytes).
    pub evidence: Evidence,
    /// Why, in words with numbers.
    pub reasons: Vec<String>,
}

/// Live growth must exceed this many bytes to be a leak.
pub const LEAK_MIN_GROWTH_BYTES: f64 = 1024.0 * 1024.0;
/// ... and this share of the starting live bytes.
pub const LEAK_MIN_GROWTH_SHARE: f64 = 0.10;
/// ... and fit a line at least this well.
pub const LEAK_MIN_FIT: f64 = 0.8;
/// Pinned-but-empty memory must exceed this many bytes to be fragmentation.
pub const FRAGMENTATION_MIN_BYTES: f64 = 16.0 * 1024.0 * 1024.0;

fn median3(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Diagnoses a time series (at least three samples, in time order).
pub fn diagnose(samples: &[MemorySample]) -> Result<Diagnosis, LabError> {
    if samples.len() < 3 {
        return Err(LabError::InvalidArgument {
            flag: "--duration",
            reason: format!("{} samples are too few to diagnose; need at least 3", samples.len()),
        });
    }
    let head = &samples[..3];
    let tail = &samples[samples.len() - 3..];
    let cache = |s: &MemorySample| s.cache_bytes.unwrap_or(0.0);
    let live_start = median3(head.iter().map(|s| s.allocated));
    let live_end = median3(tail.iter().map(|s| s.allocated));
    let cache_growth = median3(tail.iter().map(cache)) - median3(head.iter().map(cache));
    let live_peak = samples.iter().map(|s| s.allocated).fold(0.0, f64::max);
    let points: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_secs, s.allocated - cache(s))).collect();
    // No line (all samples at one instant) is no trend: slope 0, fit 0.
    let (live_slope, live_fit) =
        Trend::fit(&points).map_or((0.0, 0.0), |trend| (trend.slope, trend.r_squared));
    let last = samples[samples.len() - 1];
    let evidence = Evidence {
        window_secs: last.t_secs - samples[0].t_secs,
        samples: samples.len(),
        live_start,
        live_end,
        live_peak,
        unexplained_growth: live_end - live_start - cache_growth,
        live_slope,
        live_fit,
        resident_start: median3(head.iter().map(|s| s.resident)),
        resident_end: median3(tail.iter().map(|s| s.resident)),
        active_end: median3(tail.iter().map(|s| s.active)),
        stranded_end: median3(tail.iter().map(MemorySample::stranded)),
        rss_end: last.rss,
        pinned_chunks_end: last.pinned_chunks,
        cache_end: last.cache_bytes,
    };
    Ok(judge(evidence))
}

fn judge(e: Evidence) -> Diagnosis {
    let b = report::bytes;
    let resident_growth = e.resident_end - e.resident_start;
    let leak_growth = e.unexplained_growth >= LEAK_MIN_GROWTH_BYTES.max(LEAK_MIN_GROWTH_SHARE * e.live_start);
    let steady = e.live_fit >= LEAK_MIN_FIT && e.live_slope > 0.0;
    let never_freed = e.live_end >= 0.9 * e.live_peak;
    let costs_memory = resident_growth >= 0.5 * e.unexplained_growth;
    let fragmented = e.stranded_end >= FRAGMENTATION_MIN_BYTES.max(e.live_end);
    let mut reasons = Vec::new();
    let verdict = if leak_growth && steady && never_freed && costs_memory {
        reasons.push(format!(
            "live bytes grew by {} (from {} to {}) in {:.1} s, {}/s, steadily (R² {:.2}), and were never given back (end at {:.0}% of peak)",
            b(e.unexplained_growth),
            b(e.live_start),
            b(e.live_end),
            e.window_secs,
            b(e.live_slope),
            e.live_fit,
            100.0 * e.live_end / e.live_peak.max(1.0),
        ));
        reasons.push(format!(
            "resident memory followed (+{}): the program keeps references to memory it no longer uses",
            b(resident_growth)
        ));
        if let Some(cache) = e.cache_end {
            reasons.push(format!("the bounded cache ({}) does not explain the growth", b(cache)));
        }
        Verdict::Leak
    } else if fragmented {
        reasons.push(format!(
            "{} of pages and chunks hold only {} of live data ({} as much): survivors pin mostly empty memory",
            b(e.stranded_end + e.live_end),
            b(e.live_end),
            report::ratio((e.stranded_end + e.live_end) / e.live_end.max(1.0)),
        ));
        if e.live_peak > 1.5 * e.live_end {
            reasons.push(format!(
                "live bytes fell {:.0}% from their peak of {} while resident memory is still {} (started at {})",
                100.0 * (1.0 - e.live_end / e.live_peak),
                b(e.live_peak),
                b(e.resident_end),
                b(e.resident_start),
            ));
        }
        if let Some(pinned) = e.pinned_chunks_end.filter(|p| *p > 0.0) {
            reasons.push(format!("{pinned:.0} request-arena chunks are pinned by long-lived allocations"));
        }
        reasons.push(format!(
            "live bytes are not growing steadily (change {}, R² {:.2}): not a leak",
            report::signed_bytes(e.unexplained_growth),
            e.live_fit
        ));
        Verdict::Fragmentation
    } else {
        reasons.push(format!(
            "live bytes changed by {} (R² {:.2}): no steady growth",
            report::signed_bytes(e.unexplained_growth),
            e.live_fit
        ));
        reasons.push(format!(
            "{} of mostly empty pages next to {} live: below the fragmentation threshold",
            b(e.stranded_end),
            b(e.live_end)
        ));
        Verdict::Healthy
    };
    let idle = e.resident_end - e.active_end;
    if idle >= FRAGMENTATION_MIN_BYTES {
        reasons.push(format!(
            "{} resident but free (dirty pages jemalloc keeps for reuse; returned after dirty_decay_ms)",
            b(idle)
        ));
    }
    Diagnosis { verdict, evidence: e, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn series(points: &[(f64, f64, f64, f64)]) -> Vec<MemorySample> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(allocated, active, resident, cache))| MemorySample {
                t_secs: i as f64,
                allocated: allocated * MIB,
                active: active * MIB,
                resident: resident * MIB,
                cache_bytes: (cache > 0.0).then_some(cache * MIB),
                ..MemorySample::default()
            })
            .collect()
    }

    #[test]
    fn steady_growth_that_resident_follows_is_a_leak() {
        let samples: Vec<_> =
            (0..20).map(|i| (5.0 + i as f64, 5.5 + i as f64, 8.0 + i as f64, 0.0)).collect();
        let diagnosis = diagnose(&series(&samples)).unwrap();
        assert_eq!(diagnosis.verdict, Verdict::Leak, "{:?}", diagnosis.reasons);
        assert!((diagnosis.evidence.live_slope - MIB).abs() < 1.0);
    }

    #[test]
    fn empty_pages_pinned_after_a_drop_are_fragmentation() {
        let mut samples: Vec<_> =
            (0..5).map(|i| (10.0 * i as f64, 10.0 * i as f64, 10.0 * i as f64, 0.0)).collect();
        samples.extend((0..15).map(|_| (2.0, 40.0, 42.0, 0.0)));
        let diagnosis = diagnose(&series(&samples)).unwrap();
        assert_eq!(diagnosis.verdict, Verdict::Fragmentation, "{:?}", diagnosis.reasons);
        assert_eq!(diagnosis.evidence.stranded_end, 38.0 * MIB);
    }

    #[test]
    fn a_filling_cache_is_not_a_leak() {
        let samples: Vec<_> =
            (0..20).map(|i| (5.0 + i as f64, 5.5 + i as f64, 8.0 + i as f64, 1.0 + i as f64)).collect();
        assert_eq!(diagnose(&series(&samples)).unwrap().verdict, Verdict::Healthy);
    }

    #[test]
    fn free_dirty_pages_are_reported_but_not_blamed() {
        let samples: Vec<_> = (0..10).map(|_| (3.0, 3.5, 60.0, 0.0)).collect();
        let diagnosis = diagnose(&series(&samples)).unwrap();
        assert_eq!(diagnosis.verdict, Verdict::Healthy);
        assert!(diagnosis.reasons.iter().any(|r| r.contains("dirty pages")), "{:?}", diagnosis.reasons);
    }

    #[test]
    fn pinned_arena_chunks_count_as_fragmentation() {
        let mut samples = series(&(0..10).map(|_| (10.0, 11.0, 12.0, 1.0)).collect::<Vec<_>>());
        for (i, s) in samples.iter_mut().enumerate() {
            s.pinned_chunks = Some(100.0 * i as f64);
            s.pinned_bytes = Some(100.0 * i as f64 * 65536.0);
        }
        assert_eq!(diagnose(&samples).unwrap().verdict, Verdict::Fragmentation);
    }

    #[test]
    fn too_few_samples_are_an_error_naming_the_duration_flag() {
        let err = diagnose(&series(&[(1.0, 1.0, 1.0, 0.0)])).unwrap_err();
        assert!(err.to_string().contains("--duration"), "{err}");
    }
}
