//! `loadgen demo`: the pinning pitfall, measured. Starts the server twice (the default
//! segregated mode and `--break-lifetimes`) on ephemeral loopback ports, drives both at the
//! same rate with the same workload at the same time, and compares them: throughput, p99,
//! RSS start → end, pinned chunks, cache bytes. Writes `report.md`, `report.json` and one
//! chart with both RSS curves (`rss.png`) into the output directory, plus each server's
//! stderr (`server-<mode>.log`).
//!
//! It builds nothing: it runs the `allockit-server` binary found next to its own executable
//! (or given with `--server-bin`) and says what to build when there is none; starting,
//! watching and stopping the servers is [`crate::supervisor`]'s.
//!
//! The pieces are public so that an end-to-end test can drive them one by one.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::error::Error;
use crate::plot;
use crate::progress;
use crate::report::{self, RunReport, count, mebibytes};
use crate::run::{RunConfig, RunHooks, run_load};
use crate::supervisor::{MODES, Mode, SHUTDOWN_GRACE, ServerProcess, ShutdownOutcome, locate_server_binary};
use crate::workload::WorkloadSpec;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The server binary; `None` looks next to the running executable.
    pub server_bin: Option<PathBuf>,
    /// Extra flags for both servers (e.g. `--workers 1`).
    pub server_args: Vec<String>,
    /// Requests per second sent to each server.
    pub rps: f64,
    /// How long each is driven.
    pub duration: Duration,
    /// Keep-alive connections per server.
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The workload (the same seed for both).
    pub workload: WorkloadSpec,
    /// Where the report, chart and logs go.
    pub out_dir: PathBuf,
    /// Whether to draw live progress.
    pub progress: bool,
}

/// One mode's figures in the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeSummary {
    /// The mode's name in [`crate::supervisor::MODES`] (`segregated`, `broken-lifetimes`).
    pub mode: String,
    /// Server flags of the mode.
    pub server_args: Vec<String>,
    /// Responses per second over the run, whatever their status.
    pub achieved_rps: f64,
    /// Corrected p99, ms.
    pub p99_ms: Option<f64>,
    /// Service-time p99, ms.
    pub service_p99_ms: Option<f64>,
    /// Errors, skipped and unsent requests over scheduled.
    pub error_rate: f64,
    /// RSS before the load, bytes.
    pub rss_start_bytes: Option<f64>,
    /// RSS at the end, bytes.
    pub rss_end_bytes: Option<f64>,
    /// Pinned arena chunks at the end.
    pub pinned_chunks_end: Option<f64>,
    /// Arena committed bytes at the end.
    pub arena_committed_end_bytes: Option<f64>,
    /// Cache bytes at the end.
    pub cache_bytes_end: Option<f64>,
    /// Cache entries at the end.
    pub cache_entries_end: Option<f64>,
    /// jemalloc allocated bytes at the end.
    pub jemalloc_allocated_end_bytes: Option<f64>,
    /// How the server exited.
    pub shutdown: ShutdownOutcome,
}

impl ModeSummary {
    /// Summarises one mode's run.
    pub fn new(mode: &Mode, run: &RunReport, shutdown: ShutdownOutcome) -> Self {
        let start = run.server_at_start();
        let end = run.server_at_end();
        Self {
            mode: mode.name.to_owned(),
            server_args: mode.args.iter().map(|arg| (*arg).to_owned()).collect(),
            achieved_rps: run.achieved_rps,
            p99_ms: run.latency.map(|latency| latency.p99_ms),
            service_p99_ms: run.service_time.map(|service| service.p99_ms),
            error_rate: run.error_rate(),
            rss_start_bytes: start.and_then(|server| server.rss_bytes),
            rss_end_bytes: end.and_then(|server| server.rss_bytes),
            pinned_chunks_end: end.and_then(|server| server.arena_chunks_pinned),
            arena_committed_end_bytes: end.and_then(|server| server.arena_committed_bytes),
            cache_bytes_end: end.and_then(|server| server.cache_bytes),
            cache_entries_end: end.and_then(|server| server.cache_entries),
            jemalloc_allocated_end_bytes: end.and_then(|server| server.jemalloc_allocated_bytes),
            shutdown,
        }
    }
}

/// The demo's result: the comparison and both full runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoReport {
    /// The server binary run.
    pub server_binary: String,
    /// Requests per second per server.
    pub rps: f64,
    /// Seconds each server was driven.
    pub duration_s: f64,
    /// Keep-alive connections per server (the most requests in flight at once).
    pub connections: usize,
    /// The batches both servers received: the same seed, so the same bytes.
    pub workload: WorkloadSpec,
    /// One summary per mode, in [`MODES`] order.
    pub modes: Vec<ModeSummary>,
    /// The full run reports (with their per-second series), in the same order.
    pub runs: Vec<RunReport>,
}

impl DemoReport {
    /// The side-by-side table, as aligned text.
    pub fn render_table(&self) -> String {
        let rows = self.table_rows();
        let width = rows.iter().map(|row| row[0].chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for row in rows {
            let _ = write!(out, "{:<width$}", row[0]);
            for cell in &row[1..] {
                let _ = write!(out, "  {cell:>24}");
            }
            out.push('\n');
        }
        out
    }

    /// The side-by-side table, as Markdown.
    pub fn render_markdown_table(&self) -> String {
        let mut out = String::new();
        for (number, row) in self.table_rows().iter().enumerate() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
            if number == 0 {
                let _ = writeln!(out, "|---|{}", "---:|".repeat(row.len() - 1));
            }
        }
        out
    }

