//! Shared by `benches/heaps.rs` (criterion) and `examples/heaps_race.rs` (the quick
//! ratio table): the workloads as replayable traces, the contenders behind one
//! `GlobalAlloc` interface, the replay loop and the footprint measurements.
//!
//! Every contender replays the *same* pre-generated trace, so random-number generation is
//! outside the timed loop and every heap sees the same requests. The replay writes the
//! first and the last byte of every block it gets (memory that is handed out is used).
//!
//! Heap efficiency is peak live bytes (bytes asked for) / peak footprint, the footprint
//! being sampled every 1024 actions and at the end of a `Start::Fresh` run:
//! * heaps over a buffer (talc, linked_list_allocator, rlsf, allockit's free list): the
//!   extent of the buffer they touched (highest block end − buffer start, in pages);
//! * allockit's size classes: the chunks it holds (`Stats::footprint_bytes`);
//! * allockit-malloc (through its `GlobalAlloc`, `AllocKitMalloc`): growth of the process's
//!   resident set (`/proc/self/statm`): an outside measure, like the buffer extents above;
//!   the harness allocates nothing during a replay (its slot table is sized before the
//!   baseline is read), so the growth is the contender's;
//! * jemalloc: growth of its `stats.resident`, after its caches were flushed and its
//!   arenas purged;
//! * glibc malloc (called as `__libc_malloc`; the harness binaries run on jemalloc as their
//!   global allocator, so glibc's arena serves nobody else): growth of
//!   `mallinfo2().arena + hblkhd`.
//!
//! Allocators keep memory from one run to the next, so `heaps_race` measures footprints in
//! a fresh process per contender and trace.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allockit::freelist::{FreeList, FreeOrder, Placement};
use allockit::heap::Heap;
use allockit::os;
use allockit::sizeclass::SizeClass;
use allockit::source::{ChunkConfig, ChunkSource};

/// SplitMix64: a tiny deterministic generator for the traces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        low + ((self.next_u64() as u128 * (high - low) as u128) >> 64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.range(0, 100) < percent
    }
}

/// One step of a trace. Slots name blocks; a slot whose allocation failed is empty, and
/// later steps on it are skipped.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Alloc { slot: u32, size: u32, align: u32 },
    Free { slot: u32 },
    Realloc { slot: u32, size: u32 },
}

/// A workload, ready to replay.
pub struct Trace {
    pub name: &'static str,
    pub actions: Vec<Action>,
    pub slots: usize,
}

/// Hands out slot numbers, reusing freed ones.
#[derive(Default)]
struct SlotIds {
    free: Vec<u32>,
    next: u32,
}

