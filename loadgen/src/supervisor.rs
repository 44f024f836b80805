//! Supervision of `allockit-server` child processes, for the demo and the soak: find the
//! binary, start it on ephemeral loopback ports, wait until it announced its addresses and
//! answers `/readyz`, and stop it with SIGTERM (SIGKILL after a grace period).
//!
//! Each server announces its addresses with one JSON line on stdout, then must answer
//! `/readyz`; a server that does neither within [`STARTUP_TIMEOUT`] is an error naming its
//! log. A server whose handle is dropped early is killed. Each server runs in its own
//! process group, so a Ctrl-C at the terminal reaches loadgen only, which then stops the
//! runs and shuts the servers down in order.
//!
//! The lab has a child-process runner of its own (`allockit_lab::process`), for a different
//! job: short measurement children under `LD_PRELOAD`, sampled from `/proc` every few
//! milliseconds, synchronously. The two share no code on purpose (see
//! `docs/architecture.md`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::Error;
use crate::http::{ClientConnection, Target};
use crate::run::{Client, DEFAULT_DRAIN, RequestBody, RunConfig};
use crate::workload::WorkloadSpec;

/// The server binary's file name.
pub const SERVER_BINARY: &str = "allockit-server";
/// How long a server may take to announce its addresses.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to drain and exit after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// A server mode the demo compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// The name in tables, charts and file names.
    pub name: &'static str,
    /// The server flags that select it.
    pub args: &'static [&'static str],
}

/// The two modes, in table order.
pub const MODES: [Mode; 2] =
    [Mode { name: "segregated", args: &[] }, Mode { name: "broken-lifetimes", args: &["--break-lifetimes"] }];

/// Finds the server binary: `explicit` if given, else `allockit-server` next to the
/// running executable (or one directory up when that is cargo's `deps/`).
pub fn locate_server_binary(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let candidates = match explicit {
        Some(path) => vec![path.to_owned()],
        None => {
            let executable = std::env::current_exe().map_err(Error::Process)?;
            let mut candidates = Vec::new();
            if let Some(directory) = executable.parent() {
                candidates.push(directory.join(SERVER_BINARY));
                if directory.file_name().is_some_and(|name| name == "deps")
                    && let Some(profile) = directory.parent()
                {
                    candidates.push(profile.join(SERVER_BINARY));
                }
            }
            candidates
        }
    };
    candidates
        .iter()
        .find(|candidate| candidate.is_file())
        .cloned()
        .ok_or(Error::ServerBinaryMissing { looked_at: candidates })
}

/// The line a server prints on stdout once bound.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Announcement {
    /// The request listener, `host:port`.
    pub listening: SocketAddr,
    /// The admin listener, `host:port`.
    pub admin: SocketAddr,
}

/// How a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShutdownOutcome {
    /// The exit code, if it exited (not killed by a signal).
    pub exit_code: Option<i32>,
    /// Whether it had to be killed after the grace period.
    pub forced: bool,
}

impl ShutdownOutcome {
    /// Whether the server drained and exited with status 0.
    pub fn clean(&self) -> bool {
        self.exit_code == Some(0) && !self.forced
    }
}

/// A running server child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Its mode's name, used in messages and log file names.
    pub mode: String,
    /// The addresses it announced on stdout (ephemeral ports).
    pub addresses: Announcement,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl ServerProcess {
    /// An open-loop run of `POST /v1/events` against this server, scraping its `/metrics`
    /// (the run the demo and the soak make against each mode).
    pub(crate) fn events_run(
        &self,
        workload: &WorkloadSpec,
        rps: f64,
        duration: Duration,
        connections: usize,
        timeout: Duration,
    ) -> Result<RunConfig, Error> {
        let base = Target::parse("--server-bin", &self.base_url())?;
        Ok(RunConfig {
            label: self.mode.clone(),
            target: base.with_path("/v1/events"),
            method: Method::POST,
            body: RequestBody::Workload(workload.clone()),
            rps,
            warmup: Duration::ZERO,
            duration,
            connections,
            max_in_flight: None,
            timeout,
            drain: DEFAULT_DRAIN,
            metrics_url: Some(base.with_path("/metrics")),
            client: Client::Lean,
        })
    }

    /// Starts `binary` with `--listen 127.0.0.1:0 --admin-listen 127.0.0.1:0` and `args`,
    /// stderr to `log`, and waits for its announcement line.
    pub async fn spawn(binary: &Path, mode: &str, args: &[String], log: &Path) -> Result<Self, Error> {
        let start_error =
            |message: String| Error::ServerStart { mode: mode.to_owned(), message, log: log.to_owned() };
        let log_file =
            std::fs::File::create(log).map_err(|cause| Error::File { path: log.to_owned(), cause })?;
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C at the terminal reaches loadgen only, which then
            // stops the runs and shuts the server down in order.
            .process_group(0)
            .spawn()
            .map_err(|error| start_error(format!("cannot run {}: {error}", binary.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| start_error("no stdout pipe".to_owned()))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = child.wait().await.map_err(Error::Process)?;
                return Err(start_error(format!("exited ({status}) before announcing its addresses")));
            }
            Ok(Err(error)) => return Err(start_error(format!("reading its stdout: {error}"))),
            Err(_) => {
                return Err(start_error(format!(
                    "did not announce its addresses within {} s",
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
        };
        let addresses: Announcement = serde_json::from_str(&line).map_err(|error| {
            start_error(format!(
                "its first stdout line is not {{\"listening\",\"admin\"}} JSON ({error}): {line:?}"
            ))
        })?;
        tokio::spawn(async move {
            // Keep the pipe drained so that a chatty server never blocks on stdout.
            while let Ok(Some(_)) = lines.next_line().await {}
        });
        let server = Self { child, mode: mode.to_owned(), addresses, log: log.to_owned() };
        server.wait_ready().await.map_err(start_error)?;
        Ok(server)
    }

    /// Polls `GET /readyz` until it answers 200 (404 counts as ready: no readiness check),
    /// within [`STARTUP_TIMEOUT`].
    async fn wait_ready(&self) -> Result<(), String> {
        let target = Target::parse("--server-bin", &self.base_url())
            .map_err(|error| error.to_string())?
            .with_path("/readyz");
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let mut last = String::from("no answer");
        while tokio::time::Instant::now() < deadline {
            let attempt = async {
                let mut connection =
                    ClientConnection::open(&target, self.addresses.listening, Duration::from_secs(1)).await?;
                connection.get(&target, 1 << 16).await
            };
            match attempt.await {
                Ok((200 | 404, _)) => return Ok(()),
                Ok((status, _)) => last = format!("HTTP {status}"),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not ready within {} s (/readyz: {last})", STARTUP_TIMEOUT.as_secs()))
    }

    /// `http://host:port` of the request listener.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addresses.listening)
    }

    /// Sends SIGTERM and waits for the exit; SIGKILL after `grace`.
    pub async fn shutdown(mut self, grace: Duration) -> Result<ShutdownOutcome, Error> {
        if let Some(pid) = self.child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
            // The child may have exited already; waiting below reports how.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                Ok(ShutdownOutcome { exit_code: status.map_err(Error::Process)?.code(), forced: false })
            }
            Err(_) => {
                self.child.kill().await.map_err(Error::Process)?;
                Ok(ShutdownOutcome { exit_code: None, forced: true })
            }
        }
    }
}
