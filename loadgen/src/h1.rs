//! The lean HTTP/1.1 client of the load path: the socket driven directly, requests written
//! from a buffer the connection reuses, responses parsed with `httparse`.
//!
//! Why: a profile of loadgen at peak against a trivial server put most of the client's
//! user time in hyper's client (its dispatcher, header maps, body channel and the
//! per-request `Request`/`Response` values), not in loadgen's own bookkeeping; wrk's client
//! is a buffer, a `write` and an incremental parser, and so is this one (docs/loadgen.md,
//! "Speed"). hyper stays wherever it is not the bottleneck: the scraper, the demo's admin
//! calls, and `--client hyper`.
//!
//! What it does: one request at a time per connection (no pipelining), keep-alive; a
//! response body framed by `Content-Length`, by chunked transfer coding, or by the server
//! closing the connection, read and discarded; interim `1xx` responses skipped;
//! `Connection: close` (or an HTTP/1.0 response without `keep-alive`) ends the connection
//! after its response, so that the next request reconnects. A peer close noticed while the
//! connection idles ([`H1Connection::idle_until`]) does the same.
//!
//! What it cannot do: TLS, HTTP/2, `Expect: 100-continue`, upgrades, keeping a body (the
//! load path discards bodies; the scraper uses hyper). A response head larger than
//! [`MAX_HEAD`] bytes or with more than [`MAX_HEADERS`] headers is an error.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::http::{Target, connect_tcp};
use crate::workload::decimal;

/// The largest response head accepted, in bytes.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most response headers accepted.
pub const MAX_HEADERS: usize = 64;

/// The read buffer's initial size; it grows (to [`MAX_HEAD`]) only for a larger head.
const READ_BUFFER: usize = 8 * 1024;

/// How a request's bytes are written: a head serialised once per run, then per request a
/// `Content-Length` and the body, if any.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// `METHOD path HTTP/1.1\r\nHost: …\r\n` and any fixed headers, without the blank line.
    head: Vec<u8>,
    /// Whether requests carry a `Content-Length` even when their body is empty (POST, PUT,
    /// PATCH, as hyper sends them).
    length_always: bool,
}

