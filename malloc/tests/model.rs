//! The C ABI against a model: random sequences of malloc, calloc, realloc, reallocarray,
//! the memalign family and the three frees, through the linked rlib's `allockit_` exports
//! and through the built .so loaded with `dlopen`. Every block is checked for alignment,
//! usable size, zeroing (calloc), overlap with every live block, and its contents (each block
//! is filled with its own byte and checked when it is resized or freed).

mod support;

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::ptr;

use proptest::prelude::*;
use support::{CApi, errno, linked, loaded, set_errno};

#[derive(Clone, Copy, Debug)]
enum AllocKind {
    Malloc,
    Calloc,
    PosixMemalign,
    AlignedAlloc,
    Memalign,
    Valloc,
    Pvalloc,
}

#[derive(Clone, Copy, Debug)]
enum FreeKind {
    Free,
    Sized,
    AlignedSized,
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { kind: AllocKind, size: usize, align_log: u32 },
    Realloc { index: usize, size: usize },
    ReallocArray { index: usize, count: usize, size: usize },
    Free { index: usize, kind: FreeKind },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..=64,
        6 => 0usize..=2048,
        4 => 0usize..=40_000,
        2 => 100_000usize..=600_000,
        1 => (4usize << 20) - 8192..=(4 << 20) + 8192,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(AllocKind::Malloc),
        Just(AllocKind::Calloc),
        Just(AllocKind::PosixMemalign),
        Just(AllocKind::AlignedAlloc),
        Just(AllocKind::Memalign),
        Just(AllocKind::Valloc),
        Just(AllocKind::Pvalloc),
    ];
    let align_log = prop_oneof![10 => 3u32..=13, 1 => Just(22u32)];
    let free_kind = prop_oneof![Just(FreeKind::Free), Just(FreeKind::Sized), Just(FreeKind::AlignedSized)];
    prop_oneof![
        6 => (kind, size(), align_log).prop_map(|(kind, size, align_log)| Op::Alloc { kind, size, align_log }),
        3 => (any::<usize>(), size()).prop_map(|(index, size)| Op::Realloc { index, size }),
        1 => (any::<usize>(), 0usize..=64, 0usize..=512)
            .prop_map(|(index, count, size)| Op::ReallocArray { index, count, size }),
        5 => (any::<usize>(), free_kind).prop_map(|(index, kind)| Op::Free { index, kind }),
    ]
}

#[derive(Debug)]
struct Live {
    ptr: *mut u8,
    size: usize,
    fill: u8,
    align: usize,
}

struct Model {
    api: CApi,
    live: Vec<Live>,
    /// Start → end of every live block (at least one byte each), for the overlap check.
    spans: BTreeMap<usize, usize>,
    next_fill: u8,
}

impl Model {
    fn new(api: CApi) -> Self {
        Model { api, live: Vec::new(), spans: BTreeMap::new(), next_fill: 1 }
    }

    fn fill(&mut self) -> u8 {
        self.next_fill = self.next_fill.wrapping_add(1).max(1);
        self.next_fill
    }

    /// Checks a new block and enters it in the model.
    fn admit(&mut self, ptr: *mut u8, size: usize, align: usize, zeroed: bool) {
        let name = self.api.name;
        assert!(!ptr.is_null(), "{name}: null for {size} bytes aligned {align}");
        assert_eq!(ptr.addr() % align, 0, "{name}: {ptr:?} not aligned to {align}");
        // SAFETY: a live block of ours.
        let usable = unsafe { (self.api.usable_size)(ptr.cast()) };
        assert!(usable >= size, "{name}: usable {usable} < requested {size}");
        let (start, end) = (ptr.addr(), ptr.addr() + size.max(1));
        if let Some((&before, &before_end)) = self.spans.range(..=start).next_back() {
            assert!(before_end <= start, "{name}: {start:#x} overlaps the block at {before:#x}");
        }
        if let Some((&after, _)) = self.spans.range(start..).next() {
            assert!(after >= end, "{name}: {start:#x}..{end:#x} overlaps the block at {after:#x}");
        }
        // SAFETY: the block holds `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, size) };
        if zeroed {
            assert!(bytes.iter().all(|&b| b == 0), "{name}: calloc block not zeroed");
        }
        let fill = self.fill();
        bytes.fill(fill);
        self.spans.insert(start, end);
        self.live.push(Live { ptr, size, fill, align });
    }

