//! `loadgen soak`: the long-run check of the request-memory design, with a verdict.
//!
//! Starts the server twice side by side, as the demo does (segregated and
//! `--break-lifetimes`), with a cache larger than the workload's distinct users
//! (`--cache-entries 20000`, `--users 5000` by default), so the cache fills early and stays
//! full without evictions. Both are driven at the same rate for `--duration`; then the load
//! stops and each server is watched until it is idle. The soak passes when:
//!
//! | check | how |
//! |---|---|
//! | no errors | every scheduled request got a 2xx (errors, unsent and skipped count against it) |
//! | segregated RSS is flat | the least-squares slope of RSS over the samples after the warm-up fraction (default 25%) is at most `--max-rss-slope` (default 0.25 MiB/min) |
//! | broken RSS climbs | its growth (last sample − first) is at least `--min-growth-ratio` (default 4) × the segregated growth, counting a segregated growth below 1 MiB as 1 MiB |
//! | no chunk leaked | once idle, arena chunks in use ≤ the load's connections (a server has at most one arena per request in flight, and an idle arena keeps at most one chunk); segregated: 0 pinned; broken: pinned == cache entries (one chunk per cached profile) |
//! | pinning is undone | after `POST /admin/cache/clear` on the broken server, pinned drops to 0 |
//! | clean exit | both servers exit 0 on SIGTERM |
//!
//! The slope bound: 0.25 MiB/min is 15 MiB an hour, about 9 bytes per request at the default
//! 500 requests per second, or one 64 KiB arena chunk kept every 15 seconds. A flat server's
//! fitted slope measured 0.018 MiB/min in magnitude over a 10-minute soak, 14 times below
//! the bound (see `docs/reliability.md`).
//!
//! It writes `report.json` (the checks, the figures and both runs with their per-second
//! series), `rss.png` (both RSS curves) and the servers' logs into the output directory.
//! The analysis ([`rss_trend`], [`evaluate`]) is separate from the driving, so that it is
//! tested on synthetic series. Costs: the run itself, plus a scrape every 250 ms while
//! waiting for the servers to go idle (at most [`SETTLE_TIMEOUT`] each).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use allockit_probe::Trend;
use hyper::Method;
use serde::Serialize;
use tokio::sync::watch;

use crate::error::Error;
use crate::http::{BodyUse, ClientConnection, Target};
use crate::plot;
use crate::progress;
use crate::report::{self, RunReport, SeriesRow, mebibytes};
use crate::run::{RunConfig, RunHooks, run_load};
use crate::scrape::{Scraper, ServerSample};
use crate::supervisor::{MODES, Mode, SHUTDOWN_GRACE, ServerProcess, ShutdownOutcome, locate_server_binary};
use crate::workload::WorkloadSpec;

/// How long a server may take, once the load stops (or after the cache clear), to reach the
/// idle state the checks expect.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Distinct users of the soak's workload unless `--users` says otherwise: few enough that
/// every one is cached within the first minute at 500 requests per second.
pub const DEFAULT_USERS: u64 = 5_000;

/// RSS samples the fit needs at least.
pub const MIN_FIT_SAMPLES: usize = 10;

/// A segregated growth below this is counted as this much when comparing growths: RSS moves
/// by a few hundred KiB for reasons that are not memory the server holds on to.
pub const GROWTH_FLOOR_BYTES: f64 = 1024.0 * 1024.0;

const MIB: f64 = 1024.0 * 1024.0;

/// The thresholds of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SoakLimits {
    /// Share of the run, from its start, left out of the RSS fit.
    pub warmup_fraction: f64,
    /// Largest segregated RSS slope accepted after the warm-up, bytes per minute.
    pub max_rss_slope: f64,
    /// Least ratio of broken growth to segregated growth.
    pub min_growth_ratio: f64,
}

impl Default for SoakLimits {
    fn default() -> Self {
        Self { warmup_fraction: 0.25, max_rss_slope: MIB / 4.0, min_growth_ratio: 4.0 }
    }
}

