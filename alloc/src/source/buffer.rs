//! A caller's buffer as a span source: heaps over a fixed buffer, with no system calls.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::{ChunkError, Span, SpanSource};

/// A caller's buffer as a [`SpanSource`]: the whole buffer is handed out once (aligned up
/// to 16 bytes); every later request is [`ChunkError::Exhausted`].
#[derive(Debug)]
pub struct BufferSource<'buf> {
    ptr: NonNull<u8>,
    len: usize,
    taken: Cell<bool>,
    _buffer: PhantomData<&'buf mut [u8]>,
}

// SAFETY: the source stands for an exclusive borrow of the buffer, which may move between
// threads; it is not Sync (the Cell).
unsafe impl Send for BufferSource<'_> {}

impl<'buf> BufferSource<'buf> {
    /// A source that hands out `buffer`.
    pub fn new(buffer: &'buf mut [u8]) -> Self {
        let start = buffer.as_mut_ptr();
        let skip = start.align_offset(16).min(buffer.len());
        let len = buffer.len() - skip;
        // SAFETY: start + skip is inside the buffer (or its end), so not null.
        let ptr = unsafe { NonNull::new_unchecked(start.add(skip)) };
        Self { ptr, len, taken: Cell::new(false), _buffer: PhantomData }
    }
}

// SAFETY: the buffer is borrowed exclusively for 'buf and handed out at most once, aligned
// to 16.
unsafe impl SpanSource for BufferSource<'_> {
    const RECLAIMS: bool = false;
    const JOINS_SPANS: bool = false;

    fn take_span(&self, min_bytes: usize) -> Result<Span, ChunkError> {
        // An empty remainder is refused: its pointer may be the buffer's unaligned end
        // (`new` clamps the skip to the length), and spans are never empty.
        if self.taken.get() || min_bytes > self.len || self.len == 0 {
            return Err(ChunkError::Exhausted { requested: min_bytes, reserved: self.len });
        }
        self.taken.set(true);
        Ok(Span { ptr: self.ptr, len: self.len })
    }

    unsafe fn give_back(&self, _span: Span) {
        // The buffer stays the caller's; there is nothing to return it to.
    }

    fn granule(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_source_hands_out_its_aligned_buffer_once() {
        let mut buffer = [0u8; 1000];
        let source = BufferSource::new(&mut buffer[3..]);
        let span = source.take_span(16).unwrap();
        assert_eq!(span.as_ptr().as_ptr().addr() % 16, 0);
        assert!(span.len() >= 1000 - 3 - 15);
        assert!(matches!(source.take_span(16), Err(ChunkError::Exhausted { .. })));
    }

    #[test]
    fn buffer_source_never_hands_out_an_empty_or_misaligned_span() {
        let mut buffer = [0u8; 64];
        let offset = buffer.as_ptr().align_offset(16);
        for (from, to) in [(0, 0), (offset + 1, offset + 1), (offset + 1, offset + 9)] {
            let source = BufferSource::new(&mut buffer[from..to]);
            assert!(matches!(source.take_span(0), Err(ChunkError::Exhausted { .. })), "{from}..{to}");
        }
        let source = BufferSource::new(&mut []);
        assert!(matches!(source.take_span(0), Err(ChunkError::Exhausted { .. })));
    }
}
