//! A region: one large reservation of address space, cut into equal chunks.
//!
//! A region is reserved once (`PROT_NONE`, no memory) and committed from the bottom up in
//! steps as chunks are first needed (the *frontier*). Two bitmaps describe every chunk:
//!
//! | `free` | `resident` | state |
//! |---|---|---|
//! | 0 | 1 | in use (handed out) |
//! | 1 | 1 | idle: committed, its pages may still be resident, ready for reuse |
//! | 1 | 0 | decommitted (or never touched): costs no memory |
//!
//! The region does no locking; [`crate::source::chunk::ChunkSource`] owns regions behind its lock.
//! Searches go a 64-bit word at a time, so finding a chunk or a run of chunks in a
//! 4096-chunk region touches at most 64 words of each bitmap.

use core::ptr::NonNull;

use crate::os::{self, OsError};

/// A fixed-size bit set, one bit per chunk.
#[derive(Debug)]
pub(crate) struct Bitmap {
    words: Box<[u64]>,
    len: usize,
}

impl Bitmap {
    pub(crate) fn new(len: usize, value: bool) -> Self {
        let fill = if value { u64::MAX } else { 0 };
        let mut bitmap = Self { words: vec![fill; len.div_ceil(64)].into_boxed_slice(), len };
        // Keep bits past `len` clear so word-level searches never report them.
        if value && !len.is_multiple_of(64) {
            let last = bitmap.words.len() - 1;
            bitmap.words[last] = (1u64 << (len % 64)) - 1;
        }
        bitmap
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub(crate) fn set(&mut self, i: usize, value: bool) {
        // Bits past `len` must stay clear: a search would report them as chunks past the
        // region's end (indexing alone only stops at the last word's end).
        assert!(i < self.len, "bit {i} of a {}-bit map", self.len);
        if value {
            self.words[i / 64] |= 1 << (i % 64);
        } else {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }

    pub(crate) fn set_range(&mut self, start: usize, count: usize, value: bool) {
        for i in start..start + count {
            self.set(i, value);
        }
    }

    /// The lowest index set in both `self` and `other`.
    pub(crate) fn first_common(&self, other: &Bitmap) -> Option<usize> {
        self.words.iter().zip(other.words.iter()).enumerate().find_map(|(w, (a, b))| {
            let both = a & b;
            (both != 0).then(|| w * 64 + both.trailing_zeros() as usize)
        })
    }

    /// The highest index set in both `self` and `other`.
    pub(crate) fn last_common(&self, other: &Bitmap) -> Option<usize> {
        self.words.iter().zip(other.words.iter()).enumerate().rev().find_map(|(w, (a, b))| {
            let both = a & b;
            (both != 0).then(|| w * 64 + 63 - both.leading_zeros() as usize)
        })
    }

    /// The lowest set index.
    pub(crate) fn first_set(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .find_map(|(w, word)| (*word != 0).then(|| w * 64 + word.trailing_zeros() as usize))
    }

    /// The lowest start of `count` consecutive set bits (first fit).
    pub(crate) fn first_run(&self, count: usize) -> Option<usize> {
        let mut run_start = 0;
        let mut run_len = 0;
        let mut i = 0;
        while i < self.len {
            let word = self.words[i / 64] >> (i % 64);
            if i % 64 == 0 && word == 0 {
                run_len = 0;
                i += 64;
                continue;
            }
            if i % 64 == 0 && word == u64::MAX && run_len + 64 < count {
                if run_len == 0 {
                    run_start = i;
                }
                run_len += 64;
                i += 64;
                continue;
            }
            if word & 1 != 0 {
                if run_len == 0 {
                    run_start = i;
                }
                run_len += 1;
                if run_len == count {
                    return Some(run_start);
                }
            } else {
                run_len = 0;
            }
            i += 1;
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// One reservation and the state of each of its chunks.
#[derive(Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    chunk_size: usize,
    chunks: usize,
    /// Chunks `[0, frontier)` have been committed (made readable and writable).
    frontier: usize,
    pub(crate) free: Bitmap,
    pub(crate) resident: Bitmap,
}

// SAFETY: a Region is plain bookkeeping about a mapping it owns; the pointer is never
// dereferenced by the Region itself, and the owning ChunkSource serialises all access.
unsafe impl Send for Region {}

/// The two bitmaps of a region not reserved yet: made up front, so that reserving a region
/// later (on some request's path) allocates nothing on the general heap.
#[derive(Debug)]
pub(crate) struct RegionBitmaps {
    free: Bitmap,
    resident: Bitmap,
}

impl RegionBitmaps {
    pub(crate) fn new(chunks: usize) -> Self {
        Self { free: Bitmap::new(chunks, true), resident: Bitmap::new(chunks, false) }
    }
}

impl Region {
    /// Reserves a region of `bitmaps`' chunk count. On failure the bitmaps come back.
    pub(crate) fn reserve(
        chunk_size: usize,
        bitmaps: RegionBitmaps,
    ) -> Result<Self, (OsError, RegionBitmaps)> {
        let chunks = bitmaps.free.len;
        match os::reserve_aligned(chunk_size * chunks, chunk_size) {
            Ok(base) => Ok(Self {
                base,
                chunk_size,
                chunks,
                frontier: 0,
                free: bitmaps.free,
                resident: bitmaps.resident,
            }),
            Err(error) => Err((error, bitmaps)),
        }
    }

    pub(crate) fn chunks(&self) -> usize {
        self.chunks
    }

    pub(crate) fn len(&self) -> usize {
        self.chunk_size * self.chunks
    }

    pub(crate) fn chunk_ptr(&self, index: usize) -> NonNull<u8> {
        assert!(index < self.chunks, "chunk {index} of a {}-chunk region", self.chunks);
        // SAFETY: index < chunks (checked), so the offset stays inside the reservation.
        unsafe { self.base.add(index * self.chunk_size) }
    }

    /// The index of the chunk starting at `ptr`, if `ptr` is a chunk start in this region.
    pub(crate) fn index_of(&self, ptr: NonNull<u8>) -> Option<usize> {
        let offset = ptr.as_ptr().addr().checked_sub(self.base.as_ptr().addr())?;
        (offset < self.len() && offset % self.chunk_size == 0).then(|| offset / self.chunk_size)
    }

    pub(crate) fn committed_bytes(&self) -> usize {
        self.frontier * self.chunk_size
    }

    /// Makes sure chunks `[0, end)` are committed, growing the frontier by at least
    /// `step_chunks` at a time so that commits stay rare.
    ///
    /// `on_new_chunk` runs for each newly committed chunk (guard pages are set there).
    pub(crate) fn commit_through(
        &mut self,
        end: usize,
        step_chunks: usize,
        mut on_new_chunk: impl FnMut(NonNull<u8>) -> Result<(), OsError>,
    ) -> Result<(), OsError> {
        if end <= self.frontier {
            return Ok(());
        }
        let new_frontier = end.max(self.frontier + step_chunks).min(self.chunks);
        let start = self.chunk_ptr(self.frontier);
        let len = (new_frontier - self.frontier) * self.chunk_size;
        // SAFETY: [frontier, new_frontier) lies inside our reservation and is chunk aligned,
        // hence page aligned; nothing lives there yet.
        unsafe { os::commit(start, len)? };
        for index in self.frontier..new_frontier {
            on_new_chunk(self.chunk_ptr(index))?;
        }
        self.frontier = new_frontier;
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly our reservation; the owning ChunkSource is being
        // dropped, and every user of its chunks holds a reference to it, so none is left.
        // Chunks are poisoned for AddressSanitizer only below the frontier; ASan keeps that
        // poison after munmap, so it is lifted first, or whatever is mapped at these
        // addresses next would be reported as a use after poison. A failed munmap only
        // leaks address space, which is all we could do anyway.
        let _ = unsafe {
            crate::guard::make_addressable(self.base.as_ptr(), self.committed_bytes());
            os::release(self.base, self.len())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_finds_the_lowest_run_across_words() {
        let mut map = Bitmap::new(200, false);
        map.set_range(10, 3, true);
        map.set_range(60, 70, true);
        assert_eq!(map.first_run(3), Some(10));
        assert_eq!(map.first_run(4), Some(60));
        assert_eq!(map.first_run(70), Some(60));
        assert_eq!(map.first_run(71), None);
        map.set(199, true);
        assert_eq!(map.first_run(1), Some(10));
    }

    #[test]
    fn bitmap_ignores_bits_past_its_length() {
        let map = Bitmap::new(70, true);
        assert_eq!(map.count_ones(), 70);
        assert_eq!(map.first_run(70), Some(0));
        assert_eq!(map.first_run(71), None);
        let none = Bitmap::new(70, false);
        assert_eq!(map.last_common(&map), Some(69));
        assert_eq!(map.first_common(&none), None);
    }
}
