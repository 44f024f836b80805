//! The main listener's routes: the workload, profile lookups, metrics and probes.

use core::mem::MaybeUninit;
use std::rc::Rc;
use std::time::Instant;

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::vec::Vec as ApiVec;
use allockit::Arena;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::cache::Storage;
use crate::config::Mode;
use crate::error::{Error, ErrorKind};
use crate::global_alloc::Armed;
use crate::json_out::JsonOut;
use crate::response::{self, Body, JSON, Payload};
use crate::response_pool::RESPONSE_BYTES;
use crate::sampling::Sampled;
use crate::state::Worker;
use crate::validate;
use crate::workload::{self, ProfileOutcome, Refusal};

/// The route label of a request (bounded: unknown paths share one label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/events`.
    Events,
    /// `GET /v1/users/{id}`.
    User,
    /// `GET /metrics`.
    Metrics,
    /// `GET /healthz`.
    Health,
    /// `GET /readyz`.
    Ready,
    /// `GET /`: the live page.
    Live,
    /// Any other path: a 404, all under one label.
    Unmatched,
}

impl Route {
    /// The `route` label of the HTTP metrics: the route's pattern, not the path, so user
    /// ids and unknown paths cannot grow the series without bound.
    pub fn label(self) -> &'static str {
        match self {
            Route::Events => "/v1/events",
            Route::User => "/v1/users/{id}",
            Route::Metrics => "/metrics",
            Route::Health => "/healthz",
            Route::Ready => "/readyz",
            Route::Live => "/",
            Route::Unmatched => "unmatched",
        }
    }

    /// The route of a path.
    pub fn of(path: &str) -> Route {
        match path {
            "/v1/events" => Route::Events,
            "/metrics" => Route::Metrics,
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/" => Route::Live,
            p if p.starts_with("/v1/users/") => Route::User,
            _ => Route::Unmatched,
        }
    }
}

/// Tracks a request in flight; a request dropped before it answered (the client went away)
/// is counted with status 499, as nginx does.
struct InFlight<'w> {
    worker: &'w Worker,
    route: Route,
    start: Instant,
    answered: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let metrics = &self.worker.shared.metrics;
        metrics.http_in_flight.dec();
        if !self.answered {
            metrics.http_requests.with_label_values(&[self.route.label(), "499"]).inc();
        }
        metrics
            .http_duration
            .with_label_values(&[self.route.label()])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// Handles one request on the main listener.
