//! The admin listener: mode toggle, cache clear, heap profiling. Loopback by default; with
//! `--admin-token`, every request must carry `Authorization: Bearer <token>`.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /admin/mode` | the active mode |
//! | `POST /admin/mode?mode=segregated\|broken\|heap` | switches the mode for new requests |
//! | `POST /admin/cache/clear` | drops every cached profile (pinned chunks come back) |
//! | `POST /admin/profiling?active=true\|false` | turns jemalloc heap-profile sampling on or off |
//! | `GET /admin/heap-profile` | a jemalloc heap profile (`prof.dump`, jeprof format) |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Mode;
use crate::jemalloc;
use crate::response::{self, Body, Payload};
use crate::server::Shared;

/// Serves the admin listener until `stop` turns true.
pub fn run(listener: std::net::TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return tracing::error!(%error, "cannot build the admin runtime"),
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => return tracing::error!(%error, "cannot register the admin listener"),
        };
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(shared.config.header_read_timeout);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, std::convert::Infallible>(handle(&shared, request).await) }
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::task::spawn_local(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "admin connection ended with an error");
                        }
                    });
                }
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
    });
}

fn authorized(shared: &Shared, request: &Request<Incoming>) -> bool {
    let Some(token) = shared.config.admin_token.as_deref() else { return true };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_param<'r>(request: &'r Request<Incoming>, name: &str) -> Option<&'r str> {
    request.uri().query()?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    if !authorized(shared, &request) {
        let mut response =
            response::error(StatusCode::UNAUTHORIZED, "admin routes need Authorization: Bearer <token>");
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/admin/mode") => mode_body(shared),
        (Method::POST | Method::PUT, "/admin/mode") => set_mode(shared, request).await,
        (_, "/admin/mode") => response::method_not_allowed("GET, POST, PUT"),
        (Method::POST, "/admin/cache/clear") => {
            let cleared = shared.cache.clear();
            tracing::info!(cleared, "profile cache cleared");
            response::json(StatusCode::OK, format!(r#"{{"cleared":{cleared}}}"#))
        }
        (_, "/admin/cache/clear") => response::method_not_allowed("POST"),
        (Method::POST, "/admin/profiling") => profiling(&request),
        (_, "/admin/profiling") => response::method_not_allowed("POST"),
        (Method::GET, "/admin/heap-profile") => heap_profile(),
        (_, "/admin/heap-profile") => response::method_not_allowed("GET"),
        (_, other) => response::error(StatusCode::NOT_FOUND, &format!("no admin route {other}")),
    }
}

fn mode_body(shared: &Shared) -> Response<Body> {
    response::json(StatusCode::OK, format!(r#"{{"mode":"{}"}}"#, shared.mode().as_str()))
}

/// Accepts the mode as `?mode=...` or as a JSON body `{"mode": "..."}`.
async fn set_mode(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let from_query = query_param(&request, "mode").map(str::to_string);
    let requested = match from_query {
        Some(mode) => mode,
        None => {
            let body = match request.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return response::error(StatusCode::BAD_REQUEST, "the request body could not be read");
                }
            };
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(value) => value.get("mode").and_then(|m| m.as_str()).unwrap_or_default().to_string(),
                Err(_) => String::new(),
            }
        }
    };
    match Mode::parse(&requested) {
        Some(mode) => {
            let previous = shared.mode();
            shared.set_mode(mode);
            tracing::info!(from = previous.as_str(), to = mode.as_str(), "lifetime mode changed");
            mode_body(shared)
        }
        None => response::error(
            StatusCode::BAD_REQUEST,
            &format!("unknown mode {requested:?}; use mode=segregated, broken or heap"),
        ),
    }
}

fn profiling(request: &Request<Incoming>) -> Response<Body> {
    let active = match query_param(request, "active") {
        Some("true") => true,
        Some("false") => false,
        _ => return response::error(StatusCode::BAD_REQUEST, "use ?active=true or ?active=false"),
    };
    match jemalloc::set_profiling(active) {
        Ok(()) => response::json(StatusCode::OK, format!(r#"{{"active":{active}}}"#)),
        Err(error) => response::error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn heap_profile() -> Response<Body> {
    static DUMPS: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "allockit-server-{}-{}.heap",
        std::process::id(),
        DUMPS.fetch_add(1, Ordering::Relaxed)
    ));
    let dumped = jemalloc::dump_profile(&path).map_err(|e| e.to_string()).and_then(|()| {
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()));
        let _ = std::fs::remove_file(&path);
        bytes
    });
    match dumped {
        Ok(bytes) => response::with_payload(
            StatusCode::OK,
            HeaderValue::from_static("application/octet-stream"),
            Payload::Bytes(Bytes::from(bytes)),
        ),
        Err(message) => response::error(StatusCode::INTERNAL_SERVER_ERROR, &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_the_whole_token() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3creT", b"s3cret"));
    }
}
