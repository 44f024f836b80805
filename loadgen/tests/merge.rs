//! Several instances as one: three `loadgen` processes started together with `--start-at`
//! against one server, each writing `--json` and `--hdr-log`, then `loadgen merge`. The
//! merged counts must be the sums, and the merged percentiles those of one histogram of all
//! three instances' samples (read from their interval logs, not from the reports).

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use loadgen::recorder::{decode_histogram, empty_histogram};
use serde_json::Value;
use support::{Behaviour, TestServer, scratch_dir};

async fn loadgen(args: &[String]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).output();
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("loadgen hung").unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every interval tagged `tag` in the interval log at `path`, added up.
fn logged(path: &Path, tag: &str) -> Histogram<u64> {
    let log = std::fs::read(path).unwrap();
    let mut total = empty_histogram().unwrap();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(interval) = entry.unwrap()
            && interval.tag().map(|tag| tag.as_str()) == Some(tag)
        {
            total.add(decode_histogram(interval.encoded_histogram()).unwrap()).unwrap();
        }
    }
    total
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_started_together_merge_into_one_exact_report() {
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(2)), None).await;
    let directory = scratch_dir("merge");
    let start_at = SystemTime::now() + Duration::from_secs(4);
    let start_unix_s = start_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let start_text = format!("{start_unix_s:.3}");
    let url = server.url();
    let instance = |number: usize| {
        let json = directory.join(format!("instance-{number}.json"));
        let hlog = directory.join(format!("instance-{number}.hlog"));
        let rps = ["40", "60", "80"][number];
        let run = args(&[
            "--rps",
            rps,
            "--duration",
            "2s",
            "--connections",
            "2",
            "--no-scrape",
            "--quiet",
            "--start-at",
            &start_text,
            "--json",
            json.to_str().unwrap(),
            "--hdr-log",
            hlog.to_str().unwrap(),
            &url,
        ]);
        async move { (loadgen(&run).await, json, hlog) }
    };
    let runs = tokio::join!(instance(0), instance(1), instance(2));
    let runs = [runs.0, runs.1, runs.2];
    for (output, _, _) in &runs {
        assert_eq!(output.status.code(), Some(0), "{}", text(output));
    }
    let reports: Vec<Value> = runs.iter().map(|(_, json, _)| read_json(json)).collect();
    for report in &reports {
        let started = report["start_unix_s"].as_f64().unwrap();
        assert!((started - start_unix_s).abs() < 0.001, "each instance started at --start-at: {started}");
    }
    assert_eq!(server.received(), 80 + 120 + 160);

    let merged_dir = directory.join("merged");
    let mut merge = args(&["merge"]);
    merge.extend(runs.iter().map(|(_, json, _)| json.display().to_string()));
    merge.extend(args(&["--out", merged_dir.to_str().unwrap()]));
    let output = loadgen(&merge).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let summary = text(&output);
    assert!(summary.contains("merged from 3 runs"), "{summary}");
    assert!(summary.contains("target 180.0/s"), "{summary}");
    let merged = read_json(&merged_dir.join("report.json"));
    assert!(merged_dir.join("series.csv").is_file());

    for field in ["scheduled", "attempted", "responses", "ok", "late", "skipped", "unsent"] {
        let sum: u64 = reports.iter().map(|report| report["requests"][field].as_u64().unwrap()).sum();
        assert_eq!(merged["requests"][field].as_u64(), Some(sum), "requests.{field}");
    }
    assert_eq!(merged["requests"]["ok"], 360);
    assert_eq!(merged["connections"], 6);
    assert_eq!(merged["merged"]["files"].as_array().unwrap().len(), 3);
    // Windows that start together: the span is one window, and every row of the series
    // sums the three instances' responses of that second.
    let measured_s = merged["measured_s"].as_f64().unwrap();
    assert!((measured_s - 2.0).abs() < 0.01, "measured {measured_s} s");
    let series_responses: u64 =
        merged["series"].as_array().unwrap().iter().map(|row| row["responses"].as_u64().unwrap()).sum();
    assert_eq!(series_responses, 360);

    // One histogram of every sample, from the three interval logs.
    for (tag, field) in [("corrected", "latency"), ("service", "service_time")] {
        let mut all = empty_histogram().unwrap();
        for (_, _, hlog) in &runs {
            all.add(logged(hlog, tag)).unwrap();
        }
        let summary = &merged[field];
        assert_eq!(summary["count"].as_u64(), Some(all.len()), "{field}.count");
        assert_eq!(all.len(), 360);
        for (key, quantile) in [("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99), ("p999_ms", 0.999)] {
            let expected = all.value_at_quantile(quantile) as f64 / 1000.0;
            let got = summary[key].as_f64().unwrap();
            assert!((got - expected).abs() <= expected * 0.001, "{field}.{key}: {got} vs {expected}");
        }
        let max = all.max() as f64 / 1000.0;
        assert!((summary["max_ms"].as_f64().unwrap() - max).abs() <= max * 0.001, "{field}.max_ms");
    }

    // A merged report merges again, unchanged in its totals.
    let again_dir = directory.join("again");
    let output = loadgen(&args(&[
        "merge",
        merged_dir.join("report.json").to_str().unwrap(),
        "--out",
        again_dir.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let again = read_json(&again_dir.join("report.json"));
    assert_eq!(again["requests"], merged["requests"]);
    assert_eq!(again["latency"], merged["latency"]);

    bad_inputs_are_named_and_never_panic(&directory, &runs[0].1).await;
    std::fs::remove_dir_all(&directory).unwrap();
}

/// Missing, foreign and mismatched files: an error naming the file, status 1; a bad
/// command line: status 2.
async fn bad_inputs_are_named_and_never_panic(directory: &Path, good: &Path) {
    let good_text = good.display().to_string();
    let missing = directory.join("missing.json");
    let foreign = directory.join("foreign.json");
    std::fs::write(&foreign, "{\"hello\": 1}").unwrap();
    let garbage = directory.join("garbage.json");
    std::fs::write(&garbage, "not json at all").unwrap();
    let longer = directory.join("longer.json");
    let mut report = read_json(good);
    report["duration_s"] = Value::from(60.0);
    std::fs::write(&longer, serde_json::to_vec(&report).unwrap()).unwrap();
    let tampered = directory.join("tampered.json");
    let mut report = read_json(good);
    report["latency"]["count"] = Value::from(1);
    std::fs::write(&tampered, serde_json::to_vec(&report).unwrap()).unwrap();
    for (file, expected) in [
        (&missing, "No such file"),
        (&foreign, "not a loadgen run report"),
        (&garbage, "not a loadgen run report"),
        (&longer, "its duration is 60 s"),
        (&tampered, "latency.count is 1"),
    ] {
        let output = loadgen(&args(&["merge", &good_text, file.to_str().unwrap()])).await;
        let message = text(&output);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(message.contains(&file.display().to_string()) && message.contains(expected), "{message}");
        assert!(!message.contains("panicked"), "{message}");
    }
    let output = loadgen(&args(&["merge"])).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("FILE"), "{}", text(&output));
}

#[tokio::test]
async fn a_start_time_in_the_past_or_far_ahead_is_a_bad_command_line() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for (start_at, expected) in [
        ((now - 60).to_string(), "passed"),
        ((now + 7200).to_string(), "more than the hour allowed"),
        ("next tuesday".to_owned(), "RFC 3339"),
    ] {
        let output =
            loadgen(&args(&["--rps", "10", "--start-at", &start_at, "--no-scrape", "http://127.0.0.1:1"]))
                .await;
        let message = text(&output);
        assert_eq!(output.status.code(), Some(2), "{message}");
        assert!(message.contains("--start-at") && message.contains(expected), "{message}");
    }
}
