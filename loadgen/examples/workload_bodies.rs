//! Prints the bodies loadgen's default `POST /v1/events` workload sends, one per line, in
//! request order (a batch is JSON without raw newlines), so that another client (wrk, in
//! `scripts/bench-loadgen`) can send the same bytes.
//!
//! ```text
//! cargo run --release -p loadgen --example workload_bodies -- 1024 > bodies.txt
//! ```

use std::io::Write as _;

use loadgen::workload::{Bodies, WorkloadSpec};

fn main() -> anyhow::Result<()> {
    let count: u64 = match std::env::args().nth(1) {
        Some(count) => count.parse()?,
        None => 1024,
    };
    let bodies = Bodies::generate(&WorkloadSpec::default());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut body = Vec::new();
    for index in 0..count {
        body.clear();
        bodies.write_body(index, &mut body);
        out.write_all(&body)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