impl SlotIds {
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

/// Random actions in the style of talc's benchmark: 3/7 allocate, 3/7 free a random live
/// block (allocate instead while fewer than `min_live` are live; talc uses 300), 1/7
/// reallocate a random live block to a random size up to 3 × `max_size`. Sizes are skewed
/// small (uniform below a uniform cap); alignment is 8 three times in four, then 16, 32, …
/// up to 2048.
pub fn random_actions(
    name: &'static str,
    seed: u64,
    count: usize,
    max_size: usize,
    min_live: usize,
) -> Trace {
    let mut rng = Rng::new(seed);
    let mut ids = SlotIds::default();
    let mut live: Vec<u32> = Vec::new();
    let mut actions = Vec::with_capacity(count);
    for _ in 0..count {
        let roll = rng.range(0, 7);
        if roll == 6 && !live.is_empty() {
            let slot = live[rng.range(0, live.len())];
            actions.push(Action::Realloc { slot, size: rng.range(1, 3 * max_size) as u32 });
        } else if roll < 3 || live.len() < min_live {
            let cap = rng.range(16, max_size);
            let size = rng.range(4, cap) as u32;
            let align = 8u32 << ((rng.next_u64() as u16).trailing_zeros() / 2).min(8);
            let slot = ids.take();
            live.push(slot);
            actions.push(Action::Alloc { slot, size, align });
        } else {
            let slot = live.swap_remove(rng.range(0, live.len()));
            ids.free.push(slot);
            actions.push(Action::Free { slot });
        }
    }
    Trace { name, actions, slots: ids.next as usize }
}

const LANES: usize = 4;
const CACHE_ENTRIES: usize = 256;
const SLOTS_PER_REQUEST: usize = 512;

/// A request-like mix: four requests in flight, interleaved in bursts. Each request reads
/// a body into a buffer that doubles as it grows, parses 5–40 events (small strings, a
/// vector of tags each, an event vector that doubles), builds an aggregation table that
/// doubles, a scratch vector, and a response string that doubles; then everything it
/// allocated is freed, newest first. Between requests, three in ten replace a random entry
/// of a 256-entry long-lived cache (200 B – 2 KB): the long-lived objects that fragment a
/// general heap.
pub fn request_mix(seed: u64, requests: usize) -> Trace {
    let mut rng = Rng::new(seed);
    let mut actions = Vec::new();
    let mut cache_live = [false; CACHE_ENTRIES];
    let mut lanes: Vec<std::collections::VecDeque<Action>> = vec![Default::default(); LANES];
    let mut started = 0;
    loop {
        let mut busy = false;
        for (lane, queue) in lanes.iter_mut().enumerate() {
            if queue.is_empty() {
                if started > 0 && rng.chance(30) {
                    let entry = rng.range(0, CACHE_ENTRIES);
                    let slot = entry as u32;
                    if cache_live[entry] {
                        actions.push(Action::Free { slot });
                    }
                    cache_live[entry] = true;
                    actions.push(Action::Alloc { slot, size: rng.range(200, 2000) as u32, align: 8 });
                }
                if started < requests {
                    started += 1;
                    let base = CACHE_ENTRIES + lane * SLOTS_PER_REQUEST;
                    queue.extend(one_request(&mut rng, base as u32));
                }
            }
            let burst = rng.range(1, 13);
            for _ in 0..burst {
                match queue.pop_front() {
                    Some(action) => actions.push(action),
                    None => break,
                }
            }
            busy |= !queue.is_empty();
        }
        if !busy && started == requests {
            break;
        }
    }
    Trace { name: "request-mix", actions, slots: CACHE_ENTRIES + LANES * SLOTS_PER_REQUEST }
}

/// The actions of one request, on slots from `base` on.
fn one_request(rng: &mut Rng, base: u32) -> Vec<Action> {
    struct Request {
        actions: Vec<Action>,
        owned: Vec<u32>,
        base: u32,
    }
    impl Request {
        fn alloc(&mut self, size: usize, align: usize) -> u32 {
            let slot = self.base + self.owned.len() as u32;
            self.owned.push(slot);
            self.actions.push(Action::Alloc { slot, size: size as u32, align: align as u32 });
            slot
        }
        /// A buffer that doubles from `from` until it holds `to` units of `unit` bytes.
        fn grow(&mut self, slot: u32, from: usize, to: usize, unit: usize) {
            let mut capacity = from;
            while capacity < to {
                capacity *= 2;
                self.actions.push(Action::Realloc { slot, size: (capacity * unit) as u32 });
            }
        }
    }
    let mut request = Request { actions: Vec::new(), owned: Vec::new(), base };
    let body_len = rng.range(512, 16 * 1024);
    let body = request.alloc(1024, 1);
    request.grow(body, 1024, body_len, 1);
    request.alloc(8 * 64, 8); // headers
    let events = rng.range(5, 41);
    let event_vec = request.alloc(4 * 80, 8);
    let mut capacity = 4;
    for event in 0..events {
        if event == capacity {
            request.grow(event_vec, capacity, capacity + 1, 80);
            capacity *= 2;
        }
        request.alloc(rng.range(8, 25), 1); // kind
        request.alloc(rng.range(16, 97), 1); // path
        request.alloc(4 * 24, 8); // tags vector
        for _ in 0..rng.range(1, 4) {
            request.alloc(rng.range(4, 17), 1);
        }
    }
    let table = request.alloc(16 * 48 + 32, 16);
    let mut table_slots = 16;
    while table_slots < 2 * events {
        table_slots *= 2;
        request.actions.push(Action::Realloc { slot: table, size: (table_slots * 48 + 32) as u32 });
    }
    let scratch = request.alloc(events * 8, 8);
    request.actions.push(Action::Free { slot: scratch });
    request.owned.pop();
    let response = request.alloc(64, 1);
    request.grow(response, 64, rng.range(512, 4096), 1);
    let Request { mut actions, owned, .. } = request;
    actions.extend(owned.iter().rev().map(|&slot| Action::Free { slot }));
    actions
}

/// A block a replay holds.
#[derive(Clone, Copy)]
pub struct Slot {
    ptr: *mut u8,
    size: u32,
    align: u32,
}

const EMPTY: Slot = Slot { ptr: ptr::null_mut(), size: 0, align: 1 };

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replay {
    pub ops: usize,
    pub failures: usize,
    pub live_bytes: usize,
    pub peak_live_bytes: usize,
    /// The highest block end seen (for heaps over a buffer: how far in they went).
    pub max_end: usize,
    /// The largest footprint the probe reported.
    pub peak_footprint: usize,
}

/// How often (in actions) a footprint probe samples the heap during a replay.
const PROBE_EVERY: usize = 1024;

#[inline(always)]
unsafe fn touch(ptr: *mut u8, from: usize, size: usize) {
    // SAFETY: the caller passes a block of at least `size` bytes.
    unsafe {
        if from < size {
            ptr.add(from).write_volatile(1);
            ptr.add(size - 1).write_volatile(1);
        }
    }
}

/// Replays `trace` on `heap`. `slots` must be empty (all `EMPTY`) and long enough. With
/// `PROBE`, `probe` reads the heap's footprint every `PROBE_EVERY` actions (timed runs
/// use `PROBE = false`, which compiles the sampling away).
///
/// # Safety
/// The blocks left in `slots` belong to `heap`; free them with [`release_all`].
#[inline(never)]
pub unsafe fn replay<A: GlobalAlloc, const PROBE: bool>(
    heap: &A,
    trace: &Trace,
    slots: &mut [Slot],
    probe: &mut impl FnMut(&A, &Replay) -> usize,
) -> Replay {
    let mut outcome = Replay::default();
    for (step, action) in trace.actions.iter().enumerate() {
        if PROBE && step % PROBE_EVERY == 0 {
            outcome.peak_footprint = outcome.peak_footprint.max(probe(heap, &outcome));
        }
        // SAFETY: layouts from the trace are valid (power-of-two alignment, small sizes);
        // every pointer given back to the heap is one it returned for that slot.
        unsafe {
            match *action {
                Action::Alloc { slot, size, align } => {
                    let layout = Layout::from_size_align_unchecked(size as usize, align as usize);
                    let ptr = heap.alloc(layout);
                    if ptr.is_null() {
                        outcome.failures += 1;
                        continue;
                    }
                    touch(ptr, 0, size as usize);
                    outcome.max_end = outcome.max_end.max(ptr.addr() + size as usize);
                    outcome.live_bytes += size as usize;
                    outcome.peak_live_bytes = outcome.peak_live_bytes.max(outcome.live_bytes);
                    slots[slot as usize] = Slot { ptr, size, align };
                }
                Action::Free { slot } => {
                    let block = core::mem::replace(&mut slots[slot as usize], EMPTY);
                    if block.ptr.is_null() {
                        continue;
                    }
                    let layout = Layout::from_size_align_unchecked(block.size as usize, block.align as usize);
                    heap.dealloc(block.ptr, layout);
                    outcome.live_bytes -= block.size as usize;
                }
                Action::Realloc { slot, size } => {
                    let block = slots[slot as usize];
                    if block.ptr.is_null() {
                        continue;
                    }
                    let layout = Layout::from_size_align_unchecked(block.size as usize, block.align as usize);
                    let ptr = heap.realloc(block.ptr, layout, size as usize);
                    if ptr.is_null() {
                        outcome.failures += 1;
                        continue;
                    }
                    touch(ptr, block.size as usize, size as usize);
                    outcome.max_end = outcome.max_end.max(ptr.addr() + size as usize);
                    outcome.live_bytes = outcome.live_bytes + size as usize - block.size as usize;
                    outcome.peak_live_bytes = outcome.peak_live_bytes.max(outcome.live_bytes);
                    slots[slot as usize] = Slot { ptr, size, align: block.align };
                }
            }
        }
        outcome.ops += 1;
    }
    if PROBE {
        outcome.peak_footprint = outcome.peak_footprint.max(probe(heap, &outcome));
    }
    outcome
}

/// Frees every block a replay left in `slots`.
///
/// # Safety
/// The blocks belong to `heap`.
pub unsafe fn release_all<A: GlobalAlloc>(heap: &A, slots: &mut [Slot]) {
    for slot in slots.iter_mut() {
        let block = core::mem::replace(slot, EMPTY);
        if !block.ptr.is_null() {
            // SAFETY: a block `heap` returned with this layout.
            unsafe {
                heap.dealloc(
                    block.ptr,
                    Layout::from_size_align_unchecked(block.size as usize, block.align as usize),
                )
            };
        }
    }
}

/// One run of one contender on one trace.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub elapsed: Duration,
    pub ops: usize,
    pub failures: usize,
    /// The most bytes live at once (bytes asked for).
    pub peak_live_bytes: usize,
    /// The largest footprint sampled (probed runs only; 0 in timed runs).
    pub peak_footprint_bytes: usize,
}

