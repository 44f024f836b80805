//! The engine against an in-process server whose behaviour is known: delays, a stall,
//! statuses, the request count it saw. These pin behaviour (what is measured from where,
//! what is counted), with tolerances wide enough for a loaded machine.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen::Error;
use loadgen::report::Phase;
use loadgen::run::{Client, RunHooks, run_load};
use support::{Behaviour, TestServer, config};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn median_latency_tracks_a_known_server_delay() {
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(50)), None).await;
    let report =
        run_load(&config(&server, 40.0, Duration::from_millis(1500), 8), RunHooks::default()).await.unwrap();
    let corrected = report.latency.unwrap();
    let service = report.service_time.unwrap();
    assert_eq!(report.requests.ok, 60);
    assert!((50.0..100.0).contains(&corrected.p50_ms), "corrected p50 {} ms", corrected.p50_ms);
    assert!((50.0..100.0).contains(&service.p50_ms), "service p50 {} ms", service.p50_ms);
    assert!(corrected.p50_ms >= service.p50_ms, "corrected latency includes the service time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_stall_shows_in_corrected_p99_but_not_in_service_time() {
    let stall = Behaviour::StallOnce { at: 100, stall: Duration::from_secs(1) };
    let server = TestServer::start(stall, None).await;
    let report =
        run_load(&config(&server, 200.0, Duration::from_secs(3), 2), RunHooks::default()).await.unwrap();
    let corrected = report.latency.unwrap();
    let service = report.service_time.unwrap();
    assert_eq!(report.requests.ok, 600, "every request is answered once the stall ends");
    // About 200 requests fell due during the stall: from their intended time they waited
    // up to a second, so the corrected p99 sits near the stall.
    assert!(corrected.p99_ms >= 500.0, "corrected p99 {} ms hides the stall", corrected.p99_ms);
    // Only the requests in flight when the stall began (one per connection) took long to
    // serve; the backlog was served quickly once sent.
    assert!(service.p99_ms < 250.0, "service p99 {} ms", service.p99_ms);
    assert!(service.max_ms >= 900.0, "the stalled requests themselves took the whole stall");
    assert!(report.requests.late >= 100, "the backlog went out late: {} late", report.requests.late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_receives_exactly_the_scheduled_requests_spread_over_the_window() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let duration = Duration::from_secs(2);
    let report = run_load(&config(&server, 250.0, duration, 4), RunHooks::default()).await.unwrap();
    let received = server.received() as f64;
    assert!((received - 500.0).abs() <= 500.0 * 0.02, "server received {received} of 500");
    assert!((report.achieved_rps - 250.0).abs() <= 250.0 * 0.02, "achieved {} rps", report.achieved_rps);
    let arrivals = server.arrivals.lock().unwrap();
    let span = *arrivals.last().unwrap() - arrivals[0];
    // Open loop: requests arrive over the whole window, not in a burst.
    assert!(span >= duration.mul_f64(0.95), "arrivals spanned only {span:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_status() {
    fn status_of(number: u64) -> u16 {
        if number.is_multiple_of(3) {
            503
        } else if number.is_multiple_of(5) {
            404
        } else {
            200
        }
    }
    let server = TestServer::start(Behaviour::Status(status_of), None).await;
    let report =
        run_load(&config(&server, 100.0, Duration::from_secs(1), 1), RunHooks::default()).await.unwrap();
    assert_eq!(report.requests.ok, 53);
    assert_eq!(report.errors.by_status, BTreeMap::from([(404, 14), (503, 33)]));
    assert_eq!(report.errors.total(), 47);
    assert!((report.error_rate() - 0.47).abs() < 1e-9);
    assert!(report.render_summary().contains("HTTP 503 ×33"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let mut unreachable = config(&server, 10.0, Duration::from_secs(1), 2);
    unreachable.target = loadgen::http::Target::parse("URL", &format!("http://{addr}/v1/events")).unwrap();
    let error = run_load(&unreachable, RunHooks::default()).await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("cannot connect to http://{addr}/v1/events")), "{message}");
    assert!(message.contains("is the server running?"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_in_flight_limit_sends_are_skipped_and_every_request_is_accounted_for() {
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(200)), None).await;
    let mut limited = config(&server, 50.0, Duration::from_secs(1), 1);
    limited.max_in_flight = Some(2);
    let report = run_load(&limited, RunHooks::default()).await.unwrap();
    let requests = &report.requests;
    assert_eq!(requests.scheduled, 50);
    assert!(requests.skipped >= 30, "one connection at 5 rps cannot carry 50: {requests:?}");
    assert_eq!(requests.attempted + requests.skipped + requests.unsent, requests.scheduled);
    assert_eq!(server.received(), requests.attempted);
    assert!(report.render_summary().contains("skipped at --max-in-flight"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_reports_the_time_it_ran() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let (stop_source, stop) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop_source.send_replace(true);
        stop_source.closed().await;
    });
    let hooks = RunHooks { stop: Some(stop), ..RunHooks::default() };
    let report = run_load(&config(&server, 100.0, Duration::from_secs(30), 2), hooks).await.unwrap();
    assert!(report.interrupted);
    assert!(report.measured_s < 5.0, "ran {} s", report.measured_s);
    assert_eq!(report.requests.unsent, 0, "requests after the stop were never due");
    assert_eq!(report.requests.scheduled, report.requests.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_are_sent_but_excluded_from_the_results() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let mut warmed = config(&server, 100.0, Duration::from_secs(1), 2);
    warmed.warmup = Duration::from_millis(500);
    let report = run_load(&warmed, RunHooks::default()).await.unwrap();
    assert_eq!(server.received(), 150);
    assert_eq!((report.requests.scheduled, report.requests.ok), (100, 100));
    assert_eq!(report.latency.unwrap().count, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closes_are_reopened_without_counting_errors() {
    let server = TestServer::start(Behaviour::CloseEach, None).await;
    for (rps, connections) in [(20.0, 2), (200.0, 1)] {
        let report =
            run_load(&config(&server, rps, Duration::from_secs(1), connections), RunHooks::default())
                .await
                .unwrap();
        assert_eq!(report.requests.ok, rps as u64, "{}", report.render_summary());
        assert_eq!(report.errors.total(), 0, "{}", report.render_summary());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_labels_each_second_by_the_phase_it_starts_in() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let mut run = config(&server, 50.0, Duration::from_secs(2), 2);
    run.warmup = Duration::from_secs(1);
    let report = run_load(&run, RunHooks::default()).await.unwrap();
    let phases: Vec<(f64, Phase)> = report.series.iter().map(|row| (row.elapsed_s, row.phase)).collect();
    // The first second after the start row is the warm-up; it ends a little after 1 s (the
    // sampler's tick), which must not make it a measured second.
    assert_eq!(phases[0].1, Phase::Start, "{phases:?}");
    assert_eq!(phases[1].1, Phase::Warmup, "{phases:?}");
    assert_eq!(phases.iter().filter(|(_, phase)| *phase == Phase::Warmup).count(), 1, "{phases:?}");
    assert!(phases.iter().any(|(_, phase)| *phase == Phase::Measure), "{phases:?}");
    let warmup_responses: u64 =
        report.series.iter().filter(|row| row.phase == Phase::Warmup).map(|row| row.responses).sum();
    assert!(warmup_responses >= 25, "the warm-up row holds the warm-up's responses: {phases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_count_statuses_closes_and_lost_connections_alike() {
    fn status_of(number: u64) -> u16 {
        if number.is_multiple_of(4) { 500 } else { 200 }
    }
    for client in [Client::Lean, Client::Hyper] {
        let server = TestServer::start(Behaviour::Status(status_of), None).await;
        let mut run = config(&server, 100.0, Duration::from_secs(1), 2);
        run.client = client;
        let report = run_load(&run, RunHooks::default()).await.unwrap();
        assert_eq!(report.requests.ok, 75, "{client:?}");
        assert_eq!(report.errors.by_status, BTreeMap::from([(500, 25)]), "{client:?}");

        let server = TestServer::start(Behaviour::CloseEach, None).await;
        let mut run = config(&server, 100.0, Duration::from_secs(1), 1);
        run.client = client;
        let report = run_load(&run, RunHooks::default()).await.unwrap();
        assert_eq!((report.requests.ok, report.errors.total()), (100, 0), "{client:?}");

        // After 10 answers the server drops every connection unanswered: each later
        // request is an I/O error (the connection is re-opened for the next one).
        let server = TestServer::start(Behaviour::VanishAfter(10), None).await;
        let mut run = config(&server, 50.0, Duration::from_secs(1), 1);
        run.client = client;
        let report = run_load(&run, RunHooks::default()).await.unwrap();
        let errors = &report.errors;
        assert_eq!(report.requests.ok, 10, "{client:?}: {}", report.render_summary());
        assert_eq!((errors.io, errors.connect, errors.timeout), (40, 0, 0), "{client:?}: {errors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_left_at_the_end_is_drained_and_measured_not_dropped() {
    // One connection to a server taking 20 ms per request carries about 50 rps: at 100 rps
    // for 1 s, half the window's requests are still due when it ends.
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(20)), None).await;
    let report =
        run_load(&config(&server, 100.0, Duration::from_secs(1), 1), RunHooks::default()).await.unwrap();
    let requests = &report.requests;
    assert_eq!((requests.scheduled, requests.ok, requests.unsent), (100, 100, 0), "{requests:?}");
    assert_eq!(server.received(), 100);
    assert!(requests.late >= 30, "the drained requests went out late: {requests:?}");
    // The rate is over the time the requests took (about 2 s), not the 1 s window.
    assert!(report.measured_s >= 1.5, "measured over {} s", report.measured_s);
    assert!(report.achieved_rps < 70.0, "achieved {} rps", report.achieved_rps);
    let latency = report.latency.expect("latency");
    assert!(latency.max_ms >= 500.0, "the last request waited about a second: {} ms", latency.max_ms);
    assert!(report.render_summary().contains("0 never sent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_at_its_limit_and_what_is_left_is_unsent() {
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(100)), None).await;
    let mut short = config(&server, 100.0, Duration::from_secs(1), 1);
    short.drain = Duration::from_millis(300);
    let report = run_load(&short, RunHooks::default()).await.unwrap();
    let requests = &report.requests;
    // About 13 requests fit in the 1 s window plus the 0.3 s drain.
    assert!(requests.unsent >= 50, "{requests:?}");
    assert_eq!(requests.attempted + requests.unsent, requests.scheduled, "{requests:?}");
    assert_eq!(server.received(), requests.attempted);
    assert!(report.render_summary().contains("still waiting when the drain after the end ran out"));
    // --drain 0: the run stops at the end of its window, as before the drain existed.
    let mut none = config(&server, 100.0, Duration::from_secs(1), 1);
    none.drain = Duration::ZERO;
    let report = run_load(&none, RunHooks::default()).await.unwrap();
    assert!(report.requests.unsent >= 80, "{:?}", report.requests);
    assert!(report.measured_s < 1.2, "stopped at the end: {} s", report.measured_s);
}
