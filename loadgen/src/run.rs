//! The load engine: an open-loop schedule driven over keep-alive HTTP/1.1 connections.
//!
//! [`run_load`] opens `connections` connections up front (an unreachable target fails
//! here, before any measurement), then runs one task per connection, which also drives its
//! connection (no second task, no cross-task wake-up per request): by default the lean
//! HTTP/1.1 client of [`crate::h1`], which writes each request from a buffer the
//! connection reuses and parses the response with `httparse`; `--client hyper` uses
//! hyper's client instead ([`Client`]). A free connection
//! claims the next request from the [`Timetable`], sleeps until its intended time, sends
//! it and reads the whole response; a broken connection is re-opened on its next request.
//! Latency is measured from the intended time, so a stalled server shows up in every
//! request that was due during the stall, not only in the few that were in flight.
//!
//! Once a second a sampler drains the per-shard [`Recorder`]s into a series row, scrapes
//! the server's `/metrics`, and refreshes the progress bar; at the end it builds the
//! [`RunReport`].
//!
//! Costs: per request, one body render into the connection's buffer (a memcpy of the
//! batch; no allocation once the buffer has grown), one uncontended mutex each for the
//! schedule and a recorder shard, a few atomics, one `write` and usually one `read`
//! (with `--client hyper`: an allocation for the body and hyper's request/response
//! handling). Memory is fixed: about 1.1 MB of histograms per
//! shard (one shard per runtime worker), and a series of at most a day of one-second rows
//! (longer runs merge rows, see [`Series`]).
//!
//! What it cannot do: pipelining or HTTP/2 (one request at a time per connection, so the
//! concurrency is at most `connections`), TLS, and sub-millisecond send precision: tokio's
//! timer fires on millisecond ticks, so a send leaves within about a millisecond either
//! side of its intended time (`TIMER_LEAD` explains how); the send delay reports the late
//! side.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use indicatif::ProgressBar;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::Error;
use crate::exporter::OwnMetrics;
use crate::h1::{H1Connection, RequestHead};
use crate::hdrlog::HdrLog;
use crate::http::{BodyUse, ClientConnection, Target};
use crate::progress::Status;
use crate::recorder::{Failure, LatencySummary, Outcome, Recorder, Sample, Stats, encode_histogram};
use crate::report::{EncodedHistograms, ErrorCounts, Phase, RequestCounts, RunReport, Series, SeriesRow};
use crate::scrape::{Scraper, ServerSample};
use crate::timetable::{Claim, Slot, Timetable};
use crate::workload::{Bodies, WorkloadSpec};

/// How far in the future the schedule starts once every connection is open, so that no
/// request is due before its connection task has run.
const START_LEAD: Duration = Duration::from_millis(10);

/// With a start time ([`RunHooks::start_at`]), how long before it the connections are
/// opened (they are opened late rather than early, so that a server's idle timeout does not
/// close them while the run waits).
const CONNECT_LEAD: Duration = Duration::from_secs(2);

/// How long before its intended time a connection asks tokio to wake it. tokio's timer
/// fires on millisecond ticks, rounding up, and the wake-up adds its own delay: asked for
/// `t`, a sleep ends about 1.1 ms after `t` (median; p99 about 3.6 ms on a loaded machine).
/// Asking for `t - 1 ms` centres the send on `t` (median +0.07 ms, 43 % of sends up to
/// 0.9 ms early). Latency is measured from the earlier of the intended and the actual
/// send: an early send is measured from when it left (never shorter than its service
/// time), a late one from when it was due (the wait is charged in full).
const TIMER_LEAD: Duration = Duration::from_millis(1);

/// The drain of `--drain`'s default: long enough for a client or server a few hundred
/// milliseconds behind to catch up, short enough that a rate no one can reach (a peak
/// measurement) ends soon after its window.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(1);

/// The longest run accepted (warm-up plus duration): keeps every schedule time far from
/// overflowing an `Instant`.
const MAX_RUN: Duration = Duration::from_secs(30 * 24 * 3600);

