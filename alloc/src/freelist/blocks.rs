//! The boundary-tag engine under [`super::FreeList`]: block layout, the explicit free
//! list, placement, split, coalesce, segments and the heap walk of `check`.
//!
//! Everything here works on raw addresses and trusts its caller (the `FreeList` front,
//! which owns the memory and serialises access). The layout, written once:
//!
//! ```text
//! segment:  | Segment (32) | prologue (8) | block | block | ... | block | epilogue (8) |
//! block:    | header (8) | payload ............................ | footer (8) |
//! free:     | header (8) | prev (8) | next (8) | ............... | footer (8) |
//! ```
//!
//! * A block starts 8 bytes below a 16-byte boundary, so every payload is 16-aligned;
//!   block sizes are multiples of 16, at least [`MIN_BLOCK`]. The header and the footer
//!   hold the same word: the block size with [`IN_USE`] in bit 0.
//! * The prologue (a footer) and the epilogue (a header) are "in use, size 0": they stop
//!   coalescing at the ends of a segment without a bounds check.
//! * Invariants (what [`Blocks::check`] verifies): header == footer for every block; no two
//!   free blocks are adjacent; the free list holds exactly the free blocks, with
//!   consistent back links; block sizes add up to each segment; the counters match.
//! * Guard build (the `guard` feature): every byte of a free block between its links and
//!   its footer reads [`POISON_FREED`](guard::POISON_FREED) — freed payloads, the tags and
//!   links a coalesce leaves inside a larger block, fresh segments. So a block that is
//!   handed out again must still hold the poison past its first two words (the front
//!   checks it: a write after free), and the header of a block that was freed and
//!   coalesced into its lower neighbour no longer reads as in use (a second free of it is
//!   a double free, [`Blocks::validate_in_use`]).

use core::ptr;

use crate::guard;
use crate::source::Span;

/// Bytes of a header or footer word.
pub(super) const WORD: usize = size_of::<usize>();
/// Payload alignment and block-size granularity.
pub(super) const ALIGN: usize = 16;
/// Header and footer together.
pub(super) const OVERHEAD: usize = 2 * WORD;
/// The smallest block: header, two free-list links, footer. A remainder smaller than this
/// is not split off.
pub(super) const MIN_BLOCK: usize = 32;
/// The words at the start of a free block that are not poison in the guard build: the
/// header and the two free-list links.
const FREE_HEAD: usize = WORD + size_of::<Links>();
/// Bit 0 of a tag: the block is handed out (or is a sentinel).
const IN_USE: usize = 1;
/// Bit 1 of a header: set on free blocks while `check` walks the free list.
const LISTED: usize = 2;
const FLAGS: usize = ALIGN - 1;
/// Offset of the first block from the segment start: the header, then the prologue.
const FIRST_BLOCK: usize = size_of::<Segment>() + WORD;
/// Bytes a segment needs beyond its blocks: header, prologue, epilogue, alignment slack.
pub(super) const SEGMENT_OVERHEAD: usize = FIRST_BLOCK + WORD + ALIGN;

/// The block size (tags included) that holds `size` payload bytes.
#[inline]
pub(super) fn block_size_for(size: usize) -> usize {
    // `size` comes from a `Layout`, so it is at most isize::MAX and this cannot overflow.
    ((size + OVERHEAD + ALIGN - 1) & !FLAGS).max(MIN_BLOCK)
}

/// The placement policy: which free block serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Placement {
    /// The first block on the free list that fits. The list is LIFO, so this is the
    /// most recently freed block that fits: fast, warm in cache.
    #[default]
    FirstFit,
    /// Like first fit, but each search starts where the previous one stopped (a roving
    /// pointer): spreads allocations over the heap.
    NextFit,
    /// The smallest block that fits, found by walking the whole free list (stops early on
    /// an exact fit): least waste, highest cost.
    BestFit,
}

impl Placement {
    /// Every policy, in a stable order.
    pub const ALL: [Placement; 3] = [Placement::FirstFit, Placement::NextFit, Placement::BestFit];

    /// A short name: `first-fit`, `next-fit` or `best-fit`.
    pub fn name(self) -> &'static str {
        match self {
            Placement::FirstFit => "first-fit",
            Placement::NextFit => "next-fit",
            Placement::BestFit => "best-fit",
        }
    }
}

/// Where a freed block joins the free list (the second half of a placement policy: first
/// fit over a LIFO list and over a FIFO list fragment very differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum FreeOrder {
    /// At the head: the most recently freed block is tried first, warm in cache. Fast;
    /// fragments more (freed holes of every size crowd the front).
    #[default]
    Lifo,
    /// At the tail: the oldest free block is tried first. Johnstone and Wilson (1998) found
    /// FIFO first fit about as tight as address-ordered first fit, at O(1) insertion;
    /// searches are longer.
    Fifo,
}