impl RequestHead {
    /// The head of `method` requests to `target`'s path, with a `Content-Type` header when
    /// given. Fails on a path or host that cannot go in a request line or header.
    pub fn new(method: &str, target: &Target, content_type: Option<&str>) -> Result<Self, Error> {
        let invalid = |message: &str| Error::InvalidUrl {
            flag: "--path",
            url: target.url.clone(),
            message: message.to_owned(),
        };
        let clean = |text: &str| !text.bytes().any(|byte| byte.is_ascii_control() || byte == b' ');
        if !clean(method) || method.is_empty() {
            return Err(invalid("not a valid method"));
        }
        if !clean(&target.path) || !target.path.starts_with('/') {
            return Err(invalid("not a valid request path"));
        }
        if !clean(&target.authority) {
            return Err(invalid("bad host"));
        }
        let mut head = Vec::with_capacity(64 + target.path.len() + target.authority.len());
        for part in [method, " ", &target.path, " HTTP/1.1\r\nhost: ", &target.authority, "\r\n"] {
            head.extend_from_slice(part.as_bytes());
        }
        if let Some(content_type) = content_type {
            head.extend_from_slice(b"content-type: ");
            head.extend_from_slice(content_type.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        let length_always = matches!(method, "POST" | "PUT" | "PATCH");
        Ok(Self { head, length_always })
    }

    /// Writes the whole request, head and `body`, into `out` (cleared first).
    pub fn write(&self, body: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.head.len() + 32 + body.len());
        out.extend_from_slice(&self.head);
        if self.length_always || !body.is_empty() {
            out.extend_from_slice(b"content-length: ");
            let mut digits = [0u8; 20];
            out.extend_from_slice(decimal(body.len() as u64, &mut digits));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
}

/// Why an exchange failed. Every one of them ends the connection; the load engine counts
/// them as I/O errors, as it counts hyper's.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Reading or writing the socket failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before the response was complete.
    #[error("the server closed the connection mid-response")]
    Closed,
    /// The response is not HTTP/1.x as this client reads it.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// A keep-alive HTTP/1.1 connection with its read buffer.
#[derive(Debug)]
pub struct H1Connection {
    stream: TcpStream,
    /// Received bytes; `buffer[start..end]` is not consumed yet.
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    /// False once the connection cannot carry another request (peer close, error,
    /// `Connection: close`).
    open: bool,
}

impl H1Connection {
    /// Connects to `addr` (where `target` resolved to; its URL is for the error) within
    /// `timeout`.
    pub async fn open(target: &Target, addr: SocketAddr, timeout: Duration) -> Result<Self, Error> {
        let stream = connect_tcp(target, addr, timeout).await?;
        Ok(Self::from_stream(stream))
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> Self {
        Self { stream, buffer: vec![0; READ_BUFFER].into_boxed_slice(), start: 0, end: 0, open: true }
    }

    /// Whether the connection can still carry a request.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sleeps until `deadline`, noticing a peer close (or unsolicited bytes, which leave
    /// the connection unusable) meanwhile: [`H1Connection::is_open`] then turns false.
    pub async fn idle_until(&mut self, deadline: tokio::time::Instant) {
        let sleep = tokio::time::sleep_until(deadline);
        let mut sleep = std::pin::pin!(sleep);
        while self.open {
            tokio::select! {
                () = sleep.as_mut() => return,
                ready = self.stream.readable() => {
                    if ready.is_err() {
                        self.open = false;
                    } else {
                        let mut probe = [0u8; 1];
                        match self.stream.try_read(&mut probe) {
                            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                            // End of stream, an error, or bytes nobody asked for.
                            _ => self.open = false,
                        }
                    }
                }
            }
        }
        sleep.await;
    }

    /// Writes `request` (a whole serialised request) and reads the response to its end,
    /// discarding the body; returns the status. On an error the connection is closed.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<u16, ExchangeError> {
        let result = self.exchange_inner(request).await;
        if result.is_err() {
            self.open = false;
        }
        result
    }

    async fn exchange_inner(&mut self, request: &[u8]) -> Result<u16, ExchangeError> {
        if !self.open {
            return Err(ExchangeError::Closed);
        }
        // A response left unread (none should be: no pipelining) would be misread as this
        // one's.
        if self.start != self.end {
            return Err(ExchangeError::Malformed("bytes received before the request was sent"));
        }
        self.start = 0;
        self.end = 0;
        self.stream.write_all(request).await?;
        loop {
            let head = self.read_head().await?;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue; // an interim response; the final one follows
            }
            if head.status == 101 {
                return Err(ExchangeError::Malformed("the server switched protocols"));
            }
            let no_body = head.status == 204 || head.status == 304 || request.starts_with(b"HEAD ");
            match head.framing {
                _ if no_body => {}
                Framing::Length(length) => self.skip_body(length).await?,
                Framing::Chunked => self.skip_chunked().await?,
                Framing::UntilClose => {
                    self.skip_to_close().await?;
                    self.open = false;
                }
            }
            if !head.keep_alive {
                self.open = false;
            }
            return Ok(head.status);
        }
    }

    /// Reads more bytes into the buffer, compacting or growing it first when it is full.
    /// Returns how many were read; end of stream is [`ExchangeError::Closed`].
    async fn fill(&mut self) -> Result<usize, ExchangeError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buffer.len() {
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buffer.len() < MAX_HEAD {
                let mut grown = vec![0; (self.buffer.len() * 2).min(MAX_HEAD)].into_boxed_slice();
                grown[..self.end].copy_from_slice(&self.buffer[..self.end]);
                self.buffer = grown;
            } else {
                return Err(ExchangeError::Malformed("response head too large"));
            }
        }
        match self.stream.read(&mut self.buffer[self.end..]).await? {
            0 => Err(ExchangeError::Closed),
            read => {
                self.end += read;
                Ok(read)
            }
        }
    }

    /// Reads and consumes one response head.
    async fn read_head(&mut self) -> Result<Head, ExchangeError> {
        loop {
            if self.start < self.end {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buffer[self.start..self.end]) {
                    Ok(httparse::Status::Complete(length)) => {
                        let head = Head::of(&response)?;
                        self.start += length;
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(ExchangeError::Malformed("too many response headers"));
                    }
                    Err(_) => return Err(ExchangeError::Malformed("not an HTTP/1.x response head")),
                }
                if self.end - self.start >= MAX_HEAD {
                    return Err(ExchangeError::Malformed("response head too large"));
                }
            }
            self.fill().await?;
        }
    }

    /// Consumes `length` body bytes.
    async fn skip_body(&mut self, mut length: u64) -> Result<(), ExchangeError> {
        loop {
            let buffered = (self.end - self.start) as u64;
            let taken = buffered.min(length);
            self.start += taken as usize;
            length -= taken;
            if length == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Consumes a chunked body: chunks, the last (empty) chunk and any trailers.
    async fn skip_chunked(&mut self) -> Result<(), ExchangeError> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buffer[self.start..self.end]) {
                    Ok(httparse::Status::Complete((length, size))) => {
                        self.start += length;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start >= MAX_HEAD {
                            return Err(ExchangeError::Malformed("chunk size line too long"));
                        }
                        self.fill().await?;
                    }
                    Err(_) => return Err(ExchangeError::Malformed("bad chunk size line")),
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            self.skip_body(size).await?;
            self.expect_crlf().await?;
        }
    }

