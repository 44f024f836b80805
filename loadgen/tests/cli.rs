//! The `loadgen` binary as a user meets it: exit statuses, messages, files written.

mod support;

use std::process::Output;
use std::time::Duration;

use support::{Behaviour, TestServer, scratch_dir};

async fn loadgen(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).output();
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("loadgen hung").unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn an_unreachable_target_exits_1_with_a_clear_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let output = loadgen(&["--rps", "10", "--duration", "1s", &format!("http://{addr}")]).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains(&format!("cannot connect to http://{addr}/v1/events")), "{message}");
    assert!(message.contains("is the server running?"), "{message}");
    assert_eq!(message.matches("os error").count(), 1, "the OS error is said once: {message}");
}

#[tokio::test]
async fn malformed_urls_and_a_zero_duration_are_bad_command_lines_exiting_2() {
    for (args, expected) in [
        (["--rps", "10", "htp:/x"], "URL: "),
        (["--rps", "10", "127.0.0.1:8080"], "URL: missing http://"),
        (["--rps", "10", "http://127.0.0.1:1 x"], "URL: not a URL"),
    ] {
        let output = loadgen(&args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
    let output = loadgen(&["--rps", "10", "--duration", "0s", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--duration: "), "{}", stderr(&output));
    let output = loadgen(&["--rps", "10", "--metrics-url", "localhost:9090", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--metrics-url: missing http://"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_every_request_failed_exits_3_unless_the_error_budget_is_lifted() {
    let server = TestServer::start(Behaviour::Status(|_| 500), None).await;
    let url = server.url();
    let failed = loadgen(&["--rps", "20", "--duration", "1s", "--no-scrape", &url]).await;
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("exceeds --max-error-rate 1.000%"), "{}", stderr(&failed));
    let lifted =
        loadgen(&["--rps", "20", "--duration", "1s", "--no-scrape", "--max-error-rate", "100%", &url]).await;
    assert_eq!(lifted.status.code(), Some(0), "{}", stderr(&lifted));
    assert!(String::from_utf8_lossy(&lifted.stdout).contains("HTTP 500 ×20"), "{lifted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_server_dies_midway_exits_3() {
    let server = TestServer::start(Behaviour::VanishAfter(30), None).await;
    let output =
        loadgen(&["--rps", "40", "--duration", "2s", "--connections", "2", "--no-scrape", &server.url()])
            .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("exceeds --max-error-rate 1.000%"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_the_generator_cannot_keep_up_with_is_reported_plainly() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let output = loadgen(&[
        "--rps",
        "1e9",
        "--duration",
        "1s",
        "--connections",
        "2",
        "--no-scrape",
        "--max-error-rate",
        "100%",
        &server.url(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("note: loadgen could not keep up with --rps 1000000000.0"), "{stdout}");
    let late_share = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("schedule"))
        .and_then(|line| line.split_once(" late (")?.1.split_once("% of sent)"))
        .map(|(percent, _)| percent.parse::<f64>().unwrap())
        .unwrap_or_else(|| panic!("no late share of sent requests in {stdout}"));
    assert!(late_share > 50.0, "the late share counts sent requests, not scheduled ones: {stdout}");
}

#[tokio::test]
async fn the_demo_accepts_out_twice_as_scripts_demo_passes_it_taking_the_last() {
    let directory = scratch_dir("demo-out");
    let out = directory.join("chosen");
    let output = loadgen(&[
        "demo",
        "--out",
        "reports/demo",
        "--out",
        out.to_str().unwrap(),
        "--server-bin",
        "no/such/allockit-server",
        "--duration",
        "1s",
    ])
    .await;
    // Past the command line: the run itself fails on the missing server binary.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot find the server binary"), "{}", stderr(&output));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag() {
    let output = loadgen(&["--rps", "-5", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--rps"), "{}", stderr(&output));
    let output = loadgen(&["--rps", "5", "--plot", "chart.bmp", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--plot: chart.bmp must end in .png or .svg"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_error_rate_limit_exits_3_and_staying_within_it_exits_0() {
    let server =
        TestServer::start(Behaviour::Status(|number| if number.is_multiple_of(4) { 500 } else { 200 }), None)
            .await;
    let url = server.url();
    let over =
        loadgen(&["--rps", "40", "--duration", "1s", "--no-scrape", "--max-error-rate", "5%", &url]).await;
    assert_eq!(over.status.code(), Some(3), "{}", stderr(&over));
    assert!(stderr(&over).contains("exceeds --max-error-rate 5.000%"), "{}", stderr(&over));
    let within =
        loadgen(&["--rps", "40", "--duration", "1s", "--no-scrape", "--max-error-rate", "0.3", &url]).await;
    assert_eq!(within.status.code(), Some(0), "{}", stderr(&within));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_run_prints_the_summary_and_writes_every_requested_file() {
    let server = TestServer::start(Behaviour::Immediate, None).await;
    let directory = scratch_dir("cli-files");
    let file = |name: &str| directory.join(name).to_str().unwrap().to_owned();
    let output = loadgen(&[
        "--rps",
        "50",
        "--duration",
        "1s",
        "--method",
        "GET",
        "--path",
        "/healthz",
        "--connections",
        "2",
        "--json",
        &file("r.json"),
        "--csv",
        &file("r.csv"),
        "--plot",
        &file("r.svg"),
        &server.url(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("GET {}/healthz", server.url())), "{stdout}");
    assert!(stdout.contains("50 responses (50 2xx)"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no progress bar when stdout is not a terminal");
    for name in ["r.json", "r.csv", "r.svg"] {
        assert!(directory.join(name).metadata().unwrap().len() > 0, "{name} missing");
    }
    assert_eq!(server.received(), 50);
    std::fs::remove_dir_all(&directory).unwrap();
}

#[tokio::test]
async fn the_demo_without_a_server_binary_says_what_to_build() {
    let output = loadgen(&["demo", "--server-bin", "no/such/allockit-server", "--duration", "1s"]).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("cannot find the server binary (looked at no/such/allockit-server)"),
        "{message}"
    );
    assert!(message.contains("cargo build --release -p allockit-server -p loadgen"), "{message}");
}