/// A heap invariant that [`super::FreeList::check`] found broken. Addresses are plain
/// numbers so that the error can travel anywhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeapCorruption {
    /// A block's header and footer differ.
    #[error("block {block:#x}: header {header:#x} differs from footer {footer:#x}")]
    TagMismatch {
        /// The block's address.
        block: usize,
        /// The header word.
        header: usize,
        /// The footer word.
        footer: usize,
    },
    /// A block's size is malformed or runs past its segment.
    #[error("block {block:#x}: size {size} is not a multiple of 16 of at least 32 inside its segment")]
    BadSize {
        /// The block's address.
        block: usize,
        /// The size it claims.
        size: usize,
    },
    /// Two neighbours are both free: a coalesce was missed.
    #[error("blocks {first:#x} and {second:#x} are neighbours and both free")]
    AdjacentFree {
        /// The lower block.
        first: usize,
        /// The upper block.
        second: usize,
    },
    /// A free block is missing from the free list.
    #[error("free block {block:#x} is not on the free list")]
    FreeNotListed {
        /// The block's address.
        block: usize,
    },
    /// The free list holds something that is not a free block of this heap.
    #[error("free-list entry {block:#x} is not a free block of this heap")]
    StrayListEntry {
        /// The entry's address.
        block: usize,
    },
    /// A free-list back link does not point to the previous entry.
    #[error("free-list link broken at {block:#x}")]
    BrokenLink {
        /// The entry whose back link is wrong.
        block: usize,
    },
    /// The free list is longer than the free-block counter (a cycle, or a lost count).
    #[error("the free list holds {listed} entries, the counter says {counted}")]
    FreeCount {
        /// Entries walked.
        listed: usize,
        /// The counter.
        counted: usize,
    },
    /// The free-byte counter disagrees with the walk.
    #[error("free blocks add up to {walked} bytes, the counter says {counted}")]
    FreeBytes {
        /// Bytes found by the walk.
        walked: usize,
        /// The counter.
        counted: usize,
    },
    /// A segment's blocks do not add up to the segment, or a sentinel is damaged.
    #[error("segment {segment:#x}: blocks add up to {walked} bytes, the segment holds {expected}")]
    SegmentSize {
        /// The segment's address.
        segment: usize,
        /// Bytes of blocks walked.
        walked: usize,
        /// Bytes the segment has room for.
        expected: usize,
    },
    /// Segments add up to a different footprint than the counter says.
    #[error("segments hold {walked} bytes, the footprint counter says {counted}")]
    Footprint {
        /// Bytes of the segments' spans.
        walked: usize,
        /// The counter.
        counted: usize,
    },
    /// A pointer given to free or realloc lies in a free block: the block was freed
    /// already (a double free, or a use after free), possibly coalesced with a neighbour
    /// since.
    #[error("{ptr:#x} lies in a free block (freed already)")]
    AlreadyFree {
        /// The pointer.
        ptr: usize,
    },
    /// A pointer given to free or realloc is not the start of a block in use: a pointer
    /// this heap never handed out, one into the middle of a block, or a damaged header.
    #[error(
        "{ptr:#x} is not a block in use of this heap (a foreign or interior pointer, or a damaged header)"
    )]
    NotInUse {
        /// The pointer.
        ptr: usize,
    },
}

/// The header of a segment: one span taken from the source.
#[repr(C)]
struct Segment {
    next: *mut Segment,
    prev: *mut Segment,
    span: *mut u8,
    span_len: usize,
}

/// The links at the start of a free block's payload.
#[repr(C)]
struct Links {
    prev: *mut u8,
    next: *mut u8,
}

#[inline(always)]
unsafe fn tag(block: *mut u8) -> usize {
    // SAFETY: the caller passes the address of a block (or sentinel) of a live segment.
    unsafe { block.cast::<usize>().read() }
}

#[inline(always)]
unsafe fn size_of_block(block: *mut u8) -> usize {
    // SAFETY: forwarded.
    unsafe { tag(block) & !FLAGS }
}

#[inline(always)]
unsafe fn is_free(block: *mut u8) -> bool {
    // SAFETY: forwarded.
    unsafe { tag(block) & IN_USE == 0 }
}

#[inline(always)]
unsafe fn set_tags(block: *mut u8, size: usize, in_use: bool) {
    let word = size | in_use as usize;
    // SAFETY: the caller owns [block, block + size) inside a segment.
    unsafe {
        block.cast::<usize>().write(word);
        block.add(size - WORD).cast::<usize>().write(word);
    }
}

