//! What a run leaves behind: the scraped server series, the JSON report, the CSV series,
//! the charts, and loadgen's own metrics (checked by `promtool check metrics`).

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allockit_probe::metrics::{
    LOADGEN_IN_FLIGHT_REQUESTS, LOADGEN_LATENCY_SECONDS, LOADGEN_REQUESTS_TOTAL, LOADGEN_TARGET_RPS,
    PROCESS_RESIDENT_MEMORY_BYTES,
};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use loadgen::exporter::{self, OwnMetrics};
use loadgen::hdrlog::HdrLog;
use loadgen::http::{ClientConnection, Target};
use loadgen::plot;
use loadgen::recorder::{decode_histogram, empty_histogram};
use loadgen::report::Phase;
use loadgen::run::{RunHooks, run_load};
use support::{Behaviour, TestServer, config, scratch_dir};

const SERVER_METRICS: &str = "\
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 52428800
# TYPE allockit_arena_chunks gauge
allockit_arena_chunks{state=\"in_use\"} 2
allockit_arena_chunks{state=\"idle\"} 6
allockit_arena_chunks{state=\"pinned\"} 40
allockit_cache_bytes 1048576
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_are_sampled_every_second_and_missing_ones_stay_absent() {
    let server = TestServer::start(Behaviour::Immediate, Some(SERVER_METRICS)).await;
    let mut scraped = config(&server, 50.0, Duration::from_millis(2500), 2);
    scraped.metrics_url = Some(Target::parse("URL", &server.url()).unwrap().with_path("/metrics"));
    let report = run_load(&scraped, RunHooks::default()).await.unwrap();
    assert_eq!(report.series[0].phase, Phase::Start, "a baseline scrape precedes the load");
    assert!(report.series.len() >= 4, "a row per second and a final one: {}", report.series.len());
    for row in &report.series {
        assert_eq!(row.server.rss_bytes, Some(52_428_800.0));
        assert_eq!(row.server.arena_chunks_pinned, Some(40.0));
        assert_eq!(row.server.cache_bytes, Some(1_048_576.0));
        assert_eq!(row.server.jemalloc_allocated_bytes, None, "not exported, so absent");
    }
    let summary = report.render_summary();
    assert!(
        summary.contains("RSS 50.0 MiB → 50.0 MiB") && summary.contains("pinned chunks 40 → 40"),
        "{summary}"
    );
    assert_eq!(report.series.iter().map(|row| row.responses).sum::<u64>(), 125);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_metrics_is_still_measured_and_the_reason_reported() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let mut scraped = config(&server, 20.0, Duration::from_secs(1), 1);
    scraped.metrics_url = Some(Target::parse("URL", &server.url()).unwrap().with_path("/metrics"));
    let report = run_load(&scraped, RunHooks::default()).await.unwrap();
    assert_eq!(report.requests.ok, 20);
    assert!(report.series.iter().all(|row| row.server.rss_bytes.is_none()));
    assert!(report.scrape_error.as_deref().unwrap().contains("HTTP 404"), "{:?}", report.scrape_error);
    assert!(report.render_summary().contains("no figures from"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_csv_and_charts_are_written_from_the_series() {
    let server = TestServer::start(Behaviour::Immediate, Some(SERVER_METRICS)).await;
    let mut scraped = config(&server, 40.0, Duration::from_millis(1500), 2);
    scraped.metrics_url = Some(Target::parse("URL", &server.url()).unwrap().with_path("/metrics"));
    let report = run_load(&scraped, RunHooks::default()).await.unwrap();
    let directory = scratch_dir("outputs");

    let json_path = directory.join("report.json");
    report.write_json(&json_path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(json["requests"]["ok"], 60);
    assert_eq!(json["target_rps"], 40.0);
    assert_eq!(json["series"].as_array().unwrap().len(), report.series.len());
    assert!(json["latency"]["p99_ms"].as_f64().unwrap() > 0.0);

    let csv_path = directory.join("series.csv");
    report.write_csv(&csv_path).unwrap();
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), report.series.len() + 1);
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(&header[..4], ["elapsed_s", "interval_s", "phase", "responses"]);
    let rss_column = header.iter().position(|name| *name == "server_rss_bytes").unwrap();
    let jemalloc_column = header.iter().position(|name| *name == "jemalloc_allocated_bytes").unwrap();
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len());
        assert_eq!(cells[rss_column], "52428800");
        assert_eq!(cells[jemalloc_column], "", "absent figures are empty cells");
    }

    let png = directory.join("run.png");
    plot::plot_run(&report, &png).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let svg = directory.join("run.svg");
    plot::plot_run(&report, &svg).unwrap();
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.contains("<svg") && svg_text.contains("Server memory"));
    let error = plot::plot_run(&report, &directory.join("run.gif")).unwrap_err().to_string();
    assert!(error.contains(".png or .svg"), "{error}");
    std::fs::remove_dir_all(&directory).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_count_the_run_and_pass_promtool() {
    let server = TestServer::start(
        Behaviour::Status(|number| if number.is_multiple_of(10) { 500 } else { 200 }),
        None,
    )
    .await;
    let metrics = Arc::new(OwnMetrics::new().unwrap());
    let (addr, exposition_server) =
        exporter::serve(Arc::clone(&metrics), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let hooks = RunHooks { metrics: Some(Arc::clone(&metrics)), ..RunHooks::default() };
    let report = run_load(&config(&server, 100.0, Duration::from_secs(1), 2), hooks).await.unwrap();

    let target = Target::parse("URL", &format!("http://{addr}/metrics")).unwrap();
    let mut connection = ClientConnection::open(&target, addr, Duration::from_secs(1)).await.unwrap();
    let (status, body) = connection.get(&target, 1 << 20).await.unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let exposition = allockit_probe::exposition::parse(&text);
    let outcome = |name| exposition.sum(LOADGEN_REQUESTS_TOTAL, &[("outcome", name)]);
    assert_eq!(outcome("ok"), Some(report.requests.ok as f64));
    assert_eq!(outcome("http_error"), Some(10.0));
    assert_eq!(outcome("skipped"), Some(0.0), "every outcome is exported from the start");
    assert_eq!(exposition.count(LOADGEN_LATENCY_SECONDS, &[]), Some(100.0));
    assert_eq!(exposition.sum(LOADGEN_TARGET_RPS, &[]), Some(100.0));
    assert!(exposition.sum(LOADGEN_IN_FLIGHT_REQUESTS, &[]).is_some());
    assert!(exposition.sum(PROCESS_RESIDENT_MEMORY_BYTES, &[]).is_some());

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/install-deps (Debian package prometheus)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let findings =
        format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && findings.trim().is_empty(), "promtool: {findings}");

    let (not_found, _) = connection.get(&target.with_path("/other"), 1 << 20).await.unwrap();
    assert_eq!(not_found, 404);
    exposition_server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hdr_log_holds_the_measured_window_second_by_second_and_adds_up_to_the_json() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let directory = scratch_dir("hdr-log");
    let log_path = directory.join("run.hlog");
    let mut warmed = config(&server, 50.0, Duration::from_millis(2500), 2);
    warmed.warmup = Duration::from_secs(1);
    let start_at = SystemTime::now() + Duration::from_millis(1500);
    let hooks = RunHooks {
        hdr_log: Some(HdrLog::create(&log_path).unwrap()),
        start_at: Some(start_at),
        ..RunHooks::default()
    };
    let report = run_load(&warmed, hooks).await.unwrap();
    assert_eq!(report.requests.ok, 125, "the warm-up's 50 requests are not counted");
    let start_unix_s = start_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert_eq!(report.start_unix_s, start_unix_s, "the schedule started at --start-at");
    let json_path = directory.join("report.json");
    report.write_json(&json_path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();

    let log = std::fs::read(&log_path).unwrap();
    let (mut corrected, mut service) = (empty_histogram().unwrap(), empty_histogram().unwrap());
    let (mut base_time, mut corrected_intervals, mut next_start) = (None, 0, Duration::ZERO);
    for entry in IntervalLogIterator::new(&log) {
        match entry.expect("HdrHistogram's own parser reads every line") {
            LogEntry::BaseTime(base) => base_time = Some(base),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(interval) => {
                let histogram = decode_histogram(interval.encoded_histogram()).unwrap();
                match interval.tag().map(|tag| tag.as_str()) {
                    Some("corrected") => {
                        let gap = interval.start_timestamp().abs_diff(next_start);
                        assert!(gap <= Duration::from_millis(1), "intervals follow each other");
                        next_start = interval.start_timestamp() + interval.duration();
                        corrected_intervals += 1;
                        corrected.add(&histogram).unwrap();
                    }
                    Some("service") => service.add(&histogram).unwrap(),
                    other => panic!("unexpected tag {other:?}"),
                }
            }
        }
    }
    let base_time = base_time.expect("a BaseTime header").as_secs_f64();
    assert!((base_time - start_unix_s).abs() < 0.001, "BaseTime {base_time} vs start {start_unix_s}");
    assert_eq!(corrected_intervals, report.series.len() - 1, "one interval per series row after the start");
    assert_eq!(corrected.len(), json["latency"]["count"].as_u64().unwrap());
    assert_eq!(service.len(), json["service_time"]["count"].as_u64().unwrap());
    assert_eq!(corrected.len(), 125);
    let in_json = |name: &str| decode_histogram(json["histograms"][name].as_str().unwrap()).unwrap();
    assert_eq!(corrected, in_json("corrected"), "the log's seconds add up to the report's histogram");
    assert_eq!(service, in_json("service"));
    std::fs::remove_dir_all(&directory).unwrap();
}
