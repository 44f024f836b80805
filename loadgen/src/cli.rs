//! The command line: clap definitions and the wiring from flags to a run or to the demo.
//! The binary only builds the runtime (`--threads`) and maps [`Verdict`]s and errors to
//! exit codes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use hyper::Method;
use tokio::sync::watch;

use crate::demo::{self, DemoConfig};
use crate::error::Error;
use crate::exporter::{self, OwnMetrics};
use crate::hdrlog::HdrLog;
use crate::http::Target;
use crate::merge;
use crate::plot;
use crate::progress;
use crate::report::RunReport;
use crate::run::{Client, RequestBody, RunConfig, RunHooks, run_load};
use crate::soak::{self, SoakConfig, SoakLimits};
use crate::units::{
    IntRange, format_wall_clock, parse_duration, parse_fraction, parse_rate, parse_wall_clock,
};
use crate::workload::WorkloadSpec;

const EXIT_CODES: &str = "\
Exit status:
  0  the run finished within --max-error-rate (1% unless given)
  1  the run could not start or finish (unreachable target, unwritable output, ...);
     merge: a file that is missing, not a run report, or not of the same settings
  2  bad command line (a flag clap refuses, a malformed URL, a zero --duration, ...)
  3  --max-error-rate exceeded (demo: also a server that did not exit cleanly; soak: a check failed)";

/// `loadgen`: open-loop HTTP load with coordinated-omission-corrected latency.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Open-loop HTTP load generator: a fixed timetable at --rps, latency from the intended send time \
             (coordinated-omission corrected), server memory scraped every second",
    after_help = EXIT_CODES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    // A flag given twice takes its last value, so that a wrapper's default can be
    // overridden (`scripts/demo` passes `--out reports/demo` before the user's arguments).
    args_override_self = true
)]
pub struct Cli {
    /// A subcommand instead of a plain run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The plain run's flags.
    #[command(flatten)]
    pub run: RunArgs,
}

impl Cli {
    /// Worker threads for the runtime: `--threads`, else one per available core.
    pub fn threads(&self) -> usize {
        let requested = match &self.command {
            Some(Command::Demo(demo)) => demo.threads,
            Some(Command::Soak(soak)) => soak.threads,
            Some(Command::Merge(_)) => Some(1),
            None => self.run.threads,
        };
        requested
            .map_or_else(
                || std::thread::available_parallelism().map_or(1, usize::from),
                |threads| threads as usize,
            )
            .max(1)
    }
}

/// The commands besides a plain run, each starting the allockit servers itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start allockit-server twice (segregated and --break-lifetimes), drive both at the same rate, and
    /// write a side-by-side report with one RSS chart
    Demo(DemoArgs),
    /// Drive both servers side by side for a long time and check memory: segregated RSS flat after the
    /// warm-up, broken RSS climbing, no chunk leaked once idle, pinned chunks given back on cache clear,
    /// no errors, clean exits (exit status 3 names each failed check)
    Soak(SoakArgs),
    /// Combine the --json reports of several instances (e.g. one per machine, started together
    /// with --start-at) into one: histograms added, counts summed, rates over the span of their
    /// measured windows; prints the summary and writes the JSON of a single run
    Merge(MergeArgs),
}

/// Flags of `loadgen merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The instances' --json reports (same loadgen version, method, URL, workload, warm-up,
    /// duration and timeout)
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Directory for the merged report.json and series.csv (created if missing) [default:
    /// print the summary only]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Exit with status 3 when the merged errors, skipped and unsent requests exceed this
    /// share of the scheduled ones, as a single run does
    #[arg(long, value_parser = parse_fraction, default_value = "1%", value_name = "FRACTION")]
    pub max_error_rate: f64,
}

