//! The general heaps against their peers, in the same run: talc, rlsf,
//! linked_list_allocator, jemalloc and glibc malloc, on random actions (talc's benchmark
//! style) and a request-like mix. Throughput is reported as actions per second.
//!
//! `cargo bench -p allockit --bench heaps`. For the ratio table with heap efficiency, run
//! the quick race: `cargo run --release -p allockit --example heaps_race`.

#[allow(dead_code, reason = "shared with examples/heaps_race.rs, which reads the footprints")]
#[path = "support/heaps.rs"]
mod support;

/// The harness runs on jemalloc, so that glibc's malloc (a contender, called directly as
/// `__libc_malloc`) serves nothing but the measured trace.
#[global_allocator]
static HARNESS: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::time::Duration;

fn heaps(c: &mut Criterion) {
    let mut bench = support::Bench::new();
    for trace in support::traces() {
        let mut group = c.benchmark_group(trace.name);
        group.throughput(Throughput::Elements(trace.actions.len() as u64));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for contender in support::contenders() {
            group.bench_function(contender.name, |b| {
                b.iter_custom(|iterations| {
                    (0..iterations)
                        .map(|_| {
                            let run = (contender.run)(&mut bench, &trace, support::Start::Timed);
                            assert_eq!(
                                run.failures, 0,
                                "{} refused requests on {}",
                                contender.name, trace.name
                            );
                            run.elapsed
                        })
                        .sum()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, heaps);
criterion_main!(benches);
