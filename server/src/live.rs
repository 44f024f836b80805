//! The built-in live page at `/`: plain HTML and JavaScript served from the binary (no
//! CDN, no build step). It samples the server's own `/metrics` every second and charts
//! RSS, jemalloc resident and allocated bytes, arena committed bytes, chunks by state
//! (pinned among them) and cache bytes, with the current lifetime mode, so a user without
//! Docker and Grafana sees the picture while loadgen runs. The x axis is time, labelled
//! back from the newest sample ("-1m", "now"), over the samples taken so far up to the last
//! five minutes, so the lines fill the chart from the first minute on. For tests, each
//! chart records its state in the DOM: `data-points`, `data-time-labels` on the canvas and
//! `data-rows` (how many rows its legend takes) on the legend.

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use crate::response::{self, Body, Payload};

/// The live page's HTML, compiled in: it polls `/metrics` from the browser and draws the
/// memory series, so it needs no server-side state.
pub const PAGE: &str = include_str!("live.html");

/// `GET /`.
pub fn page() -> Response<Body> {
    response::with_payload(
        StatusCode::OK,
        HeaderValue::from_static("text/html; charset=utf-8"),
        Payload::Bytes(Bytes::from_static(PAGE.as_bytes())),
    )
}
