//! One client connection: protocol detection, hyper's HTTP/1.1 or HTTP/2 server on it, the
//! stream wrapper that tells a started request from an idle connection, and the answers
//! written outside hyper (408 after a header timeout).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use hyper::StatusCode;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::global_alloc::{Counted, HeapCounters};
use crate::response;
use crate::state::{Shared, Worker};

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
pub(crate) struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<LocalExec>,
}

impl Builders {
    pub(crate) fn new(shared: &Shared) -> Self {
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

pub(crate) fn serve(
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
