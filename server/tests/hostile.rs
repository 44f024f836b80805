//! Hostile input over raw TCP: the server answers or closes cleanly, never crashes, keeps
//! serving others meanwhile, and its arena chunks go back to idle afterwards.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use allockit_probe::metrics::{ARENA_CHUNKS, HTTP_IN_FLIGHT_REQUESTS, HTTP_REQUESTS_TOTAL};
use proptest::prelude::*;
use support::*;

/// Sends `bytes`, then reads whatever comes back until the server closes or 2 s pass.
/// Returns the status line's code, if any answer came.
fn send_and_drain(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut stream = connect(addr);
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn assert_recovered(addr: SocketAddr) {
    assert_eq!(post(addr, "/v1/events", &batch("survivor", 4)).status, 200);
    let started = Instant::now();
    loop {
        let text = scrape(addr);
        let in_use = metric_in(&text, ARENA_CHUNKS, &[("state", "in_use")]).unwrap();
        let in_flight = metric_in(&text, HTTP_IN_FLIGHT_REQUESTS, &[]).unwrap();
        // Each worker keeps at most one chunk in its idle arenas between requests.
        if in_use <= 2.0 && in_flight == 1.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "in_use={in_use} in_flight={in_flight}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn malformed_request_lines_and_heads_are_refused() {
    let server = start(&[]);
    let addr = server.addr;
    let cases: &[&[u8]] = &[
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nhost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: t\r\nx: \x01\x02\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: -1\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: 99999999999999999999999\r\n\r\n",
    ];
    for case in cases {
        let status = send_and_drain(addr, case);
        assert!(
            matches!(status, None | Some(400..=499)),
            "{:?} got {status:?}",
            String::from_utf8_lossy(case)
        );
    }
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: t\r\n\r\n", "u".repeat(70_000));
    assert!(matches!(send_and_drain(addr, long_uri.as_bytes()), None | Some(414 | 431)));
    assert_recovered(addr);
    server.shutdown();
}

#[test]
fn bad_chunked_encoding_gets_400_with_a_json_body() {
    let server = start(&[]);
    let addr = server.addr;
    let reply = raw(
        addr,
        b"POST /v1/events HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{\"user\"\r\n0\r\n\r\n",
    )
    .expect("an answer");
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("body"));
    let truncated_chunk = send_and_drain(
        addr,
        b"POST /v1/events HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n100\r\n{\"user\":",
    );
    assert!(matches!(truncated_chunk, None | Some(400 | 499)));
    assert_recovered(addr);
    server.shutdown();
}

#[test]
fn slowloris_connections_are_cut_off_while_others_are_served() {
    let server = start(&["--header-read-timeout", "500ms"]);
    let addr = server.addr;
    let mut slow: Vec<_> = (0..40).map(|_| connect(addr)).collect();
    for (i, stream) in slow.iter_mut().enumerate() {
        stream.write_all(format!("POST /v1/events HTTP/1.1\r\nx-{i}: ").as_bytes()).unwrap();
    }
    // Trickle a byte at a time while normal traffic goes on.
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        for stream in slow.iter_mut() {
            let _ = stream.write_all(b"a");
        }
        assert_eq!(post(addr, "/v1/events", &batch(&format!("patient-{served}"), 3)).status, 200);
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(served >= 10);
    // Every slow connection has been answered 408 and closed.
    for stream in slow.iter_mut() {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&answer));
    }
    wait_for_metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "connection"), ("status", "408")], 40.0);
    assert_recovered(addr);
    server.shutdown();
}

fn valid_request() -> Vec<u8> {
    let body = batch("fuzzed", 3);
    format!("POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random corruptions of a valid request (byte flips, truncation, insertion) never
    /// crash the server or wedge a request.
    #[test]
    fn corrupted_requests_are_answered_or_closed(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        insert in proptest::collection::vec(any::<u8>(), 0..16),
        at in any::<prop::sample::Index>(),
    ) {
        static SERVER: std::sync::OnceLock<allockit_server::ServerHandle> = std::sync::OnceLock::new();
        let addr = SERVER.get_or_init(|| start(&["--header-read-timeout", "1s"])).addr;
        let mut bytes = valid_request();
        for (index, byte) in flips {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let at = at.index(bytes.len());
        bytes.splice(at..at, insert);
        bytes.truncate(cut.index(bytes.len() + 1).max(1));
        let status = send_and_drain(addr, &bytes);
        prop_assert!(matches!(status, None | Some(200 | 400..=499)), "status {status:?}");
        prop_assert_eq!(post(addr, "/v1/events", &batch("still-here", 2)).status, 200);
    }
}
