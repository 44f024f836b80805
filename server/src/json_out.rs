//! A bounded JSON writer over a fixed buffer: no allocation, no partial writes.
//!
//! Responses are rendered into a pooled buffer of fixed size. Each write either fits
//! entirely or changes nothing and reports `false`, so a caller can stop at a checkpoint
//! (for example, list as many groups as fit) and still close the document.

use core::fmt::{self, Write};
use core::mem::MaybeUninit;

/// Writes JSON text into `buf`, tracking how much is initialised.
#[derive(Debug)]
pub struct JsonOut<'b> {
    buf: &'b mut [MaybeUninit<u8>],
    len: usize,
}

impl<'b> JsonOut<'b> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'b mut [MaybeUninit<u8>]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Drops everything written after `len` (a checkpoint taken with [`JsonOut::len`]).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `raw`.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }

    /// Appends raw bytes (already valid JSON text).
    #[must_use]
    pub fn raw(&mut self, bytes: &[u8]) -> bool {
        let Some(dest) = self.buf.get_mut(self.len..self.len + bytes.len()) else {
            return false;
        };
        for (d, s) in dest.iter_mut().zip(bytes) {
            d.write(*s);
        }
        self.len += bytes.len();
        true
    }

    /// Appends a JSON string literal (quoted and escaped).
    #[must_use]
    pub fn string(&mut self, text: &str) -> bool {
        let mark = self.len;
        let ok = self.raw(b"\"") && self.escaped(text) && self.raw(b"\"");
        if !ok {
            self.len = mark;
        }
        ok
    }

    fn escaped(&mut self, text: &str) -> bool {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]],
                _ => continue,
            };
            if !(self.raw(&bytes[start..i]) && self.raw(escape)) {
                return false;
            }
            start = i + 1;
        }
        self.raw(&bytes[start..])
    }

    /// Appends `value`'s `Display` output as a JSON string literal, escaped as it is
    /// written (no intermediate `String`).
    #[must_use]
    pub fn display(&mut self, value: impl fmt::Display) -> bool {
        /// Escapes what `write!` hands it into the output.
        struct Escaping<'o, 'b>(&'o mut JsonOut<'b>);
        impl Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                if self.0.escaped(s) { Ok(()) } else { Err(fmt::Error) }
            }
        }
        let mark = self.len;
        let ok = self.raw(b"\"") && write!(Escaping(self), "{value}").is_ok() && self.raw(b"\"");
        if !ok {
            self.len = mark;
        }
        ok
    }

    /// Appends an unsigned integer.
    #[must_use]
    pub fn number(&mut self, value: u64) -> bool {
        let mark = self.len;
        let ok = write!(self, "{value}").is_ok();
        if !ok {
            self.len = mark;
        }
        ok
    }

    /// Appends `"key":` (the key is trusted ASCII without escapes).
    #[must_use]
    pub fn key(&mut self, key: &str) -> bool {
        let mark = self.len;
        let ok = self.raw(b"\"") && self.raw(key.as_bytes()) && self.raw(b"\":");
        if !ok {
            self.len = mark;
        }
        ok
    }
}

impl Write for JsonOut<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.raw(s.as_bytes()) { Ok(()) } else { Err(fmt::Error) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(capacity: usize, f: impl FnOnce(&mut JsonOut<'_>) -> bool) -> (bool, String) {
        let mut buf = vec![MaybeUninit::uninit(); capacity];
        let mut out = JsonOut::new(&mut buf);
        let ok = f(&mut out);
        (ok, String::from_utf8(out.as_bytes().to_vec()).unwrap())
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let (ok, text) = render(100, |o| o.string("a\"b\\c\nd\u{1}é"));
        assert!(ok);
        assert_eq!(text, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn a_write_that_does_not_fit_changes_nothing() {
        let (ok, text) = render(8, |o| o.raw(b"{") && o.string("too long for it"));
        assert!(!ok);
        assert_eq!(text, "{");
        let (ok, text) = render(3, |o| o.number(12345));
        assert!(!ok);
        assert_eq!(text, "");
    }
}
