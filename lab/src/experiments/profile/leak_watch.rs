//! Leak or churn? Two heap profiles of the same process, some work apart, diffed with
//! `jeprof --base`.
//!
//! The child runs two sites twice over: `grow_session_cache` keeps every entry it makes
//! (the leak suspect) and `churn_parse_buffers` replaces the entries of a fixed ring
//! (a high-churn site whose live bytes stay put). It dumps a profile after each pass,
//! with `prof_accum:true` so the dumps also count the bytes each stack ever allocated.
//! The parent then asks jeprof for the difference of the two dumps: `--base=FIRST`
//! gives each site's live growth between them, `--alloc_space --base=FIRST` the bytes it
//! allocated in between, and the verdict ([`trend`]) compares the two.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind};
use crate::child::{ChildTask, Launch};
use crate::process::TempDir;
use crate::report::{self, Table};
use crate::scale::{AtScale, Scale};

use super::{Symbolized, sample_period, symbolize_with, table_live_bytes};

/// The two sites, the leak suspect first.
pub const LEAK_SITES: [&str; 2] = ["grow_session_cache", "churn_parse_buffers"];

/// jemalloc's configuration for the two dumps: the default sampling rate, and
/// `prof_accum` so that `jeprof --alloc_space` can count what each site allocated.
pub const LEAK_WATCH_CONF: &str = "prof:true,prof_active:true,prof_accum:true,lg_prof_sample:19";

const CACHE_ENTRY: usize = 2048;
const PARSE_BUFFER: usize = 8192;

/// The child task: two passes over both sites, a dump after each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakWatch {
    /// Where to write the two dumps (set by [`run`]).
    pub dumps: [PathBuf; 2],
    /// Bytes the growing site adds (and keeps) per pass, in 2 KiB entries.
    pub growth_bytes: usize,
    /// Bytes the churning site allocates per pass, in 8 KiB buffers.
    pub churn_bytes: usize,
    /// Bytes the churning site keeps live (its ring).
    pub churn_live_bytes: usize,
}

impl AtScale for LeakWatch {
    fn at(scale: Scale) -> Self {
        let (growth_bytes, churn_bytes, churn_live_bytes) = match scale {
            Scale::Full => (32 << 20, 256 << 20, 8 << 20),
            Scale::Quick => (16 << 20, 128 << 20, 4 << 20),
        };
        LeakWatch { dumps: Default::default(), growth_bytes, churn_bytes, churn_live_bytes }
    }
}

/// What the child measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeakWatchRun {
    /// True live bytes per site (in [`LEAK_SITES`] order) at each dump: every allocation
    /// the site holds at its size class.
    pub true_live_bytes: [[usize; 2]; 2],
    /// Bytes each site allocated between the dumps (entries at their size class; the
    /// cache's outer `Vec` regrowths left out).
    pub allocated_between: [usize; 2],
    /// Seconds between the two dumps.
    pub seconds_between: f64,
}

impl ChildTask for LeakWatch {
    const NAME: &'static str = "profile-leak-watch";
    type Output = LeakWatchRun;

    fn run(self) -> Result<LeakWatchRun, LabError> {
        let jemalloc = crate::jemalloc::Jemalloc::loaded()?;
        if !jemalloc.read_bool("opt.prof")? || !jemalloc.read_bool("opt.prof_accum")? {
            return Err(LabError::Profile(format!("run with MALLOC_CONF={LEAK_WATCH_CONF}")));
        }
        let mut cache = Vec::new();
        let mut ring = Vec::new();
        let mut cursor = 0;
        let mut true_live_bytes = [[0; 2]; 2];
        let mut allocated_between = [0; 2];
        let mut dumped_at = Vec::new();
        for (pass, dump) in self.dumps.iter().enumerate() {
            let grown = grow_session_cache(&mut cache, self.growth_bytes);
            let churned =
                churn_parse_buffers(&mut ring, &mut cursor, self.churn_live_bytes, self.churn_bytes);
            jemalloc.dump_profile(dump)?;
            dumped_at.push(Instant::now());
            true_live_bytes[0][pass] = table_live_bytes(&cache);
            true_live_bytes[1][pass] = table_live_bytes(&ring);
            allocated_between = [grown, churned];
        }
        Ok(LeakWatchRun {
            true_live_bytes,
            allocated_between,
            seconds_between: (dumped_at[1] - dumped_at[0]).as_secs_f64(),
        })
    }
}