impl Measurement {
    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Bytes of the buffer the buffer-backed heaps run in.
pub const BUFFER_BYTES: usize = 128 << 20;

/// The state shared by all runs: the buffer (committed and touched once, so no heap pays
/// page faults for it), a warm chunk source, the slot table.
pub struct Bench {
    buffer: NonNull<u8>,
    chunks: Arc<ChunkSource>,
    slots: Vec<Slot>,
}

impl Bench {
    pub fn new() -> Self {
        let buffer = os::reserve(BUFFER_BYTES).expect("reserve the bench buffer");
        // SAFETY: our fresh reservation, committed whole and touched page by page.
        unsafe {
            os::commit(buffer, BUFFER_BYTES).expect("commit the bench buffer");
            for page in (0..BUFFER_BYTES).step_by(os::page_size()) {
                buffer.as_ptr().add(page).write_volatile(0xAB);
            }
        }
        let chunks =
            ChunkSource::new(ChunkConfig { retain_idle_bytes: BUFFER_BYTES, ..ChunkConfig::default() })
                .expect("a chunk source");
        Self { buffer, chunks, slots: Vec::new() }
    }

    fn buffer(&mut self) -> &'static mut [u8] {
        // SAFETY: the buffer lives as long as the process (never released) and each run
        // takes it exclusively and gives it up before the next.
        unsafe { core::slice::from_raw_parts_mut(self.buffer.as_ptr(), BUFFER_BYTES) }
    }

