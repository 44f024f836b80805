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

    let server = allockit_server::start(config)?;
    // The signal handlers are in place before the address is announced: whoever reads the
    // line may send SIGTERM at once, and must get a graceful stop, not the default action.
    let signals = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut interrupt, mut terminate) = signals.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        anyhow::Ok((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    })?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, r#"{{"listening":"{}","admin":"{}"}}"#, server.addr, server.admin_addr)?;
    stdout.flush()?;
    drop(stdout);

    let shared = std::sync::Arc::clone(server.shared());
    signals.block_on(async {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(
            signal = name,
            in_flight = shared.connections(),
            "shutting down: draining, then closing the listeners"
        );
    });
    server.shutdown();
    tracing::info!("stopped");
    Ok(())
}
