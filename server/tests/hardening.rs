//! What real clients and a hostile network broke (issue 14), each pinned by a test against
//! the real binary or a server in this process, over real sockets.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use allockit_probe::metrics::{
    ARENA_CHUNKS, ARENA_COMMITTED_BYTES, CONNECTION_HEAP_ALLOCATIONS_TOTAL, CONNECTION_HEAP_BYTES_TOTAL,
    HTTP_IN_FLIGHT_REQUESTS, HTTP_REQUESTS_TOTAL, REQUEST_HEAP_ALLOCATIONS_TOTAL, REQUEST_HEAP_BYTES_TOTAL,
};
use support::*;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_server_on_a_port_in_use_refuses_to_start_and_the_first_keeps_every_request() {
    let first = Binary::spawn(&[], &["--workers", "2"], &[]);
    assert_eq!(post(first.addr, "/v1/events", &batch("owner", 2)).status, 200);

    let main = first.addr.to_string();
    let (code, stderr) = run_to_exit(&["--listen", &main, "--admin-listen", "127.0.0.1:0", "--workers", "2"]);
    assert_ne!(code, Some(0), "the second server must fail: {stderr}");
    assert!(stderr.contains(&main) && stderr.contains("in use"), "stderr names the address: {stderr}");

    let admin = first.admin_addr.to_string();
    let (code, stderr) =
        run_to_exit(&["--listen", "127.0.0.1:0", "--admin-listen", &admin, "--workers", "2"]);
    assert_ne!(code, Some(0), "the second admin listener must fail: {stderr}");
    assert!(stderr.contains(&admin), "stderr names the admin address: {stderr}");

    // Every request reaches the first server: the profile it stored is always found.
    for _ in 0..40 {
        assert_eq!(get(first.addr, "/v1/users/owner").status, 200);
    }
    // The workers of one process still share the port.
    let stderr = first.stop();
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

#[test]
fn a_burst_of_keep_alive_connections_spreads_over_the_workers() {
    let server = start(&[]);
    let addr = server.addr;
    let connections: Vec<_> = (0..40).map(|_| std::thread::spawn(move || connect(addr))).collect();
    let mut connections: Vec<_> = connections.into_iter().map(|c| c.join().unwrap()).collect();
    for stream in &mut connections {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        assert_eq!(read_reply(stream).unwrap().status, 200);
    }
    let per_worker = server.shared().worker_connections();
    assert_eq!(per_worker.iter().sum::<usize>(), 40);
    let (least, most) = (per_worker.iter().min().unwrap(), per_worker.iter().max().unwrap());
    assert!(most - least <= 2, "connections per worker: {per_worker:?}");
    drop(connections);
    server.shutdown();
}

/// Opens a connection, sends the head of a POST announcing `declared` bytes and `sent` bytes
/// of its body, and leaves it open.
fn slow_body(addr: SocketAddr, declared: usize, sent: &str) -> std::net::TcpStream {
    let mut stream = connect(addr);
    write!(stream, "POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: {declared}\r\n\r\n{sent}")
        .unwrap();
    stream.flush().unwrap();
    stream
}

#[test]
fn slow_bodies_hold_only_the_memory_that_arrived_and_get_a_408() {
    let server = start(&["--body-read-timeout", "2s", "--max-body-bytes", "2000000"]);
    let addr = server.addr;
    let idle_chunks = metric(addr, ARENA_CHUNKS, &[("state", "in_use")]);
    let clients: Vec<_> = (0..12).map(|_| slow_body(addr, 1_000_000, "{\"user\":")).collect();
    wait_until("every slow body is in a handler", || metric(addr, HTTP_IN_FLIGHT_REQUESTS, &[]) >= 13.0);
    // A million bytes announced, eight arrived: each request holds at most its first chunk.
    let in_use = metric(addr, ARENA_CHUNKS, &[("state", "in_use")]);
    assert!(in_use <= idle_chunks + 12.0, "12 slow bodies hold {in_use} arena chunks");
    assert!(metric(addr, ARENA_COMMITTED_BYTES, &[]) < 12.0 * 1_000_000.0);
    for mut client in clients {
        let reply = read_reply(&mut client).expect("a 408 answer");
        assert_eq!(reply.status, 408);
        assert!(reply.json()["error"].as_str().unwrap().contains("body"), "{:?}", reply.json());
        assert_eq!(reply.header("connection"), Some("close"));
    }
    wait_until_metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "408")], |n| {
        n == 12.0
    });
    assert_eq!(post(addr, "/v1/events", &batch("after-slow", 2)).status, 200);
    server.shutdown();
}

