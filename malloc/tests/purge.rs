//! RSS falls after a peak: empty pages are decommitted once the purge delay (10 ms by
//! default) has passed, cached large blocks after ten delays. Alone in its binary, so that no other test
//! moves this process's RSS meanwhile.

use std::thread::sleep;
use std::time::Duration;

use allockit_malloc::{allockit_free, allockit_malloc, stats};

fn resident() -> usize {
    allockit::os::resident_bytes().expect("/proc/self/statm")
}

#[test]
fn rss_falls_after_a_peak_of_small_and_large_blocks() {
    let before = resident();
    let purged_before = stats().purged_bytes;
    // SAFETY: plain allocations, written within their size and freed once.
    unsafe {
        let small: Vec<_> = (0..100_000).map(|_| allockit_malloc(1000)).collect();
        let large: Vec<_> = (0..32).map(|_| allockit_malloc(1 << 20)).collect();
        for &block in small.iter().chain(&large) {
            assert!(!block.is_null());
            let size = if large.contains(&block) { 1 << 20 } else { 1000 };
            block.cast::<u8>().write_bytes(0xEE, size);
        }
        let peak = resident();
        let footprint_at_peak = stats().footprint_bytes;
        assert!(
            footprint_at_peak >= 100 << 20,
            "the footprint counts the touched blocks: {footprint_at_peak}"
        );
        assert!(peak >= before + (100 << 20), "the blocks are resident: {before} → {peak}");
        for block in small.into_iter().chain(large) {
            allockit_free(block);
        }
        // The pages are free but still resident until the delay passes and the heap next
        // takes a slow path (here: pages of a class not used before); cached large blocks
        // after ten delays (100 ms), at the next large free.
        sleep(Duration::from_millis(50));
        for _ in 0..3 {
            let nudge = allockit_malloc(300 << 10);
            allockit_free(nudge);
            let nudge: Vec<_> = (0..64).map(|_| allockit_malloc(5000)).collect();
            nudge.into_iter().for_each(|block| allockit_free(block));
            sleep(Duration::from_millis(60));
        }
        let after = resident();
        let purged = stats().purged_bytes - purged_before;
        // Most segments empty out entirely and are unmapped at once; the pages of the one
        // the heap keeps, and the cached large blocks, are purged after the delay.
        assert!(purged >= 16 << 20, "purged only {purged} bytes");
        assert!(after + (100 << 20) <= peak, "RSS did not fall: {before} → peak {peak} → {after}");
        // The allocator's own footprint falls with it.
        let footprint = stats().footprint_bytes;
        assert!(footprint + (100 << 20) <= footprint_at_peak, "footprint {footprint_at_peak} → {footprint}");
    }
}
