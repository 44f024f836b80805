//! AddressSanitizer sees allocator memory that is not handed out (the `asan` feature, in a
//! `-Zsanitizer=address` build: `scripts/sanitize`). Each misuse runs in a child process,
//! which ASan stops with a `use-after-poison` report.
//!
//! The tests named `*_is_not_reported` also run with the `guard` feature on (the build the
//! fuzz targets use); the misuse reports do not, since a guard's canaries and records make
//! some of the bytes after an allocation addressable.
#![cfg(feature = "asan")]

use std::alloc::Layout;
use std::process::Command;

use allockit::{Arena, ChunkConfig, ChunkSource, FixedArena, RawPool};

/// Runs one `#[ignore]`d entry of this test binary in a child and returns its stderr.
fn child_report(entry: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "the misuse in {entry} went unnoticed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs one `#[ignore]`d entry of this test binary in a child and fails with its stderr
/// unless it succeeds.
fn child_succeeds(entry: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{entry} failed: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_read_after_arena_reset_is_reported() {
    let report = child_report("child_reads_arena_memory_after_reset");
    assert!(report.contains("AddressSanitizer: use-after-poison"), "{report}");
}

#[test]
fn a_read_past_an_arena_allocation_is_reported() {
    let report = child_report("child_reads_past_an_arena_allocation");
    assert!(report.contains("AddressSanitizer: use-after-poison"), "{report}");
}

#[test]
fn a_write_after_pool_free_is_reported() {
    let report = child_report("child_writes_a_freed_pool_block");
    assert!(report.contains("AddressSanitizer: use-after-poison"), "{report}");
}

#[test]
fn mapping_the_addresses_of_a_dropped_chunk_source_is_not_reported() {
    // Found by the `freelist` and `sizeclass` fuzz targets: a region unmapped with poisoned chunks
    // made the next mapping at those addresses (a reservation) report use-after-poison.
    child_succeeds("child_maps_the_addresses_of_a_dropped_chunk_source");
}

#[test]
fn a_forgotten_fixed_arenas_buffer_is_not_reported() {
    // `mem::forget` is safe and skips the arena's Drop: had the arena poisoned the caller's
    // buffer (its unallocated tail, its reset bytes), the buffer would stay poisoned after
    // the borrow ends, and this correct code would be reported as a use after poison.
    child_succeeds("child_forgets_a_fixed_arena_and_uses_its_buffer");
}

#[test]
#[cfg(feature = "guard")]
fn shrinking_the_tip_in_place_with_guards_on_is_not_reported() {
    // Found by the `arena` fuzz target: with the guards on as well, an in-place shrink made
    // the tip's old record unaddressable and then read its trailer.
    let arena = Arena::new();
    let mut values = allocator_api2::vec::Vec::with_capacity_in(100, &arena);
    values.extend(0..10u32);
    values.shrink_to_fit();
    assert_eq!(values.capacity(), 10);
    assert!(values.iter().copied().eq(0..10));
}

#[test]
fn correct_use_is_not_reported() {
    let mut arena = Arena::new();
    for round in 0..3u8 {
        let v = arena.alloc_slice_copy(&[round; 1000]).unwrap();
        assert_eq!(v[999], round);
        let mut grown = allocator_api2::vec::Vec::new_in(&arena);
        grown.extend_from_slice(&[round; 100]);
        grown.extend_from_slice(&[round; 10_000]);
        assert_eq!(grown.len(), 10_100);
        drop(grown);
        arena.reset();
    }
    let pool =
        RawPool::new(std::sync::Arc::clone(allockit::ChunkSource::global()), Layout::new::<[u64; 4]>(), 2)
            .unwrap();
    let blocks: Vec<_> = (0..100).map(|_| pool.alloc().unwrap()).collect();
    for block in blocks {
        // SAFETY: each block came from this pool, once, and is written before being freed.
        unsafe {
            block.as_ptr().write_bytes(1, 32);
            pool.dealloc(block);
        }
    }
}

#[test]
#[ignore = "child process entry; run by a_read_after_arena_reset_is_reported"]
fn child_reads_arena_memory_after_reset() {
    let mut arena = Arena::new();
    let stale = arena.alloc(0x1234_5678u64).unwrap() as *const u64;
    arena.reset();
    // SAFETY: deliberately not: the arena was reset, so this read is a use after reset.
    let value = unsafe { stale.read_volatile() };
    std::hint::black_box(value);
}

#[test]
#[ignore = "child process entry; run by a_read_past_an_arena_allocation_is_reported"]
fn child_reads_past_an_arena_allocation() {
    let arena = Arena::new();
    let bytes = arena.alloc_slice_copy(&[7u8; 32]).unwrap();
    // SAFETY: deliberately not: the byte after the allocation was never handed out.
    let value = unsafe { bytes.as_ptr().add(40).read_volatile() };
    std::hint::black_box(value);
}

#[test]
#[ignore = "child process entry; run by a_write_after_pool_free_is_reported"]
fn child_writes_a_freed_pool_block() {
    let pool =
        RawPool::new(std::sync::Arc::clone(allockit::ChunkSource::global()), Layout::new::<[u64; 4]>(), 1)
            .unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: the block came from this pool.
    unsafe { pool.dealloc(block) };
    // SAFETY: deliberately not: the block was freed.
    unsafe { block.as_ptr().add(16).write_volatile(1) };
}

#[test]
#[ignore = "child process entry (one thread, so no other mapping takes the addresses); run by mapping_the_addresses_of_a_dropped_chunk_source_is_not_reported"]
fn child_maps_the_addresses_of_a_dropped_chunk_source() {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};

    let source =
        ChunkSource::new(ChunkConfig { region_size: 1 << 20, max_regions: 1, ..ChunkConfig::default() })
            .unwrap();
    let chunk = source.take().unwrap();
    let (start, len) = (chunk.as_ptr().as_ptr(), chunk.len());
    source.give_back(chunk);
    drop(source);
    // SAFETY: the region was unmapped with its source; NOREPLACE fails rather than
    // replacing anything that took the addresses since.
    let mapping = unsafe {
        mmap_anonymous(
            start.cast(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
        )
    }
    .unwrap();
    assert_eq!(mapping.cast::<u8>(), start);
    // SAFETY: our own fresh read-write mapping of `len` bytes.
    unsafe {
        start.write_bytes(7, len);
        assert_eq!(start.add(len - 1).read(), 7);
        munmap(mapping, len).unwrap();
    }
}

#[test]
#[ignore = "child process entry; run by a_forgotten_fixed_arenas_buffer_is_not_reported"]
fn child_forgets_a_fixed_arena_and_uses_its_buffer() {
    let mut buffer = vec![0u8; 4096];
    let mut arena = FixedArena::new(&mut buffer);
    assert_eq!(arena.alloc_slice_copy(&[1u8; 100]).unwrap()[99], 1);
    arena.reset();
    assert_eq!(*arena.alloc(7u64).unwrap(), 7);
    // FixedArena no longer has a Drop to skip (clippy knows), which is the point: whatever
    // it may hold in a later version, forgetting it must leave the buffer usable.
    #[allow(clippy::forget_non_drop)]
    std::mem::forget(arena);
    buffer.fill(3);
    assert!(std::hint::black_box(&buffer).iter().all(|&byte| byte == 3));
}
