//! `allockit-lab tune`, run as the real binary at the test scale.

mod support;

use std::process::Command;

use allockit_lab::allocator::AllocatorKind;
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report::{self, Outcome};
use allockit_lab::tune::{self, TuneWorkload};

#[test]
fn every_setting_gets_a_row_rss_over_time_and_a_verdict() {
    let workload = TuneWorkload::quick();
    let outcome = tune::run(support::lab_exe(), &workload).unwrap();
    assert!(outcome.missing.is_empty(), "scripts/install-deps installs jemalloc: {:?}", outcome.missing);
    let settings = tune::settings();
    let labels: Vec<&str> = outcome.runs.iter().map(|r| r.setting.label.as_str()).collect();
    assert_eq!(labels, settings.iter().map(|s| s.label.as_str()).collect::<Vec<_>>());
    for run in &outcome.runs {
        let r = &run.report;
        assert!(r.ops > 0 && r.p50_ns <= r.p99_ns && r.p99_ns <= r.p999_ns && r.p999_ns <= r.max_ns, "{r:?}");
        assert!(run.rss.len() >= 3, "{}: RSS sampled over time", run.setting.label);
        assert!(
            run.peak_rss_bytes >= workload.live_bytes_per_thread as u64,
            "{}: at least one thread's live set was resident at the peak ({} bytes)",
            run.setting.label,
            run.peak_rss_bytes
        );
    }

    let tables = outcome.tables();
    assert_eq!(tables[0].rows.len(), settings.len(), "one row per setting");
    let findings = outcome.findings();
    for setting in settings.iter().filter(|s| s.env.is_some()) {
        let verdict = findings.iter().find(|f| f.starts_with(&format!("{}:", setting.label)));
        let verdict = verdict.unwrap_or_else(|| panic!("a verdict for {}: {findings:#?}", setting.label));
        assert!(
            verdict.contains("peak RSS") && verdict.contains("p99") && verdict.contains(" ns"),
            "{verdict}"
        );
    }
    assert!(outcome.runs.iter().any(|r| r.setting.allocator == AllocatorKind::Jemalloc));

    let dir = TempDir::new("tune-report").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    assert!(support::is_png(&dir.path().join("tune-rss.png")));
    assert!(support::is_png(&dir.path().join("tune-p99.png")));
    let series = std::fs::read_to_string(dir.path().join("tune-rss.csv")).unwrap();
    for setting in &settings {
        assert!(
            series.lines().any(|l| l.starts_with(&format!("{},", setting.label))
                || l.starts_with(&format!("\"{}\",", setting.label))),
            "{} has an RSS curve",
            setting.label
        );
    }
}

#[test]
fn the_binary_prints_the_table_and_writes_the_chart() {
    let dir = TempDir::new("tune-cli").unwrap();
    let output = Command::new(support::lab_exe())
        .args(["tune", "--quick", "--decay-wait-ms", "50", "--out"])
        .arg(dir.path())
        .output()
        .expect("run allockit-lab tune");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for label in ["glibc MALLOC_ARENA_MAX=1", "jemalloc narenas:1", "jemalloc background_thread:true"] {
        assert!(stdout.lines().any(|l| l.starts_with(label)), "a row for {label}:\n{stdout}");
    }
    assert!(stdout.contains("* glibc MALLOC_ARENA_MAX=1: "), "{stdout}");
    assert!(support::is_png(&dir.path().join("tune-rss.png")));
    assert!(dir.path().join("tune.md").is_file());
}
