//! Samples the server's `/metrics` once a second: the memory figures of the DESIGN.md
//! metric contract, each absent (`None`) when the server does not export it, so any HTTP
//! server can be a target.
//!
//! The scraper keeps its own keep-alive connection (never one of the load connections) and
//! gives each scrape one second; a failed scrape yields an all-absent sample and is
//! remembered in [`Scraper::last_error`], never an error of the run.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::http::{ClientConnection, Target};
use crate::promtext::{self, Exposition};

/// Largest `/metrics` body read (a server's exposition is tens of kilobytes).
const BODY_LIMIT: usize = 16 << 20;

/// The server-side figures of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerSample {
    /// `process_resident_memory_bytes`.
    pub rss_bytes: Option<f64>,
    /// `jemalloc_allocated_bytes`.
    pub jemalloc_allocated_bytes: Option<f64>,
    /// `jemalloc_resident_bytes`.
    pub jemalloc_resident_bytes: Option<f64>,
    /// `allockit_arena_chunks{state="in_use"}`, summed over other labels.
    pub arena_chunks_in_use: Option<f64>,
    /// `allockit_arena_chunks{state="idle"}`.
    pub arena_chunks_idle: Option<f64>,
    /// `allockit_arena_chunks{state="pinned"}`.
    pub arena_chunks_pinned: Option<f64>,
    /// `allockit_arena_committed_bytes`.
    pub arena_committed_bytes: Option<f64>,
    /// `allockit_cache_bytes`.
    pub cache_bytes: Option<f64>,
    /// `allockit_cache_entries`.
    pub cache_entries: Option<f64>,
}

impl ServerSample {
    /// Column names, in the order of [`ServerSample::values`].
    pub const COLUMNS: [&'static str; 9] = [
        "server_rss_bytes",
        "jemalloc_allocated_bytes",
        "jemalloc_resident_bytes",
        "arena_chunks_in_use",
        "arena_chunks_idle",
        "arena_chunks_pinned",
        "arena_committed_bytes",
        "cache_bytes",
        "cache_entries",
    ];

    /// Extracts the figures from a parsed exposition (each summed over labels it does
    /// not select on, e.g. a per-worker label).
    pub fn from_exposition(exposition: &Exposition<'_>) -> Self {
        let chunks = |state| exposition.sum("allockit_arena_chunks", &[("state", state)]);
        Self {
            rss_bytes: exposition.sum("process_resident_memory_bytes", &[]),
            jemalloc_allocated_bytes: exposition.sum("jemalloc_allocated_bytes", &[]),
            jemalloc_resident_bytes: exposition.sum("jemalloc_resident_bytes", &[]),
            arena_chunks_in_use: chunks("in_use"),
            arena_chunks_idle: chunks("idle"),
            arena_chunks_pinned: chunks("pinned"),
            arena_committed_bytes: exposition.sum("allockit_arena_committed_bytes", &[]),
            cache_bytes: exposition.sum("allockit_cache_bytes", &[]),
            cache_entries: exposition.sum("allockit_cache_entries", &[]),
        }
    }

    /// The figures in [`ServerSample::COLUMNS`] order.
    pub fn values(&self) -> [Option<f64>; 9] {
        [
            self.rss_bytes,
            self.jemalloc_allocated_bytes,
            self.jemalloc_resident_bytes,
            self.arena_chunks_in_use,
            self.arena_chunks_idle,
            self.arena_chunks_pinned,
            self.arena_committed_bytes,
            self.cache_bytes,
            self.cache_entries,
        ]
    }
}

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
                ServerSample::from_exposition(&promtext::parse(&text))
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
            slot => {
                slot.insert(ClientConnection::open(addr, timeout).await.map_err(|error| error.to_string())?)
            }
        };
        let (status, body) = connection.get(&self.target, BODY_LIMIT).await?;
        if status != 200 {
            return Err(format!("{} answered HTTP {status}", self.target.url));
        }
        String::from_utf8(body.to_vec()).map_err(|_| "the exposition is not UTF-8".to_owned())
    }
}
