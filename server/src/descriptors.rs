//! Open-file descriptors: how many connections the process can really hold.
//!
//! Each client connection is one descriptor. A server whose `--max-connections` exceeds its
//! open-file limit fails at `accept` (`EMFILE`), and the clients queued in the kernel's
//! backlog then hang with no answer. So at start the soft limit is raised to the hard one,
//! and the connection limit is capped below it, leaving headroom for everything else the
//! process opens (listeners, the runtimes' epoll and wake-up descriptors, admin connections,
//! `/proc` reads for the process metrics, heap-profile dumps, and the descriptor a refused
//! client needs for its 503). Beyond the cap clients get 503 with `Retry-After`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Most admin connections served at once (beyond, new ones are closed).
pub const ADMIN_CONNECTIONS: usize = 16;

/// Descriptors kept for everything but client connections: a fixed part, a few per
/// worker (its listener, epoll and wake-up descriptors), and the admin connections.
pub fn headroom(workers: usize) -> u64 {
    (48 + 4 * workers + ADMIN_CONNECTIONS) as u64
}

/// Raises the soft open-file limit to the hard one and returns the effective connection
/// limit: `requested`, capped to the descriptors left after [`headroom`]. Logs a warning
/// when it caps; an error when no descriptor is left for connections.
pub fn connection_limit(requested: usize, workers: usize) -> Result<usize, String> {
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    if limit.current < limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = limit.maximum,
            Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
        }
    }
    // `None` is RLIM_INFINITY.
    let Some(soft) = soft else { return Ok(requested) };
    let headroom = headroom(workers);
    let available = usize::try_from(soft.saturating_sub(headroom)).unwrap_or(usize::MAX);
    if available == 0 {
        return Err(format!(
            "the open-file limit ({soft}) leaves no descriptor for connections ({headroom} are kept \
             for the server itself); raise it with `ulimit -n`"
        ));
    }
    if available < requested {
        tracing::warn!(
            max_connections = requested,
            effective = available,
            open_file_limit = soft,
            "--max-connections capped to what the open-file limit allows (one descriptor per \
             connection, {headroom} kept for the server itself); raise `ulimit -n` for more"
        );
        return Ok(available);
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_never_above_what_was_asked() {
        assert!(connection_limit(10, 2).unwrap() <= 10);
        let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let capped = connection_limit(usize::MAX, 2).unwrap() as u64;
        assert!(capped < soft, "{capped} connections with {soft} descriptors");
    }
}
