//! The service end to end over real sockets: the workload, the metric contract, the
//! request-heap proof, lifetime segregation, modes, admin, and graceful shutdown.

mod support;

use std::io::Write;
use std::time::Duration;

use allockit_probe::exposition;
use allockit_probe::metrics::{
    ALLOC_DURATION_SECONDS, ARENA_ALLOCATED_BYTES_TOTAL, ARENA_ALLOCATIONS_TOTAL, ARENA_CHUNKS,
    ARENA_COMMITTED_BYTES, ARENA_LIMIT_EXCEEDED_TOTAL, ARENA_REQUEST_BYTES, ARENA_RESET_DURATION_SECONDS,
    ARENA_RESETS_TOTAL, CACHE_BYTES, CACHE_ENTRIES, CACHE_EVICTIONS_TOTAL, CACHE_HITS_TOTAL,
    CACHE_MISSES_TOTAL, CACHE_REGION_BYTES, HTTP_IN_FLIGHT_REQUESTS, HTTP_REQUEST_DURATION_SECONDS,
    HTTP_REQUESTS_TOTAL, JEMALLOC_ACTIVE_BYTES, JEMALLOC_ALLOCATED_BYTES, JEMALLOC_ARENA_ALLOCATED_BYTES,
    JEMALLOC_ARENA_DIRTY_BYTES, JEMALLOC_ARENA_RESIDENT_BYTES, JEMALLOC_MAPPED_BYTES,
    JEMALLOC_METADATA_BYTES, JEMALLOC_RESIDENT_BYTES, JEMALLOC_RETAINED_BYTES, LIFETIME_MODE,
    POOL_ALLOCATIONS_TOTAL, POOL_EXHAUSTED_TOTAL, POOL_FREES_TOTAL, POOL_OBJECTS,
    PROCESS_RESIDENT_MEMORY_BYTES, REGION_RESERVED_BYTES, REQUEST_HEAP_ALLOCATIONS_TOTAL,
    REQUEST_HEAP_BYTES_TOTAL,
};
use support::*;

#[test]
fn a_known_batch_gets_its_summary() {
    let server = start(&[]);
    let body = r#"{"user":"ada","events":[
        {"kind":"click","path":"/home","ms":10,"tags":["a","b"]},
        {"kind":"click","path":"/home","ms":40},
        {"kind":"click","path":"/home","ms":20},
        {"kind":"view","path":"/docs","ms":7,"tags":["c"]}]}"#;
    let reply = post(server.addr, "/v1/events", body);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let summary = reply.json();
    assert_eq!(summary["user"], "ada");
    assert_eq!(summary["events"], 4);
    assert_eq!(summary["profile"], "created");
    assert_eq!(summary["mode"], "segregated");
    assert_eq!(summary["groups_total"], 2);
    let click = &summary["groups"][0];
    assert_eq!((click["kind"].as_str(), click["path"].as_str()), (Some("click"), Some("/home")));
    assert_eq!((click["count"].as_u64(), click["p50_ms"].as_u64()), (Some(3), Some(20)));
    assert_eq!(
        (click["p99_ms"].as_u64(), click["max_ms"].as_u64(), click["tags"].as_u64()),
        (Some(40), Some(40), Some(2))
    );

    let again = post(server.addr, "/v1/events", &batch("ada", 3)).json();
    assert_eq!(again["profile"], "cached");
    let profile = get(server.addr, "/v1/users/ada");
    assert_eq!(profile.status, 200);
    let profile = profile.json();
    assert_eq!((profile["requests"].as_u64(), profile["events"].as_u64()), (Some(2), Some(7)));
    assert_eq!(profile["profile"]["top_kind"], "click");
    let missing = get(server.addr, "/v1/users/nobody");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("nobody"));
    server.shutdown();
}

