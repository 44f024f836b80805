//! `allockit-lab`: the allocator experiments. Argument parsing and printing only; the
//! experiments live in the `allockit_lab` library.
//!
//! No `#[global_allocator]` here on purpose: the binary runs on the system `malloc`, so
//! `LD_PRELOAD` can swap jemalloc, tcmalloc or mimalloc underneath it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use allockit_lab::report::{self, Outcome};
use allockit_lab::{
    AtScale, Scale, diagnose, fragmentation, malloc_path, placement, process::Machine, profile, properties,
    size_classes, swap, syscall_cost, trace, tune, usable_size,
};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "allockit-lab", version, about = "Allocator experiments, measured on this machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// Also write Markdown, CSV and PNG files into DIR
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run the small, fast version (what the test suite runs)
    #[arg(long, alias = "fast")]
    quick: bool,
}

impl Common {
    fn scale(&self) -> Scale {
        Scale::quick_if(self.quick)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Task 1: usable size per request, size classes, RSS per 1-byte object, per allocator
    UsableSize {
        #[command(flatten)]
        common: Common,
        /// Search size classes up to this request size in bytes
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=(1 << 26)))]
        class_limit: Option<u64>,
        /// Live 1-byte objects for the RSS measurement
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        objects: Option<u64>,
    },
    /// Task 2: malloc/free vs mmap/munmap (and first touch), ns per pair
    SyscallCost {
        #[command(flatten)]
        common: Common,
        /// malloc(64)/free pairs per round
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        iterations: Option<u64>,
        /// mmap/munmap pairs per round
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        mmap_iterations: Option<u64>,
        /// Rounds per operation (the median is reported)
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
        rounds: Option<u64>,
    },
    /// Task 3: free every other small block, ask for a larger one; glibc vs allockit's free list
    Fragmentation {
        #[command(flatten)]
        common: Common,
        /// Small blocks to allocate
        #[arg(long, value_parser = clap::value_parser!(u64).range(4..=10_000_000))]
        blocks: Option<u64>,
        /// Bytes per small block
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16_384))]
        block_size: Option<u64>,
        /// Bytes of the larger block requested after the frees (at most 64 KiB)
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_536))]
        large_size: Option<u64>,
    },
    /// Tasks 4-6: arena, pool and free-list properties, each figure with PASS/FAIL (exit 1 on a FAIL)
    Properties {
        #[command(flatten)]
        common: Common,
        /// Mixed alloc/realloc/free cycles per placement policy in the coalescing check
        #[arg(long, value_parser = clap::value_parser!(u64).range(4..=100_000_000))]
        cycles: Option<u64>,
        /// Most blocks live at once in the coalescing check
        #[arg(long, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
        live_slots: Option<u64>,
        /// Allocations per alignment in the arena checks
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        allocations_per_alignment: Option<u64>,
        /// Seed of the coalescing workload
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Task 7: first, next and best fit (and FIFO first fit) on one seeded mixed workload
    Placement {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// Task 8: size classes vs one free list on the same workload: speedup, waste per class
    SizeClasses {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// Task 9: the same binary (or `-- CMD ARGS...`) under glibc, jemalloc, tcmalloc, mimalloc, allockit-malloc
    Swap {
        #[command(flatten)]
        common: Common,
        /// Worker threads of the built-in workload
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        threads: Option<u64>,
        /// Requests per thread of the built-in workload
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        requests: Option<u64>,
        /// Milliseconds of the idle phase after the workload freed everything (the decay wait)
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600_000))]
        idle_ms: Option<u64>,
        /// RSS sampling interval in milliseconds
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        interval_ms: u64,
        /// Rounds; each runs every allocator once, the order rotated per round (default 3, --quick 2)
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: Option<u64>,
        /// Run this program instead of the built-in workload
        #[arg(last = true, value_name = "CMD ARGS")]
        command: Vec<String>,
    },
    /// Task 10: leak or fragmentation, with a verdict and a measured fix
    Diagnose {
        #[command(flatten)]
        common: Common,
        /// Diagnose a running allockit-server from its /metrics URL instead
        #[arg(long)]
        url: Option<String>,
        /// With --url: how long to sample, in seconds
        #[arg(long, requires = "url", default_value = "30", value_parser = parse_seconds)]
        duration: Duration,
        /// With --url: sampling interval, in seconds
        #[arg(long, requires = "url", default_value = "1", value_parser = parse_seconds)]
        interval: Duration,
    },
    /// Task 11: jemalloc heap profile, top allocation sites by live bytes
    Profile {
        #[command(flatten)]
        common: Common,
        /// Fetch the profile from a server's admin route (GET /admin/heap-profile) instead
        #[arg(long, requires = "server_bin")]
        url: Option<String>,
        /// With --url: the server's binary, to symbolize the profile
        #[arg(long, requires = "url")]
        server_bin: Option<PathBuf>,
        /// With --url: bearer token of the admin listener
        #[arg(long, env = "ALLOCKIT_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// With --url: turn the server's sampling on for this many seconds before the dump
        /// (and off after it)
        #[arg(long, requires = "url", value_parser = parse_seconds)]
        sample_for: Option<Duration>,
    },
    /// Self-assessment: malloc(24) without a system call, and the rare paths' brk/mmap (under strace)
    MallocPath {
        #[command(flatten)]
        common: Common,
        /// malloc(24)/free pairs in the steady phase
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
        pairs: Option<u64>,
    },
    /// Self-assessment: glibc MALLOC_ARENA_MAX and jemalloc MALLOC_CONF on a multi-threaded workload
    Tune {
        #[command(flatten)]
        common: Common,
        /// Worker threads
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        threads: Option<u64>,
        /// Milliseconds to idle after freeing everything, before the last RSS reading
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600_000))]
        decay_wait_ms: Option<u64>,
    },
    /// Every experiment, one Markdown report with its tables and charts
    All {
        /// Directory for report.md and every experiment's files
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Run the small, fast versions
        #[arg(long, alias = "fast")]
        quick: bool,
    },
    /// Internal: one measurement in a child process (JSON in, JSON out)
    #[command(hide = true)]
    Child { task: String, params: String },
}

