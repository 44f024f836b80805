//! The allocators the lab swaps in, where they live, and which one a process really uses.
//!
//! The lab binary is linked with no `#[global_allocator]`, so Rust's `System` allocator
//! calls the C library's `malloc`. Running it with `LD_PRELOAD=libjemalloc.so.2` (or
//! tcmalloc, mimalloc) makes the dynamic linker bind `malloc`/`free` to the preloaded
//! library instead: the same machine code, a different allocator. This module names the
//! candidates, finds their shared objects through the dynamic linker's cache
//! (`ldconfig -p`), and tells which library actually serves `malloc` in the current
//! process (`dladdr` on the resolved symbol), so a preload that silently failed is caught
//! instead of being measured as if it had worked.
//!
//! Beside the four production allocators there is allockit's own, `allockit-malloc`: not
//! installed system-wide but built in this workspace (`cargo build --release -p
//! allockit-malloc`), so it is looked for in the workspace's target directory instead.
//!
//! It cannot swap allocators of statically linked programs, nor of programs that bring
//! their own allocator (a Rust binary with a `#[global_allocator]`): the preloaded
//! library is then mapped but unused.

use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// One of the allocators the experiments compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocatorKind {
    /// The C library's own allocator (ptmalloc2); what runs without a preload.
    Glibc,
    /// jemalloc (Debian `libjemalloc2`).
    Jemalloc,
    /// gperftools' tcmalloc, the minimal build (Debian `libtcmalloc-minimal4`).
    Tcmalloc,
    /// Microsoft's mimalloc (Debian `libmimalloc2.0`).
    Mimalloc,
    /// This workspace's `allockit-malloc` (`liballockit_malloc.so`, a release build).
    #[serde(rename = "allockit")]
    AllockitMalloc,
}

impl AllocatorKind {
    /// Every installed production allocator, glibc first (the baseline of every comparison).
    pub const ALL: [AllocatorKind; 4] =
        [AllocatorKind::Glibc, AllocatorKind::Jemalloc, AllocatorKind::Tcmalloc, AllocatorKind::Mimalloc];

    /// [`AllocatorKind::ALL`] and allockit's own malloc after them: what `swap` compares.
    pub const WITH_ALLOCKIT: [AllocatorKind; 5] = [
        AllocatorKind::Glibc,
        AllocatorKind::Jemalloc,
        AllocatorKind::Tcmalloc,
        AllocatorKind::Mimalloc,
        AllocatorKind::AllockitMalloc,
    ];

    /// The short name used in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            AllocatorKind::Glibc => "glibc",
            AllocatorKind::Jemalloc => "jemalloc",
            AllocatorKind::Tcmalloc => "tcmalloc",
            AllocatorKind::Mimalloc => "mimalloc",
            AllocatorKind::AllockitMalloc => "allockit",
        }
    }

    /// The shared object's soname, looked up in the dynamic linker's cache; `None` for glibc
    /// and for allockit's malloc, which is not installed but built in the workspace.
    pub fn soname(self) -> Option<&'static str> {
        match self {
            AllocatorKind::Glibc | AllocatorKind::AllockitMalloc => None,
            AllocatorKind::Jemalloc => Some("libjemalloc.so.2"),
            AllocatorKind::Tcmalloc => Some("libtcmalloc_minimal.so.4"),
            AllocatorKind::Mimalloc => Some("libmimalloc.so.2"),
        }
    }

    /// The Debian package that ships the shared object; `None` for glibc and allockit.
    pub fn debian_package(self) -> Option<&'static str> {
        match self {
            AllocatorKind::Glibc | AllocatorKind::AllockitMalloc => None,
            AllocatorKind::Jemalloc => Some("libjemalloc2"),
            AllocatorKind::Tcmalloc => Some("libtcmalloc-minimal4"),
            AllocatorKind::Mimalloc => Some("libmimalloc2.0"),
        }
    }

    /// The command that installs this allocator on Debian or Ubuntu (for allockit's: builds it).
    pub fn install_command(self) -> Option<String> {
        if self == AllocatorKind::AllockitMalloc {
            return Some(format!("cargo build --release -p {ALLOCKIT_MALLOC_PACKAGE}"));
        }
        self.debian_package().map(|package| format!("sudo apt-get install -y {package}"))
    }

    /// Which allocator a shared object that provides `malloc` belongs to, by its file name.
    pub fn from_library_path(path: &Path) -> Option<AllocatorKind> {
        let file = path.file_name()?.to_string_lossy();
        if file.starts_with("libjemalloc") {
            Some(AllocatorKind::Jemalloc)
        } else if file.starts_with("libtcmalloc") {
            Some(AllocatorKind::Tcmalloc)
        } else if file.starts_with("libmimalloc") {
            Some(AllocatorKind::Mimalloc)
        } else if file.starts_with(ALLOCKIT_MALLOC_FILE) {
            Some(AllocatorKind::AllockitMalloc)
        } else if file.starts_with("libc.so") || file.starts_with("libc-") {
            Some(AllocatorKind::Glibc)
        } else {
            None
        }
    }
}

