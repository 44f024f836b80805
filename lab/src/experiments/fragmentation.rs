//! Task 3: external fragmentation, and what coalescing does about it.
//!
//! Two heaps take the same steps, each in a fresh child process (an empty heap, and an
//! RSS that is the experiment's own): glibc's `malloc`, and allockit's boundary-tag
//! [`allockit::freelist`] (first fit, coalescing on every free). The free list runs over a
//! [`Reservation`]: one heap that grows at its top, as glibc's main heap grows with `sbrk`,
//! so both have a "top" and neither hands memory back in the middle of the experiment.
//!
//! 1. allocate N small blocks (100,000 × 64 bytes by default);
//! 2. free every other one: half the bytes are free, in N/2 holes of which no two are
//!    neighbours, so none can coalesce;
//! 3. ask for one larger block (4 KiB by default): no hole can hold it, so it must come
//!    from memory that never held a small block (glibc's top chunk, the free list's
//!    wilderness: the free space at the top of each heap);
//! 4. free the rest: every hole now has free neighbours and merges with them (glibc defers
//!    this for its fast bins until a large request or a trim asks for it);
//! 5. ask for the larger block again: now it is carved out of the coalesced holes.
//!
//! After each step the child records its RSS (`/proc/self/statm`), the bytes it has live,
//! and the heap's own figures: footprint (bytes held from the system or the chunk source),
//! free bytes, free blocks, the largest free block, and external fragmentation
//! (1 − largest free / free bytes; glibc's come from [`crate::glibc`]). Where a large block
//! came from is judged by address, the same way for both heaps: it *reused small-block
//! memory* when its bytes overlap a small block freed before.
//!
//! **Internal fragmentation, same run.** External fragmentation is free memory in pieces
//! too small to use; internal fragmentation is memory handed out that nobody asked for
//! (rounding, tags, headers). The same run measures it on three heaps, each in a fresh
//! child, for two passes of requests: the experiment's own small blocks (`block_size`
//! bytes, `blocks` of them) and [`ODD_SIZES`] (as many blocks in all). For each request
//! size: the bytes requested, the bytes the caller may use (glibc's `malloc_usable_size`,
//! the free list's [`FreeList::usable_size`], the size class), and the bytes handed out,
//! tags and headers included (glibc: the usable size plus the chunk's 8-byte size word;
//! the free list: the growth of its footprint − free bytes; the size-class heap: its own
//! count of class bytes handed out). Internal fragmentation is
//! (handed out − requested) / handed out. Then every other block is freed and the external
//! fragmentation of the same heap is read, as above.
//!
//! It cannot see inside glibc's thread cache (up to seven chunks per size that `malloc`
//! counts as in use), and the largest free block of both heaps includes the free space at
//! the end of the heap (glibc's top chunk, the free list's wilderness): that space serves
//! requests too. O(N log N) (sorting the freed addresses); 100,000 blocks take
//! milliseconds.

use std::alloc::Layout;
use std::fmt::Write as _;
use std::path::Path;
use std::ptr::NonNull;

use allockit::SizeClass;
use allockit::freelist::{FreeList, Placement};
use allockit::source::Reservation;
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind};
use crate::chart::{Chart, ChartKind, LinePanel, Series};
use crate::child::{ChildTask, Launch};
use crate::glibc::MallocInfoReader;
use crate::process;
use crate::report::{self, CsvFile, Outcome, Table};

/// The sizes of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentationOptions {
    /// Small blocks allocated in step 1.
    pub blocks: usize,
    /// Bytes per small block.
    pub block_size: usize,
    /// Bytes of the larger block of steps 3 and 5.
    pub large_size: usize,
}

/// The largest `--large-size`: glibc serves requests from 128 KiB up with their own
/// mapping, outside the heap, where the question "does it fit in the holes" means nothing.
pub const MAX_LARGE_SIZE: usize = 64 * 1024;

impl FragmentationOptions {
    /// Task 3 in full: 100,000 blocks of 64 bytes, a 4 KiB request.
    pub fn full() -> Self {
        FragmentationOptions { blocks: 100_000, block_size: 64, large_size: 4096 }
    }

    /// The test-suite version: 20,000 blocks.
    pub fn quick() -> Self {
        FragmentationOptions { blocks: 20_000, block_size: 64, large_size: 4096 }
    }

    /// Refuses sizes for which the experiment shows nothing, naming the flag.
    pub fn validate(&self) -> Result<(), LabError> {
        let invalid = |flag, reason: String| Err(LabError::InvalidArgument { flag, reason });
        if self.blocks < 4 {
            return invalid("--blocks", format!("{} is too few; need at least 4", self.blocks));
        }
        if self.block_size == 0 || self.block_size > MAX_LARGE_SIZE / 4 {
            return invalid(
                "--block-size",
                format!("{} must be between 1 and {}", self.block_size, MAX_LARGE_SIZE / 4),
            );
        }
        if self.large_size <= 2 * self.block_size + 32 {
            return invalid(
                "--large-size",
                format!(
                    "{} must exceed two small blocks and their tags ({} bytes), or a hole could hold it",
                    self.large_size,
                    2 * self.block_size + 32
                ),
            );
        }
        if self.large_size > MAX_LARGE_SIZE {
            return invalid(
                "--large-size",
                format!("{} exceeds {MAX_LARGE_SIZE}: glibc would map it outside the heap", self.large_size),
            );
        }
        if self.large_size > self.blocks / 4 * self.block_size {
            return invalid(
                "--large-size",
                format!(
                    "{} exceeds a quarter of the small blocks' bytes ({}): too large to show coalescing",
                    self.large_size,
                    self.blocks / 4 * self.block_size
                ),
            );
        }
        Ok(())
    }
}

/// The heaps compared: glibc's malloc (coalescing on its own schedule) and allockit's
/// boundary-tag free list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FragmentedHeap {
    /// glibc's `malloc` (ptmalloc2).
    Glibc,
    /// allockit's boundary-tag free list, first fit, over a [`Reservation`].
    FreeList,
}

impl FragmentedHeap {
    /// Both heaps, glibc first.
    pub const ALL: [FragmentedHeap; 2] = [FragmentedHeap::Glibc, FragmentedHeap::FreeList];

    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            FragmentedHeap::Glibc => "glibc malloc",
            FragmentedHeap::FreeList => "allockit freelist",
        }
    }
}

