//! The workloads of the core benchmark, shared by the criterion bench (`benches/core.rs`)
//! and the quick ratio printer (`examples/race.rs`). Each function runs one batch on ours or
//! on the peer, with the same operations in the same order.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

use allocator_api2::vec::Vec as ApiVec;
use allockit::{Arena, Pool};
use bumpalo::Bump;
use tikv_jemallocator::Jemalloc;

/// Allocations per batch.
pub const BATCH: usize = 1000;

/// Sizes for the mixed case: skewed small, like a parser's nodes and strings.
pub const MIXED_SIZES: [usize; 16] = [8, 16, 24, 8, 32, 16, 48, 8, 64, 24, 96, 16, 128, 8, 256, 40];

/// 1000 allocations of a `u64`, then a reset.
pub fn small_arena(arena: &mut Arena) {
    for i in 0..BATCH as u64 {
        black_box(arena.alloc(i).expect("bench arena has room"));
    }
    arena.reset();
}

/// The same on bumpalo.
pub fn small_bumpalo(bump: &mut Bump) {
    for i in 0..BATCH as u64 {
        black_box(bump.alloc(i));
    }
    bump.reset();
}

/// 1000 allocations of mixed sizes (8-byte aligned), then a reset.
pub fn mixed_arena(arena: &mut Arena) {
    for i in 0..BATCH {
        let layout = Layout::from_size_align(MIXED_SIZES[i % MIXED_SIZES.len()], 8).expect("valid layout");
        black_box(arena.alloc_layout(layout).expect("bench arena has room"));
    }
    arena.reset();
}

/// The same on bumpalo.
pub fn mixed_bumpalo(bump: &mut Bump) {
    for i in 0..BATCH {
        let layout = Layout::from_size_align(MIXED_SIZES[i % MIXED_SIZES.len()], 8).expect("valid layout");
        black_box(bump.alloc_layout(layout));
    }
    bump.reset();
}

/// Elements pushed in the vector-push case.
pub const PUSH_ELEMENTS: u32 = 4096;

/// A vector growing at the tip of the arena from empty to 4096 `u32`s by `push` (doubling
/// capacity), then a reset.
pub fn vec_push_arena(arena: &mut Arena) {
    {
        let mut v = ApiVec::new_in(&*arena);
        for i in 0..PUSH_ELEMENTS {
            v.push(i);
        }
        black_box(&v);
    }
    arena.reset();
}

/// The same on bumpalo.
pub fn vec_push_bumpalo(bump: &mut Bump) {
    {
        let mut v = ApiVec::new_in(&*bump);
        for i in 0..PUSH_ELEMENTS {
            v.push(i);
        }
        black_box(&v);
    }
    bump.reset();
}

/// Appends in the tip-growth case.
pub const TIP_APPENDS: usize = 256;

/// A buffer at the tip growing by exact 16-byte steps (`reserve_exact`, as a serializer
/// that knows each piece's size does), 256 times, then a reset. Growing the tip in place
/// makes each step O(1); an allocator that must copy makes the whole build O(n²).
pub fn tip_growth_arena(arena: &mut Arena) {
    {
        let mut buffer = ApiVec::new_in(&*arena);
        for i in 0..TIP_APPENDS {
            buffer.reserve_exact(16);
            buffer.extend_from_slice(&[i as u8; 16]);
        }
        black_box(&buffer);
    }
    arena.reset();
}

/// The same on bumpalo (which bumps downward, so growing the tip copies it).
pub fn tip_growth_bumpalo(bump: &mut Bump) {
    {
        let mut buffer = ApiVec::new_in(&*bump);
        for i in 0..TIP_APPENDS {
            buffer.reserve_exact(16);
            buffer.extend_from_slice(&[i as u8; 16]);
        }
        black_box(&buffer);
    }
    bump.reset();
}

/// A reset after a few small allocations (the per-request cost).
pub fn reset_arena(arena: &mut Arena) {
    for i in 0..8u64 {
        black_box(arena.alloc(i).expect("bench arena has room"));
    }
    arena.reset();
}

/// The same on bumpalo.
pub fn reset_bumpalo(bump: &mut Bump) {
    for i in 0..8u64 {
        black_box(bump.alloc(i));
    }
    bump.reset();
}

/// A 64-byte object, the pooled type of the pool case.
pub type Object = [u64; 8];

/// 1000 alloc + free pairs of a 64-byte object from the pool.
pub fn pool_pairs(pool: &Pool<Object>) {
    for i in 0..BATCH as u64 {
        let block = pool.alloc([i; 8]).expect("bench pool has room");
        black_box(&*block);
    }
}

/// 1000 alloc + free pairs of a 64-byte object through a `GlobalAlloc` (what `Box` does).
pub fn global_pairs(allocator: &impl GlobalAlloc) {
    let layout = Layout::new::<Object>();
    for i in 0..BATCH as u64 {
        // SAFETY: a non-zero-size layout; the block is written, read and freed once.
        unsafe {
            let ptr = allocator.alloc(layout).cast::<Object>();
            assert!(!ptr.is_null());
            ptr.write([i; 8]);
            black_box(&*ptr);
            allocator.dealloc(ptr.cast(), layout);
        }
    }
}

/// `global_pairs` on jemalloc.
pub fn jemalloc_pairs() {
    global_pairs(&Jemalloc);
}

/// `global_pairs` on the system allocator (glibc).
pub fn system_pairs() {
    global_pairs(&System);
}