/// Every series the dashboards and loadgen read, with the labels they select (a histogram
/// by its `_count` series).
const CONTRACT: &[(&str, &[(&str, &str)])] = &[
    (JEMALLOC_ALLOCATED_BYTES, &[]),
    (JEMALLOC_ACTIVE_BYTES, &[]),
    (JEMALLOC_RESIDENT_BYTES, &[]),
    (JEMALLOC_MAPPED_BYTES, &[]),
    (JEMALLOC_RETAINED_BYTES, &[]),
    (JEMALLOC_METADATA_BYTES, &[]),
    (JEMALLOC_ARENA_ALLOCATED_BYTES, &[("arena", "cache")]),
    (JEMALLOC_ARENA_RESIDENT_BYTES, &[("arena", "cache")]),
    (JEMALLOC_ARENA_DIRTY_BYTES, &[("arena", "cache")]),
    (CACHE_REGION_BYTES, &[("state", "reserved")]),
    (CACHE_REGION_BYTES, &[("state", "committed")]),
    (PROCESS_RESIDENT_MEMORY_BYTES, &[]),
    (ARENA_RESETS_TOTAL, &[]),
    (ARENA_ALLOCATIONS_TOTAL, &[]),
    (ARENA_ALLOCATED_BYTES_TOTAL, &[]),
    (ARENA_REQUEST_BYTES, &[]),
    (ARENA_CHUNKS, &[("state", "in_use")]),
    (ARENA_CHUNKS, &[("state", "idle")]),
    (ARENA_CHUNKS, &[("state", "pinned")]),
    (ARENA_COMMITTED_BYTES, &[]),
    (REGION_RESERVED_BYTES, &[]),
    (ARENA_RESET_DURATION_SECONDS, &[]),
    (ARENA_LIMIT_EXCEEDED_TOTAL, &[]),
    (POOL_OBJECTS, &[("pool", "response"), ("state", "live")]),
    (POOL_OBJECTS, &[("pool", "response"), ("state", "free")]),
    (POOL_ALLOCATIONS_TOTAL, &[("pool", "response")]),
    (POOL_FREES_TOTAL, &[("pool", "response")]),
    (POOL_EXHAUSTED_TOTAL, &[("pool", "response")]),
    (CACHE_ENTRIES, &[]),
    (CACHE_BYTES, &[]),
    (CACHE_HITS_TOTAL, &[]),
    (CACHE_MISSES_TOTAL, &[]),
    (CACHE_EVICTIONS_TOTAL, &[]),
    (REQUEST_HEAP_ALLOCATIONS_TOTAL, &[]),
    (REQUEST_HEAP_BYTES_TOTAL, &[]),
    (ALLOC_DURATION_SECONDS, &[("allocator", "arena")]),
    (ALLOC_DURATION_SECONDS, &[("allocator", "pool")]),
    (ALLOC_DURATION_SECONDS, &[("allocator", "cache")]),
    (ALLOC_DURATION_SECONDS, &[("allocator", "heap")]),
    (HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "200")]),
    (HTTP_REQUEST_DURATION_SECONDS, &[("route", "/v1/events")]),
    (HTTP_IN_FLIGHT_REQUESTS, &[]),
    (LIFETIME_MODE, &[("mode", "segregated")]),
    (LIFETIME_MODE, &[("mode", "broken")]),
    (LIFETIME_MODE, &[("mode", "heap")]),
];

#[test]
fn every_metric_of_the_contract_is_exported_with_real_values() {
    let server = start(&["--latency-sample-every", "1"]);
    for i in 0..20 {
        assert_eq!(post(server.addr, "/v1/events", &batch(&format!("u{i}"), 10)).status, 200);
    }
    wait_for_metric(server.addr, POOL_FREES_TOTAL, &[("pool", "response")], 20.0);
    let text = scrape(server.addr);
    let exposition = exposition::parse(&text);
    assert!(exposition.errors.is_empty(), "{:?}", exposition.errors);
    for (name, labels) in CONTRACT {
        let value = exposition.sum(name, labels).or_else(|| exposition.count(name, labels));
        assert!(value.is_some(), "missing {name}{labels:?}");
    }
    let value = |name: &str, labels: &[(&str, &str)]| exposition.sum(name, labels).unwrap();
    let count = |name: &str, labels: &[(&str, &str)]| exposition.count(name, labels).unwrap();
    assert_eq!(value(ARENA_RESETS_TOTAL, &[]), 20.0);
    assert!(value(ARENA_ALLOCATIONS_TOTAL, &[]) >= 20.0 * 10.0);
    assert!(value(ARENA_ALLOCATED_BYTES_TOTAL, &[]) > 20.0 * 500.0);
    assert_eq!(value(POOL_ALLOCATIONS_TOTAL, &[("pool", "response")]), 20.0);
    assert_eq!(value(POOL_FREES_TOTAL, &[("pool", "response")]), 20.0);
    assert_eq!(value(CACHE_ENTRIES, &[]), 20.0);
    assert_eq!(value(CACHE_MISSES_TOTAL, &[]), 20.0);
    assert!(value(CACHE_BYTES, &[]) > 20.0 * 50.0);
    assert!(count(ALLOC_DURATION_SECONDS, &[("allocator", "arena")]) >= 200.0);
    assert_eq!(count(ALLOC_DURATION_SECONDS, &[("allocator", "cache")]), 20.0);
    assert!(value(JEMALLOC_ARENA_ALLOCATED_BYTES, &[("arena", "cache")]) > 0.0);
    assert!(value(JEMALLOC_RESIDENT_BYTES, &[]) >= value(JEMALLOC_ALLOCATED_BYTES, &[]) / 2.0);
    assert!(value(PROCESS_RESIDENT_MEMORY_BYTES, &[]) > 1e6);
    assert_eq!(value(LIFETIME_MODE, &[("mode", "segregated")]), 1.0);
    assert_eq!(value(HTTP_REQUESTS_TOTAL, &[("route", "/v1/events"), ("status", "200")]), 20.0);
    server.shutdown();
}

