//! The lab re-executes its own binary to measure one allocator per process.
//!
//! `allockit-lab child <task> '<json parameters>'` runs one [`ChildTask`] and prints a JSON
//! envelope: the task's output and the provenance of `malloc` in that process (which
//! library really served it). The parent starts the child with or without `LD_PRELOAD`,
//! samples its RSS from outside ([`crate::process`]), parses the envelope and refuses the
//! result if the preload did not take ([`LabError::PreloadIgnored`]).
//!
//! A fresh process per allocator is the only honest way to compare allocators: one
//! process cannot switch its `malloc`, and a heap that earlier experiments warmed up
//! would skew RSS numbers.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind, Located};
use crate::process::{self, ChildSpec, SampledRun};

/// The hidden subcommand of the lab binary that runs child tasks.
pub const SUBCOMMAND: &str = "child";

/// A measurement that runs inside a child process.
pub trait ChildTask: Serialize + DeserializeOwned {
    /// The task's name on the command line.
    const NAME: &'static str;
    /// What the task reports.
    type Output: Serialize + DeserializeOwned;
    /// Runs the task in this process.
    fn run(self) -> Result<Self::Output, LabError>;
}

/// Which library served `malloc` in a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The allocator, when the library is one the lab knows.
    pub allocator: Option<AllocatorKind>,
    /// The shared object that provides `malloc`.
    pub library: String,
}

impl Provenance {
    /// The provenance of `malloc` in this process.
    pub fn current() -> Provenance {
        let (allocator, library) = allocator::active_allocator();
        Provenance { allocator, library }
    }
}

/// What a child prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<O> {
    /// Which allocator the child really ran on.
    pub provenance: Provenance,
    /// The task's output ([`ChildTask::Output`]), as JSON on the child's stdout.
    pub output: O,
}

/// Runs task `T` with JSON `params` in this process; returns the JSON envelope to print.
/// (The table from task names to types is [`crate::run_child_task`].)
pub fn run_task<T: ChildTask>(params: &str) -> Result<String, LabError> {
    let task: T = serde_json::from_str(params)?;
    let provenance = Provenance::current();
    let output = task.run()?;
    Ok(serde_json::to_string(&Envelope { provenance, output })?)
}

/// How the parent runs a child task.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// The lab binary, re-executed with its hidden `child` subcommand.
    pub exe: &'a Path,
    /// The allocator to run on (glibc: no preload).
    pub allocator: &'a Located,
    /// Extra environment, such as `MALLOC_CONF`.
    pub env: Vec<(String, String)>,
    /// RSS sampling interval.
    pub interval: Duration,
}

impl<'a> Launch<'a> {
    /// Runs `exe child` on `allocator`, sampling RSS every 20 ms.
    pub fn new(exe: &'a Path, allocator: &'a Located) -> Self {
        Launch { exe, allocator, env: Vec::new(), interval: Duration::from_millis(20) }
    }

    /// Runs `task` in a child, checks that it ran on the requested allocator, and returns
    /// its output with the outside measurements.
    pub fn run<T: ChildTask>(&self, task: &T) -> Result<(T::Output, SampledRun), LabError> {
        if let allocator::Availability::Missing { install } = &self.allocator.availability {
            return Err(LabError::AllocatorMissing {
                allocator: self.allocator.kind.name(),
                install: install.clone(),
            });
        }
        let mut spec = ChildSpec::new(
            self.exe,
            vec![SUBCOMMAND.to_owned(), T::NAME.to_owned(), serde_json::to_string(task)?],
        );
        spec.env = self.env.clone();
        spec.preload = self.allocator.preload().map(Path::to_path_buf);
        spec.capture_stdout = true;
        spec.interval = self.interval;
        let run = process::run_sampled(&spec)?;
        let command =
            format!("{} {} {} (on {})", self.exe.display(), SUBCOMMAND, T::NAME, self.allocator.kind);
        if !run.exit.success() {
            return Err(LabError::ChildFailed {
                command,
                status: run.exit.to_string(),
                stderr_tail: run.stderr_tail.clone(),
            });
        }
        let envelope: Envelope<T::Output> = serde_json::from_slice(&run.stdout)
            .map_err(|e| LabError::ChildOutput { command, reason: e.to_string() })?;
        if envelope.provenance.allocator != Some(self.allocator.kind) {
            return Err(LabError::PreloadIgnored {
                expected: self.allocator.kind.name().to_owned(),
                actual: envelope.provenance.library,
            });
        }
        Ok((envelope.output, run))
    }
}