    fn extent(&self, replay: &Replay) -> usize {
        replay.max_end.saturating_sub(self.buffer.as_ptr().addr()).next_multiple_of(os::page_size())
    }

    /// Replays `trace` on `heap` and measures it. A `Start::Probed` run samples the heap's
    /// footprint with `footprint` as it goes (and just before the blocks are freed); a
    /// `Start::Timed` run is timed without sampling.
    fn measure<A: GlobalAlloc>(
        &mut self,
        heap: &A,
        trace: &Trace,
        start: Start,
        mut footprint: impl FnMut(&Self, &A, &Replay) -> usize,
    ) -> Measurement {
        self.slots.clear();
        self.slots.resize(trace.slots, EMPTY);
        let mut slots = core::mem::take(&mut self.slots);
        let began = Instant::now();
        // SAFETY: fresh empty slots; the blocks are released below.
        let replay = unsafe {
            match start {
                Start::Timed => replay::<A, false>(heap, trace, &mut slots, &mut |_, _| 0),
                Start::Probed => {
                    replay::<A, true>(heap, trace, &mut slots, &mut |h, r| footprint(self, h, r))
                }
            }
        };
        let elapsed = began.elapsed();
        // SAFETY: the blocks the replay left belong to `heap`.
        unsafe { release_all(heap, &mut slots) };
        self.slots = slots;
        Measurement {
            elapsed,
            ops: replay.ops,
            failures: replay.failures,
            peak_live_bytes: replay.peak_live_bytes,
            peak_footprint_bytes: replay.peak_footprint,
        }
    }
}

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Time only: no sampling inside the replay.
    Timed,
    /// Sample the footprint every 1024 actions (for heap efficiency). For jemalloc and
    /// glibc, whose state outlives a run, this is meant for a fresh process.
    Probed,
}

/// An allocator in the race.
pub struct Contender {
    pub name: &'static str,
    /// Whether it is one of allockit's heaps (the numerator of the ratios).
    pub ours: bool,
    pub run: fn(&mut Bench, &Trace, Start) -> Measurement,
}

