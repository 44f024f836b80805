//! Real programs under `LD_PRELOAD` of the built library: their output must be identical
//! to the same run under glibc, and each program checks `/proc/self/maps` that the library
//! is really mapped into it (under glibc, that it is not). Python 3 (threads, dicts,
//! strings, json, `os.fork`), a C++ program using standard containers across threads
//! (compiled here with `g++`), and the project's own `allockit-lab`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::built_library;

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// Runs `command` twice, under glibc and under the library; returns both outputs after
/// checking that each succeeded, that each says (on stderr) which malloc it ran on, and
/// that the library's exit report (`ALLOCKIT_SHOW_STATS=1`) shows it served allocations
/// (mapped is not enough: a build without the `override` feature maps but replaces nothing).
fn run_both(mut make: impl FnMut() -> Command) -> (Output, Output) {
    let library = built_library();
    let glibc = make().env_remove("LD_PRELOAD").output().expect("run under glibc");
    let ours = make()
        .env("LD_PRELOAD", &library)
        .env("ALLOCKIT_SHOW_STATS", "1")
        .output()
        .expect("run under allockit-malloc");
    let report = String::from_utf8_lossy(&ours.stderr);
    let served = report
        .lines()
        .filter_map(|line| line.trim().strip_prefix("small+medium: ")?.split(' ').next()?.parse::<u64>().ok())
        .max();
    assert!(served.is_some_and(|n| n > 0), "no allocation served by the library: {report}");
    for (name, output, mapped) in [("glibc", &glibc, "False"), ("allockit", &ours, "True")] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name} run failed: {:?}\n{stderr}", output.status);
        if !stderr.contains("allockit mapped:") {
            continue;
        }
        assert!(stderr.contains(&format!("allockit mapped: {mapped}")), "{name}: {stderr}");
    }
    (glibc, ours)
}

#[test]
fn python_runs_the_same_on_allockit_malloc() {
    let script = programs_dir().join("workload.py");
    let (glibc, ours) = run_both(|| {
        let mut command = Command::new("python3");
        command.arg(&script);
        command
    });
    let stdout = String::from_utf8_lossy(&ours.stdout);
    assert!(stdout.contains("child status 0"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&glibc.stdout), stdout);
    assert!(String::from_utf8_lossy(&ours.stderr).contains("allockit mapped: True"));
}

#[test]
fn a_threaded_cpp_program_runs_the_same_on_allockit_malloc() {
    let dir = std::env::temp_dir().join(format!("allockit-malloc-cpp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("containers");
    let compile = Command::new("g++")
        .args(["-O1", "-std=c++17", "-pthread", "-o"])
        .arg(&binary)
        .arg(programs_dir().join("containers.cpp"))
        .output()
        .expect("g++ (scripts/install-deps installs it)");
    assert!(compile.status.success(), "g++ failed: {}", String::from_utf8_lossy(&compile.stderr));
    let (glibc, ours) = run_both(|| Command::new(&binary));
    let stdout = String::from_utf8_lossy(&ours.stdout);
    assert!(stdout.starts_with("entries 160000 checksum "), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&glibc.stdout), stdout);
    assert!(String::from_utf8_lossy(&ours.stderr).contains("allockit mapped: True"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The figures of `allockit-lab placement` that do not depend on timing: each policy's
/// footprint, efficiency and fragmentation (the replay is seeded), not its operations/s.
fn placement_figures(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| {
            let figures = line.strip_prefix("* ")?;
            let cut = figures.find(" free blocks on average")?;
            Some(figures[..cut].to_string())
        })
        .collect()
}

#[test]
#[ignore = "needs target/<profile>/allockit-lab: scripts/test runs it after the workspace build"]
fn the_lab_binary_replays_the_same_trace_on_allockit_malloc() {
    let library = built_library();
    let profile_dir = library.parent().unwrap();
    let profile_dir = if profile_dir.ends_with("deps") { profile_dir.parent().unwrap() } else { profile_dir };
    let lab = profile_dir.join("allockit-lab");
    assert!(lab.exists(), "{} missing: build it first (cargo build -p allockit-lab)", lab.display());
    let (glibc, ours) = run_both(|| {
        let mut command = Command::new(&lab);
        command.args(["placement", "--quick"]);
        command
    });
    let (glibc, ours) = (
        placement_figures(&String::from_utf8_lossy(&glibc.stdout)),
        placement_figures(&String::from_utf8_lossy(&ours.stdout)),
    );
    assert_eq!(ours.len(), 4, "one summary line per policy: {ours:?}");
    assert_eq!(glibc, ours);
}