/// The request body: a generated batch, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// A generated `POST /v1/events` batch.
    Workload(WorkloadSpec),
    /// No body (e.g. `GET /healthz`).
    Empty,
}

/// Which HTTP/1.1 client sends the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Client {
    /// The lean client of [`crate::h1`]: requests written from a reused buffer, responses
    /// parsed with `httparse`, the socket driven directly.
    #[default]
    Lean,
    /// hyper's `client::conn::http1`, as before the lean client (for comparison).
    Hyper,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// A name shown in progress and reports (empty for a plain run).
    pub label: String,
    /// Where requests go (the path included).
    pub target: Target,
    /// The method of every request.
    pub method: Method,
    /// What every request carries; a workload is rendered per request from its seed.
    pub body: RequestBody,
    /// Scheduled requests per second.
    pub rps: f64,
    /// Time before the measured window; its requests are sent but excluded.
    pub warmup: Duration,
    /// Length of the measured window, after the warm-up.
    pub duration: Duration,
    /// Keep-alive connections.
    pub connections: usize,
    /// Outstanding requests (awaiting a response or due and unsent) above which the oldest
    /// due sends are skipped; `None` never skips.
    pub max_in_flight: Option<u64>,
    /// Limit on connecting and on each request.
    pub timeout: Duration,
    /// How long after the end requests due in the window but not yet sent (a backlog) are
    /// still sent; zero drops them at the end (counted as never sent).
    pub drain: Duration,
    /// The server's `/metrics`, scraped every second; `None` scrapes nothing.
    pub metrics_url: Option<Target>,
    /// The HTTP/1.1 client that sends the load.
    pub client: Client,
}

impl RunConfig {
    /// Checks the values clap cannot check alone.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |flag, message: &str| Err(Error::InvalidArgument { flag, message: message.to_owned() });
        if self.connections == 0 {
            return invalid("--connections", "at least one connection is needed");
        }
        if self.duration.is_zero() {
            return invalid("--duration", "the measured window must be longer than zero");
        }
        if !(self.rps.is_finite() && self.rps > 0.0) {
            return invalid("--rps", "the rate must be positive and finite");
        }
        if self.timeout.is_zero() {
            return invalid("--timeout", "the timeout must be longer than zero");
        }
        if self.drain > MAX_RUN {
            return invalid("--drain", "the drain must stay under 30 days");
        }
        if self.warmup.saturating_add(self.duration) > MAX_RUN {
            return invalid("--duration", "the warm-up plus the duration must stay under 30 days");
        }
        if self.max_in_flight == Some(0) {
            return invalid("--max-in-flight", "at least one request must be allowed in flight");
        }
        Ok(())
    }
}

/// What the caller plugs into a run.
#[derive(Debug, Default)]
pub struct RunHooks {
    /// A progress bar to update every second.
    pub progress: Option<ProgressBar>,
    /// loadgen's own metrics, updated per request.
    pub metrics: Option<Arc<OwnMetrics>>,
    /// Ends the run early when it becomes `true` (e.g. on Ctrl-C); the report then covers
    /// the time run.
    pub stop: Option<watch::Receiver<bool>>,
    /// The wall-clock time the schedule starts at (`--start-at`), so that instances on
    /// several machines run the same window; `None` starts at once. The run checks the
    /// target with one connection, waits, opens its connections shortly before, and starts
    /// at this time, or at once if that has passed by then (the report's `start_unix_s`
    /// says when it did start).
    pub start_at: Option<SystemTime>,
    /// The interval log to write (`--hdr-log`), created by the caller.
    pub hdr_log: Option<HdrLog>,
}

