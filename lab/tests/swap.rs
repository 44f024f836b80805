mod support;

use allockit_lab::allocator::AllocatorKind;
use allockit_lab::process::{ExitOutcome, Machine, TempDir};
use allockit_lab::report;
use allockit_lab::swap::{self, SwapOptions, Workload};

#[test]
fn the_workload_runs_on_every_allocator_with_rss_sampled_over_time() {
    let workload = Workload::quick();
    let outcome = swap::run(support::lab_exe(), &SwapOptions::for_workload(workload.clone())).unwrap();
    assert!(
        outcome.missing.is_empty(),
        "scripts/test installs the peers and builds allockit-malloc (release) first: {:?}",
        outcome.missing
    );
    let kinds: Vec<AllocatorKind> = outcome.runs.iter().map(|r| r.allocator).collect();
    assert_eq!(kinds, AllocatorKind::WITH_ALLOCKIT);
    for run in &outcome.runs {
        let report = run.workload.expect("the built-in workload reports its counts");
        assert_eq!(report.requests, (workload.threads * workload.requests_per_thread) as u64);
        assert!(report.allocations > report.requests * 8, "{}: {report:?}", run.allocator);
        assert!(report.remote_frees > 0, "{}: messages must cross threads", run.allocator);
        assert!(run.rss.len() >= 3, "{}: {} RSS samples", run.allocator, run.rss.len());
        assert!(run.rss.windows(2).all(|w| w[0].t_secs < w[1].t_secs));
        let sampled_peak = run.rss.iter().map(|s| s.rss_bytes).max().unwrap();
        assert!(
            run.peak_rss_bytes as f64 >= 0.9 * sampled_peak as f64,
            "the kernel peak covers every sample"
        );
        assert_eq!(run.exit, ExitOutcome::Code(0));
    }
    let allockit = outcome.runs.iter().find(|r| r.allocator == AllocatorKind::AllockitMalloc).unwrap();
    assert!(
        allockit.library.ends_with("release/liballockit_malloc.so"),
        "allockit's row runs on the workspace's release build: {}",
        allockit.library
    );

    let dir = TempDir::new("swap-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let series = std::fs::read_to_string(dir.path().join("swap-rss.csv")).unwrap();
    for kind in AllocatorKind::WITH_ALLOCKIT {
        assert!(series.lines().any(|l| l.starts_with(&format!("{kind},"))), "{kind} has an RSS curve");
    }
    assert!(support::is_png(&dir.path().join("swap-rss.png")));
    assert!(support::is_png(&dir.path().join("swap-throughput.png")));
}

#[test]
fn any_command_runs_under_each_allocator_and_the_preload_is_seen_mapped() {
    let command = vec!["sleep".to_owned(), "0.2".to_owned()];
    let outcome = swap::run(support::lab_exe(), &SwapOptions::for_command(command)).unwrap();
    assert_eq!(outcome.runs.len(), AllocatorKind::WITH_ALLOCKIT.len());
    for run in &outcome.runs {
        assert_eq!(run.exit, ExitOutcome::Code(0));
        assert!(run.wall_secs > 0.0 && !run.rss.is_empty() && run.peak_rss_bytes > 0);
        let expected = if run.allocator == AllocatorKind::Glibc { None } else { Some(true) };
        assert_eq!(run.preload_mapped, expected, "{}", run.allocator);
        assert!(run.workload.is_none());
    }
}

#[test]
fn a_failing_command_is_reported_with_its_exit_status() {
    let command = vec!["sh".to_owned(), "-c".to_owned(), "echo bad input >&2; exit 3".to_owned()];
    let outcome = swap::run(support::lab_exe(), &SwapOptions::for_command(command)).unwrap();
    assert!(outcome.runs.iter().all(|run| run.exit == ExitOutcome::Code(3)));
    let findings = report::Outcome::findings(&outcome);
    assert!(findings.iter().any(|f| f.contains("exit status 3") && f.contains("bad input")), "{findings:?}");
}

#[test]
fn an_empty_command_is_refused() {
    let err = swap::run(support::lab_exe(), &SwapOptions::for_command(Vec::new())).unwrap_err();
    assert!(err.to_string().contains("--"), "{err}");
}