#[test]
fn promtool_finds_nothing_to_lint_in_the_metrics() {
    let server = start(&[]);
    post(server.addr, "/v1/events", &batch("lint", 5));
    let text = scrape(server.addr);
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/install-deps installs the prometheus package)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let findings =
        String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && findings.trim().is_empty(), "promtool: {findings}");
    server.shutdown();
}

#[test]
fn request_work_makes_no_heap_allocations_in_arena_mode_and_some_in_heap_mode() {
    let arena = start(&[]);
    let heap = start(&["--request-alloc", "heap"]);
    for i in 0..30 {
        let body = batch(&format!("user-{i}"), 25);
        assert_eq!(post(arena.addr, "/v1/events", &body).status, 200);
        let reply = post(heap.addr, "/v1/events", &body);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["mode"], "heap");
    }
    assert_eq!(metric(arena.addr, REQUEST_HEAP_ALLOCATIONS_TOTAL, &[]), 0.0);
    assert_eq!(metric(arena.addr, REQUEST_HEAP_BYTES_TOTAL, &[]), 0.0);
    let allocations = metric(heap.addr, REQUEST_HEAP_ALLOCATIONS_TOTAL, &[]);
    assert!(allocations >= 30.0 * 4.0, "heap mode counted only {allocations} allocations");
    assert!(metric(heap.addr, REQUEST_HEAP_BYTES_TOTAL, &[]) > 30.0 * 1000.0);
    assert_eq!(metric(heap.addr, ARENA_RESETS_TOTAL, &[]), 0.0);
    arena.shutdown();
    heap.shutdown();
}

fn pinned(addr: std::net::SocketAddr) -> f64 {
    metric(addr, ARENA_CHUNKS, &[("state", "pinned")])
}

#[test]
fn segregated_profiles_pin_nothing_while_broken_ones_pin_a_chunk_each() {
    let segregated = start(&[]);
    let broken = start(&["--break-lifetimes"]);
    let send = |addr, from: usize, to: usize| {
        for i in from..to {
            assert_eq!(post(addr, "/v1/events", &batch(&format!("visitor-{i}"), 8)).status, 200);
        }
    };
    send(segregated.addr, 0, 20);
    send(broken.addr, 0, 20);
    let committed = |addr| metric(addr, ARENA_COMMITTED_BYTES, &[]);
    let (seg_committed, broken_committed) = (committed(segregated.addr), committed(broken.addr));
    send(segregated.addr, 20, 200);
    send(broken.addr, 20, 200);

    assert_eq!(pinned(segregated.addr), 0.0);
    // Flat: at most the first chunk of each worker's arena (a worker that served none of
    // the first 20 requests commits its first chunk later; the two workers share one
    // accept queue).
    let flat = seg_committed.max(2.0 * 65536.0);
    assert!(committed(segregated.addr) <= flat, "segregated committed bytes stay flat");
    assert_eq!(metric(segregated.addr, CACHE_ENTRIES, &[]), 200.0);

    assert_eq!(pinned(broken.addr), 200.0, "one pinned chunk per cached profile");
    let grown = committed(broken.addr);
    assert!(grown >= broken_committed + 180.0 * 65536.0, "broken committed bytes grew only to {grown}");

    let cleared = request(broken.admin_addr, "POST", "/admin/cache/clear", b"");
    assert_eq!(cleared.json()["cleared"], 200);
    assert_eq!(pinned(broken.addr), 0.0, "clearing the cache releases every pinned chunk");
    segregated.shutdown();
    broken.shutdown();
}

#[test]
fn the_mode_can_be_toggled_at_run_time() {
    let server = start(&[]);
    assert_eq!(get(server.admin_addr, "/admin/mode").json()["mode"], "segregated");
    let switched = request(server.admin_addr, "POST", "/admin/mode?mode=broken", b"");
    assert_eq!(switched.json()["mode"], "broken");
    for i in 0..5 {
        post(server.addr, "/v1/events", &batch(&format!("late-{i}"), 2));
    }
    assert_eq!(pinned(server.addr), 5.0);
    assert_eq!(metric(server.addr, LIFETIME_MODE, &[("mode", "broken")]), 1.0);
    let by_body = request(server.admin_addr, "PUT", "/admin/mode", br#"{"mode":"heap"}"#);
    assert_eq!(by_body.json()["mode"], "heap");
    assert_eq!(post(server.addr, "/v1/events", &batch("heap-user", 2)).json()["mode"], "heap");
    let bad = request(server.admin_addr, "POST", "/admin/mode?mode=chaos", b"");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("chaos"));
    server.shutdown();
}

