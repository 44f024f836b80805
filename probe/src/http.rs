//! A small blocking HTTP/1.1 client over `std::net`, for the lab (read `/metrics`, drive
//! the admin listener) and the server's tests: no async runtime, no HTTP library.
//!
//! It sends one request per connection (`Connection: close`) with an optional body, bearer
//! token and extra headers, and reads a `Content-Length`, chunked or close-delimited
//! response (a response is complete as soon as its framing says so, even if the server
//! keeps the connection open). Statuses are returned, not judged:
//! [`Response::error_for_status`] turns a non-2xx one into an [`Error`].
//!
//! What it cannot do: TLS, redirects, keep-alive, `Expect: 100-continue`, HTTP/2.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::Error;

/// The parts of an `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address, IPv6 without its brackets.
    pub host: String,
    /// Port (80 when not written).
    pub port: u16,
    /// Path and query, starting with `/` (`/` when not written).
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path]`; anything else (another scheme, no host, a port
    /// that is not a number) is an [`Error::InvalidUrl`] saying what is wrong.
    pub fn parse(url: &str) -> Result<Url, Error> {
        let invalid = |reason: &str| Error::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => return Err(invalid(&format!("{scheme}:// is not supported, only http://"))),
            None => return Err(invalid("missing http:// in front of the host")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port_text {
            Some(text) => text.parse::<u16>().map_err(|_| invalid("the port is not a number"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if host.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(invalid("the host holds a space or '@'"));
        }
        let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
        Ok(Url { host: host.to_owned(), port, path })
    }

    /// `host:port` as the `Host` header writes it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// A response, its body de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request it answers (`GET http://...`), for messages.
    pub request: String,
    /// The status code; [`Response::error_for_status`] turns a non-2xx one into an error.
    pub status: u16,
    /// Header fields in the order received (names as written).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked; empty for `HEAD`, 204 and 304.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The response itself when its status is 2xx, else an [`Error::Status`] quoting the
    /// start of the body (servers put their reason there).
    pub fn error_for_status(self) -> Result<Response, Error> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let body: String = self.text().chars().take(200).collect();
        Err(Error::Status { request: self.request, status: self.status, body: body.trim().to_owned() })
    }
}

/// A request to send: built with [`Request::new`] (or [`Request::get`], [`Request::post`])
/// and the setters, sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: Url,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
}

impl Request {
    /// A request with no body and a 10 s timeout.
    pub fn new(method: &str, url: &str) -> Result<Request, Error> {
        Ok(Request {
            method: method.to_owned(),
            url: Url::parse(url)?,
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(10),
        })
    }

    /// `GET url`.
    pub fn get(url: &str) -> Result<Request, Error> {
        Request::new("GET", url)
    }

    /// `POST url` (add a body with [`Request::body`]; without one it sends
    /// `Content-Length: 0`).
    pub fn post(url: &str) -> Result<Request, Error> {
        Request::new("POST", url)
    }

    /// The body, sent with its `Content-Length` and this `Content-Type`.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Request {
        self.headers.push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body.into();
        self
    }

    /// An extra header field (sent after `Host`, before the body).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer token` when a token is given (the admin listener's).
    pub fn bearer(self, token: Option<&str>) -> Request {
        match token {
            Some(token) => self.header("Authorization", &format!("Bearer {token}")),
            None => self,
        }
    }

    /// Limit on connecting, and on each read and write (not on the whole exchange).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Connects, sends the request and reads the whole response.
    pub fn send(&self) -> Result<Response, Error> {
        let request = format!("{} {}", self.method, self.url);
        let io = |what: String, cause: std::io::Error| Error::Io { request: request.clone(), what, cause };
        let addresses = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()
            .map_err(|cause| io(format!("resolve {}", self.url.host), cause))?;
        let mut failure = None;
        let mut stream = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.timeout) {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(cause) => failure = Some(io(format!("connect to {address}"), cause)),
            }
        }
        let mut stream = match (stream, failure) {
            (Some(stream), _) => stream,
            (None, Some(failure)) => return Err(failure),
            (None, None) => {
                let none = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
                return Err(io(format!("resolve {}", self.url.host), none));
            }
        };
        let configure = |stream: &TcpStream| {
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)
        };
        configure(&stream).map_err(|cause| io("configure the socket".to_owned(), cause))?;
        stream.write_all(&self.head()).map_err(|cause| io("send".to_owned(), cause))?;
        stream.write_all(&self.body).map_err(|cause| io("send".to_owned(), cause))?;
        let raw = read_response(&mut stream, self.method == "HEAD")
            .map_err(|cause| io("receive".to_owned(), cause))?;
        let malformed = |reason| Error::Malformed { request: request.clone(), reason };
        let parsed = parse_response(&raw, self.method == "HEAD").map_err(malformed)?;
        let Parsed { status, headers, body, .. } = parsed.ok_or_else(|| malformed("truncated".to_owned()))?;
        Ok(Response { request: request.clone(), status, headers, body })
    }

    fn head(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\nUser-Agent: allockit-probe\r\n",
            self.method,
            self.url.path,
            self.url.authority()
        );
        if !self.body.is_empty() || !matches!(self.method.as_str(), "GET" | "HEAD") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// `GET url` within `timeout`, failing on a non-2xx status.