    /// Consumes the CRLF after a chunk's data.
    async fn expect_crlf(&mut self) -> Result<(), ExchangeError> {
        while self.end - self.start < 2 {
            self.fill().await?;
        }
        if &self.buffer[self.start..self.start + 2] != b"\r\n" {
            return Err(ExchangeError::Malformed("chunk data not followed by CRLF"));
        }
        self.start += 2;
        Ok(())
    }

    /// Consumes trailer lines up to and including the blank line ending the body.
    async fn skip_trailers(&mut self) -> Result<(), ExchangeError> {
        loop {
            let unread = &self.buffer[self.start..self.end];
            if let Some(at) = unread.windows(2).position(|pair| pair == b"\r\n") {
                self.start += at + 2;
                if at == 0 {
                    return Ok(());
                }
                continue;
            }
            if unread.len() >= MAX_HEAD {
                return Err(ExchangeError::Malformed("trailer too long"));
            }
            self.fill().await?;
        }
    }

    /// Consumes a body that ends when the server closes the connection.
    async fn skip_to_close(&mut self) -> Result<(), ExchangeError> {
        loop {
            self.start = self.end;
            match self.fill().await {
                Ok(_) => {}
                Err(ExchangeError::Closed) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    }
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the exchange needs from a response head.
#[derive(Debug)]
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn of(response: &httparse::Response<'_, '_>) -> Result<Self, ExchangeError> {
        let status = response.code.ok_or(ExchangeError::Malformed("no status code"))?;
        let version = response.version.ok_or(ExchangeError::Malformed("no HTTP version"))?;
        let (mut length, mut chunked, mut close, mut keep_alive) = (None, false, false, false);
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(header.value)
                    .ok()
                    .map(str::trim)
                    .filter(|value| !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()))
                    .and_then(|value| value.parse::<u64>().ok())
                    .ok_or(ExchangeError::Malformed("bad Content-Length"))?;
                if length.is_some_and(|seen| seen != value) {
                    return Err(ExchangeError::Malformed("conflicting Content-Length headers"));
                }
                length = Some(value);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // chunked must be the last coding; any other final coding leaves the body
                // framed by the close.
                chunked =
                    tokens(header.value).last().is_some_and(|last| last.eq_ignore_ascii_case(b"chunked"));
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in tokens(header.value) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        let framing = match (chunked, length) {
            (true, _) => Framing::Chunked,
            (false, Some(length)) => Framing::Length(length),
            (false, None) => Framing::UntilClose,
        };
        let keep_alive = !close && (version == 1 || keep_alive);
        Ok(Self { status, framing, keep_alive })
    }
}

/// The comma-separated, trimmed, non-empty tokens of a header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii).filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    fn target() -> Target {
        Target::parse("URL", "http://127.0.0.1:8080/v1/events?x=1").unwrap()
    }

    #[test]
    fn requests_are_serialised_with_host_and_length() {
        let head = RequestHead::new("POST", &target(), Some("application/json")).unwrap();
        let mut out = Vec::new();
        head.write(b"{}", &mut out);
        assert_eq!(
            out,
            b"POST /v1/events?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n\
              content-length: 2\r\n\r\n{}"
        );
        head.write(b"", &mut out);
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"), "{}", String::from_utf8_lossy(&out));
        let get = RequestHead::new("GET", &target().with_path("/"), None).unwrap();
        get.write(b"", &mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n");
    }

    #[test]
    fn request_heads_refuse_what_cannot_go_on_the_wire() {
        assert!(RequestHead::new("GET", &target().with_path("/a b"), None).is_err());
        assert!(RequestHead::new("GET", &target().with_path("/a\r\nX: y"), None).is_err());
        assert!(RequestHead::new("G T", &target(), None).is_err());
    }

    #[test]
    fn decimal_writes_every_magnitude() {
        let mut digits = [0u8; 20];
        for value in [0, 7, 10, 12_345, u64::MAX] {
            assert_eq!(decimal(value, &mut digits), value.to_string().as_bytes());
        }
    }

    /// A server that, per accepted connection, reads one request head and answers with the
    /// given byte pieces, pausing between them so that they arrive in separate reads; then
    /// closes if `close` is set, else waits for the next request.
    struct Script {
        pieces: Vec<Vec<u8>>,
        close: bool,
    }

    async fn serve(responses: Vec<Script>) -> (SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let mut requests = Vec::new();
            let mut responses = responses.into_iter().peekable();
            while responses.peek().is_some() {
                let (mut stream, _) = listener.accept().await.unwrap();
                for script in responses.by_ref() {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    while !request.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).await.unwrap() == 0 {
                            return requests;
                        }
                        request.push(byte[0]);
                    }
                    requests.push(request);
                    for piece in &script.pieces {
                        stream.write_all(piece).await.unwrap();
                        stream.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if script.close {
                        break;
                    }
                }
            }
            requests
        });
        (addr, handle)
    }

    fn pieces(parts: &[&[u8]], close: bool) -> Script {
        Script { pieces: parts.iter().map(|part| part.to_vec()).collect(), close }
    }

    async fn connect(addr: SocketAddr) -> H1Connection {
        H1Connection::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn responses_split_across_reads_are_reassembled_and_the_connection_reused() {
        let (addr, server) = serve(vec![
            pieces(&[b"HTTP/1.1 2", b"00 OK\r\nContent-Le", b"ngth: 5\r\n\r", b"\nhel", b"lo"], false),
            pieces(&[b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"], true),
        ])
        .await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
        assert!(connection.is_open());
        assert_eq!(connection.exchange(GET).await.unwrap(), 404);
        assert_eq!(server.await.unwrap().len(), 2, "both requests went over one connection");
    }

    #[tokio::test]
    async fn chunked_bodies_are_read_to_their_end_with_trailers() {
        let (addr, _server) = serve(vec![
            pieces(
                &[
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                    b"lo\r\n1",
                    b"a;ext=1\r\n",
                    &[b'x'; 26],
                    b"\r\n0\r\nTrailer: 1\r",
                    b"\n\r\n",
                ],
                false,
            ),
            pieces(&[b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"], false),
        ])
        .await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
        assert_eq!(connection.exchange(GET).await.unwrap(), 201, "the first body was consumed exactly");
        assert!(connection.is_open());
    }

    #[tokio::test]
    async fn bad_chunk_framing_is_an_error() {
        let (addr, _server) =
            serve(vec![pieces(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], false)])
                .await;
        let mut connection = connect(addr).await;
        assert!(matches!(connection.exchange(GET).await, Err(ExchangeError::Malformed(_))));
        assert!(!connection.is_open());
    }

    #[tokio::test]
    async fn connection_close_ends_the_connection_after_the_response() {
        let (addr, _server) = serve(vec![pieces(
            &[b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok"],
            true,
        )])
        .await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
        assert!(!connection.is_open(), "Connection: close is honoured");
        assert!(matches!(connection.exchange(GET).await, Err(ExchangeError::Closed)));
    }

    #[tokio::test]
    async fn http_1_0_without_keep_alive_and_close_delimited_bodies_end_the_connection() {
        let (addr, _server) =
            serve(vec![pieces(&[b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], true)]).await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
        assert!(!connection.is_open());

        let (addr, _server) =
            serve(vec![pieces(&[b"HTTP/1.1 200 OK\r\n\r\nbody ", b"until close"], true)]).await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200, "the close ends the body");
        assert!(!connection.is_open());
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let (addr, _server) = serve(vec![pieces(
            &[b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
            false,
        )])
        .await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
        assert!(connection.is_open());
    }

    #[tokio::test]
    async fn a_malformed_status_line_is_an_error_that_closes_the_connection() {
        for reply in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            let (addr, _server) = serve(vec![pieces(&[reply], false)]).await;
            let mut connection = connect(addr).await;
            let result = connection.exchange(GET).await;
            assert!(matches!(result, Err(ExchangeError::Malformed(_))), "{result:?}");
            assert!(!connection.is_open());
        }
    }

    #[tokio::test]
    async fn a_server_closing_mid_response_is_an_error() {
        for partial in
            [&b""[..], b"HTTP/1.1 200 OK\r\nContent-Le", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]
        {
            let (addr, _server) = serve(vec![pieces(&[partial], true)]).await;
            let mut connection = connect(addr).await;
            let result = connection.exchange(GET).await;
            assert!(matches!(result, Err(ExchangeError::Closed)), "{result:?}");
            assert!(!connection.is_open());
        }
    }

    #[tokio::test]
    async fn a_peer_close_while_idle_is_noticed() {
        let (addr, _server) =
            serve(vec![pieces(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], true)]).await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
        assert!(connection.is_open(), "no Connection: close in the response");
        // The server closes after its one response; idling notices before the next send.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while connection.is_open() && tokio::time::Instant::now() < deadline {
            connection.idle_until(tokio::time::Instant::now() + Duration::from_millis(20)).await;
        }
        assert!(!connection.is_open());
    }

    #[tokio::test]
    async fn heads_larger_than_the_first_buffer_are_read() {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for number in 0..40 {
            reply.extend_from_slice(format!("x-filler-{number}: {}\r\n", "v".repeat(400)).as_bytes());
        }
        reply.extend_from_slice(b"content-length: 0\r\n\r\n");
        assert!(reply.len() > READ_BUFFER);
        let (addr, _server) = serve(vec![pieces(&[&reply], false)]).await;
        let mut connection = connect(addr).await;
        assert_eq!(connection.exchange(GET).await.unwrap(), 200);
    }
}