/// The leak suspect: keeps every 2 KiB entry it makes. Returns the bytes allocated.
#[inline(never)]
fn grow_session_cache(cache: &mut Vec<Vec<u8>>, bytes: usize) -> usize {
    let entries = bytes / CACHE_ENTRY;
    for i in 0..entries {
        cache.push(vec![i as u8; CACHE_ENTRY]);
    }
    std::hint::black_box(entries * CACHE_ENTRY)
}

/// The churner: a ring of 8 KiB buffers whose entries it keeps replacing. Returns the
/// bytes allocated.
#[inline(never)]
fn churn_parse_buffers(ring: &mut Vec<Vec<u8>>, cursor: &mut usize, live: usize, bytes: usize) -> usize {
    let slots = (live / PARSE_BUFFER).max(1);
    let buffers = bytes / PARSE_BUFFER;
    for _ in 0..buffers {
        let buffer = vec![*cursor as u8; PARSE_BUFFER];
        if ring.len() < slots {
            ring.push(buffer);
        } else {
            ring[*cursor % slots] = buffer;
        }
        *cursor += 1;
    }
    std::hint::black_box(buffers * PARSE_BUFFER)
}

/// A site's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// It kept at least half of what it allocated between the dumps: a leak suspect.
    Growing,
    /// Its live bytes moved by at most a tenth of what it allocated (or by sampling
    /// noise): churn, not a leak.
    Stable,
    /// In between: take a third dump.
    Unclear,
}

impl std::fmt::Display for Trend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trend::Growing => "growing (leak suspect)",
            Trend::Stable => "stable (churn)",
            Trend::Unclear => "unclear",
        })
    }
}

/// The verdict for a site whose live bytes grew by `growth` between two dumps while it
/// allocated `allocated` (both from the profile), with one sample per `sample_period`
/// bytes: growth under four samples' worth is noise.
pub fn trend(growth: f64, allocated: f64, sample_period: f64) -> Trend {
    let noise = 4.0 * sample_period;
    if growth > noise && growth >= 0.5 * allocated {
        Trend::Growing
    } else if growth.abs() <= noise.max(0.1 * allocated) {
        Trend::Stable
    } else {
        Trend::Unclear
    }
}

/// One site's figures and verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteTrend {
    /// The site.
    pub site: &'static str,
    /// The profile's live estimate at each dump.
    pub live: [f64; 2],
    /// Live growth between the dumps (`jeprof --base`).
    pub growth: f64,
    /// Bytes allocated between the dumps (`jeprof --alloc_space --base`).
    pub allocated: f64,
    /// The verdict from `growth` and `allocated`.
    pub trend: Trend,
}

/// The leak watch's result.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakWatchOutcome {
    /// What the child measured.
    pub run: LeakWatchRun,
    /// The dumps' mean bytes between samples.
    pub sample_period: f64,
    /// One entry per site (empty when jeprof is missing).
    pub sites: Vec<SiteTrend>,
    /// The two raw dumps.
    pub dumps: [Vec<u8>; 2],
}

fn site_bytes(symbolized: &Symbolized, site: &str) -> f64 {
    match symbolized {
        Symbolized::Jeprof { rows, .. } => {
            rows.iter().find(|r| r.function.contains(site)).map_or(0.0, |r| r.cum_bytes)
        }
        Symbolized::JeprofMissing { .. } => 0.0,
    }
}

impl LeakWatchOutcome {
    /// The verdict for `site`.
    pub fn trend_of(&self, site: &str) -> Option<Trend> {
        self.sites.iter().find(|s| s.site == site).map(|s| s.trend)
    }