/// The split rule, written once: a free block of `size` bytes put in use for `need` bytes
/// (`need <= size`) gives up its tail when the tail can be a block of its own (at least
/// [`MIN_BLOCK`]) and keeps it otherwise (a smaller tail could never be handed out).
/// Writes the in-use tags of what the block keeps and returns the tail (its address and
/// size), whose tags and free-list place are the caller's to set, or `None`.
#[inline(always)]
unsafe fn split(block: *mut u8, size: usize, need: usize) -> Option<(*mut u8, usize)> {
    let rest = size - need;
    // SAFETY: the caller owns [block, block + size) inside a segment.
    unsafe {
        if rest < MIN_BLOCK {
            set_tags(block, size, true);
            return None;
        }
        set_tags(block, need, true);
        Some((block.add(need), rest))
    }
}

/// Fills `[from, to)` with freed-memory poison in the guard build (nothing otherwise, or
/// when the range is empty).
#[inline(always)]
unsafe fn poison_range(from: *mut u8, to: *mut u8) {
    if guard::ENABLED && to > from {
        // SAFETY: the caller owns the range, which holds nothing live.
        unsafe { guard::poison(from, to.addr() - from.addr()) };
    }
}

#[inline(always)]
unsafe fn links(block: *mut u8) -> *mut Links {
    // SAFETY: a free block is at least MIN_BLOCK long, so its links fit after the header.
    unsafe { block.add(WORD).cast::<Links>() }
}

fn segment_end(segment: *mut Segment) -> *mut u8 {
    // SAFETY: read by callers only for live segments.
    let (span, len) = unsafe { ((*segment).span, (*segment).span_len) };
    span.wrapping_add(len).map_addr(|a| a & !FLAGS)
}

/// The blocks of a heap: the free list, the segments and the counters.
///
/// Invariant: every segment in `segments` is a span this heap owns, laid out as in the
/// module docs; `free_head`..`free_tail` is the free list of exactly its free blocks, in
/// the order `push_free` describes; `rover` is null or on the free list.
pub(super) struct Blocks {
    free_head: *mut u8,
    free_tail: *mut u8,
    rover: *mut u8,
    segments: *mut Segment,
    pub(super) placement: Placement,
    pub(super) order: FreeOrder,
    pub(super) free_bytes: usize,
    pub(super) free_blocks: usize,
    pub(super) segment_count: usize,
    pub(super) footprint: usize,
    pub(super) peak_footprint: usize,
    /// Free-list entries looked at by allocation searches, over the heap's life: the work
    /// the placement policy does, which no other counter shows.
    pub(super) searched: u64,
}

impl Blocks {
    pub(super) const fn new(placement: Placement, order: FreeOrder) -> Self {
        Self {
            free_head: ptr::null_mut(),
            free_tail: ptr::null_mut(),
            rover: ptr::null_mut(),
            segments: ptr::null_mut(),
            placement,
            order,
            free_bytes: 0,
            free_blocks: 0,
            segment_count: 0,
            footprint: 0,
            peak_footprint: 0,
            searched: 0,
        }
    }

    /// Puts a free block on the list. A block that borders its segment's epilogue (the
    /// wilderness) goes to the tail, so that holes are reused before fresh memory is cut
    /// into (Wilson et al.'s wilderness preservation, which keeps first and next fit from
    /// spreading over the whole segment). Others go to the head ([`FreeOrder::Lifo`]) or
    /// to the tail, before a wilderness there ([`FreeOrder::Fifo`]).
    #[inline(always)]
    unsafe fn push_free(&mut self, block: *mut u8) {
        // SAFETY: `block` is a free block of ours, off the list; the word after it, and
        // after the tail block, is a block header or an epilogue.
        unsafe {
            let size = size_of_block(block);
            self.free_bytes += size;
            self.free_blocks += 1;
            let tail = self.free_tail;
            if tail.is_null() {
                links(block).write(Links { prev: ptr::null_mut(), next: ptr::null_mut() });
                self.free_head = block;
                self.free_tail = block;
                return;
            }
            let wilderness = tag(block.add(size)) == IN_USE;
            if !wilderness && self.order == FreeOrder::Lifo {
                links(block).write(Links { prev: ptr::null_mut(), next: self.free_head });
                (*links(self.free_head)).prev = block;
                self.free_head = block;
                return;
            }
            if wilderness || tag(tail.add(size_of_block(tail))) != IN_USE {
                links(block).write(Links { prev: tail, next: ptr::null_mut() });
                (*links(tail)).next = block;
                self.free_tail = block;
                return;
            }
            let before = (*links(tail)).prev;
            links(block).write(Links { prev: before, next: tail });
            self.relink(before, tail, block, block);
        }
    }

