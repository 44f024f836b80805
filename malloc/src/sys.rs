//! The few C-library services the allocator needs, each one that cannot allocate: writing
//! to stderr with `write(2)`, aborting with a message, `errno`, a monotonic clock, and
//! reading an environment variable with `getenv`.
//!
//! **What it is for.** Code inside malloc cannot use `std::io`, `format!`, `eprintln!` or
//! `std::env`: each may allocate, and an allocation from inside the allocator recurses.
//! [`StackText`] formats into a fixed buffer on the stack with `core::fmt::Write` instead.
//!
//! **What it cannot do.** Text longer than the buffer is cut, not grown.
//!
//! **Complexity.** Each call is one system call (the clock is the vDSO, no system call).
//!
//! **Debug support.** [`fatal`] is the single place the allocator stops a program: its
//! message names the call and the address.

use core::fmt::{self, Write};

/// A fixed buffer that `core::fmt::Write` fills; the text is cut at the capacity.
#[derive(Debug)]
pub(crate) struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    pub(crate) const fn new() -> Self {
        StackText { bytes: [0; N], len: 0 }
    }

    /// The text written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Writes the text to stderr and empties the buffer.
    pub(crate) fn flush_to_stderr(&mut self) {
        write_stderr(self.as_bytes());
        self.len = 0;
    }
}

impl<const N: usize> Write for StackText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = N - self.len;
        let take = text.len().min(room);
        if let (Some(dst), Some(src)) =
            (self.bytes.get_mut(self.len..self.len + take), text.as_bytes().get(..take))
        {
            dst.copy_from_slice(src);
            self.len += take;
        }
        Ok(())
    }
}

/// Writes all of `bytes` to file descriptor 2, retrying short writes; errors are dropped
/// (there is nowhere left to report them).
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written <= 0 {
            return;
        }
        bytes = bytes.get(written as usize..).unwrap_or(&[]);
    }
}

/// Writes `allockit-malloc: {what} {address}` to stderr and aborts the process.
#[cold]
#[inline(never)]
#[cfg_attr(not(feature = "guard"), allow(dead_code))]
pub(crate) fn fatal(what: &str, address: usize) -> ! {
    let mut text = StackText::<256>::new();
    let _ = writeln!(text, "allockit-malloc: {what} (address {address:#x}); aborting");
    text.flush_to_stderr();
    // SAFETY: abort has no preconditions; it never returns.
    unsafe { libc::abort() }
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(value: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = value };
}

/// Milliseconds of a monotonic clock (`CLOCK_MONOTONIC_COARSE`: a vDSO read, a few ns;
/// its resolution of a few ms is plenty for purge delays).
pub(crate) fn now_ms() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    (now.tv_sec as u64).wrapping_mul(1000).wrapping_add(now.tv_nsec as u64 / 1_000_000)
}

/// The value of environment variable `name` (a NUL-terminated byte string) parsed as a
/// signed decimal integer, or `None` when it is unset or not a number.
pub(crate) fn env_integer(name: &[u8]) -> Option<i64> {
    // SAFETY: `name` is NUL-terminated (all callers pass literals ending in \0); getenv
    // returns NULL or a NUL-terminated string that lives as long as the environment.
    let value = unsafe { libc::getenv(name.as_ptr().cast()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a valid NUL-terminated string.
    let text = unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |n, digit| n * 10 + i64::from(digit - b'0'));
    Some(if negative { -magnitude } else { magnitude })
}
