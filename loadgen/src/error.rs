//! The crate's one error type.
//!
//! Every fallible function of the library returns [`Error`]. Variants carry what a user
//! needs to act: the flag, URL, address or file involved, and the underlying cause.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop a load run, a scrape, a report or the demo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL given on the command line is not a plain `http://host:port/path` URL.
    #[error("{flag}: {message} (got {url:?})")]
    InvalidUrl {
        /// The flag (or argument) that carried the URL.
        flag: &'static str,
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A flag value passed clap's parser but is unusable with the others.
    #[error("{flag}: {message}")]
    InvalidArgument {
        /// The flag at fault.
        flag: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// The target's host name did not resolve.
    #[error("cannot resolve {authority}: {source}")]
    Resolve {
        /// `host:port` as given.
        authority: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Nothing accepts connections at the target.
    #[error("cannot connect to {url} ({addr}): {source}; is the server running?")]
    Unreachable {
        /// The target URL.
        url: String,
        /// The resolved address that refused or timed out.
        addr: SocketAddr,
        /// The connect error.
        source: io::Error,
    },
    /// The HTTP/1.1 handshake on a fresh connection failed.
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        /// The peer.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// A listener (for `--metrics-addr`) could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The bind error.
        source: io::Error,
    },
    /// Reading or writing a file (report, CSV, chart, log) failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Rendering a chart failed.
    #[error("cannot draw {}: {message}", path.display())]
    Plot {
        /// The chart file.
        path: PathBuf,
        /// The drawing backend's error.
        message: String,
    },
    /// A report could not be serialised.
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The Prometheus registry rejected a metric (a programming error in metric definitions).
    #[error("prometheus: {0}")]
    Prometheus(#[from] prometheus::Error),
    /// A latency histogram could not be created or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// The server binary for the demo is not where it was looked for.
    #[error(
        "cannot find the server binary (looked at {}); build it with \
         `cargo build --release -p allockit-server -p loadgen` or pass --server-bin PATH",
        looked_at.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ServerBinaryMissing {
        /// Every path that was tried.
        looked_at: Vec<PathBuf>,
    },
    /// The server process could not be started or did not announce its addresses.
    #[error("server {mode}: {message} (its log: {})", log.display())]
    ServerStart {
        /// Which demo mode it was started for.
        mode: String,
        /// What went wrong.
        message: String,
        /// Where its stderr went.
        log: PathBuf,
    },
    /// A task of the run panicked or was cancelled (a bug; the message says where).
    #[error("internal task failed: {0}")]
    TaskFailed(String),
    /// Talking to a child process failed at the OS level.
    #[error("server process: {0}")]
    Process(io::Error),
}
