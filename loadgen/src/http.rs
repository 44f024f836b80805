//! The HTTP plumbing shared by the load engine and the scraper: target URLs, TCP
//! connections with `TCP_NODELAY`, and HTTP/1.1 client handshakes (hyper's
//! `client::conn::http1`, one connection per sender, keep-alive).
//!
//! What it cannot do: TLS (`https://`), HTTP/2, proxies. The generator speaks plain
//! HTTP/1.1 to a host and port, as wrk does.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HOST;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// A request sender on one keep-alive connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL, normalised (`http://host:port/path`).
    pub url: String,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// Host name or address, without IPv6 brackets.
    pub host: String,
    /// Port (80 when not written).
    pub port: u16,
    /// Path and query (`/` when not written).
    pub path: String,
}

impl Target {
    /// Parses `url`; `flag` names the argument in errors.
    pub fn parse(flag: &'static str, url: &str) -> Result<Self, Error> {
        let invalid =
            |message: &str| Error::InvalidUrl { flag, url: url.to_owned(), message: message.to_owned() };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL; write e.g. http://127.0.0.1:8080"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("https is not supported: loadgen speaks plain HTTP/1.1")),
            Some(_) => return Err(invalid("only http:// URLs are supported")),
            None => return Err(invalid("missing http:// in front of the host")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |path| path.as_str()).to_owned();
        let authority = authority.as_str().to_owned();
        Ok(Self { url: format!("http://{authority}{path}"), authority, host, port, path })
    }

    /// The same host with another path.
    pub fn with_path(&self, path: &str) -> Self {
        Self { url: format!("http://{}{path}", self.authority), path: path.to_owned(), ..self.clone() }
    }

    /// Resolves the host to its first address.
    pub async fn resolve(&self) -> Result<SocketAddr, Error> {
        let resolve_error = |source: std::io::Error| Error::Resolve {
            authority: format!("{}:{}", self.host, self.port),
            source,
        };
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(resolve_error)?
            .next()
            .ok_or_else(|| resolve_error(std::io::Error::other("no address found")))
    }
}

/// Opens a TCP connection with Nagle's algorithm off, within `timeout`.
pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a keep-alive HTTP/1.1 connection; its driver runs as a spawned task that ends
/// when the sender is dropped or the peer closes.
pub async fn connect_http1(addr: SocketAddr, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = connect_tcp(addr, timeout).await.map_err(ConnectError::Tcp)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        // The connection ends when the peer closes it or the sender is dropped; either way
        // the sender reports it on its next use, which is where errors are counted.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Why [`connect_http1`] failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The TCP connection.
    Tcp(std::io::Error),
    /// The HTTP handshake.
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(error) => write!(f, "connect: {error}"),
            ConnectError::Handshake(error) => write!(f, "HTTP handshake: {error}"),
        }
    }
}

impl ConnectError {
    /// The library error for a connection to `target` at `addr`.
    pub fn into_error(self, target: &Target, addr: SocketAddr) -> Error {
        match self {
            ConnectError::Tcp(source) => Error::Unreachable { url: target.url.clone(), addr, source },
            ConnectError::Handshake(source) => Error::Handshake { addr, source },
        }
    }
}

/// GETs `target`'s path on `sender` and returns the status and body, reading at most
/// `limit` bytes of body.
pub async fn get(sender: &mut Sender, target: &Target, limit: usize) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|error| error.to_string())?;
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.method_mut() = Method::GET;
    *request.uri_mut() = target.path.parse().map_err(|_| format!("bad path {:?}", target.path))?;
    let host = target.authority.parse().map_err(|_| format!("bad host {:?}", target.authority))?;
    request.headers_mut().insert(HOST, host);
    let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_port_80_and_the_root_path() {
        let target = Target::parse("TARGET", "http://localhost").unwrap();
        assert_eq!((target.host.as_str(), target.port, target.path.as_str()), ("localhost", 80, "/"));
        assert_eq!(target.url, "http://localhost/");
    }

    #[test]
    fn urls_keep_port_path_and_query_and_strip_ipv6_brackets() {
        let target = Target::parse("TARGET", "http://[::1]:8080/v1/events?x=1").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 8080));
        assert_eq!((target.authority.as_str(), target.path.as_str()), ("[::1]:8080", "/v1/events?x=1"));
        assert_eq!(target.with_path("/metrics").url, "http://[::1]:8080/metrics");
    }

    #[test]
    fn non_http_urls_are_refused_with_the_flag_named() {
        for (url, expected) in [
            ("https://example.com", "https is not supported"),
            ("127.0.0.1:8080", "missing http://"),
            ("ftp://example.com", "only http://"),
            ("http://exa mple.com", "not a URL"),
        ] {
            let message = Target::parse("--metrics-url", url).unwrap_err().to_string();
            assert!(message.starts_with("--metrics-url: "), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }
}
