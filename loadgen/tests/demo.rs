//! The demo's building blocks that do not need the real server: locating the binary,
//! refusing a child that does not announce itself, and the side-by-side comparison of two
//! runs. (The end-to-end demo runs against `allockit-server` in the server's own tests.)

mod support;

use std::path::Path;
use std::time::Duration;

use loadgen::Error;
use loadgen::demo::{DemoReport, ModeSummary};
use loadgen::http::Target;
use loadgen::report::RunReport;
use loadgen::run::{RunHooks, run_load};
use loadgen::supervisor::{MODES, ServerProcess, ShutdownOutcome, locate_server_binary};
use loadgen::workload::WorkloadSpec;
use support::{Behaviour, TestServer, config, scratch_dir};

#[test]
fn a_missing_server_binary_names_the_paths_tried_and_the_build_command() {
    let error = locate_server_binary(Some(Path::new("no/such/server"))).unwrap_err();
    let Error::ServerBinaryMissing { looked_at } = &error else { panic!("{error:?}") };
    assert_eq!(looked_at, &[Path::new("no/such/server").to_owned()]);
    assert!(error.to_string().contains("cargo build --release -p allockit-server -p loadgen"));
}

#[test]
fn an_existing_server_binary_given_explicitly_is_used() {
    let executable = std::env::current_exe().unwrap();
    assert_eq!(locate_server_binary(Some(&executable)).unwrap(), executable);
}

#[tokio::test]
async fn a_child_that_exits_without_announcing_is_a_start_error_naming_its_log() {
    let directory = scratch_dir("demo-true");
    let log = directory.join("server.log");
    let error = ServerProcess::spawn(Path::new("true"), "segregated", &[], &log).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("exited (exit status: 0) before announcing its addresses"), "{message}");
    assert!(message.contains("server.log"), "{message}");
    std::fs::remove_dir_all(&directory).unwrap();
}

#[tokio::test]
async fn a_child_whose_first_line_is_not_the_announcement_is_refused() {
    let directory = scratch_dir("demo-echo");
    let error =
        ServerProcess::spawn(Path::new("echo"), "broken-lifetimes", &[], &directory.join("server.log"))
            .await
            .unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("server broken-lifetimes: its first stdout line is not"), "{message}");
    assert!(message.contains("--listen 127.0.0.1:0 --admin-listen 127.0.0.1:0"), "{message}");
    std::fs::remove_dir_all(&directory).unwrap();
}

async fn scraped_run(label: &str, metrics: &'static str) -> RunReport {
    let server = TestServer::start(Behaviour::Immediate, Some(metrics)).await;
    let mut run = config(&server, 40.0, Duration::from_secs(1), 2);
    run.label = label.to_owned();
    run.metrics_url = Some(Target::parse("URL", &server.url()).unwrap().with_path("/metrics"));
    run_load(&run, RunHooks::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_puts_both_modes_side_by_side_and_flags_unclean_exits() {
    let segregated = scraped_run(
        "segregated",
        "process_resident_memory_bytes 10485760\nallockit_arena_chunks{state=\"pinned\"} 0\nallockit_cache_bytes 2097152\n",
    )
    .await;
    let broken = scraped_run(
        "broken-lifetimes",
        "process_resident_memory_bytes 104857600\nallockit_arena_chunks{state=\"pinned\"} 1234\nallockit_cache_bytes 2097152\n",
    )
    .await;
    let clean = ShutdownOutcome { exit_code: Some(0), forced: false };
    let killed = ShutdownOutcome { exit_code: None, forced: true };
    let demo = DemoReport {
        server_binary: "allockit-server".to_owned(),
        rps: 40.0,
        duration_s: 1.0,
        connections: 2,
        workload: WorkloadSpec::default(),
        modes: vec![
            ModeSummary::new(&MODES[0], &segregated, clean),
            ModeSummary::new(&MODES[1], &broken, killed),
        ],
        runs: vec![segregated, broken],
    };
    assert_eq!(demo.modes[1].server_args, ["--break-lifetimes"]);
    assert_eq!(demo.modes[1].pinned_chunks_end, Some(1234.0));

    let table = demo.render_table();
    let line = |name: &str| table.lines().find(|line| line.starts_with(name)).unwrap().to_owned();
    assert!(line("RSS start → end").contains("10.0 MiB → 10.0 MiB"), "{table}");
    assert!(line("RSS start → end").contains("100.0 MiB → 100.0 MiB"), "{table}");
    assert!(line("pinned chunks (end)").ends_with("1234"), "{table}");
    assert!(line("throughput").contains("40.0 rps"), "{table}");
    assert!(line("server exit").contains("killed after grace"), "{table}");

    assert_eq!(demo.problems(0.01), ["the broken-lifetimes server did not exit cleanly on SIGTERM"]);
    let markdown = demo.render_markdown("rss.png");
    assert!(markdown.contains("| pinned chunks (end) | 0 | 1234 |"), "{markdown}");
    assert!(markdown.contains("![server RSS over time, both modes](rss.png)"));

    let directory = scratch_dir("demo-chart");
    let chart = directory.join("rss.png");
    loadgen::plot::plot_rss_comparison(&demo.runs.iter().collect::<Vec<_>>(), &chart).unwrap();
    assert!(chart.metadata().unwrap().len() > 1000);
    std::fs::remove_dir_all(&directory).unwrap();
}
