//! Behaviour of the fixed-size pool.

use std::alloc::Layout;
use std::sync::Arc;

use allockit::{ChunkConfig, ChunkSource, Pool, PoolError, RawPool};

fn source() -> Arc<ChunkSource> {
    ChunkSource::new(ChunkConfig { region_size: 8 * 1024 * 1024, max_regions: 1, ..ChunkConfig::default() })
        .unwrap()
}

#[test]
fn freed_blocks_are_reused_lifo_before_fresh_ones() {
    let pool: Pool<[u64; 8]> = Pool::with_source(source(), 4).unwrap();
    let a = pool.alloc([1; 8]).unwrap();
    let b = pool.alloc([2; 8]).unwrap();
    let b_addr = &*b as *const _ as usize;
    drop(b);
    let c = pool.alloc([3; 8]).unwrap();
    assert_eq!(&*c as *const _ as usize, b_addr);
    assert_eq!(a[0], 1);
    assert_eq!(c[7], 3);
}

#[test]
fn the_pool_grows_a_chunk_at_a_time_up_to_its_cap_then_errs() {
    let pool: Pool<[u8; 1000]> = Pool::with_source(source(), 2).unwrap();
    let per_chunk = pool.raw().blocks_per_chunk();
    assert!(per_chunk >= 60, "a 64 KiB chunk holds at least 60 blocks of 1000 bytes");
    let mut live = Vec::new();
    for i in 0..per_chunk {
        live.push(pool.alloc([i as u8; 1000]).unwrap());
    }
    assert_eq!(pool.stats().chunks, 1);
    live.push(pool.alloc([0; 1000]).unwrap());
    assert_eq!(pool.stats().chunks, 2);
    while live.len() < 2 * per_chunk {
        live.push(pool.alloc([0; 1000]).unwrap());
    }
    let error = pool.alloc([0; 1000]).unwrap_err();
    assert!(matches!(error, PoolError::Exhausted { max_chunks: 2, .. }), "{error}");
    let objects = pool.objects();
    assert_eq!((objects.live, objects.free, objects.exhausted), (2 * per_chunk, 0, 1));
    drop(live.pop());
    assert!(pool.alloc([9; 1000]).is_ok());
}

#[test]
fn drop_runs_the_destructor_and_returns_the_block() {
    let marker = Arc::new(());
    let pool: Pool<Arc<()>> = Pool::with_source(source(), 1).unwrap();
    let boxed = pool.alloc(Arc::clone(&marker)).unwrap();
    assert_eq!(Arc::strong_count(&marker), 2);
    drop(boxed);
    assert_eq!(Arc::strong_count(&marker), 1);
    let objects = pool.objects();
    assert_eq!((objects.live, objects.high_water), (0, 1));
    let stats = pool.stats();
    assert_eq!((stats.allocations, stats.frees), (1, 1));
}

#[test]
fn into_inner_moves_the_value_out() {
    let pool: Pool<String> = Pool::with_source(source(), 1).unwrap();
    let boxed = pool.alloc("kept".to_string()).unwrap();
    let value = allockit::PoolBox::into_inner(boxed);
    assert_eq!(value, "kept");
    assert_eq!(pool.objects().live, 0);
}

#[test]
fn blocks_are_aligned_and_at_least_pointer_sized() {
    #[repr(align(64))]
    struct CacheLine(#[allow(dead_code)] u8);
    let pool: Pool<CacheLine> = Pool::with_source(source(), 1).unwrap();
    let blocks: Vec<_> = (0..100).map(|_| pool.alloc(CacheLine(0)).unwrap()).collect();
    for b in &blocks {
        assert_eq!(&**b as *const CacheLine as usize % 64, 0);
    }
    let tiny = RawPool::new(source(), Layout::new::<u8>(), 1).unwrap();
    assert!(tiny.block_size() >= size_of::<usize>());
}

#[test]
fn a_block_larger_than_a_chunk_is_refused_at_creation() {
    let error = Pool::<[u8; 100_000]>::with_source(source(), 1).unwrap_err();
    assert!(matches!(error, PoolError::Invalid(ref why) if why.contains("does not fit")), "{error}");
    assert!(Pool::<u64>::with_source(source(), 0).is_err());
}

#[test]
fn dropping_the_pool_returns_its_chunks() {
    let source = source();
    let pool: Pool<[u8; 512]> = Pool::with_source(Arc::clone(&source), 8).unwrap();
    let blocks: Vec<_> = (0..500).map(|_| pool.alloc([0; 512]).unwrap()).collect();
    assert!(source.stats().chunks_in_use >= 4);
    drop(blocks);
    drop(pool);
    assert_eq!(source.stats().chunks_in_use, 0);
}

#[test]
fn blocks_come_back_from_a_region_whose_size_the_kernel_does_not_align() {
    // With the guards, a block's double-free bit is found by rounding its address down to
    // its chunk: before regions were aligned to the chunk size, a region of 17 chunks (not a
    // multiple of 2 MiB, so mapped at an arbitrary page) sent that lookup outside the chunk.
    let source = ChunkSource::new(ChunkConfig {
        region_size: 17 * 64 * 1024,
        max_regions: 1,
        ..ChunkConfig::default()
    })
    .unwrap();
    let pool: Pool<[u64; 4]> = Pool::with_source(Arc::clone(&source), 17).unwrap();
    let blocks: Vec<_> =
        (0..3 * pool.raw().blocks_per_chunk()).map(|i| pool.alloc([i as u64; 4]).unwrap()).collect();
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block[3], i as u64);
    }
    drop(blocks);
    assert_eq!(pool.objects().live, 0);
}
