mod support;

use allockit_lab::allocator::AllocatorKind;
use allockit_lab::process::{ExitOutcome, Machine, TempDir};
use allockit_lab::report::{self, Outcome};
use allockit_lab::swap::{self, Phase, SwapOptions, Workload};

#[test]
fn the_workload_plateaus_and_every_allocator_reports_steady_peak_free_and_decay_rss() {
    let options = SwapOptions::quick();
    let swap::Subject::Workload(workload) = options.subject.clone() else {
        unreachable!("quick runs the workload")
    };
    let outcome = swap::run(support::lab_exe(), &options).unwrap();
    assert!(
        outcome.missing.is_empty(),
        "scripts/test installs the peers and builds allockit-malloc (release) first: {:?}",
        outcome.missing
    );

    // Every round runs every allocator once; the order rotates between rounds.
    let kinds = AllocatorKind::WITH_ALLOCKIT;
    assert_eq!(outcome.rounds, 2);
    assert_eq!(outcome.orders(), vec![kinds.to_vec(), swap::round_order(&kinds, 2)]);
    assert_ne!(outcome.orders()[0], outcome.orders()[1]);

    let live_set_objects = (workload.threads * (workload.cache_slots + workload.long_lived_slots)) as u64;
    let first_live = outcome.runs[0].workload.as_ref().unwrap().live.clone();
    for run in &outcome.runs {
        let name = format!("{} round {}", run.allocator, run.round);
        assert_eq!(run.exit, ExitOutcome::Code(0), "{name}");
        let report = run.workload.as_ref().expect("the built-in workload reports its counts");
        assert_eq!(report.requests, (workload.threads * workload.requests_per_thread) as u64, "{name}");
        assert!(report.allocations > report.requests * 8, "{name}: {} allocations", report.allocations);
        assert!(report.remote_frees > 0, "{name}: messages must cross threads");
        assert!(
            report.idle_requests >= workload.threads as u64,
            "{name}: the idle phase still serves requests"
        );

        // The plateau: the live set is full when the steady phase starts and stays the same
        // number of objects, within a few percent of the same bytes, to its end — and every
        // allocator serves exactly the same live set (it depends on the seed only).
        assert_eq!(report.live.len(), 17, "{name}: a checkpoint at the start and 16 over the phase");
        assert!(report.live.iter().all(|c| c.objects == live_set_objects), "{name}: {:?}", report.live);
        let bytes = report.live.iter().map(|c| c.bytes);
        let (low, high) = (bytes.clone().min().unwrap(), bytes.max().unwrap());
        assert!(high as f64 <= 1.1 * low as f64, "{name}: live bytes {low}..{high} do not plateau");
        assert_eq!(report.live, first_live, "{name}: the same seeded requests under every allocator");

        // The phases follow each other, and the idle phase lasts its full length.
        assert!(report.steady_start_secs < report.steady_end_secs, "{name}");
        assert!(report.steady_end_secs <= report.freed_secs && report.freed_secs <= report.idle_end_secs);
        assert!(
            report.idle_end_secs - report.freed_secs >= workload.idle_ms as f64 / 1000.0 - 0.001,
            "{name}: idle {} s",
            report.idle_end_secs - report.freed_secs
        );
        assert!(!report.samples.is_empty(), "{name}: the child reads its own RSS");
        assert!(report.samples.windows(2).all(|w| w[0].t_secs < w[1].t_secs));
        let phases = [Phase::Warmup, Phase::Steady, Phase::Free, Phase::Idle, Phase::Exit];
        let order = |phase: Phase| phases.iter().position(|p| *p == phase);
        assert!(
            report.samples.windows(2).all(|w| order(w[0].phase) <= order(w[1].phase)),
            "{name}: phases in order"
        );

        // Steady, peak, after free, after decay and after exit are all there and consistent:
        // the kernel's peak covers every reading the child took (up to the drift of the
        // kernel's per-CPU RSS counters, which both figures read: a few hundred KiB).
        let steady = report.steady_rss();
        let under_peak = |reading: u64| reading as f64 <= run.peak_rss_bytes as f64 * 1.02 + 1048576.0;
        assert!(steady > 0 && report.rss_after_free > 0 && report.rss_after_idle > 0, "{name}");
        assert!(under_peak(steady), "{name}: steady {steady} > peak {}", run.peak_rss_bytes);
        assert!(under_peak(report.rss_after_free), "{name}");
        assert!(under_peak(report.rss_after_idle), "{name}: after decay above the peak");
        assert!(under_peak(report.rss_after_exit), "{name}");
        assert!(report.rss_at_start < steady, "{name}: the live set is resident in the steady phase");
        let sampled_peak = report.samples.iter().map(|s| s.rss_bytes).max().unwrap();
        assert!(under_peak(sampled_peak), "{name}: a reading above the kernel's peak");
        assert!(run.peak_rss() >= run.peak_rss_bytes.max(report.rss_after_idle), "{name}");
    }
    let allockit = outcome.runs.iter().find(|r| r.allocator == AllocatorKind::AllockitMalloc).unwrap();
    assert!(
        allockit.library.ends_with("release/liballockit_malloc.so"),
        "allockit's row runs on the workspace's release build: {}",
        allockit.library
    );

    // One summary row per allocator, with every memory column; two rounds are too few to
    // claim any ordering.
    let summaries = outcome.summaries();
    assert_eq!(summaries.iter().map(|s| s.allocator).collect::<Vec<_>>(), kinds);
    for s in &summaries {
        assert_eq!(s.runs, 2, "{}", s.allocator);
        let (steady, decay) = (s.steady_rss.unwrap(), s.after_decay.unwrap());
        assert!(s.after_free.is_some() && s.requests_per_sec.is_some(), "{}", s.allocator);
        assert!(steady.min <= steady.median && steady.median <= steady.max);
        assert!(decay.max <= s.peak_rss.max, "{}: after decay above the peak", s.allocator);
        let ratio = s.throughput_vs_glibc.unwrap();
        if s.allocator == AllocatorKind::Glibc {
            assert_eq!((ratio.min, ratio.max), (1.0, 1.0));
        }
    }
    let findings = outcome.findings();
    assert!(findings.iter().any(|f| f.contains("no ordering claimed")), "{findings:?}");
    assert!(!findings.iter().any(|f| f.contains("faster than glibc") || f.contains("slower than glibc")));

    let dir = TempDir::new("swap-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let series = std::fs::read_to_string(dir.path().join("swap-rss.csv")).unwrap();
    for kind in kinds {
        // The short phases may fall between two readings; the idle phase and the exit cannot.
        for phase in ["idle", "exit"] {
            assert!(
                series
                    .lines()
                    .any(|l| l.starts_with(&format!("{kind},")) && l.contains(&format!(",{phase},"))),
                "{kind} has an RSS curve through the {phase} phase"
            );
        }
    }
    let live = std::fs::read_to_string(dir.path().join("swap-live.csv")).unwrap();
    assert_eq!(live.lines().count(), 1 + 17 * outcome.runs.len());
    assert!(support::is_png(&dir.path().join("swap-rss.png")));
    assert!(support::is_png(&dir.path().join("swap-throughput.png")));
}

#[test]
fn any_command_runs_under_each_allocator_and_the_preload_is_seen_mapped() {
    let command = vec!["sleep".to_owned(), "0.2".to_owned()];
    let options = SwapOptions { rounds: 2, ..SwapOptions::for_command(command) };
    let outcome = swap::run(support::lab_exe(), &options).unwrap();
    assert_eq!(outcome.runs.len(), 2 * AllocatorKind::WITH_ALLOCKIT.len());
    for run in &outcome.runs {
        assert_eq!(run.exit, ExitOutcome::Code(0));
        assert!(run.wall_secs > 0.0 && !run.rss.is_empty() && run.peak_rss_bytes > 0);
        let expected = if run.allocator == AllocatorKind::Glibc { None } else { Some(true) };
        assert_eq!(run.preload_mapped, expected, "{}", run.allocator);
        assert!(run.workload.is_none());
    }
    let summaries = outcome.summaries();
    assert_eq!(summaries.len(), AllocatorKind::WITH_ALLOCKIT.len());
    assert!(summaries.iter().all(|s| s.runs == 2 && s.wall_vs_glibc.is_some() && s.steady_rss.is_none()));
}

#[test]
fn a_failing_command_is_reported_with_its_exit_status() {
    let command = vec!["sh".to_owned(), "-c".to_owned(), "echo bad input >&2; exit 3".to_owned()];
    let options = SwapOptions { rounds: 1, ..SwapOptions::for_command(command) };
    let outcome = swap::run(support::lab_exe(), &options).unwrap();
    assert!(outcome.runs.iter().all(|run| run.exit == ExitOutcome::Code(3)));
    let findings = outcome.findings();
    assert!(findings.iter().any(|f| f.contains("exit status 3") && f.contains("bad input")), "{findings:?}");
}

#[test]
fn an_empty_command_zero_rounds_or_too_few_requests_are_refused_naming_the_flag() {
    let err = swap::run(support::lab_exe(), &SwapOptions::for_command(Vec::new())).unwrap_err();
    assert!(err.to_string().contains("--"), "{err}");
    let options = SwapOptions { rounds: 0, ..SwapOptions::quick() };
    let err = swap::run(support::lab_exe(), &options).unwrap_err();
    assert!(err.to_string().contains("--rounds"), "{err}");
    let workload = Workload { requests_per_thread: 5, ..Workload::quick() };
    let err = swap::run(support::lab_exe(), &SwapOptions::for_workload(workload)).unwrap_err();
    assert!(err.to_string().contains("--requests"), "{err}");
}

#[test]
fn a_workload_without_threads_is_refused_naming_the_flag() {
    let workload = Workload { threads: 0, ..Workload::quick() };
    let err = swap::run_workload(&workload).unwrap_err();
    assert!(err.to_string().contains("--threads"), "{err}");
}
