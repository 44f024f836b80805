//! Samples the server's `/metrics` once a second. The fetching is loadgen's (hyper on its
//! tokio runtime, over a connection of its own); reading the text is the probe crate's:
//! [`ServerSample`] holds the memory figures of the DESIGN.md metric contract, each absent
//! (`None`) when the server does not export it, so any HTTP server can be a target.
//!
//! The scraper keeps its own keep-alive connection (never one of the load connections) and
//! gives each scrape one second; a failed scrape yields an all-absent sample and is
//! remembered in [`Scraper::last_error`], never an error of the run.

use std::net::SocketAddr;
use std::time::Duration;

pub use allockit_probe::ServerSample;

use crate::http::{ClientConnection, Target};

/// Largest `/metrics` body read (a server's exposition is tens of kilobytes).
const BODY_LIMIT: usize = 16 << 20;

/// A `/metrics` poller with its own connection.
#[derive(Debug)]
pub struct Scraper {
    target: Target,
    addr: Option<SocketAddr>,
    connection: Option<ClientConnection>,
    last_error: Option<String>,
}

impl Scraper {
    /// A scraper of `target` (the full `/metrics` URL).
    pub fn new(target: Target) -> Self {
        Self { target, addr: None, connection: None, last_error: None }
    }

    /// Why the most recent scrape failed, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Takes one sample; all figures are absent when the scrape fails.
    pub async fn scrape(&mut self) -> ServerSample {
        let timeout = Duration::from_secs(1);
        let result = match tokio::time::timeout(timeout, self.fetch(timeout)).await {
            Ok(result) => result,
            Err(_) => Err("timed out after 1 s".to_owned()),
        };
        match result {
            Ok(text) => {
                self.last_error = None;
                ServerSample::from_text(&text)
            }
            Err(message) => {
                self.connection = None;
                self.last_error = Some(message);
                ServerSample::default()
            }
        }
    }

    async fn fetch(&mut self, timeout: Duration) -> Result<String, String> {
        let addr = match self.addr {
            Some(addr) => addr,
            None => {
                let addr = self.target.resolve().await.map_err(|error| error.to_string())?;
                *self.addr.insert(addr)
            }
        };
        let connection = match &mut self.connection {
            Some(connection) if connection.is_open() => connection,
            slot => slot.insert(
                ClientConnection::open(&self.target, addr, timeout)
                    .await
                    .map_err(|error| error.to_string())?,
            ),
        };
        let (status, body) =
            connection.get(&self.target, BODY_LIMIT).await.map_err(|error| error.to_string())?;
        if status != 200 {
            return Err(format!("{} answered HTTP {status}", self.target.url));
        }
        String::from_utf8(body.to_vec()).map_err(|_| "the exposition is not UTF-8".to_owned())
    }
}
