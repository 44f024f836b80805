//! Decommitting idle chunks really lowers the process's resident set size.
//!
//! One test in its own binary, so that no other test's allocations move RSS meanwhile.

use allockit::{ChunkConfig, ChunkSource, os};

#[test]
fn idle_chunks_above_the_retention_cap_leave_rss() {
    const MIB: usize = 1024 * 1024;
    let source = ChunkSource::new(ChunkConfig {
        region_size: 128 * MIB,
        retain_idle_bytes: 8 * MIB,
        ..ChunkConfig::default()
    })
    .unwrap();
    let chunks: Vec<_> = (0..1024).map(|_| source.take().unwrap()).collect(); // 64 MiB
    for chunk in &chunks {
        // SAFETY: the chunk is ours; touch every page so that it becomes resident.
        unsafe { chunk.as_ptr().as_ptr().write_bytes(0x5A, chunk.len()) };
    }
    let touched = os::resident_bytes().unwrap();
    for chunk in chunks {
        source.give_back(chunk);
    }
    let returned = os::resident_bytes().unwrap();
    let stats = source.stats();
    assert_eq!(stats.chunks_idle * stats.chunk_size, 8 * MIB, "the retention cap stays committed");
    assert_eq!(stats.decommits, 1024 - 128);
    let dropped = touched.saturating_sub(returned);
    assert!(
        dropped >= 50 * MIB,
        "RSS fell by only {} MiB ({} -> {} MiB); expected about 56 MiB",
        dropped / MIB,
        touched / MIB,
        returned / MIB
    );
    // Trimming to zero returns the retained chunks too.
    source.trim(0);
    let trimmed = os::resident_bytes().unwrap();
    assert!(returned.saturating_sub(trimmed) >= 6 * MIB, "{} -> {} MiB", returned / MIB, trimmed / MIB);
}