/// What the soak runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server binary; `None` looks next to the running executable.
    pub server_bin: Option<PathBuf>,
    /// `--workers` of both servers.
    pub workers: u32,
    /// `--cache-entries` of both servers.
    pub cache_entries: u64,
    /// Requests per second sent to each server.
    pub rps: f64,
    /// How long both are driven.
    pub duration: Duration,
    /// Keep-alive connections per server.
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The workload (the same seed for both).
    pub workload: WorkloadSpec,
    /// The limits the checks apply: slope, growth ratio, warm-up share.
    pub limits: SoakLimits,
    /// Where the report, chart and logs go.
    pub out_dir: PathBuf,
    /// Whether to draw live progress.
    pub progress: bool,
}

/// The straight line fitted to RSS after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RssTrend {
    /// Where the fit starts, seconds into the run.
    pub from_s: f64,
    /// RSS samples after the warm-up that the line was fitted to (one a second).
    pub samples: usize,
    /// Least-squares slope, bytes per minute.
    pub slope_bytes_per_min: f64,
    /// Mean RSS over the fitted samples, bytes.
    pub mean_bytes: f64,
}

/// Fits RSS over the rows at or after `from_s` seconds; `None` with fewer than
/// [`MIN_FIT_SAMPLES`] samples.
pub fn rss_trend(series: &[SeriesRow], from_s: f64) -> Option<RssTrend> {
    let points: Vec<(f64, f64)> = series
        .iter()
        .filter(|row| row.elapsed_s >= from_s)
        .filter_map(|row| row.server.rss_bytes.map(|rss| (row.elapsed_s, rss)))
        .collect();
    if points.len() < MIN_FIT_SAMPLES {
        return None;
    }
    let slope = Trend::fit(&points)?.slope;
    Some(RssTrend {
        from_s,
        samples: points.len(),
        slope_bytes_per_min: slope * 60.0,
        mean_bytes: points.iter().map(|(_, rss)| rss).sum::<f64>() / points.len() as f64,
    })
}

/// One server's figures in the soak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeOutcome {
    /// The mode's name in [`crate::supervisor::MODES`] (`segregated`, `broken-lifetimes`).
    pub mode: String,
    /// Server flags of the mode.
    pub server_args: Vec<String>,
    /// Responses per second over the run, whatever their status.
    pub achieved_rps: f64,
    /// Requests the timetable placed in the run (`--rps` × `--duration`).
    pub scheduled: u64,
    /// Errors, skipped and unsent requests over scheduled.
    pub error_rate: f64,
    /// RSS before the load, bytes.
    pub rss_start_bytes: Option<f64>,
    /// RSS at the end of the load, bytes.
    pub rss_end_bytes: Option<f64>,
    /// The RSS fit after the warm-up.
    pub trend: Option<RssTrend>,
    /// The last sample taken while waiting for the idle state.
    pub idle: ServerSample,
    /// Seconds it took to reach the idle state (or the timeout).
    pub idle_after_s: f64,
    /// The broken server only: the last sample after `POST /admin/cache/clear`.
    pub after_clear: Option<ServerSample>,
    /// How the server exited.
    pub shutdown: ShutdownOutcome,
}

impl ModeOutcome {
    /// RSS growth from before the load to its end, bytes.
    pub fn growth_bytes(&self) -> Option<f64> {
        Some(self.rss_end_bytes? - self.rss_start_bytes?)
    }
}

/// One check of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The check, as the table and the exit-status-3 message name it.
    pub name: String,
    /// Whether the figures met the limit.
    pub passed: bool,
    /// The figures it was decided on.
    pub detail: String,
}

fn check(name: impl Into<String>, passed: bool, detail: String) -> Check {
    Check { name: name.into(), passed, detail }
}

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "absent".to_owned(), |value| format!("{value:.0}"))
}

