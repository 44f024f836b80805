//! Every kind of bad input gets the right status and a JSON error body, the counters move,
//! the request's arena is reset, and the server keeps serving.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use allockit_probe::metrics::{
    ARENA_CHUNKS, ARENA_LIMIT_EXCEEDED_TOTAL, ARENA_RESETS_TOTAL, HTTP_IN_FLIGHT_REQUESTS,
    HTTP_REQUESTS_TOTAL,
};
use support::*;

/// Asserts the server still answers a good batch, and that no arena chunk is left held
/// by a request (each worker keeps at most one chunk in its idle arenas).
fn still_serving(addr: SocketAddr) {
    let reply = post(addr, "/v1/events", &batch("after-bad-input", 3));
    assert_eq!(reply.status, 200);
    assert!(metric(addr, ARENA_CHUNKS, &[("state", "in_use")]) <= 2.0);
    assert_eq!(metric(addr, HTTP_IN_FLIGHT_REQUESTS, &[]), 1.0, "only the metrics request itself");
}

fn expect_error(reply: &Reply, status: u16, needle: &str) {
    assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], status);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} does not mention {needle:?}");
}

#[test]
fn malformed_batches_get_400_or_422_with_a_json_error() {
    let server = start(&["--max-events", "50"]);
    let addr = server.addr;
    let resets_before = metric(addr, ARENA_RESETS_TOTAL, &[]);
    let cases: &[(&[u8], u16, &str)] = &[
        (b"{\"user\":\"u\",\"events\":[", 400, "EOF"),
        (b"not json at all", 400, "expected"),
        (br#"{"user":5,"events":[]}"#, 400, "invalid type"),
        (br#"{"user":"u","events":[{"kind":"a","path":"/","ms":"fast"}]}"#, 400, "invalid type"),
        (br#"{"events":[]}"#, 400, "missing field `user`"),
        (br#"{"user":"u","events":[{"kind":"a","ms":1}]}"#, 400, "missing field `path`"),
        (b"{\"user\":\"\xc3\x28\",\"events\":[]}", 400, "invalid"),
        (br#"{"user":"u","events":[{"kind":"a","path":"/","ms":-5}]}"#, 400, "invalid value"),
        (br#"{"user":"u","events":[{"kind":"a","path":"/","ms":4294967296}]}"#, 400, "invalid value"),
        (br#"{"user":"u","events":[{"kind":"a","path":"/","ms":1e3}]}"#, 400, "invalid type"),
        (br#"{"user":"u","user":"v","events":[]}"#, 400, "duplicate field"),
        (br#"{"user":"","events":[]}"#, 422, "must not be empty"),
    ];
    for (body, status, needle) in cases {
        let reply = request(addr, "POST", "/v1/events", body);
        expect_error(&reply, *status, needle);
    }
    let nested_events = format!(r#"{{"user":"u","events":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    expect_error(&post(addr, "/v1/events", &nested_events), 400, "invalid type");
    let nested_tags =
        format!(r#"{{"user":"u","events":[{{"kind":"a","path":"/","ms":1,"tags":{}}}]}}"#, "[".repeat(100));
    expect_error(&post(addr, "/v1/events", &nested_tags), 400, "invalid type");
    expect_error(&post(addr, "/v1/events", &batch("many", 51)), 422, "too many events");
    let long_user = format!(r#"{{"user":"{}","events":[]}}"#, "x".repeat(500));
    expect_error(&post(addr, "/v1/events", &long_user), 422, "longer than");
    let tags: Vec<String> = (0..40).map(|i| format!("\"t{i}\"")).collect();
    let many_tags =
        format!(r#"{{"user":"u","events":[{{"kind":"a","path":"/","ms":1,"tags":[{}]}}]}}"#, tags.join(","));
    expect_error(&post(addr, "/v1/events", &many_tags), 422, "too many tags");

    let text = scrape(addr);
    let bad = metric_in(&text, HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "400")]).unwrap();
    let refused =
        metric_in(&text, HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "422")]).unwrap();
    assert_eq!((bad, refused), (13.0, 4.0));
    assert_eq!(
        metric_in(&text, ARENA_RESETS_TOTAL, &[]).unwrap() - resets_before,
        17.0,
        "every request reset its arena"
    );
    // Deep nesting in a field the server ignores is skipped without recursion: no stack
    // overflow, and the batch is accepted.
    let ignored =
        format!(r#"{{"user":"u","events":[],"extra":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(post(addr, "/v1/events", &ignored).status, 200);
    still_serving(addr);
    server.shutdown();
}

#[test]
fn oversized_bodies_get_413_whether_declared_or_streamed() {
    let server = start(&["--max-body-bytes", "4096"]);
    let addr = server.addr;
    expect_error(&post(addr, "/v1/events", &batch("big", 200)), 413, "4096");
    // Chunked: no length up front; the server stops reading at the limit.
    let mut stream = connect(addr);
    write!(stream, "POST /v1/events HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
    let chunk = "x".repeat(1000);
    let mut reply = None;
    for _ in 0..10 {
        if write!(stream, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
            break;
        }
    }
    if reply.is_none() {
        reply = read_reply(&mut stream);
    }
    expect_error(&reply.expect("a 413 before the body ends"), 413, "max-body-bytes");
    // The per-request arena limit is a 413 too.
    drop(stream);
    still_serving(addr);
    server.shutdown();
}

#[test]
fn a_batch_beyond_the_arena_limit_gets_413_and_counts_it() {
    let server =
        start(&["--arena-limit-bytes", "131072", "--max-events", "100000", "--max-body-bytes", "8000000"]);
    let addr = server.addr;
    expect_error(&post(addr, "/v1/events", &batch("huge", 20_000)), 413, "per-request limit");
    assert!(metric(addr, ARENA_LIMIT_EXCEEDED_TOTAL, &[]) >= 1.0);
    still_serving(addr);
    server.shutdown();
}

#[test]
fn wrong_methods_and_unknown_routes_get_405_and_404() {
    let server = start(&[]);
    let addr = server.addr;
    let reply = get(addr, "/v1/events");
    expect_error(&reply, 405, "POST");
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = request(addr, "DELETE", "/metrics", b"");
    expect_error(&reply, 405, "GET");
    expect_error(&get(addr, "/v2/nothing"), 404, "/v2/nothing");
    let text = scrape(addr);
    assert_eq!(
        metric_in(&text, HTTP_REQUESTS_TOTAL, &[("route", "unmatched"), ("status", "404")]),
        Some(1.0)
    );
    assert_eq!(
        metric_in(&text, HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "405")]),
        Some(1.0)
    );
    still_serving(addr);
    server.shutdown();
}

#[test]
fn slow_headers_get_a_408_with_a_json_body_and_idle_connections_just_close() {
    let server = start(&["--header-read-timeout", "300ms"]);
    let addr = server.addr;
    let mut slow = connect(addr);
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nhost: t\r\n").unwrap();
    let reply = read_reply(&mut slow).expect("a 408 answer");
    expect_error(&reply, 408, "headers");
    let mut idle = connect(addr);
    let mut buf = [0u8; 64];
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0, "an idle connection closes without an answer");
    wait_for_metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "connection"), ("status", "408")], 1.0);
    still_serving(addr);
    server.shutdown();
}

#[test]
fn connections_beyond_the_limit_get_503_and_the_server_recovers() {
    let server = start(&["--max-connections", "4"]);
    let addr = server.addr;
    let held: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let reply = raw(addr, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").expect("a 503 answer");
    expect_error(&reply, 503, "too many connections");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    still_serving(addr);
    wait_until_metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "connection"), ("status", "503")], |n| n >= 1.0);
    server.shutdown();
}

#[test]
fn a_client_that_goes_away_mid_request_still_gets_its_arena_reset() {
    let server = start(&[]);
    let addr = server.addr;
    let resets = metric(addr, ARENA_RESETS_TOTAL, &[]);
    {
        let mut stream = connect(addr);
        write!(
            stream,
            "POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: 10000\r\n\r\n{{\"user\":\"gone\","
        )
        .unwrap();
        let started = std::time::Instant::now();
        while metric(addr, HTTP_IN_FLIGHT_REQUESTS, &[]) < 2.0 {
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let started = std::time::Instant::now();
    while metric(addr, ARENA_RESETS_TOTAL, &[]) < resets + 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the abandoned request's arena was never reset");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "499")]), 1.0);
    still_serving(addr);
    server.shutdown();
}

#[test]
fn hyper_level_garbage_is_refused_and_counted() {
    let server = start(&[]);
    let addr = server.addr;
    let reply = raw(addr, b"THIS IS NOT HTTP\r\n\r\n").expect("an answer");
    assert_eq!(reply.status, 400);
    let huge_header = format!("GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n", "a".repeat(100_000));
    let reply = raw(addr, huge_header.as_bytes()).expect("an answer");
    assert_eq!(reply.status, 431);
    let conflicting =
        b"POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!";
    assert_eq!(raw(addr, conflicting).expect("an answer").status, 400);
    wait_until_metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "connection"), ("status", "400")], |n| n >= 2.0);
    still_serving(addr);
    server.shutdown();
}

#[test]
fn an_exhausted_chunk_source_is_a_503_not_a_413() {
    // One region of 1 MiB: sixteen 64 KiB chunks in all, and broken mode pins one per user.
    let server = start(&["--break-lifetimes", "--arena-region-bytes", "1048576", "--arena-max-regions", "1"]);
    let addr = server.addr;
    let statuses: Vec<u16> =
        (0..40).map(|i| post(addr, "/v1/events", &batch(&format!("pin-{i}"), 2)).status).collect();
    assert!(statuses.contains(&200));
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!(refused > 0, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let reply = post(addr, "/v1/events", &batch("one-more", 2));
    expect_error(&reply, 503, "exhausted");
    // Clearing the cache releases the pinned chunks, and service resumes.
    request(server.admin_addr, "POST", "/admin/cache/clear", b"");
    assert_eq!(post(addr, "/v1/events", &batch("after-clear", 2)).status, 200);
    server.shutdown();
}
