//! Start-up, the thread-per-core workers, connections, and graceful shutdown.
//!
//! Each worker is one OS thread with a current-thread tokio runtime. The address is bound
//! **once**, without `SO_REUSEPORT`, and every worker accepts on its own duplicate of that
//! one listening socket (`try_clone`, a `dup`): the kernel keeps one accept queue, an idle
//! worker takes the next connection, and a request never changes thread, so per-worker
//! arenas and pools need no locks. Because nothing sets `SO_REUSEPORT`, a second process
//! started on the same address fails with `EADDRINUSE` instead of silently taking part of
//! the traffic (the kernel enforces it; there is no probe-then-bind race).
//!
//! Connections speak HTTP/1.1, or HTTP/2 over cleartext when the client opens with the
//! HTTP/2 preface (`curl --http2-prior-knowledge`). Each connection holds one descriptor;
//! the effective connection limit is capped to what the open-file limit allows
//! ([`crate::descriptors`]), and beyond it a client gets 503 with `Retry-After`.
//! State shared by all workers (the profile cache, the chunk sources, the metrics, the
//! mode) lives in [`Shared`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use allockit::{ChunkConfig, ChunkSource};
use hyper::StatusCode;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::cache::ProfileCache;
use crate::config::{Config, Mode};
use crate::heap::{Counted, HeapCounters};
use crate::jemalloc::{self, ArenaStats, CacheArena};
use crate::memory::{PoolCounters, Samplers, WorkerMemory, timer_overhead_ns};
use crate::metrics::{Metrics, Snapshot};
use crate::response;
use crate::workload::Limits;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A flag combination clap cannot check.
    #[error("{0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The chunk source could not reserve its regions.
    #[error("cannot reserve arena regions: {0}")]
    Chunks(#[from] allockit::ChunkError),
    /// jemalloc refused the cache arena.
    #[error(transparent)]
    Jemalloc(#[from] jemalloc::JemallocError),
    /// The cache could not reserve its index.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// A worker thread failed to start.
    #[error("cannot start a worker: {0}")]
    Worker(String),
}

/// State shared by every worker and the admin listener.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// Batch limits.
    pub limits: Limits,
    mode: AtomicU8,
    /// The profile cache.
    pub cache: ProfileCache,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// General-heap allocations made by request work.
    pub heap: HeapCounters,
    /// General-heap allocations made while hyper drives client connections.
    pub connection_heap: Arc<HeapCounters>,
    /// The effective connection limit: `--max-connections`, capped by the descriptors.
    pub connection_limit: usize,
    /// Where request arenas get their chunks.
    pub arena_source: Arc<ChunkSource>,
    /// Where response pools get their chunks.
    pub pool_source: Arc<ChunkSource>,
    pools: Mutex<Vec<Arc<PoolCounters>>>,
    connections: AtomicUsize,
    /// Open connections per worker, and a signal when any of them changes: a worker
    /// accepts only while it holds no more than one connection above the least loaded one.
    worker_load: Vec<AtomicUsize>,
    balance: tokio::sync::Notify,
    draining: AtomicBool,
}

impl Shared {
    /// The active mode.
    pub fn mode(&self) -> Mode {
        Mode::ALL[usize::from(self.mode.load(Ordering::Relaxed))]
    }

    /// Switches the mode for requests that start from now on.
    pub fn set_mode(&self, mode: Mode) {
        let index = Mode::ALL.iter().position(|m| *m == mode).expect("every mode is listed");
        self.mode.store(index as u8, Ordering::Relaxed);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// True if worker `index` may accept: it holds at most one connection more than the
    /// least loaded worker. All workers wait on one accept queue and are all woken by a new
    /// connection; without this, the first to wake takes a whole burst, and keep-alive
    /// clients then stay on one core.
    fn may_accept(&self, index: usize) -> bool {
        let least = self.worker_load.iter().map(|load| load.load(Ordering::Relaxed)).min().unwrap_or(0);
        self.worker_load[index].load(Ordering::Relaxed) <= least + 1
    }

    /// Reads every source and renders `/metrics`.
    pub fn render_metrics(&self) -> Vec<u8> {
        let mut snapshot = Snapshot { mode: Some(self.mode()), ..Snapshot::default() };
        match jemalloc::Stats::read() {
            Ok(stats) => snapshot.jemalloc = stats,
            Err(error) => tracing::warn!(%error, "jemalloc statistics unavailable"),
        }
        /// jemalloc's pseudo-index for all arenas merged (MALLCTL_ARENAS_ALL).
        const ALL_ARENAS: u32 = 4096;
        snapshot.cache_arena = ArenaStats::read(self.cache.arena().index()).unwrap_or_default();
        snapshot.all_arenas = ArenaStats::read(ALL_ARENAS).unwrap_or_default();
        snapshot.chunks = self.arena_source.stats();
        for pool in self.pools.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            snapshot.pool_live += pool.live.load(Ordering::Relaxed);
            snapshot.pool_free += pool.free.load(Ordering::Relaxed);
            snapshot.pool_allocations += pool.allocations.load(Ordering::Relaxed);
            snapshot.pool_frees += pool.frees.load(Ordering::Relaxed);
            snapshot.pool_exhausted += pool.exhausted.load(Ordering::Relaxed);
        }
        snapshot.cache = self.cache.stats();
        snapshot.heap_allocations = self.heap.allocations();
        snapshot.heap_bytes = self.heap.bytes();
        snapshot.connection_heap_allocations = self.connection_heap.allocations();
        snapshot.connection_heap_bytes = self.connection_heap.bytes();
        self.metrics.render(&snapshot)
    }