/// Whether an idle segregated server holds what it should: at most one chunk per arena
/// (`connections` bounds the arenas) and no pinned chunk.
pub fn segregated_is_idle(sample: &ServerSample, connections: usize) -> bool {
    sample.arena_chunks_in_use.is_some_and(|in_use| in_use <= connections as f64)
        && sample.arena_chunks_pinned == Some(0.0)
}

/// Whether an idle broken server holds what it should: at most one chunk per arena, and
/// exactly one pinned chunk per cache entry.
pub fn broken_is_idle(sample: &ServerSample, connections: usize) -> bool {
    sample.arena_chunks_in_use.is_some_and(|in_use| in_use <= connections as f64)
        && sample.arena_chunks_pinned.is_some()
        && sample.arena_chunks_pinned == sample.cache_entries
}

/// The verdict on two outcomes, segregated first and broken second.
pub fn evaluate(
    limits: &SoakLimits,
    connections: usize,
    segregated: &ModeOutcome,
    broken: &ModeOutcome,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for outcome in [segregated, broken] {
        checks.push(check(
            format!("{}: every request succeeded", outcome.mode),
            outcome.error_rate == 0.0 && outcome.scheduled > 0,
            format!("{} scheduled, error rate {:.4}%", outcome.scheduled, 100.0 * outcome.error_rate),
        ));
    }
    let limit = limits.max_rss_slope / MIB;
    checks.push(match &segregated.trend {
        Some(trend) => check(
            "segregated: RSS flat after the warm-up",
            trend.slope_bytes_per_min <= limits.max_rss_slope,
            format!(
                "slope {:+.3} MiB/min over {} samples from {:.0} s (mean {:.1} MiB), limit {limit:.3} MiB/min",
                trend.slope_bytes_per_min / MIB,
                trend.samples,
                trend.from_s,
                trend.mean_bytes / MIB
            ),
        ),
        None => check(
            "segregated: RSS flat after the warm-up",
            false,
            format!("fewer than {MIN_FIT_SAMPLES} RSS samples after the warm-up: run longer"),
        ),
    });
    checks.push(match (segregated.growth_bytes(), broken.growth_bytes()) {
        (Some(flat), Some(climb)) => {
            let needed = limits.min_growth_ratio * flat.max(GROWTH_FLOOR_BYTES);
            check(
                "broken-lifetimes: RSS climbs",
                climb >= needed,
                format!(
                    "grew {:.1} MiB vs segregated {:.1} MiB; needs {:.1} MiB ({}x, segregated floored at {:.0} MiB)",
                    climb / MIB,
                    flat / MIB,
                    needed / MIB,
                    limits.min_growth_ratio,
                    GROWTH_FLOOR_BYTES / MIB
                ),
            )
        }
        _ => check("broken-lifetimes: RSS climbs", false, "RSS was not scraped from both servers".to_owned()),
    });
    let idle_detail = |outcome: &ModeOutcome| {
        format!(
            "after {:.1} s: {} chunks in use (at most {connections}), {} pinned, {} cache entries",
            outcome.idle_after_s,
            figure(outcome.idle.arena_chunks_in_use),
            figure(outcome.idle.arena_chunks_pinned),
            figure(outcome.idle.cache_entries)
        )
    };
    checks.push(check(
        "segregated: idle, no chunk leaked or pinned",
        segregated_is_idle(&segregated.idle, connections),
        idle_detail(segregated),
    ));
    checks.push(check(
        "broken-lifetimes: idle, pinned chunks == cache entries",
        broken_is_idle(&broken.idle, connections),
        idle_detail(broken),
    ));
    checks.push(match &broken.after_clear {
        Some(sample) => check(
            "broken-lifetimes: cache clear gives every pinned chunk back",
            sample.arena_chunks_pinned == Some(0.0),
            format!(
                "{} pinned, {} cache entries after POST /admin/cache/clear",
                figure(sample.arena_chunks_pinned),
                figure(sample.cache_entries)
            ),
        ),
        None => check(
            "broken-lifetimes: cache clear gives every pinned chunk back",
            false,
            "the admin listener did not answer POST /admin/cache/clear with 200".to_owned(),
        ),
    });
    for outcome in [segregated, broken] {
        checks.push(check(
            format!("{}: exit status 0 on SIGTERM", outcome.mode),
            outcome.shutdown.clean(),
            format!(
                "exit code {:?}, killed after grace: {}",
                outcome.shutdown.exit_code, outcome.shutdown.forced
            ),
        ));
    }
    checks
}

