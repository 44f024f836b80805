//! The blocking client against real sockets: a server that keeps the connection open after
//! a complete response, a chunked body, a refused port, a server that never answers, and
//! what the client puts on the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use allockit_probe::http::{self, Request};

/// Serves one connection: records the request head and body, writes `response`, then keeps
/// the socket open until the client closes it (so only the framing can end the read).
fn serve_once(response: &'static [u8]) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sent, received) = mpsc::channel();
    thread::spawn(move || {
        let (connection, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(connection);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .map_or(0, |length| length.trim().parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut connection = reader.into_inner();
        connection.write_all(response).unwrap();
        sent.send((head, body)).unwrap();
        let mut rest = Vec::new();
        let _ = connection.read_to_end(&mut rest);
    });
    (url, received)
}

#[test]
fn a_sized_response_ends_the_read_even_when_the_server_keeps_the_connection() {
    let (url, received) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let response = http::get(&format!("{url}/metrics"), Duration::from_secs(30)).unwrap();
    assert_eq!((response.status, response.text().as_ref()), (200, "hello"));
    let (head, _) = received.recv().unwrap();
    assert!(head.starts_with("GET /metrics HTTP/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("Host: {}\r\n", url.trim_start_matches("http://"))), "{head}");
}

#[test]
fn a_chunked_response_is_reassembled() {
    let (url, _received) =
        serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nup 1\r\n1\r\n\n\r\n0\r\n\r\n");
    assert_eq!(http::get(&url, Duration::from_secs(30)).unwrap().text(), "up 1\n");
}

#[test]
fn a_post_carries_its_body_token_and_headers_and_a_refusal_is_returned_as_a_status() {
    let (url, received) =
        serve_once(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\n\r\n{\"error\":\"origin\"}\n");
    let response = Request::post(&format!("{url}/admin/mode?mode=broken"))
        .unwrap()
        .body("application/json", "{\"a\":1}")
        .bearer(Some("secret"))
        .header("Origin", "http://evil.example")
        .send()
        .unwrap();
    assert_eq!(response.status, 403);
    let (head, body) = received.recv().unwrap();
    assert!(head.starts_with("POST /admin/mode?mode=broken HTTP/1.1\r\n"), "{head}");
    for field in ["Authorization: Bearer secret", "Origin: http://evil.example", "Content-Length: 7"] {
        assert!(head.contains(field), "{field} missing from {head}");
    }
    assert_eq!(body, b"{\"a\":1}");
    let message = response.error_for_status().unwrap_err().to_string();
    assert!(message.contains("HTTP 403") && message.contains("origin"), "{message}");
}

#[test]
fn a_closed_port_is_a_refused_connection_said_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    drop(listener);
    let error = http::get(&url, Duration::from_secs(5)).unwrap_err();
    assert_eq!(error.io_kind(), Some(std::io::ErrorKind::ConnectionRefused), "{error}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("GET {url}: connect to ")), "{message}");
    assert_eq!(message.matches("os error").count(), 1, "{message}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let error = http::get(&url, Duration::from_millis(200)).unwrap_err();
    let kind = error.io_kind();
    assert!(matches!(kind, Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)), "{error}");
    drop(listener);
}