    fn count_connection_status(&self, status: StatusCode) {
        self.metrics.http_requests.with_label_values(&["connection", status.as_str()]).inc();
    }
}

/// One worker: shared state and its own request memory.
pub struct Worker {
    /// State shared with the other workers.
    pub shared: Arc<Shared>,
    /// This worker's arenas, pool and samplers.
    pub memory: WorkerMemory,
}

/// A running server.
pub struct ServerHandle {
    /// The main listener's address.
    pub addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The shared state (for tests and the binary).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Drains and stops: `/readyz` answers 503 `draining` at once while every connection
    /// is still served for `--drain-delay` (so load balancers take this instance out);
    /// then the listeners close, idle connections close, in-flight requests finish (up to
    /// `--shutdown-timeout`), and every thread is joined.
    pub fn shutdown(self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        let delay = self.shared.config.drain_delay;
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, "draining: /readyz answers 503 until the listeners close");
            std::thread::sleep(delay);
        }
        let _ = self.shutdown.send(true);
        self.join();
    }

    /// Waits until every thread has stopped.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Binds `addr` once, without `SO_REUSEPORT`: an address another process listens on is an
/// error (`EADDRINUSE`), never a shared port.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(bind_error)?;
    // SO_REUSEADDR only lets a restarted server bind past connections in TIME_WAIT; on
    // Linux it does not let two sockets listen on one address.
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    socket.listen(1024).map_err(bind_error)?;
    Ok(socket.into())
}

/// Starts the workers and the admin listener.
pub fn start(config: Config) -> Result<ServerHandle, StartError> {
    config.validate().map_err(StartError::Config)?;
    let workers = config.worker_count();
    let connection_limit =
        crate::descriptors::connection_limit(config.max_connections, workers).map_err(StartError::Config)?;
    let arena_source = ChunkSource::new(ChunkConfig {
        chunk_size: config.arena_chunk_bytes,
        region_size: config.arena_region_bytes,
        max_regions: config.arena_max_regions,
        retain_idle_bytes: config.arena_retain_idle_bytes,
        ..ChunkConfig::default()
    })?;
    let pool_source = ChunkSource::new(ChunkConfig {
        region_size: 64 * 1024 * 1024,
        max_regions: 4,
        retain_idle_bytes: 1024 * 1024,
        ..ChunkConfig::default()
    })?;
    let cache = ProfileCache::new(CacheArena::create()?, config.cache_entries, config.cache_bytes)?;
    let metrics = Metrics::new();
    let shared = Arc::new(Shared {
        limits: Limits::new(config.max_events),
        mode: AtomicU8::new(0),
        cache,
        metrics,
        heap: HeapCounters::default(),
        connection_heap: Arc::new(HeapCounters::default()),
        connection_limit,
        arena_source,
        pool_source,
        pools: Mutex::new(Vec::new()),
        connections: AtomicUsize::new(0),
        worker_load: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        balance: tokio::sync::Notify::new(),
        draining: AtomicBool::new(false),
        config,
    });
    shared.set_mode(shared.config.mode());

    let listen = shared.config.listen;
    let listener = bind(listen)?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        listeners.push(listener.try_clone().map_err(|source| StartError::Bind { addr, source })?);
    }
    listeners.push(listener);
    let admin_listener = bind(shared.config.admin_listen)?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr: shared.config.admin_listen, source })?;

    let (shutdown, _) = watch::channel(false);
    let overhead = timer_overhead_ns();
    let mut threads = Vec::with_capacity(workers + 1);
    for (index, listener) in listeners.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let stop = shutdown.subscribe();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || run_worker(index, listener, shared, stop, overhead))
            .map_err(|e| StartError::Worker(e.to_string()))?;
        threads.push(thread);
    }
    let admin_shared = Arc::clone(&shared);
    let stop = shutdown.subscribe();
    threads.push(
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || crate::admin::run(admin_listener, admin_addr, admin_shared, stop))
            .map_err(|e| StartError::Worker(e.to_string()))?,
    );
    tracing::info!(
        %addr,
        %admin_addr,
        workers,
        connection_limit,
        mode = shared.mode().as_str(),
        "allockit-server listening"
    );
    Ok(ServerHandle { addr, admin_addr, shared, shutdown, threads })
}