/// The steps after which the figures are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Before the first small block.
    Start,
    /// Every small block live.
    Allocated,
    /// Every other small block freed.
    EveryOtherFreed,
    /// The first large block allocated.
    LargeBeforeCoalescing,
    /// The remaining small blocks freed.
    RestFreed,
    /// The second large block allocated.
    LargeAfterCoalescing,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 6] = [
        Step::Start,
        Step::Allocated,
        Step::EveryOtherFreed,
        Step::LargeBeforeCoalescing,
        Step::RestFreed,
        Step::LargeAfterCoalescing,
    ];

    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Step::Start => "0 start",
            Step::Allocated => "1 all small blocks live",
            Step::EveryOtherFreed => "2 every other freed",
            Step::LargeBeforeCoalescing => "3 large block requested",
            Step::RestFreed => "4 the rest freed",
            Step::LargeAfterCoalescing => "5 large block requested again",
        }
    }
}

/// A heap's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapFigures {
    /// Bytes the heap holds from the system (glibc) or its reservation (free list).
    pub footprint_bytes: u64,
    /// Bytes in free blocks (tags included), the free space at the end of the heap too.
    pub free_bytes: u64,
    /// Free blocks, however small: many against a small `largest_free` is the
    /// fragmentation picture.
    pub free_blocks: u64,
    /// The largest free block in bytes.
    pub largest_free: u64,
    /// Free blocks not yet coalesced with their neighbours (glibc's fast bins); `None`
    /// for a heap that coalesces on every free.
    pub deferred_blocks: Option<u64>,
}

impl HeapFigures {
    /// 1 − largest free / free bytes: near 0 when the free space is one block, near 1
    /// when it is scattered in small holes.
    pub fn external_fragmentation(&self) -> f64 {
        if self.free_bytes == 0 { 0.0 } else { 1.0 - self.largest_free as f64 / self.free_bytes as f64 }
    }
}

/// The figures after one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFigures {
    /// The step these figures were read after.
    pub step: Step,
    /// The process's resident set size.
    pub rss_bytes: u64,
    /// Bytes the experiment holds (requested sizes).
    pub live_bytes: u64,
    /// The heap's figures.
    pub heap: HeapFigures,
}

/// Where a large block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Its bytes overlap small blocks freed earlier: holes served it.
    SmallBlockMemory,
    /// Memory that never held a small block: the top of the heap.
    FreshMemory,
    /// The heap refused the request.
    Refused,
}

impl Origin {
    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Origin::SmallBlockMemory => "freed small blocks",
            Origin::FreshMemory => "fresh memory (top of the heap)",
            Origin::Refused => "refused",
        }
    }
}

/// What one heap did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentationReport {
    /// The figures after each step, in [`Step::ALL`] order.
    pub steps: Vec<StepFigures>,
    /// Where the large block of step 3 came from.
    pub large_before: Origin,
    /// Where the large block of step 5 came from.
    pub large_after: Origin,
}

impl FragmentationReport {
    /// The figures after `step`.
    pub fn at(&self, step: Step) -> Option<&StepFigures> {
        self.steps.iter().find(|s| s.step == step)
    }
}

/// The child task: one heap, the whole sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentationRun {
    /// The heap put through the sequence: glibc's `malloc`, or allockit's free list.
    pub heap: FragmentedHeap,
    /// Block count and sizes, as the parent chose them.
    pub options: FragmentationOptions,
}

impl ChildTask for FragmentationRun {
    const NAME: &'static str = "fragmentation";
    type Output = FragmentationReport;

    fn run(self) -> Result<FragmentationReport, LabError> {
        self.options.validate()?;
        match self.heap {
            FragmentedHeap::Glibc => {
                run_steps(&mut GlibcHeap { reader: MallocInfoReader::new()? }, &self.options)
            }
            FragmentedHeap::FreeList => run_steps(&mut FreeListHeap::new(&self.options), &self.options),
        }
    }
}

/// The heap under test, as the steps use it.
trait StepHeap {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    /// # Safety
    /// `ptr` came from `allocate(layout)` and is not used afterwards.
    unsafe fn release(&mut self, ptr: NonNull<u8>, layout: Layout);
    fn figures(&mut self) -> Result<HeapFigures, LabError>;
}

struct GlibcHeap {
    reader: MallocInfoReader,
}

impl StepHeap for GlibcHeap {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: malloc has no preconditions; it aligns to 16, all the steps ask for.
        NonNull::new(unsafe { libc::malloc(layout.size()) }.cast())
    }

    unsafe fn release(&mut self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: forwarded: a live block from malloc, freed once.
        unsafe { libc::free(ptr.as_ptr().cast()) }
    }

    fn figures(&mut self) -> Result<HeapFigures, LabError> {
        let stats = self.reader.read()?;
        Ok(HeapFigures {
            footprint_bytes: stats.system_bytes,
            free_bytes: stats.free_bytes,
            free_blocks: stats.free_chunks,
            largest_free: stats.largest_free,
            deferred_blocks: Some(stats.fastbin_chunks),
        })
    }
}

struct FreeListHeap {
    heap: FreeList<Reservation>,
}

impl FreeListHeap {
    /// A first-fit heap over a reservation with room for every block of `options` twice
    /// over (address space only: it is committed as the heap grows).
    fn new(options: &FragmentationOptions) -> Self {
        let bytes = 2 * (options.blocks * (options.block_size + 48) + 2 * options.large_size) + (8 << 20);
        FreeListHeap { heap: FreeList::with_source(Reservation::new(bytes), Placement::FirstFit) }
    }
}

impl StepHeap for FreeListHeap {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.heap.alloc(layout).ok()
    }

    unsafe fn release(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded: a live block of this heap with this layout, freed once.
        unsafe { self.heap.free(ptr, layout) }
    }

    fn figures(&mut self) -> Result<HeapFigures, LabError> {
        let free = self.heap.free_stats();
        Ok(HeapFigures {
            footprint_bytes: self.heap.stats().footprint_bytes as u64,
            free_bytes: free.free_bytes as u64,
            free_blocks: free.free_blocks as u64,
            largest_free: free.largest_free as u64,
            deferred_blocks: None,
        })
    }
}

