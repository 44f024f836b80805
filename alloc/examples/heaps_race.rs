//! The quick heap race: every general heap of allockit, and allockit-malloc through its
//! `GlobalAlloc`, against talc, rlsf,
//! linked_list_allocator, jemalloc and glibc malloc on the same traces, printed as
//! throughput and heap efficiency, and as ratios ours / peer. Under a minute:
//!
//! ```text
//! cargo run --release -p allockit --example heaps_race
//! ```
//!
//! Each contender first runs once in a fresh child process, its footprint sampled as it
//! goes (heap efficiency = peak live bytes / peak footprint), then once to warm up, then
//! `REPEATS` timed runs, interleaved with the other contenders round by round; the median
//! is reported. The criterion version of the timings is
//! `cargo bench -p allockit --bench heaps`. `HEAPS_RACE_ONLY=talc` runs only the
//! contenders whose name contains the given text (for profiling one heap).

#[path = "../benches/support/heaps.rs"]
mod support;

/// The harness runs on jemalloc, so that glibc's malloc (a contender, called directly as
/// `__libc_malloc`) serves nothing but the measured trace.
#[global_allocator]
static HARNESS: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::Command;

use support::{Bench, Contender, Measurement, Start, Trace};

const REPEATS: usize = 7;

struct Result<'c> {
    contender: &'c Contender,
    probed: Probed,
    timed: Measurement,
}

/// Peak live bytes and peak footprint of one contender on one trace, from a fresh process.
#[derive(Debug, Clone, Copy)]
struct Probed {
    peak_live_bytes: usize,
    peak_footprint_bytes: usize,
}

impl Result<'_> {
    fn ops(&self) -> f64 {
        self.timed.ops_per_second()
    }

    fn efficiency(&self) -> f64 {
        self.probed.peak_live_bytes as f64 / self.probed.peak_footprint_bytes.max(1) as f64
    }
}

/// Measures every contender's footprint in a fresh process, then runs each once to warm
/// up, then `REPEATS` timed rounds, interleaving the contenders round by round so that
/// background load falls on all of them alike.
fn race<'c>(bench: &mut Bench, contenders: &'c [Contender], trace: &Trace) -> Vec<Result<'c>> {
    let probed: Vec<Probed> = contenders.iter().map(|contender| probe_in_child(contender, trace)).collect();
    for contender in contenders {
        (contender.run)(bench, trace, Start::Timed);
    }
    let mut timed: Vec<Vec<Measurement>> = vec![Vec::new(); contenders.len()];
    for _ in 0..REPEATS {
        for (contender, runs) in contenders.iter().zip(&mut timed) {
            runs.push((contender.run)(bench, trace, Start::Timed));
        }
    }
    contenders
        .iter()
        .zip(probed)
        .zip(timed)
        .map(|((contender, probed), mut runs)| {
            runs.sort_by_key(|run| run.elapsed);
            Result { contender, probed, timed: runs[REPEATS / 2] }
        })
        .collect()
}

