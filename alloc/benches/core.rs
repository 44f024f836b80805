//! Core benchmark: the arena against bumpalo, the pool against `Box` on jemalloc and on the
//! system allocator, measured in the same run. `cargo bench -p allockit --bench core`.
//! For a quick table of ratios: `cargo run --release -p allockit --example race`.

#[path = "support/core.rs"]
mod support;

use allockit::{Arena, Pool};
use bumpalo::Bump;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn arena_vs_bumpalo(c: &mut Criterion) {
    type Case = (&'static str, fn(&mut Arena), fn(&mut Bump), u64);
    let cases: [Case; 5] = [
        ("small", support::small_arena, support::small_bumpalo, support::BATCH as u64),
        ("mixed", support::mixed_arena, support::mixed_bumpalo, support::BATCH as u64),
        ("vec_push", support::vec_push_arena, support::vec_push_bumpalo, support::PUSH_ELEMENTS as u64),
        ("tip_growth", support::tip_growth_arena, support::tip_growth_bumpalo, support::TIP_APPENDS as u64),
        ("reset", support::reset_arena, support::reset_bumpalo, 1),
    ];
    for (name, ours, peer, elements) in cases {
        let mut group = c.benchmark_group(format!("arena/{name}"));
        group.throughput(Throughput::Elements(elements));
        let mut arena = Arena::new();
        group.bench_function("allockit", |b| b.iter(|| ours(&mut arena)));
        let mut bump = Bump::new();
        group.bench_function("bumpalo", |b| b.iter(|| peer(&mut bump)));
        group.finish();
    }
}

fn pool_vs_box(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/alloc_free_64B");
    group.throughput(Throughput::Elements(support::BATCH as u64));
    let pool: Pool<support::Object> = Pool::new(4).expect("the default chunk source has room");
    group.bench_function("allockit_pool", |b| b.iter(|| support::pool_pairs(&pool)));
    group.bench_function("jemalloc", |b| b.iter(support::jemalloc_pairs));
    group.bench_function("system", |b| b.iter(support::system_pairs));
    group.finish();
}

criterion_group!(benches, arena_vs_bumpalo, pool_vs_box);
criterion_main!(benches);