/// Writes the figures after `step`.
fn record(
    heap: &mut impl StepHeap,
    step: Step,
    live_bytes: u64,
    steps: &mut Vec<StepFigures>,
) -> Result<(), LabError> {
    let rss_bytes =
        process::own_resident_bytes().map_err(|e| LabError::file("read", "/proc/self/statm", e))?;
    steps.push(StepFigures { step, rss_bytes, live_bytes, heap: heap.figures()? });
    Ok(())
}

fn run_steps(
    heap: &mut impl StepHeap,
    options: &FragmentationOptions,
) -> Result<FragmentationReport, LabError> {
    let layout = |size, flag| {
        Layout::from_size_align(size, 16)
            .map_err(|e| LabError::InvalidArgument { flag, reason: e.to_string() })
    };
    let (small, large) =
        (layout(options.block_size, "--block-size")?, layout(options.large_size, "--large-size")?);
    // The bookkeeping is allocated and written now, so that the steps allocate nothing but
    // the blocks under test and its pages are already in the first RSS reading.
    let mut blocks = vec![NonNull::<u8>::dangling(); options.blocks];
    let mut sorted = vec![usize::MAX; options.blocks];
    let mut steps = Vec::with_capacity(Step::ALL.len());
    let mut live = 0u64;
    record(heap, Step::Start, live, &mut steps)?;

    for (i, slot) in blocks.iter_mut().enumerate() {
        let block = heap.allocate(small).ok_or_else(|| LabError::InvalidArgument {
            flag: "--blocks",
            reason: format!("the heap refused small block {i}"),
        })?;
        // SAFETY: the block holds `block_size` >= 1 writable bytes.
        unsafe { block.as_ptr().write_volatile(i as u8) };
        *slot = block;
        live += options.block_size as u64;
    }
    record(heap, Step::Allocated, live, &mut steps)?;

    for &block in blocks.iter().step_by(2) {
        // SAFETY: a live small block of this heap, freed once (odd indices are freed later).
        unsafe { heap.release(block, small) };
        live -= options.block_size as u64;
    }
    record(heap, Step::EveryOtherFreed, live, &mut steps)?;

    let freed = blocks.len().div_ceil(2);
    for (address, block) in sorted.iter_mut().zip(blocks.iter().step_by(2)) {
        *address = block.as_ptr().addr();
    }
    sorted[..freed].sort_unstable();
    let first = allocate_large(heap, large);
    let large_before = origin(first, &sorted[..freed], options);
    live += first.map_or(0, |_| options.large_size as u64);
    record(heap, Step::LargeBeforeCoalescing, live, &mut steps)?;

    for &block in blocks.iter().skip(1).step_by(2) {
        // SAFETY: a live small block of this heap, freed once (even indices went above).
        unsafe { heap.release(block, small) };
        live -= options.block_size as u64;
    }
    record(heap, Step::RestFreed, live, &mut steps)?;

    for (address, block) in sorted.iter_mut().zip(&blocks) {
        *address = block.as_ptr().addr();
    }
    sorted.sort_unstable();
    let second = allocate_large(heap, large);
    let large_after = origin(second, &sorted, options);
    live += second.map_or(0, |_| options.large_size as u64);
    record(heap, Step::LargeAfterCoalescing, live, &mut steps)?;

    for block in [first, second].into_iter().flatten() {
        // SAFETY: the large blocks allocated above, freed once.
        unsafe { heap.release(block, large) };
    }
    Ok(FragmentationReport { steps, large_before, large_after })
}

/// Allocates a large block and writes every byte of it (so that RSS sees it); `None` when
/// the heap refuses.
fn allocate_large(heap: &mut impl StepHeap, layout: Layout) -> Option<NonNull<u8>> {
    let block = heap.allocate(layout)?;
    // SAFETY: the block holds `layout.size()` writable bytes.
    unsafe { block.as_ptr().write_bytes(0xA5, layout.size()) };
    Some(block)
}

/// Where `block` came from: [`Origin::SmallBlockMemory`] when it overlaps a small block
/// whose address is in `sorted`.
fn origin(block: Option<NonNull<u8>>, sorted: &[usize], options: &FragmentationOptions) -> Origin {
    let Some(block) = block else { return Origin::Refused };
    let start = block.as_ptr().addr();
    let end = start + options.large_size;
    let first_ending_after = sorted.partition_point(|&small| small + options.block_size <= start);
    match sorted.get(first_ending_after) {
        Some(&small) if small < end => Origin::SmallBlockMemory,
        _ => Origin::FreshMemory,
    }
}

/// The request sizes of the odd-size pass: small enough that tags dominate (24), just
/// above a size class (65, 257, 1100: the size-class heap rounds them up by most of a
/// class spacing), and between classes (100, 200).
pub const ODD_SIZES: [usize; 6] = [24, 65, 100, 200, 257, 1100];

/// The alignment the internal-fragmentation passes ask for: what a struct of `u64`s needs.
/// glibc aligns every block to 16 regardless; the free list rounds every block to 16.
pub const PASS_ALIGN: usize = 8;

/// Bytes of the size word in front of every glibc chunk: a chunk is its usable size plus
/// this (glibc's `malloc_usable_size` is the chunk size less `CHUNK_HDR_SZ` plus
/// `SIZE_SZ`, for chunks of the heap).
pub const GLIBC_SIZE_WORD: usize = 8;

/// The heaps whose internal fragmentation is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizedHeap {
    /// glibc's `malloc`: 16-byte granularity, an 8-byte size word per chunk.
    Glibc,
    /// allockit's boundary-tag free list: 16-byte granularity, 16 bytes of tags per block.
    FreeList,
    /// allockit's size-class heap: 40 classes, no per-block metadata.
    SizeClass,
}

impl SizedHeap {
    /// The three heaps, in table order.
    pub const ALL: [SizedHeap; 3] = [SizedHeap::Glibc, SizedHeap::FreeList, SizedHeap::SizeClass];

    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            SizedHeap::Glibc => "glibc malloc",
            SizedHeap::FreeList => "allockit freelist",
            SizedHeap::SizeClass => "allockit sizeclass",
        }
    }
}

/// The two passes of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    /// The experiment's small blocks, all of one size.
    SmallBlocks,
    /// [`ODD_SIZES`], an equal number of blocks each.
    OddSizes,
}