impl std::fmt::Display for AllocatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The package that builds allockit's malloc.
const ALLOCKIT_MALLOC_PACKAGE: &str = "allockit-malloc";

/// The file name of allockit's malloc in a cargo profile directory.
const ALLOCKIT_MALLOC_FILE: &str = "liballockit_malloc.so";

/// Where an allocator can be found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Part of the C library: nothing to preload.
    Builtin,
    /// The shared object to put into `LD_PRELOAD`.
    Library(PathBuf),
    /// Not installed; the command that installs it.
    Missing {
        /// For example `sudo apt-get install -y libjemalloc2`.
        install: String,
    },
}

/// An allocator and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The allocator looked for (glibc is always there; the others may be missing).
    pub kind: AllocatorKind,
    /// Whether (and from where) it can be used.
    pub availability: Availability,
}

impl Located {
    /// The `LD_PRELOAD` value for this allocator, or `None` for glibc and missing ones.
    pub fn preload(&self) -> Option<&Path> {
        match &self.availability {
            Availability::Library(path) => Some(path),
            Availability::Builtin | Availability::Missing { .. } => None,
        }
    }

    /// Whether a child can run on this allocator.
    pub fn is_available(&self) -> bool {
        !matches!(self.availability, Availability::Missing { .. })
    }
}

/// Finds every allocator of [`AllocatorKind::ALL`] through the dynamic linker's cache.
pub fn locate_all() -> Vec<Located> {
    let cache = linker_cache();
    AllocatorKind::ALL.iter().map(|&kind| locate_in(kind, &cache)).collect()
}

/// Finds one allocator through the dynamic linker's cache.
pub fn locate(kind: AllocatorKind) -> Located {
    locate_in(kind, &linker_cache())
}

/// Finds each of `kinds`, in that order.
pub fn locate_each(kinds: &[AllocatorKind]) -> Vec<Located> {
    let cache = linker_cache();
    kinds.iter().map(|&kind| locate_in(kind, &cache)).collect()
}

fn locate_in(kind: AllocatorKind, cache: &str) -> Located {
    if kind == AllocatorKind::AllockitMalloc {
        let availability = match allockit_malloc_library() {
            Some(path) => Availability::Library(path),
            None => Availability::Missing { install: kind.install_command().unwrap_or_default() },
        };
        return Located { kind, availability };
    }
    let availability = match kind.soname() {
        None => Availability::Builtin,
        Some(soname) => match find_in_linker_cache(cache, soname) {
            Some(path) => Availability::Library(path),
            None => Availability::Missing { install: kind.install_command().unwrap_or_default() },
        },
    };
    Located { kind, availability }
}

/// The release build of allockit's malloc in this workspace's target directory.
///
/// Looks in `$CARGO_TARGET_DIR/release` when that is set, then in a `release` directory
/// beside each directory above the running binary (the lab binary lives in
/// `target/release` or `target/debug`, its tests in `target/debug/deps`), and last in the
/// target directory of the workspace the lab was built in.
pub fn allockit_malloc_library() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release").join(ALLOCKIT_MALLOC_FILE));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            candidates.push(dir.join("release").join(ALLOCKIT_MALLOC_FILE));
        }
    }
    candidates
        .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release").join(ALLOCKIT_MALLOC_FILE));
    candidates.into_iter().find(|path| path.is_file())
}

