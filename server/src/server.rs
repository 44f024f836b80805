//! Start-up, the thread-per-core workers, connections, and graceful shutdown.
//!
//! Each worker is one OS thread with a current-thread tokio runtime. The address is bound
//! **once**, without `SO_REUSEPORT`, and every worker accepts on its own duplicate of that
//! one listening socket (`try_clone`, a `dup`): the kernel keeps one accept queue and wakes
//! every worker for a new connection; a worker accepts only while it holds at most one
//! connection more than the least loaded one (`Shared::may_accept`), so bursts spread over
//! the cores. A request never changes thread, so per-worker arenas and pools need no locks. Because nothing sets `SO_REUSEPORT`, a second process
//! started on the same address fails with `EADDRINUSE` instead of silently taking part of
//! the traffic (the kernel enforces it; there is no probe-then-bind race).
//!
//! Connections speak HTTP/1.1, or HTTP/2 over cleartext when the client opens with the
//! HTTP/2 preface (`curl --http2-prior-knowledge`). Each connection holds one descriptor;
//! the effective connection limit is capped to what the open-file limit allows
//! ([`crate::descriptors`]), and beyond it a client gets 503 with `Retry-After`.
//! State shared by all workers (the profile cache, the chunk sources, the metrics, the
//! mode) lives in [`crate::state`]; each connection's life in [`crate::conn`]. This module
//! keeps start-up and the accept loops.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use allockit::{ChunkConfig, ChunkSource};
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::ProfileCache;
use crate::cache_region::CacheRegions;
use crate::config::Config;
use crate::conn::{Builders, serve};
use crate::error::{Error, ErrorKind};
use crate::global_alloc::HeapCounters;
use crate::jemalloc::CacheArena;
use crate::metrics::Metrics;
use crate::sampling::{Samplers, timer_overhead_ns};
use crate::state::{Shared, Worker};
use crate::worker_memory::WorkerMemory;
use crate::workload::Limits;

/// A running server.
#[derive(Debug)]
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
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, Error> {
    let bind_error = |source| Error::bind(addr, source);
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
pub fn start(config: Config) -> Result<ServerHandle, Error> {
    config.validate().map_err(|message| Error::new(ErrorKind::Config(message)))?;
    let workers = config.worker_count();
    let connection_limit = crate::descriptors::connection_limit(config.max_connections, workers)
        .map_err(|message| Error::new(ErrorKind::Config(message)))?;
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
    let cache_regions = CacheRegions::reserve(config.cache_region_bytes)?;
    let cache =
        ProfileCache::new(CacheArena::create_on(cache_regions)?, config.cache_entries, config.cache_bytes)?;
    let metrics = Metrics::new();
    let shared = Arc::new(Shared {
        limits: Limits::new(config.max_events),
        mode: AtomicU8::new(0),
        cache,
        cache_regions,
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
    let addr = listener.local_addr().map_err(|source| Error::bind(listen, source))?;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        listeners.push(listener.try_clone().map_err(|source| Error::bind(addr, source))?);
    }
    listeners.push(listener);
    let admin_listener = bind(shared.config.admin_listen)?;
    let admin_addr =
        admin_listener.local_addr().map_err(|source| Error::bind(shared.config.admin_listen, source))?;

    let (shutdown, _) = watch::channel(false);
    let overhead = timer_overhead_ns();
    let mut threads = Vec::with_capacity(workers + 1);
    for (index, listener) in listeners.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let stop = shutdown.subscribe();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || run_worker(index, listener, shared, stop, overhead))
            .map_err(Error::worker)?;
        threads.push(thread);
    }
    let admin_shared = Arc::clone(&shared);
    let stop = shutdown.subscribe();
    threads.push(
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || crate::admin::run(admin_listener, admin_addr, admin_shared, stop))
            .map_err(Error::worker)?,
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
                    tokio::time::sleep(Duration::from_millis(10)).await;
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
