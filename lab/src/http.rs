//! A minimal blocking HTTP/1.1 client for `GET` and body-less `POST` over plain TCP:
//! enough to read a server's `/metrics` and drive its admin listener (heap profiling on,
//! fetch a profile), without pulling an async runtime into the lab.
//!
//! Supports `http://host[:port][/path]`, `Content-Length`, chunked and close-delimited
//! bodies, and a bearer token. No TLS, no redirects, no keep-alive: one connection per
//! request.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::LabError;

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

/// The parts of an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address.
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parses `http://host[:port][/path]`; `flag` names the option in errors.
pub fn parse_url(url: &str, flag: &'static str) -> Result<Url, LabError> {
    let invalid = |reason: &str| LabError::InvalidArgument { flag, reason: format!("{url:?}: {reason}") };
    let rest = url.strip_prefix("http://").ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
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
    Ok(Url { host: host.to_owned(), port, path: path.to_owned() })
}

/// `GET url`, with an optional bearer token; non-2xx statuses are errors.
pub fn get(
    url: &str,
    flag: &'static str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Response, LabError> {
    request("GET", url, flag, bearer, timeout)
}

/// `POST url` with an empty body, with an optional bearer token; non-2xx statuses are errors.
pub fn post(
    url: &str,
    flag: &'static str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Response, LabError> {
    request("POST", url, flag, bearer, timeout)
}

fn request(
    method: &str,
    url: &str,
    flag: &'static str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Response, LabError> {
    let parsed = parse_url(url, flag)?;
    let fail = |reason: String| LabError::Http { url: format!("{method} {url}"), reason };
    let addresses = (parsed.host.as_str(), parsed.port).to_socket_addrs().map_err(|e| fail(e.to_string()))?;
    let mut last_error = String::from("no address");
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(e) => last_error = format!("connect {address}: {e}"),
        }
    }
    let mut stream = stream.ok_or_else(|| fail(last_error))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| fail(e.to_string()))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| fail(e.to_string()))?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: */*\r\nUser-Agent: allockit-lab\r\n",
        parsed.path, parsed.host, parsed.port
    );
    if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| fail(e.to_string()))?;
    let response = parse_response(&raw).map_err(fail)?;
    if !(200..300).contains(&response.status) {
        let snippet: String = String::from_utf8_lossy(&response.body).chars().take(200).collect();
        return Err(fail(format!("status {}: {}", response.status, snippet.trim())));
    }
    Ok(response)
}

/// Parses a complete HTTP/1.x response.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let header_end =
        raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| "no end of headers".to_owned())?;
    let head = String::from_utf8_lossy(&raw[..header_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = &raw[header_end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else if let Some(length) = content_length {
        body.get(..length).ok_or_else(|| format!("body shorter than Content-Length {length}"))?.to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let url = parse_url("http://127.0.0.1:9090/metrics", "--url").unwrap();
        assert_eq!(url, Url { host: "127.0.0.1".into(), port: 9090, path: "/metrics".into() });
        assert_eq!(parse_url("http://localhost", "--url").unwrap().path, "/");
        assert_eq!(parse_url("http://[::1]:8080/x", "--url").unwrap().host, "::1");
        assert_eq!(parse_url("http://[::1]/x", "--url").unwrap().port, 80);
    }

    #[test]
    fn non_http_urls_are_rejected_naming_the_flag() {
        let err = parse_url("https://example.com/metrics", "--url").unwrap_err();
        assert!(err.to_string().contains("--url"), "{err}");
    }

    #[test]
    fn chunked_and_sized_bodies_are_decoded() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, b"hello world");
        let sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
        let response = parse_response(sized).unwrap();
        assert_eq!((response.status, response.body.as_slice()), (404, &b"abc"[..]));
    }
}
