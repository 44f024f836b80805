//! The crate's one error type.
//!
//! Every fallible function of the library returns [`Error`]. Variants carry what a user
//! needs to act: the flag, URL, address or file involved, and the underlying cause.
//!
//! The cause is part of the message (with its own causes, see [`Causes`]) and is not
//! offered again as [`std::error::Error::source`]: a caller that prints the whole chain,
//! as `anyhow`'s `{:#}` does, would otherwise repeat it (`Connection refused (os error
//! 111); is the server running?: Connection refused (os error 111)`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop a load run, a scrape, a report or the demo.
// The variants are documented; their fields are named by the message each `#[error]`
// prints (`{flag}`, `{url}`, `{cause}`), so per-field docs would only repeat the names.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL given on the command line is not a plain `http://host:port/path` URL.
    #[error("{flag}: {message} (got {url:?})")]
    InvalidUrl { flag: &'static str, url: String, message: String },
    /// A flag value passed clap's parser but is unusable with the others.
    #[error("{flag}: {message}")]
    InvalidArgument { flag: &'static str, message: String },
    /// The target's host name did not resolve.
    #[error("cannot resolve {authority}: {}", Causes(cause))]
    Resolve { authority: String, cause: io::Error },
    /// Nothing accepts connections at the target.
    #[error("cannot connect to {url} ({addr}): {}; is the server running?", Causes(cause))]
    Unreachable { url: String, addr: SocketAddr, cause: io::Error },
    /// The HTTP/1.1 handshake on a fresh connection failed.
    #[error("HTTP handshake with {addr} failed: {}", Causes(cause))]
    Handshake { addr: SocketAddr, cause: hyper::Error },
    /// A request on an open connection failed: the connection broke, or the peer answered
    /// something that is not HTTP/1.1.
    #[error("HTTP exchange failed: {}", Causes(cause))]
    Exchange { cause: hyper::Error },
    /// A response body was larger than the caller accepts.
    #[error("response body over {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A listener (for `--metrics-addr`) could not bind.
    #[error("cannot listen on {addr}: {}", Causes(cause))]
    Bind { addr: SocketAddr, cause: io::Error },
    /// Reading or writing a file (report, CSV, chart, log) failed.
    #[error("{}: {}", path.display(), Causes(cause))]
    File { path: PathBuf, cause: io::Error },
    /// A file given to `loadgen merge` is not a loadgen run report, or does not fit with the
    /// others.
    #[error("{}: {message}", path.display())]
    Merge { path: PathBuf, message: String },
    /// Rendering a chart failed.
    #[error("cannot draw {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    /// A report could not be serialised.
    #[error("cannot encode the report as JSON: {}", Causes(.0))]
    Json(serde_json::Error),
    /// The Prometheus registry rejected a metric (a programming error in metric definitions).
    #[error("prometheus: {}", Causes(.0))]
    Prometheus(prometheus::Error),
    /// A latency histogram could not be created or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// The server binary for the demo is not where it was looked for.
    #[error(
        "cannot find the server binary (looked at {}); build it with \
         `cargo build --release -p allockit-server -p loadgen` or pass --server-bin PATH",
        looked_at.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ServerBinaryMissing { looked_at: Vec<PathBuf> },
    /// The server process could not be started or did not announce its addresses.
    #[error("server {mode}: {message} (its log: {})", log.display())]
    ServerStart { mode: String, message: String, log: PathBuf },
    /// A task of the run panicked or was cancelled (a bug; the message says where).
    #[error("internal task failed: {0}")]
    TaskFailed(String),
    /// Talking to a child process failed at the OS level.
    #[error("server process: {}", Causes(.0))]
    Process(io::Error),
}

impl Error {
    /// Whether the command line is at fault (a flag value unusable on its own or with the
    /// others), as opposed to the run: the binary exits with status 2 for these, as clap
    /// does for the values it refuses itself.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::InvalidUrl { .. } | Error::InvalidArgument { .. })
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Json(error)
    }
}

impl From<prometheus::Error> for Error {
    fn from(error: prometheus::Error) -> Self {
        Error::Prometheus(error)
    }
}

/// An error followed by each of its causes, `: `-separated: how a variant shows the cause
/// it holds (hyper's errors, for one, keep the OS error one level down).
#[derive(Debug)]
struct Causes<'a>(&'a dyn std::error::Error);

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}
