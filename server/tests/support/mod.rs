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
    // Tests stop their servers at once unless they test the drain.
    if !extra.contains(&"--drain-delay") {
        args.extend_from_slice(&["--drain-delay", "0s"]);
    }
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
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
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

/// `/metrics` of the server at `addr`, fetched with allockit-probe's blocking client.
pub fn scrape(addr: SocketAddr) -> String {
    let response = allockit_probe::http::get(&format!("http://{addr}/metrics"), Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    response.text().into_owned()
}

/// The sum of the samples of metric `name` whose labels include `labels` (the names are
/// `allockit_probe::metrics`' constants), read through the probe's parser; `None` when
/// none is exported.
pub fn metric_in(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let exposition = allockit_probe::exposition::parse(text);
    assert!(exposition.errors.is_empty(), "malformed /metrics lines: {:?}", exposition.errors);
    exposition.sum(name, labels)
}

/// [`metric_in`] of a fresh scrape; a metric that is not exported fails the test.
pub fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_in(&scrape(addr), name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in /metrics"))
}

/// Waits (up to 10 s) for a metric to reach `value`: some counters move just after the
/// client has its answer (hyper drops the response buffer after writing it).
pub fn wait_for_metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)], value: f64) {
    wait_until_metric(addr, name, labels, |now| now == value);
}

/// Waits (up to 10 s) until a metric satisfies `accept`; connection-level counters move when
/// the connection task ends, just after the client has its answer.
pub fn wait_until_metric(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    accept: impl Fn(f64) -> bool,
) {
    let started = std::time::Instant::now();
    loop {
        let now = metric_in(&scrape(addr), name, labels);
        if now.is_some_and(&accept) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{name}{labels:?} stayed at {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `allockit-server` binary, running as a child process; killed when dropped.
pub struct Binary {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl Binary {
    /// Starts the binary (through `prefix`, e.g. `prlimit ...`, if not empty) with `args`
    /// and environment `envs`, and reads the addresses it announces on stdout.
    pub fn spawn(prefix: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Binary {
        use std::io::BufRead;
        let server = env!("CARGO_BIN_EXE_allockit-server");
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut command = std::process::Command::new(program);
                command.args(rest).arg(server);
                command
            }
            None => std::process::Command::new(server),
        };
        command
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log", "warn"])
            .args(args)
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the server binary starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let announced: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("no address announced ({e}): {line:?}"));
        let addr = announced["listening"].as_str().unwrap().parse().unwrap();
        let admin_addr = announced["admin"].as_str().unwrap().parse().unwrap();
        Binary { child, addr, admin_addr }
    }

    /// Stops the server with SIGTERM and returns what it wrote on stderr.
    pub fn stop(mut self) -> String {
        use std::io::Read;
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the server binary with `args` expecting it to exit by itself (within 20 s); returns
/// its exit code and stderr. A server that keeps running fails the test.
pub fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_allockit-server"))
        .args(["--log", "warn"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server with {args:?} kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}