/// Flags of a plain run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Server URL, e.g. http://127.0.0.1:8080 (its path, if any, is the request path)
    #[arg(value_name = "URL", required = true)]
    pub target: Option<String>,
    /// Requests per second on a fixed timetable; fractions allowed (0.5 = one every 2 s)
    #[arg(long, value_parser = parse_rate, required = true)]
    pub rps: Option<f64>,
    /// Measured duration (e.g. 30s, 2m)
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Time before the measured window: requests are sent but excluded from the results
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Keep-alive HTTP/1.1 connections (the most requests in flight at once)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// Runtime worker threads [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Skip (and count) the oldest due sends when more than this many requests are outstanding
    /// (awaiting a response or due and unsent) [default: no limit, nothing skipped]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: Option<u64>,
    /// Limit on connecting and on each request; a request over it counts as a timeout
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// After the end, keep sending requests that were due in the window but still wait for
    /// a connection (a backlog), late, for up to this long; what is left then is counted as
    /// never sent. 0 stops at the end
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub drain: Duration,
    /// HTTP/1.1 client: lean (a buffer, the socket and httparse, as wrk's) or hyper's
    #[arg(long, value_enum, default_value = "lean")]
    pub client: Client,
    /// HTTP method; POST, PUT and PATCH carry the generated /v1/events batch, others no body
    #[arg(long, default_value = "POST", value_parser = parse_method)]
    pub method: Method,
    /// Request path [default: the URL's path, else /v1/events]
    #[arg(long)]
    pub path: Option<String>,
    /// The server's Prometheus endpoint, scraped every second [default: URL's host + /metrics]
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,
    /// Do not scrape the server's metrics
    #[arg(long, conflicts_with = "metrics_url")]
    pub no_scrape: bool,
    /// Write the full report (with the per-second series) as JSON
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the per-second series as CSV
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw server memory and p99 over time (.png or .svg)
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write the measured window's latency histograms (tags `corrected` and `service`, µs)
    /// as an HdrHistogram interval log, one interval per second
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Start the schedule at this wall-clock time, so that instances on several machines run
    /// the same window: RFC 3339 (2026-12-02T10:00:00Z) or unix seconds; at most an hour ahead
    #[arg(long, value_parser = parse_wall_clock, value_name = "TIME")]
    pub start_at: Option<SystemTime>,
    /// Serve loadgen's own Prometheus metrics on this address (GET /metrics)
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Exit with status 3 when errors, skipped and unsent requests exceed this share of the
    /// scheduled ones (0.01 or 1%); 100% never fails a run that finished
    #[arg(long, value_parser = parse_fraction, default_value = "1%", value_name = "FRACTION")]
    pub max_error_rate: f64,
    /// No live progress (it is also off when stdout is not a terminal)
    #[arg(long, short)]
    pub quiet: bool,
    /// Workload shape.
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// Flags of `loadgen demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The allockit-server binary [default: next to this executable]
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Pass --workers N to both servers [default: the server's own default]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub server_workers: Option<u32>,
    /// Requests per second sent to each server
    #[arg(long, value_parser = parse_rate, default_value = "500")]
    pub rps: f64,
    /// How long both servers are driven
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Keep-alive connections per server
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// Limit on connecting and on each request
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Directory for report.md, report.json, rss.png and the server logs
    #[arg(long, value_name = "DIR", default_value = "reports/demo")]
    pub out: PathBuf,
    /// Exit with status 3 when a run's errors exceed this share of its requests
    #[arg(long, value_parser = parse_fraction, default_value = "1%", value_name = "FRACTION")]
    pub max_error_rate: f64,
    /// Runtime worker threads [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// No live progress
    #[arg(long, short)]
    pub quiet: bool,
    /// Workload shape.
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// Flags of `loadgen soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The allockit-server binary [default: next to this executable]
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// --workers of both servers
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub server_workers: u32,
    /// --cache-entries of both servers: more than --users, so the cache fills and never evicts
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_entries: u64,
    /// Requests per second sent to each server
    #[arg(long, value_parser = parse_rate, default_value = "500")]
    pub rps: f64,
    /// How long both servers are driven (e.g. 10m)
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub duration: Duration,
    /// Share of the run before the RSS fit starts (the cache filling up)
    #[arg(long, value_parser = parse_fraction, default_value = "25%", value_name = "FRACTION")]
    pub warmup_fraction: f64,
    /// Largest segregated RSS slope after the warm-up, MiB per minute
    #[arg(long, default_value_t = 0.25, value_name = "MIB_PER_MIN")]
    pub max_rss_slope: f64,
    /// Broken RSS growth must be at least this many times the segregated growth
    #[arg(long, default_value_t = 4.0, value_name = "RATIO")]
    pub min_growth_ratio: f64,
    /// Keep-alive connections per server (also the most chunks an idle server may hold)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Limit on connecting and on each request
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Directory for report.json, rss.png and the server logs
    #[arg(long, value_name = "DIR", default_value = "reports/soak")]
    pub out: PathBuf,
    /// Runtime worker threads [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// No live progress
    #[arg(long, short)]
    pub quiet: bool,
    /// Workload shape.
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// The shape of the generated `POST /v1/events` batches.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Distinct users, drawn uniformly: sets the server's cache-miss rate
    /// [default: 10000; demo: 100000; soak: 5000]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub users: Option<u64>,
    /// Events per batch: N, or A..B drawn uniformly (inclusive)
    #[arg(long, default_value = "1..20")]
    pub events: IntRange,
    /// Tags per event: N or A..B
    #[arg(long, default_value = "0..4")]
    pub tags: IntRange,
    /// Length of generated strings (path segments, tags): N or A..B
    #[arg(long, default_value = "8..24")]
    pub string_len: IntRange,
    /// Seed of every random choice: the same seed sends the same bytes
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Distinct event arrays pre-rendered (bodies are built from them per request)
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub body_pool: u64,
}