    fn check_contents(&self, block: &Live, upto: usize) {
        // SAFETY: the block is live and holds `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(block.ptr, block.size.min(upto)) };
        if let Some(offset) = bytes.iter().position(|&b| b != block.fill) {
            panic!("{}: byte {offset} of the block at {:?} changed", self.api.name, block.ptr);
        }
    }

    fn take(&mut self, index: usize) -> Option<Live> {
        if self.live.is_empty() {
            return None;
        }
        let block = self.live.swap_remove(index % self.live.len());
        self.check_contents(&block, usize::MAX);
        self.spans.remove(&block.ptr.addr());
        Some(block)
    }

    fn apply(&mut self, op: &Op) {
        let api = self.api;
        // SAFETY: every call follows the C contract: pointers passed back are live blocks
        // of this allocator, out pointers are valid.
        unsafe {
            match *op {
                Op::Alloc { kind, size, align_log } => {
                    let align = 1usize << align_log;
                    let page = 4096;
                    // malloc aligns to 16, but a block of at most 8 bytes only to 8.
                    let malloc_align = |size: usize| if size <= 8 { 8 } else { 16 };
                    let (ptr, size, align, zeroed) = match kind {
                        AllocKind::Malloc => ((api.malloc)(size), size, malloc_align(size), false),
                        AllocKind::Calloc => {
                            let total = (size / 8 + 1) * 8;
                            ((api.calloc)(size / 8 + 1, 8), total, malloc_align(total), true)
                        }
                        AllocKind::PosixMemalign => {
                            let mut out = ptr::null_mut();
                            assert_eq!((api.posix_memalign)(&mut out, align, size), 0);
                            (out, size, align, false)
                        }
                        AllocKind::AlignedAlloc => ((api.aligned_alloc)(align, size), size, align, false),
                        AllocKind::Memalign => ((api.memalign)(align, size), size, align, false),
                        AllocKind::Valloc => ((api.valloc)(size), size, page, false),
                        AllocKind::Pvalloc => {
                            ((api.pvalloc)(size), size.max(1).next_multiple_of(page), page, false)
                        }
                    };
                    self.admit(ptr.cast(), size, align, zeroed);
                }
                Op::Realloc { index, size } => {
                    let Some(block) = self.take(index) else { return };
                    let fresh = (api.realloc)(block.ptr.cast(), size).cast::<u8>();
                    if size == 0 {
                        assert!(fresh.is_null(), "realloc(p, 0) frees and returns NULL");
                        return;
                    }
                    let kept = Live { ptr: fresh, ..block };
                    self.check_contents(&kept, size);
                    // realloc keeps only malloc's alignment (16 at most).
                    self.admit(fresh, size, 16.min(kept.align), false);
                }
                Op::ReallocArray { index, count, size } => {
                    let Some(block) = self.take(index) else { return };
                    let total = count * size;
                    let fresh = (api.reallocarray)(block.ptr.cast(), count, size).cast::<u8>();
                    if total == 0 {
                        assert!(fresh.is_null());
                        return;
                    }
                    let kept = Live { ptr: fresh, ..block };
                    self.check_contents(&kept, total);
                    self.admit(fresh, total, 16.min(kept.align), false);
                }
                Op::Free { index, kind } => {
                    let Some(block) = self.take(index) else { return };
                    let ptr = block.ptr.cast::<c_void>();
                    match kind {
                        FreeKind::Free => (api.free)(ptr),
                        FreeKind::Sized => (api.free_sized)(ptr, block.size),
                        FreeKind::AlignedSized => (api.free_aligned_sized)(ptr, block.align, block.size),
                    }
                }
            }
        }
    }

