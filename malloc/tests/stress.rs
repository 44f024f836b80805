//! Many threads at once: blocks freed by other threads, threads that exit while others
//! still hold their blocks (freed later, into abandoned segments, which new threads adopt),
//! `fork()` from a threaded process with allocation in the child, and a check through the
//! allocator's own statistics that memory is reused (the number of segments stays bounded
//! over rounds).
//!
//! The test binary links the rlib with the `override` feature, so the test harness itself
//! runs on this allocator too.

mod support;

use std::ffi::c_void;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use allockit_malloc::{allockit_free, allockit_malloc, allockit_malloc_usable_size, stats};

/// A block filled with a byte derived from its address and a tag, so a consumer can check it.
fn make_block(size: usize, tag: u8) -> usize {
    // SAFETY: plain allocation; the block is filled within its size.
    unsafe {
        let block = allockit_malloc(size).cast::<u8>();
        assert!(!block.is_null());
        block.write_bytes(tag, size);
        block.addr()
    }
}

fn check_and_free(address: usize, size: usize, tag: u8) {
    let block = std::ptr::with_exposed_provenance_mut::<u8>(address);
    // SAFETY: a live block of `size` bytes from make_block, handed over to us.
    unsafe {
        assert!(allockit_malloc_usable_size(block.cast()) >= size);
        let bytes = std::slice::from_raw_parts(block, size);
        assert!(bytes.iter().all(|&b| b == tag), "block {address:#x} was overwritten");
        allockit_free(block.cast::<c_void>());
    }
}

fn size_of_item(seed: u64) -> usize {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    match x % 16 {
        0 => 20_000 + (x as usize % 200_000),
        1..=3 => 1024 + (x as usize % 8192),
        _ => 1 + (x as usize % 512),
    }
}

/// Producers allocate, a consumer on another thread checks and frees (remote frees).
fn producer_consumer_round(round: u64) {
    let (send, receive) = mpsc::channel::<Vec<(usize, usize, u8)>>();
    let consumer = thread::spawn(move || {
        for batch in receive {
            for (address, size, tag) in batch {
                check_and_free(address, size, tag);
            }
        }
    });
    let producers: Vec<_> = (0..4u64)
        .map(|id| {
            let send = send.clone();
            thread::spawn(move || {
                for batch in 0..20u64 {
                    let items: Vec<_> = (0..250u64)
                        .map(|n| {
                            let size = size_of_item(round * 1_000_003 + id * 10_007 + batch * 251 + n);
                            let tag = (id * 16 + n % 16) as u8;
                            (make_block(size, tag), size, tag)
                        })
                        .collect();
                    send.send(items).unwrap();
                }
            })
        })
        .collect();
    drop(send);
    for producer in producers {
        producer.join().unwrap();
    }
    consumer.join().unwrap();
}

/// Threads allocate and exit; the main thread checks and frees their blocks afterwards.
fn exiting_threads_round(round: u64) {
    let handles: Vec<_> = (0..6u64)
        .map(|id| {
            thread::spawn(move || {
                (0..2000u64)
                    .map(|n| {
                        let size = size_of_item(round * 7 + id * 100_003 + n);
                        let tag = (n % 200) as u8 + 1;
                        (make_block(size, tag), size, tag)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let blocks: Vec<_> = handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect();
    // Every producer has exited: its segments were abandoned with these blocks live.
    for (address, size, tag) in blocks {
        check_and_free(address, size, tag);
    }
}

#[test]
fn remote_frees_and_exited_threads_reuse_memory() {
    let mut segments_after_round = Vec::new();
    for round in 0..12 {
        producer_consumer_round(round);
        exiting_threads_round(round);
        segments_after_round.push(stats().segments);
    }
    let s = stats();
    assert!(s.remote_frees > 0, "{s:?}");
    assert!(s.segments_abandoned > 0, "threads exited holding pages: {s:?}");
    assert!(s.segments_adopted > 0, "new threads adopt abandoned segments: {s:?}");
    // Each round allocates the same amount (about 40 segments' worth in all); if memory were
    // not reused the segments would grow by about that much every round. They stay flat,
    // up to the noise of the other test running beside this one.
    let (first_half, second_half) = segments_after_round.split_at(6);
    let early = *first_half.iter().max().unwrap();
    let late = *second_half.iter().max().unwrap();
    assert!(
        late <= early * 3 / 2 + 4,
        "segments grew from {early} to {late}: {segments_after_round:?} {s:?}"
    );
    assert!(s.segments_peak <= 64, "more than 256 MiB of segments at once: {s:?}");
}

#[test]
fn fork_from_a_threaded_process_leaves_a_child_that_can_allocate() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::new(Barrier::new(5));
    // Blocks allocated by the busy threads, some handed to the child to free.
    let (send, receive) = mpsc::sync_channel::<(usize, usize, u8)>(64);
    let busy: Vec<_> = (0..4u64)
        .map(|id| {
            let stop = Arc::clone(&stop);
            let start = Arc::clone(&start);
            let send = send.clone();
            thread::spawn(move || {
                start.wait();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let size = size_of_item(id * 31 + n);
                    let block = make_block(size, 0x5A);
                    if n.is_multiple_of(64) {
                        if let Err(
                            mpsc::TrySendError::Full((address, size, tag))
                            | mpsc::TrySendError::Disconnected((address, size, tag)),
                        ) = send.try_send((block, size, 0x5A))
                        {
                            check_and_free(address, size, tag);
                        }
                    } else {
                        check_and_free(block, size, 0x5A);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    drop(send);
    start.wait();
    for attempt in 0..20 {
        thread::sleep(Duration::from_millis(5));
        let handed = receive.try_recv().ok();
        // SAFETY: fork; the child only calls the allocator and async-signal-safe libc, then
        // _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let mut ok = true;
            for n in 0..2000u64 {
                let size = size_of_item(attempt * 5000 + n);
                // SAFETY: plain allocation and free in the child.
                unsafe {
                    let block = allockit_malloc(size).cast::<u8>();
                    ok &= !block.is_null();
                    if !block.is_null() {
                        block.write_bytes(1, size);
                        ok &= allockit_malloc_usable_size(block.cast()) >= size;
                        allockit_free(block.cast());
                    }
                }
            }
            // A block of a thread that does not exist in the child.
            if let Some((address, size, tag)) = handed {
                check_and_free(address, size, tag);
            }
            // SAFETY: leave the child without running the parent's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        if let Some((address, size, tag)) = handed {
            check_and_free(address, size, tag);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("fork child {attempt} hung (a lock inherited from another thread?)");
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {attempt}: status {status:#x}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }
    for (address, size, tag) in receive.try_iter() {
        check_and_free(address, size, tag);
    }
}