impl WorkloadArgs {
    /// The workload, with `default_users` when `--users` is not given.
    pub fn spec(&self, default_users: u64) -> WorkloadSpec {
        WorkloadSpec {
            users: self.users.unwrap_or(default_users),
            events: self.events,
            tags: self.tags,
            string_len: self.string_len,
            seed: self.seed,
            body_pool: self.body_pool as usize,
        }
    }
}

fn parse_method(text: &str) -> Result<Method, String> {
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{text:?} is not an HTTP method"))
}

/// How a finished command ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit held: exit status 0.
    Passed,
    /// The run finished but broke a limit (exit status 3); the reasons.
    LimitExceeded(Vec<String>),
}

/// Runs the command `cli` describes, printing the summary to stdout.
pub async fn execute(cli: Cli) -> Result<Verdict, Error> {
    match cli.command {
        Some(Command::Demo(args)) => execute_demo(args).await,
        Some(Command::Soak(args)) => execute_soak(args).await,
        Some(Command::Merge(args)) => execute_merge(&args),
        None => execute_run(cli.run).await,
    }
}

/// The run configuration the flags describe.
pub fn run_config(args: &RunArgs) -> Result<RunConfig, Error> {
    let url =
        args.target.as_deref().ok_or(Error::InvalidArgument { flag: "URL", message: "missing".into() })?;
    let rps = args.rps.ok_or(Error::InvalidArgument { flag: "--rps", message: "missing".into() })?;
    let base = Target::parse("URL", url)?;
    let path = match &args.path {
        Some(path) if path.starts_with('/') => path.clone(),
        Some(path) => {
            return Err(Error::InvalidArgument {
                flag: "--path",
                message: format!("{path:?} must start with /"),
            });
        }
        None if base.path != "/" => base.path.clone(),
        None => "/v1/events".to_owned(),
    };
    let carries_body = [Method::POST, Method::PUT, Method::PATCH].contains(&args.method);
    let metrics_url = match (&args.metrics_url, args.no_scrape) {
        (_, true) => None,
        (Some(url), false) => Some(Target::parse("--metrics-url", url)?),
        (None, false) => Some(base.with_path("/metrics")),
    };
    if let Some(at) = args.start_at {
        check_start_at(at, SystemTime::now())?;
    }
    for (flag, file) in
        [("--json", &args.json), ("--csv", &args.csv), ("--plot", &args.plot), ("--hdr-log", &args.hdr_log)]
    {
        if let Some(file) = file {
            check_output_file(flag, file)?;
        }
    }
    if let Some(chart) = &args.plot {
        let extension =
            chart.extension().and_then(|extension| extension.to_str()).map(str::to_ascii_lowercase);
        if !matches!(extension.as_deref(), Some("png" | "svg")) {
            return Err(Error::InvalidArgument {
                flag: "--plot",
                message: format!("{} must end in .png or .svg", chart.display()),
            });
        }
    }
    let config = RunConfig {
        label: String::new(),
        target: base.with_path(&path),
        method: args.method.clone(),
        body: if carries_body {
            RequestBody::Workload(args.workload.spec(10_000))
        } else {
            RequestBody::Empty
        },
        rps,
        warmup: args.warmup,
        duration: args.duration,
        connections: args.connections as usize,
        max_in_flight: args.max_in_flight,
        timeout: args.timeout,
        drain: args.drain,
        metrics_url,
        client: args.client,
    };
    config.validate()?;
    Ok(config)
}