#[test]
fn admin_routes_require_the_token_when_one_is_set() {
    let server = start(&["--admin-token", "s3cret"]);
    let denied = request(server.admin_addr, "POST", "/admin/cache/clear", b"");
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let raw_request = b"POST /admin/cache/clear HTTP/1.1\r\nhost: t\r\nauthorization: Bearer s3cret\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    assert_eq!(raw(server.admin_addr, raw_request).unwrap().status, 200);
    let wrong =
        b"GET /admin/mode HTTP/1.1\r\nhost: t\r\nauthorization: Bearer s3cre\r\nconnection: close\r\n\r\n";
    assert_eq!(raw(server.admin_addr, wrong).unwrap().status, 401);
    // Admin routes do not exist on the main listener.
    assert_eq!(request(server.addr, "POST", "/admin/cache/clear", b"").status, 404);
    server.shutdown();
}

#[test]
fn a_heap_profile_can_be_dumped_from_the_admin_listener() {
    let server = start(&[]);
    let active = request(server.admin_addr, "POST", "/admin/profiling?active=true", b"");
    assert_eq!(active.json()["active"], true);
    for i in 0..10 {
        post(server.addr, "/v1/events", &batch(&format!("p{i}"), 50));
    }
    let profile = get(server.admin_addr, "/admin/heap-profile");
    assert_eq!(profile.status, 200);
    assert!(
        profile.body.starts_with(b"heap_v2/"),
        "{}",
        String::from_utf8_lossy(&profile.body[..40.min(profile.body.len())])
    );
    assert!(String::from_utf8_lossy(&profile.body).contains("MAPPED_LIBRARIES"));
    request(server.admin_addr, "POST", "/admin/profiling?active=false", b"");
    server.shutdown();
}

#[test]
fn probes_and_the_live_page_answer() {
    let server = start(&[]);
    assert_eq!(get(server.addr, "/healthz").json()["status"], "ok");
    assert_eq!(get(server.addr, "/readyz").json()["status"], "ready");
    let page = get(server.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("fetch(\"/metrics\""));
    server.shutdown();
}

#[test]
fn graceful_shutdown_drains_an_in_flight_request() {
    let server = start(&["--shutdown-timeout", "10s"]);
    let body = batch("draining", 4);
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = connect(server.addr);
    write!(stream, "POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{head}", body.len())
        .unwrap();
    stream.flush().unwrap();
    // Wait until the server is inside the handler, reading the body.
    let started = std::time::Instant::now();
    while metric(server.addr, HTTP_IN_FLIGHT_REQUESTS, &[]) < 2.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the request never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shared = std::sync::Arc::clone(server.shared());
    let stopper = std::thread::spawn(move || server.shutdown());
    std::thread::sleep(Duration::from_millis(200));
    assert!(shared.is_draining());
    stream.write_all(tail.as_bytes()).unwrap();
    let reply = read_reply(&mut stream).expect("the in-flight request is answered");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["user"], "draining");
    stopper.join().unwrap();
    assert_eq!(shared.arena_source.stats().chunks_pinned, 0);
}

#[test]
fn sigterm_stops_the_binary_gracefully_with_exit_code_zero() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_allockit-server"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", "1", "--log", "warn"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let announced: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr: std::net::SocketAddr = announced["listening"].as_str().unwrap().parse().unwrap();
    assert_eq!(post(addr, "/v1/events", &batch("before-stop", 2)).status, 200);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn growing_the_chunk_source_by_regions_makes_no_heap_allocation_on_the_request_path() {
    // Regions of 16 chunks, and broken mode pins one chunk per new user: 60 users need
    // four regions, reserved while requests run.
    let server = start(&["--break-lifetimes", "--arena-region-bytes", "1048576"]);
    for i in 0..60 {
        assert_eq!(post(server.addr, "/v1/events", &batch(&format!("grower-{i}"), 3)).status, 200);
    }
    assert!(server.shared().arena_source.stats().regions >= 4);
    assert_eq!(metric(server.addr, REQUEST_HEAP_ALLOCATIONS_TOTAL, &[]), 0.0);
    server.shutdown();
}