/// Runs this program again as `--probe CONTENDER TRACE` and reads what it prints.
fn probe_in_child(contender: &Contender, trace: &Trace) -> Probed {
    let exe = std::env::current_exe().expect("the path of this program");
    let output = Command::new(exe)
        .args(["--probe", contender.name, trace.name])
        .output()
        .expect("run the probe in a child process");
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<usize> = text.split_whitespace().filter_map(|word| word.parse().ok()).collect();
    match numbers[..] {
        [peak_live_bytes, peak_footprint_bytes] => Probed { peak_live_bytes, peak_footprint_bytes },
        _ => panic!(
            "probe of {} on {} failed: {}{}",
            contender.name,
            trace.name,
            text,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The child side: one probed run, printed as "peak-live peak-footprint".
fn probe(contender: &str, trace: &str) {
    let contenders = support::contenders();
    let contender = contenders.iter().find(|c| c.name == contender).expect("a known contender");
    let trace = support::traces().into_iter().find(|t| t.name == trace).expect("a known trace");
    let mut bench = Bench::new();
    let run = (contender.run)(&mut bench, &trace, Start::Probed);
    println!("{} {}", run.peak_live_bytes, run.peak_footprint_bytes);
}

fn print_trace(trace: &Trace, results: &[Result<'_>]) {
    println!("\n### {} ({} actions)\n", trace.name, trace.actions.len());
    println!("| allocator | Mops/s | heap efficiency | peak live | peak footprint | failures |");
    println!("|---|---:|---:|---:|---:|---:|");
    for result in results {
        println!(
            "| {} | {:.2} | {:.1}% | {} KiB | {} KiB | {} |",
            result.contender.name,
            result.ops() / 1e6,
            100.0 * result.efficiency(),
            result.probed.peak_live_bytes / 1024,
            result.probed.peak_footprint_bytes / 1024,
            result.timed.failures,
        );
    }
    let peers: Vec<&Result<'_>> = results.iter().filter(|r| !r.contender.ours).collect();
    println!("\nRatios ours / peer: throughput ×, heap efficiency ×\n");
    print!("| ours \\ peer |");
    for peer in &peers {
        print!(" {} |", peer.contender.name);
    }
    println!();
    println!("|---|{}", "---:|".repeat(peers.len()));
    for ours in results.iter().filter(|r| r.contender.ours) {
        print!("| {} |", ours.contender.name);
        for peer in &peers {
            print!(" {:.2} × / {:.2} × |", ours.ops() / peer.ops(), ours.efficiency() / peer.efficiency());
        }
        println!();
    }
}

fn find<'r, 'c>(results: &'r [Result<'c>], name: &str) -> &'r Result<'c> {
    results.iter().find(|r| r.contender.name == name).expect("a contender of that name")
}

/// Issue 15's target for allockit-malloc, on random actions and on the request mix.
fn print_malloc_targets(trace: &str, results: &[Result<'_>]) {
    let malloc = find(results, "allockit-malloc");
    let jemalloc = find(results, "jemalloc");
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let ratio = malloc.ops() / jemalloc.ops();
    println!("* allockit-malloc ≥ jemalloc throughput ({trace}): {ratio:.2} × — {}", verdict(ratio >= 1.0));
    let efficiency = malloc.efficiency();
    println!(
        "* allockit-malloc heap efficiency ≥ 75% ({trace}): {:.1}% — {}",
        100.0 * efficiency,
        verdict(efficiency >= 0.75)
    );
}

fn print_targets(trace: &str, random: &[Result<'_>]) {
    let sizeclass = find(random, "allockit sizeclass");
    let talc = find(random, "talc");
    let first = find(random, "allockit freelist first-fit");
    let best = find(random, "allockit freelist best-fit");
    let linked = find(random, "linked_list_allocator");
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!("\nTargets ({trace}):\n");
    let ratio = sizeclass.ops() / talc.ops();
    println!("* sizeclass ≥ talc throughput: {ratio:.2} × — {}", verdict(ratio >= 1.0));
    let ratio = first.ops() / linked.ops();
    println!("* freelist first-fit ≥ 10 × linked_list_allocator: {ratio:.1} × — {}", verdict(ratio >= 10.0));
    let (cost, tighter) = (best.ops() / first.ops(), best.efficiency() / first.efficiency());
    println!(
        "* best-fit vs first-fit: {cost:.2} × the throughput, {tighter:.3} × the efficiency — {}",
        verdict(cost < 1.0 && tighter > 1.0)
    );
}

/// Which malloc this process's own C calls reach. allockit-malloc is a dependency for its
/// `GlobalAlloc` only, without the C exports; but a cargo command that also builds
/// allockit-malloc itself (`--workspace`) unifies its default `override` feature into this
/// build, and then its exported `malloc` serves the whole process. The glibc and jemalloc
/// rows measure themselves either way: they call `__libc_malloc` and jemalloc's prefixed
/// functions.
fn process_malloc() -> &'static str {
    if allockit_malloc::serves_process_malloc() {
        "This process's malloc is allockit-malloc's (its `override` feature was unified into this build)."
    } else {
        "This process's malloc is the C library's (allockit-malloc is linked for its GlobalAlloc only)."
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, contender, trace] = &args[..]
        && flag == "--probe"
    {
        return probe(contender, trace);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# allockit heap race\n");
    println!(
        "{cores} cores; median of {REPEATS} interleaved timed runs; footprints from a fresh process each."
    );
    println!("{}", process_malloc());
    let mut bench = Bench::new();
    let filter = std::env::var("HEAPS_RACE_ONLY").unwrap_or_default();
    let contenders: Vec<Contender> =
        support::contenders().into_iter().filter(|c| c.name.contains(filter.as_str())).collect();
    let mut all = Vec::new();
    for trace in support::traces() {
        let results = race(&mut bench, &contenders, &trace);
        print_trace(&trace, &results);
        all.push((trace.name, results));
    }
    if filter.is_empty() {
        for (name, results) in &all {
            print_targets(name, results);
        }
        println!("\nTargets of allockit-malloc:\n");
        for (name, results) in all.iter().filter(|(name, _)| ["random-actions", "request-mix"].contains(name))
        {
            print_malloc_targets(name, results);
        }
    }
}