pub async fn handle(
    worker: Rc<Worker>,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let route = Route::of(request.uri().path());
    worker.shared.metrics.http_in_flight.inc();
    let mut in_flight = InFlight { worker: &worker, route, start: Instant::now(), answered: false };
    let method = request.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let response = match route {
        Route::Events if method == Method::POST => events(&worker, request).await,
        Route::Events => response::method_not_allowed("POST"),
        Route::User if get => user(&worker, &request.uri().path()["/v1/users/".len()..]),
        Route::Metrics if get => metrics(&worker),
        Route::Health if get => response::json(StatusCode::OK, &br#"{"status":"ok"}"#[..]),
        Route::Ready if get => ready(&worker),
        Route::Live if get => crate::live::page(),
        Route::User | Route::Metrics | Route::Health | Route::Ready | Route::Live => {
            response::method_not_allowed("GET, HEAD")
        }
        Route::Unmatched => response::error(
            StatusCode::NOT_FOUND,
            &format!("no route for {}", capped(request.uri().path(), ECHOED_PATH_BYTES)),
        ),
    };
    in_flight.answered = true;
    worker.shared.metrics.http_requests.with_label_values(&[route.label(), response.status().as_str()]).inc();
    Ok(response)
}

/// Most bytes of a request's path echoed in a 404 (the path may be up to 16 KiB long).
const ECHOED_PATH_BYTES: usize = 128;

/// The first `max` bytes of `text` (at a character boundary), with `…` if cut.
fn capped(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

fn ready(worker: &Worker) -> Response<Body> {
    if worker.shared.is_draining() {
        response::json(StatusCode::SERVICE_UNAVAILABLE, &br#"{"status":"draining"}"#[..])
    } else {
        response::json(StatusCode::OK, &br#"{"status":"ready"}"#[..])
    }
}

fn metrics(worker: &Worker) -> Response<Body> {
    let text = worker.shared.render_metrics();
    response::with_payload(
        StatusCode::OK,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        Payload::Bytes(Bytes::from(text)),
    )
}

/// The error answer of a request. A 408 or 413 leaves the body unread, so it closes the
/// connection.
fn error_answer(worker: &Worker, error: &Error) -> Response<Body> {
    let status = error.status();
    let response = error_response(worker, status, |out| out.display(error));
    if matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE) {
        response::closing(response)
    } else {
        response
    }
}

/// `{"error": message, "status": code}`, rendered like any other answer of request work:
/// into the response pool (or, in heap mode, a heap block), never through a `String`.
fn error_response(
    worker: &Worker,
    status: StatusCode,
    message: impl FnOnce(&mut JsonOut<'_>) -> bool,
) -> Response<Body> {
    let rendered = render(worker, |out| {
        out.raw(b"{")
            && out.key("error")
            && message(out)
            && out.raw(b",")
            && out.key("status")
            && out.number(u64::from(status.as_u16()))
            && out.raw(b"}")
    });
    match rendered {
        Ok(payload) => response::with_payload(status, JSON, payload),
        // No response buffer left (or the message does not fit): that is the answer.
        Err(error) => response::error(error.status(), &error.to_string()),
    }
}

async fn events(worker: &Worker, request: Request<Incoming>) -> Response<Body> {
    let shared = &worker.shared;
    let max = shared.config.max_body_bytes;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return error_answer(worker, &Error::new(ErrorKind::BodyTooLarge(max)));
    }
    let body = request.into_body();
    let result = match shared.mode() {
        Mode::Heap => {
            let alloc = Sampled::new(Global, &worker.memory.samplers.heap);
            match read_body(worker, body, declared, alloc).await {
                Ok(bytes) => summarize(worker, &bytes, alloc, None),
                Err(error) => Err(error),
            }
        }
        mode @ (Mode::Segregated | Mode::Broken) => {
            let lease = worker.memory.lease();
            let arena = lease.arena();
            let alloc = Sampled::new(arena, &worker.memory.samplers.arena);
            let escape_into = (mode == Mode::Broken).then_some(arena);
            let result = match read_body(worker, body, declared, alloc).await {
                Ok(bytes) => summarize(worker, &bytes, alloc, escape_into),
                Err(error) => Err(error),
            };
            // Out of request memory: the request's own limit (413), or the chunk source
            // is exhausted for everyone (503).
            result.map_err(|error| match error.kind() {
                ErrorKind::Refused(Refusal::OutOfMemory) if !lease.hit_limit() => {
                    Error::new(ErrorKind::RequestMemoryExhausted)
                }
                _ => error,
            })
        }
    };
    // The response message is built outside the armed section: its header map is hyper's
    // framing, not request work.
    match result {
        Ok(payload) => response::with_payload(StatusCode::OK, JSON, payload),
        Err(error) => error_answer(worker, &error),
    }
}

/// Reads the body into request memory from `alloc`. Memory follows the bytes that arrived,
/// not the bytes announced: the buffer grows (geometrically, never past the declared
/// length) only as frames come in, and the whole body must arrive within
/// `--body-read-timeout`.
async fn read_body<A: Allocator + Copy>(
    worker: &Worker,
    mut body: Incoming,
    declared: Option<usize>,
    alloc: A,
) -> Result<ApiVec<u8, A>, Error> {
    let shared = &worker.shared;
    let max = shared.config.max_body_bytes;
    let mut bytes: ApiVec<u8, A> = ApiVec::new_in(alloc);
    let timeout = shared.config.body_read_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Ok(frame) = tokio::time::timeout_at(deadline, body.frame()).await else {
            return Err(Error::new(ErrorKind::BodyTimeout(timeout)));
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|error| {
            if client_went_away(&error) {
                // The client went away mid-body; nobody will read this answer.
                Error::new(ErrorKind::ClientGone)
            } else {
                Error::new(ErrorKind::BodyUnreadable)
            }
        })?;
        let Ok(data) = frame.into_data() else { continue };
        let needed = bytes.len() + data.len();
        if needed > max {
            return Err(Error::new(ErrorKind::BodyTooLarge(max)));
        }
        if needed > bytes.capacity() {
            let grown = needed.max(bytes.capacity() * 2).min(max).min(declared.unwrap_or(max).max(needed));
            let _armed = Armed::new(&shared.heap);
            bytes
                .try_reserve_exact(grown - bytes.len())
                .map_err(|_| Error::new(ErrorKind::Refused(Refusal::OutOfMemory)))?;
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// The workload on one allocator, once the body is in: check, parse, aggregate, consult
/// the cache, render. `escape_into` is the request arena in broken mode (new profiles
/// escape into it).
fn summarize<A: Allocator + Copy>(
    worker: &Worker,
    bytes: &[u8],
    alloc: A,
    escape_into: Option<&Arena>,
) -> Result<Payload, Error> {
    let shared = &worker.shared;
    let _armed = Armed::new(&shared.heap);
    // Bad input is found by a pass that allocates nothing on the general heap; serde_json
    // (which boxes its errors there) then parses only well-formed batches.
    validate::check(bytes, alloc, &shared.limits).map_err(Error::invalid)?;
    let batch = workload::parse(bytes, alloc, &shared.limits).map_err(|(refusal, error)| match refusal {
        Some(refusal) => Error::new(ErrorKind::Refused(refusal)),
        None => Error::json(error),
    })?;
    let summary =
        workload::aggregate(&batch, alloc).map_err(|refusal| Error::new(ErrorKind::Refused(refusal)))?;
    let user = batch.user.as_str();
    let events = summary.events as u64;
    let outcome = if shared.cache.touch(user, events) {
        ProfileOutcome::Cached
    } else {
        let storage = new_profile(worker, user, &summary, escape_into)?;
        shared.cache.insert(user, storage, events);
        ProfileOutcome::Created
    };
    let mode = shared.mode().as_str();
    render(worker, |out| workload::render_summary(out, user, &summary, outcome, mode))
}

/// True if a body read failed because the client closed or reset the connection.
fn client_went_away(error: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if error.is_incomplete_message() || error.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        source = cause.source();
    }
    false
}

/// Renders a response into the pool (or, in heap mode, a heap block).
fn render(worker: &Worker, write: impl FnOnce(&mut JsonOut<'_>) -> bool) -> Result<Payload, Error> {
    let too_big = || Error::new(ErrorKind::DoesNotFit("the response"));
    let payload = if worker.shared.mode() == Mode::Heap {
        let mut buffer =
            worker.memory.samplers.heap.measure(|| Box::<[u8]>::new_uninit_slice(RESPONSE_BYTES));
        let mut out = JsonOut::new(&mut buffer);
        if !write(&mut out) {
            return Err(too_big());
        }
        let len = out.len();
        Payload::Heap { buffer, len, pos: 0 }
    } else {
        let mut buffer = worker.memory.response_buffer().map_err(|_| {
            worker.memory.publish_pool();
            Error::new(ErrorKind::PoolExhausted)
        })?;
        let mut out = JsonOut::new(buffer.block_mut());
        if !write(&mut out) {
            return Err(too_big());
        }
        let len = out.len();
        Payload::Pooled { buffer, len, pos: 0 }
    };
    Ok(payload)
}

/// Bytes of the stack buffer a new profile is rendered into.
const PROFILE_BYTES: usize = 2048;

/// Creates the long-lived profile of a new user: on the cache arena, or (broken mode) as
/// an escaping allocation in the request's arena.
fn new_profile<A: Allocator>(
    worker: &Worker,
    user: &str,
    summary: &workload::Summary<'_, A>,
    escape_into: Option<&Arena>,
) -> Result<Storage, Error> {
    let mut buffer = [MaybeUninit::<u8>::uninit(); PROFILE_BYTES];
    let mut out = JsonOut::new(&mut buffer);
    let created_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let top = summary.groups.first();
    let written = out.raw(user.as_bytes())
        && out.raw(b"{")
        && out.key("user")
        && out.string(user)
        && out.raw(b",")
        && out.key("created_unix_ms")
        && out.number(created_ms)
        && out.raw(b",")
        && out.key("first_batch_events")
        && out.number(summary.events as u64)
        && out.raw(b",")
        && out.key("top_kind")
        && out.string(top.map_or("", |g| g.kind))
        && out.raw(b",")
        && out.key("top_path")
        && out.string(top.map_or("", |g| g.path))
        && out.raw(b"}");
    if !written {
        return Err(Error::new(ErrorKind::DoesNotFit("the profile")));
    }
    let bytes = out.as_bytes();
    let samplers = &worker.memory.samplers;
    match escape_into {
        Some(arena) => samplers
            .arena
            .measure(|| arena.alloc_escaping_slice_copy(bytes))
            .map(Storage::Escaped)
            .map_err(|_| Error::new(ErrorKind::Refused(Refusal::OutOfMemory))),
        None => {
            let mut copy = ApiVec::new_in(worker.shared.cache.arena());
            samplers
                .cache
                .measure(|| copy.try_reserve_exact(bytes.len()))
                .map_err(|_| Error::new(ErrorKind::CacheArenaFull))?;
            copy.extend_from_slice(bytes);
            Ok(Storage::Segregated(copy.into_boxed_slice()))
        }
    }
}

/// `GET /v1/users/{id}`: the id is one path segment, percent-decoded (`jean%20luc`,
/// `team%2Fada`).
fn user(worker: &Worker, segment: &str) -> Response<Body> {
    if segment.is_empty() || segment.contains('/') {
        return response::error(StatusCode::NOT_FOUND, "expected /v1/users/{id}");
    }
    let Ok(id) = percent_encoding::percent_decode_str(segment).decode_utf8() else {
        return response::error(StatusCode::BAD_REQUEST, "the user id is not UTF-8 once percent-decoded");
    };
    let id = id.as_ref();
    let found = worker.shared.cache.get(id, |view| {
        view.map(|view| {
            render(worker, |out| {
                out.raw(b"{")
                    && out.key("user")
                    && out.string(id)
                    && out.raw(b",")
                    && out.key("requests")
                    && out.number(view.requests)
                    && out.raw(b",")
                    && out.key("events")
                    && out.number(view.events)
                    && out.raw(b",")
                    && out.key("profile")
                    && out.raw(view.profile)
                    && out.raw(b"}")
            })
        })
    });
    match found {
        Some(Ok(payload)) => response::with_payload(StatusCode::OK, JSON, payload),
        Some(Err(error)) => error_answer(worker, &error),
        None => error_response(worker, StatusCode::NOT_FOUND, |out| {
            out.display(format_args!("no profile for user {id:?}"))
        }),
    }
}
