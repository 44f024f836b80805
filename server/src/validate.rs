//! A first pass over a `POST /v1/events` body that finds what is wrong with bad input
//! without touching the general heap.
//!
//! serde_json boxes every error it reports (`Box<ErrorImpl>`, plus a `String` for type
//! errors) on the general heap, so a stream of malformed bodies would make request work
//! allocate there, which the arena design promises it never does. This pass walks the body
//! once, checks JSON syntax, the batch's shape (the same rules as the `DeserializeSeed` in
//! [`crate::workload`]) and its limits, and reports the first problem with its line and
//! column, in serde_json's wording. It allocates nothing but, for values nested inside
//! fields the server ignores, one byte per nesting level in request memory (the arena).
//! A body it accepts is then parsed by serde_json, which stays the authority: if the two
//! ever disagree, serde_json's error is the answer (and the heap counter shows it). The
//! tests hold the two to the same verdicts.
//!
//! Cost: one extra linear scan of the body, without copies.

use core::fmt;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec;

use crate::workload::{Limits, Refusal};

/// What is wrong with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Bytes that are not JSON; the text says what was expected.
    Syntax(&'static str),
    /// The body ends inside a value.
    Eof(&'static str),
    /// A value of the wrong JSON type.
    InvalidType {
        /// What the body holds.
        found: &'static str,
        /// What the batch needs there.
        expected: &'static str,
    },
    /// A value of the wrong JSON type where a string is needed.
    NotAString {
        /// What the body holds.
        found: &'static str,
        /// The batch field (`user`, `kind`, `path` or a tag) that needs a string.
        field: &'static str,
    },
    /// A number that is not a `u32`.
    InvalidValue {
        /// What the body holds.
        found: &'static str,
        /// What the batch needs there.
        expected: &'static str,
    },
    /// A required field is absent.
    MissingField(&'static str),
    /// A field appears twice.
    DuplicateField(&'static str),
    /// Valid JSON of the right shape beyond a limit (or request memory ran out).
    Refused(Refusal),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Syntax(what) => f.write_str(what),
            Problem::Eof(what) => write!(f, "EOF while parsing {what}"),
            Problem::InvalidType { found, expected } => {
                write!(f, "invalid type: {found}, expected {expected}")
            }
            Problem::NotAString { found, field } => {
                write!(f, "invalid type: {found}, expected a string for `{field}`")
            }
            Problem::InvalidValue { found, expected } => {
                write!(f, "invalid value: {found}, expected {expected}")
            }
            Problem::MissingField(field) => write!(f, "missing field `{field}`"),
            Problem::DuplicateField(field) => write!(f, "duplicate field `{field}`"),
            Problem::Refused(refusal) => refusal.fmt(f),
        }
    }
}

/// The first problem of a batch, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// The kind of problem, which decides the status (400, or 413/422 for a limit).
    pub problem: Problem,
    /// 1-based line of the byte where it was found.
    pub line: usize,
    /// 1-based column (in bytes) of that byte.
    pub column: usize,
}

impl Invalid {
    /// The refusal, if a limit (not the JSON) is the problem.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.problem {
            Problem::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Refused(refusal) => refusal.fmt(f),
            problem => write!(f, "{problem} at line {} column {}", self.line, self.column),
        }
    }
}

/// Checks `body` as a batch under `limits`; `alloc` holds the nesting stack of ignored
/// values.
pub fn check<A: Allocator + Copy>(body: &[u8], alloc: A, limits: &Limits) -> Result<(), Invalid> {
    let mut scanner = Scanner { body, pos: 0, alloc, limits };
    scanner.batch()?;
    if scanner.peek().is_some() {
        return scanner.fail(Problem::Syntax("trailing characters"));
    }
    Ok(())
}

const BATCH_FIELDS: &[&str] = &["user", "events"];
const EVENT_FIELDS: &[&str] = &["kind", "path", "ms", "tags"];

