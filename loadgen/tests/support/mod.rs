//! An in-process HTTP server for loadgen's tests: counts every request it receives, and
//! answers after a configurable delay, with a configurable status, or after a server-wide
//! stall, so that the generator's numbers can be checked against what really happened.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use loadgen::http::Target;
use loadgen::run::{RequestBody, RunConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the server does with each request (numbered from 1 in arrival order).
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answers 200 at once.
    Immediate,
    /// Answers 200 after this delay.
    Delay(Duration),
    /// When request number `at` arrives, the whole server stalls for `stall`: that request
    /// and every request arriving during the stall are answered when it ends.
    StallOnce { at: u64, stall: Duration },
    /// Answers with the status this function gives for the request number.
    Status(fn(u64) -> u16),
    /// Answers 200 with `Connection: close`, so every connection carries one request.
    CloseEach,
    /// Answers 200 to the first `after` requests, then behaves like a killed server: later
    /// requests lose their connection without a response, and new connections are closed
    /// as soon as they are accepted.
    VanishAfter(u64),
}

/// A running test server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests received on the load path (not `/metrics`).
    pub received: Arc<AtomicU64>,
    /// Arrival times of the requests on the load path.
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts a server on an ephemeral loopback port. `metrics` is served on `GET /metrics`
    /// when given; otherwise `/metrics` is a 404 like any unknown path.
    pub async fn start(behaviour: Behaviour, metrics: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stall_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let state = (Arc::clone(&received), Arc::clone(&arrivals), stall_until);
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                if let Behaviour::VanishAfter(after) = behaviour
                    && state.0.load(Ordering::SeqCst) >= after
                {
                    continue;
                }
                stream.set_nodelay(true).unwrap();
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (received, arrivals, stall_until) = state.clone();
                        answer(request, behaviour, metrics, received, arrivals, stall_until)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, received, arrivals, task }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far on the load path.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    behaviour: Behaviour,
    metrics: Option<&'static str>,
    received: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stall_until: Arc<Mutex<Option<Instant>>>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if request.uri().path() == "/metrics" {
        return Ok(match metrics {
            Some(text) => Response::new(Full::new(Bytes::from_static(text.as_bytes()))),
            None => respond(404),
        });
    }
    let arrived = Instant::now();
    let number = received.fetch_add(1, Ordering::SeqCst) + 1;
    arrivals.lock().unwrap().push(arrived);
    let _ = request.into_body().collect().await;
    let status = match behaviour {
        Behaviour::Immediate => 200,
        Behaviour::Delay(delay) => {
            tokio::time::sleep(delay).await;
            200
        }
        Behaviour::StallOnce { at, stall } => {
            let until = {
                let mut stall_until = stall_until.lock().unwrap();
                if number == at {
                    *stall_until = Some(arrived + stall);
                }
                *stall_until
            };
            if let Some(until) = until.filter(|until| *until > arrived) {
                tokio::time::sleep_until(until.into()).await;
            }
            200
        }
        Behaviour::Status(status_of) => status_of(number),
        Behaviour::VanishAfter(after) if number > after => {
            // An error from the service makes hyper drop the connection unanswered.
            return Err(std::io::Error::other("the server is gone"));
        }
        Behaviour::VanishAfter(_) => 200,
        Behaviour::CloseEach => {
            let mut response = respond(200);
            response.headers_mut().insert(hyper::header::CONNECTION, "close".parse().unwrap());
            return Ok(response);
        }
    };
    Ok(respond(status))
}

fn respond(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

/// A run against `server` at `rps` for `duration`: POSTs of the default workload to
/// `/v1/events`, no warm-up, no scraping, generous timeout.
pub fn config(server: &TestServer, rps: f64, duration: Duration, connections: usize) -> RunConfig {
    let base = Target::parse("URL", &server.url()).unwrap();
    RunConfig {
        label: String::new(),
        target: base.with_path("/v1/events"),
        method: hyper::Method::POST,
        body: RequestBody::Workload(loadgen::workload::WorkloadSpec::default()),
        rps,
        warmup: Duration::ZERO,
        duration,
        connections,
        max_in_flight: None,
        timeout: Duration::from_secs(10),
        drain: Duration::from_secs(10),
        metrics_url: None,
        client: loadgen::run::Client::Lean,
    }
}

/// A fresh, empty scratch directory under the system temp dir, unique to this test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("loadgen-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}
