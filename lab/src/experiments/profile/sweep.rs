//! The sampling rate's price: the profiled workload at several `lg_prof_sample` settings,
//! each against profiling off in the same round.
//!
//! Every round runs the workload once without profiling (`prof:false`) and once per
//! setting, each in a fresh child, the order rotated by one from round to round (so no
//! setting always runs first, after the previous round's biggest process exited); with
//! three or more rounds the table gives medians and ranges, so a single noisy run (the
//! machine is shared) cannot make the verdict. Per setting it reports the live samples in the dump (counted, not
//! guessed), each site's error against its true live bytes, and the throughput of the
//! three sites (allocations per CPU second of the child, so that time the machine gave
//! to other processes does not count) with profiling on against the same round's run
//! with it off.

use std::ffi::OsStr;
use std::path::Path;

use crate::LabError;
use crate::allocator::{self, AllocatorKind};
use crate::child::Launch;
use crate::process::TempDir;
use crate::report::{self, Table};
use crate::scale::{AtScale, Scale};
use crate::trace::Spread;

use super::{ProfiledRun, ProfiledWorkload, SITES, Symbolized, convert_dump, error_percent, profiling_conf};

/// The sampling rates the sweep compares: one sample per 4 KiB, 64 KiB, 512 KiB
/// (jemalloc's default) and 4 MiB allocated on average.
pub const SWEEP_LG_PROF_SAMPLE: [u32; 4] = [12, 16, 19, 22];

/// What the sweep runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    /// The `lg_prof_sample` settings.
    pub lg_prof_samples: Vec<u32>,
    /// Alternating rounds (each: profiling off and every setting, in rotated order).
    pub rounds: usize,
    /// The workload each child runs.
    pub workload: ProfiledWorkload,
}

impl AtScale for SweepOptions {
    fn at(scale: Scale) -> Self {
        SweepOptions {
            lg_prof_samples: SWEEP_LG_PROF_SAMPLE.to_vec(),
            rounds: match scale {
                Scale::Full => 5,
                Scale::Quick => 3,
            },
            workload: ProfiledWorkload::at(scale),
        }
    }
}

/// One profiled run of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRun {
    /// What the child did, with each site's true live bytes.
    pub run: ProfiledRun,
    /// Live samples in its dump.
    pub samples: u64,
    /// Distinct stacks in its dump.
    pub stacks: usize,
    /// jeprof's cumulative estimate per site, in [`SITES`] order (`None`: absent, or
    /// jeprof missing).
    pub estimates: [Option<f64>; 3],
}

impl SamplingRun {
    /// The profile's error for site `i` in percent of its true live bytes (`None` for a
    /// site with nothing live or no estimate).
    pub fn error_percent(&self, i: usize) -> Option<f64> {
        let truth = self.run.true_live_bytes[i] as f64;
        (truth > 0.0).then_some(())?;
        Some(error_percent(self.estimates[i]?, truth))
    }
}

/// One `lg_prof_sample` setting, one run per round.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    /// The setting.
    pub lg_prof_sample: u32,
    /// Its runs, in round order.
    pub runs: Vec<SamplingRun>,
}

/// The sweep's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The runs with profiling off, one per round.
    pub baseline: Vec<ProfiledRun>,
    /// One row per setting.
    pub rows: Vec<SweepRow>,
}

/// Median, minimum and maximum (zeros when empty).
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let Spread { median, min, max } = Spread::of(values);
    (median, min, max)
}

fn percent_spread(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    let (median, min, max) = spread(values);
    format!("{median:+.1}% [{min:+.1}, {max:+.1}]")
}

impl SweepRow {
    /// Site `i`'s errors over the rounds, in percent.
    pub fn errors(&self, i: usize) -> Vec<f64> {
        self.runs.iter().filter_map(|run| run.error_percent(i)).collect()
    }

    /// Live samples per dump over the rounds.
    pub fn samples(&self) -> Vec<f64> {
        self.runs.iter().map(|run| run.samples as f64).collect()
    }

    /// Throughput in allocations per second over the rounds.
    pub fn throughput(&self) -> Vec<f64> {
        self.runs.iter().map(|run| run.run.allocations_per_sec()).collect()
    }
}

impl Sweep {
    /// The row for `lg_prof_sample`.
    pub fn row(&self, lg_prof_sample: u32) -> Option<&SweepRow> {
        self.rows.iter().find(|row| row.lg_prof_sample == lg_prof_sample)
    }

    /// Throughput with profiling at `row`'s setting against the same round's run with it
    /// off, in percent (negative: slower), one value per round.
    pub fn throughput_change_percent(&self, row: &SweepRow) -> Vec<f64> {
        row.runs
            .iter()
            .zip(&self.baseline)
            .map(|(on, off)| (on.run.allocations_per_sec() / off.allocations_per_sec() - 1.0) * 100.0)
            .collect()
    }

