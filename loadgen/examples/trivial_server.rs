//! A trivial HTTP/1.1 server for benchmarking load generators: every request, whatever its
//! method and path, gets `200` with the 2-byte body `ok`, on keep-alive connections. No
//! routing, no logging, no body parsing beyond draining it: the cheapest endpoint hyper can
//! serve, so a benchmark against it measures the generator.
//!
//! ```text
//! cargo build --release -p loadgen --example trivial_server
//! target/release/examples/trivial_server --listen 127.0.0.1:8099 --threads 1
//! ```
//!
//! It prints `listening on ADDR` once bound and runs until killed.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Answers every HTTP/1.1 request with 200 "ok".
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
    /// Runtime worker threads
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads as usize)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args.listen))
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A client closing its connection mid-request is normal under load.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Drain the body so the connection can carry the next request; its content is unused.
    let _ = request.into_body().collect().await;
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}
