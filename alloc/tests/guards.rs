//! Each debug guard fires (the `guard` feature; the README's test command runs these).
#![cfg(feature = "guard")]

use std::alloc::Layout;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::Arc;

use allockit::guard::POISON_FREED;
use allockit::{Arena, ChunkConfig, ChunkSource, RawPool};

/// The signal number of a segmentation fault on Linux.
const SIGSEGV: i32 = 11;

fn source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig { region_size: 8 * 1024 * 1024, max_regions: 1, ..ChunkConfig::default() })
        .unwrap()
}

/// Runs one `#[ignore]`d entry of this test binary in a child process.
fn run_child(entry: &str) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap()
        .status
}

#[test]
fn a_write_past_a_chunk_hits_its_guard_page() {
    let status = run_child("child_writes_one_byte_past_a_chunk");
    assert_eq!(status.signal(), Some(SIGSEGV), "child status: {status:?}");
}

/// The child side of `a_write_past_a_chunk_hits_its_guard_page`: fills a chunk to
/// its last byte, then writes one byte further.
#[test]
#[ignore = "child process entry; run by a_write_past_a_chunk_hits_its_guard_page"]
fn child_writes_one_byte_past_a_chunk() {
    let source = source();
    let chunk = source.take().unwrap();
    let end = chunk.as_ptr().as_ptr().wrapping_add(chunk.len());
    // SAFETY: the last usable byte is ours.
    unsafe { end.sub(1).write_volatile(1) };
    // SAFETY: deliberately not: this is the first byte of the guard page, which faults.
    unsafe { end.write_volatile(1) };
    unreachable!("the guard page did not fault");
}

#[test]
#[should_panic(expected = "double free")]
fn a_double_free_in_the_pool_is_detected() {
    let pool = RawPool::new(source(), Layout::new::<[u64; 4]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: block came from this pool.
    unsafe { pool.dealloc(block) };
    // SAFETY: deliberately not: the second free must be caught by the guard.
    unsafe { pool.dealloc(block) };
}

#[test]
#[should_panic(expected = "overwrite detected")]
fn an_overwrite_past_a_pool_block_is_detected_on_free() {
    let pool = RawPool::new(source(), Layout::new::<[u8; 24]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: deliberately writes one byte past the 24-byte object (into the canary).
    unsafe { block.as_ptr().add(24).write(0) };
    // SAFETY: block came from this pool.
    unsafe { pool.dealloc(block) };
}

#[test]
#[should_panic(expected = "write after free")]
fn a_write_after_free_in_the_pool_is_detected_on_reuse() {
    let pool = RawPool::new(source(), Layout::new::<[u8; 32]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: block came from this pool.
    unsafe { pool.dealloc(block) };
    // SAFETY: deliberately writes into the freed block (past its link word).
    unsafe { block.as_ptr().add(16).write(0) };
    let _ = pool.alloc();
}

#[test]
#[should_panic(expected = "overwrite detected")]
fn an_overwrite_past_an_arena_allocation_is_detected_on_reset() {
    let mut arena = Arena::with_source(source());
    let bytes = arena.alloc_slice_copy(&[0u8; 10]).unwrap();
    let past = bytes.as_mut_ptr().wrapping_add(10);
    arena.alloc(5u64).unwrap();
    // SAFETY: deliberately writes one byte past the 10-byte allocation (into its canary).
    unsafe { past.write(0xFF) };
    arena.reset();
}

#[test]
fn freed_pool_blocks_and_reset_arena_memory_are_poisoned() {
    let pool = RawPool::new(source(), Layout::new::<[u8; 64]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: the block is ours.
    unsafe { block.as_ptr().write_bytes(0x11, 64) };
    // SAFETY: block came from this pool.
    unsafe { pool.dealloc(block) };
    // SAFETY: the memory stays mapped and owned by the pool; we only read it to show the
    // poison (bytes past the free-list link word).
    let tail = unsafe { std::slice::from_raw_parts(block.as_ptr().add(8), 56) };
    assert!(tail.iter().all(|b| *b == POISON_FREED));

    let mut arena = Arena::with_source(source());
    let data = arena.alloc_slice_copy(&[0x22u8; 100]).unwrap().as_ptr();
    arena.reset();
    // SAFETY: the arena keeps this chunk across reset; reading shows it was poisoned.
    let old = unsafe { std::slice::from_raw_parts(data, 100) };
    assert!(old.iter().all(|b| *b == POISON_FREED));
}

#[test]
fn without_misuse_no_guard_fires() {
    let mut arena = Arena::with_source(source());
    for round in 0..3 {
        let mut v = allocator_api2::vec::Vec::new_in(&arena);
        for i in 0..20_000u32 {
            v.push(i + round);
        }
        let s = arena.alloc_str("fine").unwrap();
        assert_eq!(&*s, "fine");
        drop(v);
        arena.reset();
    }
    let pool = RawPool::new(source(), Layout::new::<[u8; 48]>(), 2).unwrap();
    let blocks: Vec<_> = (0..500).map(|_| pool.alloc().unwrap()).collect();
    for b in blocks {
        // SAFETY: each block came from this pool, once.
        unsafe { pool.dealloc(b) };
    }
    assert!(pool.alloc().is_ok());
}
