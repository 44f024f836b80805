//! loadgen's own Prometheus metrics (`--metrics-addr`), under the DESIGN.md names, so a
//! dashboard can put the client's view beside the server's:
//!
//! * `loadgen_requests_total{outcome}`: finished requests by outcome (`ok`, `http_error`,
//!   `connect_error`, `io_error`, `timeout`) and sends skipped at `--max-in-flight`
//!   (`skipped`);
//! * `loadgen_latency_seconds`: the coordinated-omission-corrected latency of every
//!   response (intended send time to response end);
//! * `loadgen_target_rps`: the scheduled rate;
//! * `loadgen_in_flight_requests`: requests sent and awaiting a response;
//! * the `process_*` collector of the `prometheus` crate (the generator's own CPU and RSS).
//!
//! Observing costs a few atomic increments per request. The exposition server answers
//! `GET /metrics` and nothing else (404), one task per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use allockit_probe::metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::recorder::{Failure, Outcome};

/// Outcome label values, all exported from the start (at zero).
pub const OUTCOMES: [&str; 6] = ["ok", "http_error", "connect_error", "io_error", "timeout", "skipped"];

/// The generator's metrics and their registry.
#[derive(Debug, Clone)]
pub struct OwnMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: Histogram,
    target_rps: Gauge,
    in_flight: IntGauge,
}

impl OwnMetrics {
    /// Creates and registers every metric, the process collector included.
    pub fn new() -> Result<Self, Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                metrics::LOADGEN_REQUESTS_TOTAL,
                "Requests finished by loadgen, by outcome; skipped sends included.",
            ),
            &["outcome"],
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                metrics::LOADGEN_LATENCY_SECONDS,
                "Latency from the intended send time to the end of the response (coordinated-omission corrected).",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let target_rps =
            Gauge::new(metrics::LOADGEN_TARGET_RPS, "The request rate loadgen schedules, per second.")?;
        let in_flight =
            IntGauge::new(metrics::LOADGEN_IN_FLIGHT_REQUESTS, "Requests sent and awaiting a response.")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(target_rps.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        for outcome in OUTCOMES {
            requests.with_label_values(&[outcome]);
        }
        Ok(Self { registry, requests, latency, target_rps, in_flight })
    }

    /// Counts one finished request and, for a response, its corrected latency.
    pub fn observe(&self, outcome: Outcome, corrected: Duration) {
        let label = match outcome {
            Outcome::Response(status) if (200..300).contains(&status) => "ok",
            Outcome::Response(_) => "http_error",
            Outcome::Failed(Failure::Connect) => "connect_error",
            Outcome::Failed(Failure::Io) => "io_error",
            Outcome::Failed(Failure::Timeout) => "timeout",
        };
        self.requests.with_label_values(&[label]).inc();
        if let Outcome::Response(_) = outcome {
            self.latency.observe(corrected.as_secs_f64());
        }
    }

    /// Counts sends skipped at the in-flight limit.
    pub fn add_skipped(&self, count: u64) {
        self.requests.with_label_values(&["skipped"]).inc_by(count);
    }

    /// Sets the scheduled rate.
    pub fn set_target_rps(&self, rps: f64) {
        self.target_rps.set(rps);
    }

    /// Sets the number of requests awaiting a response.
    pub fn set_in_flight(&self, requests: u64) {
        self.in_flight.set(i64::try_from(requests).unwrap_or(i64::MAX));
    }

    /// The exposition in the Prometheus text format.
    pub fn render(&self) -> Result<String, Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// Serves `GET /metrics` on `addr` until the returned task is aborted; returns the bound
/// address (useful with port 0).
pub async fn serve(
    metrics: Arc<OwnMetrics>,
    addr: SocketAddr,
) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let listener = TcpListener::bind(addr).await.map_err(|cause| Error::Bind { addr, cause })?;
    let bound = listener.local_addr().map_err(|cause| Error::Bind { addr, cause })?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(Arc::clone(&metrics), request));
                // A scraper that goes away mid-response is not an error of the run.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

async fn answer(
    metrics: Arc<OwnMetrics>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) =
        if request.method() == Method::GET && request.uri().path() == "/metrics" {
            match metrics.render() {
                Ok(text) => (StatusCode::OK, prometheus::TEXT_FORMAT, text),
                Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", error.to_string()),
            }
        } else {
            (StatusCode::NOT_FOUND, "text/plain", "only GET /metrics is served here\n".to_owned())
        };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    Ok(response)
}
