//! Each debug guard fires (the `guard` feature; `scripts/test` runs these), and says what
//! it found: every misuse test asserts the whole message.
//!
//! To watch every guard fire and read its message (the panic hook prints each caught
//! message; the guard-page children report their signal):
//! `cargo test -p allockit --features guard --test guards -- --nocapture --test-threads=1`
#![cfg(feature = "guard")]

use std::alloc::Layout;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::ptr::NonNull;
use std::sync::Arc;

use allockit::guard::{CANARY, POISON_FREED};
use allockit::{Arena, ChunkConfig, ChunkSource, FreeList, Placement, RawPool, SizeClass};

/// The signal number of a segmentation fault on Linux.
const SIGSEGV: i32 = 11;

fn source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig { region_size: 8 * 1024 * 1024, max_regions: 1, ..ChunkConfig::default() })
        .unwrap()
}

/// The message of the guard that `misuse` makes fire (it must fire).
fn guard_message(misuse: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(misuse)).expect_err("no guard fired");
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast::<&str>().map(|message| message.to_string()).unwrap(),
    }
}

/// The canary as it reads after its first byte was overwritten with `byte`.
fn canary_with_first_byte(byte: u8) -> u64 {
    let mut bytes = CANARY.to_ne_bytes();
    bytes[0] = byte;
    u64::from_ne_bytes(bytes)
}

/// Runs one `#[ignore]`d entry of this test binary in a child process.
fn run_child(entry: &str) -> std::process::ExitStatus {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap()
        .status;
    eprintln!("guard page: the child `{entry}` ended with {status}");
    status
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
fn a_double_free_in_the_pool_is_detected() {
    let pool = RawPool::new(source(), Layout::new::<[u64; 4]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: block came from this pool.
    unsafe { pool.dealloc(block) };
    // SAFETY: deliberately not: the second free must be caught by the guard.
    let message = guard_message(|| unsafe { pool.dealloc(block) });
    assert_eq!(message, format!("allockit guard: double free of pool block {block:p}"));
}

#[test]
fn an_overwrite_past_a_pool_block_is_detected_on_free() {
    let pool = RawPool::new(source(), Layout::new::<[u8; 24]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    let past = block.as_ptr().wrapping_add(24);
    // SAFETY: deliberately writes one byte past the 24-byte object (into the canary).
    unsafe { past.write(0) };
    // SAFETY: block came from this pool.
    let message = guard_message(|| unsafe { pool.dealloc(block) });
    let canary = canary_with_first_byte(0);
    assert_eq!(
        message,
        format!("allockit guard: overwrite detected after a pool block at {past:p} (canary {canary:#018x})")
    );
}

#[test]
fn a_write_after_free_in_the_pool_is_detected_on_reuse() {
    let pool = RawPool::new(source(), Layout::new::<[u8; 32]>(), 1).unwrap();
    let block = pool.alloc().unwrap();
    // SAFETY: block came from this pool.
    unsafe { pool.dealloc(block) };
    // SAFETY: deliberately writes into the freed block (past its link word).
    unsafe { block.as_ptr().add(16).write(0) };
    let message = guard_message(|| drop(pool.alloc()));
    assert_eq!(
        message,
        format!("allockit guard: write after free detected in pool block {block:p} at offset 16")
    );
}

#[test]
fn an_overwrite_past_an_arena_allocation_is_detected_on_reset() {
    let mut arena = Arena::with_source(source());
    let bytes = arena.alloc_slice_copy(&[0u8; 10]).unwrap();
    let past = bytes.as_mut_ptr().wrapping_add(10);
    arena.alloc(5u64).unwrap();
    // SAFETY: deliberately writes one byte past the 10-byte allocation (into its canary).
    unsafe { past.write(0xFF) };
    let message = guard_message(|| arena.reset());
    let canary = canary_with_first_byte(0xFF);
    assert_eq!(
        message,
        format!(
            "allockit guard: overwrite detected after an arena allocation at {past:p} (canary {canary:#018x})"
        )
    );
    // SAFETY: repairs the canary, so that the arena's drop (which checks again) passes.
    unsafe { past.write(CANARY.to_ne_bytes()[0]) };
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

// The free-list heap.

fn free_list_over(buffer: &mut [u8]) -> FreeList<allockit::BufferSource<'_>> {
    FreeList::over_buffer(buffer, Placement::FirstFit)
}

fn bytes(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
fn a_double_free_in_the_free_list_is_detected_after_coalescing_both_ways() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let [a, b, c, _d] = [(); 4].map(|()| heap.alloc(bytes(64)).unwrap());
    // SAFETY: each came from this heap with this layout; b's second free is the misuse.
    unsafe {
        heap.free(a, bytes(64));
        heap.free(c, bytes(64));
        heap.free(b, bytes(64)); // merges with a below and c above
    }
    // SAFETY: deliberately not: b is already free.
    let message = guard_message(|| unsafe { heap.free(b, bytes(64)) });
    assert_eq!(message, format!("allockit guard: double free of free-list block {b:p}"));
    heap.check().unwrap();
}

#[test]
fn a_double_free_in_the_free_list_is_detected_after_coalescing_downwards() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let [a, b, _c] = [(); 3].map(|()| heap.alloc(bytes(64)).unwrap());
    // SAFETY: each came from this heap with this layout; b's second free is the misuse.
    unsafe {
        heap.free(a, bytes(64));
        heap.free(b, bytes(64)); // merges with a below
    }
    // SAFETY: deliberately not: b is already free.
    let message = guard_message(|| unsafe { heap.free(b, bytes(64)) });
    assert_eq!(message, format!("allockit guard: double free of free-list block {b:p}"));
    heap.check().unwrap();
}

#[test]
fn a_realloc_of_a_freed_free_list_block_is_detected() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let a = heap.alloc(bytes(64)).unwrap();
    let _b = heap.alloc(bytes(64)).unwrap();
    // SAFETY: a came from this heap with this layout.
    unsafe { heap.free(a, bytes(64)) };
    // SAFETY: deliberately not: a is free.
    let message = guard_message(|| drop(unsafe { heap.realloc(a, bytes(64), 32) }));
    assert_eq!(message, format!("allockit guard: realloc of freed free-list block {a:p}"));
}

#[test]
fn a_write_after_free_in_the_free_list_is_detected_when_the_block_is_handed_out_again() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let a = heap.alloc(bytes(64)).unwrap();
    let _b = heap.alloc(bytes(64)).unwrap();
    // SAFETY: a came from this heap with this layout.
    unsafe { heap.free(a, bytes(64)) };
    // SAFETY: deliberately writes into the freed block (past its free-list links).
    unsafe { a.as_ptr().add(40).write(7) };
    let message = guard_message(|| drop(heap.alloc(bytes(64))));
    assert_eq!(
        message,
        format!("allockit guard: write after free detected in free-list block {a:p} at offset 40")
    );
}

