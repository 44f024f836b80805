//! The crate's one error type: what went wrong talking to a server over HTTP.

use std::io;

/// Why a request of [`crate::http`] failed, with the request (`GET http://...`) it was.
// The variants are documented; their fields are named by the message each `#[error]`
// prints (`{url}`, `{request}`, `{cause}`), so per-field docs would only repeat the names.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not a plain `http://host[:port][/path]`.
    #[error("{url:?} is not a usable URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Resolving, connecting, writing or reading failed at the OS level (the error's kind
    /// tells a refused connection from a timeout).
    #[error("{request}: {what}: {cause}")]
    Io { request: String, what: String, cause: io::Error },
    /// The peer answered something that is not an HTTP/1.x response.
    #[error("{request}: malformed response: {reason}")]
    Malformed { request: String, reason: String },
    /// The server answered with a status outside 2xx (from
    /// [`crate::http::Response::error_for_status`]).
    #[error("{request}: HTTP {status}: {body}")]
    Status { request: String, status: u16, body: String },
}

impl Error {
    /// The OS error behind an [`Error::Io`], e.g. to tell `ConnectionRefused` from
    /// `TimedOut`.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { cause, .. } => Some(cause.kind()),
            _ => None,
        }
    }
}
