//! Valgrind's memcheck sees what the arena and the pool hand out (the `valgrind` feature).
//!
//! Each test re-runs this test binary under `valgrind --error-exitcode=99`, with
//! `ALLOCKIT_VALGRIND_CHILD` naming what the child does: a misuse, which memcheck must report
//! (exit status 99 and the report on stderr), or the same steps used correctly, which it must
//! not. Valgrind must be installed (scripts/install-deps installs it); without it the tests
//! fail and say so. Run by scripts/test: `cargo test -p allockit --features valgrind --test
//! valgrind`.
#![cfg(feature = "valgrind")]

use std::alloc::Layout;
use std::process::Command;
use std::sync::Arc;

use allockit::{Arena, ChunkSource, RawPool};

/// The environment variable that puts this binary in child mode.
const CHILD: &str = "ALLOCKIT_VALGRIND_CHILD";

/// memcheck's exit status when it found errors (`--error-exitcode`).
const ERRORS_FOUND: i32 = 99;

/// Runs `test` (a test of this binary) under memcheck with `CHILD=mode`; returns its exit
/// status and stderr.
fn under_memcheck(test: &str, mode: &str) -> (Option<i32>, String) {
    let installed = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "valgrind is missing: these tests run the test binary under memcheck (scripts/install-deps installs it)"
    );
    let output = Command::new("valgrind")
        .args(["--quiet", "--error-exitcode=99", "--leak-check=no"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The child's side: which scenario to run, if this process is a child.
fn child_mode() -> Option<String> {
    std::env::var(CHILD).ok()
}

#[test]
fn memcheck_reports_a_read_after_arena_reset() {
    if let Some(mode) = child_mode() {
        assert!(allockit::valgrind::running_on_valgrind(), "the child runs under valgrind");
        let mut arena = Arena::new();
        let value = arena.alloc(0x1234_5678u64).unwrap();
        let stale = value as *const u64;
        assert_eq!(*value, 0x1234_5678);
        arena.reset();
        if mode == "misuse" {
            // SAFETY: deliberately not: the arena was reset, so this read is a use after
            // reset (of memory the arena still holds, so it cannot fault).
            std::hint::black_box(unsafe { stale.read_volatile() });
        }
        let again = arena.alloc(7u64).unwrap();
        assert_eq!(*again, 7);
        return;
    }
    let (status, report) = under_memcheck("memcheck_reports_a_read_after_arena_reset", "misuse");
    assert_eq!(status, Some(ERRORS_FOUND), "memcheck did not report the read after reset:\n{report}");
    assert!(report.contains("Invalid read of size 8"), "{report}");
    let (status, report) = under_memcheck("memcheck_reports_a_read_after_arena_reset", "correct");
    assert_eq!(status, Some(0), "memcheck reported correct use of an arena:\n{report}");
}

#[test]
fn memcheck_reports_a_read_of_a_freed_pool_block() {
    if let Some(mode) = child_mode() {
        let pool = RawPool::new(Arc::clone(ChunkSource::global()), Layout::new::<[u64; 4]>(), 1).unwrap();
        let block = pool.alloc().unwrap().cast::<u64>();
        // SAFETY: a fresh block of 4 u64s.
        unsafe { block.as_ptr().add(2).write(5) };
        // SAFETY: the block came from this pool.
        unsafe { pool.dealloc(block.cast()) };
        if mode == "misuse" {
            // SAFETY: deliberately not: the block was freed.
            std::hint::black_box(unsafe { block.as_ptr().add(2).read_volatile() });
        }
        // The block comes back (LIFO) writable, and the pool still reads its free list.
        let again = pool.alloc().unwrap().cast::<u64>();
        assert_eq!(again, block);
        // SAFETY: a fresh block of 4 u64s, ours until freed.
        unsafe {
            again.as_ptr().write(1);
            pool.dealloc(again.cast());
        }
        return;
    }
    let (status, report) = under_memcheck("memcheck_reports_a_read_of_a_freed_pool_block", "misuse");
    assert_eq!(status, Some(ERRORS_FOUND), "memcheck did not report the read after free:\n{report}");
    assert!(report.contains("Invalid read of size 8"), "{report}");
    let (status, report) = under_memcheck("memcheck_reports_a_read_of_a_freed_pool_block", "correct");
    assert_eq!(status, Some(0), "memcheck reported correct use of a pool:\n{report}");
}

#[test]
fn memcheck_reports_a_branch_on_a_fresh_arena_allocation() {
    if let Some(mode) = child_mode() {
        let arena = Arena::new();
        let fresh = arena.alloc_layout(Layout::new::<u64>()).unwrap().cast::<u64>();
        if mode == "correct" {
            // SAFETY: the fresh allocation is ours and sized for a u64.
            unsafe { fresh.as_ptr().write(3) };
        }
        // SAFETY: in "misuse" deliberately not: the allocation was never written, so its
        // contents are undefined (the memory itself is the arena's and readable).
        let value = unsafe { fresh.as_ptr().read_volatile() };
        // A branch on the value: memcheck reports uses of undefined bytes where they decide
        // something, not where they are copied.
        if std::hint::black_box(value) == 3 {
            eprintln!("the allocation holds 3");
        }
        return;
    }
    let (status, report) = under_memcheck("memcheck_reports_a_branch_on_a_fresh_arena_allocation", "misuse");
    assert_eq!(status, Some(ERRORS_FOUND), "memcheck did not report the uninitialised read:\n{report}");
    assert!(report.contains("uninitialised value"), "{report}");
    let (status, report) = under_memcheck("memcheck_reports_a_branch_on_a_fresh_arena_allocation", "correct");
    assert_eq!(status, Some(0), "memcheck reported correct use of an arena:\n{report}");
}
