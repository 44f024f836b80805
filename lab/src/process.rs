//! Child processes measured from the outside: resident set size sampled over time, wall
//! time, the kernel's peak RSS, and whether a preloaded library really got mapped.
//!
//! RSS is read from `/proc/PID/statm` (resident pages × page size), which is what `top`
//! shows and what the kernel charges the process for. A sampler thread polls it at a fixed
//! interval while the parent waits for the child; the child is waited for with
//! `waitid(WNOWAIT)` first, so the sampler stops before the process ID can be recycled,
//! then reaped with `wait4` to read its peak RSS (`ru_maxrss`), which catches peaks
//! shorter than the sampling interval.
//!
//! Only the direct child is sampled: when the command is a shell that forks the real
//! program, the curve shows the shell (the kernel's peak still covers reaped descendants).
//! Linux only.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::LabError;

/// One RSS reading of a running process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RssSample {
    /// Seconds since the process was started.
    pub t_secs: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// The resident set size of process `pid` in bytes.
pub fn resident_bytes_of(pid: u32) -> std::io::Result<u64> {
    parse_statm_resident(&std::fs::read_to_string(format!("/proc/{pid}/statm"))?)
}

/// The resident set size of this process in bytes.
///
/// Allocates nothing (the line is read into a stack buffer), so experiments may call it
/// between the allocations they measure without disturbing the heap.
pub fn own_resident_bytes() -> std::io::Result<u64> {
    let mut line = [0u8; 256];
    let mut file = std::fs::File::open("/proc/self/statm")?;
    let mut len = 0;
    while len < line.len() {
        match file.read(&mut line[len..])? {
            0 => break,
            read => len += read,
        }
    }
    let text = std::str::from_utf8(&line[..len])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    parse_statm_resident(text)
}

fn parse_statm_resident(statm: &str) -> std::io::Result<u64> {
    let pages: u64 =
        statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected statm line {statm:?}"))
        })?;
    Ok(pages * allockit::os::page_size() as u64)
}

/// A program to run and sample.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The program (the lab binary for child tasks, or a user's command for `swap -- CMD`).
    pub program: PathBuf,
    /// Its arguments, without the program name.
    pub args: Vec<String>,
    /// Extra environment variables (`LD_PRELOAD` and `MALLOC_CONF` are cleared first, so a
    /// lab that itself runs under a preload does not leak it into the baseline).
    pub env: Vec<(String, String)>,
    /// The shared object to preload, if any.
    pub preload: Option<PathBuf>,
    /// Keep the child's standard output (experiments that speak JSON) or discard it.
    pub capture_stdout: bool,
    /// How often to read the child's RSS.
    pub interval: Duration,
}

impl ChildSpec {
    /// A spec that runs `program` with `args`, discarding its output, sampling every 20 ms.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ChildSpec {
            program: program.into(),
            args,
            env: Vec::new(),
            preload: None,
            capture_stdout: false,
            interval: Duration::from_millis(20),
        }
    }

    /// The command line, shortened for error messages.
    pub fn display(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in self.args.iter().take(3) {
            text.push(' ');
            text.push_str(&arg.chars().take(60).collect::<String>());
        }
        text
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitOutcome {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitOutcome {
    /// Whether it exited with status 0 (a signal is never a success).
    pub fn success(self) -> bool {
        self == ExitOutcome::Code(0)
    }
}

impl std::fmt::Display for ExitOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitOutcome::Code(code) => write!(f, "exit status {code}"),
            ExitOutcome::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// What was measured about one child run.
#[derive(Debug, Clone)]
pub struct SampledRun {
    /// Exit status or the signal that killed it.
    pub exit: ExitOutcome,
    /// Seconds from spawn to exit.
    pub wall_secs: f64,
    /// RSS over time.
    pub rss: Vec<RssSample>,
    /// The kernel's peak RSS for the child (`ru_maxrss`) in bytes.
    pub peak_rss_bytes: u64,
    /// Whether the preloaded library showed up in `/proc/PID/maps`; `None` when there was
    /// no preload or the child ended before its maps could be read.
    pub preload_mapped: Option<bool>,
    /// Standard output, when captured.
    pub stdout: Vec<u8>,
    /// The end of standard error.
    pub stderr_tail: String,
}

const STDERR_TAIL_BYTES: usize = 4096;

/// Runs the child to completion, sampling its RSS.
pub fn run_sampled(spec: &ChildSpec) -> Result<SampledRun, LabError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_remove("LD_PRELOAD")
        .env_remove("MALLOC_CONF")
        .stdin(Stdio::null())
        .stdout(if spec.capture_stdout { Stdio::piped() } else { Stdio::null() })
        .stderr(Stdio::piped());
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    if let Some(preload) = &spec.preload {
        command.env("LD_PRELOAD", preload);
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(|cause| LabError::Spawn { command: spec.display(), cause })?;
    let pid = child.id();
    let stdout_reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            out.read_to_end(&mut bytes).map(|_| bytes)
        })
    });
    let stderr_reader = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            err.read_to_end(&mut bytes).map(|_| bytes)
        })
    });

    let stop = Arc::new(AtomicBool::new(false));
    let preload_file = spec.preload.as_ref().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let sampler = {
        let stop = Arc::clone(&stop);
        let interval = spec.interval;
        std::thread::spawn(move || sample_until_stopped(pid, started, interval, preload_file, &stop))
    };

    let waited = wait_without_reaping(pid);
    let wall_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let (rss, preload_mapped) = sampler.join().unwrap_or_default();
    let reaped = reap(pid);
    waited.map_err(|cause| LabError::Spawn { command: spec.display(), cause })?;
    let (exit, peak_rss_bytes) =
        reaped.map_err(|cause| LabError::Spawn { command: spec.display(), cause })?;

    let stdout = match stdout_reader.and_then(join_within_grace) {
        Some(read) => read.map_err(|cause| LabError::Spawn { command: spec.display(), cause })?,
        None => Vec::new(),
    };
    let stderr = stderr_reader.and_then(join_within_grace).and_then(Result::ok).unwrap_or_default();
    let tail_start = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
    Ok(SampledRun {
        exit,
        wall_secs,
        rss,
        peak_rss_bytes,
        preload_mapped: spec.preload.as_ref().and(preload_mapped),
        stdout,
        stderr_tail: String::from_utf8_lossy(&stderr[tail_start..]).into_owned(),
    })
}

