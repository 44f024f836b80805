//! `loadgen demo` end to end against the real server binary: both modes driven side by
//! side, the report written, and the lifetime bug visible in the numbers.

use std::time::Duration;

use loadgen::demo::{DemoConfig, run_demo};
use loadgen::workload::WorkloadSpec;

#[test]
fn the_demo_shows_broken_lifetimes_pinning_chunks_and_segregated_ones_not() {
    let out = std::env::temp_dir().join(format!("allockit-demo-test-{}", std::process::id()));
    let config = DemoConfig {
        server_bin: Some(env!("CARGO_BIN_EXE_allockit-server").into()),
        server_args: vec!["--workers".into(), "1".into(), "--log".into(), "warn".into()],
        rps: 150.0,
        duration: Duration::from_secs(4),
        connections: 4,
        timeout: Duration::from_secs(10),
        workload: WorkloadSpec { users: 1_000_000, ..WorkloadSpec::default() },
        out_dir: out.clone(),
        progress: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = runtime.block_on(run_demo(&config, None)).expect("the demo runs");
    assert!(report.problems(0.0).is_empty(), "{:?}", report.problems(0.0));
    let [segregated, broken] = &report.modes[..] else { panic!("two modes, got {}", report.modes.len()) };
    assert_eq!(segregated.mode, "segregated");
    assert_eq!(broken.mode, "broken-lifetimes");
    for mode in [segregated, broken] {
        assert!(mode.achieved_rps > 100.0, "{}: {} rps", mode.mode, mode.achieved_rps);
        assert!(mode.shutdown.clean());
        assert!(mode.cache_entries_end.unwrap() > 300.0);
    }
    assert_eq!(segregated.pinned_chunks_end, Some(0.0));
    // Nearly every request brings a new user, whose profile pins a whole chunk.
    assert_eq!(broken.pinned_chunks_end, broken.cache_entries_end);
    let committed = |m: &loadgen::demo::ModeSummary| m.arena_committed_end_bytes.unwrap();
    assert!(committed(broken) > 100.0 * committed(segregated).max(65536.0));
    let growth = |m: &loadgen::demo::ModeSummary| m.rss_end_bytes.unwrap() - m.rss_start_bytes.unwrap();
    assert!(
        growth(broken) > growth(segregated) + 4.0 * 1024.0 * 1024.0,
        "{} vs {}",
        growth(broken),
        growth(segregated)
    );
    for file in ["report.md", "report.json", "rss.png"] {
        assert!(out.join(file).metadata().map(|m| m.len() > 0).unwrap_or(false), "{file} missing");
    }
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("broken-lifetimes") && markdown.contains("rss.png"));
    let _ = std::fs::remove_dir_all(out);
}