/// Every contender, ours first.
pub fn contenders() -> Vec<Contender> {
    let mut all = vec![
        Contender { name: "allockit sizeclass", ours: true, run: run_sizeclass },
        Contender {
            name: "allockit freelist first-fit",
            ours: true,
            run: |b, t, s| run_freelist(b, t, s, Placement::FirstFit, FreeOrder::Lifo),
        },
        Contender {
            name: "allockit freelist first-fit FIFO",
            ours: true,
            run: |b, t, s| run_freelist(b, t, s, Placement::FirstFit, FreeOrder::Fifo),
        },
        Contender {
            name: "allockit freelist next-fit",
            ours: true,
            run: |b, t, s| run_freelist(b, t, s, Placement::NextFit, FreeOrder::Lifo),
        },
        Contender {
            name: "allockit freelist best-fit",
            ours: true,
            run: |b, t, s| run_freelist(b, t, s, Placement::BestFit, FreeOrder::Lifo),
        },
        Contender { name: "allockit-malloc", ours: true, run: run_allockit_malloc },
        Contender { name: "talc", ours: false, run: run_talc },
        Contender { name: "rlsf", ours: false, run: run_rlsf },
        Contender { name: "linked_list_allocator", ours: false, run: run_linked_list },
        Contender { name: "jemalloc", ours: false, run: run_jemalloc },
    ];
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    all.push(Contender { name: "glibc malloc", ours: false, run: glibc::run });
    all
}

/// One of allockit's heaps through `GlobalAlloc`, without a lock (the replay is
/// single-threaded).
struct Adapter<H>(H);

// SAFETY: forwards to the heap, which returns blocks aligned and sized as asked or an error
// (null); the bench uses it from one thread.
unsafe impl<H: Heap> GlobalAlloc for Adapter<H> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.alloc(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.0.free(NonNull::new_unchecked(ptr), layout) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.0.realloc(NonNull::new_unchecked(ptr), layout, new_size) }
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

fn run_sizeclass(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
    let heap = Adapter(SizeClass::with_source(Arc::clone(&bench.chunks)));
    bench.measure(&heap, trace, start, |_, heap, _| heap.0.stats().footprint_bytes)
}

fn run_freelist(
    bench: &mut Bench,
    trace: &Trace,
    start: Start,
    placement: Placement,
    order: FreeOrder,
) -> Measurement {
    let heap = Adapter(FreeList::over_buffer(bench.buffer(), placement).with_order(order));
    bench.measure(&heap, trace, start, |bench, _, replay| bench.extent(replay))
}

fn run_talc(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
    let heap: talc::TalcCell<talc::source::Manual> = talc::TalcCell::new(talc::source::Manual);
    let buffer = bench.buffer();
    // SAFETY: the buffer is ours for this run.
    unsafe { heap.claim(buffer.as_mut_ptr(), buffer.len()) }.expect("talc claims the buffer");
    bench.measure(&heap, trace, start, |bench, _, replay| bench.extent(replay))
}

type Tlsf = rlsf::Tlsf<'static, u32, u32, 28, 32>;

struct RlsfAdapter(UnsafeCell<Tlsf>);

