//! The crate's one error type: an [`Error`] carries an [`ErrorKind`] to match on and, where
//! there is one, its cause (hyper's `Error { kind, cause }` is the model). Start-up
//! failures, jemalloc control calls and the failures of a request share it. A request's
//! error knows its HTTP status ([`Error::status`]), and its message is written without
//! allocating, straight into the response buffer: the request path stays off the general
//! heap on errors too.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::StatusCode;

use crate::validate::Invalid;
use crate::workload::Refusal;

/// What went wrong, as callers branch on it: start-up failures (flags, binding, jemalloc)
/// and the request failures that [`Error::status`] maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A flag combination clap cannot check.
    Config(String),
    /// A listener could not be bound (the cause says why, e.g. the address is in use).
    Bind(SocketAddr),
    /// The chunk source could not reserve its regions.
    Chunks,
    /// jemalloc refused the control call of this name.
    Jemalloc(String),
    /// A heap-profile path jemalloc cannot take (it holds a NUL byte).
    ProfilePath(PathBuf),
    /// The profile cache could not reserve its index for this many entries.
    CacheIndex(usize),
    /// The cache arena's first region (of this many bytes) could not be reserved.
    CacheRegion(usize),
    /// A worker thread could not be started.
    Worker,
    /// A request's body is not a valid batch (found by [`crate::validate`]).
    InvalidBatch(Invalid),
    /// serde_json refused a batch the first pass accepted (the cause says why).
    Json,
    /// A batch beyond a limit, or beyond the request's own memory limit.
    Refused(Refusal),
    /// Every arena region is in use: request memory is exhausted for everyone.
    RequestMemoryExhausted,
    /// A body larger than `--max-body-bytes` (the limit).
    BodyTooLarge(usize),
    /// A body not received within `--body-read-timeout` (the timeout).
    BodyTimeout(Duration),
    /// The body could not be read (bad chunked framing).
    BodyUnreadable,
    /// The client closed the connection mid-request.
    ClientGone,
    /// The worker's response-buffer pool is exhausted.
    PoolExhausted,
    /// The dedicated cache arena is out of memory.
    CacheArenaFull,
    /// Rendered output (named here) does not fit its buffer.
    DoesNotFit(&'static str),
}

/// The underlying error, kept inline (no box: request errors must not allocate).
#[derive(Debug)]
enum Cause {
    Io(io::Error),
    Chunks(allockit::ChunkError),
    Jemalloc(tikv_jemalloc_ctl::Error),
    Json(serde_json::Error),
}

/// An error of the server: a kind and, where there is one, its cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    cause: Option<Cause>,
}

/// nginx's status for a request whose client went away before the answer (not standard).
pub const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a valid status code"),
};

impl Error {
    /// An error of `kind` without a cause.
    pub fn new(kind: ErrorKind) -> Self {
        Self { kind, cause: None }
    }

    /// A listener that could not be bound.
    pub fn bind(addr: SocketAddr, cause: io::Error) -> Self {
        Self { kind: ErrorKind::Bind(addr), cause: Some(Cause::Io(cause)) }
    }

    /// A worker thread that could not be started.
    pub fn worker(cause: io::Error) -> Self {
        Self { kind: ErrorKind::Worker, cause: Some(Cause::Io(cause)) }
    }

    /// The cache arena's first region, of `bytes`, could not be reserved.
    pub fn cache_region(bytes: usize, cause: io::Error) -> Self {
        Self { kind: ErrorKind::CacheRegion(bytes), cause: Some(Cause::Io(cause)) }
    }

    /// A failed jemalloc control call.
    pub fn jemalloc(what: impl Into<String>, cause: tikv_jemalloc_ctl::Error) -> Self {
        Self { kind: ErrorKind::Jemalloc(what.into()), cause: Some(Cause::Jemalloc(cause)) }
    }

    /// A batch serde_json refused.
    pub fn json(cause: serde_json::Error) -> Self {
        Self { kind: ErrorKind::Json, cause: Some(Cause::Json(cause)) }
    }

    /// A batch the first pass refused: a limit ([`ErrorKind::Refused`]) or bad JSON.
    pub fn invalid(invalid: Invalid) -> Self {
        match invalid.refusal() {
            Some(refusal) => Self::new(ErrorKind::Refused(refusal)),
            None => Self::new(ErrorKind::InvalidBatch(invalid)),
        }
    }