fn run_worker(
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    overhead_ns: u64,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return tracing::error!(%error, "cannot build a worker runtime"),
    };
    let samplers = Samplers::new(&shared.metrics, shared.config.latency_sample_every, overhead_ns);
    let memory = WorkerMemory::new(
        Arc::clone(&shared.arena_source),
        shared.config.arena_limit_bytes,
        Arc::clone(&shared.pool_source),
        shared.config.pool_max_chunks,
        samplers,
        Arc::clone(&shared.metrics),
    );
    let (memory, counters) = match memory {
        Ok(created) => created,
        Err(error) => return tracing::error!(%error, "cannot create the response pool"),
    };
    shared.pools.lock().unwrap_or_else(|p| p.into_inner()).push(counters);
    // The worker outlives every task of its LocalSet: tasks are dropped with `local`, and
    // this Rc (the last one) only after that, so the pool's blocks are all back first.
    let worker = Rc::new(Worker { shared, memory });
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, accept_loop(index, listener, Rc::clone(&worker), stop));
    drop(local);
    drop(runtime);
    drop(worker);
}

/// Largest request head (request line and headers) accepted; beyond, hyper answers 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Runs HTTP/2 stream tasks on the worker's own thread (the services are not `Send`),
/// counting their general-heap allocations as connection work.
#[derive(Clone, Debug)]
pub struct LocalExec {
    counters: Arc<HeapCounters>,
}

impl LocalExec {
    /// Stream tasks counted into `counters`.
    pub fn new(counters: Arc<HeapCounters>) -> Self {
        Self { counters }
    }
}

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(Counted::new(Some(Arc::clone(&self.counters)), future));
    }
}

/// The connection builders of one worker.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<LocalExec>,
}

impl Builders {
    fn new(shared: &Shared) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(shared.config.header_read_timeout)
            .max_header_size(MAX_HEADER_BYTES);
        let mut http2 = http2::Builder::new(LocalExec::new(Arc::clone(&shared.connection_heap)));
        http2.timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
        Self { http1, http2 }
    }
}