    /// The two dumps and their diff as a table.
    pub fn table(&self) -> Table {
        let seconds = self.run.seconds_between.max(1e-9);
        let mut table = Table::new(
            format!(
                "Leak or churn: two dumps {:.2} s apart (prof_accum:true, lg_prof_sample:19). growth: jeprof --base=first \
                 (live); allocated: jeprof --alloc_space --base=first; kept = growth / allocated; truth from the child",
                self.run.seconds_between
            ),
            &[
                "site",
                "live at 1st",
                "live at 2nd",
                "growth",
                "allocated",
                "kept",
                "growth/s",
                "churn/s",
                "true growth",
                "verdict",
            ],
        );
        for (i, site) in self.sites.iter().enumerate() {
            let truth = self.run.true_live_bytes[i];
            table.push(vec![
                site.site.to_owned(),
                report::bytes(site.live[0]),
                report::bytes(site.live[1]),
                report::signed_bytes(site.growth),
                report::bytes(site.allocated),
                format!("{:+.1}%", site.growth / site.allocated.max(1.0) * 100.0),
                report::signed_bytes(site.growth / seconds),
                report::bytes(site.allocated / seconds),
                report::signed_bytes(truth[1] as f64 - truth[0] as f64),
                site.trend.to_string(),
            ]);
        }
        table
    }

    /// The verdicts, in numbers.
    pub fn findings(&self) -> Vec<String> {
        if self.sites.is_empty() {
            return vec!["leak watch: jeprof is missing, so the two dumps were not diffed".to_owned()];
        }
        self.sites
            .iter()
            .map(|site| {
                format!(
                    "{}: live {} → {} between the dumps (jeprof --base: {}) while it allocated {}: it kept {:+.1}% \
                     of what it allocated → {}",
                    site.site,
                    report::bytes(site.live[0]),
                    report::bytes(site.live[1]),
                    report::signed_bytes(site.growth),
                    report::bytes(site.allocated),
                    site.growth / site.allocated.max(1.0) * 100.0,
                    site.trend
                )
            })
            .collect()
    }
}

/// Runs the two-dump child on jemalloc and diffs its dumps with jeprof.
pub fn run(exe: &Path, options: &LeakWatch) -> Result<LeakWatchOutcome, LabError> {
    let dir = TempDir::new("profile-leak")?;
    let dumps = [dir.path().join("first.heap"), dir.path().join("second.heap")];
    let jemalloc = allocator::locate(AllocatorKind::Jemalloc);
    let mut launch = Launch::new(exe, &jemalloc);
    launch.env.push(("MALLOC_CONF".to_owned(), LEAK_WATCH_CONF.to_owned()));
    let (run, _) = launch.run(&LeakWatch { dumps: dumps.clone(), ..options.clone() })?;
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| LabError::file("read", path, e));
    let raw = [read(&dumps[0])?, read(&dumps[1])?];
    // (Not `convert_dump`: with prof_accum, stacks whose objects are all freed have no live
    // samples, which pprof_util cannot weigh.)
    let sample_period = sample_period(&String::from_utf8_lossy(&raw[1]))?;
    let base = format!("--base={}", dumps[0].display());
    let base = OsStr::new(&base);
    let first = symbolize_with(exe, &dumps[0], &[])?;
    let second = symbolize_with(exe, &dumps[1], &[])?;
    let growth = symbolize_with(exe, &dumps[1], &[base])?;
    let allocated = symbolize_with(exe, &dumps[1], &[OsStr::new("--alloc_space"), base])?;
    let sites = if matches!(growth, Symbolized::JeprofMissing { .. }) {
        Vec::new()
    } else {
        LEAK_SITES
            .iter()
            .map(|&site| {
                let (grew, spent) = (site_bytes(&growth, site), site_bytes(&allocated, site));
                SiteTrend {
                    site,
                    live: [site_bytes(&first, site), site_bytes(&second, site)],
                    growth: grew,
                    allocated: spent,
                    trend: trend(grew, spent, sample_period),
                }
            })
            .collect()
    };
    Ok(LeakWatchOutcome { run, sample_period, sites, dumps: raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_that_keeps_what_it_allocates_grows_and_one_that_frees_it_is_stable() {
        let period = 512.0 * 1024.0;
        assert_eq!(trend(32e6, 33e6, period), Trend::Growing);
        assert_eq!(trend(1e6, 256e6, period), Trend::Stable);
        assert_eq!(trend(-1.5e6, 256e6, period), Trend::Stable);
        assert_eq!(trend(1e6, 1e6, period), Trend::Stable, "under four samples' worth is noise");
        assert_eq!(trend(60e6, 256e6, period), Trend::Unclear);
    }
}