    /// The sweep as a table: one row for profiling off, one per setting.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            format!(
                "lg_prof_sample sweep, {} alternating rounds (profiling off and each setting, order rotated per \
                 round; a fresh child each): medians [min, max]. error: (profile estimate − true live) / true live; \
                 throughput vs off: against the same round's run with profiling off (negative: slower)",
                self.baseline.len()
            ),
            &[
                "lg_prof_sample",
                "mean interval",
                "samples in dump",
                "retain_session_table error",
                "retain_index_strings error",
                "churn estimate",
                "M allocs per CPU s",
                "throughput vs off",
            ],
        );
        let (tput, tmin, tmax) =
            spread(&self.baseline.iter().map(ProfiledRun::allocations_per_sec).collect::<Vec<_>>());
        table.push(vec![
            "off".to_owned(),
            "-".to_owned(),
            "0".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            format!("{:.2} [{:.2}, {:.2}]", tput / 1e6, tmin / 1e6, tmax / 1e6),
            "-".to_owned(),
        ]);
        for row in &self.rows {
            let (samples, smin, smax) = spread(&row.samples());
            let (tput, tmin, tmax) = spread(&row.throughput());
            let churn: Vec<f64> = row.runs.iter().map(|run| run.estimates[2].unwrap_or(0.0)).collect();
            let (churn, _, churn_max) = spread(&churn);
            table.push(vec![
                row.lg_prof_sample.to_string(),
                report::bytes((1u64 << row.lg_prof_sample) as f64),
                format!("{samples:.0} [{smin:.0}, {smax:.0}]"),
                percent_spread(&row.errors(0)),
                percent_spread(&row.errors(1)),
                format!("{} (max {})", report::bytes(churn), report::bytes(churn_max)),
                format!("{:.2} [{:.2}, {:.2}]", tput / 1e6, tmin / 1e6, tmax / 1e6),
                percent_spread(&self.throughput_change_percent(row)),
            ]);
        }
        table
    }

    /// What the sweep shows, in numbers.
    pub fn findings(&self) -> Vec<String> {
        let mut findings = Vec::new();
        for row in &self.rows {
            let (samples, ..) = spread(&row.samples());
            let worst = (0..2).flat_map(|i| row.errors(i)).map(f64::abs).fold(0.0, f64::max);
            let (change, low, high) = spread(&self.throughput_change_percent(row));
            findings.push(format!(
                "lg_prof_sample:{} (one sample per {}): {samples:.0} live samples in the dump, worst site error \
                 {worst:.1}% over {} rounds, throughput {change:+.1}% [{low:+.1}, {high:+.1}] against profiling off",
                row.lg_prof_sample,
                report::bytes((1u64 << row.lg_prof_sample) as f64),
                row.runs.len()
            ));
        }
        findings
    }
}

/// Runs the sweep: `rounds` × (profiling off, then each setting), each in a fresh
/// jemalloc child; every dump is symbolized with jeprof for the per-site estimates.
pub fn run(exe: &Path, options: &SweepOptions) -> Result<Sweep, LabError> {
    let dir = TempDir::new("profile-sweep")?;
    let jemalloc = allocator::locate(AllocatorKind::Jemalloc);
    let mut baseline = Vec::new();
    let mut rows: Vec<SweepRow> = options
        .lg_prof_samples
        .iter()
        .map(|&lg_prof_sample| SweepRow { lg_prof_sample, runs: Vec::new() })
        .collect();
    let settings = rows.len() + 1;
    for round in 0..options.rounds {
        // Position 0 is profiling off, position i the i-th setting; round r starts at r.
        for position in (0..settings).map(|i| (i + round) % settings) {
            if position == 0 {
                let mut off = Launch::new(exe, &jemalloc);
                off.env.push(("MALLOC_CONF".to_owned(), "prof:false".to_owned()));
                let (run, _) = off.run(&ProfiledWorkload { dump_path: None, ..options.workload.clone() })?;
                baseline.push(run);
                continue;
            }
            let row = &mut rows[position - 1];
            let dump_path = dir.path().join(format!("sweep-{}-{round}.heap", row.lg_prof_sample));
            let mut on = Launch::new(exe, &jemalloc);
            on.env.push(("MALLOC_CONF".to_owned(), profiling_conf(row.lg_prof_sample)));
            let (run, _) =
                on.run(&ProfiledWorkload { dump_path: Some(dump_path.clone()), ..options.workload.clone() })?;
            let dump = std::fs::read(&dump_path).map_err(|e| LabError::file("read", &dump_path, e))?;
            let (summary, _) = convert_dump(&dump)?;
            let estimates = match super::symbolize_with(exe, &dump_path, &[] as &[&OsStr])? {
                Symbolized::Jeprof { rows: sites, .. } => {
                    SITES.map(|site| sites.iter().find(|r| r.function.contains(site)).map(|r| r.cum_bytes))
                }
                Symbolized::JeprofMissing { .. } => [None; 3],
            };
            row.runs.push(SamplingRun { run, samples: summary.samples, stacks: summary.stacks, estimates });
        }
    }
    Ok(Sweep { baseline, rows })
}