async fn accept_loop(
    index: usize,
    listener: std::net::TcpListener,
    worker: Rc<Worker>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => return tracing::error!(%error, "cannot register the listener"),
    };
    let shared = Arc::clone(&worker.shared);
    let builders = Rc::new(Builders::new(&shared));
    let graceful = GracefulShutdown::new();
    let connection_stop = stop.clone();
    loop {
        let rebalanced = shared.balance.notified();
        tokio::pin!(rebalanced);
        rebalanced.as_mut().enable();
        if !shared.may_accept(index) {
            tokio::select! {
                _ = rebalanced => continue,
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    serve(index, stream, &worker, &builders, graceful.watcher(), connection_stop.clone());
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(shared.config.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown timeout: closing connections with requests still in flight");
    }
}

/// Counts a client connection, in all and on its worker, while it lives.
struct ConnectionSlot {
    shared: Arc<Shared>,
    worker: usize,
}

impl ConnectionSlot {
    fn new(shared: &Arc<Shared>, worker: usize) -> Self {
        shared.worker_load[worker].fetch_add(1, Ordering::Relaxed);
        shared.balance.notify_waiters();
        Self { shared: Arc::clone(shared), worker }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        self.shared.worker_load[self.worker].fetch_sub(1, Ordering::Relaxed);
        self.shared.balance.notify_waiters();
    }
}

/// The first bytes of every HTTP/2 connection (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a new connection speaks, judged from its first bytes (peeked, not consumed).
enum Sniffed {
    Http1,
    Http2,
    /// The client closed before sending anything.
    Closed,
}

/// Waits for the first bytes and tells HTTP/2 prior knowledge from HTTP/1.
async fn sniff(stream: &TcpStream) -> io::Result<Sniffed> {
    let mut first = [0u8; HTTP2_PREFACE.len()];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Ok(Sniffed::Closed);
        }
        if first[..n] != HTTP2_PREFACE[..n] {
            return Ok(Sniffed::Http1);
        }
        if n == HTTP2_PREFACE.len() {
            return Ok(Sniffed::Http2);
        }
        // Part of the preface: peeking again returns at once, so wait for the rest.
        if n == seen {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        seen = n;
    }
}

fn serve(
    index: usize,
    stream: TcpStream,
    worker: &Rc<Worker>,
    builders: &Rc<Builders>,
    watcher: Watcher,
    mut stop: watch::Receiver<bool>,
) {
    let shared = &worker.shared;
    if shared.connections.fetch_add(1, Ordering::Relaxed) >= shared.connection_limit {
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        shared.count_connection_status(StatusCode::SERVICE_UNAVAILABLE);
        let answer = response::raw_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; try again later",
            &[("retry-after", "1")],
        );
        let _ = stream.try_write(&answer);
        return;
    }
    let slot = ConnectionSlot::new(shared, index);
    let _ = stream.set_nodelay(true);
    let worker = Rc::clone(worker);
    let builders = Rc::clone(builders);
    tokio::task::spawn_local(async move {
        let shared = Arc::clone(&slot.shared);
        let header_timeout = shared.config.header_read_timeout;
        let sniffed = tokio::select! {
            sniffed = tokio::time::timeout(header_timeout, sniff(&stream)) => sniffed,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        // Nothing arrived in time, or the client left: close without an answer.
        let Ok(Ok(protocol @ (Sniffed::Http1 | Sniffed::Http2))) = sniffed else { return };
        // One descriptor per connection: hyper reads and writes through `Tracked`, and this
        // task keeps the same stream to answer 408 after hyper gives up on a request whose
        // headers never completed (hyper closes without answering).
        let stream = Rc::new(RefCell::new(stream));
        let counters = Rc::new(IoCounters::default());
        let io = TokioIo::new(Tracked { stream: Rc::clone(&stream), counters: Rc::clone(&counters) });
        let service_worker = Rc::clone(&worker);
        let service = service_fn(move |request| {
            // Route handlers are not connection work: request work arms its own counters.
            Counted::new(None, crate::routes::handle(Rc::clone(&service_worker), request))
        });
        let connection: Pin<Box<dyn Future<Output = Result<(), hyper::Error>>>> = match protocol {
            Sniffed::Http2 => Box::pin(watcher.watch(builders.http2.serve_connection(io, service))),
            _ => Box::pin(watcher.watch(builders.http1.serve_connection(io, service))),
        };
        if let Err(error) = Counted::new(Some(Arc::clone(&shared.connection_heap)), connection).await {
            on_connection_error(&shared, &error, &counters, &stream.borrow());
        }
        drop(slot);
    });
}

fn on_connection_error(shared: &Shared, error: &hyper::Error, counters: &IoCounters, stream: &TcpStream) {
    if error.is_timeout() {
        // Idle keep-alive connections time out too; only a started request gets a 408.
        if counters.partial_request() {
            shared.count_connection_status(StatusCode::REQUEST_TIMEOUT);
            let answer =
                response::raw_error(StatusCode::REQUEST_TIMEOUT, "request headers not received in time", &[]);
            let _ = stream.try_write(&answer);
        }
    } else if error.is_parse_too_large() {
        shared.count_connection_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    } else if error.is_parse() {
        shared.count_connection_status(StatusCode::BAD_REQUEST);
    } else {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Bytes a connection has read, and how many it had read when it last wrote.
#[derive(Default)]
struct IoCounters {
    read: Cell<u64>,
    read_at_last_write: Cell<u64>,
}

impl IoCounters {
    /// True if bytes arrived since the last response: a request has started.
    fn partial_request(&self) -> bool {
        self.read.get() > self.read_at_last_write.get()
    }
}

/// A TCP stream that counts its traffic in [`IoCounters`]. The stream is shared with the
/// connection's task; each poll borrows it only for the call.
struct Tracked {
    stream: Rc<RefCell<TcpStream>>,
    counters: Rc<IoCounters>,
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut *this.stream.borrow_mut()).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        this.counters.read.set(this.counters.read.get() + read);
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut *this.stream.borrow_mut()).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.counters.read_at_last_write.set(this.counters.read.get());
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut *this.stream.borrow_mut()).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.counters.read_at_last_write.set(this.counters.read.get());
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.borrow().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream.borrow_mut()).poll_shutdown(cx)
    }
}
