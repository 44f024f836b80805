//! The admin listener: mode toggle, cache clear, heap profiling. Loopback by default; with
//! `--admin-token`, every request must carry `Authorization: Bearer <token>` (compared in
//! constant time).
//!
//! A browser is a client on loopback too, so a web page could reach these routes: a
//! cross-origin `fetch(..., {method: "POST", mode: "no-cors"})` needs no CORS approval to
//! *send*. So the listener refuses, before any route runs:
//! * a request whose `Origin` is not the listener's own (403): every cross-origin fetch
//!   carries one, and so does `Origin: null` from sandboxed pages;
//! * without a token, a `Host` that is neither an IP literal nor `localhost` (421): a DNS
//!   rebinding page reaches 127.0.0.1 under its own name, and its requests are then
//!   "same-origin" for the browser. (With a token the token is the defence.)
//!
//! Command-line clients (`curl -X POST`) send no `Origin` and an IP or `localhost` `Host`,
//! and keep working.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /admin/mode` | the active mode |
//! | `POST /admin/mode?mode=segregated\|broken\|heap` | switches the mode for new requests |
//! | `POST /admin/cache/clear` | drops every cached profile (pinned chunks come back) |
//! | `POST /admin/profiling?active=true\|false` | turns jemalloc heap-profile sampling on or off |
//! | `GET /admin/heap-profile` | a jemalloc heap profile (`prof.dump`, jeprof format) |

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue, ORIGIN, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use subtle::ConstantTimeEq;

use crate::config::Mode;
use crate::descriptors::ADMIN_CONNECTIONS;
use crate::jemalloc;
use crate::response::{self, Body, Payload};
use crate::state::Shared;

/// Serves the admin listener (bound to `own`) until `stop` turns true.
pub fn run(
    listener: std::net::TcpListener,
    own: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
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
        let open = Rc::new(Cell::new(0usize));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    // Admin connections share the descriptors' headroom: bounded too.
                    if open.get() >= ADMIN_CONNECTIONS {
                        continue;
                    }
                    open.set(open.get() + 1);
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, std::convert::Infallible>(handle(&shared, own, request).await) }
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let open = Rc::clone(&open);
                    tokio::task::spawn_local(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "admin connection ended with an error");
                        }
                        open.set(open.get() - 1);
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
    presented.is_some_and(|p| tokens_match(p.as_bytes(), token.as_bytes()))
}

/// Compares in constant time (`subtle`), so the time taken does not reveal a matching prefix.
fn tokens_match(presented: &[u8], token: &[u8]) -> bool {
    presented.ct_eq(token).into()
}

/// True if `host` (a `Host` header value) names this machine the way only a local client
/// would: an IP literal or `localhost`, optionally with the listener's port.
fn is_local_host(host: &str, own: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && (name.starts_with('[') || !name.contains(':')) => {
            (name, Some(port))
        }
        _ => (host, None),
    };
    if port.is_some_and(|p| p.parse::<u16>() != Ok(own.port())) {
        return false;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok()
}

/// Refuses browser requests from other origins and rebound host names (see the module doc).
fn refuse_foreign(shared: &Shared, own: SocketAddr, request: &Request<Incoming>) -> Option<Response<Body>> {
    let header = |name| request.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let host = header(HOST);
    if shared.config.admin_token.is_none() && !host.is_some_and(|h| is_local_host(h, own)) {
        return Some(response::error(
            StatusCode::MISDIRECTED_REQUEST,
            "the admin listener answers only to an IP address or localhost in Host (DNS rebinding)",
        ));
    }
    if let Some(origin) = header(ORIGIN) {
        let same_origin =
            host.is_some_and(|h| origin.strip_prefix("http://").is_some_and(|o| o.eq_ignore_ascii_case(h)));
        if !same_origin {
            return Some(response::error(
                StatusCode::FORBIDDEN,
                "cross-origin requests to the admin listener are refused (the origin is not this listener's)",
            ));
        }
    }
    None
}

/// The first value of query parameter `name`, form-decoded (`mode=bro%6Ben`).
fn query_param(request: &Request<Incoming>, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

async fn handle(shared: &Shared, own: SocketAddr, request: Request<Incoming>) -> Response<Body> {
    if let Some(refusal) = refuse_foreign(shared, own, &request) {
        return refusal;
    }
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
    let from_query = query_param(&request, "mode");
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
    let active = match query_param(request, "active").as_deref() {
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
        assert!(tokens_match(b"s3cret", b"s3cret"));
        assert!(!tokens_match(b"s3cre", b"s3cret"));
        assert!(!tokens_match(b"s3creT", b"s3cret"));
    }

    #[test]
    fn local_hosts_are_ip_literals_or_localhost_on_the_listeners_port() {
        let own: SocketAddr = "127.0.0.1:9091".parse().unwrap();
        for host in [
            "127.0.0.1:9091",
            "127.0.0.1",
            "localhost:9091",
            "LOCALHOST",
            "[::1]:9091",
            "[::1]",
            "10.0.0.5:9091",
        ] {
            assert!(is_local_host(host, own), "{host}");
        }
        for host in [
            "evil.example:9091",
            "evil.example",
            "127.0.0.1:80",
            "localhost:9092",
            "127.0.0.1.nip.io:9091",
            "",
        ] {
            assert!(!is_local_host(host, own), "{host}");
        }
    }
}