/// How long to wait for a child's output after it exited: a grandchild that inherited
/// the pipe (`sh -c "daemon &"`) may keep it open forever.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The reader's result, or `None` when it is still blocked after [`OUTPUT_GRACE`] (the
/// thread is then left to finish on its own).
fn join_within_grace<T>(reader: std::thread::JoinHandle<T>) -> Option<T> {
    let deadline = Instant::now() + OUTPUT_GRACE;
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if reader.is_finished() { reader.join().ok() } else { None }
}

fn sample_until_stopped(
    pid: u32,
    started: Instant,
    interval: Duration,
    preload_file: Option<PathBuf>,
    stop: &AtomicBool,
) -> (Vec<RssSample>, Option<bool>) {
    let mut samples = Vec::new();
    let mut mapped: Option<bool> = None;
    while !stop.load(Ordering::Acquire) {
        let t_secs = started.elapsed().as_secs_f64();
        if let Ok(rss_bytes) = resident_bytes_of(pid)
            && rss_bytes > 0
        {
            samples.push(RssSample { t_secs, rss_bytes });
        }
        if let Some(file) = &preload_file
            && mapped != Some(true)
            && let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            && !maps.is_empty()
        {
            mapped = Some(maps_contain(&maps, file));
        }
        std::thread::sleep(interval);
    }
    (samples, mapped)
}

/// Whether `/proc/PID/maps` text maps the file `library`.
pub fn maps_contain(maps: &str, library: &Path) -> bool {
    let wanted = library.to_string_lossy();
    maps.lines().any(|line| line.split_whitespace().nth(5).is_some_and(|path| path == wanted))
}

/// Blocks until `pid` has exited, leaving it a zombie so its ID cannot be reused yet.
fn wait_without_reaping(pid: u32) -> std::io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child waitable.
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reaps `pid`, returning how it ended and its peak RSS in bytes.
fn reap(pid: u32) -> std::io::Result<(ExitOutcome, u64)> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; zeroed is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes only into `status` and `usage`, both on our stack.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if rc == pid as libc::pid_t {
            let exit = if libc::WIFSIGNALED(status) {
                ExitOutcome::Signal(libc::WTERMSIG(status))
            } else {
                ExitOutcome::Code(libc::WEXITSTATUS(status))
            };
            return Ok((exit, usage.ru_maxrss.max(0) as u64 * 1024));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `allockit-lab-<label>-<pid>-<nanos>` in the temporary directory.
    pub fn new(label: &str) -> Result<Self, LabError> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("allockit-lab-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| LabError::file("create directory", &path, e))?;
        Ok(TempDir { path })
    }

    /// The directory, removed with everything in it when the `TempDir` drops.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A leftover temporary directory is harmless; there is nobody to report it to.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// This machine, described from /proc, for the reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release (`uname -r`): page size defaults and THP behaviour depend on it.
    pub kernel: String,
    /// glibc version (`gnu_get_libc_version`): its malloc is the baseline allocator.
    pub glibc: String,
}

impl Machine {
    /// Reads the description of the machine this runs on.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0);
        Machine {
            cpu,
            logical_cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            glibc: crate::allocator::glibc_version(),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} logical CPUs), {:.1} GiB RAM, Linux {}, glibc {}",
            self.cpu,
            self.logical_cpus,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.kernel,
            self.glibc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_resident_field_is_pages_times_page_size() {
        let page = allockit::os::page_size() as u64;
        assert_eq!(parse_statm_resident("1000 250 30 1 0 400 0\n").unwrap(), 250 * page);
        assert!(parse_statm_resident("garbage").is_err());
    }

    #[test]
    fn maps_lines_match_on_the_exact_path_column() {
        let maps = "7f00-7f10 r-xp 00000000 08:01 42 /usr/lib/libjemalloc.so.2\n\
                    7f10-7f20 rw-p 00000000 00:00 0 \n";
        assert!(maps_contain(maps, Path::new("/usr/lib/libjemalloc.so.2")));
        assert!(!maps_contain(maps, Path::new("/usr/lib/libjemalloc.so")));
    }

    #[test]
    fn a_grandchild_holding_the_output_pipe_does_not_hang_the_run() {
        let dir = TempDir::new("grandchild-test").unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > '{}'", pid_file.display());
        let run = run_sampled(&ChildSpec::new("sh", vec!["-c".into(), script])).unwrap();
        assert!(run.exit.success());
        let grandchild: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let still_running = Path::new(&format!("/proc/{grandchild}")).exists();
        // SAFETY: kill has no memory effects; the pid is the sleep this test started.
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
        assert!(still_running, "the run returned while the grandchild still held stderr open");
    }

    #[test]
    fn sampled_run_of_a_failing_command_reports_its_exit_status() {
        let spec = ChildSpec::new("sh", vec!["-c".into(), "echo oops >&2; exit 3".into()]);
        let run = run_sampled(&spec).unwrap();
        assert_eq!(run.exit, ExitOutcome::Code(3));
        assert_eq!(run.stderr_tail.trim(), "oops");
        assert!(run.peak_rss_bytes > 0);
    }
}
