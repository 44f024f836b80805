//! # loadgen
//!
//! An open-loop HTTP load generator whose numbers can be trusted the way wrk2's are, and
//! the driver of the allockit demo.
//!
//! * Requests follow a fixed timetable at `--rps` ([`timetable`]); latency is measured from
//!   each request's *intended* send time, so a server stall is charged to every request
//!   that was due during it (coordinated-omission correction), and the raw service time is
//!   reported beside it.
//! * Latencies go into HdrHistograms ([`recorder`]): memory is fixed however long the run.
//! * The server's `/metrics` is scraped every second ([`scrape`]; the text is read by the
//!   `allockit-probe` crate, which owns the metric contract): RSS, jemalloc, arena chunks
//!   by state, cache bytes, as a per-second series.
//! * Output: a summary table, JSON, CSV, charts ([`report`], [`plot`]); an HdrHistogram
//!   interval log ([`hdrlog`]); loadgen's own Prometheus metrics ([`exporter`]); live
//!   progress ([`progress`]).
//! * Several instances (on several machines, started together with `--start-at`) combine
//!   exactly: each report carries its histograms, and [`merge`] adds them.
//! * [`demo`] starts the allockit server in both lifetime modes and compares them;
//!   [`soak`] drives both for a long time and checks that memory behaves (a verdict).
//!
//! | module | what it is |
//! |---|---|
//! | [`run`] | the engine: connections, schedule, sampling, the report |
//! | [`timetable`] | the open-loop schedule, late and skipped sends |
//! | [`recorder`] | histograms and outcome counts |
//! | [`workload`] | the `POST /v1/events` bodies, reproducible by seed |
//! | [`http`] | target URLs and HTTP/1.1 client connections (hyper) |
//! | [`h1`] | the lean HTTP/1.1 client of the load path (`--client lean`, the default) |
//! | [`scrape`] | fetching the server's Prometheus metrics (read by `allockit_probe`) |
//! | [`report`], [`plot`], [`progress`] | what the user sees |
//! | [`hdrlog`] | the `--hdr-log` interval log |
//! | [`merge`] | `loadgen merge`: several runs' reports as one |
//! | [`exporter`] | loadgen's own metrics |
//! | [`supervisor`] | starting, watching and stopping allockit-server children |
//! | [`demo`] | the two-mode server comparison |
//! | [`soak`] | the long-run memory checks of both modes, with a verdict |
//! | [`cli`] | the command line |
//!
//! ```no_run
//! use std::time::Duration;
//! use loadgen::http::Target;
//! use loadgen::run::{RequestBody, RunConfig, RunHooks, run_load};
//!
//! # async fn example() -> Result<(), loadgen::Error> {
//! let base = Target::parse("URL", "http://127.0.0.1:8080")?;
//! let config = RunConfig {
//!     label: String::new(),
//!     target: base.with_path("/healthz"),
//!     method: hyper::Method::GET,
//!     body: RequestBody::Empty,
//!     rps: 1000.0,
//!     warmup: Duration::from_secs(1),
//!     duration: Duration::from_secs(10),
//!     connections: 16,
//!     max_in_flight: None,
//!     client: loadgen::run::Client::Lean,
//!     timeout: Duration::from_secs(5),
//!     drain: Duration::from_secs(1),
//!     metrics_url: Some(base.with_path("/metrics")),
//! };
//! let report = run_load(&config, RunHooks::default()).await?;
//! println!("{}", report.render_summary());
//! # Ok(()) }
//! ```

#![deny(missing_debug_implementations)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod demo;
mod error;
pub mod exporter;
pub mod h1;
pub mod hdrlog;
pub mod http;
pub mod merge;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scrape;
pub mod soak;
pub mod supervisor;
pub mod timetable;
pub mod units;
pub mod workload;

pub use error::Error;