#[test]
fn a_write_after_free_in_the_free_list_is_detected_when_a_realloc_grows_into_the_block() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let [a, b, _c] = [(); 3].map(|()| heap.alloc(bytes(64)).unwrap());
    // SAFETY: b came from this heap with this layout.
    unsafe { heap.free(b, bytes(64)) };
    let written = b.as_ptr().wrapping_add(32);
    // SAFETY: deliberately writes into the freed block (past its free-list links).
    unsafe { written.write(7) };
    // SAFETY: a came from this heap with this layout; growing it takes b's block.
    let message = guard_message(|| drop(unsafe { heap.realloc(a, bytes(64), 128) }));
    let offset = written.addr() - a.as_ptr().addr();
    assert_eq!(
        message,
        format!("allockit guard: write after free detected in free-list block {a:p} at offset {offset}")
    );
}

#[test]
fn an_overrun_into_a_free_list_footer_is_detected_on_free() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let a = heap.alloc(bytes(64)).unwrap();
    // SAFETY: deliberately writes the word past the 64-byte payload: the block's footer.
    unsafe { a.as_ptr().add(64).cast::<usize>().write_unaligned(0xBAD0) };
    // SAFETY: a came from this heap with this layout.
    let message = guard_message(|| unsafe { heap.free(a, bytes(64)) });
    let block = a.as_ptr().addr() - 8;
    // A 64-byte payload is an 80-byte block (tags included), in use: 80 | 1.
    assert_eq!(
        message,
        format!(
            "allockit guard: free-list heap: bad free: block {block:#x}: header 0x51 differs from footer 0xbad0"
        )
    );
}

