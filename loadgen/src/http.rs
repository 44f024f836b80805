//! The HTTP plumbing shared by the load engine and the scraper: target URLs, TCP
//! connections with `TCP_NODELAY`, and keep-alive HTTP/1.1 client connections (hyper's
//! `client::conn::http1`) driven inline by the task that owns them: the scraper's, the
//! demo's, and the load path's with `--client hyper` (its default is [`crate::h1`]).
//!
//! What it cannot do: TLS (`https://`), HTTP/2, proxies. The generator speaks plain
//! HTTP/1.1 to a host and port, as wrk does.

use std::future::{Future as _, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HOST;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// hyper's request sender for one connection.
type Sender = SendRequest<Full<Bytes>>;

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

    /// A body-less `method` request for this URL's path, with its `Host` header.
    pub fn request(&self, method: Method) -> Result<Request<Full<Bytes>>, Error> {
        let invalid = |message: &str| Error::InvalidUrl {
            flag: "URL",
            url: self.url.clone(),
            message: message.to_owned(),
        };
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = method;
        *request.uri_mut() = self.path.parse().map_err(|_| invalid("not a valid request path"))?;
        let host = self.authority.parse().map_err(|_| invalid("not a valid Host header"))?;
        request.headers_mut().insert(HOST, host);
        Ok(request)
    }

    /// Resolves the host to its first address.
    pub async fn resolve(&self) -> Result<SocketAddr, Error> {
        let resolve_error = |cause: std::io::Error| Error::Resolve {
            authority: format!("{}:{}", self.host, self.port),
            cause,
        };
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(resolve_error)?
            .next()
            .ok_or_else(|| resolve_error(std::io::Error::other("no address found")))
    }
}

/// Opens a TCP connection to `addr` (where `target` resolved to; its URL is for the error)
/// with Nagle's algorithm off, within `timeout`.
pub async fn connect_tcp(target: &Target, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Error> {
    let connect = async {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(stream)
    };
    connect.await.map_err(|cause| Error::Unreachable { url: target.url.clone(), addr, cause })
}

/// How [`ClientConnection::exchange`] treats the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyUse {
    /// Read it to the end and discard it (the load path: no buffering).
    Drain,
    /// Keep it, failing if it exceeds this many bytes.
    Keep(usize),
}

type Driver = hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// A keep-alive HTTP/1.1 client connection (hyper's `client::conn::http1`) whose protocol
/// driver is polled by the task that uses it, not by a spawned task: a request costs no
/// cross-task wake-up, which is what lets one core generate as much load as wrk.
///
/// The driver only runs while the owner awaits [`ClientConnection::exchange`] or
/// [`ClientConnection::idle_until`]; between those the connection is idle and a peer close
/// is noticed on the next call.
pub struct ClientConnection {
    sender: Sender,
    /// `None` once the connection has ended (peer close or error).
    driver: Option<Pin<Box<Driver>>>,
}

impl std::fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection").field("open", &self.is_open()).finish()
    }
}

impl ClientConnection {
    /// Connects to `addr` (where `target` resolved to; its URL is for the error) and
    /// performs the HTTP/1.1 handshake, within `timeout`.
    pub async fn open(target: &Target, addr: SocketAddr, timeout: Duration) -> Result<Self, Error> {
        let stream = connect_tcp(target, addr, timeout).await?;
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|cause| Error::Handshake { addr, cause })?;
        Ok(Self { sender, driver: Some(Box::pin(driver)) })
    }

    /// Whether the connection can still carry a request.
    pub fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Sleeps until `deadline` while keeping the connection driven, so that a peer close
    /// during the wait is noticed ([`ClientConnection::is_open`] turns false).
    pub async fn idle_until(&mut self, deadline: tokio::time::Instant) {
        let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
        let driver = &mut self.driver;
        poll_fn(|cx| {
            poll_driver(driver, cx);
            sleep.as_mut().poll(cx)
        })
        .await;
    }

    /// Sends `request` and reads the whole response; returns its status and, with
    /// [`BodyUse::Keep`], its body.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        body_use: BodyUse,
    ) -> Result<(u16, Bytes), Error> {
        let Self { sender, driver } = self;
        let broken = |cause| Error::Exchange { cause };
        let mut work = std::pin::pin!(async move {
            sender.ready().await.map_err(broken)?;
            let response = sender.send_request(request).await.map_err(broken)?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut kept = BytesMut::new();
            while let Some(frame) = body.frame().await {
                if let (Ok(data), BodyUse::Keep(limit)) = (frame.map_err(broken)?.into_data(), body_use) {
                    if kept.len() + data.len() > limit {
                        return Err(Error::BodyTooLarge { limit });
                    }
                    kept.extend_from_slice(&data);
                }
            }
            Ok((status, kept.freeze()))
        });
        poll_fn(|cx| {
            poll_driver(driver, cx);
            work.as_mut().poll(cx)
        })
        .await
    }

    /// GETs `target`'s path and returns the status and body (at most `limit` bytes).
    pub async fn get(&mut self, target: &Target, limit: usize) -> Result<(u16, Bytes), Error> {
        self.exchange(target.request(Method::GET)?, BodyUse::Keep(limit)).await
    }
}

/// Polls the connection driver once; drops it when it has finished, which fails any request
/// still waiting on it.
fn poll_driver(driver: &mut Option<Pin<Box<Driver>>>, cx: &mut Context<'_>) {
    if let Some(running) = driver
        && running.as_mut().poll(cx).is_ready()
    {
        *driver = None;
    }
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
