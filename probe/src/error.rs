//! The crate's one error type: what went wrong talking to a server over HTTP.

use std::fmt;
use std::io;

/// Why a request of [`crate::http`] failed, with the request (`GET http://...`) it was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not a plain `http://host[:port][/path]`.
    #[error("{url:?} is not a usable URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Resolving, connecting, writing or reading failed at the OS level (the error's kind
    /// tells a refused connection from a timeout).
    #[error("{request}: {what}: {cause}")]
    Io {
        /// The method and URL.
        request: String,
        /// The step that failed: "resolve", "connect to 127.0.0.1:9", "send", "receive".
        what: String,
        /// The operating system's error.
        cause: io::Error,
    },
    /// The peer answered something that is not an HTTP/1.x response.
    #[error("{request}: malformed response: {reason}")]
    Malformed {
        /// The method and URL.
        request: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The server answered with a status outside 2xx (from
    /// [`crate::http::Response::error_for_status`]).
    #[error("{request}: HTTP {status}: {body}")]
    Status {
        /// The method and URL.
        request: String,
        /// The status code.
        status: u16,
        /// The start of the body (at most 200 characters), for the message.
        body: String,
    },
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

/// `GET http://...`: how a request is named in errors.
pub(crate) struct RequestName<'a>(pub &'a str, pub &'a str);

impl fmt::Display for RequestName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}
