//! The chunk source: a few large regions reserved up front, handing out fixed-size chunks.
//!
//! **What it is for.** Every allocator in this crate gets its memory as chunks (64 KiB by
//! default, a power of two, each aligned to its size: regions are reserved aligned) or as
//! *spans* of several contiguous chunks for large allocations. Reserving address space up
//! front and committing it lazily keeps system calls off the allocation path; keeping a
//! bounded number of idle chunks committed lets a busy service reuse warm memory;
//! decommitting idle chunks above the retention cap (`madvise(MADV_DONTNEED)`) makes RSS
//! really go down when load drops.
//!
//! **Policy.** `take` prefers the lowest-addressed idle chunk (warm, no page faults), then
//! the lowest free chunk (decommitted or never used), committing the region's frontier in
//! steps; a new region is reserved only when every region is full, up to
//! [`ChunkConfig::max_regions`]. Spans are found first-fit by address. Lowest-address-first
//! keeps the used part of each region dense, as jemalloc does for its extents.
//!
//! **What it cannot do.** Chunks are fixed size; a span cannot exceed one region; there is
//! no per-thread cache (a chunk is a coarse unit; callers keep their own chunk across
//! requests so that the lock is off their fast path).
//!
//! **Threads.** A `ChunkSource` is shared (`Arc`) and thread safe: one mutex guards the
//! bitmaps. A chunk may be given back from any thread, which is what lets an escaping arena
//! allocation release its chunk wherever its last handle drops.
//!
//! **Complexity.** `take`, `give_back`: O(regions × chunks/64) word scans in the worst case,
//! O(1) typical. Spans: a first-fit run search over the same bitmaps.
//!
//! **Debug support.** With the `guard` feature the last page of every chunk is a guard
//! page (`PROT_NONE`): a write past a chunk's usable end faults at once. Interior guard
//! pages of a span are opened when the span is formed and closed again when it is returned.

use core::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::os::{self, OsError};
use crate::source::region::{Region, RegionBitmaps};

/// Configuration of a [`ChunkSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Bytes per chunk: a power of two, at least two pages. Default 64 KiB.
    pub chunk_size: usize,
    /// Bytes per region: a multiple of `chunk_size`. Default 256 MiB.
    pub region_size: usize,
    /// Regions reserved when the source is created. Default 1.
    pub initial_regions: usize,
    /// Most regions this source may ever reserve; beyond it `take` fails. Default 16.
    pub max_regions: usize,
    /// Idle chunks kept committed, in bytes; idle chunks above it are decommitted.
    /// Default 4 MiB.
    pub retain_idle_bytes: usize,
    /// The frontier of a region is committed this many bytes at a time. Default 1 MiB.
    pub commit_step: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            chunk_size: 64 * 1024,
            region_size: 256 * 1024 * 1024,
            initial_regions: 1,
            max_regions: 16,
            retain_idle_bytes: 4 * 1024 * 1024,
            commit_step: 1024 * 1024,
        }
    }
}

impl ChunkConfig {
    fn validate(&self) -> Result<(), ChunkError> {
        let page = os::page_size();
        let invalid = |why: String| Err(ChunkError::InvalidConfig(why));
        if !self.chunk_size.is_power_of_two() || self.chunk_size < 2 * page {
            return invalid(format!(
                "chunk_size {} must be a power of two of at least {} bytes",
                self.chunk_size,
                2 * page
            ));
        }
        if self.region_size == 0 || !self.region_size.is_multiple_of(self.chunk_size) {
            return invalid(format!(
                "region_size {} must be a non-zero multiple of chunk_size {}",
                self.region_size, self.chunk_size
            ));
        }
        if self.max_regions == 0 || self.initial_regions > self.max_regions {
            return invalid(format!(
                "need 0 < max_regions ({}) and initial_regions ({}) <= max_regions",
                self.max_regions, self.initial_regions
            ));
        }
        Ok(())
    }

    fn guard_bytes(&self) -> usize {
        if cfg!(feature = "guard") { os::page_size() } else { 0 }
    }
}