    /// Points the free list's link that led to a block at `after_prev` (`prev`'s next, or
    /// the head when `prev` is null) and the one that led back to it at `before_next`
    /// (`next`'s prev, or the tail when `next` is null).
    #[inline(always)]
    unsafe fn relink(&mut self, prev: *mut u8, next: *mut u8, after_prev: *mut u8, before_next: *mut u8) {
        // SAFETY: `prev` and `next`, when not null, are blocks on the free list.
        unsafe {
            if prev.is_null() {
                self.free_head = after_prev;
            } else {
                (*links(prev)).next = after_prev;
            }
            if next.is_null() {
                self.free_tail = before_next;
            } else {
                (*links(next)).prev = before_next;
            }
        }
    }

    #[inline(always)]
    unsafe fn unlink_free(&mut self, block: *mut u8) {
        // SAFETY: `block` is on the free list.
        unsafe {
            let Links { prev, next } = links(block).read();
            self.relink(prev, next, next, prev);
            if self.rover == block {
                self.rover = next;
            }
            self.free_bytes -= size_of_block(block);
        }
        self.free_blocks -= 1;
    }

    /// Bytes to skip at the start of free block `block` (of `size` bytes) so that a block
    /// of `need` bytes after them has a payload aligned to `align`; `None` if it won't fit.
    #[inline(always)]
    fn lead_for(block: *mut u8, size: usize, need: usize, align: usize) -> Option<usize> {
        if align <= ALIGN {
            return (size >= need).then_some(0);
        }
        let payload = block.addr() + WORD;
        // A lead must be a whole free block, so skip at least MIN_BLOCK.
        let lead = if payload.is_multiple_of(align) {
            0
        } else {
            (payload + MIN_BLOCK).next_multiple_of(align) - payload
        };
        (size >= lead.checked_add(need)?).then_some(lead)
    }

    /// Finds a free block for `need` bytes aligned to `align`, by the placement policy.
    /// Returns the block and the lead to skip. Adds the entries it looked at to `searched`
    /// (one add per search; the count itself lives in a register).
    #[inline]
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<(*mut u8, usize)> {
        let mut looked_at = 0u64;
        // SAFETY: every entry of the free list is a free block of a live segment, so
        // reading its tag and its links is valid; the walks stop at the null end.
        let found = unsafe {
            match self.placement {
                Placement::FirstFit => {
                    let mut block = self.free_head;
                    let mut found = None;
                    while !block.is_null() {
                        looked_at += 1;
                        if let Some(lead) = Self::lead_for(block, size_of_block(block), need, align) {
                            found = Some((block, lead));
                            break;
                        }
                        block = (*links(block)).next;
                    }
                    found
                }
                Placement::NextFit => {
                    let start = if self.rover.is_null() { self.free_head } else { self.rover };
                    let mut block = start;
                    let mut found = None;
                    while !block.is_null() {
                        looked_at += 1;
                        if let Some(lead) = Self::lead_for(block, size_of_block(block), need, align) {
                            found = Some((block, lead));
                            break;
                        }
                        block = (*links(block)).next;
                        if block.is_null() && start != self.free_head {
                            block = self.free_head;
                        }
                        if block == start {
                            break;
                        }
                    }
                    found
                }
                Placement::BestFit => {
                    let mut best: Option<(*mut u8, usize, usize)> = None;
                    let mut block = self.free_head;
                    while !block.is_null() {
                        looked_at += 1;
                        let size = size_of_block(block);
                        if let Some(lead) = Self::lead_for(block, size, need, align)
                            && best.is_none_or(|(_, _, best_size)| size < best_size)
                        {
                            best = Some((block, lead, size));
                            if size == need + lead {
                                break;
                            }
                        }
                        block = (*links(block)).next;
                    }
                    best.map(|(block, lead, _)| (block, lead))
                }
            }
        };
        self.searched += looked_at;
        found
    }

    /// Allocates a block of `need` bytes (from [`block_size_for`]) whose payload is
    /// aligned to `align`. Returns the payload, or `None` if no free block fits.
    #[inline]
    pub(super) unsafe fn allocate(&mut self, need: usize, align: usize) -> Option<*mut u8> {
        // SAFETY: `find` returns a free block of ours with room for lead + need.
        unsafe {
            let (block, lead) = self.find(need, align)?;
            Some(self.place(block, lead, need))
        }
    }