/// Runs the load described by `config` and reports on it. Needs a tokio runtime with the
/// time and I/O drivers; a multi-threaded one spreads connections over its workers.
pub async fn run_load(config: &RunConfig, hooks: RunHooks) -> Result<RunReport, Error> {
    config.validate()?;
    let template = RequestTemplate::new(config)?;
    let addr = config.target.resolve().await?;
    let (_stop_source, unused_stop) = watch::channel(false);
    let stop = hooks.stop.unwrap_or(unused_stop);
    if let Some(start_at) = hooks.start_at {
        // An unreachable target fails now, not when the wait is over.
        drop(Connection::open(config.client, &config.target, addr, config.timeout).await?);
        if let Ok(wait) = start_at.duration_since(SystemTime::now())
            && wait > CONNECT_LEAD
        {
            let mut stop = stop.clone();
            tokio::select! {
                () = tokio::time::sleep(wait - CONNECT_LEAD) => {}
                () = wait_until_true(&mut stop) => {}
            }
        }
    }
    let connections = open_connections(config, addr).await?;

    let mut scraper = config.metrics_url.clone().map(Scraper::new);
    let baseline = match &mut scraper {
        Some(scraper) => scraper.scrape().await,
        None => ServerSample::default(),
    };

    let workers = tokio::runtime::Handle::current().metrics().num_workers().max(1);
    let shards = (0..workers.min(config.connections)).map(|_| Recorder::new().map(Mutex::new));
    let (start, start_wall) = schedule_start(hooks.start_at);
    let engine = Arc::new(Engine {
        start,
        start_wall,
        timetable: Mutex::new(
            Timetable::new(config.rps, config.warmup, config.duration, config.max_in_flight)
                .with_drain(config.drain),
        ),
        awaiting_response: AtomicU64::new(0),
        shards: shards.collect::<Result<_, _>>()?,
        template,
        target: config.target.clone(),
        addr,
        timeout: config.timeout,
        client: config.client,
        metrics: hooks.metrics.clone(),
    });
    if let Some(metrics) = &hooks.metrics {
        metrics.set_target_rps(config.rps);
    }

    let (finished_source, finished) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (number, connection) in connections.into_iter().enumerate() {
        let shard = number % engine.shards.len();
        tasks.spawn(drive_connection(Arc::clone(&engine), shard, connection, stop.clone()));
    }

    let connections_done = async {
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                failure.get_or_insert(Error::TaskFailed(format!("connection task: {error}")));
            }
        }
        finished_source.send_replace(true);
        failure.map_or(Ok(engine.elapsed()), Err)
    };
    let stop_watch = {
        let (mut stop, mut finished) = (stop.clone(), finished.clone());
        let engine = Arc::clone(&engine);
        async move {
            // Biased: once the connections have seen a stop and ended, both branches are
            // ready, and the stop must still move the end (else the run reads as complete,
            // with the rest of its schedule never sent).
            tokio::select! {
                biased;
                () = wait_until_true(&mut stop) => engine.stop_now(),
                () = wait_until_true(&mut finished) => {}
            }
        }
    };
    let sampler = Sampler::new(&engine, config, scraper, hooks.progress.clone(), baseline, hooks.hdr_log)?;
    let (driven, (), sampled) = tokio::join!(connections_done, stop_watch, sampler.run(finished));
    let finished_at = driven?;
    let sampled = sampled?;
    if let Some(progress) = &hooks.progress {
        progress.finish_and_clear();
    }
    build_report(config, &engine, sampled, finished_at)
}

/// The schedule's start as an instant and as wall-clock time: `start_at` when it is at
/// least [`START_LEAD`] away, else [`START_LEAD`] from now.
fn schedule_start(start_at: Option<SystemTime>) -> (Instant, SystemTime) {
    let (now, wall_now) = (Instant::now(), SystemTime::now());
    if let Some(at) = start_at
        && let Ok(ahead) = at.duration_since(wall_now)
        && ahead >= START_LEAD
    {
        return (now + ahead, at);
    }
    (now + START_LEAD, wall_now + START_LEAD)
}

async fn open_connections(config: &RunConfig, addr: SocketAddr) -> Result<Vec<Connection>, Error> {
    let mut connecting = JoinSet::new();
    for _ in 0..config.connections {
        let target = config.target.clone();
        let (timeout, client) = (config.timeout, config.client);
        connecting.spawn(async move { Connection::open(client, &target, addr, timeout).await });
    }
    let mut connections = Vec::with_capacity(config.connections);
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok(Ok(connection)) => connections.push(connection),
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(Error::TaskFailed(format!("connecting: {error}"))),
        }
    }
    Ok(connections)
}