/// Why a chunk could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The configuration is inconsistent.
    #[error("invalid chunk source configuration: {0}")]
    InvalidConfig(String),
    /// Every region is full and no more may be reserved.
    #[error("chunk source exhausted: {requested} bytes requested, {reserved} bytes reserved and in use")]
    Exhausted {
        /// Bytes asked for.
        requested: usize,
        /// Bytes reserved by the source.
        reserved: usize,
    },
    /// A span larger than one region was asked for.
    #[error("span of {requested} bytes exceeds the region size of {region_size} bytes")]
    TooLarge {
        /// Bytes asked for.
        requested: usize,
        /// The configured region size.
        region_size: usize,
    },
    /// The operating system refused a reservation or a commit.
    #[error(transparent)]
    Os(#[from] OsError),
}

/// One chunk, or a span of contiguous chunks, handed out by a [`ChunkSource`].
///
/// A `Chunk` is an owned token: give it back with [`ChunkSource::give_back`]. Dropping it
/// without giving it back leaks the chunk (it stays counted as in use).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a chunk that is not given back stays in use"]
pub struct Chunk {
    ptr: NonNull<u8>,
    usable: usize,
}

// SAFETY: a Chunk is an exclusive token for a range of memory; moving it between threads
// moves that exclusivity with it.
unsafe impl Send for Chunk {}

impl Chunk {
    /// The start of the chunk (aligned to the chunk size).
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Usable bytes: the chunk (or span) less its guard page, if any.
    pub fn len(&self) -> usize {
        self.usable
    }

    /// Always false: a chunk has at least one usable page.
    pub fn is_empty(&self) -> bool {
        self.usable == 0
    }

    /// Rebuilds a token from [`Chunk::into_raw`]'s parts.
    ///
    /// # Safety
    /// `ptr` and `usable` must come from `into_raw` of a chunk that has not been rebuilt
    /// since.
    pub unsafe fn from_raw(ptr: NonNull<u8>, usable: usize) -> Self {
        Self { ptr, usable }
    }

    /// Gives up the token, returning its start and usable length.
    pub fn into_raw(self) -> (NonNull<u8>, usize) {
        (self.ptr, self.usable)
    }
}

/// A snapshot of a [`ChunkSource`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// The chunk size in bytes.
    pub chunk_size: usize,
    /// Address space reserved, in bytes.
    pub reserved_bytes: usize,
    /// Bytes of chunks that are in use or idle (their pages may be resident).
    pub committed_bytes: usize,
    /// Chunks handed out and not pinned.
    pub chunks_in_use: usize,
    /// Chunks committed and waiting for reuse.
    pub chunks_idle: usize,
    /// Chunks retired by an arena but kept alive by escaping allocations.
    ///
    /// Only arenas pin chunks: pinning is not part of the public API, so no caller can
    /// drive the counts out of step (`chunks_in_use` is in-use minus pinned).
    ///
    /// ```compile_fail,E0624
    /// let source = allockit::ChunkSource::global();
    /// source.pin(1); // private: only the arena pins the chunks it retires
    /// ```
    ///
    /// ```compile_fail,E0624
    /// let source = allockit::ChunkSource::global();
    /// let chunk = source.take().unwrap();
    /// source.give_back_pinned(chunk); // private: only an escaping handle's last drop
    /// ```
    pub chunks_pinned: usize,
    /// Regions reserved.
    pub regions: usize,
    /// Chunks handed out, ever (a span counts each of its chunks).
    pub takes: u64,
    /// Chunks given back, ever.
    pub give_backs: u64,
    /// Chunks decommitted, ever.
    pub decommits: u64,
}

#[derive(Debug)]
struct State {
    regions: Vec<Region>,
    /// Bitmaps for the regions that may still be reserved (see [`RegionBitmaps`]).
    spare_bitmaps: Vec<RegionBitmaps>,
    in_use: usize,
    idle: usize,
    pinned: usize,
    takes: u64,
    give_backs: u64,
    decommits: u64,
}

