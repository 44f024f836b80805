//! The one error type of the lab library.
//!
//! A variant's message includes its cause, which is therefore not offered again as
//! [`std::error::Error::source`]: the binary prints errors through `anyhow`, which would
//! otherwise repeat the OS error on a `Caused by:` line.

use std::path::PathBuf;

/// Everything that can stop an experiment.
// The variants are documented; their fields are named by the message each `#[error]`
// prints (`{flag}`, `{path}`, `{cause}`), so per-field docs would only repeat the names.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or directory operation failed; `action` is "write", "read", "create
    /// directory".
    #[error("{action} {path}: {cause}")]
    File { action: &'static str, path: PathBuf, cause: std::io::Error },
    /// A child process could not be started or waited for.
    #[error("cannot run `{command}`: {cause}")]
    Spawn { command: String, cause: std::io::Error },
    /// A child process ran but failed; `status` says how it ended ("exit status 1",
    /// "signal 9").
    #[error("`{command}` failed ({status}); its stderr ends with:\n{stderr_tail}")]
    ChildFailed { command: String, status: String, stderr_tail: String },
    /// A child process printed something other than the JSON the lab expects.
    #[error("unexpected output from `{command}`: {reason}")]
    ChildOutput { command: String, reason: String },
    /// A preloaded allocator did not end up serving `malloc` in the child.
    #[error("{expected} was preloaded but `malloc` in the child resolves to {actual}")]
    PreloadIgnored { expected: String, actual: String },
    /// An allocator the experiment needs is not installed.
    #[error("{allocator} is not installed; install it with `{install}`")]
    AllocatorMissing { allocator: &'static str, install: String },
    /// jemalloc's control interface is not in this process.
    #[error(
        "jemalloc is not loaded in this process (no `{symbol}` symbol); run it with LD_PRELOAD=libjemalloc.so.2"
    )]
    JemallocNotLoaded { symbol: &'static str },
    /// A `mallctl` call failed.
    #[error("mallctl(\"{name}\") failed with errno {errno}")]
    Mallctl { name: String, errno: i32 },
    /// An HTTP request failed or was answered with a non-2xx status (the probe's error
    /// names the request and the step that failed).
    #[error("{cause}")]
    Http { cause: allockit_probe::Error },
    /// A metric the diagnosis needs is not exposed.
    #[error("{url} does not expose the metric `{metric}`")]
    MissingMetric { url: String, metric: &'static str },
    /// An argument has a value the experiment cannot use.
    #[error("invalid value for {flag}: {reason}")]
    InvalidArgument { flag: &'static str, reason: String },
    /// A heap under test refused an allocation of a trace.
    #[error("{heap} refused an allocation: {cause}")]
    HeapRefused { heap: String, cause: allockit::HeapError },
    /// allockit's chunk source could not be set up.
    #[error("chunk source: {0}")]
    ChunkSource(allockit::ChunkError),
    /// A heap profile could not be read, converted or symbolized.
    #[error("heap profile: {0}")]
    Profile(String),
    /// A program an experiment runs (such as `strace`) is not installed.
    #[error("{tool} is not installed; install it with `{install}` (scripts/install-deps does)")]
    ToolMissing { tool: &'static str, install: String },
    /// A system call that reads a clock or a counter of this process failed.
    #[error("{call} failed: {cause}")]
    SystemCall { call: &'static str, cause: std::io::Error },
    /// A chart could not be drawn.
    #[error("chart {path}: {reason}")]
    Chart { path: PathBuf, reason: String },
    /// JSON could not be encoded or decoded.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
}

impl LabError {
    /// The error for a failed request of the probe's HTTP client: a URL it cannot use is a
    /// bad value of `flag`, anything else an [`LabError::Http`].
    pub fn from_request(flag: &'static str, error: allockit_probe::Error) -> Self {
        match error {
            allockit_probe::Error::InvalidUrl { url, reason } => {
                LabError::InvalidArgument { flag, reason: format!("{url:?}: {reason}") }
            }
            cause => LabError::Http { cause },
        }
    }

    /// Wraps an I/O error on `path`.
    pub fn file(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        LabError::File { action, path: path.into(), cause }
    }
}

impl From<allockit::ChunkError> for LabError {
    fn from(error: allockit::ChunkError) -> Self {
        LabError::ChunkSource(error)
    }
}

impl From<serde_json::Error> for LabError {
    fn from(error: serde_json::Error) -> Self {
        LabError::Json(error)
    }
}
