//! # allockit-lab
//!
//! The measurement experiments of the allocator tasks, as a library so tests and other
//! tools can call them; the `allockit-lab` binary only parses arguments and prints.
//!
//! | module | task | what it measures |
//! |---|---|---|
//! | [`usable_size`] | 1 | `malloc_usable_size`, size classes, RSS per 1-byte object, per allocator |
//! | [`syscall_cost`] | 2 | `malloc`/`free` vs `mmap`/`munmap` (and first touch), ns per pair |
//! | [`fragmentation`] | 3 | every other block freed: does a larger block fit in the holes, before and after coalescing (glibc, allockit's free list); internal fragmentation of the same requests (and odd sizes) on glibc, the free list and the size-class heap |
//! | [`properties`] | 4–6 | arena alignment and exhaustion, pool block size and exhaustion, free-list realloc round trip, split threshold, coalescing after mixed cycles: each figure with PASS/FAIL |
//! | [`placement`] | 7 | first, next, best fit (and FIFO first fit) on one seeded trace: footprint, fragmentation over time, throughput |
//! | [`size_classes`] | 8 | size classes vs one free list on that trace: speedup, internal fragmentation per class |
//! | [`swap`] | 9 | one binary on glibc, jemalloc, tcmalloc, mimalloc, allockit-malloc in rotated rounds: throughput, steady, peak and after-decay RSS |
//! | [`diagnose`] | 10 | leak or fragmentation, from jemalloc's allocated/active/resident; fixes measured |
//! | [`profile`] | 11 | jemalloc heap profile: top allocation sites by live bytes (jeprof, pprof) |
//! | [`malloc_path`] | self-assessment | `malloc(24)` with no system call; the rare paths' `brk`/`mmap`, counted under strace |
//! | [`tune`] | self-assessment | glibc `MALLOC_ARENA_MAX` and jemalloc `MALLOC_CONF`: RSS over time, p99, throughput |
//!
//! Every number is measured where the code runs. Experiments that compare allocators
//! re-execute the lab binary with `LD_PRELOAD` ([`child`], [`allocator`]); the lab binary
//! therefore has no `#[global_allocator]` and runs on the system `malloc`. Each result
//! implements [`report::Outcome`], which renders it as a terminal table or as Markdown,
//! CSV and PNG files ([`report`], [`chart`]). Tasks 7 and 8 replay one generated trace
//! ([`trace`]) on allockit's heaps in the lab's own process.
//!
//! ```no_run
//! use allockit_lab::{report, syscall_cost};
//!
//! let outcome = syscall_cost::run(&syscall_cost::SyscallCostOptions::quick())?;
//! print!("{}", report::render_text(&outcome));
//! assert!(outcome.ratio_to_malloc(syscall_cost::Operation::MmapMunmap) > 1.0);
//! # Ok::<(), allockit_lab::LabError>(())
//! ```
#![deny(missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod allocator;
pub mod chart;
pub mod child;
mod error;
pub mod experiments;
pub mod glibc;
pub mod jemalloc;
pub mod process;
pub mod report;
pub mod scale;
pub mod trace;

// The experiments keep their short paths (`allockit_lab::swap`), which the binary, the
// tests and the docs use.
pub use experiments::{
    diagnose, fragmentation, malloc_path, placement, profile, properties, services, size_classes, swap,
    syscall_cost, tune, usable_size, verdict,
};

use std::path::Path;

pub use error::LabError;
pub use scale::{AtScale, Scale};

/// Runs every experiment at `scale` in turn with the lab binary `exe`, handing each result
/// to `finished` as soon as it is ready, and returns them all (for
/// [`report::write_report`]).
pub fn run_all(
    exe: &Path,
    scale: Scale,
    mut finished: impl FnMut(&dyn report::Outcome),
) -> Result<Vec<Box<dyn report::Outcome>>, LabError> {
    let mut outcomes: Vec<Box<dyn report::Outcome>> = Vec::new();
    let mut keep = |outcome: Box<dyn report::Outcome>| {
        finished(outcome.as_ref());
        outcomes.push(outcome);
    };
    keep(Box::new(usable_size::run(exe, &AtScale::at(scale))?));
    keep(Box::new(syscall_cost::run(&AtScale::at(scale))?));
    keep(Box::new(fragmentation::run(exe, &AtScale::at(scale))?));
    keep(Box::new(properties::run(&AtScale::at(scale))?));
    keep(Box::new(placement::run(&AtScale::at(scale))?));
    keep(Box::new(size_classes::run(&AtScale::at(scale))?));
    keep(Box::new(swap::run(exe, &swap::SwapOptions::at(scale))?));
    keep(Box::new(diagnose::run_synthetic(exe, &AtScale::at(scale))?));
    keep(Box::new(profile::run_workload(exe, scale)?));
    keep(Box::new(malloc_path::run(exe, &AtScale::at(scale))?));
    keep(Box::new(tune::run(exe, &AtScale::at(scale))?));
    Ok(outcomes)
}

/// Runs the child task `name` with JSON `params` in this process (the lab binary's hidden
/// `child` subcommand, see [`child`]); returns the JSON envelope to print. The table of
/// tasks lives here, above both the experiments that define tasks and the [`child`]
/// module that runs them, so neither imports the other back.
pub fn run_child_task(name: &str, params: &str) -> Result<String, LabError> {
    use child::{ChildTask, run_task};
    match name {
        fragmentation::FragmentationRun::NAME => run_task::<fragmentation::FragmentationRun>(params),
        fragmentation::InternalRun::NAME => run_task::<fragmentation::InternalRun>(params),
        usable_size::SizeProbe::NAME => run_task::<usable_size::SizeProbe>(params),
        swap::Workload::NAME => run_task::<swap::Workload>(params),
        services::Service::NAME => run_task::<services::Service>(params),
        profile::LeakWatch::NAME => run_task::<profile::LeakWatch>(params),
        profile::ProfiledWorkload::NAME => run_task::<profile::ProfiledWorkload>(params),
        malloc_path::MallocPath::NAME => run_task::<malloc_path::MallocPath>(params),
        tune::TuneWorkload::NAME => run_task::<tune::TuneWorkload>(params),
        other => Err(LabError::InvalidArgument {
            flag: "child TASK",
            reason: format!("unknown child task `{other}`"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_child_tasks_are_rejected_by_name() {
        let err = run_child_task("no-such-task", "{}").unwrap_err();
        assert!(err.to_string().contains("no-such-task"), "{err}");
    }
}