#[test]
fn beyond_the_descriptor_limit_new_clients_get_503_instead_of_hanging() {
    // 200 descriptors for the whole process, and the default --max-connections (10,000).
    let server = Binary::spawn(&["prlimit", "--nofile=200:200", "--"], &["--workers", "2"], &[]);
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..260 {
        let mut stream = connect(server.addr);
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        let reply = read_reply(&mut stream).unwrap_or_else(|| panic!("connection {i} got no answer"));
        match reply.status {
            200 => held.push(stream),
            503 => {
                assert!(reply.header("retry-after").is_some(), "a 503 says when to retry");
                assert!(reply.json()["error"].as_str().unwrap().contains("connections"));
                refused += 1;
            }
            other => panic!("connection {i} got {other}"),
        }
    }
    assert!(held.len() >= 50, "only {} connections were served", held.len());
    assert!(refused > 0, "260 connections fit in 200 descriptors?");
    drop(held);
    wait_until("the server serves again", || {
        raw(server.addr, b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .is_some_and(|r| r.status == 200)
    });
    let stderr = server.stop();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    assert!(stderr.contains("open-file limit"), "the capped connection limit is logged: {stderr}");
}

#[test]
fn user_ids_are_percent_decoded() {
    let server = start(&[]);
    let addr = server.addr;
    assert_eq!(post(addr, "/v1/events", &batch("jean luc", 2)).status, 200);
    assert_eq!(post(addr, "/v1/events", &batch("team/ada", 2)).status, 200);
    let reply = get(addr, "/v1/users/jean%20luc");
    assert_eq!(reply.status, 200, "{:?}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["user"], "jean luc");
    let reply = get(addr, "/v1/users/team%2Fada");
    assert_eq!(reply.status, 200, "{:?}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["user"], "team/ada");
    assert_eq!(get(addr, "/v1/users/team/ada").status, 404);
    // Admin query parameters are form-decoded too.
    let switched = request(server.admin_addr, "POST", "/admin/mode?mode=bro%6Ben", b"");
    assert_eq!(switched.json()["mode"], "broken");
    server.shutdown();
}

#[test]
fn garbage_bodies_make_no_request_heap_allocations_and_connections_are_counted_apart() {
    let server = start(&[]);
    let addr = server.addr;
    let garbage: &[&str] = &[
        "not json at all",
        "{",
        "[]",
        r#"{"user": 12}"#,
        r#"{"user":"x","events":[{"kind":1}]}"#,
        r#"{"user":"x","events":"many"}"#,
        r#"{"user":"x"}"#,
        "\u{0}\u{1}",
        r#"{"user":"x","events":[],"extra":{"deep":[[[[1]]]]}}x"#,
        "nul",
    ];
    for body in garbage {
        let reply = post(addr, "/v1/events", body);
        assert!(matches!(reply.status, 400 | 422), "{body:?} got {}", reply.status);
        assert!(reply.json()["error"].is_string());
    }
    let status = get(addr, "/v1/users/nobody").status;
    assert_eq!(status, 404);
    assert_eq!(metric(addr, REQUEST_HEAP_ALLOCATIONS_TOTAL, &[]), 0.0);
    assert_eq!(metric(addr, REQUEST_HEAP_BYTES_TOTAL, &[]), 0.0);
    // hyper's own per-connection work is on the general heap, and counted apart.
    assert!(metric(addr, CONNECTION_HEAP_ALLOCATIONS_TOTAL, &[]) > 0.0);
    assert!(metric(addr, CONNECTION_HEAP_BYTES_TOTAL, &[]) > 0.0);
    server.shutdown();
}

#[test]
fn a_413_before_the_body_closes_the_connection_and_words_the_limit_like_the_streamed_one() {
    let server = start(&["--max-body-bytes", "4096"]);
    let addr = server.addr;
    let mut stream = slow_body(addr, 5000, "");
    let declared = read_reply(&mut stream).expect("a 413");
    assert_eq!(declared.status, 413);
    assert_eq!(declared.header("connection"), Some("close"));
    let mut stream = connect(addr);
    write!(stream, "POST /v1/events HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
    for _ in 0..10 {
        if write!(stream, "3e8\r\n{}\r\n", "x".repeat(1000)).is_err() {
            break;
        }
    }
    let streamed = read_reply(&mut stream).expect("a 413");
    assert_eq!(streamed.status, 413);
    assert_eq!(declared.json()["error"], streamed.json()["error"]);
    assert!(declared.json()["error"].as_str().unwrap().contains("4096"));
    server.shutdown();
}

#[test]
fn a_404_echoes_only_the_start_of_a_long_path() {
    let server = start(&[]);
    let path = format!("/{}", "p".repeat(12_000));
    let reply = get(server.addr, &path);
    assert_eq!(reply.status, 404);
    let message = reply.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("/ppp"), "{message}");
    assert!(message.len() < 300, "the 404 echoes {} bytes", message.len());
    server.shutdown();
}

#[test]
fn readyz_says_draining_on_kept_alive_and_new_connections_during_the_drain() {
    let server = start(&["--drain-delay", "5s"]);
    let addr = server.addr;
    let mut kept = connect(addr);
    kept.write_all(b"GET /readyz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut kept).unwrap().json()["status"], "ready");
    let shared = std::sync::Arc::clone(server.shared());
    let stopper = std::thread::spawn(move || server.shutdown());
    wait_until("the drain begins", || shared.is_draining());
    kept.write_all(b"GET /readyz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    let reply = read_reply(&mut kept).expect("the kept-alive connection is answered during the drain");
    assert_eq!((reply.status, reply.json()["status"].as_str()), (503, Some("draining")));
    let reply = get(addr, "/readyz");
    assert_eq!((reply.status, reply.json()["status"].as_str()), (503, Some("draining")));
    stopper.join().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(kept.read(&mut buf).unwrap_or(0), 0, "the connection closes when the drain ends");
}

#[test]
fn durations_take_hours_and_boolean_variables_take_1_0_yes_no() {
    use allockit_server::Config;
    use clap::Parser;
    let config = Config::try_parse_from(["allockit-server", "--shutdown-timeout", "1h"]).unwrap();
    assert_eq!(config.shutdown_timeout, Duration::from_secs(3600));

    for (value, mode) in
        [("1", "broken"), ("yes", "broken"), ("true", "broken"), ("0", "segregated"), ("no", "segregated")]
    {
        let server = Binary::spawn(
            &[],
            &["--workers", "1"],
            &[
                ("ALLOCKIT_BREAK_LIFETIMES", value),
                ("ALLOCKIT_SHUTDOWN_TIMEOUT", "1h"),
                ("ALLOCKIT_BODY_READ_TIMEOUT", "300ms"),
                ("ALLOCKIT_DRAIN_DELAY", "0s"),
            ],
        );
        assert_eq!(
            get(server.admin_addr, "/admin/mode").json()["mode"],
            mode,
            "ALLOCKIT_BREAK_LIFETIMES={value}"
        );
        let mut slow = slow_body(server.addr, 100, "{");
        assert_eq!(read_reply(&mut slow).expect("a 408").status, 408, "ALLOCKIT_BODY_READ_TIMEOUT applies");
        server.stop();
    }
    let (code, stderr) = run_to_exit(&[
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--body-read-timeout",
        "soon",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--body-read-timeout"), "{stderr}");
}

/// Runs curl with `args`; returns stdout.
fn curl(args: &[&str]) -> String {
    let output = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn http2_prior_knowledge_is_served() {
    let server = start(&[]);
    let base = format!("http://{}", server.addr);
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("{base}/healthz"),
    ]);
    assert_eq!(out, "2 200");
    let body = batch("over-h2", 3);
    let out = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &body,
        &format!("{base}/v1/events"),
    ]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((summary["user"].as_str(), summary["events"].as_u64()), (Some("over-h2"), Some(3)));
    let out = curl(&["--http2-prior-knowledge", &format!("{base}/v1/users/over-h2")]);
    assert!(out.contains("\"requests\":1"), "{out}");
    let text = scrape(server.addr);
    assert_eq!(metric_in(&text, HTTP_REQUESTS_TOTAL, &[("route", "connection"), ("status", "400")]), None);
    assert_eq!(metric(server.addr, REQUEST_HEAP_ALLOCATIONS_TOTAL, &[]), 0.0);
    server.shutdown();
}

/// A raw request to the admin listener with extra header lines.
fn admin_request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> Reply {
    let head = format!("{method} {path} HTTP/1.1\r\n{headers}content-length: 0\r\nconnection: close\r\n\r\n");
    raw(addr, head.as_bytes()).expect("an answer")
}

#[test]
fn the_admin_listener_refuses_foreign_origins_and_hosts_but_not_curl() {
    let server = start(&[]);
    let admin = server.admin_addr;
    let own_host = format!("host: {admin}\r\n");
    let mode = || get(admin, "/admin/mode").json()["mode"].as_str().unwrap().to_string();

    let foreign = format!("{own_host}origin: http://evil.example\r\n");
    let reply = admin_request(admin, "POST", "/admin/mode?mode=broken", &foreign);
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].as_str().unwrap().contains("origin"), "{:?}", reply.json());
    let reply = admin_request(admin, "POST", "/admin/cache/clear", &foreign);
    assert_eq!(reply.status, 403);
    let other_port = format!("{own_host}origin: http://{}\r\n", server.addr);
    assert_eq!(admin_request(admin, "POST", "/admin/mode?mode=broken", &other_port).status, 403);
    let null = format!("{own_host}origin: null\r\n");
    assert_eq!(admin_request(admin, "POST", "/admin/mode?mode=broken", &null).status, 403);
    // DNS rebinding: the browser thinks it talks to evil.example.
    let rebound =
        format!("host: evil.example:{}\r\norigin: http://evil.example:{}\r\n", admin.port(), admin.port());
    let reply = admin_request(admin, "POST", "/admin/mode?mode=broken", &rebound);
    assert!(matches!(reply.status, 403 | 421), "{}", reply.status);
    let reply = admin_request(
        admin,
        "GET",
        "/admin/heap-profile",
        &format!("host: evil.example:{}\r\n", admin.port()),
    );
    assert!(matches!(reply.status, 403 | 421), "{}", reply.status);
    assert_eq!(mode(), "segregated");

    // Same-origin pages and plain curl keep working.
    let same = format!("{own_host}origin: http://{admin}\r\n");
    assert_eq!(admin_request(admin, "POST", "/admin/mode?mode=heap", &same).status, 200);
    let localhost = format!("host: localhost:{}\r\n", admin.port());
    assert_eq!(admin_request(admin, "POST", "/admin/mode?mode=segregated", &localhost).status, 200);
    let out = curl(&["-X", "POST", &format!("http://{admin}/admin/mode?mode=broken")]);
    assert!(out.contains("broken"), "{out}");
    assert_eq!(mode(), "broken");
    server.shutdown();
}