    /// Carves `need` bytes out of free block `block` after skipping `lead` bytes. The lead
    /// stays a free block in the block's place on the list; a tail of at least MIN_BLOCK
    /// is split off as a free block (taking the block's place on the list when there is
    /// no lead, as dlmalloc's "last remainder" does); a smaller tail stays in the block.
    #[inline]
    unsafe fn place(&mut self, block: *mut u8, lead: usize, need: usize) -> *mut u8 {
        // SAFETY: `block` is a free block of ours with at least lead + need bytes; its
        // neighbours are in use (no two free blocks are adjacent), so the pieces left free
        // need no coalescing. Links are read before any tag write could touch them.
        unsafe {
            let size = size_of_block(block);
            if lead > 0 {
                set_tags(block, lead, false);
                self.free_bytes -= size - lead;
                let taken = block.add(lead);
                if let Some((tail, tail_size)) = split(taken, size - lead, need) {
                    set_tags(tail, tail_size, false);
                    self.push_free(tail);
                }
                return taken.add(WORD);
            }
            let Links { prev, next } = links(block).read();
            match split(block, size, need) {
                Some((rest, rest_size)) => {
                    set_tags(rest, rest_size, false);
                    links(rest).write(Links { prev, next });
                    self.relink(prev, next, rest, rest);
                    // Next fit resumes in the remainder; but the wilderness nearly always
                    // fits, so after cutting into it the search wraps to the head, or next
                    // fit would never reuse a hole again.
                    let wilderness = tag(rest.add(rest_size)) == IN_USE;
                    self.rover = if wilderness { ptr::null_mut() } else { rest };
                    self.free_bytes -= need;
                }
                None => {
                    // `split` kept the whole block, so its size (which `unlink_free`
                    // reads) and its links are unchanged.
                    self.unlink_free(block);
                    self.rover = next;
                }
            }
            block.add(WORD)
        }
    }

    /// Checks that `payload` is a block in use whose tags agree: the guard build's check
    /// of a pointer given to free or realloc. O(segments) when it is; when it is not, a
    /// walk of its segment says what it is instead ([`HeapCorruption::AlreadyFree`] for a
    /// pointer into a free block: a double free, even one coalesced away since).
    pub(super) fn validate_in_use(&self, payload: *mut u8) -> Result<(), HeapCorruption> {
        let ptr = payload.addr();
        let block = payload.wrapping_sub(WORD);
        let Some(segment) = self.segment_of(block) else {
            return Err(HeapCorruption::NotInUse { ptr });
        };
        if !ptr.is_multiple_of(ALIGN) {
            return Err(HeapCorruption::NotInUse { ptr });
        }
        let epilogue = segment_end(segment).wrapping_sub(WORD);
        // SAFETY: `block` lies in the segment, below its epilogue, so its word is readable;
        // the footer is read only once the size is known to stay inside the segment.
        unsafe {
            let header = tag(block);
            let size = header & !FLAGS;
            if header & FLAGS == IN_USE
                && size >= MIN_BLOCK
                && size.is_multiple_of(ALIGN)
                && size <= epilogue.addr() - block.addr()
            {
                let footer = tag(block.add(size - WORD));
                if footer != header {
                    return Err(HeapCorruption::TagMismatch { block: block.addr(), header, footer });
                }
                return Ok(());
            }
        }
        Err(self.classify(segment, block))
    }

    /// What `block` (not a block in use) is, by walking its segment: inside a free block
    /// is [`HeapCorruption::AlreadyFree`]; anything else [`HeapCorruption::NotInUse`], or the
    /// damage the walk meets first.
    fn classify(&self, segment: *mut Segment, block: *mut u8) -> HeapCorruption {
        let ptr = block.addr() + WORD;
        let first = segment.cast::<u8>().wrapping_add(FIRST_BLOCK);
        let epilogue = segment_end(segment).wrapping_sub(WORD);
        let mut walked = first;
        while walked < epilogue {
            // SAFETY: `walked` is a block start inside the segment; its size is checked
            // before it is used to find the next one.
            let header = unsafe { tag(walked) };
            let size = header & !FLAGS;
            if size < MIN_BLOCK || !size.is_multiple_of(ALIGN) || size > epilogue.addr() - walked.addr() {
                return HeapCorruption::BadSize { block: walked.addr(), size };
            }
            if block < walked.wrapping_add(size) {
                return if header & IN_USE == 0 {
                    HeapCorruption::AlreadyFree { ptr }
                } else {
                    HeapCorruption::NotInUse { ptr }
                };
            }
            walked = walked.wrapping_add(size);
        }
        HeapCorruption::NotInUse { ptr }
    }

    /// The payload bytes of the block in use at `payload`.
    #[inline]
    pub(super) unsafe fn payload_capacity(payload: *mut u8) -> usize {
        // SAFETY: the caller passes a payload of a block in use.
        unsafe { size_of_block(payload.sub(WORD)) - OVERHEAD }
    }