impl Pass {
    /// Both passes.
    pub const ALL: [Pass; 2] = [Pass::SmallBlocks, Pass::OddSizes];

    /// The request sizes and blocks per size of this pass at `options`.
    pub fn requests(self, options: &FragmentationOptions) -> (Vec<usize>, usize) {
        match self {
            Pass::SmallBlocks => (vec![options.block_size], options.blocks),
            Pass::OddSizes => (ODD_SIZES.to_vec(), (options.blocks / ODD_SIZES.len()).max(1)),
        }
    }

    /// Label for tables.
    pub fn label(self, options: &FragmentationOptions) -> String {
        match self {
            Pass::SmallBlocks => format!("{} B blocks", options.block_size),
            Pass::OddSizes => "odd sizes".to_owned(),
        }
    }
}

/// The blocks of one request size, all live at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeGroup {
    /// Bytes per request.
    pub size: usize,
    /// Requests made.
    pub blocks: u64,
    /// Bytes requested: `blocks × size`.
    pub requested_bytes: u64,
    /// Bytes the callers may use (the heap's usable size of each block, summed).
    pub usable_bytes: u64,
    /// Bytes handed out, tags and headers included.
    pub handed_out_bytes: u64,
}

impl SizeGroup {
    /// (handed out − requested) / handed out.
    pub fn internal_fragmentation(&self) -> f64 {
        if self.handed_out_bytes == 0 {
            0.0
        } else {
            1.0 - self.requested_bytes as f64 / self.handed_out_bytes as f64
        }
    }

    fn per_block(&self, bytes: u64) -> f64 {
        if self.blocks == 0 { 0.0 } else { bytes as f64 / self.blocks as f64 }
    }

    /// Handed-out bytes per block.
    pub fn handed_out_per_block(&self) -> f64 {
        self.per_block(self.handed_out_bytes)
    }

    /// Rounding per block: usable − requested.
    pub fn rounding_per_block(&self) -> f64 {
        self.per_block(self.usable_bytes.saturating_sub(self.requested_bytes))
    }

    /// Tags and headers per block: handed out − usable.
    pub fn tags_per_block(&self) -> f64 {
        self.per_block(self.handed_out_bytes.saturating_sub(self.usable_bytes))
    }

    /// The groups added up (`size` 0).
    pub fn total(groups: &[SizeGroup]) -> SizeGroup {
        groups.iter().fold(SizeGroup::default(), |sum, g| SizeGroup {
            size: 0,
            blocks: sum.blocks + g.blocks,
            requested_bytes: sum.requested_bytes + g.requested_bytes,
            usable_bytes: sum.usable_bytes + g.usable_bytes,
            handed_out_bytes: sum.handed_out_bytes + g.handed_out_bytes,
        })
    }
}

/// The free space of a heap with every other block of a pass freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoleFigures {
    /// Bytes the heap holds from the system or its source.
    pub footprint_bytes: u64,
    /// Bytes held but not handed out: free blocks (glibc, free list), or free slots and
    /// uncarved slab space (size classes).
    pub free_bytes: u64,
    /// The largest free block; `None` for the size-class heap, whose free slots serve
    /// only their own class (one slot is as good as any other of its class).
    pub largest_free: Option<u64>,
    /// Free blocks; `None` for the size-class heap.
    pub free_blocks: Option<u64>,
}

impl HoleFigures {
    /// 1 − largest free / free bytes, where the heap has a largest free block.
    pub fn external_fragmentation(&self) -> Option<f64> {
        let largest = self.largest_free?;
        Some(if self.free_bytes == 0 { 0.0 } else { 1.0 - largest as f64 / self.free_bytes as f64 })
    }
}

/// What one heap did with one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalReport {
    /// One group per request size, in request order.
    pub groups: Vec<SizeGroup>,
    /// The free space after every other block (of every size) was freed.
    pub holes: HoleFigures,
}

/// The child task of the internal-fragmentation passes: one heap, one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalRun {
    /// The heap measured.
    pub heap: SizedHeap,
    /// Request sizes, allocated one size after the other.
    pub sizes: Vec<usize>,
    /// Blocks per request size.
    pub blocks_per_size: usize,
}

impl ChildTask for InternalRun {
    const NAME: &'static str = "internal-fragmentation";
    type Output = InternalReport;

    fn run(self) -> Result<InternalReport, LabError> {
        if self.sizes.iter().any(|&size| size == 0 || size > MAX_LARGE_SIZE / 4) || self.blocks_per_size == 0
        {
            return Err(LabError::InvalidArgument {
                flag: "--block-size",
                reason: format!(
                    "request sizes {:?} × {} blocks: sizes must be 1..={}",
                    self.sizes,
                    self.blocks_per_size,
                    MAX_LARGE_SIZE / 4
                ),
            });
        }
        match self.heap {
            SizedHeap::Glibc => {
                run_pass(&mut GlibcSized { reader: MallocInfoReader::new()?, handed_out: 0 }, &self)
            }
            SizedHeap::FreeList => {
                let bytes: usize = self.sizes.iter().map(|size| 2 * (size + 48) * self.blocks_per_size).sum();
                let heap = FreeList::with_source(Reservation::new(bytes + (8 << 20)), Placement::FirstFit);
                run_pass(&mut FreeListSized::warmed(heap)?, &self)
            }
            SizedHeap::SizeClass => run_pass(&mut SizeClassSized { heap: SizeClass::new() }, &self),
        }
    }
}

/// A heap as the internal-fragmentation passes use it.
trait SizedHeapOps {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    /// # Safety
    /// `ptr` came from `allocate(layout)` and is not used afterwards.
    unsafe fn release(&mut self, ptr: NonNull<u8>, layout: Layout);
    /// The bytes the block at `ptr` offers its caller; `None` for a heap without per-block
    /// metadata, where all of the handed-out block is the caller's.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap.
    unsafe fn usable(&self, ptr: NonNull<u8>) -> Option<u64>;
    /// Bytes handed out so far and not freed, tags and headers included.
    fn handed_out(&mut self) -> u64;
    fn holes(&mut self) -> Result<HoleFigures, LabError>;
}