/// The soak's result, written to `report.json`: both servers' figures and the checks
/// decided on them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakReport {
    /// The server binary run.
    pub server_binary: String,
    /// `--workers` of both servers.
    pub workers: u32,
    /// `--cache-entries` of both servers.
    pub cache_entries: u64,
    /// Requests per second per server.
    pub rps: f64,
    /// Seconds each server was driven.
    pub duration_s: f64,
    /// Keep-alive connections per server (also the most chunks an idle server may hold).
    pub connections: usize,
    /// The batches both servers received: the same seed, so the same bytes.
    pub workload: WorkloadSpec,
    /// The limits the checks applied (from the command line).
    pub limits: SoakLimits,
    /// Whether the run was stopped early (which fails the soak).
    pub interrupted: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Segregated, then broken.
    pub modes: Vec<ModeOutcome>,
    /// The full runs, in the same order.
    pub runs: Vec<RunReport>,
}

impl SoakReport {
    /// The failed checks as one line each (empty when the soak passed).
    pub fn failures(&self) -> Vec<String> {
        let mut failures: Vec<String> = self
            .checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| format!("soak check failed: {}: {}", check.name, check.detail))
            .collect();
        if self.interrupted {
            failures.push("soak interrupted before its duration".to_owned());
        }
        failures
    }

    /// The verdict and the figures, as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "soak: {:.0} s at {} rps per server, {} connections, {} users, cache {} entries, {} workers",
            self.duration_s,
            self.rps,
            self.connections,
            self.workload.users,
            self.cache_entries,
            self.workers
        );
        for outcome in &self.modes {
            let _ = writeln!(
                out,
                "  {:<17} {:>8.1} rps  RSS {} -> {}  idle: {} in use, {} pinned, {} entries",
                outcome.mode,
                outcome.achieved_rps,
                mebibytes(outcome.rss_start_bytes),
                mebibytes(outcome.rss_end_bytes),
                figure(outcome.idle.arena_chunks_in_use),
                figure(outcome.idle.arena_chunks_pinned),
                figure(outcome.idle.cache_entries)
            );
        }
        for check in &self.checks {
            let verdict = if check.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "{verdict}  {}: {}", check.name, check.detail);
        }
        out
    }
}

