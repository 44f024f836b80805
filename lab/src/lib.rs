//! # allockit-lab
//!
//! The measurement experiments of the allocator tasks, as a library so tests and other
//! tools can call them; the `allockit-lab` binary only parses arguments and prints.
//!
//! | module | task | what it measures |
//! |---|---|---|
//! | [`usable_size`] | 1 | `malloc_usable_size`, size classes, RSS per 1-byte object, per allocator |
//! | [`syscall_cost`] | 2 | `malloc`/`free` vs `mmap`/`munmap` (and first touch), ns per pair |
//! | [`fragmentation`] | 3 | every other block freed: does a larger block fit in the holes, before and after coalescing (glibc, allockit's free list) |
//! | [`placement`] | 7 | first, next, best fit (and FIFO first fit) on one seeded trace: footprint, fragmentation over time, throughput |
//! | [`size_classes`] | 8 | size classes vs one free list on that trace: speedup, internal fragmentation per class |
//! | [`swap`] | 9 | one binary on glibc, jemalloc, tcmalloc, mimalloc, allockit-malloc: throughput, RSS over time |
//! | [`diagnose`] | 10 | leak or fragmentation, from jemalloc's allocated/active/resident; fixes measured |
//! | [`profile`] | 11 | jemalloc heap profile: top allocation sites by live bytes (jeprof, pprof) |
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
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod allocator;
pub mod chart;
pub mod child;
pub mod diagnose;
mod error;
pub mod fragmentation;
pub mod glibc;
pub mod http;
pub mod jemalloc;
pub mod placement;
pub mod process;
pub mod profile;
pub mod prom;
pub mod report;
pub mod services;
pub mod size_classes;
pub mod swap;
pub mod syscall_cost;
pub mod trace;
pub mod usable_size;
pub mod verdict;

use std::path::Path;

pub use error::LabError;

/// How much work the experiments do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The documented experiment sizes (a few minutes in all on a loaded 2-core machine).
    Full,
    /// Small sizes for the test suite (a few seconds in all).
    Quick,
}

/// Runs every experiment in turn with the lab binary `exe`, handing each result to
/// `finished` as soon as it is ready, and returns them all (for [`report::write_report`]).
pub fn run_all(
    exe: &Path,
    scale: Scale,
    mut finished: impl FnMut(&dyn report::Outcome),
) -> Result<Vec<Box<dyn report::Outcome>>, LabError> {
    let quick = scale == Scale::Quick;
    let mut outcomes: Vec<Box<dyn report::Outcome>> = Vec::new();
    let mut keep = |outcome: Box<dyn report::Outcome>| {
        finished(outcome.as_ref());
        outcomes.push(outcome);
    };
    let probe = if quick { usable_size::SizeProbe::quick() } else { usable_size::SizeProbe::full() };
    keep(Box::new(usable_size::run(exe, &probe)?));
    let costs = if quick {
        syscall_cost::SyscallCostOptions::quick()
    } else {
        syscall_cost::SyscallCostOptions::full()
    };
    keep(Box::new(syscall_cost::run(&costs)?));
    let fragments = if quick {
        fragmentation::FragmentationOptions::quick()
    } else {
        fragmentation::FragmentationOptions::full()
    };
    keep(Box::new(fragmentation::run(exe, &fragments)?));
    let policies =
        if quick { placement::PlacementOptions::quick() } else { placement::PlacementOptions::full() };
    keep(Box::new(placement::run(&policies)?));
    let classes = if quick {
        size_classes::SizeClassesOptions::quick()
    } else {
        size_classes::SizeClassesOptions::full()
    };
    keep(Box::new(size_classes::run(&classes)?));
    let workload = if quick { swap::Workload::quick() } else { swap::Workload::full() };
    keep(Box::new(swap::run(exe, &swap::SwapOptions::for_workload(workload))?));
    let services = if quick { diagnose::DiagnoseOptions::quick() } else { diagnose::DiagnoseOptions::full() };
    keep(Box::new(diagnose::run_synthetic(exe, &services)?));
    let profile_scale = if quick { profile::ProfileScale::Quick } else { profile::ProfileScale::Full };
    keep(Box::new(profile::run_workload(exe, profile_scale)?));
    Ok(outcomes)
}
