//! `allockit-server`: parses flags, starts the server, prints the listening addresses as
//! one JSON line on stdout, and shuts down gracefully on SIGINT or SIGTERM.

use std::io::Write;

use allockit_server::Config;
use allockit_server::config::LogFormat;
use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).with_context(|| format!("--log {:?}", config.log))?;
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    raise_open_file_limit();

    let server = allockit_server::start(config)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, r#"{{"listening":"{}","admin":"{}"}}"#, server.addr, server.admin_addr)?;
    stdout.flush()?;
    drop(stdout);

    let trigger = server.shutdown_trigger();
    let shared = std::sync::Arc::clone(server.shared());
    let signals = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    signals.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(
            signal = name,
            in_flight = shared.connections(),
            "shutting down: draining connections"
        );
        anyhow::Ok(())
    })?;
    let _ = trigger;
    server.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, as servers do: each connection
/// is a descriptor (two, while a request's headers are pending).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the open-file limit");
        }
    }
}