/// Runs the soak and writes its files; see the module documentation.
pub async fn run_soak(config: &SoakConfig, stop: Option<watch::Receiver<bool>>) -> Result<SoakReport, Error> {
    validate(config)?;
    let binary = locate_server_binary(config.server_bin.as_deref())?;
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|cause| Error::File { path: config.out_dir.clone(), cause })?;
    let mut servers = Vec::with_capacity(MODES.len());
    for mode in &MODES {
        let log = config.out_dir.join(format!("server-{}.log", mode.name));
        servers.push(ServerProcess::spawn(&binary, mode.name, &server_args(config, mode), &log).await?);
    }
    let run_configs =
        servers.iter().map(|server| run_config(config, server)).collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = MODES.iter().map(|mode| mode.name).collect();
    let (_group, bars) = progress::bars(config.duration, &names, config.progress);
    let hooks = |bar| RunHooks { progress: Some(bar), stop: stop.clone(), ..RunHooks::default() };
    let mut bars = bars.into_iter();
    let (first, second) = tokio::join!(
        run_load(&run_configs[0], hooks(bars.next().unwrap_or_else(indicatif::ProgressBar::hidden))),
        run_load(&run_configs[1], hooks(bars.next().unwrap_or_else(indicatif::ProgressBar::hidden))),
    );
    let runs = [first?, second?];
    let connections = config.connections;
    let (segregated_idle, segregated_after) =
        settle(&servers[0], |sample| segregated_is_idle(sample, connections)).await?;
    let (broken_idle, broken_after) =
        settle(&servers[1], |sample| broken_is_idle(sample, connections)).await?;
    let after_clear = if clear_cache(servers[1].addresses.admin).await? {
        Some(settle(&servers[1], |sample| sample.arena_chunks_pinned == Some(0.0)).await?.0)
    } else {
        None
    };
    let mut shutdowns = Vec::with_capacity(servers.len());
    for server in servers {
        shutdowns.push(server.shutdown(SHUTDOWN_GRACE).await?);
    }
    let from_s = config.limits.warmup_fraction * config.duration.as_secs_f64();
    let outcome = |mode: &Mode, run: &RunReport, idle, idle_after_s, after_clear, shutdown| ModeOutcome {
        mode: mode.name.to_owned(),
        server_args: server_args(config, mode),
        achieved_rps: run.achieved_rps,
        scheduled: run.requests.scheduled,
        error_rate: run.error_rate(),
        rss_start_bytes: run.server_at_start().and_then(|server| server.rss_bytes),
        rss_end_bytes: run.server_at_end().and_then(|server| server.rss_bytes),
        trend: rss_trend(&run.series, from_s),
        idle,
        idle_after_s,
        after_clear,
        shutdown,
    };
    let segregated = outcome(&MODES[0], &runs[0], segregated_idle, segregated_after, None, shutdowns[0]);
    let broken = outcome(&MODES[1], &runs[1], broken_idle, broken_after, after_clear, shutdowns[1]);
    let soak = SoakReport {
        server_binary: binary.display().to_string(),
        workers: config.workers,
        cache_entries: config.cache_entries,
        rps: config.rps,
        duration_s: config.duration.as_secs_f64(),
        connections,
        workload: config.workload.clone(),
        limits: config.limits,
        interrupted: runs.iter().any(|run| run.interrupted),
        checks: evaluate(&config.limits, connections, &segregated, &broken),
        modes: vec![segregated, broken],
        runs: runs.into(),
    };
    report::write_json(&config.out_dir.join("report.json"), &soak)?;
    plot::plot_rss_comparison(&soak.runs.iter().collect::<Vec<_>>(), &config.out_dir.join("rss.png"))?;
    Ok(soak)
}

fn validate(config: &SoakConfig) -> Result<(), Error> {
    let invalid = |flag, message: String| Err(Error::InvalidArgument { flag, message });
    if !(0.0..1.0).contains(&config.limits.warmup_fraction) {
        return invalid("--warmup-fraction", "the warm-up must leave part of the run to fit".to_owned());
    }
    if !(config.limits.max_rss_slope.is_finite() && config.limits.max_rss_slope >= 0.0) {
        return invalid("--max-rss-slope", "the slope limit must be a non-negative number".to_owned());
    }
    if !(config.limits.min_growth_ratio.is_finite() && config.limits.min_growth_ratio > 1.0) {
        return invalid("--min-growth-ratio", "the ratio must be a number above 1".to_owned());
    }
    if config.workload.users > config.cache_entries {
        return invalid(
            "--users",
            format!(
                "{} users do not fit in {} cache entries: evictions would unpin chunks and blur the checks",
                config.workload.users, config.cache_entries
            ),
        );
    }
    Ok(())
}

fn server_args(config: &SoakConfig, mode: &Mode) -> Vec<String> {
    let mut args: Vec<String> = mode.args.iter().map(|arg| (*arg).to_owned()).collect();
    args.extend(["--workers".to_owned(), config.workers.to_string()]);
    args.extend(["--cache-entries".to_owned(), config.cache_entries.to_string()]);
    args
}

fn run_config(config: &SoakConfig, server: &ServerProcess) -> Result<RunConfig, Error> {
    server.events_run(&config.workload, config.rps, config.duration, config.connections, config.timeout)
}

