//! The allocator experiments.
