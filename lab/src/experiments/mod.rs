//! The experiments of the hands-on tasks, one module each, apart from the infrastructure
//! they share (child processes, allocators, reports, charts: the crate's other modules).
//! Each experiment takes its options (built at a [`Scale`] through [`AtScale`], below) and
//! returns an outcome that implements [`crate::report::Outcome`].
//!
//! [`services`] and [`verdict`] are the two halves of [`diagnose`]: the synthetic leaking
//! and fragmenting services it measures, and the rules that judge a memory series.

pub mod diagnose;
pub mod fragmentation;
pub mod malloc_path;
pub mod placement;
pub mod profile;
pub mod properties;
pub mod services;
pub mod size_classes;
pub mod swap;
pub mod syscall_cost;
pub mod tune;
pub mod usable_size;
pub mod verdict;

use crate::scale::{AtScale, Scale};

/// Implements [`AtScale`] for options types with `full()` and `quick()` constructors.
macro_rules! at_scale {
    ($($options:ty),* $(,)?) => {$(
        impl AtScale for $options {
            fn at(scale: Scale) -> Self {
                match scale {
                    Scale::Full => <$options>::full(),
                    Scale::Quick => <$options>::quick(),
                }
            }
        }
    )*};
}

at_scale!(
    usable_size::SizeProbe,
    syscall_cost::SyscallCostOptions,
    fragmentation::FragmentationOptions,
    placement::PlacementOptions,
    size_classes::SizeClassesOptions,
    swap::Workload,
    swap::SwapOptions,
    diagnose::DiagnoseOptions,
    profile::ProfiledWorkload,
    malloc_path::MallocPath,
    tune::TuneWorkload,
    properties::PropertiesOptions,
);
