mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allockit_lab::LabError;
use allockit_lab::Scale;
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::profile::{self, ProfileSource, ServerProfile, Symbolized};
use allockit_lab::report;

#[test]
fn the_heap_profile_ranks_sites_by_live_bytes_and_a_server_route_serves_the_same_dump() {
    let outcome = profile::run_workload(support::lab_exe(), Scale::Quick).unwrap();
    assert!(matches!(outcome.symbolized, Symbolized::Jeprof { .. }), "jeprof comes with libjemalloc-dev");
    assert_eq!(outcome.summary.sample_period, 524288.0, "lg_prof_sample:19 reached jemalloc");
    let ProfileSource::Workload(found) = &outcome.source else { panic!("workload source") };
    let run = &found.run;
    let sessions = outcome.site_bytes("retain_session_table").expect("the biggest site is in the profile");
    let index = outcome.site_bytes("retain_index_strings").expect("the second site is in the profile");
    assert!(sessions > index, "sessions {sessions} must outrank the index {index}");
    assert!(
        sessions > 0.5 * run.session_bytes as f64 && sessions < 1.5 * run.session_bytes as f64,
        "the sampled estimate {sessions} is near the {} bytes really live",
        run.session_bytes
    );
    let churn = outcome.site_bytes("churn_request_buffers").unwrap_or(0.0);
    assert!(churn < index / 4.0, "freed memory is not live: churn {churn}");
    assert_eq!(&outcome.pprof[..2], &[0x1f, 0x8b], "pprof output is gzipped");

    // True live bytes count every allocation the site holds at its size class: the string
    // index's outer Vec (a power-of-two capacity of 24-byte Strings, at least index_bytes / 256
    // of them) and the strings rounded up to jemalloc's classes (over the String::len payload).
    let [true_sessions, true_index, true_churn] = run.true_live_bytes;
    let min_strings = run.index_bytes / 256;
    let vec_buffer = min_strings.next_power_of_two() * 24;
    assert!(
        true_index >= run.index_bytes + vec_buffer,
        "index: {true_index} < payload + Vec buffer {vec_buffer}"
    );
    assert!(
        true_index as f64 >= 38.0 / 32.0 * run.index_bytes as f64,
        "index: {true_index} is at least 38 MiB per 32 MiB of payload (Vec buffer and size classes)"
    );
    assert!(true_sessions >= run.session_bytes + run.session_bytes / 4096 * 24, "sessions: {true_sessions}");
    assert_eq!(true_churn, 0, "the churned buffers are all freed");
    let index_error = profile::error_percent(index, true_index as f64);
    assert!(
        index_error.abs() < 60.0,
        "the index estimate {index} is near its true {true_index}: {index_error:+.1}%"
    );
    assert!(outcome.summary.samples as usize > outcome.summary.stacks, "samples are counted, not stacks");

    // The sweep: a row per setting with a run per round, and a finer rate takes more samples.
    let sweep = &found.sweep;
    assert_eq!(
        sweep.rows.iter().map(|row| row.lg_prof_sample).collect::<Vec<_>>(),
        profile::SWEEP_LG_PROF_SAMPLE,
        "one row per lg_prof_sample"
    );
    assert!(
        sweep.baseline.len() >= 3 && sweep.baseline.iter().all(|run| !run.profiling),
        "profiling-off rounds"
    );
    for row in &sweep.rows {
        assert_eq!(
            row.runs.len(),
            sweep.baseline.len(),
            "lg_prof_sample:{}: a run per round",
            row.lg_prof_sample
        );
        assert!(row.runs.iter().all(|r| r.run.lg_prof_sample == row.lg_prof_sample as usize));
    }
    let samples = |lg| sweep.row(lg).unwrap().samples().into_iter().fold(f64::INFINITY, f64::min);
    assert!(samples(12) > 8.0 * samples(19), "4 KiB sampling takes far more samples than 512 KiB");
    let table = sweep.table();
    assert_eq!(table.rows.len(), 1 + profile::SWEEP_LG_PROF_SAMPLE.len(), "off, then a row per setting");

    // Leak or churn: the base diff marks the growing site growing and the churner stable.
    let watch = &found.leak_watch;
    assert_eq!(watch.trend_of("grow_session_cache"), Some(profile::Trend::Growing), "{:?}", watch.sites);
    assert_eq!(watch.trend_of("churn_parse_buffers"), Some(profile::Trend::Stable), "{:?}", watch.sites);
    let [grown, churned] = watch.run.allocated_between;
    assert!(churned > 2 * grown, "the churner allocates more than the leak between the dumps");
    assert!(matches!(outcome.call_graph, profile::CallGraph::Pdf(_)), "graphviz and ghostscript installed");

    let dir = TempDir::new("profile-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    for file in
        ["profile.md", "profile.csv", "profile.heap", "profile.pb.gz", "leak-first.heap", "leak-second.heap"]
    {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    assert!(support::is_png(&dir.path().join("profile.png")));
    let pdf = std::fs::read(dir.path().join("profile.pdf")).expect("jeprof --pdf's call graph is written");
    assert!(pdf.starts_with(b"%PDF"), "profile.pdf is a PDF");

    let dump = outcome.dump.clone();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let url = support::serve(move |_, request| {
        let line = request.head.lines().next().unwrap_or_default().to_owned();
        seen.lock().unwrap().push(line.clone());
        if !request.head.contains("Authorization: Bearer s3cret\r\n") {
            (401, b"missing token".to_vec())
        } else if line.starts_with("GET /admin/heap-profile ") {
            (200, dump.clone())
        } else {
            (200, b"{}".to_vec())
        }
    });
    let route = format!("{url}/admin/heap-profile");
    let server = ServerProfile {
        url: &route,
        server_bin: support::lab_exe(),
        token: Some("s3cret"),
        sample_for: Some(Duration::from_millis(50)),
    };
    let fetched = profile::run_url(&server).unwrap();
    assert_eq!(fetched.dump, outcome.dump);
    assert!(
        fetched.site_bytes("retain_session_table").unwrap()
            > fetched.site_bytes("retain_index_strings").unwrap()
    );
    assert_eq!(
        *requests.lock().unwrap(),
        [
            "POST /admin/profiling?active=true HTTP/1.1",
            "GET /admin/heap-profile HTTP/1.1",
            "POST /admin/profiling?active=false HTTP/1.1"
        ],
        "sampling is switched on for the window and off after the dump"
    );

    let refused = profile::run_url(&ServerProfile { token: None, sample_for: None, ..server }).unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
}

#[test]
fn a_missing_server_binary_is_refused_naming_the_flag() {
    let server = ServerProfile {
        url: "http://127.0.0.1:1/admin/heap-profile",
        server_bin: Path::new("no/such/binary"),
        token: None,
        sample_for: None,
    };
    let err = profile::run_url(&server).unwrap_err();
    assert!(matches!(err, LabError::InvalidArgument { flag: "--server-bin", .. }), "{err}");
}