pub fn get(url: &str, timeout: Duration) -> Result<Response, Error> {
    Request::get(url)?.timeout(timeout).send()?.error_for_status()
}

/// `POST url` with `body` (`application/json` when it starts with `{` or `[`, else
/// `text/plain`) within `timeout`, failing on a non-2xx status.
pub fn post(url: &str, body: &[u8], timeout: Duration) -> Result<Response, Error> {
    let content_type =
        if matches!(body.first(), Some(b'{' | b'[')) { "application/json" } else { "text/plain" };
    let request = Request::post(url)?.timeout(timeout);
    let request = if body.is_empty() { request } else { request.body(content_type, body) };
    request.send()?.error_for_status()
}

/// Reads until the response's framing says it is complete, or the peer closes.
fn read_response(stream: &mut TcpStream, head_only: bool) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buffer[..read]);
        if matches!(parse_response(&raw, head_only), Ok(Some(Parsed { complete: true, .. }))) {
            return Ok(raw);
        }
    }
}

/// A response parsed from the bytes received so far.
struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether the framing (length, last chunk) says nothing more follows; a
    /// close-delimited body is complete only at the end of the stream.
    complete: bool,
}

/// Parses the bytes of a response received so far: `Ok(None)` until the head is complete;
/// malformed heads and bodies are errors.
fn parse_response(raw: &[u8], head_only: bool) -> Result<Option<Parsed>, String> {
    let Some(header_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&raw[..header_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let field = |wanted: &str| headers.iter().find(|(name, _)| name.eq_ignore_ascii_case(wanted));
    let body = &raw[header_end + 4..];
    let no_body = head_only || status < 200 || status == 204 || status == 304;
    let chunked = field("transfer-encoding").is_some_and(|(_, value)| value.eq_ignore_ascii_case("chunked"));
    let (body, complete) = if no_body {
        (Vec::new(), true)
    } else if chunked {
        match dechunk(body)? {
            Some(body) => (body, true),
            None => (Vec::new(), false),
        }
    } else if let Some((_, length)) = field("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
        match body.get(..length) {
            Some(body) => (body.to_vec(), true),
            None => (body.to_vec(), false),
        }
    } else {
        (body.to_vec(), false)
    };
    Ok(Some(Parsed { status, headers, body, complete }))
}

/// The body of a chunked transfer: `Ok(None)` while the last chunk has not arrived.
fn dechunk(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        let Some(chunk) = body.get(..size) else {
            return Ok(None);
        };
        out.extend_from_slice(chunk);
        let Some(rest) = body.get(size + 2..) else {
            return Ok(None);
        };
        body = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let url = Url::parse("http://127.0.0.1:9090/metrics").unwrap();
        assert_eq!(url, Url { host: "127.0.0.1".into(), port: 9090, path: "/metrics".into() });
        assert_eq!(Url::parse("http://localhost").unwrap().path, "/");
        assert_eq!(Url::parse("http://localhost?x=1").unwrap().path, "/?x=1");
        let ipv6 = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((ipv6.host.as_str(), ipv6.authority()), ("::1", "[::1]:8080".to_owned()));
        assert_eq!(Url::parse("http://[::1]/x").unwrap().port, 80);
    }

    #[test]
    fn urls_that_are_not_plain_http_say_what_is_wrong() {
        for (url, expected) in [
            ("https://example.com/metrics", "https:// is not supported"),
            ("127.0.0.1:8080/metrics", "missing http://"),
            ("http://:8080/", "no host"),
            ("http://host:80x/", "port is not a number"),
            ("http://[::1/", "unclosed ["),
        ] {
            let message = Url::parse(url).unwrap_err().to_string();
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn chunked_sized_and_empty_bodies_are_decoded_once_complete() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let parsed = parse_response(chunked, false).unwrap().unwrap();
        assert_eq!((parsed.body.as_slice(), parsed.complete), (&b"hello world"[..], true));
        assert!(!parse_response(&chunked[..60], false).unwrap().unwrap().complete);
        let sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nRetry-After: 1\r\n\r\nabcdef";
        let parsed = parse_response(sized, false).unwrap().unwrap();
        assert_eq!((parsed.status, parsed.body.as_slice()), (404, &b"abc"[..]));
        assert_eq!(parsed.headers[1], ("Retry-After".to_owned(), "1".to_owned()));
        assert!(!parse_response(&sized[..sized.len() - 5], false).unwrap().unwrap().complete);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(parse_response(no_content, false).unwrap().unwrap().complete);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false).unwrap().is_none(), "the head is not complete");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    }

    #[test]
    fn non_2xx_statuses_become_errors_only_when_asked() {
        let response = Response {
            request: "GET http://h:1/".to_owned(),
            status: 503,
            headers: vec![("retry-after".to_owned(), "1".to_owned())],
            body: b"{\"error\":\"draining\"}".to_vec(),
        };
        assert_eq!(response.header("Retry-After"), Some("1"));
        let message = response.error_for_status().unwrap_err().to_string();
        assert_eq!(message, "GET http://h:1/: HTTP 503: {\"error\":\"draining\"}");
    }
}