/// Resolves once the flag is `true`; never, if its sender is gone while it is `false`.
async fn wait_until_true(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|value| *value).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Locks `mutex`, recovering the data if a panicking task poisoned it (the counters stay
/// meaningful; the panic itself is reported by the task's join).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A load connection, by client.
#[derive(Debug)]
enum Connection {
    Lean(H1Connection),
    Hyper(ClientConnection),
}

impl Connection {
    async fn open(
        client: Client,
        target: &Target,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Ok(match client {
            Client::Lean => Self::Lean(H1Connection::open(target, addr, timeout).await?),
            Client::Hyper => Self::Hyper(ClientConnection::open(target, addr, timeout).await?),
        })
    }

    fn is_open(&self) -> bool {
        match self {
            Self::Lean(connection) => connection.is_open(),
            Self::Hyper(connection) => connection.is_open(),
        }
    }

    async fn idle_until(&mut self, deadline: tokio::time::Instant) {
        match self {
            Self::Lean(connection) => connection.idle_until(deadline).await,
            Self::Hyper(connection) => connection.idle_until(deadline).await,
        }
    }
}

/// A connection task's reused buffers for the lean client: the request's bytes and the
/// body rendered before them.
#[derive(Debug, Default)]
struct Buffers {
    request: Vec<u8>,
    body: Vec<u8>,
}

/// The request every send starts from; only the body differs.
#[derive(Debug)]
struct RequestTemplate {
    method: Method,
    uri: Uri,
    host: HeaderValue,
    json: bool,
    bodies: Option<Bodies>,
    /// The lean client's serialised head.
    head: RequestHead,
}

impl RequestTemplate {
    fn new(config: &RunConfig) -> Result<Self, Error> {
        let invalid = |message: &str| Error::InvalidUrl {
            flag: "--path",
            url: config.target.url.clone(),
            message: message.to_owned(),
        };
        let uri = config.target.path.parse().map_err(|_| invalid("not a valid request path"))?;
        let host = HeaderValue::from_str(&config.target.authority).map_err(|_| invalid("bad host"))?;
        let bodies = match &config.body {
            RequestBody::Workload(spec) => Some(Bodies::generate(spec)),
            RequestBody::Empty => None,
        };
        let content_type = bodies.as_ref().map(|_| "application/json");
        let head = RequestHead::new(config.method.as_str(), &config.target, content_type)?;
        Ok(Self { method: config.method.clone(), uri, host, json: bodies.is_some(), bodies, head })
    }

    /// Writes request `index`, head and body, into `buffers.request`.
    fn write(&self, index: u64, buffers: &mut Buffers) {
        buffers.body.clear();
        if let Some(bodies) = &self.bodies {
            bodies.write_body(index, &mut buffers.body);
        }
        self.head.write(&buffers.body, &mut buffers.request);
    }

    fn request(&self, index: u64) -> Request<Full<Bytes>> {
        let body = self.bodies.as_ref().map_or_else(Bytes::new, |bodies| bodies.body(index));
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        request.headers_mut().insert(HOST, self.host.clone());
        if self.json {
            request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
    }
}

/// State shared by the connection tasks and the sampler.
#[derive(Debug)]
struct Engine {
    start: Instant,
    /// `start` on the wall clock.
    start_wall: SystemTime,
    timetable: Mutex<Timetable>,
    awaiting_response: AtomicU64,
    shards: Vec<Mutex<Recorder>>,
    template: RequestTemplate,
    /// Where requests go; its URL names the target in connection errors.
    target: Target,
    addr: SocketAddr,
    timeout: Duration,
    client: Client,
    metrics: Option<Arc<OwnMetrics>>,
}

impl Engine {
    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    fn claim(&self) -> Claim {
        let elapsed = self.elapsed();
        lock(&self.timetable).claim(elapsed, self.awaiting_response.load(Ordering::Relaxed))
    }

    fn stop_now(&self) {
        let elapsed = self.elapsed();
        lock(&self.timetable).stop_at(elapsed);
    }

    fn record(&self, shard: usize, sample: &Sample) {
        lock(&self.shards[shard]).record(sample);
        if let Some(metrics) = &self.metrics {
            metrics.observe(sample.outcome, sample.corrected);
        }
    }

    /// Sends request `slot` on `connection` (re-opening it if the peer closed it) and reads
    /// the whole response.
    async fn exchange(
        &self,
        connection: &mut Option<Connection>,
        slot: Slot,
        buffers: &mut Buffers,
    ) -> Sample {
        let intended_at = self.start + slot.intended;
        let sample =
            |outcome, sent_at, done_at| Sample::timed(slot.measured, outcome, intended_at, sent_at, done_at);
        if connection.as_ref().is_some_and(|open| !open.is_open()) {
            *connection = None;
        }
        let open = match connection {
            Some(open) => open,
            None => match Connection::open(self.client, &self.target, self.addr, self.timeout).await {
                Ok(opened) => connection.insert(opened),
                Err(_) => {
                    let now = Instant::now();
                    return sample(Outcome::Failed(Failure::Connect), now, now);
                }
            },
        };
        // The request is built before the send time is taken, whichever the client.
        let (sent_at, result) = match open {
            Connection::Lean(open) => {
                self.template.write(slot.index, buffers);
                let sent_at = Instant::now();
                self.awaiting_response.fetch_add(1, Ordering::Relaxed);
                let exchanged = open.exchange(&buffers.request);
                (
                    sent_at,
                    tokio::time::timeout(self.timeout, exchanged).await.map(|result| result.map_err(drop)),
                )
            }
            Connection::Hyper(open) => {
                let request = self.template.request(slot.index);
                let sent_at = Instant::now();
                self.awaiting_response.fetch_add(1, Ordering::Relaxed);
                let exchanged = open.exchange(request, BodyUse::Drain);
                let result = tokio::time::timeout(self.timeout, exchanged).await;
                (sent_at, result.map(|result| result.map(|(status, _)| status).map_err(drop)))
            }
        };
        let done_at = Instant::now();
        self.awaiting_response.fetch_sub(1, Ordering::Relaxed);
        let outcome = match result {
            Ok(Ok(status)) => Outcome::Response(status),
            Ok(Err(_)) => {
                *connection = None;
                Outcome::Failed(Failure::Io)
            }
            Err(_) => {
                *connection = None;
                Outcome::Failed(Failure::Timeout)
            }
        };
        sample(outcome, sent_at, done_at)
    }
}

/// One connection's loop: claim, wait for the intended time, send, record.
async fn drive_connection(
    engine: Arc<Engine>,
    shard: usize,
    connection: Connection,
    mut stop: watch::Receiver<bool>,
) {
    let mut connection = Some(connection);
    let mut buffers = Buffers::default();
    while let Claim::Send(slot) = engine.claim() {
        let intended_at = engine.start + slot.intended;
        let due = intended_at.checked_sub(TIMER_LEAD).unwrap_or(intended_at);
        if due > Instant::now() {
            let idle = async {
                match &mut connection {
                    Some(open) => open.idle_until(due.into()).await,
                    None => tokio::time::sleep_until(due.into()).await,
                }
            };
            let stopped = tokio::select! {
                () = idle => false,
                () = wait_until_true(&mut stop) => true,
            };
            // A stop ends the wait, but a request already due when it came (the timer can
            // fire a few milliseconds late) was due before the stop: it is still sent.
            if stopped && slot.intended > engine.elapsed() {
                break;
            }
        }
        let sample = engine.exchange(&mut connection, slot, &mut buffers).await;
        engine.record(shard, &sample);
    }
}

/// The once-a-second collector: drains the shards into a series row, scrapes the server,
/// and updates the progress bar.
struct Sampler<'a> {
    engine: &'a Engine,
    config: &'a RunConfig,
    scraper: Option<Scraper>,
    progress: Option<ProgressBar>,
    interval: Stats,
    measured: Stats,
    previous_elapsed: Duration,
    skipped_exported: u64,
    /// The baseline scrape before any request, kept apart so that merging never blurs it.
    start_row: SeriesRow,
    series: Series,
    /// `--hdr-log`, with the measured window's statistics of the current second.
    hdr_log: Option<(HdrLog, Stats)>,
}

/// What the sampler hands to the report.
struct Sampled {
    measured: Stats,
    series: Vec<SeriesRow>,
    scrape_error: Option<String>,
}

impl<'a> Sampler<'a> {
    fn new(
        engine: &'a Engine,
        config: &'a RunConfig,
        scraper: Option<Scraper>,
        progress: Option<ProgressBar>,
        baseline: ServerSample,
        hdr_log: Option<HdrLog>,
    ) -> Result<Self, Error> {
        let start_row = SeriesRow::start(baseline);
        let hdr_log = match hdr_log {
            Some(mut log) => {
                log.begin(engine.start_wall)?;
                Some((log, Stats::new()?))
            }
            None => None,
        };
        Ok(Self {
            engine,
            config,
            scraper,
            progress,
            interval: Stats::new()?,
            measured: Stats::new()?,
            previous_elapsed: Duration::ZERO,
            skipped_exported: 0,
            start_row,
            series: Series::default(),
            hdr_log,
        })
    }

    async fn run(mut self, mut finished: watch::Receiver<bool>) -> Result<Sampled, Error> {
        let period = Duration::from_secs(1);
        let mut ticker = tokio::time::interval_at((self.engine.start + period).into(), period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick().await?,
                () = wait_until_true(&mut finished) => break,
            }
        }
        self.tick().await?;
        if let Some((log, _)) = &mut self.hdr_log {
            log.finish()?;
        }
        let scrape_error = self.scraper.as_ref().and_then(|scraper| scraper.last_error().map(str::to_owned));
        let series = std::iter::once(self.start_row).chain(self.series.into_rows()).collect();
        Ok(Sampled { measured: self.measured, series, scrape_error })
    }

    async fn tick(&mut self) -> Result<(), Error> {
        let elapsed = self.engine.elapsed();
        self.interval.clear();
        match &mut self.hdr_log {
            None => {
                for shard in &self.engine.shards {
                    lock(shard).drain_into(&mut self.interval, &mut self.measured)?;
                }
            }
            Some((_, second)) => {
                // The second's measured requests are kept apart for the log, then added.
                second.clear();
                for shard in &self.engine.shards {
                    lock(shard).drain_into(&mut self.interval, second)?;
                }
                self.measured.add(second)?;
            }
        }
        let (backlog, late, skipped, end) = {
            let timetable = lock(&self.engine.timetable);
            (timetable.backlog(elapsed), timetable.late(), timetable.skipped(), timetable.end())
        };
        let awaiting_response = self.engine.awaiting_response.load(Ordering::Relaxed);
        if let Some(metrics) = &self.engine.metrics {
            let skipped_total = skipped.warmup + skipped.measured;
            metrics.add_skipped(skipped_total - self.skipped_exported);
            self.skipped_exported = skipped_total;
            metrics.set_in_flight(awaiting_response);
        }
        let server = match &mut self.scraper {
            Some(scraper) => scraper.scrape().await,
            None => ServerSample::default(),
        };
        // The interval runs from the previous tick to this one; it is labelled by the phase
        // its first instant belongs to, so the warm-up's last second reads `warmup`.
        let interval_start = self.previous_elapsed;
        let seconds = elapsed.saturating_sub(interval_start).as_secs_f64();
        self.previous_elapsed = elapsed;
        if let Some((log, second)) = &mut self.hdr_log {
            let length = elapsed.saturating_sub(interval_start);
            log.write_interval(interval_start, length, &second.corrected, &second.service)?;
        }
        let corrected = LatencySummary::of(&self.interval.corrected);
        let tally = &self.interval.tally;
        let row = SeriesRow {
            elapsed_s: elapsed.as_secs_f64(),
            interval_s: seconds,
            phase: Phase::of_interval(interval_start, self.config.warmup, end),
            responses: tally.responses(),
            errors: tally.errors(),
            achieved_rps: if seconds > 0.0 { tally.responses() as f64 / seconds } else { 0.0 },
            p50_ms: corrected.map(|summary| summary.p50_ms),
            p99_ms: corrected.map(|summary| summary.p99_ms),
            max_ms: corrected.map(|summary| summary.max_ms),
            service_p99_ms: LatencySummary::of(&self.interval.service).map(|summary| summary.p99_ms),
            backlog,
            awaiting_response,
            server,
        };
        if let Some(progress) = &self.progress {
            let status = Status {
                elapsed_s: row.elapsed_s,
                achieved_rps: row.achieved_rps,
                target_rps: self.config.rps,
                p99_ms: LatencySummary::of(&self.measured.corrected).map(|summary| summary.p99_ms),
                errors: self.measured.tally.errors(),
                late: late.warmup + late.measured,
                server_rss_bytes: server.rss_bytes,
            };
            status.show(progress);
        }
        self.series.push(row);
        Ok(())
    }
}