/// The shape of the mixed trace that `placement` and `size-classes` replay.
#[derive(Args)]
struct TraceArgs {
    /// Allocations in the trace (each freed once: twice as many operations)
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
    allocations: Option<u64>,
    /// Seed of the trace (sizes, lifetimes, free order)
    #[arg(long)]
    seed: Option<u64>,
    /// Timed replays per heap; the median is reported
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: Option<u64>,
}

impl TraceArgs {
    fn apply(&self, shape: &mut trace::TraceShape, rounds: &mut usize) {
        shape.allocations = self.allocations.map_or(shape.allocations, to_usize);
        shape.seed = self.seed.unwrap_or(shape.seed);
        *rounds = self.rounds.map_or(*rounds, to_usize);
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err("must be a positive number of seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn emit(outcome: &dyn Outcome, out: Option<&Path>) -> anyhow::Result<()> {
    print!("{}", report::render_text(outcome));
    if let Some(dir) = out {
        let written = report::write_outcome(dir, outcome, &Machine::describe())?;
        println!("\nwrote {} files to {}", written.len(), dir.display());
    }
    Ok(())
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The lab's own binary, which experiments re-execute as children.
fn own_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the lab's own binary to re-execute")
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Child { task, params } => {
            println!("{}", allockit_lab::run_child_task(&task, &params)?);
            Ok(())
        }
        Command::UsableSize { common, class_limit, objects } => {
            let mut probe = usable_size::SizeProbe::at(common.scale());
            probe.class_limit = class_limit.map_or(probe.class_limit, to_usize);
            probe.objects = objects.map_or(probe.objects, to_usize);
            emit(&usable_size::run(&own_exe()?, &probe)?, common.out.as_deref())
        }
        Command::SyscallCost { common, iterations, mmap_iterations, rounds } => {
            let mut options = syscall_cost::SyscallCostOptions::at(common.scale());
            options.malloc_pairs = iterations.map_or(options.malloc_pairs, to_usize);
            options.mmap_pairs = mmap_iterations.map_or(options.mmap_pairs, to_usize);
            options.rounds = rounds.map_or(options.rounds, to_usize);
            emit(&syscall_cost::run(&options)?, common.out.as_deref())
        }
        Command::Fragmentation { common, blocks, block_size, large_size } => {
            let mut options = fragmentation::FragmentationOptions::at(common.scale());
            options.blocks = blocks.map_or(options.blocks, to_usize);
            options.block_size = block_size.map_or(options.block_size, to_usize);
            options.large_size = large_size.map_or(options.large_size, to_usize);
            emit(&fragmentation::run(&own_exe()?, &options)?, common.out.as_deref())
        }
        Command::Properties { common, cycles, live_slots, allocations_per_alignment, seed } => {
            let mut options = properties::PropertiesOptions::at(common.scale());
            options.cycles = cycles.map_or(options.cycles, to_usize);
            options.live_slots = live_slots.map_or(options.live_slots, to_usize);
            options.allocations_per_alignment =
                allocations_per_alignment.map_or(options.allocations_per_alignment, to_usize);
            options.seed = seed.unwrap_or(options.seed);
            let outcome = properties::run(&options)?;
            emit(&outcome, common.out.as_deref())?;
            let failures = outcome.failures();
            if !failures.is_empty() {
                anyhow::bail!("{} of {} properties failed", failures.len(), outcome.checks.len());
            }
            Ok(())
        }
        Command::Placement { common, trace } => {
            let mut options = placement::PlacementOptions::at(common.scale());
            trace.apply(&mut options.trace, &mut options.rounds);
            emit(&placement::run(&options)?, common.out.as_deref())
        }
        Command::SizeClasses { common, trace } => {
            let mut options = size_classes::SizeClassesOptions::at(common.scale());
            trace.apply(&mut options.trace, &mut options.rounds);
            emit(&size_classes::run(&options)?, common.out.as_deref())
        }
        Command::Swap { common, threads, requests, idle_ms, interval_ms, rounds, command } => {
            let mut options = swap::SwapOptions::at(common.scale());
            if command.is_empty() {
                if let swap::Subject::Workload(workload) = &mut options.subject {
                    workload.threads = threads.map_or(workload.threads, to_usize);
                    workload.requests_per_thread = requests.map_or(workload.requests_per_thread, to_usize);
                    workload.idle_ms = idle_ms.unwrap_or(workload.idle_ms);
                }
            } else {
                if threads.is_some() || requests.is_some() || idle_ms.is_some() {
                    anyhow::bail!(
                        "--threads, --requests and --idle-ms shape the built-in workload; they do not apply to `-- CMD`"
                    );
                }
                options.subject = swap::Subject::Command(command);
            }
            options.interval = Duration::from_millis(interval_ms);
            options.rounds = rounds.map_or(options.rounds, to_usize);
            emit(&swap::run(&own_exe()?, &options)?, common.out.as_deref())
        }
        Command::Diagnose { common, url, duration, interval } => {
            let outcome = match url {
                Some(url) => diagnose::run_url(&url, duration, interval)?,
                None => {
                    let options = diagnose::DiagnoseOptions::at(common.scale());
                    diagnose::run_synthetic(&own_exe()?, &options)?
                }
            };
            emit(&outcome, common.out.as_deref())
        }
        Command::Profile { common, url, server_bin, token, sample_for } => {
            let outcome = match (url, server_bin) {
                (Some(url), Some(server_bin)) => profile::run_url(&profile::ServerProfile {
                    url: &url,
                    server_bin: &server_bin,
                    token: token.as_deref(),
                    sample_for,
                })?,
                _ => profile::run_workload(&own_exe()?, common.scale())?,
            };
            emit(&outcome, common.out.as_deref())
        }
        Command::MallocPath { common, pairs } => {
            let mut options = malloc_path::MallocPath::at(common.scale());
            options.steady_pairs = pairs.map_or(options.steady_pairs, to_usize);
            emit(&malloc_path::run(&own_exe()?, &options)?, common.out.as_deref())
        }
        Command::Tune { common, threads, decay_wait_ms } => {
            let mut workload = tune::TuneWorkload::at(common.scale());
            workload.threads = threads.map_or(workload.threads, to_usize);
            workload.decay_wait_ms = decay_wait_ms.unwrap_or(workload.decay_wait_ms);
            emit(&tune::run(&own_exe()?, &workload)?, common.out.as_deref())
        }
        Command::All { out, quick } => {
            let outcomes = allockit_lab::run_all(&own_exe()?, Scale::quick_if(quick), |outcome| {
                println!("{}", report::render_text(outcome));
            })?;
            let page = report::write_report(&out, &outcomes, &Machine::describe())?;
            println!("wrote {}", page.display());
            Ok(())
        }
    }
}