/// The furthest ahead `--start-at` may be.
const START_AT_HORIZON: Duration = Duration::from_secs(3600);
/// How far in the past `--start-at` may be (instances started by hand a moment late still
/// start, at once).
const START_AT_GRACE: Duration = Duration::from_secs(1);

/// Refuses a `--start-at` more than an hour after `now`, or more than a second before it.
pub fn check_start_at(at: SystemTime, now: SystemTime) -> Result<(), Error> {
    let invalid = |message| Err(Error::InvalidArgument { flag: "--start-at", message });
    match at.duration_since(now) {
        Ok(ahead) if ahead > START_AT_HORIZON => invalid(format!(
            "{} is {:.0} s away, more than the hour allowed (clocks of the machines agree? the \
             time is {})",
            format_wall_clock(at),
            ahead.as_secs_f64(),
            format_wall_clock(now)
        )),
        Ok(_) => Ok(()),
        Err(past) if past.duration() > START_AT_GRACE => invalid(format!(
            "{} passed {:.1} s ago (the time is {}); give a time a little ahead, the same for \
             every instance",
            format_wall_clock(at),
            past.duration().as_secs_f64(),
            format_wall_clock(now)
        )),
        Err(_) => Ok(()),
    }
}

/// Refuses an output file whose directory does not exist, before the run rather than after.
fn check_output_file(flag: &'static str, file: &Path) -> Result<(), Error> {
    let directory = file.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if directory.is_dir() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            flag,
            message: format!("directory {} does not exist", directory.display()),
        })
    }
}

/// A stop signal raised by the first Ctrl-C.
fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (source, stop) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("loadgen: interrupted; finishing the requests in flight");
            source.send_replace(true);
            source.closed().await;
        }
    });
    stop
}