    /// Frees the block at `payload`, coalescing with free neighbours on both sides.
    /// Returns the resulting free block and its size. In the guard build the payload and
    /// every tag and link the coalesce leaves inside the merged block become poison: the
    /// freed block's own header too, when it merges into its lower neighbour, so that it
    /// no longer reads as in use.
    #[inline]
    pub(super) unsafe fn free(&mut self, payload: *mut u8) -> (*mut u8, usize) {
        // SAFETY: `payload` is a block in use of ours; its neighbours' tags are readable
        // (sentinels bound every segment). Poison is written only inside the merged block,
        // after the links it covers were read.
        unsafe {
            let freed = payload.sub(WORD);
            let mut block = freed;
            let mut size = size_of_block(block);
            let next = block.add(size);
            poison_range(payload, next.sub(WORD));
            let previous_footer = block.sub(WORD).cast::<usize>().read();
            if previous_footer & IN_USE == 0 {
                let previous_size = previous_footer & !FLAGS;
                block = block.sub(previous_size);
                self.unlink_free(block);
                size += previous_size;
                poison_range(freed.sub(WORD), freed.add(WORD));
            }
            if is_free(next) {
                let next_size = size_of_block(next);
                self.unlink_free(next);
                size += next_size;
                poison_range(next.sub(WORD), next.add(FREE_HEAD));
            }
            set_tags(block, size, false);
            self.push_free(block);
            (block, size)
        }
    }

    /// Resizes the block at `payload` in place to `need` bytes: shrinks (splitting off the
    /// tail when it is at least MIN_BLOCK) or grows into a free next neighbour. Returns
    /// false, changing nothing, when it cannot.
    #[inline]
    pub(super) unsafe fn resize_in_place(&mut self, payload: *mut u8, need: usize) -> bool {
        // SAFETY: `payload` is a block in use of ours; its next neighbour's tag is readable.
        unsafe {
            let block = payload.sub(WORD);
            let size = size_of_block(block);
            let next = block.add(size);
            if need <= size {
                if let Some((tail, mut tail_size)) = split(block, size, need) {
                    let mut stale_end = next;
                    if is_free(next) {
                        tail_size += size_of_block(next);
                        self.unlink_free(next);
                        stale_end = next.add(FREE_HEAD);
                    }
                    // The tail held the caller's data (and, when it merged, the next
                    // block's header and links): free memory reads as poison.
                    poison_range(tail.add(FREE_HEAD), stale_end);
                    set_tags(tail, tail_size, false);
                    self.push_free(tail);
                }
                return true;
            }
            if !is_free(next) {
                return false;
            }
            let total = size + size_of_block(next);
            if total < need {
                return false;
            }
            self.unlink_free(next);
            if let Some((tail, tail_size)) = split(block, total, need) {
                set_tags(tail, tail_size, false);
                self.push_free(tail);
            }
            true
        }
    }

    /// Adds a span as a segment (or, when `join` allows and the span starts where the
    /// newest segment ends, extends that segment). Returns false if the span is too small
    /// to hold a block.
    pub(super) unsafe fn add_span(&mut self, span: &Span, join: bool) -> bool {
        let start = span.as_ptr().as_ptr();
        let len = span.len();
        let newest = self.segments;
        if join && !newest.is_null() && segment_end(newest) == start && start.addr().is_multiple_of(ALIGN) {
            // SAFETY: the span directly follows our newest segment and is ours now.
            unsafe { self.extend_segment(newest, start, len) };
            return true;
        }
        let segment_addr = start.addr().next_multiple_of(ALIGN);
        let end = start.addr().saturating_add(len) & !FLAGS;
        if end < segment_addr + FIRST_BLOCK + MIN_BLOCK + WORD {
            return false;
        }
        let segment = start.with_addr(segment_addr).cast::<Segment>();
        // SAFETY: [segment, end) lies in the span, which is ours; the layout follows the
        // module docs.
        unsafe {
            segment.write(Segment { next: self.segments, prev: ptr::null_mut(), span: start, span_len: len });
            if !self.segments.is_null() {
                (*self.segments).prev = segment;
            }
            let first = segment.cast::<u8>().add(FIRST_BLOCK);
            first.sub(WORD).cast::<usize>().write(IN_USE);
            let epilogue = start.with_addr(end - WORD);
            epilogue.cast::<usize>().write(IN_USE);
            set_tags(first, epilogue.addr() - first.addr(), false);
            poison_range(first.add(FREE_HEAD), epilogue.sub(WORD));
            self.push_free(first);
        }
        self.segments = segment;
        self.segment_count += 1;
        self.footprint += len;
        self.peak_footprint = self.peak_footprint.max(self.footprint);
        true
    }