/// The bytes of glibc's chunk at `block`: its usable size and its size word.
///
/// # Safety
/// `block` is a live block from `malloc`.
unsafe fn chunk_bytes(block: NonNull<u8>) -> u64 {
    // SAFETY: forwarded.
    (unsafe { libc::malloc_usable_size(block.as_ptr().cast()) } + GLIBC_SIZE_WORD) as u64
}

struct GlibcSized {
    reader: MallocInfoReader,
    /// The chunks handed out, summed as they are allocated and freed.
    handed_out: u64,
}

impl SizedHeapOps for GlibcSized {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: malloc has no preconditions; it aligns to 16, more than the passes ask.
        let block = NonNull::new(unsafe { libc::malloc(layout.size()) }.cast::<u8>())?;
        // SAFETY: a live block from malloc.
        self.handed_out += unsafe { chunk_bytes(block) };
        Some(block)
    }

    unsafe fn release(&mut self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: forwarded: a live block from malloc.
        self.handed_out -= unsafe { chunk_bytes(ptr) };
        // SAFETY: forwarded: a live block from malloc, freed once.
        unsafe { libc::free(ptr.as_ptr().cast()) }
    }

    unsafe fn usable(&self, ptr: NonNull<u8>) -> Option<u64> {
        // SAFETY: forwarded: a live block from malloc.
        Some(unsafe { libc::malloc_usable_size(ptr.as_ptr().cast()) } as u64)
    }

    fn handed_out(&mut self) -> u64 {
        self.handed_out
    }

    fn holes(&mut self) -> Result<HoleFigures, LabError> {
        let stats = self.reader.read()?;
        Ok(HoleFigures {
            footprint_bytes: stats.system_bytes,
            free_bytes: stats.free_bytes,
            largest_free: Some(stats.largest_free),
            free_blocks: Some(stats.free_chunks),
        })
    }
}

struct FreeListSized {
    heap: FreeList<Reservation>,
}

impl FreeListSized {
    /// Makes the heap take its segment (one block allocated and freed), so that the
    /// segment's own header and sentinels are in every later reading of
    /// [`SizedHeapOps::handed_out`] and drop out of its differences.
    fn warmed(heap: FreeList<Reservation>) -> Result<Self, LabError> {
        let layout = Layout::new::<u64>();
        let block = heap
            .alloc(layout)
            .map_err(|cause| LabError::HeapRefused { heap: "allockit freelist".into(), cause })?;
        // SAFETY: the block just allocated, freed once.
        unsafe { heap.free(block, layout) };
        Ok(FreeListSized { heap })
    }
}

impl SizedHeapOps for FreeListSized {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.heap.alloc(layout).ok()
    }

    unsafe fn release(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded: a live block of this heap with this layout, freed once.
        unsafe { self.heap.free(ptr, layout) }
    }

    unsafe fn usable(&self, ptr: NonNull<u8>) -> Option<u64> {
        // SAFETY: forwarded: a live block of this heap.
        Some(unsafe { self.heap.usable_size(ptr) } as u64)
    }

    /// Footprint less free bytes: every block in use, tags included, plus the segment's
    /// fixed overhead (constant once the heap holds its one growing segment).
    fn handed_out(&mut self) -> u64 {
        (self.heap.stats().footprint_bytes - self.heap.free_stats().free_bytes) as u64
    }

    fn holes(&mut self) -> Result<HoleFigures, LabError> {
        let free = self.heap.free_stats();
        Ok(HoleFigures {
            footprint_bytes: self.heap.stats().footprint_bytes as u64,
            free_bytes: free.free_bytes as u64,
            largest_free: Some(free.largest_free as u64),
            free_blocks: Some(free.free_blocks as u64),
        })
    }
}

struct SizeClassSized {
    heap: SizeClass,
}

impl SizeClassSized {
    /// Class bytes of the blocks live now.
    fn live_class_bytes(&self) -> u64 {
        self.heap.class_stats().iter().map(|class| class.live_blocks() * class.class_size as u64).sum()
    }
}

impl SizedHeapOps for SizeClassSized {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.heap.alloc(layout).ok()
    }

    unsafe fn release(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded: a live block of this heap with this layout, freed once.
        unsafe { self.heap.free(ptr, layout) }
    }

    /// A slot has no header: all of it (its class size) is the caller's.
    unsafe fn usable(&self, _ptr: NonNull<u8>) -> Option<u64> {
        None
    }

    fn handed_out(&mut self) -> u64 {
        self.live_class_bytes()
    }

    fn holes(&mut self) -> Result<HoleFigures, LabError> {
        let footprint = self.heap.stats().footprint_bytes as u64;
        Ok(HoleFigures {
            footprint_bytes: footprint,
            free_bytes: footprint.saturating_sub(self.live_class_bytes()),
            largest_free: None,
            free_blocks: None,
        })
    }
}

fn run_pass(heap: &mut impl SizedHeapOps, run: &InternalRun) -> Result<InternalReport, LabError> {
    // Allocated now, so that the passes allocate nothing but the blocks measured.
    let mut blocks: Vec<(NonNull<u8>, Layout)> = Vec::with_capacity(run.sizes.len() * run.blocks_per_size);
    let mut groups = Vec::with_capacity(run.sizes.len());
    for &size in &run.sizes {
        let layout = Layout::from_size_align(size, PASS_ALIGN)
            .map_err(|e| LabError::InvalidArgument { flag: "--block-size", reason: e.to_string() })?;
        let before = heap.handed_out();
        let mut usable = Some(0);
        for i in 0..run.blocks_per_size {
            let block = heap.allocate(layout).ok_or_else(|| LabError::InvalidArgument {
                flag: "--blocks",
                reason: format!("the heap refused block {i} of {size} bytes"),
            })?;
            // SAFETY: the block holds `size` >= 1 writable bytes.
            unsafe { block.as_ptr().write_volatile(i as u8) };
            // SAFETY: a live block of this heap.
            usable = usable.zip(unsafe { heap.usable(block) }).map(|(sum, bytes)| sum + bytes);
            blocks.push((block, layout));
        }
        let handed_out = heap.handed_out() - before;
        groups.push(SizeGroup {
            size,
            blocks: run.blocks_per_size as u64,
            requested_bytes: (size * run.blocks_per_size) as u64,
            usable_bytes: usable.unwrap_or(handed_out),
            handed_out_bytes: handed_out,
        });
    }
    for &(block, layout) in blocks.iter().step_by(2) {
        // SAFETY: a live block of this heap, freed once (odd indices below).
        unsafe { heap.release(block, layout) };
    }
    let holes = heap.holes()?;
    for &(block, layout) in blocks.iter().skip(1).step_by(2) {
        // SAFETY: a live block of this heap, freed once (even indices above).
        unsafe { heap.release(block, layout) };
    }
    Ok(InternalReport { groups, holes })
}

