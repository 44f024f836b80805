//! Helpers shared by the lab's integration tests.
#![allow(dead_code)]

pub mod rounds;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The lab binary Cargo built for these tests.
pub fn lab_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_allockit-lab"))
}

/// The headers of one HTTP request, as text.
pub struct Request {
    /// Request line and headers.
    pub head: String,
}

/// Serves HTTP on an ephemeral loopback port: the n-th request (from 0) gets
/// `respond(n, request)` as (status, body). Returns the base URL `http://127.0.0.1:PORT`.
pub fn serve(respond: impl Fn(usize, &Request) -> (u16, Vec<u8>) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                head.push(byte[0]);
            }
            let request = Request { head: String::from_utf8_lossy(&head).into_owned() };
            let (status, body) = respond(count.fetch_add(1, Ordering::SeqCst), &request);
            let response =
                format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(response.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    url
}

/// Whether `path` holds a PNG image.
pub fn is_png(path: &Path) -> bool {
    std::fs::read(path).map(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n")).unwrap_or(false)
}