/// Fixed-size chunks from a few large regions reserved up front. See the module docs.
#[derive(Debug)]
pub struct ChunkSource {
    config: ChunkConfig,
    state: Mutex<State>,
}

impl ChunkSource {
    /// Creates a source and reserves `config.initial_regions` regions.
    pub fn new(config: ChunkConfig) -> Result<Arc<Self>, ChunkError> {
        config.validate()?;
        let chunks = config.region_size / config.chunk_size;
        let mut spare_bitmaps: Vec<RegionBitmaps> =
            (0..config.max_regions).map(|_| RegionBitmaps::new(chunks)).collect();
        let mut regions = Vec::with_capacity(config.max_regions);
        for _ in 0..config.initial_regions {
            let bitmaps = spare_bitmaps.pop().expect("one spare per possible region");
            regions.push(Region::reserve(config.chunk_size, bitmaps).map_err(|(error, _)| error)?);
        }
        Ok(Arc::new(Self {
            config,
            state: Mutex::new(State {
                regions,
                spare_bitmaps,
                in_use: 0,
                idle: 0,
                pinned: 0,
                takes: 0,
                give_backs: 0,
                decommits: 0,
            }),
        }))
    }

    /// The process-wide default source (default configuration), created on first use.
    ///
    /// If its first region cannot be reserved, the source starts with none and tries
    /// again on each `take`, so callers see the failure as an allocation error.
    pub fn global() -> &'static Arc<ChunkSource> {
        static GLOBAL: OnceLock<Arc<ChunkSource>> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            ChunkSource::new(ChunkConfig::default()).unwrap_or_else(|_| {
                ChunkSource::new(ChunkConfig { initial_regions: 0, ..ChunkConfig::default() })
                    .expect("the default configuration is valid and reserves nothing")
            })
        })
    }

    /// The configuration this source was created with.
    pub fn config(&self) -> &ChunkConfig {
        &self.config
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        self.config.chunk_size
    }

    /// Usable bytes of a single chunk (the chunk less its guard page, if any).
    pub fn usable_chunk_size(&self) -> usize {
        self.config.chunk_size - self.config.guard_bytes()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the bitmaps half-updated in a way
        // that matters more than refusing all further service, so recover the guard.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one chunk.
    pub fn take(&self) -> Result<Chunk, ChunkError> {
        self.take_chunks(1)
    }

    /// Takes a span of contiguous chunks with at least `min_usable` usable bytes.
    pub fn take_span(&self, min_usable: usize) -> Result<Chunk, ChunkError> {
        let bytes = min_usable
            .checked_add(self.config.guard_bytes())
            .ok_or(ChunkError::TooLarge { requested: min_usable, region_size: self.config.region_size })?;
        let count = bytes.div_ceil(self.config.chunk_size).max(1);
        if count > self.config.region_size / self.config.chunk_size {
            return Err(ChunkError::TooLarge { requested: min_usable, region_size: self.config.region_size });
        }
        self.take_chunks(count)
    }

    fn take_chunks(&self, count: usize) -> Result<Chunk, ChunkError> {
        let mut state = self.lock();
        let (region_index, first) = match self.find(&state, count) {
            Some(found) => found,
            None => {
                let Some(bitmaps) = state.spare_bitmaps.pop() else {
                    return Err(ChunkError::Exhausted {
                        requested: count * self.config.chunk_size,
                        reserved: state.regions.len() * self.config.region_size,
                    });
                };
                let region = match Region::reserve(self.config.chunk_size, bitmaps) {
                    Ok(region) => region,
                    Err((error, bitmaps)) => {
                        state.spare_bitmaps.push(bitmaps);
                        return Err(error.into());
                    }
                };
                state.regions.push(region);
                (state.regions.len() - 1, 0)
            }
        };
        let guard = self.config.guard_bytes();
        let step = (self.config.commit_step / self.config.chunk_size).max(1);
        let chunk_size = self.config.chunk_size;
        let State { regions, in_use, idle, takes, .. } = &mut *state;
        let region = &mut regions[region_index];
        region.commit_through(first + count, step, |chunk| {
            if guard == 0 {
                return Ok(());
            }
            // SAFETY: the last page of a freshly committed chunk belongs to that chunk and
            // holds nothing.
            unsafe { os::protect(chunk.add(chunk_size - guard), guard) }
        })?;
        for index in first..first + count {
            if region.resident.get(index) {
                *idle -= 1;
            }
        }
        region.free.set_range(first, count, false);
        region.resident.set_range(first, count, true);
        *in_use += count;
        *takes += count as u64;
        let ptr = region.chunk_ptr(first);
        if guard != 0 {
            // Open the interior guard pages so that the span is contiguous.
            for index in first..first + count - 1 {
                let page = region.chunk_ptr(index);
                // SAFETY: the guard page belongs to a chunk of this span, which we own now.
                unsafe { os::commit(page.add(chunk_size - guard), guard)? };
            }
        }
        let usable = count * chunk_size - guard;
        // SAFETY: the chunk now belongs to the caller.
        unsafe { crate::guard::make_addressable(ptr.as_ptr(), usable) };
        Ok(Chunk { ptr, usable })
    }

    /// Where to take `count` chunks from: a resident idle chunk first (for single chunks),
    /// else the lowest free run in any region.
    fn find(&self, state: &State, count: usize) -> Option<(usize, usize)> {
        if count == 1 && state.idle > 0 {
            let warm = state
                .regions
                .iter()
                .enumerate()
                .find_map(|(r, region)| region.free.first_common(&region.resident).map(|i| (r, i)));
            if warm.is_some() {
                return warm;
            }
        }
        state.regions.iter().enumerate().find_map(|(r, region)| {
            if count == 1 { region.free.first_set() } else { region.free.first_run(count) }.map(|i| (r, i))
        })
    }

    /// Gives a chunk or span back. It becomes idle; idle chunks above the retention cap are
    /// decommitted so that their memory leaves the process's RSS.
    ///
    /// # Panics
    /// If the chunk was not handed out by this source (a programming error).
    pub fn give_back(&self, chunk: Chunk) {
        let mut state = self.lock();
        self.give_back_locked(&mut state, chunk);
        self.trim_locked(&mut state, self.config.retain_idle_bytes);
    }

    fn give_back_locked(&self, state: &mut State, chunk: Chunk) {
        // SAFETY: the chunk is back with the source: nobody may touch it until taken again.
        unsafe { crate::guard::make_unaddressable(chunk.ptr.as_ptr(), chunk.usable) };
        let guard = self.config.guard_bytes();
        let chunk_size = self.config.chunk_size;
        let count = (chunk.usable + guard) / chunk_size;
        let (region, first) = state
            .regions
            .iter_mut()
            .find_map(|region| region.index_of(chunk.ptr).map(|i| (region, i)))
            .expect("chunk given back to a source that did not hand it out");
        assert!(
            first + count <= region.chunks() && (first..first + count).all(|i| !region.free.get(i)),
            "chunk given back twice or with a wrong length"
        );
        if guard != 0 {
            for index in first..first + count - 1 {
                let page = region.chunk_ptr(index);
                // SAFETY: the span is being returned; its interior guard pages become
                // guard pages again. A failure leaves a page open, which weakens the guard
                // but breaks nothing.
                let _ = unsafe { os::protect(page.add(chunk_size - guard), guard) };
            }
        }
        region.free.set_range(first, count, true);
        state.in_use -= count;
        state.idle += count;
        state.give_backs += count as u64;
    }

    /// Decommits idle chunks, highest address first, until at most `keep_bytes` of idle
    /// chunks stay committed. Returns the number of chunks decommitted.
    pub fn trim(&self, keep_bytes: usize) -> usize {
        let mut state = self.lock();
        self.trim_locked(&mut state, keep_bytes)
    }

    fn trim_locked(&self, state: &mut State, keep_bytes: usize) -> usize {
        let keep = keep_bytes / self.config.chunk_size;
        let usable = self.usable_chunk_size();
        let mut decommitted = 0;
        while state.idle > keep {
            let Some((region, index)) = state
                .regions
                .iter_mut()
                .rev()
                .find_map(|region| region.free.last_common(&region.resident).map(|i| (region, i)))
            else {
                break;
            };
            let ptr = region.chunk_ptr(index);
            // SAFETY: the chunk is idle (free and resident): nobody holds it, and its
            // contents are dead.
            if unsafe { os::decommit(ptr, usable) }.is_err() {
                break;
            }
            region.resident.set(index, false);
            state.idle -= 1;
            state.decommits += 1;
            decommitted += 1;
        }
        decommitted
    }

    /// Counts a chunk as pinned: retired by its arena but kept alive by escaping
    /// allocations. It stays in use until [`ChunkSource::give_back_pinned`].
    ///
    /// Crate-private: `pinned` counts chunks that are also in `in_use`, and only the arena
    /// knows when that holds (it pins a chunk it holds, and its last escaping handle gives
    /// that chunk back through `give_back_pinned` exactly once). Called out of order from
    /// outside, `in_use - pinned` would underflow.
    pub(crate) fn pin(&self, chunks: usize) {
        let mut state = self.lock();
        state.pinned += chunks;
    }

    /// Gives back a chunk that was counted by [`ChunkSource::pin`].
    pub(crate) fn give_back_pinned(&self, chunk: Chunk) {
        let chunks = (chunk.usable + self.config.guard_bytes()) / self.config.chunk_size;
        let mut state = self.lock();
        state.pinned -= chunks;
        self.give_back_locked(&mut state, chunk);
        self.trim_locked(&mut state, self.config.retain_idle_bytes);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ChunkStats {
        let state = self.lock();
        ChunkStats {
            chunk_size: self.config.chunk_size,
            reserved_bytes: state.regions.iter().map(Region::len).sum(),
            committed_bytes: (state.in_use + state.idle) * self.config.chunk_size,
            chunks_in_use: state.in_use - state.pinned,
            chunks_idle: state.idle,
            chunks_pinned: state.pinned,
            regions: state.regions.len(),
            takes: state.takes,
            give_backs: state.give_backs,
            decommits: state.decommits,
        }
    }

    /// Bytes whose pages have been committed at some point (the regions' frontiers).
    pub fn frontier_bytes(&self) -> usize {
        self.lock().regions.iter().map(Region::committed_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_source(retain_chunks: usize) -> Arc<ChunkSource> {
        ChunkSource::new(ChunkConfig {
            chunk_size: 64 * 1024,
            region_size: 64 * 64 * 1024,
            initial_regions: 1,
            max_regions: 2,
            retain_idle_bytes: retain_chunks * 64 * 1024,
            commit_step: 256 * 1024,
        })
        .unwrap()
    }

    #[test]
    fn chunks_are_aligned_distinct_and_writable() {
        let source = small_source(4);
        let chunks: Vec<Chunk> = (0..10).map(|_| source.take().unwrap()).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.as_ptr().as_ptr().addr() % source.chunk_size(), 0);
            // SAFETY: the chunk is ours and `len` bytes are usable.
            unsafe { chunk.as_ptr().as_ptr().write_bytes(i as u8, chunk.len()) };
        }
        let mut starts: Vec<usize> = chunks.iter().map(|c| c.as_ptr().as_ptr().addr()).collect();
        starts.dedup();
        assert_eq!(starts.len(), 10);
        assert_eq!(source.stats().chunks_in_use, 10);
        for chunk in chunks {
            source.give_back(chunk);
        }
        let stats = source.stats();
        assert_eq!(stats.chunks_in_use, 0);
        assert_eq!(stats.chunks_idle, 4);
        assert_eq!(stats.decommits, 6);
    }

    #[test]
    fn chunks_are_aligned_to_their_size_whatever_the_kernel_aligns_the_region_to() {
        // Found under valgrind, whose mmap aligns to a page only. The kernel aligns a
        // mapping to 2 MiB only when its length is a multiple of 2 MiB; a region of 17
        // chunks is not, so each source below lands on an arbitrary page unless the source
        // aligns its regions itself (eight sources: a 1 in 16^8 chance of passing by luck).
        let sources: Vec<Arc<ChunkSource>> = (0..8)
            .map(|_| {
                ChunkSource::new(ChunkConfig {
                    chunk_size: 64 * 1024,
                    region_size: 17 * 64 * 1024,
                    initial_regions: 1,
                    max_regions: 1,
                    retain_idle_bytes: 0,
                    commit_step: 64 * 1024,
                })
                .unwrap()
            })
            .collect();
        for source in &sources {
            let chunk = source.take().unwrap();
            assert_eq!(chunk.as_ptr().as_ptr().addr() % source.chunk_size(), 0, "{chunk:?}");
            source.give_back(chunk);
        }
    }

    #[test]
    fn idle_chunks_are_reused_before_fresh_ones() {
        let source = small_source(8);
        let first = source.take().unwrap();
        let addr = first.as_ptr();
        let second = source.take().unwrap();
        source.give_back(first);
        let again = source.take().unwrap();
        assert_eq!(again.as_ptr(), addr);
        source.give_back(again);
        source.give_back(second);
    }

    #[test]
    fn spans_are_contiguous_and_reuse_freed_runs() {
        let source = small_source(64);
        let span = source.take_span(200 * 1024).unwrap();
        assert!(span.len() >= 200 * 1024);
        // SAFETY: the whole span is ours.
        unsafe { span.as_ptr().as_ptr().write_bytes(7, span.len()) };
        let addr = span.as_ptr();
        assert_eq!(source.stats().chunks_in_use, 4);
        source.give_back(span);
        let again = source.take_span(200 * 1024).unwrap();
        assert_eq!(again.as_ptr(), addr);
        source.give_back(again);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let source = small_source(0);
        let mut held = Vec::new();
        loop {
            match source.take() {
                Ok(chunk) => held.push(chunk),
                Err(ChunkError::Exhausted { .. }) => break,
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert_eq!(held.len(), 128, "two regions of 64 chunks");
        assert_eq!(source.stats().regions, 2);
        assert!(matches!(source.take_span(10 * 1024 * 1024), Err(ChunkError::TooLarge { .. })));
        for chunk in held {
            source.give_back(chunk);
        }
        assert!(source.take().is_ok_and(|c| {
            source.give_back(c);
            true
        }));
    }

    #[test]
    fn invalid_configurations_are_refused_with_a_reason() {
        let bad = ChunkSource::new(ChunkConfig { chunk_size: 3000, ..ChunkConfig::default() });
        assert!(matches!(bad, Err(ChunkError::InvalidConfig(ref why)) if why.contains("chunk_size")));
        let bad = ChunkSource::new(ChunkConfig { region_size: 100_000, ..ChunkConfig::default() });
        assert!(matches!(bad, Err(ChunkError::InvalidConfig(ref why)) if why.contains("region_size")));
    }

    #[test]
    fn a_chunk_can_be_given_back_from_another_thread() {
        let source = small_source(4);
        let chunk = source.take().unwrap();
        let remote = Arc::clone(&source);
        std::thread::spawn(move || remote.give_back(chunk)).join().unwrap();
        assert_eq!(source.stats().chunks_in_use, 0);
        assert_eq!(source.stats().chunks_idle, 1);
    }

    #[test]
    fn pinned_chunks_are_counted_until_given_back() {
        let source = small_source(4);
        let chunk = source.take().unwrap();
        source.pin(1);
        let stats = source.stats();
        assert_eq!((stats.chunks_in_use, stats.chunks_pinned), (0, 1));
        source.give_back_pinned(chunk);
        let stats = source.stats();
        assert_eq!((stats.chunks_in_use, stats.chunks_pinned, stats.chunks_idle), (0, 0, 1));
    }
}