/// Builds the report; `finished_at` is when the last connection finished (its last response
/// in, or the drain over), from the start.
fn build_report(
    config: &RunConfig,
    engine: &Engine,
    sampled: Sampled,
    finished_at: Duration,
) -> Result<RunReport, Error> {
    let timetable = lock(&engine.timetable).clone();
    let planned_end = config.warmup + config.duration;
    // The window runs from the end of the warm-up to the end of the schedule or, when the
    // last responses (or a drained backlog) came in after it, to the last of them: the
    // achieved rate is over the time the requests really took.
    let measured_s = timetable.end().max(finished_at).saturating_sub(config.warmup).as_secs_f64();
    let tally = &sampled.measured.tally;
    let skipped = timetable.skipped().measured;
    // A stop can land within the timer lead of a send already on its way, whose intended
    // time is just after the new end: it was sent and measured, so it counts as scheduled.
    let scheduled =
        timetable.total_requests().saturating_sub(timetable.warmup_requests()).max(tally.total() + skipped);
    let by_status = tally.statuses.iter().filter(|(_, count)| **count > 0).map(|(s, c)| (*s, *c)).collect();
    let measured = &sampled.measured;
    let histograms = EncodedHistograms {
        corrected: encode_histogram(&measured.corrected)?,
        service: encode_histogram(&measured.service)?,
        send_delay: encode_histogram(&measured.send_delay)?,
    };
    Ok(RunReport {
        loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
        label: config.label.clone(),
        method: config.method.to_string(),
        url: config.target.url.clone(),
        workload: match &config.body {
            RequestBody::Workload(spec) => Some(spec.clone()),
            RequestBody::Empty => None,
        },
        target_rps: config.rps,
        connections: config.connections,
        max_in_flight: config.max_in_flight,
        timeout_s: config.timeout.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        duration_s: config.duration.as_secs_f64(),
        measured_s,
        start_unix_s: engine.start_wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
        interrupted: timetable.end() < planned_end,
        requests: RequestCounts {
            scheduled,
            attempted: tally.total(),
            responses: tally.responses(),
            ok: tally.ok,
            late: timetable.late().measured,
            skipped,
            unsent: scheduled.saturating_sub(tally.total() + skipped),
        },
        errors: ErrorCounts {
            by_status,
            connect: tally.failures(Failure::Connect),
            io: tally.failures(Failure::Io),
            timeout: tally.failures(Failure::Timeout),
        },
        achieved_rps: if measured_s > 0.0 { tally.responses() as f64 / measured_s } else { 0.0 },
        latency: LatencySummary::of(&sampled.measured.corrected),
        service_time: LatencySummary::of(&sampled.measured.service),
        send_delay: LatencySummary::of(&sampled.measured.send_delay),
        metrics_url: config.metrics_url.as_ref().map(|target| target.url.clone()),
        scrape_error: sampled.scrape_error,
        histograms: Some(histograms),
        merged: None,
        series: sampled.series,
    })
}