    /// One row per figure, one column per mode, with a header row of mode names.
    fn table_rows(&self) -> Vec<Vec<String>> {
        let figures: [Figure; 10] = [
            ("throughput", |mode| format!("{:.1} rps", mode.achieved_rps)),
            ("p99 (corrected)", |mode| milliseconds(mode.p99_ms)),
            ("p99 (service time)", |mode| milliseconds(mode.service_p99_ms)),
            ("errors", |mode| format!("{:.2}%", 100.0 * mode.error_rate)),
            ("RSS start → end", |mode| {
                format!("{} → {}", mebibytes(mode.rss_start_bytes), mebibytes(mode.rss_end_bytes))
            }),
            ("pinned chunks (end)", |mode| count(mode.pinned_chunks_end)),
            ("arena committed (end)", |mode| mebibytes(mode.arena_committed_end_bytes)),
            ("cache bytes (end)", |mode| mebibytes(mode.cache_bytes_end)),
            ("cache entries (end)", |mode| count(mode.cache_entries_end)),
            ("server exit", |mode| match (mode.shutdown.forced, mode.shutdown.exit_code) {
                (true, _) => "killed after grace".to_owned(),
                (false, Some(code)) => format!("status {code}"),
                (false, None) => "killed by a signal".to_owned(),
            }),
        ];
        let header = std::iter::once(String::new()).chain(self.modes.iter().map(|mode| mode.mode.clone()));
        let mut rows = vec![header.collect()];
        for (name, figure) in figures {
            rows.push(std::iter::once(name.to_owned()).chain(self.modes.iter().map(figure)).collect());
        }
        rows
    }

    /// What should make the demo fail: an unclean server exit, or an error rate above
    /// `max_error_rate`.
    pub fn problems(&self, max_error_rate: f64) -> Vec<String> {
        let mut problems = Vec::new();
        for mode in &self.modes {
            if !mode.shutdown.clean() {
                problems.push(format!("the {} server did not exit cleanly on SIGTERM", mode.mode));
            }
            if mode.error_rate > max_error_rate {
                problems.push(format!(
                    "the {} run failed {:.2}% of its requests (limit {:.2}%)",
                    mode.mode,
                    100.0 * mode.error_rate,
                    100.0 * max_error_rate
                ));
            }
        }
        problems
    }

    /// The Markdown report.
    pub fn render_markdown(&self, chart_file: &str) -> String {
        let mut out = String::from("# allockit demo: segregated lifetimes vs broken lifetimes\n\n");
        let _ = writeln!(
            out,
            "Both servers ran side by side for {:.0} s at {} requests per second each over {} connections, \
             with the same `POST /v1/events` workload ({} distinct users, {} events per batch, seed {}).\n",
            self.duration_s,
            self.rps,
            self.connections,
            self.workload.users,
            self.workload.events,
            self.workload.seed
        );
        out.push_str(&self.render_markdown_table());
        let _ = writeln!(
            out,
            "\nIn `broken-lifetimes` mode every new cache entry is an escaping allocation in the request \
             arena: it pins its whole chunk, so RSS climbs with the number of cached users. In `segregated` \
             mode the cache lives on its own jemalloc arena and request chunks are recycled.\n\n\
             ![server RSS over time, both modes]({chart_file})\n\nLatency is measured from each request's \
             intended send time (coordinated-omission corrected); the service time is measured from the \
             actual send.\n"
        );
        for run in &self.runs {
            let _ = writeln!(out, "## {}\n\n```text\n{}```\n", run.label, run.render_summary());
        }
        let _ = writeln!(out, "Server binary: `{}`.", self.server_binary);
        out
    }
}

/// A row of the comparison: its name and how to render one mode's cell.
type Figure = (&'static str, fn(&ModeSummary) -> String);

fn milliseconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms"))
}

/// Runs the whole demo and writes its files; see the module documentation.
pub async fn run_demo(config: &DemoConfig, stop: Option<watch::Receiver<bool>>) -> Result<DemoReport, Error> {
    let binary = locate_server_binary(config.server_bin.as_deref())?;
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|cause| Error::File { path: config.out_dir.clone(), cause })?;
    let mut servers = Vec::with_capacity(MODES.len());
    for mode in &MODES {
        let mut args: Vec<String> = mode.args.iter().map(|arg| (*arg).to_owned()).collect();
        args.extend(config.server_args.iter().cloned());
        let log = config.out_dir.join(format!("server-{}.log", mode.name));
        servers.push(ServerProcess::spawn(&binary, mode.name, &args, &log).await?);
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
    let mut shutdowns = Vec::with_capacity(servers.len());
    for server in servers {
        shutdowns.push(server.shutdown(SHUTDOWN_GRACE).await?);
    }
    let runs = vec![first?, second?];
    let modes =
        MODES.iter().zip(&runs).zip(shutdowns).map(|((mode, run), down)| ModeSummary::new(mode, run, down));
    let demo = DemoReport {
        server_binary: binary.display().to_string(),
        rps: config.rps,
        duration_s: config.duration.as_secs_f64(),
        connections: config.connections,
        workload: config.workload.clone(),
        modes: modes.collect(),
        runs,
    };
    let chart = "rss.png";
    report::write_json(&config.out_dir.join("report.json"), &demo)?;
    report::write_file(&config.out_dir.join("report.md"), demo.render_markdown(chart).as_bytes())?;
    plot::plot_rss_comparison(&demo.runs.iter().collect::<Vec<_>>(), &config.out_dir.join(chart))?;
    Ok(demo)
}

fn run_config(config: &DemoConfig, server: &ServerProcess) -> Result<RunConfig, Error> {
    server.events_run(&config.workload, config.rps, config.duration, config.connections, config.timeout)
}
