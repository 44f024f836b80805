//! A small HTTP/1.1 client over raw TCP, so tests can send exactly the bytes they mean
//! (including hostile ones), and helpers to start servers and read metrics.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use allockit_server::{Config, ServerHandle};
use clap::Parser;

/// Starts a server on ephemeral loopback ports with `extra` flags.
pub fn start(extra: &[&str]) -> ServerHandle {
    let mut args =
        vec!["allockit-server", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", "2"];
    args.extend_from_slice(extra);
    allockit_server::start(Config::parse_from(args)).expect("server starts")
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `stream`.
pub fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    Some(Reply { status, headers, body })
}

/// Connects with a read timeout, so a hung server fails the test instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Sends raw bytes on a fresh connection and reads one response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Reply> {
    let mut stream = connect(addr);
    stream.write_all(bytes).ok()?;
    read_reply(&mut stream)
}

/// A request with a body (Content-Length framing).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut bytes = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes).unwrap_or_else(|| panic!("no response to {method} {path}"))
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, b"")
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, body.as_bytes())
}

/// A batch of `events` click events for `user`.
pub fn batch(user: &str, events: usize) -> String {
    let events: Vec<String> = (0..events)
        .map(|i| {
            format!(
                r#"{{"kind":"k{}","path":"/p/{}","ms":{},"tags":["t{}"]}}"#,
                i % 3,
                i % 5,
                i * 7 % 100,
                i % 2
            )
        })
        .collect();
    format!(r#"{{"user":"{user}","events":[{}]}}"#, events.join(","))
}

/// The value of one sample of `/metrics`, e.g. `allockit_arena_chunks{state="pinned"}`.
pub fn metric(addr: SocketAddr, sample: &str) -> f64 {
    metric_in(&get(addr, "/metrics").body, sample).unwrap_or_else(|| panic!("no sample {sample} in /metrics"))
}

pub fn metric_in(text: &[u8], sample: &str) -> Option<f64> {
    String::from_utf8_lossy(text).lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok()).flatten()
    })
}

/// Waits (up to 10 s) for `sample` to reach `value`: some counters move just after the
/// client has its answer (hyper drops the response buffer after writing it).
pub fn wait_for_metric(addr: SocketAddr, sample: &str, value: f64) {
    wait_until_metric(addr, sample, |now| now == value);
}

/// Waits (up to 10 s) until `sample` satisfies `accept`; connection-level counters move when
/// the connection task ends, just after the client has its answer.
pub fn wait_until_metric(addr: SocketAddr, sample: &str, accept: impl Fn(f64) -> bool) {
    let started = std::time::Instant::now();
    loop {
        let now = metric_in(&get(addr, "/metrics").body, sample);
        if now.is_some_and(&accept) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{sample} stayed at {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