#[test]
fn freeing_an_interior_pointer_of_the_free_list_is_detected() {
    let mut buffer = vec![0u8; 16 * 1024];
    let heap = free_list_over(&mut buffer);
    let a = heap.alloc(bytes(64)).unwrap();
    // SAFETY: a holds 64 bytes.
    unsafe { a.as_ptr().write_bytes(0, 64) };
    let inside = NonNull::new(a.as_ptr().wrapping_add(16)).unwrap();
    // SAFETY: deliberately not a block of the heap: the middle of one.
    let message = guard_message(|| unsafe { heap.free(inside, bytes(16)) });
    assert_eq!(
        message,
        format!(
            "allockit guard: free-list heap: bad free: {inside:p} is not a block in use of this heap \
             (a foreign or interior pointer, or a damaged header)"
        )
    );
}

// The size-class heap.

#[test]
fn a_double_free_in_the_size_class_heap_is_detected() {
    let heap = SizeClass::with_source(source());
    let a = heap.alloc(bytes(64)).unwrap();
    let _b = heap.alloc(bytes(64)).unwrap();
    // SAFETY: a came from this heap with this layout.
    unsafe { heap.free(a, bytes(64)) };
    // SAFETY: deliberately not: a is already free.
    let message = guard_message(|| unsafe { heap.free(a, bytes(64)) });
    assert_eq!(message, format!("allockit guard: double free of size-class block {a:p}"));
    // The heap is intact: the freed block is handed out once, then a fresh one.
    let again = heap.alloc(bytes(64)).unwrap();
    assert_eq!(again, a);
    assert_ne!(heap.alloc(bytes(64)).unwrap(), a);
}

#[test]
fn a_realloc_of_a_freed_size_class_block_is_detected() {
    let heap = SizeClass::with_source(source());
    let a = heap.alloc(bytes(64)).unwrap();
    // SAFETY: a came from this heap with this layout.
    unsafe { heap.free(a, bytes(64)) };
    // SAFETY: deliberately not: a is free (60 bytes stay in its class, in place).
    let message = guard_message(|| drop(unsafe { heap.realloc(a, bytes(64), 60) }));
    assert_eq!(message, format!("allockit guard: realloc of freed size-class block {a:p}"));
}

#[test]
fn an_overrun_past_a_size_class_block_is_detected_on_free() {
    let heap = SizeClass::with_source(source());
    // 100 bytes in the 112-byte class: the canary sits right after the 100 bytes.
    let a = heap.alloc(bytes(100)).unwrap();
    let past = a.as_ptr().wrapping_add(100);
    // SAFETY: deliberately writes one byte past the allocation.
    unsafe { past.write(0) };
    // SAFETY: a came from this heap with this layout.
    let message = guard_message(|| unsafe { heap.free(a, bytes(100)) });
    let canary = canary_with_first_byte(0);
    assert_eq!(
        message,
        format!(
            "allockit guard: overwrite detected after a size-class block at {past:p} (canary {canary:#018x})"
        )
    );
}

#[test]
fn an_overrun_of_a_block_that_fills_its_class_into_the_next_block_is_detected_on_free() {
    let heap = SizeClass::with_source(source());
    let a = heap.alloc(bytes(64)).unwrap();
    let b = heap.alloc(bytes(64)).unwrap();
    let past = a.as_ptr().wrapping_add(64);
    // SAFETY: deliberately writes from a's last byte on towards b (the red zone between).
    unsafe { past.sub(1).write_bytes(0x42, 9) };
    // SAFETY: a came from this heap with this layout.
    let message = guard_message(|| unsafe { heap.free(a, bytes(64)) });
    let canary = u64::from_ne_bytes([0x42; 8]);
    assert_eq!(
        message,
        format!(
            "allockit guard: overwrite detected after a size-class block at {past:p} (canary {canary:#018x})"
        )
    );
    // b was not touched.
    // SAFETY: b came from this heap with this layout.
    unsafe { heap.free(b, bytes(64)) };
}

#[test]
fn a_write_after_free_into_a_size_class_red_zone_is_detected_on_reuse() {
    let heap = SizeClass::with_source(source());
    let a = heap.alloc(bytes(64)).unwrap();
    // SAFETY: a came from this heap with this layout.
    unsafe { heap.free(a, bytes(64)) };
    // SAFETY: deliberately writes past the freed block, into its red zone.
    unsafe { a.as_ptr().add(66).write(1) };
    let message = guard_message(|| drop(heap.alloc(bytes(64))));
    assert_eq!(
        message,
        format!("allockit guard: write after free detected in size-class block {a:p} at offset 66")
    );
}