async fn execute_run(args: RunArgs) -> Result<Verdict, Error> {
    let config = run_config(&args)?;
    let metrics = match args.metrics_addr {
        Some(addr) => {
            let metrics = Arc::new(OwnMetrics::new()?);
            let (bound, _server) = exporter::serve(Arc::clone(&metrics), addr).await?;
            eprintln!("loadgen: own metrics on http://{bound}/metrics");
            Some(metrics)
        }
        None => None,
    };
    let hdr_log = args.hdr_log.as_deref().map(HdrLog::create).transpose()?;
    if let Some(at) = args.start_at {
        eprintln!("loadgen: the schedule starts at {}", format_wall_clock(at));
    }
    let visible = progress::enabled(args.quiet);
    let hooks = RunHooks {
        progress: Some(progress::bar(config.warmup + config.duration, "", visible)),
        metrics,
        stop: Some(stop_on_ctrl_c()),
        start_at: args.start_at,
        hdr_log,
    };
    let report = run_load(&config, hooks).await?;
    print!("{}", report.render_summary());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.csv {
        report.write_csv(path)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::plot_run(&report, path)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.hdr_log {
        println!("wrote {}", path.display());
    }
    Ok(error_verdict(&report, args.max_error_rate))
}

/// Passed, or the error rate over `limit` (exit status 3).
fn error_verdict(report: &RunReport, limit: f64) -> Verdict {
    if report.error_rate() > limit {
        Verdict::LimitExceeded(vec![format!(
            "error rate {:.3}% exceeds --max-error-rate {:.3}%",
            100.0 * report.error_rate(),
            100.0 * limit
        )])
    } else {
        Verdict::Passed
    }
}

fn execute_merge(args: &MergeArgs) -> Result<Verdict, Error> {
    let report = merge::merge_files(&args.files)?;
    print!("{}", report.render_summary());
    if let Some(directory) = &args.out {
        std::fs::create_dir_all(directory).map_err(|cause| Error::File { path: directory.clone(), cause })?;
        let (json, csv) = (directory.join("report.json"), directory.join("series.csv"));
        report.write_json(&json)?;
        report.write_csv(&csv)?;
        println!("wrote {}, {}", json.display(), csv.display());
    }
    Ok(error_verdict(&report, args.max_error_rate))
}

async fn execute_demo(args: DemoArgs) -> Result<Verdict, Error> {
    let config = DemoConfig {
        server_bin: args.server_bin,
        server_args: args
            .server_workers
            .map(|workers| vec!["--workers".to_owned(), workers.to_string()])
            .unwrap_or_default(),
        rps: args.rps,
        duration: args.duration,
        connections: args.connections as usize,
        timeout: args.timeout,
        workload: args.workload.spec(100_000),
        out_dir: args.out,
        progress: progress::enabled(args.quiet),
    };
    let report = demo::run_demo(&config, Some(stop_on_ctrl_c())).await?;
    print!("{}", report.render_table());
    println!("wrote {}/report.md, report.json, rss.png", config.out_dir.display());
    let problems = report.problems(args.max_error_rate);
    Ok(if problems.is_empty() { Verdict::Passed } else { Verdict::LimitExceeded(problems) })
}

async fn execute_soak(args: SoakArgs) -> Result<Verdict, Error> {
    let config = SoakConfig {
        server_bin: args.server_bin,
        workers: args.server_workers,
        cache_entries: args.cache_entries,
        rps: args.rps,
        duration: args.duration,
        connections: args.connections as usize,
        timeout: args.timeout,
        workload: args.workload.spec(soak::DEFAULT_USERS),
        limits: SoakLimits {
            warmup_fraction: args.warmup_fraction,
            max_rss_slope: args.max_rss_slope * 1024.0 * 1024.0,
            min_growth_ratio: args.min_growth_ratio,
        },
        out_dir: args.out,
        progress: progress::enabled(args.quiet),
    };
    let report = soak::run_soak(&config, Some(stop_on_ctrl_c())).await?;
    print!("{}", report.render());
    println!("wrote {}/report.json, rss.png", config.out_dir.display());
    let failures = report.failures();
    Ok(if failures.is_empty() { Verdict::Passed } else { Verdict::LimitExceeded(failures) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_lean_client_is_the_default_and_hyper_is_a_flag_away() {
        let base = ["--rps", "10", "http://127.0.0.1:1"];
        assert_eq!(parse(&base).unwrap().run.client, Client::Lean);
        let hyper = parse(&["--client", "hyper", "--rps", "10", "http://127.0.0.1:1"]).unwrap();
        assert_eq!(hyper.run.client, Client::Hyper);
        assert!(parse(&["--client", "curl", "--rps", "10", "http://127.0.0.1:1"]).is_err());
    }

    #[test]
    fn the_soak_defaults_run_ten_minutes_with_every_user_fitting_in_the_cache() {
        let Some(Command::Soak(args)) = parse(&["soak"]).unwrap().command else {
            panic!("`loadgen soak` parses as the soak")
        };
        assert_eq!(args.duration, Duration::from_secs(600));
        assert!(args.workload.spec(soak::DEFAULT_USERS).users < args.cache_entries);
        let Some(Command::Soak(args)) = parse(&["soak", "--users", "30000"]).unwrap().command else {
            panic!("`loadgen soak --users` parses as the soak")
        };
        assert_eq!(args.workload.spec(soak::DEFAULT_USERS).users, 30_000);
    }

    #[test]
    fn a_plain_run_needs_a_url_and_a_rate() {
        assert_eq!(
            parse(&["--rps", "10"]).unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let missing_rate = parse(&["http://127.0.0.1:1"]).unwrap_err();
        assert!(missing_rate.to_string().contains("--rps"), "{missing_rate}");
        assert!(parse(&["--rps", "10", "http://127.0.0.1:1"]).is_ok());
    }

    #[test]
    fn bad_flag_values_are_clap_errors_naming_the_flag() {
        for (args, flag) in [
            (["--rps", "fast", "http://h"], "--rps"),
            (["--duration", "1 fortnight", "http://h"], "--duration"),
            (["--events", "9..2", "http://h"], "--events"),
            (["--max-error-rate", "2", "http://h"], "--max-error-rate"),
            (["--connections", "0", "http://h"], "--connections"),
        ] {
            let full: Vec<&str> =
                if flag == "--rps" { args.to_vec() } else { [&["--rps", "1"], &args[..]].concat() };
            let error = parse(&full).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{error}");
            assert!(error.to_string().contains(flag), "{error}");
        }
    }

    #[test]
    fn the_demo_needs_no_url_and_has_moderate_defaults() {
        let cli = parse(&["demo"]).unwrap();
        let Some(Command::Demo(demo)) = cli.command else { panic!("not the demo") };
        assert_eq!((demo.rps, demo.duration, demo.connections), (500.0, Duration::from_secs(60), 16));
        assert_eq!(demo.workload.spec(100_000).users, 100_000);
    }

    #[test]
    fn the_request_path_comes_from_the_flag_then_the_url_then_the_default() {
        let config = |args: &[&str]| {
            let Cli { run, .. } = parse(args).unwrap();
            run_config(&run).unwrap()
        };
        assert_eq!(config(&["--rps", "1", "http://h:8080"]).target.url, "http://h:8080/v1/events");
        assert_eq!(config(&["--rps", "1", "http://h:8080/healthz"]).target.path, "/healthz");
        let get = config(&["--rps", "1", "--method", "get", "--path", "/healthz", "http://h:8080/x"]);
        assert_eq!((get.target.path.as_str(), get.body), ("/healthz", RequestBody::Empty));
        assert!(matches!(config(&["--rps", "1", "http://h"]).body, RequestBody::Workload(_)));
        assert_eq!(
            config(&["--rps", "1", "http://h:8080"]).metrics_url.unwrap().url,
            "http://h:8080/metrics"
        );
        assert_eq!(config(&["--rps", "1", "--no-scrape", "http://h"]).metrics_url, None);
    }

    #[test]
    fn output_files_are_checked_before_the_run() {
        let run = |args: &[&str]| run_config(&parse(args).unwrap().run).unwrap_err().to_string();
        assert!(run(&["--rps", "1", "--plot", "chart.jpg", "http://h"]).starts_with("--plot:"));
        assert!(run(&["--rps", "1", "--json", "no/such/dir/report.json", "http://h"]).starts_with("--json:"));
        assert!(run(&["--rps", "1", "https://h"]).starts_with("URL:"));
    }

    #[test]
    fn a_start_time_must_be_within_the_hour_ahead_and_at_most_a_second_past() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_205_600);
        let secs = Duration::from_secs;
        assert!(check_start_at(now + secs(3600), now).is_ok());
        assert!(check_start_at(now - Duration::from_millis(900), now).is_ok());
        let far = check_start_at(now + secs(3601), now).unwrap_err();
        assert!(
            far.is_usage() && far.to_string().starts_with("--start-at: 2026-12-02T11:00:01.000Z"),
            "{far}"
        );
        let past = check_start_at(now - secs(5), now).unwrap_err().to_string();
        assert!(past.contains("passed 5.0 s ago"), "{past}");
        let Cli { run, .. } =
            parse(&["--rps", "1", "--start-at", "2026-12-02T10:00:00Z", "http://h"]).unwrap();
        assert_eq!(run.start_at, Some(now));
    }

    #[test]
    fn merge_takes_files_and_an_output_directory_but_no_url() {
        let Some(Command::Merge(args)) = parse(&["merge", "a.json", "b.json", "--out", "m"]).unwrap().command
        else {
            panic!("`loadgen merge` parses as the merge")
        };
        assert_eq!(args.files, [PathBuf::from("a.json"), PathBuf::from("b.json")]);
        assert_eq!(args.out, Some(PathBuf::from("m")));
        assert_eq!(parse(&["merge"]).unwrap_err().kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