    /// Turns the old epilogue of `segment` into a free block covering the new span, with
    /// a new epilogue at its end, and coalesces it with a free last block.
    unsafe fn extend_segment(&mut self, segment: *mut Segment, start: *mut u8, len: usize) {
        // SAFETY: the old epilogue sits at start - WORD, inside our segment; the new span
        // follows it directly and is ours.
        unsafe {
            let old_epilogue = start.sub(WORD);
            (*segment).span_len += len;
            let new_end = segment_end(segment);
            let new_epilogue = new_end.sub(WORD);
            new_epilogue.cast::<usize>().write(IN_USE);
            let mut block = old_epilogue;
            let mut size = new_epilogue.addr() - old_epilogue.addr();
            let mut stale = old_epilogue.add(FREE_HEAD);
            let previous_footer = block.sub(WORD).cast::<usize>().read();
            if previous_footer & IN_USE == 0 {
                let previous_size = previous_footer & !FLAGS;
                block = block.sub(previous_size);
                self.unlink_free(block);
                size += previous_size;
                stale = old_epilogue.sub(WORD);
            }
            poison_range(stale, new_epilogue.sub(WORD));
            set_tags(block, size, false);
            self.push_free(block);
        }
        self.footprint += len;
        self.peak_footprint = self.peak_footprint.max(self.footprint);
    }

