//! `allockit-lab malloc-path`, run as the real binary at the test scale: the figures'
//! structure and the facts it exists to show.

mod support;

use std::process::Command;

use allockit_lab::allocator::AllocatorKind;
use allockit_lab::malloc_path::{self, MallocPath, PHASES};
use allockit_lab::process::{Machine, TempDir};
use allockit_lab::report;

#[test]
fn the_binary_prints_both_tables_and_writes_the_report_files() {
    let dir = TempDir::new("malloc-path-cli").unwrap();
    let output = Command::new(support::lab_exe())
        .args(["malloc-path", "--quick", "--out"])
        .arg(dir.path())
        .output()
        .expect("run allockit-lab malloc-path");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("malloc(24)/free after warm-up"), "{stdout}");
    assert!(stdout.contains("Rare paths"), "{stdout}");
    assert!(
        stdout.contains("glibc: 0 system calls over 1000000 malloc(24)/free pairs"),
        "the steady loop makes no system call on glibc:\n{stdout}"
    );
    for file in ["malloc-path.md", "malloc-path.csv", "malloc-path.png"] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    assert!(support::is_png(&dir.path().join("malloc-path.png")));
    let csv = std::fs::read_to_string(dir.path().join("malloc-path.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("glibc,steady,1000000,")), "{csv}");
}

#[test]
fn glibc_serves_malloc_24_without_a_system_call_and_its_rare_paths_call_brk_and_mmap() {
    let options = MallocPath::quick();
    let outcome = malloc_path::run(support::lab_exe(), &options).unwrap();
    assert!(
        outcome.missing.is_empty(),
        "scripts/install-deps installs jemalloc and scripts/test builds allockit-malloc (release): {:?}",
        outcome.missing
    );
    let labels: Vec<&str> = outcome.runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["glibc", "glibc, tcache_count=0", "jemalloc", "allockit"]);
    for run in &outcome.runs {
        let phases: Vec<&str> = run.timed.phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(phases, PHASES, "{}", run.label);
        assert!(run.timed.steady_ns_per_pair > 0.0, "{}", run.label);
        for phase in PHASES {
            assert!(run.calls.contains_key(phase), "{}: the trace has the {phase} markers", run.label);
        }
    }

    let glibc = &outcome.runs[0];
    assert_eq!(glibc.allocator, AllocatorKind::Glibc);
    assert_eq!(
        glibc.calls("steady").total(),
        0,
        "no system call in a million pairs: {:?}",
        glibc.calls("steady")
    );
    let evidence = glibc.timed.glibc.expect("mallinfo2 evidence on glibc");
    assert_eq!(evidence.frees_absorbed_before_fastbin, 7, "the tcache holds 7 chunks per size by default");
    assert_eq!(evidence.fastbin_chunk_bytes, 32, "malloc(24) is a 32-byte chunk");

    let growth = glibc.calls("heap-growth");
    assert!(growth.count("brk") > 0, "the heap top grows with brk: {growth:?}");
    assert!(growth.brk_deltas.iter().all(|d| *d > 0), "{growth:?}");
    assert_eq!(growth.count("mmap"), 0, "blocks below the threshold never mmap: {growth:?}");

    let first = glibc.calls("large-first");
    assert_eq!(first.count("mmap"), 1, "{first:?}");
    assert_eq!(first.count("munmap"), 1, "{first:?}");
    assert!(first.mmaps[0].0 >= options.large_size as u64, "{first:?}");
    assert_eq!(evidence.mmapped_chunks_first, 1);
    let second = glibc.calls("large-second");
    assert_eq!(second.count("mmap"), 0, "the free raised the mmap threshold: {second:?}");
    assert_eq!(evidence.mmapped_chunks_second, 0);
    assert_eq!(glibc.calls("large-again").total(), 0);

    let thread = glibc.calls("thread-first");
    assert!(
        thread.mmaps.iter().any(|(len, prot_none)| *prot_none && *len >= 64 << 20),
        "a new arena reserves its heap (HEAP_MAX, 64 MiB) PROT_NONE: {thread:?}"
    );
    assert_eq!(thread.net_mapped(), 64 << 20, "{thread:?}");
    assert_eq!(glibc.calls("thread-second").total(), 0);

    let no_tcache = &outcome.runs[1];
    assert_eq!(no_tcache.calls("steady").total(), 0);
    assert_eq!(no_tcache.timed.glibc.expect("mallinfo2").frees_absorbed_before_fastbin, 0, "no tcache");

    let jemalloc = &outcome.runs[2];
    assert_eq!(jemalloc.timed.glibc, None, "mallinfo2 is read on glibc only");
    assert_eq!(jemalloc.calls("heap-growth").count("brk"), 0, "jemalloc grows with mmap");
    let allockit = &outcome.runs[3];
    let growth = allockit.calls("heap-growth");
    assert!(
        growth.count("brk") == 0 && growth.count("mmap") > 0,
        "allockit-malloc maps segments: {growth:?}"
    );

    let dir = TempDir::new("malloc-path-report").unwrap();
    report::write_outcome(dir.path(), &outcome, &Machine::describe()).unwrap();
    let page = std::fs::read_to_string(dir.path().join("malloc-path.md")).unwrap();
    assert!(page.contains("| glibc | heap-growth |"), "{page}");
}
