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
    let ProfileSource::Workload(run) = &outcome.source else { panic!("workload source") };
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

    let dir = TempDir::new("profile-test").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    for file in ["profile.md", "profile.csv", "profile.heap", "profile.pb.gz"] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    assert!(support::is_png(&dir.path().join("profile.png")));

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