/// One heap's internal-fragmentation pass, as the parent saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalPass {
    /// Which heap.
    pub heap: SizedHeap,
    /// Which requests.
    pub pass: Pass,
    /// What the child measured.
    pub report: InternalReport,
}

impl InternalPass {
    /// Every group of the pass added up.
    pub fn total(&self) -> SizeGroup {
        SizeGroup::total(&self.report.groups)
    }
}

/// One heap's run, as the parent saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeapRun {
    /// Which heap the child ran the steps on.
    pub heap: FragmentedHeap,
    /// What the child measured.
    pub report: FragmentationReport,
}

/// Task 3's result.
#[derive(Debug, Clone, PartialEq)]
pub struct FragmentationOutcome {
    /// Block count and sizes of the run (for the report's header).
    pub options: FragmentationOptions,
    /// glibc first, then the free list.
    pub runs: Vec<HeapRun>,
    /// Internal fragmentation: every pass on every [`SizedHeap`], pass by pass.
    pub internal: Vec<InternalPass>,
}

impl FragmentationOutcome {
    /// The run of `heap`.
    pub fn run_of(&self, heap: FragmentedHeap) -> Option<&FragmentationReport> {
        self.runs.iter().find(|run| run.heap == heap).map(|run| &run.report)
    }
}

/// Runs both heaps, each in a fresh child of the lab binary `exe` (on glibc).
pub fn run(exe: &Path, options: &FragmentationOptions) -> Result<FragmentationOutcome, LabError> {
    options.validate()?;
    let glibc = allocator::locate(AllocatorKind::Glibc);
    let runs = FragmentedHeap::ALL
        .iter()
        .map(|&heap| {
            let (report, _) = Launch::new(exe, &glibc).run(&FragmentationRun { heap, options: *options })?;
            Ok(HeapRun { heap, report })
        })
        .collect::<Result<Vec<_>, LabError>>()?;
    let mut internal = Vec::with_capacity(Pass::ALL.len() * SizedHeap::ALL.len());
    for pass in Pass::ALL {
        let (sizes, blocks_per_size) = pass.requests(options);
        for heap in SizedHeap::ALL {
            let task = InternalRun { heap, sizes: sizes.clone(), blocks_per_size };
            let (report, _) = Launch::new(exe, &glibc).run(&task)?;
            internal.push(InternalPass { heap, pass, report });
        }
    }
    Ok(FragmentationOutcome { options: *options, runs, internal })
}

