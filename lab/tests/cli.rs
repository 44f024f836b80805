mod support;

use std::process::{Command, Output};

use allockit_lab::process::TempDir;

fn lab(args: &[&str]) -> Output {
    Command::new(support::lab_exe()).args(args).output().expect("run allockit-lab")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn all_writes_one_report_with_every_experiment_and_its_charts() {
    let dir = TempDir::new("all-test").unwrap();
    let out = dir.path().to_str().unwrap();
    let output = lab(&["all", "--quick", "--out", out]);
    assert!(output.status.success(), "{}", stderr(&output));
    let page = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for title in [
        "Task 1:",
        "Task 2:",
        "Task 3:",
        "Tasks 4-6:",
        "Task 7:",
        "Task 8:",
        "Task 9:",
        "Task 10:",
        "Task 11:",
        "Self-assessment: the malloc fast path",
        "Self-assessment: tuning",
    ] {
        assert!(page.contains(&format!("## {title}")), "report.md has a {title} section");
    }
    assert!(page.contains("Measured on: "));
    let images: Vec<&str> = page
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|l| l.ends_with(".png"))
        .collect();
    assert!(images.len() >= 12, "{images:?}");
    assert!(images.contains(&"tune-rss.png"), "{images:?}");
    for image in images {
        assert!(support::is_png(&dir.path().join(image)), "{image} is a PNG next to report.md");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Usable bytes per request"), "tables are printed as they finish");
}

#[test]
fn help_lists_every_experiment() {
    let output = lab(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "usable-size",
        "syscall-cost",
        "fragmentation",
        "properties",
        "placement",
        "size-classes",
        "swap",
        "diagnose",
        "profile",
        "malloc-path",
        "tune",
        "all",
    ] {
        assert!(help.contains(&format!("  {command} ")), "--help lists {command}:\n{help}");
    }
}

#[test]
fn trace_flags_are_checked_naming_the_flag() {
    for (args, flag) in [
        (&["placement", "--rounds", "0"][..], "--rounds"),
        (&["size-classes", "--allocations", "10"][..], "--allocations"),
        (&["placement", "--seed", "x"][..], "--seed"),
        (&["fragmentation", "--large-size", "100"][..], "--large-size"),
    ] {
        let output = lab(args);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr(&output).contains(flag), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn zero_iterations_are_refused_naming_the_flag() {
    let output = lab(&["syscall-cost", "--iterations", "0"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--iterations"), "{}", stderr(&output));
}

#[test]
fn url_only_flags_require_the_url() {
    let output = lab(&["diagnose", "--duration", "5"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--url"), "{}", stderr(&output));
    let output = lab(&["profile", "--url", "http://127.0.0.1:1/admin/heap-profile"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--server-bin"), "{}", stderr(&output));
}

#[test]
fn workload_flags_do_not_apply_to_a_command() {
    let output = lab(&["swap", "--threads", "2", "--", "true"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--threads"), "{}", stderr(&output));
}

#[test]
fn a_url_that_is_not_http_is_refused_naming_the_flag() {
    let output = lab(&["diagnose", "--url", "ftp://example/metrics", "--duration", "1"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--url"), "{}", stderr(&output));
}

#[test]
fn an_unreachable_metrics_url_is_one_clear_line_with_the_os_error_once() {
    let output = lab(&["diagnose", "--url", "http://127.0.0.1:1/metrics", "--duration", "1"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("GET http://127.0.0.1:1/metrics: connect to 127.0.0.1:1"), "{message}");
    assert_eq!(message.matches("os error").count(), 1, "the OS error is said once: {message}");
}
