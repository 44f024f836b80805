//! The experiments of the hands-on tasks, one module each, apart from the infrastructure
//! they share (child processes, allocators, reports, charts: the crate's other modules).
//! Each experiment takes its options (at a [`crate::Scale`]) and returns an
//! outcome that implements [`crate::report::Outcome`].
//!
//! [`services`] and [`verdict`] are the two halves of [`diagnose`]: the synthetic leaking
//! and fragmenting services it measures, and the rules that judge a memory series.

pub mod diagnose;
pub mod fragmentation;
pub mod placement;
pub mod profile;
pub mod services;
pub mod size_classes;
pub mod swap;
pub mod syscall_cost;
pub mod usable_size;
pub mod verdict;
