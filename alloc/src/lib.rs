//! # allockit
//!
//! Memory allocators to learn from and to measure, all over a few large OS regions
//! reserved up front.
//!
//! | module | use it for | cost |
//! |---|---|---|
//! | [`arena`] | memory that dies together (a request, a frame, a parse) | bump; O(1) reset |
//! | [`pool`] | one hot type with churn | O(1) alloc/free, no per-object metadata |
//! | [`sizeclass`] | general allocation, fast: 40 size classes, slabs from chunks | O(1) alloc/free; up to 20% internal waste |
//! | [`freelist`] | general allocation, tight, and the placement experiment: boundary tags, first/next/best fit | O(1) free; alloc O(free blocks) |
//! | [`global`] | running a whole program on `freelist` or `sizeclass` (`#[global_allocator]`) | one lock per call |
//! | [`source`] | where every allocator gets memory: fixed-size chunks from regions reserved up front, a caller's buffer, one reservation | a lock per chunk |
//! | [`heap`] | what the general heaps share: their error type and the [`Heap`] interface | — |
//! | [`os`] | reserve / commit / decommit / protect pages | system calls |
//! | [`guard`] | debug guards (the `guard` feature): guard pages, poison, canaries, double free | debug only |
//! | [`stats`] | the counters every allocator reports | — |
//! | [`valgrind`] | tells memcheck what the arena and pool hand out (the `valgrind` feature) | debug only |
//!
//! ```
//! use allockit::{arena::Arena, pool::Pool};
//!
//! let mut arena = Arena::new();
//! let greeting = arena.alloc_str("hello")?;
//! assert_eq!(greeting, "hello");
//! arena.reset();
//!
//! let pool: Pool<[u64; 8]> = Pool::new(16)?;
//! let block = pool.alloc([7; 8])?;
//! assert_eq!(block[3], 7);
//!
//! let heap = allockit::SizeClass::new();
//! let mut names = allocator_api2::vec::Vec::new_in(&heap);
//! names.push("any size, any order");
//! assert_eq!(heap.stats().allocations, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod arena;
pub mod freelist;
pub mod global;
pub mod guard;
pub mod heap;
pub mod os;
pub mod pool;
pub mod sizeclass;
pub mod source;
pub mod stats;
pub mod valgrind;

pub use arena::{Arena, ArenaError, Escaped, FixedArena};
pub use freelist::{FreeList, FreeOrder, FreeStats, HeapCorruption, Placement};
pub use global::{GlobalFreeList, GlobalSizeClass};
pub use heap::{Heap, HeapError};
pub use pool::{Pool, PoolBox, PoolError, RawPool};
pub use sizeclass::{ClassStats, SizeClass};
pub use source::{
    BufferSource, Chunk, ChunkConfig, ChunkError, ChunkSource, ChunkStats, Reservation, Span, SpanSource,
};
pub use stats::Stats;
