mod support;

use std::time::Duration;

use allockit_lab::LabError;
use allockit_lab::diagnose::{self, DiagnoseOptions};
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;
use allockit_lab::services::ServiceKind;
use allockit_lab::verdict::Verdict;
use allockit_probe::metrics::JEMALLOC_ALLOCATED_BYTES;

#[test]
fn both_synthetic_services_get_the_right_verdict_and_the_fixes_move_rss() {
    let outcome = diagnose::run_synthetic(support::lab_exe(), &DiagnoseOptions::quick()).unwrap();
    let run =
        |kind, variant| outcome.run_of(kind, variant).unwrap_or_else(|| panic!("no run {kind:?} {variant}"));
    let verdict = |kind, variant| run(kind, variant).diagnosis.verdict;

    assert_eq!(verdict(ServiceKind::Leak, "as written"), Verdict::Leak);
    assert_eq!(verdict(ServiceKind::Leak, "sessions expire"), Verdict::Healthy);
    assert_eq!(verdict(ServiceKind::Fragmentation, "as written"), Verdict::Fragmentation);
    assert_eq!(
        verdict(ServiceKind::Fragmentation, "decay only"),
        Verdict::Fragmentation,
        "decay returns free pages; a page with one survivor is not free"
    );
    assert_eq!(verdict(ServiceKind::Fragmentation, "segregated + decay"), Verdict::Healthy);

    let leak = run(ServiceKind::Leak, "as written");
    assert!(leak.diagnosis.evidence.live_fit > 0.8 && leak.diagnosis.evidence.live_slope > 0.0);
    assert!(run(ServiceKind::Leak, "sessions expire").final_rss() < leak.final_rss());
    let fragmented = run(ServiceKind::Fragmentation, "as written");
    let fixed = run(ServiceKind::Fragmentation, "segregated + decay");
    assert!(
        fixed.final_rss() < 0.5 * fragmented.final_rss(),
        "segregation + decay must give most of the RSS back: {} vs {}",
        fixed.final_rss(),
        fragmented.final_rss()
    );
    assert_eq!(fixed.dirty_decay_ms, Some(0), "MALLOC_CONF reached jemalloc");
    assert!(fragmented.dirty_decay_ms.unwrap() > 0);

    let dir = TempDir::new("diagnose-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let verdicts = std::fs::read_to_string(dir.path().join("diagnose-verdicts.csv")).unwrap();
    assert_eq!(verdicts.lines().count(), 1 + diagnose::VARIANTS.len());
    assert!(support::is_png(&dir.path().join("diagnose.png")));
}

const MIB: u64 = 1024 * 1024;

fn metrics(allocated: u64, active: u64, resident: u64, pinned: u64, cache: u64) -> Vec<u8> {
    format!(
        "# TYPE jemalloc_allocated_bytes gauge\njemalloc_allocated_bytes {allocated}\n\
         jemalloc_active_bytes {active}\njemalloc_resident_bytes {resident}\n\
         process_resident_memory_bytes {}\n\
         allockit_arena_chunks{{worker=\"0\",state=\"in_use\"}} 2\n\
         allockit_arena_chunks{{worker=\"0\",state=\"idle\"}} 2\n\
         allockit_arena_chunks{{worker=\"0\",state=\"pinned\"}} {pinned}\n\
         allockit_arena_committed_bytes {}\n\
         allockit_cache_bytes {cache}\n",
        resident + (4 + pinned) * 65536 + 20 * MIB,
        (4 + pinned) * 65536,
    )
    .into_bytes()
}

#[test]
fn a_server_whose_live_bytes_climb_is_diagnosed_as_leaking_from_its_metrics() {
    let url = support::serve(|n, _| {
        let n = n as u64;
        (200, metrics(20 * MIB + n * 4 * MIB, 21 * MIB + n * 4 * MIB, 24 * MIB + n * 4 * MIB, 0, 2 * MIB))
    });
    let outcome =
        diagnose::run_url(&format!("{url}/metrics"), Duration::from_millis(400), Duration::from_millis(40))
            .unwrap();
    let run = &outcome.runs[0];
    assert!(run.samples.len() >= 5, "{} samples", run.samples.len());
    assert_eq!(run.diagnosis.verdict, Verdict::Leak, "{:?}", run.diagnosis.reasons);
}

#[test]
fn a_server_whose_cache_pins_arena_chunks_is_diagnosed_as_fragmented_from_its_metrics() {
    let url = support::serve(|n, _| {
        let pinned = 400 * n as u64;
        (200, metrics(30 * MIB, 32 * MIB, 36 * MIB, pinned, 3 * MIB + n as u64 * 1024))
    });
    let outcome =
        diagnose::run_url(&format!("{url}/metrics"), Duration::from_millis(400), Duration::from_millis(40))
            .unwrap();
    let run = &outcome.runs[0];
    assert_eq!(run.diagnosis.verdict, Verdict::Fragmentation, "{:?}", run.diagnosis.reasons);
    assert!(run.diagnosis.reasons.iter().any(|r| r.contains("pinned")), "{:?}", run.diagnosis.reasons);
}

#[test]
fn a_metrics_page_without_jemalloc_gauges_is_an_error_naming_the_metric() {
    let url = support::serve(|_, _| (200, b"process_resident_memory_bytes 1e8\n".to_vec()));
    let err =
        diagnose::run_url(&format!("{url}/metrics"), Duration::from_millis(100), Duration::from_millis(40))
            .unwrap_err();
    assert!(matches!(err, LabError::MissingMetric { metric: JEMALLOC_ALLOCATED_BYTES, .. }), "{err}");
}

#[test]
fn a_url_that_is_not_plain_http_is_a_bad_url_flag() {
    let err = diagnose::run_url(
        "https://example.com/metrics",
        Duration::from_millis(100),
        Duration::from_millis(40),
    )
    .unwrap_err();
    assert!(matches!(err, LabError::InvalidArgument { flag: "--url", .. }), "{err}");
    assert!(err.to_string().contains("https:// is not supported"), "{err}");
}

#[test]
fn an_unreachable_server_is_an_http_error() {
    let err = diagnose::run_url(
        "http://127.0.0.1:1/metrics",
        Duration::from_millis(100),
        Duration::from_millis(40),
    )
    .unwrap_err();
    assert!(matches!(err, LabError::Http { .. }), "{err}");
}