// SAFETY: forwards to rlsf, which returns blocks aligned and sized as asked or None (null);
// the UnsafeCell is only touched from one thread, one call at a time.
unsafe impl GlobalAlloc for RlsfAdapter {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded use; no reentrancy.
        unsafe { (*self.0.get()).allocate(layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; single-threaded use.
        unsafe { (*self.0.get()).deallocate(NonNull::new_unchecked(ptr), layout.align()) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; single-threaded use.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            (*self.0.get()).reallocate(NonNull::new_unchecked(ptr), new_layout)
        }
        .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

fn run_rlsf(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
    let heap = RlsfAdapter(UnsafeCell::new(Tlsf::new()));
    let buffer = bench.buffer();
    // SAFETY: the buffer is ours for this run.
    unsafe { (*heap.0.get()).insert_free_block_ptr(NonNull::from(buffer)) }.expect("rlsf takes the buffer");
    bench.measure(&heap, trace, start, |bench, _, replay| bench.extent(replay))
}

struct LinkedListAdapter(UnsafeCell<linked_list_allocator::Heap>);

// SAFETY: as for RlsfAdapter, forwarding to linked_list_allocator (realloc is the default:
// allocate, copy, free).
unsafe impl GlobalAlloc for LinkedListAdapter {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded use; no reentrancy.
        unsafe { (*self.0.get()).allocate_first_fit(layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; single-threaded use.
        unsafe { (*self.0.get()).deallocate(NonNull::new_unchecked(ptr), layout) }
    }
}

fn run_linked_list(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
    let heap = LinkedListAdapter(UnsafeCell::new(linked_list_allocator::Heap::empty()));
    let buffer = bench.buffer();
    // SAFETY: the buffer is ours for this run.
    unsafe { (*heap.0.get()).init(buffer.as_mut_ptr(), buffer.len()) };
    bench.measure(&heap, trace, start, |bench, _, replay| bench.extent(replay))
}

/// Bytes of this process resident in memory now (`/proc/self/statm`, second field).
fn process_resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm's second field is the resident page count");
    pages * os::page_size()
}

fn run_allockit_malloc(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
    // The slot table comes from the harness's allocator: size it before the baseline, so
    // that its pages are not counted as the contender's.
    bench.slots.clear();
    bench.slots.resize(trace.slots, EMPTY);
    let before = if start == Start::Probed { process_resident() } else { 0 };
    bench.measure(&allockit_malloc::AllocKitMalloc, trace, start, |_, _, _| {
        process_resident().saturating_sub(before)
    })
}

fn jemalloc_resident() -> usize {
    tikv_jemalloc_ctl::epoch::advance().expect("advance the jemalloc epoch");
    tikv_jemalloc_ctl::stats::resident::read().expect("read jemalloc stats.resident")
}

/// Flushes this thread's cache and purges every arena's unused pages, so that what earlier
/// work in the process left behind (the traces are built with jemalloc) is not reused.
fn jemalloc_purge() {
    for name in [&b"thread.tcache.flush\0"[..], &b"arena.4096.purge\0"[..]] {
        // SAFETY: both controls take no input and give no output.
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr().cast(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, 0, "mallctl {}", String::from_utf8_lossy(name));
    }
}

fn run_jemalloc(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
    let before = if start == Start::Probed {
        jemalloc_purge();
        jemalloc_resident()
    } else {
        0
    };
    bench.measure(&tikv_jemallocator::Jemalloc, trace, start, |_, _, _| {
        jemalloc_resident().saturating_sub(before)
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use super::*;
    use core::ffi::c_void;

    #[repr(C)]
    struct Mallinfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }

    unsafe extern "C" {
        fn __libc_malloc(size: usize) -> *mut c_void;
        fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
        fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        fn __libc_free(ptr: *mut c_void);
        fn mallinfo2() -> Mallinfo2;
    }

    /// glibc's malloc alignment on 64-bit targets.
    const MALLOC_ALIGN: usize = 16;

    struct Glibc;

    // SAFETY: glibc's malloc family returns blocks aligned to 16, memalign to any power of two;
    // realloc with a larger alignment moves by hand.
    unsafe impl GlobalAlloc for Glibc {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: plain C allocation calls.
            unsafe {
                if layout.align() <= MALLOC_ALIGN {
                    __libc_malloc(layout.size()).cast()
                } else {
                    __libc_memalign(layout.align(), layout.size()).cast()
                }
            }
        }
        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from __libc_malloc or __libc_memalign.
            unsafe { __libc_free(ptr.cast()) }
        }
        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if layout.align() <= MALLOC_ALIGN {
                // SAFETY: `ptr` came from __libc_malloc.
                return unsafe { __libc_realloc(ptr.cast(), new_size).cast() };
            }
            // SAFETY: a fresh aligned block, a copy of the bytes both hold, the old one freed.
            unsafe {
                let new = __libc_memalign(layout.align(), new_size).cast::<u8>();
                if !new.is_null() {
                    ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    __libc_free(ptr.cast());
                }
                new
            }
        }
    }

    /// Bytes glibc holds from the system: its heap (`sbrk`) and its mapped blocks.
    fn held() -> usize {
        // SAFETY: a plain C call with no arguments.
        let info = unsafe { mallinfo2() };
        info.arena + info.hblkhd
    }

    pub fn run(bench: &mut Bench, trace: &Trace, start: Start) -> Measurement {
        let before = held();
        bench.measure(&Glibc, trace, start, |_, _, _| held().saturating_sub(before))
    }
}

/// The traces of the race: random actions as talc runs them (at least 300 blocks live),
/// the request mix, and random actions over a ten times larger live set (at least 3000
/// blocks), where the cost of searching shows. Debug builds (`cargo test` runs benches
/// once in test mode) replay short versions: they smoke-test the harness; timings come
/// from release builds.
pub fn traces() -> Vec<Trace> {
    let (actions, requests) = if cfg!(debug_assertions) { (5_000, 20) } else { (300_000, 1_500) };
    vec![
        random_actions("random-actions", 0x5EED, actions, 1000, 300),
        request_mix(0xC0FFEE, requests),
        random_actions("random-actions-3000-live", 0x5EED, actions, 1000, 3000),
    ]
}