/// Scrapes `server` every 250 ms until `settled` holds or [`SETTLE_TIMEOUT`] passes; returns
/// the last sample and the seconds waited.
async fn settle(
    server: &ServerProcess,
    settled: impl Fn(&ServerSample) -> bool,
) -> Result<(ServerSample, f64), Error> {
    let mut scraper = Scraper::new(Target::parse("--server-bin", &server.base_url())?.with_path("/metrics"));
    let start = tokio::time::Instant::now();
    loop {
        let sample = scraper.scrape().await;
        if settled(&sample) || start.elapsed() >= SETTLE_TIMEOUT {
            return Ok((sample, start.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `POST /admin/cache/clear` on the admin listener; true when it answered 200.
async fn clear_cache(admin: SocketAddr) -> Result<bool, Error> {
    let target = Target::parse("--server-bin", &format!("http://{admin}/admin/cache/clear"))?;
    let timeout = Duration::from_secs(5);
    let mut connection = ClientConnection::open(&target, admin, timeout).await?;
    let request = target.request(Method::POST)?;
    match tokio::time::timeout(timeout, connection.exchange(request, BodyUse::Keep(64 * 1024))).await {
        Ok(Ok((status, _))) => Ok(status == 200),
        Ok(Err(_)) | Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Phase;

    fn row(elapsed_s: f64, rss: f64) -> SeriesRow {
        SeriesRow {
            elapsed_s,
            interval_s: 1.0,
            phase: Phase::Measure,
            ..SeriesRow::start(ServerSample { rss_bytes: Some(rss), ..ServerSample::default() })
        }
    }

    #[test]
    fn the_trend_ignores_the_warm_up_and_reports_bytes_per_minute() {
        // Climbs 10 MiB/s for 20 s, then holds with ±1 MiB of noise.
        let series: Vec<SeriesRow> = (0..120)
            .map(|t| {
                let rss = if t < 20 {
                    t as f64 * 10.0 * MIB
                } else {
                    200.0 * MIB + if t % 2 == 0 { MIB } else { -MIB }
                };
                row(t as f64, rss)
            })
            .collect();
        let trend = rss_trend(&series, 30.0).unwrap();
        assert_eq!(trend.samples, 90);
        assert!(trend.slope_bytes_per_min.abs() < 0.1 * MIB, "{trend:?}");
        assert!(rss_trend(&series, 0.0).unwrap().slope_bytes_per_min > 10.0 * MIB);
        assert_eq!(rss_trend(&series, 115.0), None, "five samples are too few to fit");
    }

    fn outcome(mode: &str, start: f64, end: f64, idle: ServerSample) -> ModeOutcome {
        ModeOutcome {
            mode: mode.to_owned(),
            server_args: Vec::new(),
            achieved_rps: 500.0,
            scheduled: 30_000,
            error_rate: 0.0,
            rss_start_bytes: Some(start),
            rss_end_bytes: Some(end),
            trend: Some(RssTrend {
                from_s: 15.0,
                samples: 45,
                slope_bytes_per_min: 0.1 * MIB,
                mean_bytes: end,
            }),
            idle,
            idle_after_s: 0.3,
            after_clear: None,
            shutdown: ShutdownOutcome { exit_code: Some(0), forced: false },
        }
    }

    fn idle(in_use: f64, pinned: f64, entries: f64) -> ServerSample {
        ServerSample {
            arena_chunks_in_use: Some(in_use),
            arena_chunks_pinned: Some(pinned),
            cache_entries: Some(entries),
            ..ServerSample::default()
        }
    }

    fn passing() -> (ModeOutcome, ModeOutcome) {
        let segregated = outcome("segregated", 20.0 * MIB, 26.0 * MIB, idle(8.0, 0.0, 5000.0));
        let mut broken = outcome("broken-lifetimes", 20.0 * MIB, 100.0 * MIB, idle(3.0, 5000.0, 5000.0));
        broken.after_clear = Some(idle(3.0, 0.0, 0.0));
        (segregated, broken)
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks.iter().filter(|check| !check.passed).map(|check| check.name.as_str()).collect()
    }

    #[test]
    fn a_flat_segregated_server_and_a_climbing_broken_one_pass_every_check() {
        let (segregated, broken) = passing();
        let checks = evaluate(&SoakLimits::default(), 8, &segregated, &broken);
        assert_eq!(checks.len(), 9);
        assert_eq!(failed(&checks), Vec::<&str>::new());
    }

    #[test]
    fn each_broken_expectation_fails_its_own_check() {
        let limits = SoakLimits::default();
        let (segregated, broken) = passing();

        let mut climbing = segregated.clone();
        climbing.trend = Some(RssTrend { slope_bytes_per_min: 0.3 * MIB, ..segregated.trend.unwrap() });
        assert_eq!(
            failed(&evaluate(&limits, 8, &climbing, &broken)),
            ["segregated: RSS flat after the warm-up"]
        );

        let mut leaking = segregated.clone();
        leaking.idle = idle(9.0, 0.0, 5000.0);
        assert_eq!(
            failed(&evaluate(&limits, 8, &leaking, &broken)),
            ["segregated: idle, no chunk leaked or pinned"]
        );

        let mut flat_broken = broken.clone();
        flat_broken.rss_end_bytes = Some(40.0 * MIB);
        assert_eq!(
            failed(&evaluate(&limits, 8, &segregated, &flat_broken)),
            ["broken-lifetimes: RSS climbs"]
        );

        let mut unpinned = broken.clone();
        unpinned.idle = idle(3.0, 4999.0, 5000.0);
        assert_eq!(
            failed(&evaluate(&limits, 8, &segregated, &unpinned)),
            ["broken-lifetimes: idle, pinned chunks == cache entries"]
        );

        let mut still_pinned = broken.clone();
        still_pinned.after_clear = Some(idle(3.0, 12.0, 0.0));
        assert_eq!(
            failed(&evaluate(&limits, 8, &segregated, &still_pinned)),
            ["broken-lifetimes: cache clear gives every pinned chunk back"]
        );

        let mut erring = segregated.clone();
        erring.error_rate = 1.0 / 30_000.0;
        erring.shutdown = ShutdownOutcome { exit_code: None, forced: true };
        assert_eq!(
            failed(&evaluate(&limits, 8, &erring, &broken)),
            ["segregated: every request succeeded", "segregated: exit status 0 on SIGTERM"]
        );
    }

    #[test]
    fn a_tiny_segregated_growth_is_floored_so_the_ratio_means_something() {
        let (mut segregated, mut broken) = passing();
        segregated.rss_end_bytes = segregated.rss_start_bytes.map(|start| start - 5.0 * MIB);
        broken.rss_end_bytes = broken.rss_start_bytes.map(|start| start + 3.0 * MIB);
        let checks = evaluate(&SoakLimits::default(), 8, &segregated, &broken);
        assert_eq!(failed(&checks), ["broken-lifetimes: RSS climbs"]);
    }

    #[test]
    fn users_that_do_not_fit_the_cache_are_refused_naming_the_flag() {
        let config = SoakConfig {
            server_bin: None,
            workers: 2,
            cache_entries: 100,
            rps: 10.0,
            duration: Duration::from_secs(10),
            connections: 2,
            timeout: Duration::from_secs(1),
            workload: WorkloadSpec { users: 101, ..WorkloadSpec::default() },
            limits: SoakLimits::default(),
            out_dir: PathBuf::from("unused"),
            progress: false,
        };
        let error = validate(&config).unwrap_err().to_string();
        assert!(error.starts_with("--users:"), "{error}");
        let fraction =
            SoakConfig { limits: SoakLimits { warmup_fraction: 1.0, ..SoakLimits::default() }, ..config };
        assert!(validate(&fraction).unwrap_err().to_string().starts_with("--warmup-fraction:"));
    }
}