#[test]
fn freeing_a_size_class_block_with_a_layout_of_another_class_is_detected() {
    let heap = SizeClass::with_source(source());
    // 56 bytes aligned to 8 take the 56-byte class; aligned to 16, the 64-byte class.
    let a = heap.alloc(bytes(56)).unwrap();
    let b = heap.alloc(bytes(56)).unwrap();
    // SAFETY: b holds 56 bytes.
    unsafe { b.as_ptr().write_bytes(0, 56) };
    let other_class = Layout::from_size_align(56, 16).unwrap();
    // SAFETY: deliberately not a's layout: the 64-byte class looks for a's state word
    // where b's bytes are (and they read 0).
    let message = guard_message(|| unsafe { heap.free(a, other_class) });
    assert_eq!(
        message,
        format!(
            "allockit guard: free of {a:p}, which is not a size-class block in use (state word 0x0): \
             a foreign pointer, or a layout of another class"
        )
    );
}

/// The 1 KiB blocks that a size-class heap cuts from the first chunk it takes, in address
/// order, and where that chunk's usable part ends (the guard page starts).
fn fill_first_chunk(heap: &SizeClass, source: &ChunkSource) -> (Vec<NonNull<u8>>, *mut u8) {
    let first = heap.alloc(bytes(1024)).unwrap();
    let chunk = first.as_ptr().map_addr(|a| a & !(source.chunk_size() - 1));
    let end = chunk.wrapping_add(source.usable_chunk_size());
    let mut blocks = vec![first];
    loop {
        let block = heap.alloc(bytes(1024)).unwrap();
        if block.as_ptr() < chunk || block.as_ptr() >= end {
            break;
        }
        blocks.push(block);
    }
    blocks.sort_unstable();
    (blocks, end)
}

#[test]
fn an_overrun_to_the_end_of_a_size_class_chunk_is_detected_and_the_heap_still_drops() {
    let source = source();
    let heap = SizeClass::with_source(Arc::clone(&source));
    let (blocks, end) = fill_first_chunk(&heap, &source);
    let last = *blocks.last().unwrap();
    let past = last.as_ptr().wrapping_add(1024);
    // SAFETY: deliberately overruns the chunk's last block up to the chunk's guard page:
    // where the chunk's links used to be.
    unsafe { past.write_bytes(0x42, end.addr() - past.addr()) };
    // SAFETY: last came from this heap with this layout.
    let message = guard_message(|| unsafe { heap.free(last, bytes(1024)) });
    // The overrun ran over the block's red zone and its state word.
    assert_eq!(
        message,
        format!(
            "allockit guard: overwrite detected after a size-class block at {past:p} (canary 0x4242424242424242, \
             state word 0x4242424242424242): an overrun, or a pointer this heap did not hand out"
        )
    );
    drop(heap);
    assert_eq!(source.stats().chunks_in_use, 0, "the chunk header was out of the overrun's way");
}

#[test]
fn a_write_past_the_last_size_class_slab_of_a_chunk_hits_its_guard_page() {
    let status = run_child("child_writes_past_the_last_size_class_slab");
    assert_eq!(status.signal(), Some(SIGSEGV), "child status: {status:?}");
}

/// The child side of `a_write_past_the_last_size_class_slab_of_a_chunk_hits_its_guard_page`.
#[test]
#[ignore = "child process entry; run by a_write_past_the_last_size_class_slab_of_a_chunk_hits_its_guard_page"]
fn child_writes_past_the_last_size_class_slab() {
    let source = source();
    let heap = SizeClass::with_source(Arc::clone(&source));
    let (blocks, end) = fill_first_chunk(&heap, &source);
    let past = blocks.last().unwrap().as_ptr().wrapping_add(1024);
    // SAFETY: deliberately not: runs from the last block up to and into the guard page.
    unsafe {
        past.write_bytes(0x42, end.addr() - past.addr());
        end.write_volatile(1);
    }
    unreachable!("the guard page did not fault");
}

#[test]
fn an_underrun_into_a_size_class_chunk_header_is_detected_when_the_heap_drops() {
    let heap = SizeClass::with_source(source());
    // The first block of the 8-byte class is the first block of the chunk: right after
    // the chunk's header (32 bytes).
    let a = heap.alloc(bytes(8)).unwrap();
    let header = a.as_ptr().wrapping_sub(32);
    // SAFETY: deliberately writes 32 bytes before the block.
    unsafe { header.write_bytes(0x42, 32) };
    let message = guard_message(|| drop(heap));
    let canary = u64::from_ne_bytes([0x42; 8]);
    assert_eq!(
        message,
        format!(
            "allockit guard: overwrite detected: damaged size-class chunk header at {header:p} (canary {canary:#018x})"
        )
    );
}