/// The output of `ldconfig -p` (empty when ldconfig cannot be run).
fn linker_cache() -> String {
    ["ldconfig", "/sbin/ldconfig"]
        .iter()
        .find_map(|program| Command::new(program).arg("-p").output().ok())
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// Finds `soname` in `ldconfig -p` output, preferring this machine's word size.
///
/// Lines look like `\tlibjemalloc.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libjemalloc.so.2`.
pub fn find_in_linker_cache(cache: &str, soname: &str) -> Option<PathBuf> {
    let entries: Vec<(&str, PathBuf)> = cache
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(' ')?;
            let (flags, path) = rest.split_once("=>")?;
            (name == soname).then(|| (flags.trim(), PathBuf::from(path.trim())))
        })
        .collect();
    let native_flag = if cfg!(target_pointer_width = "64") { "64" } else { "libc6)" };
    entries
        .iter()
        .find(|(flags, _)| flags.contains(native_flag))
        .or_else(|| entries.first())
        .map(|(_, path)| path.clone())
}

/// The shared object that provides the `malloc` this process calls.
///
/// Looks `malloc` up in the global symbol scope (where a preloaded library comes first)
/// and asks the dynamic linker which object holds that address.
pub fn malloc_provider() -> Option<PathBuf> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads the linker's tables.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
    if symbol.is_null() {
        return None;
    }
    library_of(symbol)
}

/// The allocator that serves `malloc` in this process, and the library it comes from.
pub fn active_allocator() -> (Option<AllocatorKind>, String) {
    match malloc_provider() {
        Some(path) => (AllocatorKind::from_library_path(&path), path.display().to_string()),
        None => (None, "unknown".to_owned()),
    }
}

fn library_of(address: *const c_void) -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only writes into `info`, which lives on our stack.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: on success dli_fname points to a NUL-terminated path owned by the linker,
    // valid while the object stays loaded (an allocator is never unloaded).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(name.to_string_lossy().into_owned()))
}

/// The version of the C library this process runs on, e.g. "2.36".
pub fn glibc_version() -> String {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(gnu_get_libc_version()) };
    version.to_string_lossy().into_owned()
}

unsafe extern "C" {
    fn gnu_get_libc_version() -> *const libc::c_char;
}

#[cfg(test)]
mod tests {
    use super::*;

    const CACHE: &str = "3 libs found in cache `/etc/ld.so.cache'\n\
        \tlibjemalloc.so.2 (libc6) => /usr/lib/i386-linux-gnu/libjemalloc.so.2\n\
        \tlibjemalloc.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n\
        \tlibjemalloc.so (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libjemalloc.so\n";

    #[test]
    fn linker_cache_lookup_prefers_the_native_word_size_and_exact_soname() {
        let found = find_in_linker_cache(CACHE, "libjemalloc.so.2").unwrap();
        assert_eq!(found, PathBuf::from("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"));
        assert_eq!(find_in_linker_cache(CACHE, "libmimalloc.so.2"), None);
    }

    #[test]
    fn library_file_names_map_to_allocators() {
        let cases = [
            ("/usr/lib/x/libjemalloc.so.2", Some(AllocatorKind::Jemalloc)),
            ("/usr/lib/x/libtcmalloc_minimal.so.4", Some(AllocatorKind::Tcmalloc)),
            ("/usr/lib/x/libmimalloc.so.2.0", Some(AllocatorKind::Mimalloc)),
            ("/w/target/release/liballockit_malloc.so", Some(AllocatorKind::AllockitMalloc)),
            ("/lib/x/libc.so.6", Some(AllocatorKind::Glibc)),
            ("/lib/x/libfoo.so", None),
        ];
        for (path, kind) in cases {
            assert_eq!(AllocatorKind::from_library_path(Path::new(path)), kind, "{path}");
        }
    }

    #[test]
    fn this_test_process_runs_on_glibc_malloc() {
        assert_eq!(active_allocator().0, Some(AllocatorKind::Glibc));
    }

    #[test]
    fn missing_allocators_name_their_apt_get_line() {
        let located = locate_in(AllocatorKind::Mimalloc, "");
        assert_eq!(
            located.availability,
            Availability::Missing { install: "sudo apt-get install -y libmimalloc2.0".to_owned() }
        );
        assert!(!located.is_available());
    }

    #[test]
    fn allockit_malloc_is_built_not_installed() {
        assert_eq!(AllocatorKind::AllockitMalloc.soname(), None);
        assert_eq!(
            AllocatorKind::AllockitMalloc.install_command().as_deref(),
            Some("cargo build --release -p allockit-malloc")
        );
    }
}