    fn free_all(&mut self) {
        while self.take(0).is_some_and(|block| {
            // SAFETY: a live block of ours, no longer in the model.
            unsafe { (self.api.free)(block.ptr.cast()) };
            true
        }) {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_through_the_linked_exports(ops in prop::collection::vec(op(), 1..300)) {
        let mut model = Model::new(linked());
        for op in &ops {
            model.apply(op);
        }
        model.free_all();
    }

    #[test]
    fn random_sequences_through_the_dlopened_library(ops in prop::collection::vec(op(), 1..300)) {
        let mut model = Model::new(loaded());
        for op in &ops {
            model.apply(op);
        }
        model.free_all();
    }
}

fn each_api(check: impl Fn(CApi)) {
    check(linked());
    check(loaded());
}

#[test]
fn malloc_zero_returns_distinct_pointers_and_free_null_is_a_no_op() {
    each_api(|api| unsafe {
        let (a, b) = ((api.malloc)(0), (api.malloc)(0));
        assert!(!a.is_null() && !b.is_null() && a != b, "{}", api.name);
        (api.free)(a);
        (api.free)(b);
        (api.free)(ptr::null_mut());
        assert_eq!((api.usable_size)(ptr::null_mut()), 0);
    });
}

#[test]
fn overflowing_and_impossible_sizes_fail_with_enomem() {
    each_api(|api| unsafe {
        set_errno(0);
        assert!((api.calloc)(usize::MAX / 2, 3).is_null());
        assert_eq!(errno(), libc::ENOMEM, "{}: calloc overflow", api.name);
        set_errno(0);
        assert!((api.malloc)(usize::MAX - 4096).is_null());
        assert_eq!(errno(), libc::ENOMEM, "{}: malloc of almost all of memory", api.name);
        set_errno(0);
        assert!((api.malloc)(usize::MAX / 2).is_null());
        assert_eq!(errno(), libc::ENOMEM);
        let block = (api.malloc)(100);
        set_errno(0);
        assert!((api.reallocarray)(block, usize::MAX / 2, 3).is_null());
        assert_eq!(errno(), libc::ENOMEM, "{}: reallocarray overflow", api.name);
        set_errno(0);
        assert!((api.realloc)(block, usize::MAX / 2).is_null());
        assert_eq!(errno(), libc::ENOMEM);
        // A failed realloc leaves the block as it was.
        assert!((api.usable_size)(block) >= 100);
        (api.free)(block);
    });
}

#[test]
fn bad_alignments_are_rejected_as_glibc_does() {
    each_api(|api| unsafe {
        let mut out = ptr::null_mut();
        set_errno(0);
        assert_eq!((api.posix_memalign)(&mut out, 24, 100), libc::EINVAL);
        assert_eq!(
            (api.posix_memalign)(&mut out, 4, 100),
            libc::EINVAL,
            "{}: below sizeof(void *)",
            api.name
        );
        assert_eq!(errno(), 0, "posix_memalign does not set errno");
        assert!(out.is_null());
        assert_eq!((api.posix_memalign)(&mut out, 8, usize::MAX / 2), libc::ENOMEM);
        assert_eq!(errno(), 0, "posix_memalign does not set errno on ENOMEM either");
        assert!((api.aligned_alloc)(24, 100).is_null());
        assert_eq!(errno(), libc::EINVAL);
        // memalign rounds a non-power-of-two alignment up.
        let block = (api.memalign)(24, 100);
        assert_eq!(block.addr() % 32, 0);
        (api.free)(block);
    });
}

#[test]
fn realloc_of_null_allocates_and_to_zero_frees() {
    each_api(|api| unsafe {
        let block = (api.realloc)(ptr::null_mut(), 40).cast::<u8>();
        assert!(!block.is_null());
        block.write_bytes(7, 40);
        assert!((api.realloc)(block.cast(), 0).is_null());
    });
}

#[test]
fn a_growing_realloc_keeps_its_contents_through_every_size_range() {
    each_api(|api| unsafe {
        let mut block = (api.malloc)(1).cast::<u8>();
        block.write(0);
        let mut size = 1usize;
        while size < 24 << 20 {
            let grown = size + size / 3 + 1;
            block = (api.realloc)(block.cast(), grown).cast();
            assert!(!block.is_null());
            for offset in (0..size).step_by(997) {
                assert_eq!(block.add(offset).read(), (offset % 251) as u8, "{}: offset {offset}", api.name);
            }
            for offset in size..grown {
                block.add(offset).write((offset % 251) as u8);
            }
            size = grown;
        }
        (api.free)(block.cast());
    });
}
