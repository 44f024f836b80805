//! The one error type of the lab library.

use std::path::PathBuf;

/// Everything that can stop an experiment.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done ("write", "read", "create directory").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A child process could not be started or waited for.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The program and its first arguments.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A child process ran but failed.
    #[error("`{command}` failed ({status}); its stderr ends with:\n{stderr_tail}")]
    ChildFailed {
        /// The program and its first arguments.
        command: String,
        /// How it ended ("exit status 1", "signal 9").
        status: String,
        /// The last lines it wrote to stderr.
        stderr_tail: String,
    },
    /// A child process printed something other than the JSON the lab expects.
    #[error("unexpected output from `{command}`: {reason}")]
    ChildOutput {
        /// The program and its first arguments.
        command: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A preloaded allocator did not end up serving `malloc` in the child.
    #[error("{expected} was preloaded but `malloc` in the child resolves to {actual}")]
    PreloadIgnored {
        /// The allocator that was asked for.
        expected: String,
        /// The library that actually provides `malloc`.
        actual: String,
    },
    /// An allocator the experiment needs is not installed.
    #[error("{allocator} is not installed; install it with `{install}`")]
    AllocatorMissing {
        /// The allocator's name.
        allocator: &'static str,
        /// The command that installs it.
        install: String,
    },
    /// jemalloc's control interface is not in this process.
    #[error(
        "jemalloc is not loaded in this process (no `{symbol}` symbol); run it with LD_PRELOAD=libjemalloc.so.2"
    )]
    JemallocNotLoaded {
        /// The symbol that was looked up.
        symbol: &'static str,
    },
    /// A `mallctl` call failed.
    #[error("mallctl(\"{name}\") failed with errno {errno}")]
    Mallctl {
        /// The control name.
        name: String,
        /// The error number jemalloc returned.
        errno: i32,
    },
    /// An HTTP request failed or was answered with a non-2xx status (the probe's error
    /// names the request and the step that failed).
    #[error("{cause}")]
    Http {
        /// What the probe's client reported.
        cause: allockit_probe::Error,
    },
    /// A metric the diagnosis needs is not exposed.
    #[error("{url} does not expose the metric `{metric}`")]
    MissingMetric {
        /// The /metrics URL.
        url: String,
        /// The metric name.
        metric: &'static str,
    },
    /// An argument has a value the experiment cannot use.
    #[error("invalid value for {flag}: {reason}")]
    InvalidArgument {
        /// The flag, as written on the command line.
        flag: &'static str,
        /// Why the value is unusable.
        reason: String,
    },
    /// A heap under test refused an allocation of a trace.
    #[error("{heap} refused an allocation: {source}")]
    HeapRefused {
        /// The heap's name.
        heap: String,
        /// Its error.
        #[source]
        source: allockit::HeapError,
    },
    /// allockit's chunk source could not be set up.
    #[error("chunk source: {0}")]
    ChunkSource(#[from] allockit::ChunkError),
    /// A heap profile could not be read, converted or symbolized.
    #[error("heap profile: {0}")]
    Profile(String),
    /// A chart could not be drawn.
    #[error("chart {path}: {reason}")]
    Chart {
        /// The image file.
        path: PathBuf,
        /// What plotters reported.
        reason: String,
    },
    /// JSON could not be encoded or decoded.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
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
    pub fn file(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::File { action, path: path.into(), source }
    }
}