struct Scanner<'b, 'l, A> {
    body: &'b [u8],
    pos: usize,
    alloc: A,
    limits: &'l Limits,
}

/// A number's kind, as serde_json would hand it to a visitor.
enum Number {
    Integer { negative: bool, value: u64 },
    Float,
}

impl<A: Allocator + Copy> Scanner<'_, '_, A> {
    fn fail<T>(&self, problem: Problem) -> Result<T, Invalid> {
        let before = &self.body[..self.pos.min(self.body.len())];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
        Err(Invalid { problem, line, column })
    }

    /// Skips whitespace and returns the next byte, if any.
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.body.get(self.pos) {
            self.pos += 1;
        }
        self.body.get(self.pos).copied()
    }

    /// The JSON type of the value that starts with `byte` where another type was needed, in
    /// serde's words. As serde_json does, a scalar is read first, so that a malformed one is
    /// a syntax error rather than a type error; `None` if no value starts there.
    fn found(&mut self, byte: u8) -> Result<Option<&'static str>, Invalid> {
        Ok(Some(match byte {
            b'"' => self.string(&mut |_| {}).map(|_| "string")?,
            b'{' => "map",
            b'[' => "sequence",
            b't' => self.literal(b"true").map(|()| "boolean")?,
            b'f' => self.literal(b"false").map(|()| "boolean")?,
            b'n' => self.literal(b"null").map(|()| "null")?,
            b'-' | b'0'..=b'9' => match self.number()? {
                Number::Integer { .. } => "integer",
                Number::Float => "floating point",
            },
            _ => return Ok(None),
        }))
    }

    /// Reports the value at `byte` as the wrong type (`wrong`), or as no value at all.
    fn wrong_type<T>(&mut self, byte: u8, wrong: impl FnOnce(&'static str) -> Problem) -> Result<T, Invalid> {
        match self.found(byte)? {
            Some(found) => self.fail(wrong(found)),
            None => self.fail(Problem::Syntax("expected value")),
        }
    }

    /// Consumes `open`, or reports what stands there instead of `expected`.
    fn open(&mut self, open: u8, expected: &'static str) -> Result<(), Invalid> {
        match self.peek() {
            Some(b) if b == open => {
                self.pos += 1;
                Ok(())
            }
            None => self.fail(Problem::Eof("a value")),
            Some(b) => self.wrong_type(b, |found| Problem::InvalidType { found, expected }),
        }
    }

    fn batch(&mut self) -> Result<(), Invalid> {
        self.open(b'{', "a batch object with `user` and `events`")?;
        let mut seen = [false; 2];
        self.object(BATCH_FIELDS, |s, field| {
            match field {
                Some(i) if seen[i] => return s.fail(Problem::DuplicateField(BATCH_FIELDS[i])),
                Some(0) => s.text("user", s.limits.max_name_bytes, true)?,
                Some(_) => s.events()?,
                None => s.skip_value()?,
            }
            if let Some(i) = field {
                seen[i] = true;
            }
            Ok(())
        })?;
        if let Some(missing) = seen.iter().position(|seen| !seen) {
            return self.fail(Problem::MissingField(BATCH_FIELDS[missing]));
        }
        Ok(())
    }

    fn events(&mut self) -> Result<(), Invalid> {
        self.open(b'[', "an array of events")?;
        let max = self.limits.max_events;
        let mut count = 0;
        self.array(|s| {
            s.event()?;
            if count == max {
                return s.fail(Problem::Refused(Refusal::TooManyEvents(max)));
            }
            count += 1;
            Ok(())
        })
    }

    fn event(&mut self) -> Result<(), Invalid> {
        self.open(b'{', "an event object with `kind`, `path` and `ms`")?;
        let mut seen = [false; 4];
        self.object(EVENT_FIELDS, |s, field| {
            match field {
                Some(i) if seen[i] => return s.fail(Problem::DuplicateField(EVENT_FIELDS[i])),
                Some(0) => s.text("kind", s.limits.max_name_bytes, false)?,
                Some(1) => s.text("path", s.limits.max_path_bytes, false)?,
                Some(2) => s.ms()?,
                Some(_) => s.tags()?,
                None => s.skip_value()?,
            }
            if let Some(i) = field {
                seen[i] = true;
            }
            Ok(())
        })?;
        // `tags` is optional.
        if let Some(missing) = seen[..3].iter().position(|seen| !seen) {
            return self.fail(Problem::MissingField(EVENT_FIELDS[missing]));
        }
        Ok(())
    }

    fn tags(&mut self) -> Result<(), Invalid> {
        self.open(b'[', "an array of tag strings")?;
        let max = self.limits.max_tags;
        let mut count = 0;
        self.array(|s| {
            s.text("tags", s.limits.max_name_bytes, false)?;
            if count == max {
                return s.fail(Problem::Refused(Refusal::TooManyTags(max)));
            }
            count += 1;
            Ok(())
        })
    }

    fn text(&mut self, field: &'static str, limit: usize, refuse_empty: bool) -> Result<(), Invalid> {
        match self.peek() {
            Some(b'"') => {}
            None => return self.fail(Problem::Eof("a value")),
            Some(b) => return self.wrong_type(b, |found| Problem::NotAString { found, field }),
        }
        let len = self.string(&mut |_| {})?;
        if len > limit {
            return self.fail(Problem::Refused(Refusal::StringTooLong { field, limit }));
        }
        if refuse_empty && len == 0 {
            return self.fail(Problem::Refused(Refusal::EmptyUser));
        }
        Ok(())
    }

    fn ms(&mut self) -> Result<(), Invalid> {
        const EXPECTED: &str = "u32";
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {}
            None => return self.fail(Problem::Eof("a value")),
            Some(b) => return self.wrong_type(b, |found| Problem::InvalidType { found, expected: EXPECTED }),
        }
        match self.number()? {
            Number::Integer { negative, value }
                if (negative && value != 0) || value > u64::from(u32::MAX) =>
            {
                self.fail(Problem::InvalidValue { found: "integer", expected: EXPECTED })
            }
            Number::Integer { .. } => Ok(()),
            Number::Float => self.fail(Problem::InvalidType { found: "floating point", expected: EXPECTED }),
        }
    }

    /// Walks the members of an object whose `{` is consumed; `member` is called after each
    /// key's `:` with the key's index in `fields` (`None` for any other key).
    fn object(
        &mut self,
        fields: &[&str],
        mut member: impl FnMut(&mut Self, Option<usize>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let field = self.key(fields)?;
            member(self, field)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return self.fail(Problem::Eof("an object")),
                Some(_) => return self.fail(Problem::Syntax("expected `,` or `}`")),
            }
        }
    }

    /// Walks the elements of an array whose `[` is consumed.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Result<(), Invalid>) -> Result<(), Invalid> {
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return self.fail(Problem::Eof("a list")),
                Some(_) => return self.fail(Problem::Syntax("expected `,` or `]`")),
            }
        }
    }

    /// Reads a key and its `:`; returns its index in `fields`, compared after unescaping.
    fn key(&mut self, fields: &[&str]) -> Result<Option<usize>, Invalid> {
        match self.peek() {
            Some(b'"') => {}
            None => return self.fail(Problem::Eof("an object")),
            Some(_) => return self.fail(Problem::Syntax("key must be a string")),
        }
        // Field names are short: decode at most 8 bytes; a longer key is no field.
        let mut name = [0u8; 8];
        let mut filled = 0;
        let mut fits = true;
        self.string(&mut |piece| match name.get_mut(filled..filled + piece.len()) {
            Some(slot) if fits => {
                slot.copy_from_slice(piece);
                filled += piece.len();
            }
            _ => fits = false,
        })?;
        let field = if fits { fields.iter().position(|f| f.as_bytes() == &name[..filled]) } else { None };
        match self.peek() {
            Some(b':') => self.pos += 1,
            None => return self.fail(Problem::Eof("an object")),
            Some(_) => return self.fail(Problem::Syntax("expected `:`")),
        }
        Ok(field)
    }

    /// Reads a string serde_json decodes, at its opening quote; hands the decoded bytes to
    /// `out` piece by piece and returns the decoded length.
    fn string(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<usize, Invalid> {
        self.scan_string(out, true)
    }

    /// Skips a string serde_json ignores: as serde_json does, without checking UTF-8 or
    /// surrogate pairs.
    fn skip_string(&mut self) -> Result<(), Invalid> {
        self.scan_string(&mut |_| {}, false).map(|_| ())
    }

    fn scan_string(&mut self, out: &mut dyn FnMut(&[u8]), strict: bool) -> Result<usize, Invalid> {
        self.pos += 1;
        let mut len = 0;
        loop {
            let start = self.pos;
            while let Some(&b) = self.body.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Quotes and backslashes are ASCII, so runs between them split no character.
            let run = &self.body[start..self.pos];
            if let (true, Err(error)) = (strict, core::str::from_utf8(run)) {
                self.pos = start + error.valid_up_to();
                return self.fail(Problem::Syntax("invalid unicode code point"));
            }
            len += run.len();
            out(run);
            match self.body.get(self.pos) {
                None => return self.fail(Problem::Eof("a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(len);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let mut utf8 = [0u8; 4];
                    let decoded = self.escape(&mut utf8, strict)?;
                    len += decoded;
                    out(&utf8[..decoded]);
                }
                Some(_) => {
                    return self.fail(Problem::Syntax(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
            }
        }
    }

    /// Decodes the escape after a backslash into `utf8`; returns its length (0 for a `\u`
    /// escape of an ignored string, which is only checked).
    fn escape(&mut self, utf8: &mut [u8; 4], strict: bool) -> Result<usize, Invalid> {
        let Some(&c) = self.body.get(self.pos) else { return self.fail(Problem::Eof("a string")) };
        self.pos += 1;
        let byte = match c {
            b'"' | b'\\' | b'/' => c,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' if !strict => return self.hex4().map(|_| 0),
            b'u' => {
                let code = self.code_point()?;
                let Some(ch) = char::from_u32(code) else {
                    return self.fail(Problem::Syntax("invalid unicode code point"));
                };
                return Ok(ch.encode_utf8(utf8).len());
            }
            _ => return self.fail(Problem::Syntax("invalid escape")),
        };
        utf8[0] = byte;
        Ok(1)
    }

    /// The code point of a `\u` escape (after the `u`), joining a surrogate pair.
    fn code_point(&mut self) -> Result<u32, Invalid> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.body.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return self.fail(Problem::Syntax("lone leading surrogate in hex escape"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return self.fail(Problem::Syntax("lone leading surrogate in hex escape"));
                }
                Ok(0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(low) - 0xDC00))
            }
            0xDC00..=0xDFFF => self.fail(Problem::Syntax("lone trailing surrogate in hex escape")),
            other => Ok(u32::from(other)),
        }
    }

    fn hex4(&mut self) -> Result<u16, Invalid> {
        let mut value = 0u16;
        for _ in 0..4 {
            let Some(&b) = self.body.get(self.pos) else { return self.fail(Problem::Eof("a string")) };
            let Some(digit) = (b as char).to_digit(16) else {
                return self.fail(Problem::Syntax("invalid escape"));
            };
            value = value * 16 + digit as u16;
            self.pos += 1;
        }
        Ok(value)
    }

    /// Reads a number (RFC 8259 grammar) at its first byte.
    fn number(&mut self) -> Result<Number, Invalid> {
        let negative = self.body.get(self.pos) == Some(&b'-');
        if negative {
            self.pos += 1;
        }
        let mut value = 0u64;
        let mut overflow = false;
        match self.body.get(self.pos) {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.body.get(self.pos) {
                    return self.fail(Problem::Syntax("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&d @ b'0'..=b'9') = self.body.get(self.pos) {
                    match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))) {
                        Some(v) => value = v,
                        None => overflow = true,
                    }
                    self.pos += 1;
                }
            }
            None => return self.fail(Problem::Eof("a value")),
            Some(_) => return self.fail(Problem::Syntax("invalid number")),
        }
        // serde_json reads integers beyond u64, and -0, as floating point.
        let mut float = overflow || (negative && value == 0);
        if self.body.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.digits()?;
            float = true;
        }
        if let Some(b'e' | b'E') = self.body.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.body.get(self.pos) {
                self.pos += 1;
            }
            self.digits()?;
            float = true;
        }
        Ok(if float { Number::Float } else { Number::Integer { negative, value } })
    }

    /// One or more digits.
    fn digits(&mut self) -> Result<(), Invalid> {
        match self.body.get(self.pos) {
            Some(b'0'..=b'9') => {}
            None => return self.fail(Problem::Eof("a value")),
            Some(_) => return self.fail(Problem::Syntax("invalid number")),
        }
        while let Some(b'0'..=b'9') = self.body.get(self.pos) {
            self.pos += 1;
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        for &expected in word {
            match self.body.get(self.pos) {
                Some(&b) if b == expected => self.pos += 1,
                None => return self.fail(Problem::Eof("a value")),
                Some(_) => return self.fail(Problem::Syntax("expected ident")),
            }
        }
        Ok(())
    }

    /// Skips one value of any shape, without recursion: the open containers are a stack of
    /// bytes (`[` or `{`) in request memory.
    fn skip_value(&mut self) -> Result<(), Invalid> {
        let mut open: Vec<u8, A> = Vec::new_in(self.alloc);
        loop {
            // A value starts here.
            let complete = match self.peek() {
                None => return self.fail(Problem::Eof("a value")),
                Some(b'"') => self.skip_string().map(|()| true)?,
                Some(b'-' | b'0'..=b'9') => self.number().map(|_| true)?,
                Some(b't') => self.literal(b"true").map(|()| true)?,
                Some(b'f') => self.literal(b"false").map(|()| true)?,
                Some(b'n') => self.literal(b"null").map(|()| true)?,
                Some(bracket @ (b'[' | b'{')) => {
                    self.pos += 1;
                    let close = if bracket == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        true
                    } else {
                        if open.try_reserve(1).is_err() {
                            return self.fail(Problem::Refused(Refusal::OutOfMemory));
                        }
                        open.push(bracket);
                        if bracket == b'{' {
                            self.key(&[])?;
                        }
                        false
                    }
                }
                Some(_) => return self.fail(Problem::Syntax("expected value")),
            };
            if !complete {
                continue;
            }
            // After a value: close containers until one continues, or the value is done.
            loop {
                let Some(&bracket) = open.last() else { return Ok(()) };
                match (self.peek(), bracket) {
                    (Some(b','), b'[') => {
                        self.pos += 1;
                        break;
                    }
                    (Some(b','), _) => {
                        self.pos += 1;
                        self.key(&[])?;
                        break;
                    }
                    (Some(b']'), b'[') | (Some(b'}'), b'{') => {
                        self.pos += 1;
                        open.pop();
                    }
                    (None, b'[') => return self.fail(Problem::Eof("a list")),
                    (None, _) => return self.fail(Problem::Eof("an object")),
                    (Some(_), b'[') => return self.fail(Problem::Syntax("expected `,` or `]`")),
                    (Some(_), _) => return self.fail(Problem::Syntax("expected `,` or `}`")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::alloc::Global;

    fn checked(body: &str) -> Result<(), String> {
        check(body.as_bytes(), Global, &Limits::new(3)).map_err(|invalid| invalid.to_string())
    }

    #[test]
    fn good_batches_pass() {
        checked(r#"{"user":"a","events":[]}"#).unwrap();
        checked(r#" {"events":[{"ms":0,"path":"/","kind":"k","tags":["x","y"],"extra":{"a":[1,{"b":null}]}}],"user":"u\u00e9\n"} "#).unwrap();
        checked(r#"{"us\u0065r":"a","events":[],"other":[true,false,-1.5e3,"s\"q"]}"#).unwrap();
    }

    #[test]
    fn problems_are_found_in_serde_jsons_words() {
        for (body, needle) in [
            ("", "EOF while parsing a value at line 1 column 1"),
            ("not json", "expected ident at line 1 column 2"),
            ("?", "expected value at line 1 column 1"),
            (r#"{"user":"a","events":[]} x"#, "trailing characters"),
            (r#"{"user":5,"events":[]}"#, "invalid type: integer, expected a string for `user`"),
            (r#"{"user":"a","events":{}}"#, "invalid type: map, expected an array of events"),
            (r#"{"user":"a","events":[{"kind":"a","path":"/","ms":1.5}]}"#, "invalid type: floating point"),
            (r#"{"user":"a","events":[{"kind":"a","path":"/","ms":4294967296}]}"#, "invalid value"),
            (r#"{"user":"a","events":[{"kind":"a","ms":1}]}"#, "missing field `path`"),
            (r#"{"user":"a","user":"b","events":[]}"#, "duplicate field `user`"),
            (r#"{"user":"\ud800","events":[]}"#, "lone leading surrogate"),
            ("{\"user\":\"a\nb\",\"events\":[]}", "control character"),
            (r#"{"user":"a","events":[],"x":[1,2}"#, "expected `,` or `]`"),
            ("{\"user\":\"a\",\n\"events\":[", "EOF while parsing a value at line 2 column 11"),
            (r#"{"user":"","events":[]}"#, "`user` must not be empty"),
        ] {
            let error = checked(body).unwrap_err();
            assert!(error.contains(needle), "{body:?}: {error:?} lacks {needle:?}");
        }
        let tags: std::vec::Vec<String> = (0..33).map(|i| format!("\"t{i}\"")).collect();
        let many_tags = format!(
            r#"{{"user":"a","events":[{{"kind":"a","path":"/","ms":1,"tags":[{}]}}]}}"#,
            tags.join(",")
        );
        assert!(checked(&many_tags).unwrap_err().contains("too many tags"));
        let event = r#"{"kind":"k","path":"/","ms":1}"#;
        let four = format!(r#"{{"user":"a","events":[{event},{event},{event},{event}]}}"#);
        assert!(checked(&four).unwrap_err().contains("too many events"));
        let long_user = format!(r#"{{"user":"{}","events":[]}}"#, "x".repeat(129));
        assert!(checked(&long_user).unwrap_err().contains("longer than 128"));
    }

    #[test]
    fn syntax_errors_read_as_serde_jsons() {
        let ignored = |tail: &str| format!(r#"{{"user":"a","events":[],"x":{tail}"#);
        let mut bodies: std::vec::Vec<String> =
            ["", "not json", "?", r#"{"user":"a","events":[]} x"#].map(String::from).into();
        for tail in
            ["\"a\nb\"}", r#""\q"}"#, "\n[1,2}", "tru}", "01}", "[1,", r#""abc"#, r#"{"k" 1}}"#, "{1:2}}"]
        {
            bodies.push(ignored(tail));
        }
        for body in &bodies {
            // The wording; positions differ by a byte at times (serde_json counts what it
            // consumed, this pass points at the offending byte).
            let what = |message: String| message.split(" at line").next().unwrap().to_string();
            let ours = check(body.as_bytes(), Global, &Limits::new(3)).unwrap_err().to_string();
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(body)
                .map_err(|e| e.to_string())
                .expect_err(&format!("serde_json takes {body:?}"));
            assert_eq!(what(ours), what(serde), "{body:?}");
        }
    }

    /// The pass and serde_json agree on what is a batch: this pass never refuses what
    /// serde_json would parse, and finds (without the heap) what serde_json would refuse.
    #[test]
    fn accepts_exactly_what_serde_json_parses() {
        let limits = Limits::new(3);
        let bodies: &[&[u8]] = &[
            br#"{"user":"a","events":[]}"#,
            br#"{"user":"a","events":[],"x":"\ud800"}"#,
            b"{\"user\":\"a\",\"events\":[],\"x\":\"\xff\xfe\"}",
            b"{\"user\":\"\xff\",\"events\":[]}",
            br#"{"user":"\ud83d\ude00","events":[]}"#,
            br#"{"user":"\ude00","events":[]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":-0}]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":1.0}]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":18446744073709551616}]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":1,"tags":null}]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":1,"kind":"j"}]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":1,"x":[{},[],{"a":{}}]}]}"#,
            br#"{"user":"a","events":[],}"#,
            br#"{"user":"a","events":[1,]}"#,
            br#"{"user":"a","events":[],"x":[1 2]}"#,
            br#"{"user":"a","events":[],"x":{"a" 1}}"#,
            br#"{"user":"a","events":[],"x":-}"#,
            br#"{"user":"a","events":[],"x":1.}"#,
            br#"{"user":"a","events":[],"x":1e}"#,
            br#"{"user":"a","events":[],"x":nulll}"#,
            br#"{"\u0075ser":"a","events":[]}"#,
            br#"{"user":"a","events":[]}   "#,
            br#"  {"user":"a","events":[]} {}"#,
            b"{\"user\":\"a\",\"events\":[],\"x\":\"\t\"}",
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":4294967295}]}"#,
            br#"{"user":"a","events":[{"kind":"k","path":"/","ms":4294967296}]}"#,
            br#"[]"#,
            br#"{"user":null,"events":[]}"#,
        ];
        for body in bodies {
            let ours = check(body, Global, &limits).is_ok();
            let serde = crate::workload::parse(body, Global, &limits).is_ok();
            assert_eq!(ours, serde, "{:?}", String::from_utf8_lossy(body));
        }
    }

    proptest::proptest! {
        /// Random edits of a valid batch: the pass and serde_json reach the same verdict.
        #[test]
        fn agrees_with_serde_json_on_edited_batches(
            edits in proptest::collection::vec((0usize..200, 0usize..3, proptest::sample::select(
                br#"{}[]",:0123456789-.eE+tfnrulsaxk\/ "#.to_vec()
            )), 1..4)
        ) {
            let mut body = br#"{"user":"ada","events":[{"kind":"k","path":"/a","ms":12,"tags":["t\n","u"],"x":{"y":[1.5,null,true]}},{"ms":0,"path":"","kind":"\u00e9"}],"z":-3e2}"#.to_vec();
            for (at, op, byte) in edits {
                let at = at % (body.len() + 1);
                match op {
                    0 => body.insert(at, byte),
                    1 if at < body.len() => { body.remove(at); }
                    _ if at < body.len() => body[at] = byte,
                    _ => body.push(byte),
                }
            }
            let limits = Limits::new(3);
            let ours = check(&body, Global, &limits);
            let serde = crate::workload::parse(&body, Global, &limits).map(|_| ()).map_err(|(_, e)| e.to_string());
            proptest::prop_assert_eq!(ours.is_ok(), serde.is_ok(), "{:?}: {:?} vs {:?}", String::from_utf8_lossy(&body), ours, serde);
        }
    }

    #[test]
    fn deep_nesting_in_ignored_fields_needs_no_recursion() {
        let deep =
            format!(r#"{{"user":"u","events":[],"x":{}{}}}"#, "[".repeat(200_000), "]".repeat(200_000));
        checked(&deep).unwrap();
        let unbalanced =
            format!(r#"{{"user":"u","events":[],"x":{}{}}}"#, "[{\"a\":".repeat(1000), "]".repeat(1000));
        assert!(checked(&unbalanced).is_err());
    }
}