impl FragmentationOutcome {
    /// The internal-fragmentation pass `pass` of `heap`.
    pub fn internal_of(&self, heap: SizedHeap, pass: Pass) -> Option<&InternalPass> {
        self.internal.iter().find(|p| p.heap == heap && p.pass == pass)
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

impl Outcome for FragmentationOutcome {
    fn slug(&self) -> &'static str {
        "fragmentation"
    }

    fn title(&self) -> String {
        "Task 3: fragmentation and coalescing".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let o = &self.options;
        let mut findings = Vec::new();
        for run in &self.runs {
            let r = &run.report;
            let (Some(holes), Some(rest), Some(after)) =
                (r.at(Step::EveryOtherFreed), r.at(Step::RestFreed), r.at(Step::LargeAfterCoalescing))
            else {
                continue;
            };
            findings.push(format!(
                "{}: with every other block freed, {} were free in {} blocks (largest {}, external fragmentation {}); \
                 the {} B request came from {}",
                run.heap.label(),
                report::bytes(holes.heap.free_bytes as f64),
                holes.heap.free_blocks,
                report::bytes(holes.heap.largest_free as f64),
                percent(holes.heap.external_fragmentation()),
                o.large_size,
                r.large_before.label(),
            ));
            let (Some(start), Some(all_live)) = (r.at(Step::Start), r.at(Step::Allocated)) else {
                continue;
            };
            let merged = match rest.heap.deferred_blocks {
                Some(deferred) if deferred > 0 => format!(
                    "{} free blocks: the {deferred} freed last sat unmerged in fast bins until the large \
                     request consolidated them ({} free blocks after it)",
                    rest.heap.free_blocks, after.heap.free_blocks
                ),
                _ => format!("{} free blocks, merged as they were freed", rest.heap.free_blocks),
            };
            findings.push(format!(
                "{}: after freeing the rest, {merged}; the {} B request came from {}",
                run.heap.label(),
                o.large_size,
                r.large_after.label(),
            ));
            findings.push(format!(
                "{}: RSS above the start: {} with all {} blocks live ({} live), {} at the end ({} live)",
                run.heap.label(),
                report::bytes(all_live.rss_bytes.saturating_sub(start.rss_bytes) as f64),
                o.blocks,
                report::bytes(all_live.live_bytes as f64),
                report::bytes(after.rss_bytes.saturating_sub(start.rss_bytes) as f64),
                report::bytes(after.live_bytes as f64),
            ));
        }
        for pass in Pass::ALL {
            let figures: Vec<String> = SizedHeap::ALL
                .iter()
                .filter_map(|&heap| self.internal_of(heap, pass))
                .map(|p| {
                    let total = p.total();
                    let external = match p.report.holes.external_fragmentation() {
                        Some(external) => format!("{} external", percent(external)),
                        None => "free slots per class, no largest hole".to_owned(),
                    };
                    format!(
                        "{} {} internal ({:.1} B tags + {:.1} B rounding per block), {external}",
                        p.heap.label(),
                        percent(total.internal_fragmentation()),
                        total.tags_per_block(),
                        total.rounding_per_block(),
                    )
                })
                .collect();
            if !figures.is_empty() {
                findings.push(format!(
                    "{}, all live then every other freed: {}",
                    pass.label(o),
                    figures.join("; ")
                ));
            }
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let mut steps = Table::new(
            format!(
                "{} blocks of {} B, every other freed, then a {} B request (figures after each step)",
                self.options.blocks, self.options.block_size, self.options.large_size
            ),
            &[
                "heap",
                "step",
                "live",
                "RSS",
                "footprint",
                "free",
                "free blocks",
                "largest free",
                "ext. frag.",
            ],
        );
        for run in &self.runs {
            for s in &run.report.steps {
                steps.push(vec![
                    run.heap.label().to_owned(),
                    s.step.label().to_owned(),
                    report::bytes(s.live_bytes as f64),
                    report::bytes(s.rss_bytes as f64),
                    report::bytes(s.heap.footprint_bytes as f64),
                    report::bytes(s.heap.free_bytes as f64),
                    s.heap.free_blocks.to_string(),
                    report::bytes(s.heap.largest_free as f64),
                    percent(s.heap.external_fragmentation()),
                ]);
            }
        }
        let mut large = Table::new(
            format!("Where the {} B block came from", self.options.large_size),
            &[
                "heap",
                "before coalescing (step 3)",
                "after coalescing (step 5)",
                "footprint growth at step 3",
            ],
        );
        for run in &self.runs {
            let r = &run.report;
            let growth = match (r.at(Step::EveryOtherFreed), r.at(Step::LargeBeforeCoalescing)) {
                (Some(before), Some(after)) => report::signed_bytes(
                    after.heap.footprint_bytes as f64 - before.heap.footprint_bytes as f64,
                ),
                _ => "-".to_owned(),
            };
            large.push(vec![
                run.heap.label().to_owned(),
                r.large_before.label().to_owned(),
                r.large_after.label().to_owned(),
                growth,
            ]);
        }
        let mut sizes = Table::new(
            format!(
                "Internal fragmentation per request size: bytes handed out for the bytes requested \
                 (align {PASS_ALIGN}, all blocks live)"
            ),
            &[
                "heap",
                "pass",
                "request",
                "blocks",
                "handed out / block",
                "usable / block",
                "tags",
                "rounding",
                "internal frag.",
            ],
        );
        let mut passes = Table::new(
            "Internal vs external fragmentation, same requests: all live, then every other block freed",
            &[
                "heap",
                "pass",
                "requested",
                "handed out",
                "internal frag.",
                "free (held)",
                "free blocks",
                "largest free",
                "ext. frag.",
            ],
        );
        for pass in Pass::ALL {
            for heap in SizedHeap::ALL {
                let Some(p) = self.internal_of(heap, pass) else { continue };
                let total = p.total();
                let mut rows: Vec<(String, SizeGroup)> =
                    p.report.groups.iter().map(|g| (format!("{} B", g.size), *g)).collect();
                if p.report.groups.len() > 1 {
                    rows.push(("all".to_owned(), total));
                }
                for (request, g) in rows {
                    sizes.push(vec![
                        heap.label().to_owned(),
                        pass.label(&self.options),
                        request,
                        g.blocks.to_string(),
                        format!("{:.1} B", g.handed_out_per_block()),
                        format!("{:.1} B", g.per_block(g.usable_bytes)),
                        format!("{:.1} B", g.tags_per_block()),
                        format!("{:.1} B", g.rounding_per_block()),
                        percent(g.internal_fragmentation()),
                    ]);
                }
                let holes = &p.report.holes;
                passes.push(vec![
                    heap.label().to_owned(),
                    pass.label(&self.options),
                    report::bytes(total.requested_bytes as f64),
                    report::bytes(total.handed_out_bytes as f64),
                    percent(total.internal_fragmentation()),
                    report::bytes(holes.free_bytes as f64),
                    holes.free_blocks.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    holes.largest_free.map_or_else(|| "-".to_owned(), |n| report::bytes(n as f64)),
                    holes.external_fragmentation().map_or_else(|| "- (slots per class)".to_owned(), percent),
                ]);
            }
        }
        vec![steps, large, sizes, passes]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut table = Table::new(
            "",
            &[
                "heap",
                "step",
                "rss_bytes",
                "live_bytes",
                "footprint_bytes",
                "free_bytes",
                "free_blocks",
                "largest_free_bytes",
                "deferred_blocks",
                "external_fragmentation",
            ],
        );
        for run in &self.runs {
            for s in &run.report.steps {
                table.push(vec![
                    run.heap.label().to_owned(),
                    s.step.label().to_owned(),
                    s.rss_bytes.to_string(),
                    s.live_bytes.to_string(),
                    s.heap.footprint_bytes.to_string(),
                    s.heap.free_bytes.to_string(),
                    s.heap.free_blocks.to_string(),
                    s.heap.largest_free.to_string(),
                    s.heap.deferred_blocks.map_or(String::new(), |d| d.to_string()),
                    format!("{:.6}", s.heap.external_fragmentation()),
                ]);
            }
        }
        let mut internal = Table::new(
            "",
            &[
                "heap",
                "pass",
                "request_bytes",
                "blocks",
                "requested_bytes",
                "usable_bytes",
                "handed_out_bytes",
                "internal_fragmentation",
            ],
        );
        for p in &self.internal {
            for g in &p.report.groups {
                internal.push(vec![
                    p.heap.label().to_owned(),
                    p.pass.label(&self.options),
                    g.size.to_string(),
                    g.blocks.to_string(),
                    g.requested_bytes.to_string(),
                    g.usable_bytes.to_string(),
                    g.handed_out_bytes.to_string(),
                    format!("{:.6}", g.internal_fragmentation()),
                ]);
            }
        }
        vec![
            CsvFile { file_name: "fragmentation.csv".into(), table },
            CsvFile { file_name: "internal_fragmentation.csv".into(), table: internal },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let series =
            |name: String, report: &FragmentationReport, value: &dyn Fn(&StepFigures) -> f64| Series {
                name,
                points: report.steps.iter().enumerate().map(|(i, s)| (i as f64, value(s))).collect(),
            };
        let mut memory = Vec::new();
        let mut fragmentation = Vec::new();
        for run in &self.runs {
            memory.push(series(format!("{} RSS", run.heap.label()), &run.report, &|s| mib(s.rss_bytes)));
            fragmentation.push(series(run.heap.label().to_owned(), &run.report, &|s| {
                100.0 * s.heap.external_fragmentation()
            }));
        }
        if let Some(run) = self.runs.first() {
            memory.push(series("live bytes".to_owned(), &run.report, &|s| mib(s.live_bytes)));
        }
        let x_label = "step (1 all live, 2 every other freed, 3 large, 4 rest freed, 5 large again)";
        vec![Chart {
            file_name: "fragmentation.png".into(),
            caption: "RSS and external fragmentation after each step, glibc and allockit's free list".into(),
            kind: ChartKind::Lines(vec![
                LinePanel {
                    title: "Resident memory vs live bytes".into(),
                    x_label: x_label.into(),
                    y_label: "MiB".into(),
                    series: memory,
                },
                LinePanel {
                    title: "External fragmentation (1 - largest free / free)".into(),
                    x_label: x_label.into(),
                    y_label: "%".into(),
                    series: fragmentation,
                },
            ]),
        }]
    }

    fn explanation(&self) -> String {
        let mut text = String::from("### Why coalescing matters\n\n");
        let _ = write!(
            text,
            "Freeing every other block leaves half the memory free, yet in holes of one small block \
             each: external fragmentation near 100%, and a request for {large} bytes cannot use any \
             of them. Both heaps serve it from memory that never held a small block — the top of the \
             heap or a new segment — so the footprint grows while megabytes sit free. Freeing a hole's \
             neighbours is what lets a heap merge them: with boundary tags (a size word at both ends \
             of every block) the free list finds both neighbours of a freed block in O(1) and joins \
             them, so after the rest is freed the holes are one block again and the same request is \
             carved out of them. A heap that never coalesced would keep {holes} holes and grow for \
             every larger request: its footprint would only ever rise.\n\n",
            large = self.options.large_size,
            holes = self.options.blocks,
        );
        text.push_str(
            "glibc coalesces most chunks when they are freed, but not the small ones: chunks up to \
             128 bytes go to a thread cache (seven per size) and then to *fast bins*, singly linked \
             lists that skip coalescing to keep `free` cheap. They are merged in bulk \
             (`malloc_consolidate`) when a large request (1 KiB or more) arrives, which is why glibc's \
             free-block count stays near the number of blocks after step 4 and collapses only in \
             step 5. The seven chunks in the thread cache stay \"in use\" for glibc and split the \
             merged space into a few pieces.\n\n\
             Neither heap gives memory back during the experiment: glibc returns memory to the \
             kernel only from the top of its heap (or with `malloc_trim`), and the free list keeps \
             what it took from its reservation. RSS therefore stays at its peak while half, then \
             all, of the small blocks are free: fragmentation costs resident memory even when no \
             byte leaks. (Over allockit's chunk source instead, the free list gives a segment back \
             as soon as it is entirely free, and the source decommits idle chunks above its \
             retention cap.)\n\n",
        );
        text.push_str(
            "### Internal and external fragmentation\n\n\
             *External* fragmentation is free memory the heap holds in pieces too small for the \
             request at hand: it appears when blocks are freed between live ones, and coalescing, \
             placement and compaction fight it. *Internal* fragmentation is memory inside the \
             blocks handed out that nobody asked for: the request rounded up to the heap's \
             granularity or class, and the tags or headers each block carries. It is fixed at \
             allocation time and stays until the block is freed.\n\n\
             The two designs trade one for the other. A free list cuts a block to the request \
             (16-byte granularity), so its rounding stays under 16 bytes, but it pays 16 bytes of \
             tags per block (glibc 8) — most of a 24-byte request — and, once blocks of mixed \
             sizes die in any order, its holes are of every size: external fragmentation. A \
             size-class heap keeps no per-block metadata and puts each size in slabs of its own \
             class, so a freed slot fits the next request of its class exactly: no hole is too \
             small for the requests that go there, and 'largest free block' has no meaning. It \
             pays for that up front, rounding every request up to its class: by up to one class \
             spacing, a quarter of the power of two below the request, which is up to 20% of \
             the request above 64 bytes (65 → 80, 257 → 320, 1100 → 1280); and its free \
             memory is stranded per class: free slots of one class cannot serve another.\n",
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_overlapping_a_freed_block_reused_its_memory() {
        let options = FragmentationOptions { blocks: 8, block_size: 64, large_size: 256 };
        let freed = [1000, 1128, 1256];
        let at = |address: usize| NonNull::new(std::ptr::without_provenance_mut(address));
        assert_eq!(origin(at(1100), &freed, &options), Origin::SmallBlockMemory);
        assert_eq!(origin(at(1320), &freed, &options), Origin::FreshMemory);
        assert_eq!(origin(at(700), &freed, &options), Origin::FreshMemory);
        assert_eq!(origin(at(745), &freed, &options), Origin::SmallBlockMemory);
        assert_eq!(origin(None, &freed, &options), Origin::Refused);
    }

    #[test]
    fn sizes_that_show_nothing_are_refused_naming_the_flag() {
        let base = FragmentationOptions::quick();
        let cases = [
            (FragmentationOptions { blocks: 2, ..base }, "--blocks"),
            (FragmentationOptions { block_size: 0, ..base }, "--block-size"),
            (FragmentationOptions { large_size: 100, ..base }, "--large-size"),
            (FragmentationOptions { large_size: MAX_LARGE_SIZE + 1, ..base }, "--large-size"),
            (FragmentationOptions { blocks: 100, ..base }, "--large-size"),
        ];
        for (options, flag) in cases {
            let err = options.validate().unwrap_err();
            assert!(err.to_string().contains(flag), "{options:?}: {err}");
        }
        assert!(base.validate().is_ok());
        assert!(FragmentationOptions::full().validate().is_ok());
    }

    #[test]
    fn the_free_list_serves_the_large_block_from_holes_only_after_coalescing() {
        let options = FragmentationOptions { blocks: 2000, block_size: 64, large_size: 1024 };
        let report = run_steps(&mut FreeListHeap::new(&options), &options).unwrap();
        assert_eq!(report.large_before, Origin::FreshMemory);
        assert_eq!(report.large_after, Origin::SmallBlockMemory);
        let holes = report.at(Step::EveryOtherFreed).unwrap();
        assert!(holes.heap.free_blocks >= 1000, "{holes:?}");
        let rest = report.at(Step::RestFreed).unwrap();
        assert!(rest.heap.free_blocks <= 2, "the holes merged into one block below the large one: {rest:?}");
    }
}
