//! Prints each core benchmark case as a ratio ours/peer (lower is better for ours), in
//! well under a minute: `cargo run --release -p allockit --example race`.
//!
//! Each side runs the same batch function; the time per batch is the best of several
//! rounds (the least disturbed one), with the sides interleaved so that both see the same
//! machine state. Criterion (`cargo bench -p allockit --bench core`) gives the full
//! statistics.

#[path = "../benches/support/core.rs"]
mod support;

use std::time::{Duration, Instant};

use allockit::{Arena, Pool};
use bumpalo::Bump;

const ROUNDS: usize = 20;
const ROUND_TIME: Duration = Duration::from_millis(25);

/// Time per call of `f` over one round.
fn round_ns(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < ROUND_TIME {
        for _ in 0..16 {
            f();
        }
        calls += 16;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// Prints one case. Rounds alternate between the two sides so that both see the same
/// machine; each side's best round counts (the least disturbed one).
fn row(case: &str, per: u64, ours: &mut dyn FnMut(), peer_name: &str, peer: &mut dyn FnMut()) {
    round_ns(ours);
    round_ns(peer);
    let (mut ours_ns, mut peer_ns) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..ROUNDS {
        ours_ns = ours_ns.min(round_ns(ours) / per as f64);
        peer_ns = peer_ns.min(round_ns(peer) / per as f64);
    }
    println!(
        "{case:<30} {ours_ns:>10.2} {peer_name:>10} {peer_ns:>10.2} {ratio:>8.2}",
        ratio = ours_ns / peer_ns
    );
}

fn main() {
    let counting = if cfg!(feature = "count-allocations") {
        "on (--features count-allocations)"
    } else {
        "off (the default; --features count-allocations counts every allocation)"
    };
    println!("arena allocation counting: {counting}\n");
    println!("{:<30} {:>10} {:>10} {:>10} {:>8}", "case (ns per op)", "allockit", "peer", "peer ns", "ratio");
    let mut arena = Arena::new();
    let mut bump = Bump::new();
    let batch = support::BATCH as u64;
    row("arena small alloc", batch, &mut || support::small_arena(&mut arena), "bumpalo", &mut || {
        support::small_bumpalo(&mut bump)
    });
    row("arena mixed sizes", batch, &mut || support::mixed_arena(&mut arena), "bumpalo", &mut || {
        support::mixed_bumpalo(&mut bump)
    });
    row(
        "arena vec push (per push)",
        support::PUSH_ELEMENTS as u64,
        &mut || support::vec_push_arena(&mut arena),
        "bumpalo",
        &mut || support::vec_push_bumpalo(&mut bump),
    );
    row(
        "arena tip growth (per append)",
        support::TIP_APPENDS as u64,
        &mut || support::tip_growth_arena(&mut arena),
        "bumpalo",
        &mut || support::tip_growth_bumpalo(&mut bump),
    );
    row("arena reset (8 allocs)", 1, &mut || support::reset_arena(&mut arena), "bumpalo", &mut || {
        support::reset_bumpalo(&mut bump)
    });
    let pool: Pool<support::Object> = Pool::new(4).expect("the default chunk source has room");
    row(
        "pool alloc+free 64 B",
        batch,
        &mut || support::pool_pairs(&pool),
        "jemalloc",
        &mut support::jemalloc_pairs,
    );
    row(
        "pool alloc+free 64 B",
        batch,
        &mut || support::pool_pairs(&pool),
        "glibc",
        &mut support::system_pairs,
    );
    println!("\nratio = allockit / peer time per operation; below 1.0 means allockit is faster.");
}
