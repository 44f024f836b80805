//! `loadgen`: parses the command line, builds the tokio runtime, runs the command and maps
//! the outcome to an exit status (see `loadgen --help`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use loadgen::cli::{Cli, Verdict};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::LimitExceeded(reasons)) => {
            for reason in reasons {
                eprintln!("loadgen: {reason}");
            }
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("loadgen: error: {error:#}");
            // A flag value refused after parsing is as much a bad command line as one clap
            // refused itself (exit status 2, see `loadgen --help`).
            let usage = error.downcast_ref::<loadgen::Error>().is_some_and(loadgen::Error::is_usage);
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Verdict> {
    let threads = cli.threads();
    let mut builder = if threads == 1 {
        // One thread: the current-thread scheduler skips the work-stealing machinery.
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder.enable_all().build().context("cannot start the tokio runtime")?;
    Ok(runtime.block_on(loadgen::cli::execute(cli))?)
}
