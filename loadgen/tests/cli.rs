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
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag() {
    let output = loadgen(&["--rps", "-5", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--rps"), "{}", stderr(&output));
    let output = loadgen(&["--rps", "5", "--plot", "chart.bmp", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(1));
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