    /// If free block `block` covers its whole segment and another segment remains, takes
    /// the segment out of the heap and returns its span for the caller to give back.
    pub(super) unsafe fn release_if_empty(&mut self, block: *mut u8, size: usize) -> Option<Span> {
        if self.segment_count <= 1 {
            return None;
        }
        // SAFETY: `block` is a free block of ours; the words before and after it are the
        // neighbours' tags or sentinels.
        unsafe {
            let after_prologue = block.sub(WORD).cast::<usize>().read() == IN_USE;
            let before_epilogue = tag(block.add(size)) == IN_USE;
            if !(after_prologue && before_epilogue) {
                return None;
            }
            self.unlink_free(block);
            let segment = block.sub(FIRST_BLOCK).cast::<Segment>();
            let Segment { next, prev, span, span_len } = segment.read();
            if prev.is_null() {
                self.segments = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            self.segment_count -= 1;
            self.footprint -= span_len;
            Some(Span::new(ptr::NonNull::new_unchecked(span), span_len))
        }
    }

    /// Takes every segment out of the heap, returning their spans (for drop).
    pub(super) fn take_all_spans(&mut self) -> impl Iterator<Item = Span> {
        let mut segment = core::mem::replace(&mut self.segments, ptr::null_mut());
        *self = Self::new(self.placement, self.order);
        core::iter::from_fn(move || {
            if segment.is_null() {
                return None;
            }
            // SAFETY: the list was ours and is now detached; each header is read once.
            let Segment { next, span, span_len, .. } = unsafe { segment.read() };
            segment = next;
            // SAFETY: the span was handed to us by the source and is not used any more.
            Some(unsafe { Span::new(ptr::NonNull::new_unchecked(span), span_len) })
        })
    }

    /// The largest free block, by walking the free list.
    pub(super) fn largest_free(&self) -> usize {
        let mut largest = 0;
        let mut block = self.free_head;
        while !block.is_null() {
            // SAFETY: free-list entries are free blocks of live segments.
            unsafe {
                largest = largest.max(size_of_block(block));
                block = (*links(block)).next;
            }
        }
        largest
    }

    fn segment_containing(&self, block: *mut u8) -> bool {
        self.segment_of(block).is_some()
    }

    /// The segment whose blocks (between the prologue and the epilogue) hold `block`.
    fn segment_of(&self, block: *mut u8) -> Option<*mut Segment> {
        let mut segment = self.segments;
        while !segment.is_null() {
            let first = segment.cast::<u8>().wrapping_add(FIRST_BLOCK);
            let epilogue = segment_end(segment).wrapping_sub(WORD);
            if block >= first && block < epilogue {
                return Some(segment);
            }
            // SAFETY: a live segment header.
            segment = unsafe { (*segment).next };
        }
        None
    }

    /// Walks the free list and every segment and verifies every invariant.
    pub(super) fn check(&mut self) -> Result<(), HeapCorruption> {
        let listed = self.mark_listed()?;
        let walked = self.walk_segments();
        if walked.is_err() {
            // The segment walk stopped early: clear the marks it did not reach. The list
            // walk verified `listed` entries, so walking that far again is safe.
            self.clear_marks(listed);
        }
        walked
    }

    /// Walks the free list, verifying each entry and marking its header LISTED. Returns
    /// the number of entries.
    fn mark_listed(&mut self) -> Result<usize, HeapCorruption> {
        let mut listed = 0;
        let mut previous = ptr::null_mut();
        let mut block = self.free_head;
        while !block.is_null() {
            if listed == self.free_blocks {
                self.clear_marks(listed);
                return Err(HeapCorruption::FreeCount { listed: listed + 1, counted: self.free_blocks });
            }
            if !block.addr().is_multiple_of(WORD) || !self.segment_containing(block) {
                self.clear_marks(listed);
                return Err(HeapCorruption::StrayListEntry { block: block.addr() });
            }
            // SAFETY: the entry lies inside one of our segments, so its words are readable.
            unsafe {
                let header = tag(block);
                let size = header & !FLAGS;
                if header & (IN_USE | LISTED) != 0
                    || size < MIN_BLOCK
                    || !self.segment_containing(block.wrapping_add(size - WORD))
                {
                    self.clear_marks(listed);
                    return Err(HeapCorruption::StrayListEntry { block: block.addr() });
                }
                let footer = tag(block.add(size - WORD));
                if footer != header {
                    self.clear_marks(listed);
                    return Err(HeapCorruption::TagMismatch { block: block.addr(), header, footer });
                }
                let Links { prev, next } = links(block).read();
                if prev != previous {
                    self.clear_marks(listed);
                    return Err(HeapCorruption::BrokenLink { block: block.addr() });
                }
                block.cast::<usize>().write(header | LISTED);
                previous = block;
                block = next;
            }
            listed += 1;
        }
        if listed != self.free_blocks {
            self.clear_marks(listed);
            return Err(HeapCorruption::FreeCount { listed, counted: self.free_blocks });
        }
        if previous != self.free_tail {
            self.clear_marks(listed);
            return Err(HeapCorruption::BrokenLink { block: self.free_tail.addr() });
        }
        Ok(listed)
    }

    fn clear_marks(&mut self, entries: usize) {
        let mut block = self.free_head;
        for _ in 0..entries {
            if block.is_null() {
                break;
            }
            // SAFETY: `mark_listed` verified these first `entries` entries.
            unsafe {
                block.cast::<usize>().write(tag(block) & !LISTED);
                block = (*links(block)).next;
            }
        }
    }

    /// Walks every segment block by block, clearing the LISTED marks as it goes.
    fn walk_segments(&mut self) -> Result<(), HeapCorruption> {
        let mut free_bytes = 0;
        let mut free_blocks = 0;
        let mut footprint = 0;
        let mut segment = self.segments;
        while !segment.is_null() {
            let first = segment.cast::<u8>().wrapping_add(FIRST_BLOCK);
            let epilogue = segment_end(segment).wrapping_sub(WORD);
            let expected = epilogue.addr() - first.addr();
            // SAFETY: the sentinels and every block header/footer lie inside the segment;
            // each size is checked before it is used to find the next block.
            unsafe {
                if first.sub(WORD).cast::<usize>().read() != IN_USE || tag(epilogue) != IN_USE {
                    return Err(HeapCorruption::SegmentSize { segment: segment.addr(), walked: 0, expected });
                }
                let mut block = first;
                let mut previous_free: Option<*mut u8> = None;
                while block < epilogue {
                    let header = tag(block);
                    let size = header & !FLAGS;
                    if size < MIN_BLOCK
                        || !size.is_multiple_of(ALIGN)
                        || size > epilogue.addr() - block.addr()
                    {
                        return Err(HeapCorruption::BadSize { block: block.addr(), size });
                    }
                    let footer = tag(block.add(size - WORD));
                    if footer != header & !LISTED {
                        return Err(HeapCorruption::TagMismatch { block: block.addr(), header, footer });
                    }
                    if header & IN_USE == 0 {
                        if header & LISTED == 0 {
                            return Err(HeapCorruption::FreeNotListed { block: block.addr() });
                        }
                        block.cast::<usize>().write(header & !LISTED);
                        if let Some(previous) = previous_free {
                            return Err(HeapCorruption::AdjacentFree {
                                first: previous.addr(),
                                second: block.addr(),
                            });
                        }
                        previous_free = Some(block);
                        free_bytes += size;
                        free_blocks += 1;
                    } else {
                        previous_free = None;
                    }
                    block = block.add(size);
                }
                if block != epilogue {
                    let walked = block.addr() - first.addr();
                    return Err(HeapCorruption::SegmentSize { segment: segment.addr(), walked, expected });
                }
                footprint += (*segment).span_len;
                segment = (*segment).next;
            }
        }
        if free_blocks != self.free_blocks {
            return Err(HeapCorruption::FreeCount { listed: free_blocks, counted: self.free_blocks });
        }
        if free_bytes != self.free_bytes {
            return Err(HeapCorruption::FreeBytes { walked: free_bytes, counted: self.free_bytes });
        }
        if footprint != self.footprint {
            return Err(HeapCorruption::Footprint { walked: footprint, counted: self.footprint });
        }
        Ok(())
    }
}
