//! The `guard` build: a double free and a free of a pointer the allocator never returned
//! stop the program with a clear message. Each misuse runs in a child process (this test
//! binary re-run with one test selected, or a C program under `LD_PRELOAD` of the guard
//! build of the library), and the test checks the child died of `SIGABRT` with the message.
#![cfg(feature = "guard")]

mod support;

use std::ffi::c_void;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use allockit_malloc::{allockit_free, allockit_malloc};

const MODE: &str = "ALLOCKIT_GUARD_TEST_MODE";

/// Runs the misuse `mode` in a child and returns its stderr, asserting it aborted.
fn misuse_in_child(mode: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "misuse", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{mode}: {:?}\n{stderr}", output.status);
    stderr
}

/// The child side: performs the misuse named by the environment (ignored when run
/// directly).
#[test]
#[ignore = "run by the other tests in a child process"]
fn misuse() {
    let Ok(mode) = std::env::var(MODE) else { return };
    // SAFETY: deliberately not: each mode breaks the free contract, which is what the
    // guard build must catch before anything is corrupted.
    unsafe {
        match mode.as_str() {
            "double-free" => {
                let block = allockit_malloc(48);
                allockit_free(block);
                allockit_free(block);
            }
            "remote-double-free" => {
                let block = allockit_malloc(300).addr();
                std::thread::spawn(move || {
                    allockit_free(std::ptr::with_exposed_provenance_mut::<c_void>(block))
                })
                .join()
                .unwrap();
                allockit_free(std::ptr::with_exposed_provenance_mut::<c_void>(block));
            }
            "large-double-free" => {
                let block = allockit_malloc(1 << 20);
                allockit_free(block);
                allockit_free(block);
            }
            "stack" => {
                let mut local = [0u64; 4];
                allockit_free(local.as_mut_ptr().cast());
            }
            "interior" => {
                let block = allockit_malloc(64).cast::<u8>();
                allockit_free(block.add(16).cast());
            }
            other => panic!("unknown mode {other}"),
        }
    }
    eprintln!("the misuse went unnoticed");
}

#[test]
fn a_double_free_stops_the_program() {
    for mode in ["double-free", "remote-double-free", "large-double-free"] {
        let stderr = misuse_in_child(mode);
        assert!(stderr.contains("allockit-malloc: free(): double free (address 0x"), "{mode}: {stderr}");
    }
}

#[test]
fn freeing_a_pointer_never_allocated_stops_the_program() {
    let stderr = misuse_in_child("stack");
    assert!(
        stderr.contains("allockit-malloc: free(): pointer was not allocated by allockit-malloc"),
        "{stderr}"
    );
    let stderr = misuse_in_child("interior");
    assert!(stderr.contains("allockit-malloc: free(): pointer is not the start of a block"), "{stderr}");
}

#[test]
fn a_c_program_double_freeing_under_ld_preload_is_stopped() {
    let dir = std::env::temp_dir().join(format!("allockit-malloc-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("double_free.c");
    std::fs::write(
        &source,
        "#include <stdlib.h>\n#include <stdio.h>\nint main(void) {\n  char *volatile p = malloc(100);\n  \
         free(p);\n  free(p);\n  puts(\"unnoticed\");\n  return 0;\n}\n",
    )
    .unwrap();
    let binary = dir.join("double_free");
    let compile = Command::new("gcc").arg("-O0").arg("-o").arg(&binary).arg(&source).output().expect("gcc");
    assert!(compile.status.success(), "{}", String::from_utf8_lossy(&compile.stderr));
    let output = Command::new(&binary).env("LD_PRELOAD", support::built_library()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(stderr.contains("allockit-malloc: free(): double free"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("unnoticed"));
    std::fs::remove_dir_all(&dir).unwrap();
}