    /// The kind to branch on (the cause, if any, is the error's `source`).
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The HTTP status that answers this error (500 for errors that are not a request's).
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            ErrorKind::InvalidBatch(_) | ErrorKind::Json | ErrorKind::BodyUnreadable => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::Refused(Refusal::OutOfMemory) | ErrorKind::BodyTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ErrorKind::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::ClientGone => CLIENT_CLOSED_REQUEST,
            ErrorKind::RequestMemoryExhausted | ErrorKind::PoolExhausted | ErrorKind::CacheArenaFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Config(message) => f.write_str(message)?,
            ErrorKind::Bind(addr) => write!(f, "cannot listen on {addr}")?,
            ErrorKind::Chunks => f.write_str("cannot reserve arena regions")?,
            ErrorKind::Jemalloc(what) => write!(f, "jemalloc {what}")?,
            ErrorKind::ProfilePath(path) => write!(f, "profile path {path:?} contains a NUL byte")?,
            ErrorKind::CacheIndex(entries) => {
                write!(f, "cannot reserve a profile cache of {entries} entries on the cache arena")?
            }
            ErrorKind::CacheRegion(bytes) => {
                write!(f, "cannot reserve a cache region of {bytes} bytes (--cache-region-bytes)")?
            }
            ErrorKind::Worker => f.write_str("cannot start a worker")?,
            ErrorKind::InvalidBatch(invalid) => write!(f, "invalid batch: {invalid}")?,
            ErrorKind::Json => f.write_str("invalid batch")?,
            ErrorKind::Refused(refusal) => write!(f, "{refusal}")?,
            ErrorKind::RequestMemoryExhausted => {
                f.write_str("request memory is exhausted (every arena region is in use); try again later")?
            }
            ErrorKind::BodyTooLarge(max) => write!(f, "body larger than --max-body-bytes ({max} bytes)")?,
            ErrorKind::BodyTimeout(timeout) => {
                write!(f, "request body not received in time (--body-read-timeout {timeout:?})")?
            }
            ErrorKind::BodyUnreadable => f.write_str("the request body could not be read")?,
            ErrorKind::ClientGone => f.write_str("the client closed the connection mid-request")?,
            ErrorKind::PoolExhausted => f.write_str("response buffer pool exhausted")?,
            ErrorKind::CacheArenaFull => f.write_str("the cache arena is out of memory")?,
            ErrorKind::DoesNotFit(what) => write!(f, "{what} does not fit its buffer")?,
        }
        match &self.cause {
            Some(Cause::Io(cause)) => write!(f, ": {cause}"),
            Some(Cause::Chunks(cause)) => write!(f, ": {cause}"),
            Some(Cause::Jemalloc(cause)) => write!(f, ": {cause}"),
            Some(Cause::Json(cause)) => write!(f, ": {cause}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Some(Cause::Io(cause)) => Some(cause),
            Some(Cause::Chunks(cause)) => Some(cause),
            Some(Cause::Json(cause)) => Some(cause),
            // jemalloc's error code is only a number and its text (in the message).
            Some(Cause::Jemalloc(_)) | None => None,
        }
    }
}

impl From<allockit::ChunkError> for Error {
    fn from(cause: allockit::ChunkError) -> Self {
        Self { kind: ErrorKind::Chunks, cause: Some(Cause::Chunks(cause)) }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_know_their_status() {
        assert_eq!(Error::new(ErrorKind::BodyTooLarge(10)).status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            Error::new(ErrorKind::Refused(Refusal::EmptyUser)).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            Error::new(ErrorKind::Refused(Refusal::OutOfMemory)).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(Error::new(ErrorKind::RequestMemoryExhausted).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Error::new(ErrorKind::ClientGone).status().as_u16(), 499);
        assert_eq!(Error::new(ErrorKind::Worker).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_message_names_the_cause() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let error = Error::bind(addr, io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(error.kind(), &ErrorKind::Bind(addr));
        assert!(error.to_string().starts_with("cannot listen on 127.0.0.1:8080: "), "{error}");
        assert!(std::error::Error::source(&error).is_some());
    }
}
