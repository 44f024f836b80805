//! Response bodies: a pooled buffer (the hot type), a heap buffer (heap mode), or plain
//! bytes (metrics, errors, admin).

use core::mem::MaybeUninit;

use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::response_pool::PooledBuffer;

/// The bytes of a response.
#[derive(Debug)]
pub enum Payload {
    /// Rendered into a pool block; the block returns to the pool when hyper drops this,
    /// after writing it.
    Pooled {
        /// The worker's pool block; its drop gives it back.
        buffer: PooledBuffer,
        /// Bytes rendered, from the start of the block; the rest is uninitialised.
        len: usize,
        /// Bytes already consumed by hyper.
        pos: usize,
    },
    /// Rendered into a heap block (heap mode).
    Heap {
        /// A jemalloc block of the pool block's size, so both modes render alike.
        buffer: Box<[MaybeUninit<u8>]>,
        /// Bytes rendered, from the start of the block; the rest is uninitialised.
        len: usize,
        /// Bytes already consumed by hyper.
        pos: usize,
    },
    /// A body no pool block holds: the live page, `/metrics`, admin answers.
    Bytes(Bytes),
}

impl Buf for Payload {
    fn remaining(&self) -> usize {
        match self {
            Payload::Pooled { len, pos, .. } | Payload::Heap { len, pos, .. } => len - pos,
            Payload::Bytes(bytes) => bytes.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            // SAFETY: the first `len` bytes were rendered before the payload was built.
            Payload::Pooled { buffer, len, pos } => &(unsafe { buffer.initialised(*len) })[*pos..],
            // SAFETY: as above.
            Payload::Heap { buffer, len, pos } => {
                &(unsafe { core::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), *len) })[*pos..]
            }
            Payload::Bytes(bytes) => bytes.chunk(),
        }
    }

    fn advance(&mut self, cnt: usize) {
        match self {
            Payload::Pooled { len, pos, .. } | Payload::Heap { len, pos, .. } => {
                assert!(cnt <= *len - *pos, "advance past the end of a payload");
                *pos += cnt;
            }
            Payload::Bytes(bytes) => bytes.advance(cnt),
        }
    }
}

/// The response body type of every route.
pub type Body = Full<Payload>;

/// The `Content-Type` of JSON responses.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A response with `payload` and a content type.
pub fn with_payload(status: StatusCode, content_type: HeaderValue, payload: Payload) -> Response<Body> {
    let mut response = Response::new(Full::new(payload));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A JSON response from plain bytes.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_payload(status, JSON, Payload::Bytes(body.into()))
}

/// `{"error": message, "status": code}`.
pub fn error_body(status: StatusCode, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message, "status": status.as_u16() }))
        .expect("serialising a JSON value cannot fail")
}

/// An error response with a JSON body.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, error_body(status, message))
}

/// 405 with the allowed methods.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, &format!("method not allowed; use {allow}"));
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// Marks a response as the last on its connection (`Connection: close`): hyper then closes
/// after writing it, and the client knows not to reuse the connection (an unread body, a
/// timed-out one).
pub fn closing(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A complete raw HTTP/1.1 response with a JSON error body, `Connection: close` and the
/// `extra` headers, for answers written straight to a socket outside hyper (connection
/// limit, header timeout).
pub fn raw_error(status: StatusCode, message: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let body = error_body(status, message);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    raw
}
