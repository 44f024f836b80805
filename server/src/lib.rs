//! # allockit-server
//!
//! A request-scoped HTTP service that keeps RSS flat under load, and shows why.
//!
//! * **Thread per core**: each worker is a current-thread tokio runtime accepting on its
//!   own duplicate of the one listening socket; a request never changes thread
//!   ([`server`], [`conn`]).
//! * **Request memory**: each `POST /v1/events` checks out a bump arena from its worker;
//!   the body is read into it, parsed through serde `DeserializeSeed` into arena
//!   collections, aggregated, and the arena is reset when the request ends, on every path
//!   ([`worker_memory`], [`workload`]).
//! * **Hot-type pool**: the response buffer comes from a per-worker pool and goes back when
//!   hyper drops it after writing ([`response_pool::PooledBuffer`]).
//! * **Segregated cache**: user profiles live in an LRU on a dedicated jemalloc arena
//!   ([`cache`], [`jemalloc`]), whose extent hooks carve every page it uses from regions
//!   reserved up front (`--cache-region-bytes`, 1 GiB of address space by default, committed
//!   on demand; [`cache_region`]).
//! * **The bug, on purpose**: `--break-lifetimes` puts each new profile into the request
//!   arena as an escaping allocation; every cached profile pins a chunk and RSS climbs.
//! * **Observability**: `/metrics` with the names of the project's metric contract,
//!   including a counter of general-heap allocations made by request work, which stays at
//!   zero in the default mode ([`global_alloc`], [`metrics`]).
//!
//! This crate installs [`global_alloc::CountingJemalloc`] as the global allocator of any binary
//! that links it.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod admin;
pub mod cache;
pub mod cache_region;
pub mod config;
pub mod conn;
pub mod descriptors;
pub mod error;
pub mod global_alloc;
pub mod jemalloc;
pub mod json_out;
pub mod live;
pub mod metrics;
pub mod response;
pub mod response_pool;
pub mod routes;
pub mod sampling;
pub mod server;
pub mod state;
pub mod validate;
pub mod worker_memory;
pub mod workload;

pub use config::{Config, Mode};
pub use error::{Error, ErrorKind};
pub use server::{ServerHandle, start};

#[global_allocator]
static GLOBAL: global_alloc::CountingJemalloc = global_alloc::CountingJemalloc;
