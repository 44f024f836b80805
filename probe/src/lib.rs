//! # allockit-probe
//!
//! The metric contract of allockit-server (`DESIGN.md`, "Metric contract") as code, and the
//! reading of a running server through it: the one place where the names are written and
//! the one Prometheus text parser of the workspace. The server registers its metrics under
//! [`metrics`]' names; loadgen, the lab and the tests read `/metrics` through
//! [`ServerSample::from_exposition`].
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use allockit_probe::{ServerSample, Trend, exposition, http, metrics};
//!
//! // A stand-in server answering one scrape (a real one is allockit-server's /metrics).
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let url = format!("http://{}/metrics", listener.local_addr()?);
//! let server = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut connection, _) = listener.accept()?;
//!     let mut request = [0u8; 1024];
//!     let _ = connection.read(&mut request)?;
//!     let body = "# TYPE allockit_arena_chunks gauge\n\
//!                 allockit_arena_chunks{state=\"pinned\",worker=\"0\"} 3\n\
//!                 allockit_arena_chunks{state=\"pinned\",worker=\"1\"} 9\n\
//!                 allockit_arena_chunks{state=\"idle\",worker=\"0\"} 4\n\
//!                 allockit_arena_committed_bytes 1048576\n\
//!                 process_resident_memory_bytes 3.2e7\n";
//!     write!(connection, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
//! });
//!
//! let text = http::get(&url, Duration::from_secs(5))?.text().into_owned();
//! server.join().unwrap()?;
//! let parsed = exposition::parse(&text);
//! assert!(parsed.errors.is_empty());
//! assert_eq!(parsed.sum(metrics::ARENA_CHUNKS, &[("state", "pinned")]), Some(12.0));
//!
//! let sample = ServerSample::from_exposition(&parsed);
//! assert_eq!(sample.rss_bytes, Some(3.2e7));
//! assert_eq!(sample.pinned_bytes(), Some(12.0 * 65536.0)); // 1 MiB over 16 chunks, 12 pinned
//! assert_eq!(sample.jemalloc_allocated_bytes, None); // not exported: absent, not zero
//!
//! // RSS over time: 1 MiB a minute is a climb the soak would fail.
//! let rss: Vec<(f64, f64)> = (0..10).map(|s| (60.0 * f64::from(s), 3.2e7 + 1048576.0 * f64::from(s))).collect();
//! let trend = Trend::fit(&rss).unwrap();
//! assert!((trend.slope * 60.0 - 1048576.0).abs() < 1e-3 && trend.r_squared > 0.99);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`metrics`] | a constant per metric name of the contract, with its labels; the lists by owner |
//! | [`exposition`] | the Prometheus text format parser: samples, labels, sums over labels |
//! | [`sample`] | [`ServerSample`]: the memory figures of one scrape |
//! | [`trend`] | [`Trend`]: the least-squares line through a series, with R² |
//! | [`http`] | a blocking HTTP/1.1 GET/POST over `std::net` |
//!
//! Dependencies are serde and thiserror only: fetching asynchronously is the caller's
//! business (loadgen fetches with hyper on tokio and hands the text to
//! [`exposition::parse`]).
#![deny(missing_debug_implementations)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod exposition;
pub mod http;
pub mod metrics;
pub mod sample;
pub mod trend;

pub use error::Error;
pub use sample::ServerSample;
pub use trend::Trend;
